// FastCheck must agree with valijson, the reference, on every document: it decides alone
// when data is valid. Differential tests over seeded random documents, plus the cases
// where the two could plausibly differ (integers vs floats, UTF-8 lengths, required names
// outside `properties`, exclusive bounds), and the schemas it must refuse to compile.
#include "schema/fast_check.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include "schema/valijson.hpp"

#include <random>

namespace recsync::schema {
namespace {

using nlohmann::json;

bool valijson_valid(const json &schema, const json &doc) {
    valijson::Schema s;
    valijson::SchemaParser parser;
    valijson::adapters::NlohmannJsonAdapter sa(schema);
    parser.populateSchema(sa, s);
    valijson::Validator v;
    valijson::adapters::NlohmannJsonAdapter target(doc);
    return v.validate(s, target, nullptr);
}

// Random values biased toward the edges the keywords test: boundary numbers, short and
// multi-byte strings, the schema's own property names, nesting.
class Generator {
public:
    explicit Generator(uint64_t seed) : rng_(seed) {}

    json value(int depth, const std::vector<std::string> &names) {
        switch (pick(depth > 2 ? 6 : 8)) {
            case 0: return nullptr;
            case 1: return pick(2) == 0;
            case 2: return static_cast<int64_t>(pick(12)) - 2;  // -2..9, around small bounds
            case 3: {
                static const double floats[] = {-0.5, 0.0, 0.5, 1.0, 2.0, 9.5, 10.0, 100.0, 100.5, 1e300};
                return floats[pick(10)];
            }
            case 4: case 5: return text();
            case 6: {
                json a = json::array();
                for (size_t i = 0, n = pick(5); i < n; ++i) a.push_back(value(depth + 1, names));
                return a;
            }
            default: {
                json o = json::object();
                for (size_t i = 0, n = pick(6); i < n; ++i) {
                    const std::string key = !names.empty() && pick(4) != 0 ? names[pick(names.size())] : text();
                    o[key] = value(depth + 1, names);
                }
                return o;
            }
        }
    }

    // A valid example with one or two members replaced, removed or added.
    json mutate(json doc, const std::vector<std::string> &names) {
        for (size_t i = 0, n = 1 + pick(2); i < n && doc.is_object(); ++i) {
            const std::string key = names.empty() ? text() : names[pick(names.size())];
            json *target = &doc;
            if (doc.contains(key) && doc[key].is_object() && pick(2) == 0) target = &doc[key];  // one level down
            const std::string inner = target == &doc ? key : (names.empty() ? text() : names[pick(names.size())]);
            if (pick(3) == 0) target->erase(inner);
            else (*target)[inner] = value(1, names);
        }
        return doc;
    }

    size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

private:
    std::string text() {
        static const char *parts[] = {"a", "Z", "@", "x@y.z", " ", "é", "日本", "😀", "12", "-", "AB", "lead", "gold"};
        std::string s;
        for (size_t i = 0, n = pick(6); i < n; ++i) s += parts[pick(13)];
        return s;
    }
    std::mt19937_64 rng_;
};

std::vector<std::string> names_in(const json &schema) {
    std::vector<std::string> out;
    if (!schema.is_object()) return out;
    for (const auto &[k, v] : schema.items()) {
        if (k == "properties" && v.is_object())
            for (const auto &[name, sub] : v.items()) {
                out.push_back(name);
                for (auto &n : names_in(sub)) out.push_back(n);
            }
        if (k == "required" && v.is_array())
            for (const auto &n : v) out.push_back(n.get<std::string>());
        if (v.is_object())
            for (auto &n : names_in(v)) out.push_back(n);
    }
    return out;
}

void expect_agreement(const json &schema, const json &example, int documents, uint64_t seed) {
    auto fast = FastCheck::compile(schema, "test");
    ASSERT_NE(fast, nullptr) << schema.dump();
    Generator gen(seed);
    const auto names = names_in(schema);
    int valid = 0;
    for (int i = 0; i < documents; ++i) {
        const json doc = example.is_null() || gen.pick(2) == 0 ? gen.value(0, names) : gen.mutate(example, names);
        const bool expected = valijson_valid(schema, doc);
        ASSERT_EQ(fast->valid(doc), expected) << "schema " << schema.dump() << "\ndocument " << doc.dump();
        // The same verdict from the text, through simdjson.
        const auto verdict = fast->check_text(doc.dump());
        ASSERT_EQ(verdict, expected ? FastCheck::TextVerdict::Valid : FastCheck::TextVerdict::Invalid) << "text " << doc.dump();
        valid += expected;
    }
    // The generator must exercise both verdicts, or the comparison proves little.
    EXPECT_GT(valid, 0) << schema.dump();
    EXPECT_LT(valid, documents) << schema.dump();
}

TEST(FastCheck, AgreesWithValijsonOnRandomDocuments) {
    // {schema, a valid example to mutate (null: random documents only)}
    const std::vector<std::pair<json, json>> cases = {
        {json::parse(R"({"type": "integer", "minimum": 0, "maximum": 9})"), nullptr},
        {json::parse(R"({"type": ["number", "null"], "exclusiveMinimum": 0, "exclusiveMaximum": 100})"), nullptr},
        {json::parse(R"({"type": "string", "minLength": 2, "maxLength": 4})"), nullptr},
        {json::parse(R"({"type": "string", "pattern": "^[A-Z]{2}$"})"), nullptr},
        {json::parse(R"({"enum": ["lead", "gold", 1, null, true]})"), nullptr},
        {json::parse(R"({"const": 2})"), nullptr},
        {json::parse(R"({"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3})"), nullptr},
        {json::parse(R"({"type": "object", "minProperties": 1, "maxProperties": 3})"), nullptr},
        {json::parse(R"({"type": "object", "propertyNames": {"minLength": 1, "maxLength": 3}})"), nullptr},
        {json::parse(R"({"type": "object", "required": ["a", "b"], "properties": {"a": {"type": "string"}}})"), json::parse(R"({"a": "x", "b": null})")},
        {json::parse(R"({"type": "object", "required": ["a"], "properties": {"a": {}}, "additionalProperties": false})"), json::parse(R"({"a": 1})")},
        {json::parse(R"({"type": "object", "properties": {"a": {"type": "boolean"}}, "additionalProperties": {"type": "integer"}})"), nullptr},
        {json::parse(R"({"properties": {"a": false, "b": true}})"), nullptr},
        {json::parse(R"({
          "type": "object", "required": ["email", "tier"],
          "properties": {
            "email": {"type": "string", "minLength": 3, "pattern": "@"},
            "tier": {"type": "string", "enum": ["gold", "lead"]},
            "score": {"type": "number", "minimum": 0, "maximum": 100},
            "company": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 0}}},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2}
          }})"),
         json::parse(R"({"email": "x@y.z", "tier": "gold", "score": 10, "company": {"size": 3}, "tags": ["a"]})")},
        {json::parse(R"({"type": "object", "required": ["properties"], "additionalProperties": false,
          "properties": {"properties": {"type": "object", "propertyNames": {"minLength": 1},
            "additionalProperties": {"type": "string"}, "properties": {"email": {"type": "string"}}}}})"),
         json::parse(R"({"properties": {"email": "x@y.z", "firstname": "Ada"}})")},
    };
    uint64_t seed = 1;
    for (const auto &[schema, example] : cases) {
        SCOPED_TRACE(schema.dump());
        expect_agreement(schema, example, 3000, seed++);
    }
}

TEST(FastCheck, IntegerMeansAnIntegerToken) {
    auto fast = FastCheck::compile(json::parse(R"({"type": "integer"})"), "t");
    ASSERT_NE(fast, nullptr);
    EXPECT_TRUE(fast->valid(json(3)));
    EXPECT_TRUE(fast->valid(json(3u)));
    EXPECT_FALSE(fast->valid(json(3.0)));  // as valijson over nlohmann decides
    EXPECT_FALSE(fast->valid(json("3")));
}

TEST(FastCheck, LengthsCountCharactersNotBytes) {
    auto fast = FastCheck::compile(json::parse(R"({"type": "string", "maxLength": 2})"), "t");
    ASSERT_NE(fast, nullptr);
    EXPECT_TRUE(fast->valid(json("日本")));   // 6 bytes, 2 characters
    EXPECT_TRUE(fast->valid(json("😀😀")));  // 8 bytes
    EXPECT_FALSE(fast->valid(json("日本語")));
    EXPECT_EQ(fast->valid(json(std::string("ab\0cdef", 7))), valijson_valid(json::parse(R"({"type": "string", "maxLength": 2})"), json(std::string("ab\0cdef", 7))));
}

TEST(FastCheck, RequiredNameOutsidePropertiesHonoursAdditionalProperties) {
    auto fast = FastCheck::compile(json::parse(R"({"required": ["x"], "properties": {}, "additionalProperties": false})"), "t");
    ASSERT_NE(fast, nullptr);
    EXPECT_FALSE(fast->valid(json::parse(R"({"x": 1})")));
    EXPECT_FALSE(fast->valid(json::parse(R"({})")));
}

TEST(FastCheck, TextWithRepeatedKeysCountsRequiredNamesOnce) {
    auto fast = FastCheck::compile(json::parse(R"({"required": ["a", "b"]})"), "t");
    ASSERT_NE(fast, nullptr);
    EXPECT_EQ(fast->check_text(R"({"a": 1, "a": 2})"), FastCheck::TextVerdict::Invalid);
    EXPECT_EQ(fast->check_text(R"({"a": 1, "b": 2})"), FastCheck::TextVerdict::Valid);
}

TEST(FastCheck, TextSimdjsonCannotParseIsLeftToTheCaller) {
    auto fast = FastCheck::compile(json::parse(R"({"type": "number"})"), "t");
    ASSERT_NE(fast, nullptr);
    EXPECT_EQ(fast->check_text("{"), FastCheck::TextVerdict::Unparsed);
    EXPECT_EQ(fast->check_text("123456789012345678901234567890"), FastCheck::TextVerdict::Unparsed);  // nlohmann: a double
    EXPECT_EQ(fast->check_text(R"("x")"), FastCheck::TextVerdict::Invalid);
}

TEST(FastCheck, LeavesUncoveredKeywordsToValijson) {
    for (const char *s : {R"({"$ref": "#/definitions/a", "definitions": {"a": {}}})", R"({"anyOf": [{"type": "string"}]})",
                          R"({"type": "string", "format": "date"})", R"({"patternProperties": {"^a": {}}})",
                          R"({"items": [{"type": "string"}]})", R"({"minimum": 1, "exclusiveMinimum": true})", R"({"type": "decimal"})",
                          R"({"propertyNames": {"enum": ["a"]}})", R"({"properties": {"a": {"not": {}}}})"})
        EXPECT_EQ(FastCheck::compile(json::parse(s), "t"), nullptr) << s;
}

TEST(FastCheck, InvalidPatternIsAnErrorNamingWhere) {
    try {
        FastCheck::compile(json::parse(R"({"properties": {"email": {"pattern": "(a"}}})"), "contact.json");
        FAIL() << "compiled a broken pattern";
    } catch (const std::runtime_error &e) {
        EXPECT_NE(std::string(e.what()).find("contact.json: invalid pattern at <root>[email]"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace recsync::schema
