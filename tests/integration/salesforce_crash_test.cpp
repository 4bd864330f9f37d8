// The crash test with the salesforce provider: recsync (a real child process) killed -9
// five times while 3,000 events for 600 contacts flow to the Salesforce mock, which loses
// one answer in twenty-five after making the change (so creates are retried in doubt, as
// upserts on the External ID) and whose External ID is unique (so a second create of a
// record would be refused, and show as a dead letter). The sender is at least once: a
// batch without its 202 is sent again, and every fifth record's create is sent twice.
// Every record ends once in Salesforce, in its final state; nothing is dead-lettered.
#include "salesforce_mock.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

using namespace recsync;
using nlohmann::json;
using testkit::http_request;
using testkit::wait_until;

namespace {

TEST(SalesforceCrash, KilledFiveTimesWithLostAnswersEveryContactEndsOnceInItsFinalState) {
    testkit::TempDir dir;
    setenv("RECSYNC_SF_CLIENT_ID", "mock-consumer-key", 1);
    setenv("RECSYNC_SF_CLIENT_SECRET", "mock-consumer-secret", 1);
    mock::SalesforceMockOptions mo;
    mo.threads = 4;
    mo.daily_api_limit = 0;
    mo.log_requests = false;
    mock::SalesforceMock sf(mo);
    sf.start();
    sf.lose_answer_ratio(0.04);
    testkit::copy_plugin(RECSYNC_PLUGIN_DIR, "salesforce", dir.file("plugins"));
    std::filesystem::create_directories(dir.file("rules/schemas"));
    std::filesystem::copy_file(RECSYNC_SOURCE_DIR "/rules/schemas/contact.json", dir.file("rules/schemas/contact.json"));
    dir.write("rules/sf.yaml",
              "mappings:\n  to-sf: { fields: [ { from: email, to: Email }, { from: last_name, to: LastName } ] }\n"
              "rules:\n"
              "  - { name: new, on: { entity: contact, event: created }, do: { action: create, target: sf, object: Contact, mapping: to-sf } }\n"
              "  - { name: changed, on: { entity: contact, event: updated }, do: { action: update, target: sf, object: Contact, mapping: to-sf } }\n");
    const uint16_t port = testkit::free_port();
    const auto cfg = dir.write("recsync.yaml", "plugins_dir: plugins\nrules_dir: rules\nwatch_rules: false\n"
                                               "state: { path: state/recsync.db, synchronous: full }\n"
                                               "server: { listen: '127.0.0.1:" + std::to_string(port) + "' }\nlog_level: error\nconnections:\n"
                                               "  sf:\n    provider: salesforce\n    base_url: '" + sf.base_url() + "'\n"
                                               "    credentials: { client_id_env: RECSYNC_SF_CLIENT_ID, client_secret_env: RECSYNC_SF_CLIENT_SECRET }\n"
                                               "    rate_limit: { per_second: 100000, burst: 1000 }\n    max_in_flight: 16\n    timeout_ms: 2000\n"
                                               "    retry: { max_attempts: 1000, base_delay_ms: 5, max_delay_ms: 100 }\n"
                                               "    settings: { objects: { Contact: { external_id_field: Recsync_Key__c } } }\n");
    const std::string bin = RECSYNC_BINARY_DIR "/recsync";
    const std::string base = "http://127.0.0.1:" + std::to_string(port);
    const std::string log_path = dir.file("recsync.log");
    std::atomic<int> pid{0};
    const auto spawn = [&] {
        pid = testkit::spawn_recsync_run(bin, cfg, log_path, base);
        return pid != 0;
    };
    ASSERT_TRUE(spawn()) << "recsync did not start";

    // 600 contacts, each created then updated four times, in order, with versions; every
    // fifth create repeated (a sender that did not see its 202).
    constexpr int kRecords = 600, kVersions = 5, kBatch = 40;
    std::vector<std::string> events;
    for (int v = 0; v < kVersions; ++v)
        for (int r = 0; r < kRecords; ++r) {
            const json e = {{"id", "e-" + std::to_string(r) + "-" + std::to_string(v)}, {"version", v}, {"entity", "contact"}, {"event", v == 0 ? "created" : "updated"},
                            {"key", "k" + std::to_string(r)}, {"data", {{"email", "r" + std::to_string(r) + "@example.com"}, {"last_name", "v" + std::to_string(v)}}}};
            events.push_back(e.dump());
            if (v == 0 && r % 5 == 0) events.push_back(e.dump());
        }
    std::atomic<size_t> sent{0};
    std::thread sender([&] {
        for (size_t i = 0; i < events.size(); i += kBatch) {
            std::string body;
            for (size_t j = i; j < std::min(events.size(), i + kBatch); ++j) body += events[j] + "\n";
            while (http_request("POST", base + "/v1/events", body, {"Content-Type: application/x-ndjson"}).status != 202)
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            sent = i + kBatch;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));  // spread the flow over the kills
        }
    });
    std::mt19937 rng(4242);
    for (int kill_no = 0; kill_no < 5; ++kill_no) {
        const size_t lo = kill_no * events.size() / 5, hi = (kill_no + 1) * events.size() / 5 - kBatch;
        const size_t at = std::uniform_int_distribution<size_t>(lo, hi)(rng);
        wait_until([&] { return sent.load() >= at; }, std::chrono::seconds(60));
        kill(pid, SIGKILL);
        int st = 0;
        waitpid(pid, &st, 0);
        ASSERT_TRUE(WIFSIGNALED(st)) << "kill " << kill_no;
        ASSERT_TRUE(spawn()) << "recsync did not restart after kill " << kill_no;
    }
    sender.join();

    const auto final_state = [&] {
        const auto recs = sf.records("Contact");
        if (recs.size() != kRecords) return false;
        for (const auto &r : recs)
            if (r.fields.value("LastName", "") != "v" + std::to_string(kVersions - 1)) return false;
        return true;
    };
    EXPECT_TRUE(wait_until(final_state, std::chrono::seconds(120))) << sf.record_count("Contact") << " contacts";
    std::map<std::string, int> per_key;
    for (const auto &r : sf.records("Contact")) ++per_key[r.fields.value("Recsync_Key__c", "")];
    EXPECT_EQ(per_key.size(), static_cast<size_t>(kRecords));
    for (const auto &[key, n] : per_key) EXPECT_EQ(n, 1) << key << " is in Salesforce " << n << " times";
    EXPECT_EQ(sf.counters().created, static_cast<uint64_t>(kRecords)) << "a record was created twice";
    EXPECT_TRUE(wait_until([&] { return json::parse(http_request("GET", base + "/v1/status").body)["connections"]["sf"]["queued"] == 0; }));
    const auto status = json::parse(http_request("GET", base + "/v1/status").body);
    EXPECT_EQ(status["dead_letters"], 0) << status.dump();
    EXPECT_GT(sf.counters().lost_answers, 0u) << "no answer was lost: the test did not test retried creates";
    std::cout << "lost answers: " << sf.counters().lost_answers << ", tokens: " << sf.counters().tokens_issued << ", API requests: " << sf.counters().api_requests
              << " for " << events.size() << " events\n";
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    sf.stop();
}

}  // namespace
