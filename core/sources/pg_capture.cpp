#include "sources/pg_capture.hpp"

#include "connectors/postgres/pg_change_log.hpp"
#include "connectors/postgres/pg_connection.hpp"
#include "connectors/postgres/pg_target.hpp"
#include "sources/accept_batch.hpp"
#include "util/clock.hpp"

#include <spdlog/spdlog.h>

#include <poll.h>

#include <atomic>
#include <condition_variable>
#include <thread>

namespace recsync::sources {

namespace pg = connectors::postgres;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// How long a local_writes stamp outlives its change's capture: far longer than a call to
// the database stays in flight (its timeout), so a two-way apply sent before the capture
// still finds the stamp.
constexpr int kLocalWritesKeepS = 600;

// A row as the entity's fields: the mapped columns renamed (all of them, as they are,
// without a map). A NULL column is left out (an absent field is "no value" to mappings
// and schemas), except where the row before had a value: that NULL clears the field, so
// it is kept as null and reaches the CRM as a cleared property.
json fields_of(json row, const config::PostgresTableConfig &t, const json *before = nullptr) {
    json out = json::object();
    const auto keep = [before](const std::string &column, const json &v) {
        if (!v.is_null()) return true;
        if (!before) return false;
        const auto was = before->find(column);
        return was != before->end() && !was->is_null();
    };
    if (t.columns.empty()) {
        for (auto &[k, v] : row.items())
            if (keep(k, v)) out[k] = std::move(v);
        return out;
    }
    for (const auto &[column, field] : t.columns)
        if (const auto it = row.find(column); it != row.end() && keep(column, *it)) out[field] = std::move(*it);
    return out;
}

json event_of(const pg::ChangeRow &r, const config::PostgresTableConfig &t) {
    json e = {{"id", "pg:" + r.xid + ":" + std::to_string(r.id)},
              {"entity", t.entity},
              {"event", r.op == 'I' ? "created" : r.op == 'U' ? "updated" : "deleted"},
              {"key", r.key},
              {"occurred_at", r.at}};
    json before = r.previous ? json::parse(*r.previous) : json();
    if (r.op != 'D' && r.data) e["data"] = fields_of(json::parse(*r.data), t, r.previous ? &before : nullptr);
    if (r.previous) e["previous"] = fields_of(std::move(before), t);
    return e;
}

}  // namespace

struct PgCapture::Worker {
    PgCapture &owner;
    const std::string name;
    std::atomic<bool> stopping{false};
    mutable std::mutex mutex;  // guards status
    PgCaptureStatus status;
    std::thread thread;

    Worker(PgCapture &o, std::string n) : owner(o), name(std::move(n)) {
        status.connection = name;
        thread = std::thread([this] { run(); });
    }
    ~Worker() {
        stopping = true;
        if (thread.joinable()) thread.join();
    }

    void note_error(const std::string &what) {
        owner.metrics_.pg_capture_failures.fetch_add(1, std::memory_order_relaxed);
        std::lock_guard l(mutex);
        if (status.last_error != what) spdlog::warn("postgres capture '{}': {}", name, what);
        status.last_error = what;
    }

    // Sleeps up to `d` in slices, so a stop is seen within 100 ms.
    void sleep_for(std::chrono::milliseconds d) {
        const auto until = std::chrono::steady_clock::now() + d;
        while (!stopping && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(100ms, until - std::chrono::steady_clock::now()));
    }

    // Waits for a NOTIFY on the connection, at most `d`.
    void wait_for_notify(pg::PgConnection &db, std::chrono::milliseconds d) {
        const auto until = std::chrono::steady_clock::now() + d;
        while (!stopping && std::chrono::steady_clock::now() < until) {
            pollfd p{db.socket(), POLLIN, 0};
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()).count();
            if (::poll(&p, 1, static_cast<int>(std::clamp<int64_t>(left, 0, 100))) > 0 && db.take_notifications() > 0) return;
        }
    }

    // One batch: its events durable, then its rows removed. False: try the same rows again later.
    bool capture(const model::Runtime &rt, const config::PostgresConfig &cfg, pg::ChangeLog &log, const std::vector<pg::ChangeRow> &rows, int64_t &retry_ms) {
        std::vector<json> events;
        std::vector<int64_t> ids, event_rows;  // every row's id; each event's row
        size_t own = 0;
        events.reserve(rows.size());
        for (const auto &r : rows) {
            ids.push_back(r.id);
            if (r.origin == name) {
                ++own;
                continue;
            }
            const auto *t = cfg.table(r.object);
            if (!t) {
                spdlog::warn("postgres capture '{}': change-log row {} is of object '{}', which postgres.tables no longer has: dropped", name, r.id, r.object);
                continue;
            }
            try {
                events.push_back(event_of(r, *t));
                event_rows.push_back(r.id);
            } catch (const std::exception &e) {
                spdlog::error("postgres capture '{}': change-log row {} cannot be read ({}): dropped", name, r.id, e.what());
            }
        }
        size_t refused = 0;
        std::vector<std::pair<int64_t, std::string>> set_aside;  // refused rows, with why
        if (!events.empty()) {
            const auto stop_requested = [this] { return stopping.load(); };
            auto a = accept_and_wait(owner.intake_, rt, name, events, std::nullopt, stop_requested);
            if (a && is_refusal(*a)) {
                // One refused row must not hold every later one: the batch goes event by
                // event, the refused ones logged, counted and set aside.
                a = accept_each(owner.intake_, rt, name, events, stop_requested, [&](size_t i, const IntakeAnswer &one) {
                    const auto &e = events[i];
                    ++refused;
                    set_aside.emplace_back(event_rows[i], one.error);
                    spdlog::error("postgres capture '{}': change {} of {} '{}' refused, kept in {}.refused: {}", name, e["id"].get<std::string>(), e["entity"].get<std::string>(),
                                  e["key"].get<std::string>(), cfg.schema, one.error);
                });
            }
            if (!a) return false;
            if (a->status != 202) {
                retry_ms = int64_t{a->retry_after_s} * 1000;
                note_error("changes not accepted (" + std::to_string(a->status) + "): " + a->error);
                return false;
            }
        }
        // Durable: the rows may go (if this fails, they are read again and dropped as repeats).
        // Refused ones are kept aside first, for a replay once the rules are fixed.
        for (const auto &[id, why] : set_aside) log.set_aside(id, why);
        log.remove(ids);
        owner.metrics_.pg_rows_captured.fetch_add(events.size() - refused, std::memory_order_relaxed);
        owner.metrics_.pg_own_rows_skipped.fetch_add(own, std::memory_order_relaxed);
        owner.metrics_.pg_rows_refused.fetch_add(refused, std::memory_order_relaxed);
        std::lock_guard l(mutex);
        status.captured += events.size() - refused;
        status.own_skipped += own;
        status.refused += refused;
        status.last_batch_ms = util::epoch_ms();
        status.last_error.clear();
        return true;
    }

    void run() {
        int failures = 0;
        const auto back_off = [&](int64_t asked_ms) {
            ++failures;
            sleep_for(std::chrono::milliseconds(std::max<int64_t>(asked_ms, std::min<int64_t>(30'000, 250LL << std::min(failures, 7)))));
        };
        std::unique_ptr<pg::PgConnection> db;
        std::unique_ptr<pg::ChangeLog> log;
        auto next_prune = std::chrono::steady_clock::now();
        while (!stopping) {
            const auto rt = owner.runtime_();
            const auto *conn = rt ? rt->connection(name) : nullptr;
            if (!conn) return;  // removed: refresh() stops this worker
            const auto &cfg = conn->config.postgres;
            try {
                if (!db || !db->ok()) {
                    log.reset();
                    db = std::make_unique<pg::PgConnection>(cfg.dsn);
                    log = std::make_unique<pg::ChangeLog>(*db, cfg);
                    log->listen();
                    std::lock_guard l(mutex);
                    status.connected = true;
                }
                const auto batch = log->read(cfg.batch_size);
                if (!batch.rows.empty()) {
                    int64_t retry_ms = 0;
                    if (!capture(*rt, cfg, *log, batch.rows, retry_ms)) {
                        back_off(retry_ms);
                        continue;
                    }
                    failures = 0;
                    if (static_cast<int>(batch.rows.size()) == cfg.batch_size) continue;  // more waiting
                }
                failures = 0;
                if (const auto now = std::chrono::steady_clock::now(); now >= next_prune) {
                    log->prune_local_writes(kLocalWritesKeepS);
                    next_prune = now + std::chrono::seconds(60);
                }
                // Rows held back behind an open transaction become readable when it ends,
                // which may notify nothing (it wrote no captured row): look again soon.
                if (batch.held_back) wait_for_notify(*db, 20ms);
                else wait_for_notify(*db, std::chrono::milliseconds(cfg.poll_interval_ms));
            } catch (const pg::PgError &e) {
                {
                    std::lock_guard l(mutex);
                    status.connected = false;
                }
                note_error(e.what());
                log.reset();
                db.reset();
                back_off(0);
            }
        }
    }
};

PgCapture::PgCapture(RuntimeSource runtime, Intake &intake, model::Metrics &metrics) : runtime_(std::move(runtime)), intake_(intake), metrics_(metrics) {}

PgCapture::~PgCapture() { stop(); }

void PgCapture::refresh() {
    const auto rt = runtime_();
    std::map<std::string, std::unique_ptr<Worker>> removed;
    std::lock_guard l(mutex_);
    for (auto it = workers_.begin(); it != workers_.end();) {
        const auto *c = rt ? rt->connection(it->first) : nullptr;
        if (!c) {
            removed.emplace(it->first, std::move(it->second));
            it = workers_.erase(it);
        } else {
            ++it;
        }
    }
    if (!rt) return;
    for (const auto &[name, conn] : rt->connections) {
        if (conn->config.provider != pg::kProviderId || workers_.count(name)) continue;
        bool captures = false;
        for (const auto &t : conn->config.postgres.tables) captures = captures || t.capture;
        if (captures) workers_[name] = std::make_unique<Worker>(*this, name);
    }
}

void PgCapture::stop() {
    std::map<std::string, std::unique_ptr<Worker>> all;
    {
        std::lock_guard l(mutex_);
        all.swap(workers_);
    }
    all.clear();  // each joins after its batch (a commit waited for is given up)
}

std::vector<PgCaptureStatus> PgCapture::status() const {
    std::vector<PgCaptureStatus> out;
    std::lock_guard l(mutex_);
    for (const auto &[_, w] : workers_) {
        std::lock_guard wl(w->mutex);
        out.push_back(w->status);
    }
    return out;
}

}  // namespace recsync::sources
