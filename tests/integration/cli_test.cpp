// The recsync binary as an operator runs it: check, run, plugin check, rules test, version.
// Errors must name the file and line.
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

using namespace recsync;

namespace {

const std::string kBin = RECSYNC_BINARY_DIR "/recsync";

class Cli : public ::testing::Test {
protected:
    void SetUp() override {
        testkit::copy_plugin(RECSYNC_PLUGIN_DIR, "hubspot", dir_.file("plugins"));
        std::filesystem::copy(RECSYNC_SOURCE_DIR "/rules", dir_.file("rules"), std::filesystem::copy_options::recursive);
    }
    std::string config(const std::string &provider = "hubspot") {
        return dir_.write("recsync.yaml",
                          "plugins_dir: plugins\n"
                          "rules_dir: rules\n"
                          "state: { path: state/recsync.db }\n"
                          "server: { listen: '127.0.0.1:0' }\n"
                          "connections:\n"
                          "  hubspot-main:\n"
                          "    provider: " + provider + "\n"
                          "    base_url: http://127.0.0.1:9\n");
    }
    std::pair<int, std::string> run(const std::string &args) { return testkit::run_command(kBin + " " + args); }
    testkit::TempDir dir_;
};

TEST_F(Cli, Version) {
    const auto [rc, out] = run("version");
    EXPECT_EQ(rc, 0);
    EXPECT_TRUE(std::regex_search(out, std::regex(R"(recsync \d+\.\d+\.\d+ \(provider ABI 1\.\d+\))"))) << out;
}

TEST_F(Cli, CheckAcceptsTheShippedRules) {
    const auto [rc, out] = run("check -c " + config());
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("plugin hubspot"), std::string::npos) << out;
    EXPECT_NE(out.find("4 rule(s)"), std::string::npos) << out;
}

TEST_F(Cli, ABrokenUnusedPluginIsReportedButDoesNotStopTheEngine) {
    testkit::copy_plugin(RECSYNC_FIXTURE_PLUGIN_DIR, "wrong_major", dir_.file("plugins"));
    testkit::copy_plugin(RECSYNC_FIXTURE_PLUGIN_DIR, "no_entry", dir_.file("plugins"));
    const auto [rc, out] = run("check -c " + config());
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("warning: unused plugin refused: plugin " + dir_.file("plugins/wrong_major.so") + ": ABI major 2"), std::string::npos) << out;
    EXPECT_NE(out.find("no_entry.so: no entry function"), std::string::npos) << out;
}

TEST_F(Cli, UnknownPluginIsRefusedByCheckAndRunWithFileAndLine) {
    const auto cfg = config("hubspott");
    for (const char *cmd : {"check", "run"}) {
        const auto [rc, out] = run(std::string(cmd) + " -c " + cfg);
        EXPECT_EQ(rc, 1) << cmd << ": " << out;
        EXPECT_NE(out.find(cfg + ":6:3: connection 'hubspot-main': no provider plugin 'hubspott'"), std::string::npos) << cmd << ": " << out;
        EXPECT_NE(out.find("found: hubspot"), std::string::npos) << out;
    }
}

TEST_F(Cli, BrokenRuleFileIsRefusedByCheckAndRunWithFileLineAndColumn) {
    const auto cfg = config();
    const auto rules = dir_.write("rules/zz-broken.yaml",
                                  "rules:\n"
                                  "  - name: oops\n"
                                  "    on: { entity: contact, event: created }\n"
                                  "    do: { action: creat, target: hubspot-main, object: contacts, mapping: contact-to-hubspot }\n");
    for (const char *cmd : {"check", "run"}) {
        const auto [rc, out] = run(std::string(cmd) + " -c " + cfg);
        EXPECT_EQ(rc, 1) << out;
        EXPECT_NE(out.find(rules + ":4:19: rule 'oops': unknown action 'creat'"), std::string::npos) << out;
    }
    dir_.write("rules/zz-broken.yaml", "rules:\n  - name: [unclosed\n");
    const auto [rc, out] = run("check -c " + cfg);
    EXPECT_EQ(rc, 1);
    EXPECT_NE(out.find(rules + ":"), std::string::npos) << out;
    EXPECT_NE(out.find("invalid YAML"), std::string::npos) << out;
}

TEST_F(Cli, ARulesFileThatIsNotUtf8IsRefusedWithItsPosition) {
    const auto rules = dir_.write("rules/zz-latin1.yaml", "mappings:\n  m:\n    fields:\n      - { to: name, value: M\xfcller }\n");
    const auto [rc, out] = run("check -c " + config());
    EXPECT_EQ(rc, 1) << out;
    EXPECT_NE(out.find(rules + ":4:29: not valid UTF-8"), std::string::npos) << out;
}

TEST_F(Cli, RuleTargetingAnUnknownObjectIsRefused) {
    dir_.write("rules/zz-object.yaml",
               "rules:\n"
               "  - name: to-tickets\n"
               "    on: { entity: contact, event: created }\n"
               "    do: { action: create, target: hubspot-main, object: tickets, mapping: contact-to-hubspot }\n");
    const auto [rc, out] = run("check -c " + config());
    EXPECT_EQ(rc, 1);
    EXPECT_NE(out.find("has no object 'tickets'"), std::string::npos) << out;
}

TEST_F(Cli, ARuleSourceMustBeInternalOrAConnectionEvenForSkipRules) {
    const auto rules = dir_.write("rules/zz-source.yaml",
                                  "rules:\n"
                                  "  - name: skip-from-nowhere\n"
                                  "    on: { source: hubspot-mian, entity: contact, event: created }\n"
                                  "    do: { action: skip }\n"
                                  "  - name: from-hubspot\n"
                                  "    on: { source: hubspot-main, entity: contact, event: created }\n"
                                  "    do: { action: skip }\n");
    auto [rc, out] = run("check -c " + config());
    EXPECT_EQ(rc, 1) << out;
    EXPECT_NE(out.find(rules + ":2:5: rule 'skip-from-nowhere': source 'hubspot-mian' is neither 'internal' nor a configured connection"), std::string::npos)
        << out;
    // A rule on a configured connection loads, with a warning that it cannot fire yet.
    dir_.write("rules/zz-source.yaml", "rules:\n  - name: from-hubspot\n    on: { source: hubspot-main, entity: contact, event: created }\n    do: { action: skip }\n");
    std::tie(rc, out) = run("check -c " + config());
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find(rules + ":2:5: rule 'from-hubspot' matches events from connection 'hubspot-main' (System B -> A)"), std::string::npos) << out;
    EXPECT_NE(out.find("cannot fire"), std::string::npos) << out;
}

TEST_F(Cli, ABrokenEntitySchemaIsReportedByCheckNotACrash) {
    const auto schema = dir_.file("rules/schemas/contact.json");
    dir_.write("rules/schemas/contact.json", "{\n  \"type\": \"object\",\n  \"properties\": { \"email\": { \"type\": \"strang\" } }\n}\n");
    const auto [rc, out] = run("check -c " + config());
    EXPECT_EQ(rc, 1) << out;  // valijson used to abort(): exit 134 with no file named
    EXPECT_NE(out.find(schema + ":3:38: at '/properties/email/type': 'type' \"strang\" is not a type"), std::string::npos) << out;
    EXPECT_EQ(out.find("has no schema"), std::string::npos) << out;
}

TEST_F(Cli, PluginCheck) {
    auto [rc, out] = run("plugin check " + dir_.file("plugins/hubspot.so"));
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("conforms"), std::string::npos) << out;
    testkit::copy_plugin(RECSYNC_FIXTURE_PLUGIN_DIR, "id_mismatch", dir_.file("fixtures"));
    std::tie(rc, out) = run("plugin check " + dir_.file("fixtures/id_mismatch.so"));
    EXPECT_EQ(rc, 1) << out;
    EXPECT_NE(out.find("does not match its file name"), std::string::npos) << out;
    testkit::copy_plugin(RECSYNC_FIXTURE_PLUGIN_DIR, "throwing", dir_.file("fixtures"));
    std::tie(rc, out) = run("plugin check " + dir_.file("fixtures/throwing.so"));
    EXPECT_EQ(rc, 1) << out;
    EXPECT_NE(out.find("FAIL"), std::string::npos) << out;
}

TEST_F(Cli, RulesTestShowsThePayloadAndSendsNothing) {
    const auto ev = dir_.write("event.json", R"({"entity":"contact","event":"created","key":"c-9","data":{"email":"X@Y.io","first_name":"X"}})");
    const auto [rc, out] = run("rules test -c " + config() + " " + ev);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("rule 'new-contact-to-hubspot': create hubspot-main/contacts key=c-9"), std::string::npos) << out;
    EXPECT_NE(out.find(R"("email":"x@y.io")"), std::string::npos) << out;
    EXPECT_FALSE(std::filesystem::exists(dir_.file("state/recsync.db")));
}

}  // namespace
