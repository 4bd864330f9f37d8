// The two-way soak: records edited on both sides at once, System A through /v1/events and
// the CRM through the mock's own API (which sends its signed webhooks for every change,
// recsync's own included), some of them deleted, under a conflict policy. Afterwards each
// record must hold one value on both sides, the policy's, and no deleted record may be
// back. Shared by the integration test (small) and `bench/run twoway` (larger).
//
// In one process: the engine, the mock CRM and System A's service (testkit::SystemA),
// each with its own threads, on loopback. Header-only; link recsync_core, mock_crm and
// recsync_test_support.
#pragma once

#include "sources/webhook.hpp"
#include "util/clock.hpp"
#include "support/engine_harness.hpp"
#include "support/system_a_service.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <ctime>
#include <map>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace recsync::testkit {

struct SoakOptions {
    int records = 100;
    double seconds = 10;
    double edits_per_second = 100;  // across all records, both sides
    double both_sides = 0.2;        // of the edits: the record edited on both sides at once
    double deletes = 0.02;          // of the edits: a delete instead (on either side)
    double crm_born = 0.1;          // of the records: made in the CRM (keyed by their id there), the rest in System A
    uint32_t seed = 1;
    std::string policy = "policy: last_writer_wins";  // the CRM connection's conflicts: setting
};

struct SoakResult {
    int records = 0;
    int64_t edits_a = 0, edits_b = 0, deletes_a = 0, deletes_b = 0, both = 0;
    int diverged = 0;      // live records whose two sides differ (or one side lacks)
    int resurrected = 0;   // deleted records present on either side
    int crm_born = 0;      // of the records, made in the CRM
    int wrong_winner = 0;  // converged on another value than the policy's (last writer by time)
    int64_t excess_calls = 0;  // writes to the CRM beyond System A's changes
    int64_t crm_writes = 0, crm_reads = 0;
    uint64_t echoes_suppressed = 0, conflicts = 0;
    double b_to_a_p50_ms = 0, b_to_a_p99_ms = 0;
    size_t b_to_a_samples = 0;
    bool settled = false;  // the queues emptied after the edits
    std::vector<std::string> examples;  // a few records that went wrong, for the log

    nlohmann::json to_json() const {
        return {{"records", records},         {"crm_born", crm_born},         {"diverged", diverged},
                {"resurrected", resurrected}, {"excess_calls", excess_calls},
                {"wrong_winner", wrong_winner}, {"echoes_suppressed", echoes_suppressed},
                {"conflicts", conflicts},     {"edits_a", edits_a},
                {"edits_b", edits_b},         {"edits_both_sides", both},
                {"deletes_a", deletes_a},     {"deletes_b", deletes_b},
                {"crm_writes", crm_writes},   {"crm_reads", crm_reads},
                {"b_to_a_p50_ms", b_to_a_p50_ms}, {"b_to_a_p99_ms", b_to_a_p99_ms},
                {"b_to_a_samples", b_to_a_samples}, {"settled", settled}};
    }
};

namespace soak_detail {

inline int64_t parse_iso_ms(const std::string &t) {
    int y, mo, d, h, mi, s, ms = 0;
    if (std::sscanf(t.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &y, &mo, &d, &h, &mi, &s, &ms) < 6) return 0;
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

inline double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace soak_detail

// System A's side of the soak: where a person edits a record (and recsync hears of it),
// and where recsync writes the CRM's changes.
class SoakSystemA {
public:
    virtual ~SoakSystemA() = default;
    // The connection recsync writes to, "  erp: { ... }\n", its calls' retry settings given.
    virtual std::string connection_yaml(const std::string &retry) = 0;
    // What rules of System A's changes say in `on:` besides entity and event ("" for
    // POST /v1/events; "source: erp, " for a captured database).
    virtual std::string source() const = 0;
    // A person's edit (created: the record is new) or delete, made known to recsync; at_ms:
    // its time as System A tells it.
    virtual void write(const std::string &key, const std::string &email, const std::string &first, bool created, int64_t at_ms) = 0;
    virtual void erase(const std::string &key, int64_t at_ms) = 0;
    // first_name of the record as System A holds it, if it has it.
    virtual std::optional<std::string> first_name(const std::string &key) = 0;
    // Something that moves while recsync works there (its calls), and whether System A
    // still has changes recsync has not taken in.
    virtual int64_t activity() = 0;
    virtual bool pending() { return false; }
    // Called with each first_name recsync writes (B -> A latency); may be never.
    std::function<void(const std::string &)> on_written;
    std::string base;  // the engine's URL, once it runs
};

// System A as a service (testkit::SystemA behind the http connection), its changes POSTed
// to /v1/events.
class HttpSoakSystemA : public SoakSystemA {
public:
    static constexpr const char *kSigningSecret = "soak-signing-secret";
    HttpSoakSystemA() : service_(kSigningSecret) {
        setenv("RECSYNC_SOAK_A_SECRET", kSigningSecret, 1);
            service_.on_put([this](const std::string &, const nlohmann::json &rec) {
            if (on_written) on_written(rec.value("first_name", std::string()));
        });
    }
    ~HttpSoakSystemA() override { service_.on_put(nullptr); }
    std::string connection_yaml(const std::string &retry) override {
        return "  erp: { provider: http, base_url: '" + service_.base_url() +
               "', settings: { objects: [contacts] }, credentials: { signing_secret_env: RECSYNC_SOAK_A_SECRET }, max_in_flight: 16, " + retry + " }\n";
    }
    std::string source() const override { return ""; }
    void write(const std::string &key, const std::string &email, const std::string &first, bool created, int64_t at_ms) override {
        service_.set(path(key), {{"email", email}, {"first_name", first}});
        post(key, created ? "created" : "updated", email, first, at_ms);
    }
    void erase(const std::string &key, int64_t at_ms) override {
        service_.erase(path(key));
        post(key, "deleted", "", "", at_ms);
    }
    std::optional<std::string> first_name(const std::string &key) override {
        const auto r = service_.record(path(key));
        if (!r) return std::nullopt;
        return r->value("first_name", std::string());
    }
    int64_t activity() override { return service_.calls(); }

private:
    static std::string path(const std::string &key) { return "/contacts/" + key; }
    void post(const std::string &key, const char *event, const std::string &email, const std::string &first, int64_t at_ms) {
        nlohmann::json e = {{"entity", "contact"}, {"event", event}, {"key", key}, {"occurred_at", sources::rfc3339_ms(at_ms)}};
        if (std::string(event) != "deleted") e["data"] = {{"email", email}, {"first_name", first}};
        for (int attempt = 0; attempt < 50; ++attempt) {
            if (http_request("POST", base + "/v1/events", e.dump()).status == 202) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
    SystemA service_;
};

inline SoakResult run_twoway_soak(const SoakOptions &o, SoakSystemA &side) {
    using nlohmann::json;
    using namespace std::chrono;
    constexpr const char *kClientSecret = "soak-client-secret";
    constexpr const char *kHookUrl = "https://sync.example.com/v1/webhooks/crm";
    setenv("RECSYNC_SOAK_HS_SECRET", kClientSecret, 1);

    TempDir dir;
    stage_hubspot(dir);
    dir.write("rules/twoway.yaml",
              "mappings:\n"
              "  to-hs: { fields: [ { from: email, to: email }, { from: first_name, to: firstname } ] }\n"
              "  to-erp: { fields: [ { from: email, to: email }, { from: firstname, to: first_name } ] }\n"
              "rules:\n"
              "  - { name: a-to-crm, on: { " + side.source() + "entity: contact, event: [created, updated] }, do: { action: upsert, target: crm, object: contacts, mapping: to-hs } }\n"
              "  - { name: a-gone, on: { " + side.source() + "entity: contact, event: deleted }, do: { action: delete, target: crm, object: contacts } }\n"
              "  - { name: crm-to-a, on: { source: crm, entity: contacts, event: [created, updated] }, do: { action: upsert, target: erp, object: contacts, mapping: to-erp } }\n"
              "  - { name: crm-gone, on: { source: crm, entity: contacts, event: deleted }, do: { action: delete, target: erp, object: contacts } }\n");
    mock::MockCrmOptions mo;
    mo.threads = 4;
    mock::MockCrm crm(mo);
    crm.start();
    const std::string retry = "retry: { base_delay_ms: 5, max_delay_ms: 100, max_attempts: 100 }";
    auto engine = start_engine(dir,
                               "  crm: { provider: hubspot, base_url: '" + crm.base_url() + "', settings: { webhook_url: '" + kHookUrl +
                                   "' }, credentials: { client_secret_env: RECSYNC_SOAK_HS_SECRET }, conflicts: { " + o.policy +
                                   " }, max_in_flight: 16, rate_limit: { per_second: 100000, burst: 1000 }, " + retry + " }\n" + side.connection_yaml(retry));
    const std::string base = base_url(*engine);
    side.base = base;
    crm.set_webhooks(mock::WebhookTarget{base + "/v1/webhooks/crm", kHookUrl, kClientSecret});

    SoakResult r;
    r.records = o.records;
    // Every value written by a person, per record: (time at its side, value, side A?).
    struct Edit {
        int64_t at_ms;
        std::string value;
        bool by_a;
    };
    std::map<std::string, std::vector<Edit>> history;
    std::map<std::string, std::string> crm_id;  // our key -> its id in the CRM
    std::map<std::string, std::string> key_of;  // email -> our key (System A's, or the CRM's id for one made there)
    std::set<std::string> deleted;
    std::mutex latency_mutex;
    std::map<std::string, int64_t> b_edit_at;  // CRM value -> when it was made (steady ms)
    std::vector<double> b_to_a;
    const auto steady_ms = [] { return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count(); };
    side.on_written = [&](const std::string &v) {
        if (v.empty() || v[0] != 'B') return;
        std::lock_guard l(latency_mutex);
        if (const auto it = b_edit_at.find(v); it != b_edit_at.end()) {
            b_to_a.push_back(static_cast<double>(steady_ms() - it->second));
            b_edit_at.erase(it);
        }
    };
    std::map<std::string, std::string> email_of;  // our key -> its email
    const auto email = [&](const std::string &key) { return email_of.at(key); };
    int64_t our_crm_requests = 0;
    const auto quiet = [&](seconds timeout) {
        const auto until = steady_clock::now() + timeout;
        int calm = 0;
        uint64_t last = ~0ull;
        while (steady_clock::now() < until) {
            const uint64_t requests = crm.counters().requests + static_cast<uint64_t>(side.activity());
            const bool idle = engine->state().tasks().count() == 0 && crm.webhook_stats().queued == 0 && !side.pending();
            calm = idle && requests == last ? calm + 1 : 0;
            last = requests;
            if (calm >= 5) return true;  // a second without anything moving
            std::this_thread::sleep_for(milliseconds(200));
        }
        return false;
    };

    // The records, most made in System A, some in the CRM (System A gets them under the
    // CRM's id), and synced.
    std::mt19937 rng(o.seed);
    std::uniform_real_distribution<double> coin(0, 1);
    std::vector<std::string> keys;
    for (int i = 0; i < o.records; ++i) {
        const std::string mail = "r" + std::to_string(i) + "@example.com";
        if (coin(rng) < o.crm_born) {
            const auto resp = http_request("POST", crm.base_url() + "/crm/v3/objects/contacts",
                                           json{{"properties", {{"email", mail}, {"firstname", "init"}}}, {"associations", json::array()}}.dump());
            if (resp.status != 201) continue;
            const auto body = json::parse(resp.body);
            const std::string key = body["id"].get<std::string>();
            email_of[key] = mail;
            key_of[mail] = key;
            crm_id[key] = key;
            history[key].push_back({soak_detail::parse_iso_ms(body.value("updatedAt", std::string())), "init", false});
            keys.push_back(key);
            continue;
        }
        const std::string key = "r" + std::to_string(i);
        email_of[key] = mail;
        key_of[mail] = key;
        const int64_t at = util::epoch_ms();
        history[key].push_back({at, "init", true});
        side.write(key, mail, "init", true, at);
        keys.push_back(key);
    }
    quiet(seconds(120));
    r.crm_born = static_cast<int>(std::count_if(keys.begin(), keys.end(), [](const std::string &k) { return k[0] != 'r'; }));
    for (const auto &rec : crm.records("contacts")) {
        const auto e = rec.properties.find("email");
        if (e != rec.properties.end() && key_of.count(e->second)) crm_id[key_of[e->second]] = rec.id;
    }
    const auto requests_before = crm.counters().requests;
    crm.set_request_log(true);

    int64_t seq = 0;
    const auto t0 = steady_clock::now();
    const auto pace = duration<double>(1.0 / o.edits_per_second);
    auto next = t0;
    const auto edit_b = [&](const std::string &key) {
        const std::string value = "B" + std::to_string(++seq);
        {
            std::lock_guard l(latency_mutex);
            b_edit_at[value] = steady_ms();
        }
        ++our_crm_requests;
        const auto resp = http_request("PATCH", crm.base_url() + "/crm/v3/objects/contacts/" + crm_id[key], json{{"properties", {{"firstname", value}}}}.dump());
        if (resp.status != 200) return;
        history[key].push_back({soak_detail::parse_iso_ms(json::parse(resp.body).value("updatedAt", std::string())), value, false});
        ++r.edits_b;
    };
    const auto edit_a = [&](const std::string &key) {
        const std::string value = "A" + std::to_string(++seq);
        const int64_t at = util::epoch_ms();
        history[key].push_back({at, value, true});
        side.write(key, email(key), value, false, at);
        ++r.edits_a;
    };
    while (duration<double>(steady_clock::now() - t0).count() < o.seconds) {
        std::this_thread::sleep_until(next);
        next += duration_cast<steady_clock::duration>(pace);
        const std::string key = keys[std::uniform_int_distribution<size_t>(0, keys.size() - 1)(rng)];
        if (deleted.count(key) || !crm_id.count(key)) continue;
        const double roll = coin(rng);
        if (roll < o.deletes) {
            // Deleted on one side; nobody edits it after that.
            deleted.insert(key);
            if (coin(rng) < 0.5) {
                side.erase(key, util::epoch_ms());
                ++r.deletes_a;
            } else {
                ++our_crm_requests;
                http_request("DELETE", crm.base_url() + "/crm/v3/objects/contacts/" + crm_id[key]);
                ++r.deletes_b;
            }
        } else if (roll < o.deletes + o.both_sides) {
            ++r.both;
            if (coin(rng) < 0.5) {
                edit_a(key);
                edit_b(key);
            } else {
                edit_b(key);
                edit_a(key);
            }
        } else if (coin(rng) < 0.5) {
            edit_a(key);
        } else {
            edit_b(key);
        }
    }
    r.settled = quiet(seconds(120));

    // What each side holds now.
    std::map<std::string, std::string> in_crm;
    std::set<std::string> crm_has;
    for (const auto &rec : crm.records("contacts")) {
        const auto e = rec.properties.find("email");
        if (e == rec.properties.end() || !key_of.count(e->second)) continue;
        const std::string key = key_of[e->second];
        crm_has.insert(key);
        const auto f = rec.properties.find("firstname");
        in_crm[key] = f == rec.properties.end() ? "" : f->second;
    }
    for (const auto &[key, edits] : history) {
        const auto a = side.first_name(key);
        if (deleted.count(key)) {
            if (a || crm_has.count(key)) {
                ++r.resurrected;
                if (r.examples.size() < 5) r.examples.push_back(key + ": deleted, but " + (a ? "System A" : "the CRM") + " has it");
            }
            continue;
        }
        const std::string a_value = a ? *a : "(none)";
        const std::string b_value = crm_has.count(key) ? in_crm[key] : "(none)";
        if (a_value != b_value) {
            ++r.diverged;
            if (r.examples.size() < 5) r.examples.push_back(key + " (" + crm_id[key] + " there): System A has '" + a_value + "', the CRM '" + b_value + "'");
            continue;
        }
        // The last writer by each side's time; edits within the same millisecond are all
        // the last (the clocks cannot tell them apart; recsync takes System A's).
        int64_t last = INT64_MIN;
        for (const auto &e : edits) last = std::max(last, e.at_ms);
        bool right = false;
        std::string expected;
        for (const auto &e : edits)
            if (e.at_ms == last) {
                right = right || e.value == a_value;
                expected += (expected.empty() ? "'" : " or '") + e.value + "'";
            }
        if (!right) {
            ++r.wrong_winner;
            if (r.examples.size() < 5) r.examples.push_back(key + ": both have '" + a_value + "', the last writer wrote " + expected);
        }
    }
    for (const auto &req : crm.requests())
        if (req.method == "GET") ++r.crm_reads;
    r.crm_writes = static_cast<int64_t>(crm.counters().requests - requests_before) - our_crm_requests - r.crm_reads;
    r.excess_calls = std::max<int64_t>(0, r.crm_writes - (r.edits_a + r.deletes_a));
    r.echoes_suppressed = engine->metrics().echoes_suppressed.load();
    r.conflicts = engine->metrics().conflicts.load();
    {
        std::lock_guard l(latency_mutex);
        r.b_to_a_samples = b_to_a.size();
        r.b_to_a_p50_ms = soak_detail::percentile(b_to_a, 0.50);
        r.b_to_a_p99_ms = soak_detail::percentile(b_to_a, 0.99);
    }
    side.on_written = nullptr;
    crm.set_webhooks(std::nullopt);
    engine->stop(seconds(2));
    crm.stop();
    return r;
}

inline SoakResult run_twoway_soak(const SoakOptions &o) {
    HttpSoakSystemA side;
    return run_twoway_soak(o, side);
}

}  // namespace recsync::testkit
