// PostgreSQL capture: each `provider: postgres` connection with captured tables has a
// thread that reads its change log in commit order (connectors/postgres/pg_change_log.hpp)
// and hands the rows to Intake as events from source <connection> (rules say
// `on: { source: <connection> }`); they are System A's changes, keyed by the table's key.
// A row's event id is pg:<xid>:<log id>, its time the trigger's clock (occurred_at), and
// the rows leave the log only once their events are durable: a crash between the two
// reads them again and the ids make the repeat harmless. Rows recsync's own apply wrote
// (origin = this connection) are removed without becoming events: no echo. LISTEN/NOTIFY
// only wakes the thread early; it looks every postgres.poll_interval anyway.
#pragma once

#include "model/metrics.hpp"
#include "model/runtime.hpp"
#include "sources/intake.hpp"

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace recsync::sources {

// What /v1/status shows of one connection's capture.
struct PgCaptureStatus {
    std::string connection;
    bool connected = false;
    uint64_t captured = 0;     // rows that became durable events
    uint64_t own_skipped = 0;  // rows of recsync's own apply
    uint64_t refused = 0;      // rows the rules or schemas refused (logged, skipped)
    int64_t last_batch_ms = 0;
    std::string last_error;
};

class PgCapture {
public:
    using RuntimeSource = std::function<std::shared_ptr<const model::Runtime>()>;
    PgCapture(RuntimeSource runtime, Intake &intake, model::Metrics &metrics);
    ~PgCapture();
    PgCapture(const PgCapture &) = delete;
    PgCapture &operator=(const PgCapture &) = delete;

    // Starts a thread per postgres connection of the runtime that captures a table; again
    // after a reload (connections added start, removed ones stop, the rest take the new
    // config at their next batch).
    void refresh();
    void stop();
    std::vector<PgCaptureStatus> status() const;

private:
    struct Worker;
    RuntimeSource runtime_;
    Intake &intake_;
    model::Metrics &metrics_;
    mutable std::mutex mutex_;
    std::map<std::string, std::unique_ptr<Worker>> workers_;
};

}  // namespace recsync::sources
