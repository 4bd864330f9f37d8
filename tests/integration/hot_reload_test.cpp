// Hot reload: a provider's .so replaced by rename, then reload (direct, admin endpoint,
// SIGHUP to a real process). Events keep flowing during the swap: none lost, none sent
// twice, the new build's behaviour visible after; a broken new build is refused and the
// old one keeps serving.
#include "engine/engine.hpp"
#include "store/state_backend.hpp"
#include "mock_crm.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

using namespace recsync;
using nlohmann::json;
using testkit::http_request;
using testkit::wait_until;
namespace fs = std::filesystem;

namespace {

class HotReload : public ::testing::Test {
protected:
    void SetUp() override {
        setenv("RECSYNC_RELOAD_ADMIN", "reload-admin-token", 1);
        mock::MockCrmOptions mo;
        mo.latency_ms = 2;  // keep calls in flight while the swap happens
        mo.threads = 4;
        crm_ = std::make_unique<mock::MockCrm>(mo);
        crm_->start();
        install("versioned_v1");
        fs::create_directories(dir_.file("rules/schemas"));
        fs::copy_file(RECSYNC_SOURCE_DIR "/rules/schemas/contact.json", dir_.file("rules/schemas/contact.json"));
        dir_.write("rules/sync.yaml",
                   "mappings:\n"
                   "  m: { fields: [ { from: email, to: email }, { from: first_name, to: firstname } ] }\n"
                   "rules:\n"
                   "  - name: contact-to-crm\n"
                   "    on: { entity: contact, event: created }\n"
                   "    do: { action: create, target: crm, object: contacts, mapping: m }\n");
    }
    void TearDown() override {
        if (engine_) engine_->stop(std::chrono::seconds(2));
        engine_.reset();
        crm_->stop();
    }

    // Installs fixture `build` as plugins/versioned.so the way an operator should: write
    // beside it, then rename over it (atomic).
    void install(const std::string &build) {
        fs::create_directories(dir_.file("plugins"));
        fs::permissions(dir_.file("plugins"), fs::perms::owner_all, fs::perm_options::replace);
        const auto tmp = dir_.file("plugins/.versioned.so.tmp");
        fs::copy_file(std::string(RECSYNC_FIXTURE_PLUGIN_DIR) + "/" + build + ".so", tmp, fs::copy_options::overwrite_existing);
        fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write | fs::perms::owner_exec, fs::perm_options::replace);
        fs::rename(tmp, dir_.file("plugins/versioned.so"));
    }

    std::string config(const std::string &listen = "127.0.0.1:0") {
        return dir_.write("recsync.yaml", "plugins_dir: plugins\nrules_dir: rules\n"
                                          "state: { path: state/recsync.db, synchronous: normal }\n"
                                          "server: { listen: '" + listen + "', admin_token_env: RECSYNC_RELOAD_ADMIN }\n"
                                          "log_level: warn\n"
                                          "connections:\n"
                                          "  crm: { provider: versioned, base_url: '" + crm_->base_url() + "', max_in_flight: 4 }\n");
    }

    // Config and rules with, or without, a second connection "crm2" at `url` (`extra`: its
    // other settings) and a rule sending contacts to it too.
    void write_crm2(bool on, const std::string &url, const std::string &extra = "") {
        config();
        if (on) std::ofstream(dir_.file("recsync.yaml"), std::ios::app) << "  crm2: { provider: versioned, base_url: '" + url + "'" + extra + " }\n";
        dir_.write("rules/sync.yaml", "mappings:\n"
                                      "  m: { fields: [ { from: email, to: email }, { from: first_name, to: firstname } ] }\n"
                                      "rules:\n"
                                      "  - name: contact-to-crm\n"
                                      "    on: { entity: contact, event: created }\n"
                                      "    do: { action: create, target: crm, object: contacts, mapping: m }\n" +
                                          std::string(on ? "  - name: contact-to-crm2\n"
                                                           "    on: { entity: contact, event: created }\n"
                                                           "    do: { action: create, target: crm2, object: contacts, mapping: m }\n"
                                                         : ""));
    }

    void start_engine() {
        engine_ = std::make_unique<engine::Engine>(config::load_config(config()));
        engine_->start();
        base_ = "http://127.0.0.1:" + std::to_string(engine_->port());
    }

    static std::string event(int i) {
        return R"({"entity":"contact","event":"created","key":"k-)" + std::to_string(i) + R"(","data":{"email":"p)" + std::to_string(i) + R"(@example.com","first_name":"P"}})";
    }

    std::map<std::string, std::string> generation_by_email() {
        std::map<std::string, std::string> out;
        for (const auto &r : crm_->records("contacts")) out[r.properties.at("email")] = r.properties.at("plugin_generation");
        return out;
    }

    testkit::TempDir dir_;
    std::unique_ptr<mock::MockCrm> crm_;
    std::unique_ptr<engine::Engine> engine_;
    std::string base_;
};

TEST_F(HotReload, SwapUnderLoadLosesNothingAndSendsNothingTwice) {
    start_engine();
    constexpr int kBatch = 5, kBatchesAfterReload = 20, kMaxEvents = 20000;
    std::atomic<int> posted{0};
    std::atomic<int> first_after_reload{-1};
    std::atomic<bool> reloaded{false};
    std::atomic<int> failures{0};
    // The poster never waits for the swap: it posts before, during and after it, and stops
    // once enough batches were accepted after the reload finished.
    std::thread poster([&] {
        int after = 0;
        for (int i = 0; i < kMaxEvents && after < kBatchesAfterReload; i += kBatch) {
            const bool is_after = reloaded.load();
            std::string body;
            for (int j = i; j < i + kBatch; ++j) body += event(j) + "\n";
            if (http_request("POST", base_ + "/v1/events", body, {"Content-Type: application/x-ndjson"}).status != 202) ++failures;
            if (is_after) {
                if (first_after_reload.load() < 0) first_after_reload = i;
                ++after;
            }
            posted = i + kBatch;
        }
    });
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") >= 60; }));
    install("versioned_v2");
    const auto r = engine_->reload();
    reloaded = true;
    EXPECT_TRUE(r.ok) << r.message;
    EXPECT_NE(r.message.find("versioned 0.0.1 -> 0.0.2"), std::string::npos) << r.message;
    poster.join();
    EXPECT_EQ(failures.load(), 0);
    const int kEvents = posted.load();

    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == static_cast<size_t>(kEvents); }, std::chrono::seconds(60)))
        << crm_->record_count("contacts") << " of " << kEvents;
    const auto c = crm_->counters();
    EXPECT_EQ(c.created, static_cast<uint64_t>(kEvents));  // none lost
    EXPECT_EQ(c.duplicates, 0u);                             // none sent twice
    size_t posts = 0;
    for (const auto &req : crm_->requests()) posts += req.method == "POST";
    EXPECT_EQ(posts, static_cast<size_t>(kEvents));

    const auto gens = generation_by_email();
    int gen1 = 0, gen2 = 0;
    for (const auto &[email, g] : gens) (g == "1" ? gen1 : gen2)++;
    EXPECT_GT(gen1, 0) << "some records were sent by the old build";
    EXPECT_GT(gen2, 0) << "the new build's behaviour is visible after the swap";
    ASSERT_GE(first_after_reload.load(), 0);
    for (int i = first_after_reload; i < kEvents; ++i)
        EXPECT_EQ(gens.at("p" + std::to_string(i) + "@example.com"), "2") << "event " << i << " was accepted after the reload";
    const auto status = json::parse(http_request("GET", base_ + "/v1/status").body);
    EXPECT_EQ(status["plugins"]["versioned"]["version"], "0.0.2");
    EXPECT_EQ(status["reload"]["generation"], 2);
}

TEST_F(HotReload, BrokenNewBuildIsRefusedAndTheOldOneKeepsServing) {
    start_engine();
    install("id_mismatch");  // claims to be "someone_else"
    const auto r = engine_->reload();
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.message.find("does not match its file name 'versioned.so'"), std::string::npos) << r.message;

    // Through the admin endpoint: token required, POST only, the reason in the answer.
    EXPECT_EQ(http_request("POST", base_ + "/v1/admin/reload").status, 401);
    EXPECT_EQ(http_request("GET", base_ + "/v1/admin/reload", "", {"Authorization: Bearer reload-admin-token"}).status, 405);
    const auto admin = http_request("POST", base_ + "/v1/admin/reload", "", {"Authorization: Bearer reload-admin-token"});
    EXPECT_EQ(admin.status, 422);
    EXPECT_NE(admin.body.find("does not match its file name"), std::string::npos) << admin.body;

    const auto status = json::parse(http_request("GET", base_ + "/v1/status").body);
    EXPECT_NE(status["reload"]["last_error"].get<std::string>().find("does not match"), std::string::npos);
    EXPECT_EQ(status["plugins"]["versioned"]["version"], "0.0.1");

    ASSERT_EQ(http_request("POST", base_ + "/v1/events", event(1)).status, 202);
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 1; }));
    EXPECT_EQ(generation_by_email().at("p1@example.com"), "1");

    // A build that loads and describes itself but fails the conformance checks is refused too.
    install("versioned_nonconforming");
    const auto r3 = engine_->reload();
    EXPECT_FALSE(r3.ok);
    EXPECT_NE(r3.message.find("does not conform with connection 'crm': contacts: transform(OUTBOUND) of a sample built from the schema: "), std::string::npos) << r3.message;
    install("versioned_v1");

    // A broken rules edit is refused the same way; the running rules stay.
    dir_.write("rules/sync.yaml", "rules:\n  - name: broken\n    on: { entity: contact, event: created }\n    do: { action: nope }\n");
    const auto r2 = engine_->reload();
    EXPECT_FALSE(r2.ok);
    EXPECT_NE(r2.message.find("sync.yaml:4:"), std::string::npos) << r2.message;
    ASSERT_EQ(http_request("POST", base_ + "/v1/events", event(2)).status, 202);
    EXPECT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 2; }));
}

TEST_F(HotReload, EditingTheRulesDirectoryReloadsThem) {
    start_engine();
    // An editor's save: write a new file, rename it over the old one.
    dir_.write("rules/.sync.yaml.new",
               "mappings:\n"
               "  m: { fields: [ { from: email, to: email }, { to: source, value: watched } ] }\n"
               "rules:\n"
               "  - name: contact-to-crm\n"
               "    on: { entity: contact, event: created }\n"
               "    do: { action: create, target: crm, object: contacts, mapping: m }\n");
    fs::rename(dir_.file("rules/.sync.yaml.new"), dir_.file("rules/sync.yaml"));
    ASSERT_TRUE(wait_until([&] { return engine_->reload_status()["generation"] == 2; })) << engine_->reload_status().dump();
    ASSERT_EQ(http_request("POST", base_ + "/v1/events", event(3)).status, 202);
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 1; }));
    EXPECT_EQ(crm_->records("contacts").at(0).properties.at("source"), "watched");
}

// A broken edit is refused whichever way the reload comes (the directory watcher, the
// admin endpoint; SIGHUP below), and the rules that were running keep running. A schema
// valijson cannot use used to abort() the process from the watcher's thread.
TEST_F(HotReload, ABrokenEditIsRefusedByTheWatcherAndTheAdminEndpointAndTheOldRulesRun) {
    start_engine();
    const auto last_error = [&] { return engine_->reload_status()["last_error"].get<std::string>(); };
    dir_.write("rules/schemas/.contact.json.new", R"({"type": "object", "properties": {"email": {"type": "strang"}}})");
    fs::rename(dir_.file("rules/schemas/.contact.json.new"), dir_.file("rules/schemas/contact.json"));
    ASSERT_TRUE(wait_until([&] { return last_error().find("contact.json:1:") != std::string::npos; })) << last_error();
    EXPECT_NE(last_error().find("'type' \"strang\" is not a type"), std::string::npos) << last_error();
    EXPECT_EQ(engine_->reload_status()["generation"], 1);
    fs::copy_file(RECSYNC_SOURCE_DIR "/rules/schemas/contact.json", dir_.file("rules/schemas/contact.json"), fs::copy_options::overwrite_existing);
    ASSERT_TRUE(wait_until([&] { return last_error().empty(); })) << last_error();

    // A key written twice in a rule (the second `action` would have been ignored), saved
    // the way an editor does: the watcher refuses it...
    dir_.write("rules/.sync.yaml.new", "mappings:\n  m: { fields: [ { from: email, to: email } ] }\n"
                                       "rules:\n"
                                       "  - name: contact-to-crm\n"
                                       "    on: { entity: contact, event: created }\n"
                                       "    do: { action: create, target: crm, object: contacts, mapping: m, action: skip }\n");
    const std::string rules = dir_.file("rules/sync.yaml");
    fs::rename(dir_.file("rules/.sync.yaml.new"), rules);
    const std::string duplicate = rules + ":6:70: key 'action' is already set at " + rules + ":6:11";
    ASSERT_TRUE(wait_until([&] { return last_error().find(duplicate) != std::string::npos; })) << last_error();
    // ...and so does the admin endpoint, with the reason in its answer.
    const auto admin = http_request("POST", base_ + "/v1/admin/reload", "", {"Authorization: Bearer reload-admin-token"});
    EXPECT_EQ(admin.status, 422);
    EXPECT_NE(admin.body.find(duplicate), std::string::npos) << admin.body;

    const int generation = engine_->reload_status()["generation"];
    ASSERT_EQ(http_request("POST", base_ + "/v1/events", event(11)).status, 202);
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 1; }));
    EXPECT_EQ(crm_->records("contacts").at(0).properties.count("firstname"), 1u) << "sent by the rules loaded at start";
    EXPECT_EQ(engine_->reload_status()["generation"], generation);
}

// Connections come and go with a reload. An added one gets a lane at once, with whatever was
// queued for it under an earlier config; a removed one sends nothing more and keeps its
// tasks (in the database too) until it is configured again.
TEST_F(HotReload, ConnectionsAreAddedAndRemovedByAReload) {
    mock::MockCrm second{mock::MockCrmOptions{}};
    second.start();
    second.fail_ratio(1.0, 503);  // holds crm2's tasks in its lane, retrying
    // Retried for as long as the test needs: a dead letter would leave the lane empty.
    auto with_crm2 = [&](bool on) { write_crm2(on, second.base_url(), ", retry: { max_attempts: 1000, base_delay_ms: 20, max_delay_ms: 100 }"); };
    auto status = [&] { return json::parse(http_request("GET", base_ + "/v1/status").body)["connections"]; };
    start_engine();

    with_crm2(true);
    auto r = engine_->reload();
    ASSERT_TRUE(r.ok) << r.message;
    ASSERT_EQ(http_request("POST", base_ + "/v1/events", event(1)).status, 202);
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 1 && second.counters().injected_failures >= 2; }));

    // Removed while its task is still being retried: nothing more goes out to it.
    with_crm2(false);
    r = engine_->reload();
    ASSERT_TRUE(r.ok) << r.message;
    ASSERT_TRUE(wait_until([&] { return status()["crm2"].value("removed", false) && status()["crm2"]["in_flight"] == 0; })) << status().dump();
    const auto tried = second.counters().requests;
    ASSERT_EQ(http_request("POST", base_ + "/v1/events", event(2)).status, 202);
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 2; }));
    second.fail_ratio(0);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // several retry delays: none may be sent
    EXPECT_EQ(second.counters().requests, tried) << "a removed connection sent a call";
    EXPECT_EQ(status()["crm2"]["queued"], 1) << status().dump();

    // Configured again: its task goes on.
    with_crm2(true);
    r = engine_->reload();
    ASSERT_TRUE(r.ok) << r.message;
    ASSERT_TRUE(wait_until([&] { return second.record_count("contacts") == 1; }));
    EXPECT_FALSE(status()["crm2"].value("removed", false));

    // Across a restart without it, a task queued for it waits in the database; a reload
    // that adds it back sends it, once.
    second.fail_ratio(1.0, 503);
    const auto failed = second.counters().injected_failures;
    ASSERT_EQ(http_request("POST", base_ + "/v1/events", event(3)).status, 202);
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 3 && second.counters().injected_failures >= failed + 2; }));
    engine_->stop(std::chrono::seconds(2));
    engine_.reset();
    with_crm2(false);
    start_engine();
    EXPECT_FALSE(status().contains("crm2"));
    second.fail_ratio(0);
    with_crm2(true);
    r = engine_->reload();
    ASSERT_TRUE(r.ok) << r.message;
    ASSERT_TRUE(wait_until([&] { return second.record_count("contacts") == 2; })) << status().dump();
    ASSERT_EQ(http_request("POST", base_ + "/v1/events", event(4)).status, 202);
    ASSERT_TRUE(wait_until([&] { return second.record_count("contacts") == 3 && crm_->record_count("contacts") == 4; }));
    EXPECT_TRUE(wait_until([&] { return status()["crm2"]["queued"] == 0; }));
    EXPECT_EQ(second.counters().duplicates, 0u);
    EXPECT_EQ(crm_->counters().duplicates, 0u);
    second.stop();
}

// Added while events flow: the new connection's tasks reach it once each, whether they
// came from the database when its lane was made or from ingest after.
TEST_F(HotReload, AConnectionAddedUnderLoadGetsEachTaskOnce) {
    mock::MockCrm second{mock::MockCrmOptions{}};
    second.start();
    start_engine();
    std::atomic<bool> stop{false};
    std::atomic<int> posted{0}, failures{0};
    std::thread poster([&] {
        for (int i = 0; !stop && i < 20000; i += 5) {
            std::string body;
            for (int j = i; j < i + 5; ++j) body += event(j) + "\n";
            if (http_request("POST", base_ + "/v1/events", body, {"Content-Type: application/x-ndjson"}).status != 202) ++failures;
            posted = i + 5;
        }
    });
    ASSERT_TRUE(wait_until([&] { return posted >= 200; }));
    write_crm2(true, second.base_url());
    const auto r = engine_->reload();
    const int at_reload = posted;
    ASSERT_TRUE(wait_until([&] { return posted >= at_reload + 500; }));
    stop = true;
    poster.join();
    ASSERT_TRUE(r.ok) << r.message;
    EXPECT_EQ(failures, 0);
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == static_cast<size_t>(posted.load()); }));
    // crm2 gets the events accepted under the new rules: at least those posted after the
    // reload returned (but for the one batch the poster had under way then), none twice.
    ASSERT_TRUE(wait_until([&] {
        return json::parse(http_request("GET", base_ + "/v1/status").body)["connections"]["crm2"]["queued"] == 0;
    }));
    EXPECT_GE(second.record_count("contacts"), static_cast<size_t>(posted.load() - at_reload - 5));
    EXPECT_EQ(second.counters().duplicates, 0u);
    EXPECT_EQ(second.counters().requests, second.record_count("contacts")) << "every call to crm2 made one record";
    second.stop();
}

// A dead letter of a connection that is not configured stays one: replayed, its task would
// wait unseen until a restart. Once the connection is back, it replays.
TEST_F(HotReload, DeadLettersOfARemovedConnectionWaitForIt) {
    mock::MockCrm second{mock::MockCrmOptions{}};
    second.start();
    second.fail_next(1, 400);
    auto with_crm2 = [&](bool on) {
        write_crm2(on, second.base_url());
        const auto r = engine_->reload();
        ASSERT_TRUE(r.ok) << r.message;
    };
    const std::vector<std::string> admin = {"Authorization: Bearer reload-admin-token"};
    start_engine();
    with_crm2(true);
    ASSERT_EQ(http_request("POST", base_ + "/v1/events", event(1)).status, 202);
    ASSERT_TRUE(wait_until([&] { return engine_->state().dead_letters().count() == 1; }));
    const int64_t id = engine_->state().dead_letters().list(1).at(0).id;

    with_crm2(false);
    auto one = http_request("POST", base_ + "/v1/admin/dlq/" + std::to_string(id) + "/replay", "", admin);
    EXPECT_EQ(one.status, 409);
    EXPECT_NE(one.body.find("connection 'crm2', which is not configured"), std::string::npos) << one.body;
    auto all = http_request("POST", base_ + "/v1/admin/dlq/replay", "", admin);
    ASSERT_EQ(all.status, 200);
    EXPECT_EQ(json::parse(all.body)["held_not_configured"], 1) << all.body;
    EXPECT_EQ(json::parse(all.body)["replayed"], 0) << all.body;
    EXPECT_EQ(engine_->state().dead_letters().count(), 1);

    with_crm2(true);
    one = http_request("POST", base_ + "/v1/admin/dlq/" + std::to_string(id) + "/replay", "", admin);
    EXPECT_EQ(one.status, 200) << one.body;
    EXPECT_TRUE(wait_until([&] { return second.record_count("contacts") == 1; }));
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
    second.stop();
}

// `recsync run -c cfg` as a real process, listening on `port`; killed if a test ends early.
class RunningRecsync {
public:
    RunningRecsync(const std::string &cfg, uint16_t port)
        : base("http://127.0.0.1:" + std::to_string(port)), process_({RECSYNC_BINARY_DIR "/recsync", "run", "-c", cfg}) {}
    bool started() const { return process_.started(); }
    bool alive() const { return process_.alive(); }
    void sighup() const { process_.signal(SIGHUP); }
    // A value of GET /v1/status by JSON pointer, or "" while it is not up (or not there).
    std::string status(const char *pointer) const {
        const auto r = http_request("GET", base + "/v1/status");
        if (r.status != 200) return "";
        const json v = json::parse(r.body).value(json::json_pointer(pointer), json(""));
        return v.is_string() ? v.get<std::string>() : v.dump();
    }
    // SIGTERM; true if it exited with status 0.
    bool stop() { return process_.stop(); }
    const std::string base;

private:
    testkit::ChildProcess process_;
};

// Settings only a restart can apply are refused by a reload, naming the setting, and
// nothing else of that reload is applied; restored, the next reload goes through.
TEST_F(HotReload, ARestartOnlySettingIsRefusedByAReloadNamingIt) {
    start_engine();
    std::ifstream in(config());
    const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const auto &[from, to, name] : {std::tuple{"synchronous: normal }", "synchronous: normal, event_id_retention: 1d }", "state.event_id_retention"},
                                          {"log_level: warn\n", "log_level: warn\ndelivery: { tasks_in_memory: 5000 }\n", "delivery.tasks_in_memory"},
                                          {"synchronous: normal }", "synchronous: normal, cache_mib: 8 }", "state.cache_mib"},
                                          {"synchronous: normal }", "synchronous: full }", "state.synchronous"}}) {
        std::string text = good;
        text.replace(text.find(from), std::string(from).size(), to);
        dir_.write("recsync.yaml", text);
        const auto r = engine_->reload();
        EXPECT_FALSE(r.ok) << name;
        EXPECT_NE(r.message.find(std::string(name) + " changed: restart recsync"), std::string::npos) << r.message;
    }
    dir_.write("recsync.yaml", good);
    EXPECT_TRUE(engine_->reload().ok);
}

TEST_F(HotReload, SighupReloadsARunningProcess) {
    const uint16_t port = testkit::free_port();
    RunningRecsync recsync(config("127.0.0.1:" + std::to_string(port)), port);
    ASSERT_TRUE(recsync.started());
    auto version = [&] { return recsync.status("/plugins/versioned/version"); };
    EXPECT_TRUE(wait_until([&] { return version() == "0.0.1"; }));
    install("versioned_v2");
    recsync.sighup();
    EXPECT_TRUE(wait_until([&] { return version() == "0.0.2"; }));
    ASSERT_EQ(http_request("POST", recsync.base + "/v1/events", event(7)).status, 202);
    EXPECT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 1; }));
    EXPECT_EQ(generation_by_email().at("p7@example.com"), "2");
    EXPECT_TRUE(recsync.stop()) << "recsync exits 0 on SIGTERM";
}

TEST_F(HotReload, SighupWithABrokenRulesEditKeepsTheProcessAndItsRules) {
    const uint16_t port = testkit::free_port();
    const auto cfg = config("127.0.0.1:" + std::to_string(port));
    std::ofstream(cfg, std::ios::app) << "watch_rules: false\n";  // only SIGHUP reloads
    RunningRecsync recsync(cfg, port);
    ASSERT_TRUE(recsync.started());
    ASSERT_TRUE(wait_until([&] { return recsync.status("/reload/generation") == "1"; }));
    const std::string rules = dir_.write("rules/sync.yaml", "rules:\n  - name: r\n    on: { entity: contact, event: created }\n    when: { field: email, gt: true }\n"
                                                            "    do: { action: skip }\n");
    recsync.sighup();
    EXPECT_TRUE(wait_until([&] { return recsync.status("/reload/last_error").find(rules + ":4:31: gt: expected a number or a string") != std::string::npos; }))
        << recsync.status("/reload/last_error");
    EXPECT_EQ(recsync.status("/reload/generation"), "1");
    ASSERT_EQ(http_request("POST", recsync.base + "/v1/events", event(12)).status, 202);
    EXPECT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 1; }));  // the old rule, not the skip
    EXPECT_TRUE(recsync.alive());
    EXPECT_TRUE(recsync.stop());
}

}  // namespace
