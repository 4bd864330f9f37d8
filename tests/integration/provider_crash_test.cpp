// The crash test with each provider beside HubSpot's (crash_test.cpp): recsync (a real
// child process) killed -9 five times while 3,120 events for 600 records flow to the
// provider's mock, which loses answers after making the change (so creates are retried
// in doubt: as an upsert on the External ID for Salesforce, by reference for the REST
// provider) and whose key is unique (a second create of a record would be refused and
// show as a dead letter). The sender is at least once: a batch without its 202 is sent
// again, and every fifth record's create is sent twice. Every record ends once in the
// system, in its final state; nothing is dead-lettered.
#include "rest_mock.hpp"
#include "salesforce_mock.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <thread>

using namespace recsync;
using nlohmann::json;
using testkit::http_request;
using testkit::wait_until;

namespace {

// What the run needs from one provider and its mock.
struct ProviderUnderTest {
    std::string plugin;      // the .so to copy
    std::string object;      // the rules' target object
    std::string key_field;   // the payload field our key goes to
    std::string name_field;  // the payload field the versions go to
    std::string connection;  // the connection's YAML after "  crm:\n" (indented four spaces)
    std::function<std::vector<std::pair<std::string, std::string>>()> records;  // (key, name) of each live record
    std::function<uint64_t()> created;
    std::function<uint64_t()> lost_answers;
    std::function<void(size_t batch)> disturb;  // called before each batch is sent
};

void run_crash_test(const ProviderUnderTest &p) {
    testkit::TempDir dir;
    testkit::copy_plugin(RECSYNC_PLUGIN_DIR, p.plugin, dir.file("plugins"));
    dir.write("rules/schemas/customer.json", R"({"type":"object","required":["ref"],"properties":{"ref":{"type":"string","minLength":1},"name":{"type":"string"}}})");
    dir.write("rules/crm.yaml", "mappings:\n  to-crm: { fields: [ { from: ref, to: " + p.key_field + " }, { from: name, to: " + p.name_field + " } ] }\n"
                                "rules:\n"
                                "  - { name: new, on: { entity: customer, event: created }, do: { action: create, target: crm, object: " + p.object + ", mapping: to-crm } }\n"
                                "  - { name: changed, on: { entity: customer, event: updated }, do: { action: update, target: crm, object: " + p.object + ", mapping: to-crm } }\n");
    const uint16_t port = testkit::free_port();
    const auto cfg = dir.write("recsync.yaml", "plugins_dir: plugins\nrules_dir: rules\nwatch_rules: false\n"
                                               "state: { path: state/recsync.db, synchronous: full }\n"
                                               "server: { listen: '127.0.0.1:" + std::to_string(port) + "' }\nlog_level: error\nconnections:\n"
                                               "  crm:\n" + p.connection +
                                               "    rate_limit: { per_second: 100000, burst: 1000 }\n    max_in_flight: 16\n    timeout_ms: 2000\n"
                                               "    retry: { max_attempts: 1000, base_delay_ms: 5, max_delay_ms: 100 }\n");
    const std::string bin = RECSYNC_BINARY_DIR "/recsync";
    const std::string base = "http://127.0.0.1:" + std::to_string(port);
    const std::string log_path = dir.file("recsync.log");
    std::atomic<int> pid{0};
    const auto spawn = [&] {
        pid = testkit::spawn_recsync_run(bin, cfg, log_path, base);
        return pid != 0;
    };
    ASSERT_TRUE(spawn()) << "recsync did not start";

    // 600 records, each created then updated four times, in order, with versions; every
    // fifth create repeated (a sender that did not see its 202).
    constexpr int kRecords = 600, kVersions = 5, kBatch = 40;
    std::vector<std::string> events;
    for (int v = 0; v < kVersions; ++v)
        for (int r = 0; r < kRecords; ++r) {
            const std::string key = "k" + std::to_string(r);
            const json e = {{"id", "e-" + std::to_string(r) + "-" + std::to_string(v)}, {"version", v}, {"entity", "customer"}, {"event", v == 0 ? "created" : "updated"},
                            {"key", key}, {"data", {{"ref", key}, {"name", "v" + std::to_string(v)}}}};
            events.push_back(e.dump());
            if (v == 0 && r % 5 == 0) events.push_back(e.dump());
        }
    std::atomic<size_t> sent{0};
    std::thread sender([&] {
        for (size_t i = 0; i < events.size(); i += kBatch) {
            p.disturb(i / kBatch);
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
        wait_until([&] { return sent.load() >= std::uniform_int_distribution<size_t>(lo, hi)(rng); }, std::chrono::seconds(60));
        kill(pid, SIGKILL);
        int st = 0;
        waitpid(pid, &st, 0);
        ASSERT_TRUE(WIFSIGNALED(st)) << "kill " << kill_no;
        ASSERT_TRUE(spawn()) << "recsync did not restart after kill " << kill_no;
    }
    sender.join();

    const std::string last = "v" + std::to_string(kVersions - 1);
    const auto final_state = [&] {
        const auto recs = p.records();
        if (recs.size() != kRecords) return false;
        for (const auto &[key, name] : recs)
            if (name != last) return false;
        return true;
    };
    EXPECT_TRUE(wait_until(final_state, std::chrono::seconds(120))) << p.records().size() << " records";
    std::map<std::string, int> per_key;
    for (const auto &[key, name] : p.records()) ++per_key[key];
    EXPECT_EQ(per_key.size(), static_cast<size_t>(kRecords));
    for (const auto &[key, n] : per_key) EXPECT_EQ(n, 1) << key << " is there " << n << " times";
    EXPECT_EQ(p.created(), static_cast<uint64_t>(kRecords)) << "a record was created twice";
    EXPECT_TRUE(wait_until([&] { return json::parse(http_request("GET", base + "/v1/status").body)["connections"]["crm"]["queued"] == 0; }));
    const auto status = json::parse(http_request("GET", base + "/v1/status").body);
    EXPECT_EQ(status["dead_letters"], 0) << status.dump();
    EXPECT_GT(p.lost_answers(), 0u) << "no answer was lost: the test did not test retried creates";
    std::cout << p.plugin << ": lost answers " << p.lost_answers() << " for " << events.size() << " events\n";
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
}

TEST(ProviderCrash, SalesforceKilledFiveTimesWithLostAnswersKeepsEveryRecordOnceInItsFinalState) {
    setenv("RECSYNC_SF_CLIENT_ID", "mock-consumer-key", 1);
    setenv("RECSYNC_SF_CLIENT_SECRET", "mock-consumer-secret", 1);
    mock::SalesforceMockOptions mo;
    mo.threads = 4;
    mo.daily_api_limit = 0;
    mo.log_requests = false;
    mock::SalesforceMock sf(mo);
    sf.start();
    sf.lose_answer_ratio(0.04);
    run_crash_test({"salesforce", "Contact", "Recsync_Key__c", "LastName",
                    "    provider: salesforce\n    base_url: '" + sf.base_url() + "'\n"
                    "    credentials: { client_id_env: RECSYNC_SF_CLIENT_ID, client_secret_env: RECSYNC_SF_CLIENT_SECRET }\n"
                    "    settings: { objects: { Contact: { external_id_field: Recsync_Key__c } } }\n",
                    [&] {
                        std::vector<std::pair<std::string, std::string>> out;
                        for (const auto &r : sf.records("Contact")) out.emplace_back(r.fields.value("Recsync_Key__c", ""), r.fields.value("LastName", ""));
                        return out;
                    },
                    [&] { return sf.counters().created; }, [&] { return sf.counters().lost_answers; }, [](size_t) {}});
    sf.stop();
}

TEST(ProviderCrash, RestKilledFiveTimesWithLostAnswersKeepsEveryRecordOnceInItsFinalState) {
    setenv("RECSYNC_BANK_TOKEN", "bank-crash-token", 1);
    mock::RestMockOptions mo;
    mo.threads = 4;
    mo.auth = mock::RestAuth::Bearer;
    mo.token = "bank-crash-token";
    mock::RestMock bank(mo);
    bank.start();
    bank.fail_ratio(0.03);
    run_crash_test({"rest", "customers", "external_ref", "name",
                    "    provider: rest\n    base_url: '" + bank.base_url() + "'\n    credentials: { token_env: RECSYNC_BANK_TOKEN }\n"
                    "    settings:\n      auth: { kind: bearer }\n      error_message: /error/message\n"
                    "      objects:\n        customers:\n          key_field: external_ref\n          id: /data/id\n          body: { wrap: data }\n"
                    "          create: { path: /v1/customers, status: { 409: exists }, exists_id: /error/existing_id }\n"
                    "          upsert: { method: PUT, path: \"/v1/customers/by-ref/{field:external_ref}\" }\n"
                    "          update: { method: PATCH, path: \"/v1/customers/{external_id}\" }\n",
                    [&] {
                        std::vector<std::pair<std::string, std::string>> out;
                        for (const auto &r : bank.records("customers")) out.emplace_back(r.fields.value("external_ref", ""), r.fields.value("name", ""));
                        return out;
                    },
                    [&] { return bank.counters().created; }, [&] { return bank.counters().lost_answers; },
                    [&](size_t batch) {
                        if (batch % 4 == 0) bank.lose_answer_next(2);  // a change made, its answer lost, now and then
                    }});
    bank.stop();
}

}  // namespace
