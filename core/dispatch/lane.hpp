// A lane: one connection's queue. Per record, at most one task in flight and FIFO
// otherwise; records with ready work wait in one FIFO so a record with many changes does
// not starve the others; retries wait in a timer heap. Owned by the dispatcher thread;
// only the atomics in `stats` are read elsewhere, and the connection, `removed` and the
// auth error under the dispatcher's lanes_mutex_.
#pragma once

#include "engine/runtime.hpp"
#include "queue/task.hpp"
#include "ratelimit/server_quota.hpp"
#include "ratelimit/token_bucket.hpp"

#include <atomic>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

namespace recsync::dispatch {

struct LaneStats {
    std::atomic<int64_t> queued{0};     // tasks waiting or in flight
    std::atomic<int64_t> in_flight{0};
    std::atomic<int64_t> paused_until_ms{0};  // epoch ms; 0 if not paused
    std::atomic<int64_t> server_remaining{-1};  // the server's reported allowance; -1 if none
    std::atomic<double> current_rate{0};        // the token bucket's rate now (AIMD); 0 if unlimited
    std::atomic<uint64_t> succeeded{0};
    std::atomic<uint64_t> retried{0};
    std::atomic<uint64_t> dead_lettered{0};
};

class Lane {
public:
    Lane(std::shared_ptr<const engine::ConnectionRuntime> connection, util::TimePoint now);

    const engine::ConnectionRuntime &connection() const { return *connection_; }
    // The connection's runtime for a call about to start; the call keeps it (and so its
    // plugin instance) alive until it completes, whatever reloads happen meanwhile.
    const std::shared_ptr<const engine::ConnectionRuntime> &connection_ptr() const { return connection_; }
    // Reload: new calls use `next`; the token bucket keeps its tokens, takes the new rate.
    void set_connection(std::shared_ptr<const engine::ConnectionRuntime> next, util::TimePoint now);
    // A reload removed its connection: it starts no call (those in flight finish) and
    // keeps its tasks, which stay in the database too, until a reload configures the
    // connection again.
    void set_removed(bool removed) { removed_ = removed; }
    bool removed() const { return removed_; }

    ratelimit::TokenBucket &bucket() { return bucket_; }
    // AIMD on the lane's rate: the server said "too many" (a 429, or a 503 with
    // Retry-After) -> halve (not below 1/64 of the configured rate); a success -> add 1/50
    // of the configured rate back, up to it. The lane settles near what the server really
    // allows instead of bouncing off its limit. The calls of one burst are refused
    // together: that is one signal, so the rate is halved at most once a second.
    void on_throttled(util::TimePoint now);
    void on_success(util::TimePoint now);
    // What the server said about its own limit in a response (the plugin's
    // set_rate_limit); the calls still in flight count as already spent.
    void on_rate_limit(const ratelimit::ServerReport &report, util::TimePoint now) { quota_.report(report, now); }
    ratelimit::ServerQuota &quota() { return quota_; }
    // Permission for one call: the server's quota and the token bucket both allow it (and
    // both are charged), or false with `wake` lowered to when it may be asked again.
    bool acquire_send(util::TimePoint now, util::TimePoint &wake);
    // Until when no call may start (token-bucket pause or used-up server quota); <= now if
    // not paused.
    util::TimePoint paused_until(util::TimePoint now);
    LaneStats &stats() { return stats_; }

    // What coalescing changed, to be mirrored in the task table.
    struct Coalesced {
        std::vector<int64_t> dropped;  // task ids no longer to be sent
        int64_t rewritten = 0;         // a waiting task whose payload is now `payload`
        std::string payload;
    };
    // Adds a task behind the record's earlier ones (`ready_at`: not before then), folding
    // it into the record's last waiting task where the result is the same (latest state
    // wins): create|upsert|update + update -> that task, its payload merged with the
    // update's (JSON objects merged recursively, the update winning);
    // update|upsert + delete -> delete; an unsent create + delete -> nothing. A task in
    // flight is never touched; one waiting for its retry is waiting (an attempted create
    // takes updates, not a delete). Under a rate limit this turns a burst of edits into one
    // call.
    Coalesced push(queue::Task task, util::TimePoint ready_at);
    // Moves records whose retry time has come into the ready FIFO.
    void promote_due(util::TimePoint now);
    // True if a record can start (never on a removed lane); drops stale entries from the
    // ready FIFO first.
    bool has_ready();
    // max_in_flight counts calls on the wire: a call whose answer is in but not yet
    // recorded (results are committed in batches) no longer holds a slot, though its
    // record stays busy until then.
    bool below_concurrency_cap() const { return in_flight_ < connection_->config.max_in_flight; }
    // Marks the next ready record in flight and returns its head task.
    // Only after has_ready() returned true.
    queue::Task &start_next();
    // The head task of a record in flight.
    queue::Task &head(const std::string &record_id);
    // The record's call is over at `now` (answered, failed to send, or never sent): its
    // slot is free for another record, and the server's quota learns when the answer came.
    // Idempotent; finish and retry_at imply it.
    void end_call(const std::string &record_id, util::TimePoint now);
    // The record's call never went out (no id to act on, the plugin refused to build it,
    // the state database failed): its slot is free and it holds no place in the quota.
    void cancel_call(const std::string &record_id);
    // The head task finished (done or dead-lettered): the record's next task, if any, queues.
    void finish(const std::string &record_id, util::TimePoint now);
    // The head task will be tried again at `at`.
    void retry_at(const std::string &record_id, util::TimePoint at, util::TimePoint now);
    // Earliest pending retry, or TimePoint::max().
    util::TimePoint next_retry() const;
    // Calls on the wire (see below_concurrency_cap).
    int in_flight() const { return in_flight_; }

    // Access token for calls: the configured one, or (auth refresh) the one the host
    // fetched through the plugin, cached until shortly before it expires.
    struct AuthState {
        std::string token;
        util::TimePoint expires{};
        util::TimePoint refresh_at{};    // refresh early, while the old token still works
        util::TimePoint retry_at{};      // after a failed refresh
        bool refreshing = false;
        int failures = 0;
        std::string last_error;
    };
    AuthState &auth() { return auth_; }

    // Where the LaneScheduler has this lane (its bookkeeping, kept here to need no map).
    struct ScheduleState {
        bool in_ring = false;
        util::TimePoint timer = util::TimePoint::max();  // the live timer; max() if none
    };
    ScheduleState &schedule_state() { return schedule_state_; }
    const std::string &access_token() const { return connection_->provider->has_auth_refresh() ? auth_.token : connection_->config.access_token; }

private:
    struct Record {
        // A list, not a deque: nearly every record holds one task (coalescing folds most
        // changes), and an empty std::deque already allocates a 512-byte block, which was
        // most of the memory of a million queued tasks (bench/run lanes).
        std::list<queue::Task> tasks;
        bool in_flight = false;  // its head task started and is not yet recorded
        bool on_wire = false;    // ... and its call is not over yet
        bool scheduled = false;  // in ready_ or in delayed_
        uint64_t ticket = 0;     // the current schedule entry; older entries are stale
    };
    // A schedule entry: valid only while the record still holds this ticket (coalescing
    // can empty and re-create a record, leaving entries behind that must not start it).
    struct Entry {
        std::string id;
        uint64_t ticket;
    };
    void schedule(const std::string &id, Record &r, util::TimePoint at, util::TimePoint now);
    // `answered`: when the call ended; none if it never went out.
    void end_call(Record &r, std::optional<util::TimePoint> answered);
    bool current(const Entry &e) const;
    // The bucket's rate, mirrored in stats() for /v1/status.
    void set_rate(double rate_per_second, util::TimePoint now);

    std::shared_ptr<const engine::ConnectionRuntime> connection_;
    ratelimit::TokenBucket bucket_;
    ratelimit::ServerQuota quota_;
    std::unordered_map<std::string, Record> records_;
    std::deque<Entry> ready_;
    uint64_t next_ticket_ = 1;
    struct Timed {
        util::TimePoint at;
        Entry entry;
        bool operator>(const Timed &o) const { return at > o.at; }
    };
    std::priority_queue<Timed, std::vector<Timed>, std::greater<>> delayed_;
    int in_flight_ = 0;
    bool removed_ = false;
    util::TimePoint last_decrease_{};
    AuthState auth_;
    ScheduleState schedule_state_;
    LaneStats stats_;
};

}  // namespace recsync::dispatch
