// The loader refuses every broken fixture with its own message, refuses plugins others
// could change, and survives plugins that throw.
#include "plugin/plugin_error.hpp"
#include "plugin/provider_instance.hpp"
#include "plugin/provider_library.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

using namespace recsync;
namespace fs = std::filesystem;

namespace {

// The PluginError message a call ends with, or "(no error)".
template <typename Fn>
std::string error_of(Fn &&fn) {
    try {
        fn();
    } catch (const plugin::PluginError &e) {
        return e.what();
    }
    return "(no error)";
}

class PluginLoading : public ::testing::Test {
protected:
    void SetUp() override {
        for (const char *id : {"no_entry", "wrong_major", "id_mismatch", "short_struct", "null_function", "create_fails", "throwing", "garbage_output", "fastpath", "batching"})
            testkit::copy_plugin(RECSYNC_FIXTURE_PLUGIN_DIR, id, plugins());
        testkit::copy_plugin(RECSYNC_PLUGIN_DIR, "hubspot", plugins());
    }
    std::string plugins() const { return dir_.file("plugins"); }

    std::string load_error(const std::string &id) {
        try {
            plugin::ProviderLibrary::load(plugins() + "/" + id + ".so");
        } catch (const plugin::PluginError &e) {
            return e.what();
        }
        return "(loaded)";
    }

    testkit::TempDir dir_;
};

TEST_F(PluginLoading, RealPluginLoads) {
    auto lib = plugin::ProviderLibrary::load(plugins() + "/hubspot.so");
    EXPECT_EQ(lib->id(), "hubspot");
    EXPECT_EQ(RECSYNC_ABI_MAJOR_OF(lib->abi_version()), static_cast<uint32_t>(RECSYNC_ABI_MAJOR));
    auto inst = plugin::ProviderInstance::create(lib, {{"base_url", "http://127.0.0.1:1"}});
    EXPECT_TRUE(inst->describe().contains("objects"));
}

// host_api.set_rate_limit reports ride on the call's own output: parse_response returns
// them with its verdict (no thread-local side channel), one per window, in order.
TEST_F(PluginLoading, RateLimitReportsComeBackWithTheVerdictOfTheirCall) {
    auto lib = plugin::ProviderLibrary::load(plugins() + "/hubspot.so");
    auto inst = plugin::ProviderInstance::create(lib, {{"base_url", "http://127.0.0.1:1"}});
    const std::vector<plugin::Header> headers = {{"X-HubSpot-RateLimit-Max", "190", false},
                                                 {"X-HubSpot-RateLimit-Remaining", "17", false},
                                                 {"X-HubSpot-RateLimit-Interval-Milliseconds", "10000", false},
                                                 {"X-HubSpot-RateLimit-Secondly", "19", false},
                                                 {"X-HubSpot-RateLimit-Secondly-Remaining", "4", false}};
    const plugin::CallInput call{RECSYNC_ACTION_CREATE, "contacts", "k", "", R"({"properties":{"email":"a@b.c"}})", ""};
    const auto r = inst->parse_response(call, plugin::ResponseView{201, &headers, R"({"id":"5"})"});
    EXPECT_EQ(r.kind, RECSYNC_RESULT_OK);
    ASSERT_EQ(r.rate_limits.size(), 2u);
    EXPECT_EQ(r.rate_limits[0].limit, 190);
    EXPECT_EQ(r.rate_limits[0].remaining, 17);
    EXPECT_EQ(r.rate_limits[0].window_ms, 10000);
    EXPECT_EQ(r.rate_limits[1].limit, 19);
    EXPECT_EQ(r.rate_limits[1].remaining, 4);
    EXPECT_EQ(r.rate_limits[1].window_ms, 1000);
    // Another call's answer carries its own reports, none here.
    const auto plain = inst->parse_response(call, plugin::ResponseView{201, nullptr, R"({"id":"6"})"});
    EXPECT_TRUE(plain.rate_limits.empty());
}

TEST_F(PluginLoading, EachBrokenFixtureIsRefusedWithItsOwnMessage) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"no_entry", "no entry function 'recsync_provider_entry'"},
        {"wrong_major", "ABI major 2, this recsync speaks major 1"},
        {"id_mismatch", "provider id 'someone_else' does not match its file name 'id_mismatch.so'"},
        {"short_struct", "shorter than the"},
        {"null_function", "lacks required member 'parse_response'"},
    };
    for (const auto &[id, expected] : cases) {
        const auto msg = load_error(id);
        EXPECT_NE(msg.find(expected), std::string::npos) << id << ": " << msg;
        EXPECT_NE(msg.find(id + ".so"), std::string::npos) << "the message names the file: " << msg;
    }
}

TEST_F(PluginLoading, FailedInstanceCreationReportsThePluginsReason) {
    auto lib = plugin::ProviderLibrary::load(plugins() + "/create_fails.so");
    try {
        plugin::ProviderInstance::create(lib, nlohmann::json::object());
        FAIL() << "create_instance should have failed";
    } catch (const plugin::PluginError &e) {
        EXPECT_NE(std::string(e.what()).find("missing setting 'api_key'"), std::string::npos) << e.what();
        EXPECT_EQ(e.status(), RECSYNC_ERR_CONFIG);
    }
}

TEST_F(PluginLoading, ExceptionsInsideAPluginBecomeErrorStatuses) {
    auto lib = plugin::ProviderLibrary::load(plugins() + "/throwing.so");
    EXPECT_THROW(plugin::ProviderInstance::create(lib, {{"fail_create", true}}), plugin::PluginError);
    auto inst = plugin::ProviderInstance::create(lib, nlohmann::json::object());
    EXPECT_NE(error_of([&] { inst->transform(RECSYNC_OUTBOUND, "things", "{}"); }).find("transform exploded"), std::string::npos);
    EXPECT_NE(error_of([&] { inst->validate("things", "{}"); }).find("unknown exception"), std::string::npos);
    EXPECT_NE(error_of([&] { inst->build_request({RECSYNC_ACTION_CREATE, "things", "k", "", "{}", ""}); }).find("build_request exploded"), std::string::npos);
    const std::vector<plugin::Header> none;
    EXPECT_NE(error_of([&] { inst->parse_response({RECSYNC_ACTION_CREATE, "things", "k", "", "{}", ""}, {200, &none, "<html>"}); }).find("invalid input"),
              std::string::npos);
}

TEST_F(PluginLoading, GarbageOutputIsCaughtNotTrusted) {
    auto lib = plugin::ProviderLibrary::load(plugins() + "/garbage_output.so");
    auto inst = plugin::ProviderInstance::create(lib, nlohmann::json::object());
    EXPECT_NE(error_of([&] { inst->describe(); }).find("describe: output is not a JSON object"), std::string::npos);
    EXPECT_NE(error_of([&] { inst->transform(RECSYNC_OUTBOUND, "x", "{}"); }).find("returned OK without output"), std::string::npos);
    const auto req_error = error_of([&] { inst->build_request({RECSYNC_ACTION_CREATE, "x", "k", "", "{}", ""}); });
    EXPECT_NE(req_error.find("must start with '/'"), std::string::npos) << req_error;  // the plugin never picks the host
    const std::vector<plugin::Header> none;
    EXPECT_NE(error_of([&] { inst->parse_response({RECSYNC_ACTION_CREATE, "x", "k", "", "{}", ""}, {200, &none, "{}"}); }).find("without a result"), std::string::npos);
}

TEST_F(PluginLoading, PluginsOthersCanWriteAreRefused) {
    fs::permissions(plugins() + "/hubspot.so", fs::perms::group_write, fs::perm_options::add);
    EXPECT_NE(load_error("hubspot").find("writable by group or others"), std::string::npos);
    fs::permissions(plugins() + "/hubspot.so", fs::perms::group_write, fs::perm_options::remove);
    EXPECT_EQ(load_error("hubspot"), "(loaded)");
    fs::permissions(plugins(), fs::perms::others_write, fs::perm_options::add);
    const auto msg = load_error("hubspot");
    EXPECT_NE(msg.find("plugin directory"), std::string::npos) << msg;
    EXPECT_NE(msg.find("writable by group or others"), std::string::npos) << msg;
}

}  // namespace

// The SDK keeps the last outbound transform's document so that validating that same text
// skips a parse (provider_sdk.hpp). Anything else must still be parsed and judged itself.
TEST_F(PluginLoading, ValidateJudgesTheTextItIsGivenNotTheLastTransform) {
    auto lib = plugin::ProviderLibrary::load(plugins() + "/hubspot.so");
    auto inst = plugin::ProviderInstance::create(lib, {{"base_url", "http://127.0.0.1:1"}});
    const std::string good = inst->transform(RECSYNC_OUTBOUND, "contacts", R"({"email": "ada@example.com", "firstname": "Ada"})");
    EXPECT_EQ(error_of([&] { inst->validate("contacts", good); }), "(no error)");

    std::string bad = good;
    bad.replace(bad.find("ada@example.com"), 15, "not-an-address!");
    ASSERT_EQ(bad.size(), good.size());
    EXPECT_NE(error_of([&] { inst->validate("contacts", bad); }).find("is not an email address"), std::string::npos);
    EXPECT_NE(error_of([&] { inst->validate("contacts", "{\"properties\": 1}"); }), "(no error)");
    EXPECT_NE(error_of([&] { inst->validate("widgets", good); }), "(no error)") << "same text, unknown object";

    // A transform that fails leaves nothing behind to be mistaken for its output.
    (void)error_of([&] { inst->transform(RECSYNC_OUTBOUND, "contacts", "[1]"); });
    EXPECT_EQ(error_of([&] { inst->validate("contacts", good); }), "(no error)");
}

// The SDK writes transform output with recsync/json_text.hpp: the text dump() wrote
// (HubSpot's properties are all strings), escapes and UTF-8 included; validate still takes
// that text for the transform's.
TEST_F(PluginLoading, SdkWritesTransformOutputAsDumpWould) {
    auto lib = plugin::ProviderLibrary::load(plugins() + "/hubspot.so");
    auto inst = plugin::ProviderInstance::create(lib, {{"base_url", "http://127.0.0.1:1"}});
    const nlohmann::json record = {{"email", "a@b.c"},
                                   {"note", "say \"hi\" \\ \t\n\x01\x1f\x7f / 東京 Zoë \xF0\x9F\x98\x80"},
                                   {"n", 2.5},
                                   {"long", std::string(5000, 'x') + "\n" + std::string(3000, 'y')},
                                   {"none", nullptr}};
    const std::string out = inst->transform(RECSYNC_OUTBOUND, "contacts", record.dump());
    const auto parsed = nlohmann::json::parse(out);
    EXPECT_EQ(out, parsed.dump());
    EXPECT_EQ(parsed["properties"]["note"], record["note"]);
    EXPECT_EQ(parsed["properties"]["long"], record["long"]);
    EXPECT_EQ(parsed["properties"]["n"], "2.5");
    EXPECT_EQ(parsed["properties"]["none"], "");
    EXPECT_EQ(error_of([&] { inst->validate("contacts", out); }), "(no error)");
}

// The SDK keeps the last record it was given parsed and updates it in place for the next
// one (provider_sdk.hpp: parse_record): whatever came before, each transform must see
// exactly the record it is given, fields added, dropped, changing type or nested.
TEST_F(PluginLoading, SdkSeesEachRecordAsItIsWhateverCameBefore) {
    auto lib = plugin::ProviderLibrary::load(plugins() + "/hubspot.so");
    auto inst = plugin::ProviderInstance::create(lib, {{"base_url", "http://127.0.0.1:1"}});
    // What HubSpot's transform makes of a flat record: every value as text, null as "".
    auto expected = [](const nlohmann::json &record) {
        nlohmann::json props = nlohmann::json::object();
        for (const auto &[k, v] : record.items()) props[k] = v.is_string() ? v.get<std::string>() : v.is_null() ? "" : v.dump();
        return props;
    };
    const std::vector<std::string> records = {
        R"({"a":"1","b":"two","c":"three"})",
        R"({"a":"1","b":"two","c":"three"})",                      // the same again
        R"({"a":"x","c":"a much longer value than the one before it"})",  // b dropped
        R"({"a":"x","b":7,"bb":true,"c":null,"d":"new"})",          // added, type changes
        R"({"d":"only d"})",
        R"({})",
        R"({"z":"1","a":"2"})",                                     // keys not sorted
        R"({"a":"1","b":"2","a":"3"})",                             // a repeated key: the last wins
        R"({"a":"1","b":"2"})",
        R"({"a":"é\n\"","b":"2","c":-3})",
    };
    for (const auto &r : records) {
        const auto out = nlohmann::json::parse(inst->transform(RECSYNC_OUTBOUND, "contacts", r));
        EXPECT_EQ(out.at("properties"), expected(nlohmann::json::parse(r))) << r;
    }
    // A nested object in between is refused, and the next record is still seen whole.
    EXPECT_NE(error_of([&] { inst->transform(RECSYNC_OUTBOUND, "contacts", R"({"a":{"n":1},"b":"2"})"); }).find("nested"), std::string::npos);
    EXPECT_EQ(nlohmann::json::parse(inst->transform(RECSYNC_OUTBOUND, "contacts", R"({"a":"1"})")).at("properties"), nlohmann::json({{"a", "1"}}));
}

// The SDK parses host input with simdjson and builds the same document nlohmann would:
// the last of a repeated key wins, key order does not matter, numbers beyond 64 bits and
// malformed text fall back to nlohmann (which accepts the former and words the error).
TEST_F(PluginLoading, SdkParsesInputAsNlohmannWould) {
    auto lib = plugin::ProviderLibrary::load(plugins() + "/hubspot.so");
    auto inst = plugin::ProviderInstance::create(lib, {{"base_url", "http://127.0.0.1:1"}});
    auto props = [&](const std::string &record) {
        return nlohmann::json::parse(inst->transform(RECSYNC_OUTBOUND, "contacts", record)).at("properties");
    };
    EXPECT_EQ(props(R"({"firstname": "A", "email": "a@b.c", "firstname": "B"})").at("firstname"), "B");
    EXPECT_EQ(props(R"({"lastname": "L\u00e9", "email": "a@b.c"})").at("lastname"), "Lé");
    const std::string big = "123456789012345678901234567890";
    EXPECT_EQ(props(R"({"email": "a@b.c", "n": )" + big + "}").at("n"), props(R"({"email": "a@b.c", "n": 1.2345678901234568e29})").at("n"));
    EXPECT_EQ(props(R"({"email": "a@b.c", "n": 18446744073709551615})").at("n"), "18446744073709551615");
    EXPECT_NE(error_of([&] { inst->transform(RECSYNC_OUTBOUND, "contacts", "{\"email\": "); }).find("parse error"), std::string::npos);
}

// The SDK's fast paths (provider_sdk.hpp): taken when the provider has them and accepts,
// and when it declines, the document path answers alone, with nothing of the half-written
// fast output left in what the host gets.
TEST_F(PluginLoading, SdkTakesTheFastPathsOnlyWhenTheProviderAccepts) {
    auto lib = plugin::ProviderLibrary::load(plugins() + "/fastpath.so");
    auto inst = plugin::ProviderInstance::create(lib, nlohmann::json::object());
    EXPECT_EQ(inst->transform(RECSYNC_OUTBOUND, "things", R"({"a":1,"b":2})"), R"({"fields":2,"via":"fast"})");
    EXPECT_EQ(inst->transform(RECSYNC_OUTBOUND, "things", R"({"a":1,"decline":true})"), R"({"fields":2,"via":"document"})");
    // Not for inbound, and not for text simdjson refuses or that is not an object.
    EXPECT_EQ(inst->transform(RECSYNC_INBOUND, "things", R"({"a":1})"), R"({"fields":1,"via":"document"})");
    EXPECT_EQ(inst->transform(RECSYNC_OUTBOUND, "things", R"({"n":123456789012345678901234567890})"), R"({"fields":1,"via":"document"})");
    EXPECT_EQ(inst->transform(RECSYNC_OUTBOUND, "things", "[1]"), R"({"fields":1,"via":"document"})");

    EXPECT_EQ(error_of([&] { inst->validate("things", R"({"fast_ok":1})"); }), "(no error)");
    EXPECT_EQ(error_of([&] { inst->validate("things", R"({"document_ok":1})"); }), "(no error)");
    EXPECT_NE(error_of([&] { inst->validate("things", R"({"neither":1})"); }).find("refused by validate()"), std::string::npos);
    EXPECT_NE(error_of([&] { inst->validate("things", "not json"); }), "(no error)");
}

// ABI 1.6: a batch's calls reach the plugin in order and its answer comes back as one
// verdict per record (its own status, reason and record), or one for the whole batch.
TEST_F(PluginLoading, BatchCallsGoOutTogetherAndComeBackOnePerRecord) {
    auto lib = plugin::ProviderLibrary::load(plugins() + "/batching.so");
    auto inst = plugin::ProviderInstance::create(lib, nlohmann::json::object());
    ASSERT_TRUE(inst->has_batches());
    EXPECT_EQ(inst->describe()["objects"]["things"]["batch"]["create"], 3);
    const std::vector<plugin::CallInput> calls = {{RECSYNC_ACTION_CREATE, "things", "k1", "", R"({"n":1})", "tok"},
                                                  {RECSYNC_ACTION_CREATE, "things", "k2", "", R"({"n":2})", "tok"},
                                                  {RECSYNC_ACTION_CREATE, "things", "k3", "", R"({"n":3})", "tok"}};
    const auto req = inst->build_batch_request(calls);
    EXPECT_EQ(req.path, "/things/batch");
    EXPECT_EQ(nlohmann::json::parse(req.body)["inputs"][2]["key"], "k3");
    ASSERT_EQ(req.headers.size(), 1u);
    EXPECT_TRUE(req.headers[0].secret) << "the token header stays marked secret";

    const std::vector<plugin::Header> none;
    const auto r = inst->parse_batch_response(
        calls, {207, &none, R"({"results":[{"index":0,"id":"100"}],"errors":[{"index":2,"status":404,"message":"no such thing"}]})"});
    EXPECT_FALSE(r.batch) << "no verdict for the batch as a whole";
    ASSERT_EQ(r.items.size(), 3u) << "one slot per call; the plugin's index past the end is ignored";
    ASSERT_TRUE(r.items[0]);
    EXPECT_EQ(r.items[0]->kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(r.items[0]->external_id, "100");
    EXPECT_EQ(nlohmann::json::parse(r.items[0]->record)["id"], "100");
    EXPECT_FALSE(r.items[1]) << "a record the answer does not mention has no verdict of its own";
    ASSERT_TRUE(r.items[2]);
    EXPECT_EQ(r.items[2]->kind, RECSYNC_RESULT_FAIL);
    EXPECT_EQ(r.items[2]->status, 404);
    EXPECT_EQ(r.items[2]->error, "no such thing");
    ASSERT_EQ(r.rate_limits.size(), 1u);
    EXPECT_EQ(r.rate_limits[0].remaining, 7);

    const std::vector<plugin::Header> retry_after = {{"Retry-After", "2", false}};
    const auto limited = inst->parse_batch_response(calls, {429, &retry_after, "{}"});
    ASSERT_TRUE(limited.batch);
    EXPECT_EQ(limited.batch->kind, RECSYNC_RESULT_RETRY);
    EXPECT_EQ(limited.batch->retry_after_ms, 2000);
    EXPECT_EQ(limited.batch->error, "rate limited");
    EXPECT_TRUE(std::none_of(limited.items.begin(), limited.items.end(), [](const auto &i) { return i.has_value(); }));

    EXPECT_NE(error_of([&] { inst->parse_batch_response(calls, {200, &none, "<html>"}); }).find("parse_batch_response"), std::string::npos);
}

// Plugins without batches (every one before 1.6) are never asked for one.
TEST_F(PluginLoading, PluginsWithoutTheCapabilityHaveNoBatches) {
    auto lib = plugin::ProviderLibrary::load(plugins() + "/fastpath.so");
    EXPECT_FALSE(plugin::ProviderInstance::create(lib, nlohmann::json::object())->has_batches());
}
