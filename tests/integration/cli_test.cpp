// The recsync binary as an operator runs it: check, run, plugin check, rules test, version,
// and the dlq commands with recsync stopped and running. Errors must name the file and line.
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <regex>
#include <sstream>

using namespace recsync;
using nlohmann::json;
using testkit::http_request;
using testkit::wait_until;

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
    // The request the plugin builds from it, without its credentials.
    EXPECT_NE(out.find("    request: POST http://127.0.0.1:9/crm/v3/objects/contacts\n"), std::string::npos) << out;
    EXPECT_NE(out.find(R"(    body: {"associations":[],"properties":{)"), std::string::npos) << out;
    EXPECT_EQ(out.find("TOKEN"), std::string::npos) << "no Authorization header in the output: " << out;
    EXPECT_FALSE(std::filesystem::exists(dir_.file("state/recsync.db")));

    // An update: its id at the CRM is not known without the id map.
    const auto upd = dir_.write("update.json", R"({"entity":"contact","event":"updated","key":"c-9","data":{"email":"x@y.io","last_name":"Z"}})");
    const auto [rc2, out2] = run("rules test -c " + config() + " " + upd);
    EXPECT_EQ(rc2, 0) << out2;
    EXPECT_NE(out2.find("request: PATCH http://127.0.0.1:9/crm/v3/objects/contacts/EXTERNAL_ID  (EXTERNAL_ID: its id at the CRM, from the id map)"),
              std::string::npos)
        << out2;
}

// Inbound rules, tried with events as a connection delivers them.
TEST_F(Cli, RulesTestTakesEventsFromAConnection) {
    dir_.write("rules/zz-inbound.yaml",
               "mappings:\n  back: { fields: [ { from: email, to: email } ] }\n"
               "rules:\n  - { name: from-crm, on: { source: hubspot-main, entity: contacts, event: updated }, do: { action: upsert, target: hubspot-main, object: contacts, mapping: back } }\n");
    const auto ev = dir_.write("inbound.json", R"({"entity":"contacts","event":"updated","key":"501","external_id":"501","data":{"id":"501","email":"a@b.io"}})");
    const auto [rc, out] = run("rules test -c " + config() + " --source hubspot-main " + ev);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("rule 'from-crm': upsert hubspot-main/contacts key=501"), std::string::npos) << out;
    // The same event as System A's: no inbound rule fires, and "contacts" has no schema.
    const auto [rc2, out2] = run("rules test -c " + config() + " " + ev);
    EXPECT_EQ(rc2, 1) << out2;
    const auto [rc3, out3] = run("rules test -c " + config() + " --source nowhere " + ev);
    EXPECT_EQ(rc3, 2) << out3;
    EXPECT_NE(out3.find("--source nowhere is not a configured connection"), std::string::npos) << out3;
}

// conflicts.owners: a field the CRM owns is never written there from System A, one System
// A owns never comes in from the CRM.
TEST_F(Cli, OwnedFieldsStayWithTheirOwner) {
    const auto cfg = dir_.write("recsync.yaml",
                                "plugins_dir: plugins\nrules_dir: rules\nstate: { path: state/recsync.db }\nserver: { listen: '127.0.0.1:0' }\n"
                                "connections:\n  hubspot-main:\n    provider: hubspot\n    base_url: http://127.0.0.1:9\n"
                                "    conflicts: { owners: { lifecyclestage: external, email: internal } }\n");
    dir_.write("rules/zz-inbound.yaml",
               "mappings:\n  back: { fields: [ { from: email, to: email }, { from: firstname, to: firstname } ] }\n"
               "rules:\n  - { name: from-crm, on: { source: hubspot-main, entity: contacts, event: updated }, do: { action: update, target: hubspot-main, object: contacts, mapping: back } }\n");
    // Outbound: the shipped mapping sets lifecyclestage (default lead); the CRM owns it.
    const auto ev = dir_.write("event.json", R"({"entity":"contact","event":"created","key":"c-9","data":{"email":"x@y.io","first_name":"X"}})");
    auto [rc, out] = run("rules test -c " + cfg + " " + ev);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find(R"("email":"x@y.io")"), std::string::npos) << out;
    EXPECT_EQ(out.find("lifecyclestage"), std::string::npos) << out;
    // Inbound: the CRM's email does not come in; its firstname does.
    const auto in = dir_.write("inbound.json", R"({"entity":"contacts","event":"updated","key":"501","data":{"id":"501","email":"crm@y.io","firstname":"Y"}})");
    std::tie(rc, out) = run("rules test -c " + cfg + " --source hubspot-main " + in);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find(R"("firstname":"Y")"), std::string::npos) << out;
    EXPECT_EQ(out.find("crm@y.io"), std::string::npos) << out;
    // A side that is neither.
    dir_.write("recsync.yaml", "plugins_dir: plugins\nrules_dir: rules\nstate: { path: state/recsync.db }\nserver: { listen: '127.0.0.1:0' }\n"
                               "connections:\n  hubspot-main:\n    provider: hubspot\n    base_url: http://127.0.0.1:9\n"
                               "    conflicts: { owners: { email: crm } }\n");
    std::tie(rc, out) = run("check -c " + cfg);
    EXPECT_EQ(rc, 1) << out;
    EXPECT_NE(out.find(cfg + ":9:35: conflicts.owners.email: 'crm' is not 'internal'"), std::string::npos) << out;
}

// ---- dlq --------------------------------------------------------------------------------

// `recsync run` as a child process on a fixed port, with an admin token, whose connection
// points at a closed port: an update for a record it never created is dead-lettered at
// once ("no external id"), with no call made.
class CliDlq : public Cli {
protected:
    void SetUp() override {
        Cli::SetUp();
        setenv("RECSYNC_CLI_ADMIN_TOKEN", "cli-admin-token", 1);
        port_ = testkit::free_port();
        config_ = dir_.write("recsync.yaml", "plugins_dir: plugins\nrules_dir: rules\nwatch_rules: false\n"
                                             "state: { path: state/recsync.db }\n"
                                             "server: { listen: '127.0.0.1:" + std::to_string(port_) + "', admin_token_env: RECSYNC_CLI_ADMIN_TOKEN }\n"
                                             "log_level: error\n"
                                             "connections:\n  hubspot-main:\n    provider: hubspot\n    base_url: http://127.0.0.1:9\n");
        base_ = "http://127.0.0.1:" + std::to_string(port_);
    }
    void TearDown() override { stop_engine(); }

    void start_engine() {
        engine_ = std::make_unique<testkit::ChildProcess>(std::vector<std::string>{kBin, "run", "-c", config_});
        ASSERT_TRUE(engine_->started());
        ASSERT_TRUE(wait_until([&] { return http_request("GET", base_ + "/readyz").status == 200; }, std::chrono::seconds(30))) << "recsync did not start";
    }
    void stop_engine() {
        if (!engine_ || !engine_->started()) return;
        EXPECT_TRUE(engine_->stop()) << "recsync did not stop cleanly";
        engine_.reset();
    }
    // Dead-letters an update for each key and waits until the engine has recorded them all.
    void dead_letter_updates(const std::vector<std::string> &keys) {
        std::string body;
        for (const auto &k : keys) body += R"({"entity":"contact","event":"updated","key":")" + k + R"(","data":{"email":")" + k + R"(@example.com"}})" "\n";
        ASSERT_EQ(http_request("POST", base_ + "/v1/events", body, {"Content-Type: application/x-ndjson"}).status, 202);
        ASSERT_TRUE(wait_until([&] { return admin("GET", "/v1/admin/dlq").size() == keys.size(); })) << "not dead-lettered";
    }
    json admin(const std::string &method, const std::string &path) {
        const auto r = http_request(method, base_ + path, "", {"Authorization: Bearer cli-admin-token"});
        return r.status == 200 ? json::parse(r.body) : json();
    }
    std::pair<int, std::string> dlq(const std::string &args) { return run("dlq " + args); }
    // The dead-letter id on the `dlq list` line of `key` ("ID\tconnection\tobject\taction\tkey\t..."); -1 if none.
    static long long listed_id(const std::string &list, const std::string &key) {
        std::istringstream lines(list);
        for (std::string line; std::getline(lines, line);)
            if (line.find("\t" + key + "\t") != std::string::npos) return std::stoll(line.substr(0, line.find('\t')));
        return -1;
    }

    uint16_t port_ = 0;
    std::string config_, base_;
    std::unique_ptr<testkit::ChildProcess> engine_;
};

// `recsync status`: the running instance's lanes as a table, or its JSON; an error naming
// the address when nothing answers there.
TEST_F(CliDlq, StatusPrintsTheRunningConnectionsAsATable) {
    start_engine();
    dead_letter_updates({"ghost-1"});
    auto [rc, out] = run("status -c " + config_);
    ASSERT_EQ(rc, 0) << out;
    std::istringstream lines(out);
    std::string header, row;
    std::getline(lines, header);
    std::getline(lines, row);
    EXPECT_EQ(header.rfind("CONNECTION", 0), 0u) << out;
    for (const char *column : {"QUEUED", "IN FLIGHT", "RATE", "OLDEST", "P99", "DEAD", "THROTTLED", "STATE"}) EXPECT_NE(header.find(column), std::string::npos) << column;
    EXPECT_EQ(row.rfind("hubspot-main", 0), 0u) << out;
    EXPECT_NE(row.find("hubspot"), std::string::npos) << out;
    // The DEAD column of the row holds the one dead letter, under its header.
    const auto dead_at = header.find("DEAD");
    EXPECT_EQ(row.substr(dead_at, 1), "1") << out;
    EXPECT_NE(out.find("1 dead letter(s)"), std::string::npos) << out;
    std::tie(rc, out) = run("status -c " + config_ + " --json");
    ASSERT_EQ(rc, 0) << out;
    EXPECT_EQ(json::parse(out).at("connections").at("hubspot-main").at("dead_lettered"), 1) << out;
    stop_engine();
    std::tie(rc, out) = run("status -c " + config_);
    EXPECT_EQ(rc, 1);
    EXPECT_NE(out.find("no recsync answers at 127.0.0.1:" + std::to_string(port_)), std::string::npos) << out;
}

TEST_F(CliDlq, ListShowsDeadLettersAndDropForgetsThemWhileStopped) {
    start_engine();
    dead_letter_updates({"ghost-1", "ghost-2"});
    stop_engine();

    auto [rc, out] = dlq("list -c " + config_);
    ASSERT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("\thubspot-main\tcontacts\tupdate\tghost-1\tattempts=1\tno external id for record 'ghost-1'"), std::string::npos) << out;
    EXPECT_NE(out.find("\tghost-2\t"), std::string::npos) << out;
    EXPECT_NE(out.find("2 dead letter(s)"), std::string::npos) << out;
    const auto id = listed_id(out, "ghost-1");
    ASSERT_GT(id, 0) << out;
    std::tie(rc, out) = dlq("list -c " + config_ + " --limit 1");
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("1 dead letter(s)"), std::string::npos) << out;

    std::tie(rc, out) = dlq("drop -c " + config_ + " " + std::to_string(id));
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("dropped " + std::to_string(id)), std::string::npos) << out;
    std::tie(rc, out) = dlq("list -c " + config_);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_EQ(listed_id(out, "ghost-1"), -1) << "dropped, still listed: " << out;
    EXPECT_GT(listed_id(out, "ghost-2"), 0) << out;
    EXPECT_NE(out.find("1 dead letter(s)"), std::string::npos) << out;
    std::tie(rc, out) = dlq("drop -c " + config_ + " " + std::to_string(id));
    EXPECT_EQ(rc, 1) << "already dropped: " << out;
    EXPECT_NE(out.find("no dead letter " + std::to_string(id)), std::string::npos) << out;
}

// While recsync runs it owns the queue: show, drop and replay go through its admin API
// (the answers are its JSON), and a replay is sent at once, not at the next start.
TEST_F(CliDlq, CommandsGoThroughTheAdminApiOfARunningEngine) {
    start_engine();
    dead_letter_updates({"ghost-1", "ghost-2"});
    auto [rc, out] = dlq("list -c " + config_);  // reads the database beside the running engine
    ASSERT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("2 dead letter(s)"), std::string::npos) << out;
    const auto first = listed_id(out, "ghost-1"), second = listed_id(out, "ghost-2");
    ASSERT_GT(first, 0) << out;
    ASSERT_GT(second, 0) << out;

    std::tie(rc, out) = dlq("show -c " + config_ + " " + std::to_string(first));
    ASSERT_EQ(rc, 0) << out;
    const auto shown = json::parse(out, nullptr, false);
    ASSERT_FALSE(shown.is_discarded()) << "not the admin API's JSON: " << out;
    EXPECT_EQ(shown["id"], first);
    EXPECT_EQ(shown["record_key"], "ghost-1");
    EXPECT_NE(shown["reason"].get<std::string>().find("no external id"), std::string::npos) << out;

    std::tie(rc, out) = dlq("drop -c " + config_ + " " + std::to_string(first));
    EXPECT_EQ(rc, 0) << out;
    EXPECT_EQ(json::parse(out, nullptr, false), (json{{"dropped", first}})) << out;
    const auto left = admin("GET", "/v1/admin/dlq");
    ASSERT_EQ(left.size(), 1u) << left.dump();
    EXPECT_EQ(left[0]["id"], second);

    // Replayed, the update is tried again at once: still no external id, so it is
    // dead-lettered again under a new id.
    std::tie(rc, out) = dlq("replay -c " + config_ + " " + std::to_string(second));
    EXPECT_EQ(rc, 0) << out;
    EXPECT_EQ(out.find("not running"), std::string::npos) << out;
    const auto replayed = json::parse(out, nullptr, false);
    EXPECT_EQ(replayed.value("replayed", -1), 1) << out;
    EXPECT_EQ(replayed.value("dropped_stale", json()), json::array()) << out;
    ASSERT_TRUE(wait_until([&] {
        const auto now = admin("GET", "/v1/admin/dlq");
        return now.size() == 1 && now[0]["id"] != second && now[0]["record_key"] == "ghost-2";
    })) << admin("GET", "/v1/admin/dlq").dump();

    std::tie(rc, out) = dlq("drop -c " + config_ + " " + std::to_string(first));
    EXPECT_EQ(rc, 1) << "already dropped: " << out;
    EXPECT_NE(out.find("HTTP 404"), std::string::npos) << out;

    // Without the admin token the command cannot reach the engine, and says how to fix it
    // rather than writing to the database under it.
    std::tie(rc, out) = testkit::run_command("env -u RECSYNC_CLI_ADMIN_TOKEN " + kBin + " dlq drop -c " + config_ + " " + std::to_string(second));
    EXPECT_EQ(rc, 1) << out;
    EXPECT_NE(out.find("recsync is running at 127.0.0.1:" + std::to_string(port_)), std::string::npos) << out;
    EXPECT_NE(out.find("admin_token_env"), std::string::npos) << out;
    EXPECT_EQ(admin("GET", "/v1/admin/dlq").size(), 1u) << "nothing was dropped";
}

}  // namespace
