// PostgreSQL as System A under crashes: the real `recsync run` captures a table (the
// change log `recsync pg install` puts there) and delivers to the mock CRM (in this
// process, as in crash_test.cpp), while a writer puts 2,000 rows in the table (transactions
// of 20), updates half of them (some twice) and deletes one in ten. recsync is killed
// (SIGKILL) five times meanwhile, four of them mid-load, and restarted each time on the
// same state database; PostgreSQL itself is restarted once mid-load. At the end every live
// row is in the CRM exactly once (by its email, unique per row) with the row's final
// values, no deleted row is there, the CRM refused no create as a duplicate, nothing is
// dead-lettered, and the change log and the task log are empty.
#include "config/config.hpp"
#include "mock_crm.hpp"
#include "store/state_backend.hpp"
#include "support/postgres_environment.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

namespace recsync {
namespace {

using json = nlohmann::json;
using testkit::http_request;
using testkit::wait_until;
using namespace std::chrono_literals;

double secs_since(std::chrono::steady_clock::time_point t0) { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }

// What the writer does to one row, in order: inserted (v0), maybe updated once or twice,
// maybe deleted.
struct RowPlan {
    int updates = 0;  // 0, 1 or 2
    bool deleted = false;
};
std::string email_of(int id) { return "row" + std::to_string(id) + "@example.com"; }
std::string first_name_of(int id, int version) { return "F" + std::to_string(id) + "-v" + std::to_string(version); }
std::string last_name_of(int version) { return "L-v" + std::to_string(version); }

TEST(PostgresCrash, KilledFiveTimesAndPostgresRestartedOnceEveryRowReachesTheCrmOnceInItsFinalState) {
    ASSERT_NE(testkit::shared_postgres(), nullptr);
    auto &postgres = *testkit::shared_postgres();
    const auto t0 = std::chrono::steady_clock::now();
    testkit::TempDir dir;
    const std::string table = "crash_customers", schema = "rs_crash";
    setenv("RECSYNC_TEST_PG_DSN", postgres.dsn().c_str(), 1);
    postgres.psql("CREATE TABLE " + table + " (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, first_name text, last_name text)");

    mock::MockCrmOptions mo;
    mo.threads = 16;
    mock::MockCrm crm(mo);
    crm.start();
    crm.set_request_log(true);
    // Each call takes 40 ms: with 8 in flight the CRM side keeps up with the writer only
    // just, so every kill finds calls in flight and tasks waiting (a create whose answer
    // never came is sent again, as an upsert by email).
    crm.set_latency(40ms);

    testkit::copy_plugin(RECSYNC_PLUGIN_DIR, "hubspot", dir.file("plugins"));
    std::filesystem::create_directories(dir.file("rules/schemas"));
    std::filesystem::copy_file(RECSYNC_SOURCE_DIR "/rules/schemas/contact.json", dir.file("rules/schemas/contact.json"));
    dir.write("rules/db.yaml",
              "mappings:\n"
              "  to-crm: { fields: [ { from: email, to: email, required: true }, { from: first_name, to: firstname }, { from: last_name, to: lastname } ] }\n"
              "rules:\n"
              "  - { name: new, on: { source: db, entity: contact, event: created }, do: { action: create, target: crm, object: contacts, mapping: to-crm } }\n"
              "  - { name: changed, on: { source: db, entity: contact, event: updated }, do: { action: update, target: crm, object: contacts, mapping: to-crm } }\n"
              "  - { name: gone, on: { source: db, entity: contact, event: deleted }, do: { action: delete, target: crm, object: contacts } }\n");
    const uint16_t port = testkit::free_port();
    // Small capture batches: more commits of events and removals of rows for a kill to
    // fall between.
    const auto cfg = dir.write("recsync.yaml",
                               "plugins_dir: plugins\nrules_dir: rules\nwatch_rules: false\n"
                               "state: { path: state/recsync.db, synchronous: full }\n"
                               "server: { listen: '127.0.0.1:" + std::to_string(port) + "' }\nlog_level: warn\n"
                               "connections:\n"
                               "  crm:\n"
                               "    provider: hubspot\n"
                               "    base_url: '" + crm.base_url() + "'\n"
                               "    rate_limit: { per_second: 100000, burst: 1000 }\n"
                               "    max_in_flight: 8\n"
                               "    retry: { max_attempts: 1000, base_delay_ms: 5, max_delay_ms: 100 }\n"
                               "  db:\n"
                               "    provider: postgres\n"
                               "    max_in_flight: 4\n"
                               "    retry: { base_delay_ms: 5, max_delay_ms: 50, max_attempts: 3 }\n"
                               "    postgres:\n"
                               "      dsn_env: RECSYNC_TEST_PG_DSN\n"
                               "      schema: " + schema + "\n"
                               "      batch_size: 50\n"
                               "      poll_interval: 1s\n"
                               "      tables:\n"
                               "        contacts: { table: public." + table + ", key: id, entity: contact }\n");
    const std::string bin = RECSYNC_BINARY_DIR "/recsync";
    {
        const auto [rc, out] = testkit::run_command("'" + bin + "' pg install -c '" + cfg + "' 2>&1");
        ASSERT_EQ(rc, 0) << "recsync pg install: " << out;
    }
    const auto change_log_rows = [&] { return std::stol(postgres.psql("SELECT count(*) FROM " + schema + ".changes")); };

    // recsync as a child process; its output (every run) appended to one log.
    const std::string base = "http://127.0.0.1:" + std::to_string(port);
    const std::string log_path = dir.file("recsync.log");
    std::atomic<pid_t> pid{0};
    int runs = 0;
    auto spawn = [&]() -> bool {
        {
            std::ofstream(log_path, std::ios::app) << "=== run " << ++runs << " at " << secs_since(t0) << " s ===\n";
        }
        pid = testkit::spawn_recsync_run(bin, cfg, log_path, base, 20s);
        return pid != 0;
    };
    // Whatever happens below, no recsync is left running.
    struct Reaper {
        std::atomic<pid_t> &pid;
        ~Reaper() {
            if (const pid_t p = pid.exchange(0); p > 0) {
                kill(p, SIGKILL);
                waitpid(p, nullptr, 0);
            }
        }
    } reaper{pid};
    ASSERT_TRUE(spawn()) << "recsync did not start";

    // The plan: 2,000 rows; half updated (one in three of those twice), one in ten deleted
    // (some of them updated first).
    constexpr int kRows = 2000, kTx = 20, kBatches = kRows / kTx;
    std::mt19937 rng(20240917);
    std::vector<RowPlan> plan(kRows + 1);
    for (int id = 1; id <= kRows; ++id) {
        plan[id].updates = rng() % 2 == 0 ? (rng() % 3 == 0 ? 2 : 1) : 0;
        plan[id].deleted = rng() % 10 == 0;
    }
    // The transactions, in the writer's order: batch b's insert; then the first updates of
    // batch b-2; then the second updates and the deletes of batch b-5 (so a row is
    // updated, or deleted, a few transactions after it was written, while later rows go
    // in). Each is safe to run again (the insert skips rows already there; the updates set
    // values; the deletes delete what is left): a transaction whose answer was lost to the
    // PostgreSQL restart is simply sent again.
    std::vector<std::string> txs;
    const auto insert_tx = [&](int b) {
        std::string values;
        for (int id = b * kTx + 1; id <= (b + 1) * kTx; ++id)
            values += std::string(values.empty() ? "" : ", ") + "(" + std::to_string(id) + ", '" + email_of(id) + "', '" + first_name_of(id, 0) + "', '" +
                      last_name_of(0) + "')";
        return "INSERT INTO " + table + " (id, email, first_name, last_name) VALUES " + values + " ON CONFLICT (id) DO NOTHING;";
    };
    const auto update_tx = [&](int b, int version) {
        std::string sql;
        for (int id = b * kTx + 1; id <= (b + 1) * kTx; ++id)
            if (plan[id].updates >= version && !(version == 2 && plan[id].deleted))
                sql += "UPDATE " + table + " SET first_name = '" + first_name_of(id, version) + "', last_name = '" + last_name_of(version) + "' WHERE id = " +
                       std::to_string(id) + ";\n";
        return sql;
    };
    const auto delete_tx = [&](int b) {
        std::string ids;
        for (int id = b * kTx + 1; id <= (b + 1) * kTx; ++id)
            if (plan[id].deleted) ids += std::string(ids.empty() ? "" : ", ") + std::to_string(id);
        return ids.empty() ? std::string() : "DELETE FROM " + table + " WHERE id IN (" + ids + ");\n";
    };
    const auto push = [&](const std::string &body) {
        if (!body.empty()) txs.push_back("BEGIN;\n" + body + "COMMIT;\n");
    };
    for (int step = 0; step < kBatches + 5; ++step) {
        if (step < kBatches) push(insert_tx(step));
        if (const int b = step - 2; b >= 0 && b < kBatches) push(update_tx(b, 1));
        if (const int b = step - 5; b >= 0 && b < kBatches) push(update_tx(b, 2) + delete_tx(b));
    }
    // Final expectations, from the plan.
    std::map<std::string, std::pair<std::string, std::string>> live;  // email -> (first name, last name)
    std::map<std::string, int> id_of;                                  // email -> row id
    std::set<std::string> gone;
    for (int id = 1; id <= kRows; ++id) {
        id_of[email_of(id)] = id;
        if (plan[id].deleted) gone.insert(email_of(id));
        else {
            const int v = plan[id].updates;
            live[email_of(id)] = {first_name_of(id, v), last_name_of(v)};
        }
    }

    // The writer: one transaction after another, a short pause between (the load spreads
    // over ~15 s for the kills to land in); a transaction that fails (PostgreSQL
    // restarting) is run again, for at most 30 s.
    std::atomic<size_t> txs_done{0};
    std::atomic<bool> writer_failed{false};
    std::atomic<int> writer_retries{0};
    std::string writer_error;
    std::thread writer([&] {
        for (const auto &tx : txs) {
            const auto deadline = std::chrono::steady_clock::now() + 30s;
            for (;;) {
                try {
                    postgres.psql(tx);
                    break;
                } catch (const std::exception &e) {
                    ++writer_retries;
                    if (std::chrono::steady_clock::now() > deadline) {
                        writer_error = e.what();
                        writer_failed = true;
                        return;
                    }
                    std::this_thread::sleep_for(100ms);
                }
            }
            ++txs_done;
            std::this_thread::sleep_for(35ms);
        }
    });

    // The disturbances, at shares of the writer's transactions: kills at 12%, 33%, 62%
    // and 85%, PostgreSQL restarted at 47%, and one more kill once the writer is done
    // (while the backlog drains).
    struct Disturbance {
        double at;
        bool pg_restart;
    };
    const Disturbance plan_of_disturbances[] = {{0.12, false}, {0.33, false}, {0.47, true}, {0.62, false}, {0.85, false}, {1.0, false}};
    std::vector<std::string> timeline;
    int kills = 0, kills_mid_load = 0;
    bool pg_restarted_mid_load = false, restarted_ok = true;
    std::mt19937 krng(777);
    for (const auto &d : plan_of_disturbances) {
        const size_t at = static_cast<size_t>(d.at * txs.size());
        if (!wait_until([&] { return txs_done.load() >= at || writer_failed.load(); }, 60s)) {
            ADD_FAILURE() << "the writer did not reach transaction " << at << " of " << txs.size() << " within 60 s (at " << txs_done.load() << ")";
            break;
        }
        if (writer_failed) break;
        // What the kill interrupts, for the record (just before it).
        std::string snapshot;
        if (!d.pg_restart)
            if (const auto rep = http_request("GET", base + "/v1/status"); rep.status == 200) {
                const json st = json::parse(rep.body);
                int64_t q = 0, f = 0;
                for (const auto &[name, c] : st["connections"].items()) {
                    q += c.value("queued", int64_t{0});
                    f += c.value("in_flight", int64_t{0});
                }
                snapshot = std::to_string(q) + " tasks queued, " + std::to_string(f) + " calls in flight";
            }
        // Just after one of the writer's commits (0-4 ms; watched every 0.2 ms, not with
        // wait_until's 20 ms): the moment capture reads its rows, hands their events to
        // intake and removes them.
        if (const size_t before = txs_done.load(); before < txs.size()) {
            const auto until = std::chrono::steady_clock::now() + 2s;
            while (txs_done.load() == before && !writer_failed.load() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(200us);
        }
        std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 4'000)(krng)));
        const size_t now_at = txs_done.load();
        const bool mid_load = now_at < txs.size();
        std::ostringstream what;
        what << secs_since(t0) << " s, after transaction " << now_at << "/" << txs.size() << ": ";
        if (d.pg_restart) {
            what << "PostgreSQL restarted";
            try {
                postgres.restart();
            } catch (const std::exception &e) {
                ADD_FAILURE() << "PostgreSQL did not restart: " << e.what();
                break;
            }
            pg_restarted_mid_load = pg_restarted_mid_load || mid_load;
            what << " (" << secs_since(t0) << " s: accepting connections again)";
        } else {
            const pid_t victim = pid.exchange(0);
            kill(victim, SIGKILL);
            int st = 0;
            waitpid(victim, &st, 0);
            EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "kill " << kills << ": recsync had already ended (status " << st << ")";
            ++kills;
            kills_mid_load += mid_load;
            what << "recsync killed (kill " << kills << "; " << snapshot << "; change log left with " << change_log_rows() << " rows)";
            restarted_ok = spawn();
            if (!restarted_ok) {
                ADD_FAILURE() << "recsync did not restart after kill " << kills;
                break;
            }
        }
        timeline.push_back(what.str());
    }
    writer.join();
    const double loaded_s = secs_since(t0);
    ASSERT_FALSE(writer_failed) << "a writer transaction failed for 30 s: " << writer_error;
    ASSERT_TRUE(restarted_ok);
    EXPECT_GE(kills_mid_load, 3) << "kills that landed while the writer wrote";
    EXPECT_TRUE(pg_restarted_mid_load) << "the PostgreSQL restart came after the writer was done";

    // The table is as planned (the writer's model of it is right).
    std::map<std::string, std::pair<std::string, std::string>> in_table;
    {
        std::istringstream rows(postgres.psql("SELECT email, first_name, last_name FROM " + table + " ORDER BY id"));
        for (std::string line; std::getline(rows, line);) {
            std::vector<std::string> cols;
            std::stringstream ls(line);
            for (std::string c; std::getline(ls, c, '|');) cols.push_back(c);
            ASSERT_EQ(cols.size(), 3u) << line;
            in_table[cols[0]] = {cols[1], cols[2]};
        }
    }
    ASSERT_EQ(in_table, live) << "the table is not what the writer meant to leave";

    // Settled: the CRM's contacts are the table's rows, the change log is empty and no
    // task is queued. Bounded: 45 s.
    const auto crm_matches_table = [&] {
        const auto recs = crm.records("contacts");
        if (recs.size() != in_table.size()) return false;
        for (const auto &rec : recs) {
            const auto e = rec.properties.find("email");
            if (e == rec.properties.end()) return false;
            const auto want = in_table.find(e->second);
            if (want == in_table.end()) return false;
            const auto f = rec.properties.find("firstname"), l = rec.properties.find("lastname");
            if (f == rec.properties.end() || l == rec.properties.end() || f->second != want->second.first || l->second != want->second.second) return false;
        }
        return true;
    };
    const auto queued = [&]() -> int64_t {
        const auto rep = http_request("GET", base + "/v1/status");
        if (rep.status != 200) return -1;
        int64_t n = 0;
        for (const auto &[name, c] : json::parse(rep.body)["connections"].items()) n += c.value("queued", int64_t{0});
        return n;
    };
    const bool settled = wait_until([&] { return crm_matches_table() && change_log_rows() == 0 && queued() == 0; }, 45s);
    const double settled_s = secs_since(t0);
    EXPECT_TRUE(settled) << "not settled 45 s after the load: " << crm.record_count("contacts") << " contacts in the CRM for " << in_table.size()
                         << " rows, change log " << change_log_rows() << " rows, queued " << queued();

    // The verdict, record by record.
    std::set<int> suspects;
    std::map<std::string, int> copies;
    for (const auto &rec : crm.records("contacts")) {
        const auto e = rec.properties.find("email");
        if (e == rec.properties.end()) {
            ADD_FAILURE() << "CRM contact " << rec.id << " has no email";
            continue;
        }
        const int id = id_of.count(e->second) ? id_of.at(e->second) : -1;
        if (id < 0) {
            ADD_FAILURE() << "CRM contact " << rec.id << " (" << e->second << ") is no row of this test";
            continue;
        }
        if (++copies[e->second] == 2) {
            ADD_FAILURE() << "row " << id << " (" << e->second << ") is in the CRM twice";
            suspects.insert(id);
        }
        const auto prop = [&](const char *p) { return rec.properties.count(p) ? rec.properties.at(p) : std::string("(none)"); };
        if (gone.count(e->second)) {
            ADD_FAILURE() << "row " << id << " (" << e->second << ") was deleted from the table but is in the CRM as " << rec.id << " (firstname "
                          << prop("firstname") << ")";
            suspects.insert(id);
        } else if (const auto &want = in_table.at(e->second); prop("firstname") != want.first || prop("lastname") != want.second) {
            ADD_FAILURE() << "row " << id << " (" << e->second << ") is in the CRM as " << prop("firstname") << " / " << prop("lastname") << ", not its final "
                          << want.first << " / " << want.second;
            suspects.insert(id);
        }
    }
    for (const auto &[email, values] : in_table)
        if (!copies.count(email)) {
            ADD_FAILURE() << "row " << id_of.at(email) << " (" << email << ") is missing from the CRM";
            suspects.insert(id_of.at(email));
        }
    const auto counters = crm.counters();
    EXPECT_EQ(counters.duplicates, 0u) << "creates the CRM refused as duplicates (409)";
    EXPECT_LE(counters.created, static_cast<uint64_t>(kRows)) << "records created in the CRM: at most once each";
    EXPECT_EQ(counters.created - counters.deleted, static_cast<uint64_t>(in_table.size())) << "created, less deleted: the live rows";
    EXPECT_EQ(change_log_rows(), 0) << "the change log is emptied once its events are durable";
    EXPECT_EQ(postgres.psql("SELECT count(*) FROM " + schema + ".refused"), "0") << "rows set aside as refused";
    const auto status_reply = http_request("GET", base + "/v1/status");
    const json status = status_reply.status == 200 ? json::parse(status_reply.body) : json::object();
    EXPECT_EQ(status.value("dead_letters", int64_t{-1}), 0) << status.dump();

    // recsync stopped cleanly (SIGTERM, at most 15 s), then the state database read: no
    // task left in the task log, no dead letter; `recsync dlq list` agrees.
    if (const pid_t p = pid.exchange(0); p > 0) {
        kill(p, SIGTERM);
        int st = 0;
        const bool exited = wait_until([&] { return waitpid(p, &st, WNOHANG) == p; }, 15s);
        if (!exited) {
            ADD_FAILURE() << "recsync did not stop within 15 s of SIGTERM";
            kill(p, SIGKILL);
            waitpid(p, nullptr, 0);
        } else {
            EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "recsync's exit status " << st;
        }
    }
    {
        const auto state = store::open_state_backend(config::load_config(cfg).state);
        EXPECT_EQ(state->tasks().count(), 0) << "tasks left in the task log";
        EXPECT_EQ(state->dead_letters().count(), 0) << "dead letters";
    }
    {
        const auto [rc, out] = testkit::run_command("'" + bin + "' dlq list -c '" + cfg + "' 2>&1");
        EXPECT_EQ(rc, 0) << out;
        EXPECT_NE(out.find("0 dead letter(s)"), std::string::npos) << out;
    }

    // For the record.
    const auto requests = crm.requests();
    size_t upserts = 0, searches = 0;
    for (const auto &r : requests) {
        upserts += r.target.ends_with("/batch/upsert");
        searches += r.target.ends_with("/search");
    }
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
    std::cout << "rows: " << kRows << " in " << txs.size() << " transactions (" << live.size() << " live, " << gone.size() << " deleted); writer retries "
              << writer_retries.load() << "\n";
    for (const auto &t : timeline) std::cout << "  " << t << "\n";
    std::map<std::string, int> not_found;  // "METHOD object": 404s, for the record
    for (const auto &r : requests)
        if (r.status == 404) {
            const std::string path = r.target.substr(0, r.target.find('?'));
            ++not_found[r.method + " " + path.substr(0, path.rfind('/'))];
        }
    std::cout << "CRM: " << counters.requests << " API requests, " << counters.created << " created, " << counters.updated << " updated, " << counters.deleted
              << " deleted, " << counters.not_found << " not found, " << counters.duplicates << " duplicates; " << upserts << " upserts, " << searches
              << " searches\n";
    for (const auto &[what, n] : not_found) std::cout << "  404: " << n << " x " << what << "\n";
    std::cout
              << "recsync logged " << log_warnings << " warnings and " << log_errors << " errors over " << runs << " runs\n"
              << "time: " << loaded_s << " s to the end of the load, " << settled_s - loaded_s << " s more to settle, " << secs_since(t0) << " s in all\n";

    if (::testing::Test::HasFailure()) {
        const std::string kept = dir.path() + "-kept";
        std::filesystem::create_directories(kept);
        std::filesystem::copy_file(log_path, kept + "/recsync.log", std::filesystem::copy_options::overwrite_existing);
        std::filesystem::copy(dir.file("state"), kept + "/state", std::filesystem::copy_options::overwrite_existing | std::filesystem::copy_options::recursive);
        {
            std::ofstream out(kept + "/mock_requests.txt");
            for (const auto &r : requests) out << r.seq << " " << r.at_ms << " " << r.method << " " << r.target << " " << r.status << " " << r.body << "\n";
        }
        std::filesystem::copy_file(postgres.log_path(), kept + "/postgres.log", std::filesystem::copy_options::overwrite_existing);
        std::cout << "evidence kept in " << kept << " (recsync.log, state/, mock_requests.txt, postgres.log)\n";
        int shown = 0;
        for (int id : suspects) {
            if (++shown > 5) break;
            const std::string email = email_of(id);
            std::set<std::string> crm_ids;
            for (const auto &rec : crm.records("contacts"))
                if (rec.properties.count("email") && rec.properties.at("email") == email) crm_ids.insert(rec.id);
            std::cout << "--- row " << id << " (" << email << "): " << plan[id].updates << " update(s), " << (plan[id].deleted ? "deleted" : "live")
                      << "; CRM ids now:";
            for (const auto &c : crm_ids) std::cout << " " << c;
            std::cout << "\nCRM requests naming it:\n";
            for (const auto &q : requests) {
                bool names = q.body.find("\"" + email + "\"") != std::string::npos;
                for (const auto &c : crm_ids) names = names || q.target.ends_with("/contacts/" + c);
                if (names)
                    std::cout << "  #" << q.seq << " " << q.at_ms << " " << q.method << " " << q.target << " -> " << q.status << " " << q.body.substr(0, 300) << "\n";
            }
            std::cout << "recsync log lines naming it:\n";
            std::string run;
            const std::string key = "'" + std::to_string(id) + "'";
            for (const auto &line : log_lines)
                if (line.starts_with("=== run")) run = line;
                else if (line.find(email) != std::string::npos || line.find(key) != std::string::npos) std::cout << "  (" << run << ") " << line.substr(0, 400) << "\n";
        }
    }
    crm.stop();
}

}  // namespace
}  // namespace recsync
