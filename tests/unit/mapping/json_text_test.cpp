// recsync/json_text.hpp, the writer behind the mapping's and the SDK's JSON output: the
// same bytes as nlohmann's dump() for everything but the spelling of floating-point
// numbers, which must read back as the same double (and stay a double).
#include <recsync/json_text.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <simdjson.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

using nlohmann::json;
using recsync::json_text::append;
using recsync::json_text::append_string;

std::string text_of(const json &j) {
    std::string out;
    append(out, j);
    return out;
}

TEST(JsonText, EveryAsciiByteIsEscapedAsDumpEscapesIt) {
    for (int c = 0; c < 0x80; ++c) {
        const std::string s(1, static_cast<char>(c));
        EXPECT_EQ(text_of(s), json(s).dump()) << "byte " << c;
    }
    EXPECT_EQ(text_of(std::string("\x01\x1f\x7f", 3)), "\"\\u0001\\u001f\x7f\"");
    EXPECT_EQ(text_of("tab\there \"q\" back\\slash\nline\r\b\f"), R"("tab\there \"q\" back\\slash\nline\r\b\f")");
    EXPECT_EQ(text_of(std::string("nul\0in", 6)), "\"nul\\u0000in\"");
}

TEST(JsonText, Utf8IsCopiedUnescaped) {
    // 2-, 3- and 4-byte characters, as dump() (ensure_ascii off) writes them.
    const std::string s = "Zoë 東京 \xF0\x9F\x98\x80 / slash";
    EXPECT_EQ(text_of(s), "\"" + s + "\"");
    EXPECT_EQ(text_of(s), json(s).dump());
}

TEST(JsonText, EscapesAtEveryPositionAroundTheEightByteBlocks) {
    // The fast path looks at 8 bytes at a time: an escape in any lane, at any length, must
    // still be found.
    for (const char special : {'"', '\\', '\n', '\x00', '\x1f'}) {
        for (size_t len = 1; len <= 41; ++len) {
            for (size_t at = 0; at < len; ++at) {
                std::string s(len, 'a');
                for (size_t i = 0; i < len; ++i) s[i] = static_cast<char>('a' + i % 26);
                s[at] = special;
                ASSERT_EQ(text_of(s), json(s).dump()) << "length " << len << ", special " << int(special) << " at " << at;
            }
        }
    }
}

TEST(JsonText, HighBytesNeverLookLikeEscapes) {
    // 0x80-0xFF in every lane: the word tricks must not take them for control characters.
    std::string s;
    for (int c = 0x80; c <= 0xFF; ++c) s += static_cast<char>(c);
    std::string out;
    append_string(out, s);
    EXPECT_EQ(out, "\"" + s + "\"");
}

TEST(JsonText, VeryLongStrings) {
    std::string s;
    for (int i = 0; i < 200000; ++i) s += (i % 997 == 0) ? "\"\n\\" : (i % 3 ? "ab" : "ü");
    EXPECT_EQ(text_of(s), json(s).dump());
    const std::string plain(1 << 20, 'x');
    EXPECT_EQ(text_of(plain), json(plain).dump());
}

TEST(JsonText, AppendsToWhatIsThere) {
    std::string out = "prefix:";
    append(out, json{{"k", "v"}});
    EXPECT_EQ(out, R"(prefix:{"k":"v"})");
}

TEST(JsonText, IntegersBooleansNullAsDump) {
    for (const json &j : {json(0), json(-1), json(42), json(std::numeric_limits<int64_t>::min()), json(std::numeric_limits<int64_t>::max()),
                          json(std::numeric_limits<uint64_t>::max()), json(true), json(false), json(nullptr), json::object(), json::array()})
        EXPECT_EQ(text_of(j), j.dump()) << j.dump();
}

TEST(JsonText, DoublesStayDoublesAndReadBackExactly) {
    EXPECT_EQ(text_of(3.0), "3.0");
    EXPECT_EQ(text_of(-0.0), "-0.0");
    EXPECT_EQ(text_of(2.5), "2.5");
    EXPECT_EQ(text_of(100.0), "100.0");
    EXPECT_EQ(text_of(std::numeric_limits<double>::quiet_NaN()), "null");
    EXPECT_EQ(text_of(std::numeric_limits<double>::infinity()), "null");
    EXPECT_EQ(text_of(-std::numeric_limits<double>::infinity()), "null");
    std::mt19937_64 rng(7);
    std::vector<double> values = {1e300, -1e-300, 5e-324, std::numeric_limits<double>::max(), 1e15, 1e16, 1e21, 0.1, 1.0 / 3, 123456789.125};
    for (int i = 0; i < 20000; ++i) {
        uint64_t bits = rng();
        double d;
        std::memcpy(&d, &bits, sizeof d);
        if (std::isfinite(d)) values.push_back(d);
        values.push_back(static_cast<double>(static_cast<int64_t>(rng() % 2000001) - 1000000) / 8);
    }
    for (const double d : values) {
        const std::string t = text_of(d);
        const json back = json::parse(t);
        ASSERT_TRUE(back.is_number_float()) << t;
        ASSERT_EQ(back.get<double>(), d) << t;
        ASSERT_TRUE(std::signbit(back.get<double>()) == std::signbit(d)) << t;
    }
}

// Random documents: nested objects and arrays, keys needing escapes, every scalar type.
json random_doc(std::mt19937 &rng, int depth, bool floats) {
    const auto pick = [&](int n) { return static_cast<int>(rng() % n); };
    const auto random_string = [&] {
        static const std::vector<std::string> pieces = {"a", "Zoë", "東", "\xF0\x9F\x98\x80", "\"", "\\", "\n", "\t", std::string(1, '\0'),
                                                        "\x1b", "/", "\x7f", "0123456789", " "};
        std::string s;
        for (int i = pick(12); i > 0; --i) s += pieces[pick(static_cast<int>(pieces.size()))];
        return s;
    };
    switch (depth > 3 ? pick(6) : pick(8)) {
        case 0: return nullptr;
        case 1: return pick(2) == 1;
        case 2: return static_cast<int64_t>(rng()) - (1LL << 31);
        case 3: return floats ? json(std::ldexp(static_cast<double>(rng()), pick(80) - 40)) : json(static_cast<uint64_t>(rng()) << 32);
        case 4:
        case 5: return random_string();
        case 6: {
            json a = json::array();
            for (int i = pick(5); i > 0; --i) a.push_back(random_doc(rng, depth + 1, floats));
            return a;
        }
        default: {
            json o = json::object();
            for (int i = pick(6); i > 0; --i) o[random_string()] = random_doc(rng, depth + 1, floats);
            return o;
        }
    }
}

TEST(JsonText, RandomDocumentsWithoutDoublesAreDumpsBytes) {
    std::mt19937 rng(42);
    for (int i = 0; i < 3000; ++i) {
        const json doc = random_doc(rng, 0, false);
        ASSERT_EQ(text_of(doc), doc.dump()) << "document " << i;
    }
}

TEST(JsonText, RandomDocumentsReadBackEqual) {
    std::mt19937 rng(43);
    for (int i = 0; i < 3000; ++i) {
        const json doc = random_doc(rng, 0, true);
        const std::string t = text_of(doc);
        ASSERT_TRUE(simdjson::validate_utf8(t.data(), t.size())) << "document " << i;
        ASSERT_EQ(json::parse(t), doc) << t;
    }
}

TEST(JsonText, WriterTellsWhenTheTextWouldNotReadBack) {
    // The SDK keeps a transform's document for validate only if its text reads back as it.
    std::string out;
    {
        recsync::json_text::Writer w(out);
        w.value(json{{"a", 1.5}, {"b", {1, 2, "x"}}});
        EXPECT_FALSE(w.wrote_non_finite());
    }
    EXPECT_EQ(out, R"({"a":1.5,"b":[1,2,"x"]})");
    out.clear();
    recsync::json_text::Writer w(out);
    w.value(json{{"a", {{"deep", std::numeric_limits<double>::quiet_NaN()}}}});
    w.finish();
    EXPECT_TRUE(w.wrote_non_finite());
    EXPECT_EQ(out, R"({"a":{"deep":null}})");
}

TEST(JsonText, InvalidUtf8IsCopiedForTheCallerToRefuse) {
    // The writer does not check UTF-8 (dump() throws instead); callers run
    // simdjson::validate_utf8 on what it wrote when their input can hold invalid bytes.
    const std::string bad = "caf\xC3";  // a truncated 2-byte character
    const std::string t = text_of(bad);
    EXPECT_EQ(t, "\"caf\xC3\"");
    EXPECT_FALSE(simdjson::validate_utf8(t.data(), t.size()));
    EXPECT_THROW((void)json(bad).dump(), json::type_error);
}

}  // namespace
