// kill -9 at random moments while events flow, restart, and again: every record's final
// state reaches the mock CRM, none is created twice, the queue ends empty. Five kills
// against a healthy CRM; then twenty against a faulty one, with a sender that repeats
// itself (event ids, versions, deletes). recsync runs as a real child process; the mock
// CRM runs in this process.
// Last, polling: recsync killed mid-page while it pages 6,000 records out of the CRM.
// The records cover the three ways a create that may already have been made is re-sent:
// contacts upsert by their email, companies upsert by a unique property (key_properties),
// deals are searched for by a lookup property first (lookup_properties).
#include "mock_crm.hpp"
#include "support/system_a_service.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

using namespace recsync;
using nlohmann::json;
using testkit::http_request;
using testkit::wait_until;

extern char **environ;

namespace {

// dir/recsync.yaml for a `recsync run` child: plugins/ and rules/ beside it, the state
// synchronous full, listening on `port`; `connections`: the YAML under "connections:".
std::string write_config(const testkit::TempDir &dir, uint16_t port, const char *log_level, const std::string &connections) {
    return dir.write("recsync.yaml", "plugins_dir: plugins\nrules_dir: rules\nwatch_rules: false\n"
                                     "state: { path: state/recsync.db, synchronous: full }\n"
                                     "server: { listen: '127.0.0.1:" + std::to_string(port) + "' }\nlog_level: " + log_level +
                                         "\nconnections:\n" + connections);
}


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
    const auto cfg = write_config(dir, port, "error",
                                               "  hubspot-main:\n    provider: hubspot\n    base_url: '" + crm.base_url() + "'\n"
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


// An at-least-once sender against a CRM that fails, hangs, resets and loses answers, with
// recsync killed (SIGKILL) twenty times while the events flow: every change is applied
// once and in order whatever the sender repeats. 2,000 records (contacts upserted by
// email, companies by a unique property, deals found by search first), each created (v0),
// updated four times (v1..v4) and one in five deleted at the end (v5); every event has a
// unique `id` and its record's `version`. The stream repeats what a real sender repeats:
// one record in five has its `created` re-sent later (same event, same id; some after the
// record's delete: it must not come back), a few old updates are re-sent (same id), a few
// old versions arrive under a new id (stale: dropped by their version), a few records'
// last change arrives again under a new id (same version: the sync state finds the payload
// unchanged, or the record deleted, and sends nothing that matters), a batch whose
// answer did not arrive is sent again, and one in ten whose 202 did arrive is sent again
// too (as by a sender that lost the answer). At the end every live record holds its last
// version, every deleted one is gone, none was ever created twice, nothing is dead-lettered
// and the queue is empty.
TEST(Crash, AnAtLeastOnceSenderAgainstAFaultyCrmKilledTwentyTimesLeavesEveryRecordOnceInItsFinalState) {
    const auto started = std::chrono::steady_clock::now();
    testkit::TempDir dir;
    setenv("RECSYNC_CRASH_TOKEN", "crash-token", 1);
    mock::MockCrmOptions mo;
    mo.token = "crash-token";
    mo.threads = 4;
    mo.seed = 20240611;  // the fault rolls
    mock::MockCrm crm(mo);
    crm.start();
    // Faults on API calls: 10% 503 without Retry-After, 2% hang past the call's 1 s timeout,
    // 1% reset, 1% handled but their answer lost (a create made, its 201 never arrives).
    crm.fail_ratio(0.10, 503, -1);
    crm.hang_ratio(0.02, std::chrono::milliseconds(1500));
    crm.reset_ratio(0.01);
    crm.lose_answer_ratio(0.01);

    testkit::copy_plugin(RECSYNC_PLUGIN_DIR, "hubspot", dir.file("plugins"));
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
              "  - { name: xc, on: { entity: company, event: deleted }, do: { action: delete, target: hubspot-main, object: companies } }\n"
              "  - { name: nd, on: { entity: deal, event: created }, do: { action: create, target: hubspot-main, object: deals, mapping: deal } }\n"
              "  - { name: ud, on: { entity: deal, event: updated }, do: { action: update, target: hubspot-main, object: deals, mapping: deal } }\n"
              "  - { name: xd, on: { entity: deal, event: deleted }, do: { action: delete, target: hubspot-main, object: deals } }\n");
    const uint16_t port = testkit::free_port();
    const auto cfg = write_config(dir, port, "warn",
                                               "  hubspot-main:\n    provider: hubspot\n    base_url: '" + crm.base_url() + "'\n"
                                               "    credentials: { token_env: RECSYNC_CRASH_TOKEN }\n    rate_limit: { per_second: 100000, burst: 1000 }\n"
                                               "    max_in_flight: 32\n    connect_timeout_ms: 1000\n    timeout_ms: 1000\n"
                                               "    retry: { max_attempts: 1000, base_delay_ms: 5, max_delay_ms: 100 }\n"
                                               "    settings: { key_properties: { companies: acme_key }, lookup_properties: { deals: recsync_key } }\n");
    const std::string bin = RECSYNC_BINARY_DIR "/recsync";
    const std::string base = "http://127.0.0.1:" + std::to_string(port);
    // Every run's stdout and stderr, one after the other, in the temp dir (kept on failure).
    const std::string log_path = dir.file("recsync.log");
    std::atomic<pid_t> pid{0};
    int runs = 0;
    auto spawn = [&]() -> bool {
        std::ofstream(log_path, std::ios::app) << "=== run " << ++runs << " ===\n";
        pid = testkit::spawn_recsync_run(bin, cfg, log_path, base);
        return pid != 0;
    };
    ASSERT_TRUE(spawn()) << "recsync did not start";

    // The records and the stream. A slot orders the stream: v0 of every record, then v1 of
    // every record, ..., then the deletes; repeats are placed at random later slots.
    constexpr int kRecords = 2000, kUpdates = 4, kBatch = 50, kKills = 20;
    const auto kind_of = [](int r) { return r % 10 < 4 ? "contact" : r % 10 < 7 ? "company" : "deal"; };
    const auto key_value = [&](int r) { return std::string(kind_of(r)) == "contact" ? "r" + std::to_string(r) + "@example.com" : "erp-" + std::to_string(r); };
    const auto event = [&](int r, int version, const char *type, const std::string &id, const std::string &label) {
        const std::string kind = kind_of(r);
        json e{{"id", id}, {"entity", kind}, {"event", type}, {"key", "k" + std::to_string(r)}, {"version", version}};
        if (std::string(type) != "deleted")
            e["data"] = kind == "contact" ? json{{"email", key_value(r)}, {"last_name", label}} : json{{"ref", key_value(r)}, {"name", label}};
        return e.dump();
    };
    std::mt19937 rng(20240612);
    std::vector<bool> deleted(kRecords);
    std::vector<std::pair<double, std::string>> slots;
    size_t dup_created = 0, created_after_delete = 0, resent_updates = 0, stale_updates = 0, same_again = 0;
    const double end_slot = (kUpdates + 2.0) * kRecords;
    for (int r = 0; r < kRecords; ++r) {
        deleted[r] = rng() % 5 == 0;
        for (int v = 0; v <= kUpdates; ++v)
            slots.emplace_back(double(v) * kRecords + r,
                               event(r, v, v == 0 ? "created" : "updated", "e-" + std::to_string(r) + "-" + std::to_string(v), "v" + std::to_string(v)));
        if (deleted[r]) slots.emplace_back(double(kUpdates + 1) * kRecords + r, event(r, kUpdates + 1, "deleted", "e-" + std::to_string(r) + "-del", ""));
        const double last = (deleted[r] ? kUpdates + 1.0 : double(kUpdates)) * kRecords + r;
        const auto later = [&](double after) { return std::uniform_real_distribution<double>(after + 0.5, end_slot)(rng); };
        if (rng() % 5 == 0) {  // its `created` again, the very same event, after its v2 (for deleted records half after the delete)
            const double at = later(deleted[r] && rng() % 2 == 0 ? last : 2.0 * kRecords + r);
            slots.emplace_back(at, event(r, 0, "created", "e-" + std::to_string(r) + "-0", "v0"));
            ++dup_created;
            created_after_delete += deleted[r] && at > last;
        }
        if (rng() % 50 == 0) {  // an old update again (same id): a duplicate
            slots.emplace_back(later(last), event(r, 1, "updated", "e-" + std::to_string(r) + "-1", "v1"));
            ++resent_updates;
        }
        if (rng() % 50 == 0) {  // an old version under a new id: stale
            slots.emplace_back(later(last), event(r, 1, "updated", "s-" + std::to_string(r), "v1"));
            ++stale_updates;
        }
        if (rng() % 50 == 0) {  // its last change again under a new id (same version): accepted, and nothing to send
            slots.emplace_back(later(last), deleted[r] ? event(r, kUpdates + 1, "deleted", "n-" + std::to_string(r), "")
                                                       : event(r, kUpdates, "updated", "n-" + std::to_string(r), "v" + std::to_string(kUpdates)));
            ++same_again;
        }
    }
    std::stable_sort(slots.begin(), slots.end(), [](const auto &a, const auto &b) { return a.first < b.first; });
    std::vector<std::pair<std::string, size_t>> batches;  // NDJSON body, events in it
    for (size_t i = 0; i < slots.size(); i += kBatch) {
        std::string body;
        const size_t n = std::min(slots.size(), i + kBatch) - i;
        for (size_t j = i; j < i + n; ++j) body += slots[j].second + "\n";
        batches.emplace_back(std::move(body), n);
    }

    // The sender: at least once. Until a batch gets its 202 it is sent again; one in ten
    // batches that got their 202 is sent once more, and that answer must count every event
    // of it a duplicate.
    std::atomic<bool> stop{false};
    std::atomic<size_t> batches_done{0};
    uint64_t posts = 0, failed_posts = 0, resent_acknowledged = 0, first_duplicates = 0, first_stale = 0, duplicates = 0, stale = 0;
    std::thread sender([&] {
        std::mt19937 srng(4242);
        const auto post = [&](const std::string &body) -> json {
            for (;;) {
                ++posts;
                const auto rep = http_request("POST", base + "/v1/events", body, {"Content-Type: application/x-ndjson"});
                if (rep.status == 202) {
                    auto a = json::parse(rep.body);
                    duplicates += a.value("duplicates", 0);
                    stale += a.value("stale", 0);
                    return a;
                }
                ++failed_posts;
                if (stop) return json::object();
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            }
        };
        for (size_t b = 0; b < batches.size() && !stop; ++b) {
            const auto &[body, n] = batches[b];
            const json first = post(body);
            if (stop) break;
            first_duplicates += first.value("duplicates", 0);
            first_stale += first.value("stale", 0);
            EXPECT_EQ(first.value("accepted", size_t{0}), n) << "batch " << b << ": " << first.dump();
            if (std::uniform_int_distribution<int>(0, 9)(srng) == 0 && !stop) {
                ++resent_acknowledged;
                const json again = post(body);
                if (!stop) {
                    EXPECT_EQ(again.value("duplicates", size_t{0}), n) << "batch " << b << " sent again after its 202: " << again.dump();
                }
            }
            ++batches_done;
            std::this_thread::sleep_for(std::chrono::milliseconds(25));  // spread the flow over the kills
        }
    });

    // Twenty kills at random moments: the k-th within the k-th twentieth of the batches.
    std::mt19937 krng(12345);
    bool restarted = true;
    for (int kill_no = 0; kill_no < kKills && restarted; ++kill_no) {
        const size_t lo = kill_no * batches.size() / kKills, hi = (kill_no + 1) * batches.size() / kKills;
        const size_t at = std::uniform_int_distribution<size_t>(lo, std::max(lo, hi - 1))(krng);
        wait_until([&] { return batches_done.load() >= at; }, std::chrono::seconds(60));
        std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 40)(krng)));
        const pid_t victim = pid;
        kill(victim, SIGKILL);
        int st = 0;
        waitpid(victim, &st, 0);
        EXPECT_TRUE(WIFSIGNALED(st)) << "kill " << kill_no;
        restarted = spawn();
        EXPECT_TRUE(restarted) << "recsync did not restart after kill " << kill_no;
    }
    if (!restarted) stop = true;
    sender.join();
    const auto flowed = std::chrono::steady_clock::now();

    // What the CRM must hold: per object, each live key's last version; deleted keys absent.
    struct Expect {
        const char *object, *key_property, *field;
        std::map<std::string, std::string> live;  // key value -> final label
        std::map<std::string, int> record_of;     // key value -> record number
        std::set<std::string> gone;
    };
    Expect expected[] = {{"contacts", "email", "lastname", {}, {}, {}}, {"companies", "acme_key", "name", {}, {}, {}}, {"0-3", "recsync_key", "dealname", {}, {}, {}}};
    auto &contacts = expected[0], &companies = expected[1], &deals = expected[2];
    size_t n_deleted = 0;
    for (int r = 0; r < kRecords; ++r) {
        const std::string kind = kind_of(r);
        auto &e = kind == "contact" ? contacts : kind == "company" ? companies : deals;
        e.record_of[key_value(r)] = r;
        if (deleted[r]) {
            e.gone.insert(key_value(r));
            ++n_deleted;
        } else {
            e.live[key_value(r)] = "v" + std::to_string(kUpdates);
        }
    }
    const auto queued = [&]() -> int64_t {
        const auto rep = http_request("GET", base + "/v1/status");
        if (rep.status != 200) return -1;
        return json::parse(rep.body)["connections"]["hubspot-main"].value("queued", int64_t{-1});
    };
    auto final_state_reached = [&] {
        for (const auto &e : expected) {
            const auto recs = crm.records(e.object);
            if (recs.size() != e.live.size()) return false;
            for (const auto &rec : recs) {
                const auto k = rec.properties.find(e.key_property), f = rec.properties.find(e.field);
                const auto want = k == rec.properties.end() ? e.live.end() : e.live.find(k->second);
                if (want == e.live.end() || f == rec.properties.end() || f->second != want->second) return false;
            }
        }
        return queued() == 0;
    };
    EXPECT_TRUE(wait_until(final_state_reached, std::chrono::seconds(60)))
        << crm.record_count("contacts") << " contacts, " << crm.record_count("companies") << " companies, " << crm.record_count("0-3") << " deals, queued "
        << queued();
    const auto settled = std::chrono::steady_clock::now();

    // The verdict, record by record; what went wrong is kept for the report below.
    std::set<int> suspects;
    for (const auto &e : expected) {
        std::map<std::string, int> copies;
        for (const auto &rec : crm.records(e.object)) {
            const auto k = rec.properties.find(e.key_property);
            if (k == rec.properties.end()) {
                ADD_FAILURE() << e.object << " " << rec.id << " has no " << e.key_property;
                continue;
            }
            const int r = e.record_of.count(k->second) ? e.record_of.at(k->second) : -1;
            if (++copies[k->second] == 2) {
                ADD_FAILURE() << e.object << " '" << k->second << "' (record k" << r << ") created twice";
                suspects.insert(r);
            }
            if (e.gone.count(k->second)) {
                ADD_FAILURE() << e.object << " '" << k->second << "' (record k" << r << ") was deleted in System A but is in the CRM (id " << rec.id << ", "
                              << e.field << " " << (rec.properties.count(e.field) ? rec.properties.at(e.field) : "(none)") << ")";
                suspects.insert(r);
            } else if (const auto want = e.live.find(k->second); want == e.live.end()) {
                ADD_FAILURE() << e.object << " '" << k->second << "': not a record of this test";
            } else if (rec.properties.count(e.field) == 0 || rec.properties.at(e.field) != want->second) {
                ADD_FAILURE() << e.object << " '" << k->second << "' (record k" << r << ") holds " << e.field << " "
                              << (rec.properties.count(e.field) ? rec.properties.at(e.field) : "(none)") << ", not its final " << want->second;
                suspects.insert(r);
            }
        }
        for (const auto &[key, label] : e.live)
            if (!copies.count(key)) {
                ADD_FAILURE() << e.object << " '" << key << "' (record k" << e.record_of.at(key) << ") missing from the CRM";
                suspects.insert(e.record_of.at(key));
            }
    }
    const auto counters = crm.counters();
    // Every record made at most once, and every one made and deleted accounted for. (A
    // create still unsent when its record's delete arrives is never made: the delete takes
    // its place and finds nothing to delete. That keeps both counts one lower, which a
    // slower machine may see; it never makes either higher.)
    EXPECT_LE(counters.created, static_cast<uint64_t>(kRecords)) << "records created in the CRM: at most once each";
    EXPECT_LE(counters.deleted, static_cast<uint64_t>(n_deleted)) << "records deleted in the CRM";
    EXPECT_EQ(counters.created - counters.deleted, static_cast<uint64_t>(kRecords - n_deleted)) << "made, less deleted: the live records";
    EXPECT_EQ(counters.duplicates, 0u) << "creates refused as duplicates (409) by the CRM";
    const auto status_reply = http_request("GET", base + "/v1/status");
    const json status = status_reply.status == 200 ? json::parse(status_reply.body) : json::object();
    EXPECT_EQ(status.value("dead_letters", int64_t{-1}), 0) << status.dump();
    EXPECT_EQ(status["connections"]["hubspot-main"].value("queued", int64_t{-1}), 0) << status.dump();
    // The sender's repeats were acknowledged and ignored: each one counted at its batch's
    // first 202 (more if an unanswered attempt was stored after all).
    EXPECT_GE(first_duplicates + first_stale, dup_created + resent_updates + stale_updates);

    // How much the run disturbed things.
    size_t upserts = 0, searches = 0;
    const auto requests = crm.requests();
    for (const auto &r : requests) {
        upserts += r.target.ends_with("/batch/upsert");
        searches += r.target.ends_with("/search");
    }
    const auto secs = [](auto d) { return std::chrono::duration<double>(d).count(); };
    std::vector<std::string> log_lines;
    size_t log_warnings = 0, log_errors = 0;
    {
        std::ifstream in(log_path);
        for (std::string line; std::getline(in, line);) {
            log_warnings += line.find("] [warning] ") != std::string::npos;
            log_errors += line.find("] [error] ") != std::string::npos || line.find("] [critical] ") != std::string::npos;
            log_lines.push_back(std::move(line));
        }
    }
    std::cout << "events: " << slots.size() << " in " << batches.size() << " batches (" << kRecords << " records, " << n_deleted << " deleted)\n"
              << "repeats in the stream: " << dup_created << " created (" << created_after_delete << " after the record's delete), " << resent_updates
              << " old updates (same id); " << stale_updates << " old versions and " << same_again << " last changes under a new id\n"
              << "202s counted " << duplicates << " duplicates and " << stale << " stale (" << first_duplicates << " and " << first_stale
              << " at each batch's first 202)\n"
              << "requests to recsync: " << posts << " (" << failed_posts << " unanswered and sent again, " << resent_acknowledged
              << " acknowledged batches sent again); kills: " << kKills << "\n"
              << "mock faults: " << counters.injected_failures << " 503s, " << counters.hangs << " hangs, " << counters.resets << " resets, " << counters.lost_answers
              << " lost answers\n"
              << "API requests: " << counters.requests << " for " << slots.size() << " events (" << double(counters.requests) / slots.size() << " per event); "
              << counters.created << " created, " << counters.updated << " updated, " << counters.deleted << " deleted; " << upserts << " upserts, " << searches
              << " searches\n"
              << "recsync logged " << log_warnings << " warnings and " << log_errors << " errors over " << runs << " runs\n"
              << "time: " << secs(flowed - started) << " s while the events flowed, " << secs(settled - flowed) << " s more to settle\n";

    if (::testing::Test::HasFailure()) {
        // Keep the evidence: recsync's log (all runs) and the mock's request log, beside
        // the temp dir, which goes with the test.
        const std::string kept = dir.path() + "-kept";
        std::filesystem::create_directories(kept);
        std::filesystem::copy_file(log_path, kept + "/recsync.log", std::filesystem::copy_options::overwrite_existing);
        {
            std::ofstream out(kept + "/mock_requests.txt");
            for (const auto &r : requests) out << r.seq << " " << r.at_ms << " " << r.method << " " << r.target << " " << r.status << " " << r.body << "\n";
        }
        std::cout << "evidence kept in " << kept << " (recsync.log, mock_requests.txt)\n";
        const auto mentions = [](const std::string &text, const std::string &word) {
            for (size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) {
                const bool before = at == 0 || !std::isalnum(static_cast<unsigned char>(text[at - 1]));
                const bool after = at + word.size() >= text.size() || !std::isalnum(static_cast<unsigned char>(text[at + word.size()]));
                if (before && after) return true;
            }
            return false;
        };
        int shown = 0;
        for (int r : suspects) {
            if (r < 0 || ++shown > 5) continue;
            const std::string kind = kind_of(r), value = key_value(r);
            const std::string object = kind == "contact" ? "contacts" : kind == "company" ? "companies" : "0-3";
            std::set<std::string> ids;
            for (const auto &rec : crm.records(object))
                for (const auto &[p, v] : rec.properties)
                    if (v == value) ids.insert(rec.id);
            std::cout << "--- record k" << r << " (" << kind << " '" << value << "', " << (deleted[r] ? "deleted" : "live")
                      << " in System A at the end; live ids in the CRM:";
            for (const auto &id : ids) std::cout << " " << id;
            std::cout << ")\nCRM requests naming it:\n";
            for (const auto &q : requests) {
                bool names = q.target.find("/objects/" + object) != std::string::npos && q.body.find("\"" + value + "\"") != std::string::npos;
                for (const auto &id : ids) names = names || q.target.ends_with("/" + object + "/" + id);
                if (names)
                    std::cout << "  #" << q.seq << " " << q.at_ms << " " << q.method << " " << q.target << " -> " << q.status << " " << q.body.substr(0, 300)
                              << "\n";
            }
            std::cout << "recsync log lines naming it:\n";
            std::string run;
            for (const auto &line : log_lines)
                if (line.starts_with("=== run")) run = line.substr(4, line.size() - 8);
                else if (mentions(line, "k" + std::to_string(r))) std::cout << "  (" << run << ") " << line.substr(0, 400) << "\n";
        }
    }
    if (const pid_t last = pid; last > 0) {
        kill(last, SIGTERM);
        waitpid(last, nullptr, 0);
    }
    crm.stop();
}

// The poll cursor survives kill -9 mid-page: recsync pages 6,000 contacts sharing one
// timestamp out of the CRM, slowly (4 searches/s), and is killed three times while it does.
// Each restart goes on from the durable cursor (never from the start again), and every
// record reaches System A.
TEST(Crash, KilledMidPageThePollerResumesFromItsDurableCursor) {
    testkit::TempDir dir;
    setenv("RECSYNC_CRASH_TOKEN", "crash-token", 1);
    setenv("RECSYNC_CRASH_A_SECRET", "a-secret", 1);
    mock::MockCrmOptions mo;
    mo.token = "crash-token";
    mo.threads = 4;
    mock::MockCrm crm(mo);
    crm.start();
    testkit::SystemA system_a("a-secret");
    constexpr int kRecords = 6000;
    crm.set_fixed_modified(1'700'000'000'000);
    for (int i = 0; i < kRecords; i += 100) {
        json inputs = json::array();
        for (int j = i; j < i + 100; ++j) {
            const std::string email = "p" + std::to_string(j) + "@example.com";
            inputs.push_back({{"idProperty", "email"}, {"id", email}, {"properties", {{"email", email}}}});
        }
        ASSERT_EQ(http_request("POST", crm.base_url() + "/crm/v3/objects/contacts/batch/upsert", json{{"inputs", inputs}}.dump(), {"Authorization: Bearer crash-token"}).status, 200);
    }
    crm.set_request_log(true);
    crm.set_latency(std::chrono::milliseconds(150));  // a search in flight most of the time: kills land mid-page
    testkit::copy_plugin(RECSYNC_PLUGIN_DIR, "hubspot", dir.file("plugins"));
    std::filesystem::create_directories(dir.file("rules"));
    dir.write("rules/inbound.yaml",
              "mappings:\n  in: { fields: [ { from: email, to: email } ] }\n"
              "rules:\n  - { name: from-crm, on: { source: crm, entity: contacts, event: [created, updated] }, do: { action: upsert, target: erp, object: contacts, mapping: in } }\n");
    const uint16_t port = testkit::free_port();
    const auto cfg = write_config(dir, port, "error",
                                               "  crm:\n    provider: hubspot\n    base_url: '" + crm.base_url() + "'\n"
                                               "    credentials: { token_env: RECSYNC_CRASH_TOKEN }\n"
                                               "    polling: { requests_per_second: 4, objects: { contacts: 1s } }\n"
                                               "    settings: { poll_since: beginning }\n"
                                               "  erp:\n    provider: http\n    base_url: '" + system_a.base_url() + "'\n"
                                               "    credentials: { signing_secret_env: RECSYNC_CRASH_A_SECRET }\n    settings: { objects: [contacts] }\n"
                                               "    retry: { max_attempts: 1000, base_delay_ms: 5, max_delay_ms: 100 }\n");
    const std::string bin = RECSYNC_BINARY_DIR "/recsync";
    const std::string base = "http://127.0.0.1:" + std::to_string(port);
    pid_t pid = 0;
    auto spawn = [&] {
        const char *argv[] = {bin.c_str(), "run", "-c", cfg.c_str(), nullptr};
        ASSERT_EQ(posix_spawn(&pid, bin.c_str(), nullptr, nullptr, const_cast<char **>(argv), environ), 0);
        ASSERT_TRUE(wait_until([&] { return http_request("GET", base + "/readyz").status == 200; })) << "recsync did not start";
    };
    const auto pages = [&] {
        const auto r = http_request("GET", base + "/v1/status");
        if (r.status != 200) return int64_t{-1};
        const json p = json::parse(r.body)["polling"];
        return p.empty() ? int64_t{0} : p[0]["pages"].get<int64_t>();
    };
    spawn();
    ASSERT_TRUE(wait_until([&] { return pages() >= 1; })) << "no page became durable";
    std::mt19937 rng(777);
    for (int kill_no = 0; kill_no < 3; ++kill_no) {
        // 200 records a page, 4 pages a second: the kill lands while pages go by.
        std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(400, 1400)(rng)));
        const size_t had = system_a.size();
        kill(pid, SIGKILL);
        int st = 0;
        waitpid(pid, &st, 0);
        ASSERT_TRUE(WIFSIGNALED(st)) << "kill " << kill_no;
        EXPECT_LT(had, static_cast<size_t>(kRecords)) << "kill " << kill_no << " came after the last page: make the poll slower";
        spawn();
    }
    ASSERT_TRUE(wait_until([&] { return system_a.size() == kRecords; }, std::chrono::seconds(90))) << "System A has " << system_a.size() << " of " << kRecords;
    // Only the first run asked from the start (the cursor's "GT since - 1" filter): every
    // restart went on from where its last durable page left it.
    int from_start = 0, searches = 0;
    for (const auto &r : crm.requests()) {
        if (!r.target.ends_with("/search")) continue;
        ++searches;
        from_start += r.body.find(R"("value":"-1")") != std::string::npos;
    }
    EXPECT_EQ(from_start, 1) << "a restart polled from the start again";
    EXPECT_LE(searches, kRecords / 200 + 2 + 3 * 2 + 40) << "more searches than the pages, the kills and the idle polls since explain";
    std::cout << "[ poll crash ] " << searches << " searches for " << kRecords / 200 << " pages; " << system_a.calls() << " calls to System A for " << kRecords
              << " records (a PUT in flight at a kill is sent again)\n";
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
    crm.stop();
}

}  // namespace
