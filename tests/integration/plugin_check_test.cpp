// `recsync plugin check` as an operator runs it: the full conformance kit, in a child
// process, passes the shipped providers and refuses each broken fixture with its reason.
// The engine's in-process light kit is checked here too.
#include "plugin/conformance.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <chrono>

using namespace recsync;

namespace {

const std::string kBin = RECSYNC_BINARY_DIR "/recsync";
const std::string kSalesforceConfig =
    R"('{"objects":{"Contact":{"external_id_field":"Recsync_Key__c"},"Account":{"lookup_field":"Name"}},"credentials":{"client_id":"k","client_secret":"s"},"base_url":"https://login.salesforce.com"}')";

class PluginCheck : public ::testing::Test {
protected:
    // Copied into a directory only we can write: plugins are refused from any other.
    std::string plugin(const std::string &dir, const std::string &id) {
        testkit::copy_plugin(dir, id, dir_.file("plugins"));
        return dir_.file("plugins/" + id + ".so");
    }
    std::string fixture(const std::string &id) { return plugin(RECSYNC_FIXTURE_PLUGIN_DIR, id); }
    std::pair<int, std::string> check(const std::string &so, const std::string &args = {}) {
        return testkit::run_command(kBin + " plugin check " + so + (args.empty() ? "" : " " + args) + " 2>&1");
    }
    static bool has(const std::string &out, const std::string &what) { return out.find(what) != std::string::npos; }
    testkit::TempDir dir_;
};

void expect_conforms_fully(const std::pair<int, std::string> &result) {
    const auto &[rc, out] = result;
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("\nconforms: "), std::string::npos) << out;
    EXPECT_EQ(out.find("  FAIL  "), std::string::npos) << out;
    // The full kit ran: every action built, garbage answered, two threads, isolation.
    EXPECT_NE(out.find("  ok    " ), std::string::npos) << out;
    EXPECT_NE(out.find(": build_request(create): POST /"), std::string::npos) << out;
    EXPECT_NE(out.find(": parse_response(create) of a 1 MB JSON string, each status twice"), std::string::npos) << out;
    EXPECT_NE(out.find(": two threads at once give the single-threaded answers: "), std::string::npos) << out;
    EXPECT_NE(out.find("  ok    runs to the end without crashing or hanging"), std::string::npos) << out;
}

TEST_F(PluginCheck, TheShippedProvidersConform) {
    {
        SCOPED_TRACE("hubspot");
        const auto r = check(plugin(RECSYNC_PLUGIN_DIR, "hubspot"));
        expect_conforms_fully(r);
        for (const char *action : {"create", "update", "delete", "read", "upsert"})
            EXPECT_TRUE(has(r.second, "  ok    contacts: build_request(" + std::string(action) + ")")) << action << "\n" << r.second;
        EXPECT_TRUE(has(r.second, "  ok    contacts: transform(OUTBOUND) of describe's sample")) << r.second;
        EXPECT_TRUE(has(r.second, "  ok    parse_webhook refuses an unsigned delivery")) << r.second;
        EXPECT_TRUE(has(r.second, "  ok    deals: build_poll_request from the start")) << r.second;
    }
    {
        SCOPED_TRACE("template");
        const auto r = check(plugin(RECSYNC_PLUGIN_DIR, "template"));
        expect_conforms_fully(r);
        // The template has no upsert or find: not declared, so not asked for.
        EXPECT_FALSE(has(r.second, "build_request(upsert)")) << r.second;
    }
    {
        SCOPED_TRACE("salesforce");
        const auto r = check(plugin(RECSYNC_PLUGIN_DIR, "salesforce"), "--config " + kSalesforceConfig);
        expect_conforms_fully(r);
        EXPECT_TRUE(has(r.second, "  ok    Contact: build_request(upsert)")) << r.second;
        EXPECT_TRUE(has(r.second, "  ok    Account: build_request(find)")) << r.second;
        EXPECT_TRUE(has(r.second, "  ok    build_auth_request")) << r.second;
    }
}

TEST_F(PluginCheck, TheFlawlessFixtureConforms) {
    // The broken fixtures below are this one plus one flaw: their refusals are the flaws'.
    expect_conforms_fully(check(fixture("conforming")));
}

TEST_F(PluginCheck, APluginThatCrashesIsRefusedNamingTheCheck) {
    const auto [rc, out] = check(fixture("crashes"));
    EXPECT_EQ(rc, 1) << out;
    EXPECT_TRUE(has(out, "  FAIL  runs to the end without crashing or hanging: crashes (signal 6, Aborted) during 'records: parse_response(create) of HTML, each status twice'"))
        << out;
    EXPECT_TRUE(has(out, "does not conform: ")) << out;
}

TEST_F(PluginCheck, APluginThatHangsIsKilledAfterTheCallTimeout) {
    const auto start = std::chrono::steady_clock::now();
    const auto [rc, out] = check(fixture("hangs"), "--call-timeout-ms 300");
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(rc, 1) << out;
    EXPECT_TRUE(has(out, "  FAIL  runs to the end without crashing or hanging: hangs: no answer within 300 ms during 'records: build_request(create)'")) << out;
    EXPECT_LT(took, std::chrono::seconds(20)) << "killed, not waited for";
}

TEST_F(PluginCheck, AnOkCreateWithoutAnIdIsInconsistent) {
    const auto [rc, out] = check(fixture("ok_without_id"));
    EXPECT_EQ(rc, 1) << out;
    EXPECT_TRUE(has(out, "  FAIL  records: parse_response(create) of an empty body, each status twice: HTTP 200: OK without an external id")) << out;
    EXPECT_TRUE(has(out, "  ok    runs to the end without crashing or hanging")) << out;
}

TEST_F(PluginCheck, ADifferentVerdictForTheSameAnswerIsInconsistent) {
    const auto [rc, out] = check(fixture("flip_flop"));
    EXPECT_EQ(rc, 1) << out;
    EXPECT_TRUE(has(out, "  FAIL  records: parse_response(create) of an empty body, each status twice: HTTP 500: answered differently the second time (inconsistent): "
                         "'RETRY id= retry_after_ms=0 record= modified= error=HTTP 500', then 'FAIL id="))
        << out;
    // (The two-thread check may or may not see it: the flips can line up with each thread.)
}

TEST_F(PluginCheck, TheTokenInTheUrlIsRefused) {
    const auto [rc, out] = check(fixture("token_in_url"));
    EXPECT_EQ(rc, 1) << out;
    EXPECT_TRUE(has(out, "  FAIL  records: build_request(create): the access token is in the path: POST /records?access_token=")) << out;
}

TEST_F(PluginCheck, AnOkWithoutOutputIsNoRefusalOfGarbage) {
    const auto [rc, out] = check(fixture("silent_transform"));
    EXPECT_EQ(rc, 1) << out;
    EXPECT_TRUE(has(out, "  FAIL  transform rejects garbage input: silent_transform.transform: returned OK without output")) << out;
}

TEST_F(PluginCheck, ABadCallTimeoutIsAUsageError) {
    const auto [rc, out] = check(fixture("conforming"), "--call-timeout-ms soon");
    EXPECT_EQ(rc, 2) << out;
    EXPECT_TRUE(has(out, "--call-timeout-ms needs a positive number")) << out;
}

// The engine's load-time kit: in-process, light (no 1 MB bodies, no threads), and still
// refusing what it can see without a crash.
TEST_F(PluginCheck, TheEnginesLightKitRunsInProcess) {
    const auto hubspot = plugin::run_conformance(plugin(RECSYNC_PLUGIN_DIR, "hubspot"), "{}");
    EXPECT_TRUE(hubspot.passed());
    bool any_heavy = false, built = false;
    for (const auto &c : hubspot.checks) {
        EXPECT_TRUE(c.passed) << c.name << ": " << c.detail;
        any_heavy = any_heavy || has(c.name, "two threads") || has(c.name, "1 MB");
        built = built || c.name == "contacts: build_request(upsert)";
    }
    EXPECT_FALSE(any_heavy);
    EXPECT_TRUE(built);
    EXPECT_FALSE(plugin::run_conformance(fixture("token_in_url"), "{}").passed());
    EXPECT_FALSE(plugin::run_conformance(fixture("ok_without_id"), "{}").passed());
    EXPECT_TRUE(plugin::run_conformance(fixture("conforming"), "{}").passed());
}

}  // namespace
