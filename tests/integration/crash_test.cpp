// kill -9 at random moments while 5,000 events flow, restart, five times over: every
// record's final state reaches the mock CRM, none is created twice, the queue ends empty.
// recsync runs as a real child process; the mock CRM runs in this process.
// The records cover the three ways a create that may already have been made is re-sent:
// contacts upsert by their email, companies upsert by a unique property (key_properties),
// deals are searched for by a lookup property first (lookup_properties).
#include "mock_crm.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <iostream>
#include <random>
#include <set>
#include <thread>

using namespace recsync;
using nlohmann::json;
using testkit::http_request;
using testkit::wait_until;

extern char **environ;

namespace {


TEST(Crash, KillNineFiveTimesLosesNothingAndDuplicatesNothing) {
    testkit::TempDir dir;
    setenv("RECSYNC_CRASH_TOKEN", "crash-token", 1);
    mock::MockCrmOptions mo;
    mo.token = "crash-token";
    mo.threads = 4;
    mock::MockCrm crm(mo);
    crm.start();
    testkit::copy_plugin(RECSYNC_PLUGIN_DIR, "hubspot", dir.file("plugins"));
    // The shipped contact rules, and companies and deals beside them.
    std::filesystem::create_directories(dir.file("rules/schemas"));
    std::filesystem::copy_file(RECSYNC_SOURCE_DIR "/rules/contacts.yaml", dir.file("rules/contacts.yaml"));
    std::filesystem::copy_file(RECSYNC_SOURCE_DIR "/rules/schemas/contact.json", dir.file("rules/schemas/contact.json"));
    for (const char *entity : {"company", "deal"})
        dir.write(std::string("rules/schemas/") + entity + ".json",
                  R"({"type":"object","required":["ref"],"properties":{"ref":{"type":"string","minLength":1},"name":{"type":"string"}}})");
    dir.write("rules/accounts.yaml",
              "mappings:\n"
              "  company: { fields: [ { from: ref, to: acme_key, required: true }, { from: name, to: name } ] }\n"
              "  deal: { fields: [ { from: ref, to: recsync_key, required: true }, { from: name, to: dealname } ] }\n"
              "rules:\n"
              "  - { name: nc, on: { entity: company, event: created }, do: { action: create, target: hubspot-main, object: companies, mapping: company } }\n"
              "  - { name: uc, on: { entity: company, event: updated }, do: { action: update, target: hubspot-main, object: companies, mapping: company } }\n"
              "  - { name: nd, on: { entity: deal, event: created }, do: { action: create, target: hubspot-main, object: deals, mapping: deal } }\n"
              "  - { name: ud, on: { entity: deal, event: updated }, do: { action: update, target: hubspot-main, object: deals, mapping: deal } }\n");
    const uint16_t port = testkit::free_port();
    const auto cfg = dir.write("recsync.yaml", "plugins_dir: plugins\nrules_dir: rules\nwatch_rules: false\n"
                                               "state: { path: state/recsync.db, synchronous: full }\n"
                                               "server: { listen: '127.0.0.1:" + std::to_string(port) + "' }\nlog_level: error\n"
                                               "connections:\n  hubspot-main:\n    provider: hubspot\n    base_url: '" + crm.base_url() + "'\n"
                                               "    credentials: { token_env: RECSYNC_CRASH_TOKEN }\n    rate_limit: { per_second: 100000, burst: 1000 }\n"
                                               "    max_in_flight: 16\n    retry: { max_attempts: 1000, base_delay_ms: 5, max_delay_ms: 100 }\n"
                                               "    settings: { key_properties: { companies: acme_key }, lookup_properties: { deals: recsync_key } }\n");
    const std::string bin = RECSYNC_BINARY_DIR "/recsync";
    const std::string base = "http://127.0.0.1:" + std::to_string(port);
    std::atomic<pid_t> pid{0};
    auto spawn = [&] {
        const char *argv[] = {bin.c_str(), "run", "-c", cfg.c_str(), nullptr};
        pid_t p = 0;
        ASSERT_EQ(posix_spawn(&p, bin.c_str(), nullptr, nullptr, const_cast<char **>(argv), environ), 0);
        pid = p;
        ASSERT_TRUE(wait_until([&] { return http_request("GET", base + "/readyz").status == 200; })) << "recsync did not start";
    };
    spawn();

    // 1,000 records (400 contacts, 300 companies, 300 deals): each created, then updated
    // four times (the last update is its final state): 5,000 events in batches of 50, in
    // order. A batch that fails (recsync down, or killed before it answered) is sent
    // again, as any sender would.
    constexpr int kRecords = 1000, kVersions = 5, kBatch = 50;
    const auto kind_of = [](int r) { return r % 10 < 4 ? "contact" : r % 10 < 7 ? "company" : "deal"; };
    std::vector<std::string> events;
    for (int v = 0; v < kVersions; ++v)
        for (int r = 0; r < kRecords; ++r) {
            const std::string kind = kind_of(r), version = "v" + std::to_string(v);
            const json data = kind == "contact" ? json{{"email", "r" + std::to_string(r) + "@example.com"}, {"last_name", version}}
                                                : json{{"ref", "erp-" + std::to_string(r)}, {"name", version}};
            events.push_back(json{{"entity", kind}, {"event", v == 0 ? "created" : "updated"}, {"key", "k" + std::to_string(r)}, {"data", data}}.dump());
        }
    std::atomic<size_t> sent{0};
    std::thread sender([&] {
        for (size_t i = 0; i < events.size(); i += kBatch) {
            std::string body;
            for (size_t j = i; j < std::min(events.size(), i + kBatch); ++j) body += events[j] + "\n";
            while (http_request("POST", base + "/v1/events", body, {"Content-Type: application/x-ndjson"}).status != 202)
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            sent = i + kBatch;
        }
    });

    std::mt19937 rng(12345);
    for (int kill_no = 0; kill_no < 5; ++kill_no) {
        // A random moment: after a random share of the events has been accepted.
        const size_t at = std::uniform_int_distribution<size_t>(kill_no * 800, kill_no * 800 + 700)(rng);
        wait_until([&] { return sent.load() >= at; }, std::chrono::seconds(60));
        std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 30)(rng)));
        kill(pid, SIGKILL);
        int st = 0;
        waitpid(pid, &st, 0);
        ASSERT_TRUE(WIFSIGNALED(st)) << "kill " << kill_no;
        spawn();
    }
    sender.join();

    // Per object: how many records, the property holding our key, the final state's field.
    struct Expect {
        const char *object;
        size_t count;
        const char *key_property, *field;
    };
    const Expect expected[] = {{"contacts", 400, "email", "lastname"}, {"companies", 300, "acme_key", "name"}, {"0-3", 300, "recsync_key", "dealname"}};
    const std::string last = "v" + std::to_string(kVersions - 1);
    auto final_state_reached = [&] {
        for (const auto &e : expected) {
            const auto recs = crm.records(e.object);
            if (recs.size() != e.count) return false;
            for (const auto &rec : recs)
                if (rec.properties.count(e.field) == 0 || rec.properties.at(e.field) != last) return false;
        }
        return true;
    };
    EXPECT_TRUE(wait_until(final_state_reached, std::chrono::seconds(120)))
        << crm.record_count("contacts") << " contacts, " << crm.record_count("companies") << " companies, " << crm.record_count("0-3") << " deals";
    for (const auto &e : expected) {
        std::set<std::string> keys;
        for (const auto &rec : crm.records(e.object)) EXPECT_TRUE(keys.insert(rec.properties.at(e.key_property)).second) << e.object << " twice: " << rec.properties.at(e.key_property);
        EXPECT_EQ(keys.size(), e.count) << e.object;
    }
    const auto status = json::parse(http_request("GET", base + "/v1/status").body);
    EXPECT_TRUE(wait_until([&] { return json::parse(http_request("GET", base + "/v1/status").body)["connections"]["hubspot-main"]["queued"] == 0; }))
        << status.dump();
    EXPECT_EQ(status["dead_letters"], 0) << status.dump();
    // None created twice: one live record per key, and the CRM never held a second copy
    // (nothing is ever deleted here, so every creation is still a live record).
    EXPECT_EQ(crm.record_count(), static_cast<size_t>(kRecords));
    EXPECT_EQ(crm.counters().created, static_cast<uint64_t>(kRecords));
    // For the record: how much the kills disturbed (creates re-sent as an upsert or after a search).
    size_t upserts = 0, searches = 0;
    for (const auto &r : crm.requests()) {
        upserts += r.target.ends_with("/batch/upsert");
        searches += r.target.ends_with("/search");
    }
    std::cout << "creates re-sent as upserts: " << upserts << ", searches: " << searches << ", API requests: " << crm.counters().requests << " for "
              << events.size() << " events\n";
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    crm.stop();
}

}  // namespace
