// bench_pgcapture: PostgreSQL as System A (connectors/postgres): how fast committed rows
// become durable tasks (capture), and how fast inbound changes become rows (apply),
// against the same run's plain insert rate (the baseline: what the database takes from one
// writer without recsync's trigger).
//
// In one process: a PostgreSQL 15 of its own (testkit::PostgresServer: initdb in /tmp,
// loopback, stopped at the end), the mock CRM, and the engine.
//   baseline: --rows rows into a table without triggers, --txn rows per transaction
//             (one multi-row INSERT each), from one libpq connection;
//   capture:  the same rows into a captured table while recsync runs: from the first
//             INSERT until every row is a durable event (its task in the task log; the
//             CRM's lane is held at 1 call/s so delivery takes no CPU from capture);
//   single:   --single-rows one-row transactions, baseline and capture alike;
//   apply:    --rows System A events (POST /v1/events, NDJSON of 1,000) that a rule
//             upserts into an apply-only table: from the first POST until the table holds
//             them all (16 calls in flight: 16 database connections).
// Lines (stdout): {"bench":"pgcapture", capture_rows_per_sec, apply_rows_per_sec,
// baseline_rows_per_sec, capture_single_rows_per_sec, baseline_single_rows_per_sec, ...}
#include "connectors/postgres/pg_connection.hpp"
#include "connectors/postgres/pg_schema.hpp"
#include "delivery_common.hpp"
#include "engine/engine.hpp"
#include "mock_crm.hpp"
#include "store/state_backend.hpp"
#include "support/postgres_server.hpp"
#include "support/test_support.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <cstdlib>
#include <iostream>
#include <thread>

namespace {

using namespace recsync;
using Clock = std::chrono::steady_clock;
namespace pg = connectors::postgres;

const char *kUsage = "usage: bench_pgcapture [--rows 100000] [--txn 1000] [--single-rows 5000]\n";

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Rows [from, to) into `table`, `per_txn` to a transaction (one multi-row INSERT each).
void insert_rows(pg::PgConnection &db, const std::string &table, int from, int to, int per_txn) {
    for (int i = from; i < to; i += per_txn) {
        std::string sql = "INSERT INTO " + table + " (id, email, first_name, status) VALUES ";
        for (int j = i; j < std::min(to, i + per_txn); ++j)
            sql += (j > i ? ",(" : "(") + std::to_string(j) + ",'r" + std::to_string(j) + "@example.com','First" + std::to_string(j) + "','lead')";
        db.exec(sql);
    }
}

bool wait_for(const std::function<bool()> &done, double timeout_s) {
    const auto t0 = Clock::now();
    while (!done()) {
        if (seconds_since(t0) > timeout_s) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
}

}  // namespace

int main(int argc, char **argv) {
    int rows = 100'000, per_txn = 1000, single_rows = 5000;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc) {
            std::cerr << kUsage;
            return 2;
        }
        if (a == "--rows") rows = std::atoi(argv[++i]);
        else if (a == "--txn") per_txn = std::atoi(argv[++i]);
        else if (a == "--single-rows") single_rows = std::atoi(argv[++i]);
        else {
            std::cerr << kUsage;
            return 2;
        }
    }
    spdlog::set_level(spdlog::level::warn);
    testkit::PostgresServer server;
    setenv("RECSYNC_BENCH_PG_DSN", server.dsn().c_str(), 1);
    const std::string columns = "(id bigint PRIMARY KEY, email text NOT NULL, first_name text, status text)";
    server.psql("CREATE TABLE plain " + columns + "; CREATE TABLE plain_single " + columns + "; CREATE TABLE customers " + columns + "; CREATE TABLE applied " + columns);

    mock::MockCrmOptions options;
    options.threads = 2;
    mock::MockCrm crm(options);
    crm.start();
    testkit::TempDir dir;
    testkit::copy_plugin(RECSYNC_PLUGIN_DIR, "hubspot", dir.file("plugins"));
    std::filesystem::create_directories(dir.file("rules/schemas"));
    std::filesystem::copy_file(RECSYNC_SOURCE_DIR "/rules/schemas/contact.json", dir.file("rules/schemas/contact.json"));
    dir.write("rules/bench.yaml",
              "mappings:\n"
              "  to-crm: { fields: [ { from: email, to: email, required: true }, { from: first_name, to: firstname } ] }\n"
              "  to-db: { fields: [ { from: email, to: email }, { from: first_name, to: first_name }, { from: status, to: status } ] }\n"
              "rules:\n"
              "  - { name: captured, on: { source: db, entity: contact, event: created }, do: { action: create, target: crm, object: contacts, mapping: to-crm } }\n"
              "  - { name: applied, on: { entity: contact, event: created }, do: { action: upsert, target: db, object: applied, mapping: to-db } }\n");
    const auto cfg_path = dir.write("recsync.yaml",
                                    "plugins_dir: plugins\nrules_dir: rules\nstate: { path: state/r.db }\nserver: { listen: '127.0.0.1:0' }\nlog_level: warn\n"
                                    "delivery: { max_backlog: { per_connection: 10000000, total: 10000000 } }\n"
                                    "connections:\n"
                                    "  crm: { provider: hubspot, base_url: '" + crm.base_url() + "', rate_limit: { per_second: 1, burst: 1 } }\n"
                                    "  db:\n"
                                    "    provider: postgres\n"
                                    "    max_in_flight: 16\n"
                                    "    postgres:\n"
                                    "      dsn_env: RECSYNC_BENCH_PG_DSN\n"
                                    "      tables:\n"
                                    "        contacts: { table: customers, key: id, entity: contact }\n"
                                    "        applied: { table: applied, key: id, capture: false }\n");
    const auto cfg = config::load_config(cfg_path);
    {
        pg::PgConnection db(server.dsn());
        db.exec("BEGIN");
        for (const auto &s : pg::install_sql(cfg.connection("db")->postgres)) db.exec(s);
        db.exec("COMMIT");
    }
    pg::PgConnection writer(server.dsn());

    // Baselines first, on the idle database.
    auto t0 = Clock::now();
    insert_rows(writer, "plain", 0, rows, per_txn);
    const double baseline = rows / seconds_since(t0);
    t0 = Clock::now();
    insert_rows(writer, "plain_single", 0, single_rows, 1);
    const double baseline_single = single_rows / seconds_since(t0);

    engine::Engine engine(cfg);
    engine.start();
    const auto captured = [&] { return engine.metrics().pg_rows_captured.load(); };

    t0 = Clock::now();
    insert_rows(writer, "customers", 0, rows, per_txn);
    const double writer_with_trigger = rows / seconds_since(t0);
    const bool capture_done = wait_for([&] { return captured() >= static_cast<uint64_t>(rows); }, 600);
    const double capture = captured() / seconds_since(t0);

    t0 = Clock::now();
    insert_rows(writer, "customers", rows, rows + single_rows, 1);
    const bool single_done = wait_for([&] { return captured() >= static_cast<uint64_t>(rows + single_rows); }, 600);
    const double capture_single = (captured() - rows) / seconds_since(t0);
    const int64_t tasks_queued = engine.state().tasks().count();

    // Apply: System A events upserted into `applied`, 1,000 per request.
    const std::string events_url = "http://127.0.0.1:" + std::to_string(engine.port()) + "/v1/events";
    const auto applied = [&] { return std::stoll(server.psql("SELECT count(*) FROM applied")); };
    t0 = Clock::now();
    for (int i = 0; i < rows; i += 1000) {
        std::string body;
        for (int j = i; j < std::min(rows, i + 1000); ++j)
            body += nlohmann::json{{"entity", "contact"}, {"event", "created"}, {"key", std::to_string(j)},
                                   {"data", {{"email", "a" + std::to_string(j) + "@example.com"}, {"first_name", "A"}, {"status", "lead"}}}}
                        .dump() + "\n";
        for (;;) {
            const auto r = testkit::http_request("POST", events_url, body, {"Content-Type: application/x-ndjson"});
            if (r.status == 202) break;
            if (r.status != 429) {
                std::cerr << "bench_pgcapture: /v1/events answered " << r.status << ": " << r.body << "\n";
                return 1;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
    const bool apply_done = wait_for([&] { return applied() >= rows; }, 600);
    const double apply = applied() / seconds_since(t0);
    const auto own_skipped = engine.metrics().pg_own_rows_skipped.load();
    const auto dead = engine.dead_letters().count();
    engine.stop(std::chrono::seconds(1));
    crm.stop();

    nlohmann::json j = {{"bench", "pgcapture"},
                        {"rows", rows},
                        {"rows_per_txn", per_txn},
                        {"single_rows", single_rows},
                        {"capture_rows_per_sec", std::round(capture)},
                        {"apply_rows_per_sec", std::round(apply)},
                        {"baseline_rows_per_sec", std::round(baseline)},
                        {"capture_single_rows_per_sec", std::round(capture_single)},
                        {"baseline_single_rows_per_sec", std::round(baseline_single)},
                        {"writer_with_trigger_rows_per_sec", std::round(writer_with_trigger)},
                        {"capture_ratio", capture / baseline},
                        {"tasks_queued", tasks_queued},
                        {"apply_rows_captured_again", engine.metrics().pg_rows_captured.load() - static_cast<uint64_t>(rows + single_rows)},
                        {"own_rows_skipped", own_skipped},
                        {"dead_letters", dead},
                        {"complete", capture_done && single_done && apply_done},
                        {"meets_target", capture_done && capture >= 20'000},
                        {"load_average", bench::load_average()}};
    std::cout << j.dump() << std::endl;
    return j["complete"].get<bool>() ? 0 : 1;
}
