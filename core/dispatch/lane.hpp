// A lane: one connection's queue. Per record, at most one task in flight and FIFO
// otherwise; records with ready work wait in one FIFO so a record with many changes does
// not starve the others; retries wait in a timer heap. A lane holds a window of its
// backlog, not all of it: the oldest tasks, up to its window size, and reads the next ones
// from the task log as it works through them (see "The window" below). Owned by the
// dispatcher thread; only the atomics in `stats` are read elsewhere, and the connection,
// `removed` and the auth error under the dispatcher's lanes_mutex_.
#pragma once

#include "dispatch/auth_state.hpp"
#include "dispatch/inflight_target.hpp"
#include "model/backlog.hpp"
#include "model/latency_histogram.hpp"
#include "model/link_state.hpp"
#include "model/runtime.hpp"
#include "model/task.hpp"
#include "ratelimit/server_quota.hpp"
#include "ratelimit/shared_limiter.hpp"
#include "ratelimit/token_bucket.hpp"

#include <atomic>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace recsync::dispatch {

struct LaneStats {
    std::atomic<int64_t> in_memory{0};  // tasks held (the window)
    std::atomic<int64_t> in_flight{0};
    std::atomic<int64_t> paused_until_ms{0};    // epoch ms; 0 if not paused
    std::atomic<int64_t> server_remaining{-1};  // the server's reported allowance; -1 if none
    std::atomic<double> current_rate{0};        // the token bucket's rate now (AIMD); 0 if unlimited
    std::atomic<int64_t> in_flight_target{0};   // calls it may have in flight now (InFlightTarget)
    std::atomic<double> answer_ms{0};           // the CRM's recent mean answer time
    std::atomic<uint64_t> succeeded{0};
    std::atomic<uint64_t> retried{0};
    std::atomic<uint64_t> dead_lettered{0};
    std::atomic<uint64_t> unchanged{0};
    std::atomic<uint64_t> skipped{0};
    std::atomic<uint64_t> throttled{0};
    std::atomic<int64_t> throttled_ms{0};
    std::atomic<int64_t> oldest_created_ms{0};  // the oldest held task's acceptance (epoch ms); 0: none. See Lane::note_oldest
    model::LatencyHistogram delivery;  // acceptance -> delivered
    model::LatencyHistogram answer;    // per call
    // The last failure (a retry's or a dead letter's reason) and when (epoch ms): written
    // by the dispatcher thread, read by status requests.
    void note_error(std::string reason, int64_t at_ms) {
        std::lock_guard l(error_mutex);
        last_error = std::move(reason);
        last_error_ms = at_ms;
    }
    std::pair<std::string, int64_t> error() const {
        std::lock_guard l(error_mutex);
        return {last_error, last_error_ms};
    }

private:
    mutable std::mutex error_mutex;
    std::string last_error;
    int64_t last_error_ms = 0;
};

class Lane {
public:
    // `backlog`: where the connection's tasks are counted (ingest counts them in; the lane
    // counts them out as they finish).
    Lane(std::shared_ptr<const model::ConnectionRuntime> connection, model::Backlog &backlog, util::TimePoint now);

    const model::ConnectionRuntime &connection() const { return *connection_; }
    // The connection's runtime for a call about to start; the call keeps it (and so its
    // plugin instance) alive until it completes, whatever reloads happen meanwhile.
    const std::shared_ptr<const model::ConnectionRuntime> &connection_ptr() const { return connection_; }
    // Reload: new calls use `next`; the token bucket keeps its tokens, takes the new rate.
    void set_connection(std::shared_ptr<const model::ConnectionRuntime> next, util::TimePoint now);
    // A reload removed its connection: it starts no call (those in flight finish) and
    // keeps its tasks, which stay in the task log too, until a reload configures the
    // connection again.
    void set_removed(bool removed) { removed_ = removed; }
    bool removed() const { return removed_; }
    const model::Backlog::Counter &queued() const { return queued_; }

    ratelimit::TokenBucket &bucket() { return bucket_; }
    // The connection's limit shared with other instances (ratelimit.backend), if any: a
    // call then also needs one of the tokens this instance leased.
    void share(std::shared_ptr<ratelimit::SharedTokens> tokens) { shared_ = std::move(tokens); }
    ratelimit::SharedTokens *shared() const { return shared_.get(); }
    // AIMD on the lane's rate: the server said "too many" (a 429, or a 503 with
    // Retry-After) -> halve (not below 1/64 of the configured rate); a success -> add 1/50
    // of the configured rate back, up to it. The lane settles near what the server really
    // allows instead of bouncing off its limit. The calls of one burst are refused
    // together: that is one signal, so the rate is halved at most once a second.
    void on_throttled(util::TimePoint now);
    void on_success(util::TimePoint now);
    // What the server said about its own limit in a response (the plugin's
    // set_rate_limit); the calls still in flight count as already spent. With a shared
    // limit (ratelimit.backend) the window's limit goes to the other instances too: it
    // caps the shared bucket.
    void on_rate_limit(const ratelimit::ServerReport &report, util::TimePoint now) {
        quota_.report(report, now);
        if (shared_) shared_->server_limit(report.limit, report.window_ms, now);
    }
    ratelimit::ServerQuota &quota() { return quota_; }
    // Permission for one call: the server's quota and the token bucket both allow it (and
    // both are charged), or false with `wake` lowered to when it may be asked again.
    bool acquire_send(util::TimePoint now, util::TimePoint &wake);
    // Until when no call may start (token-bucket pause or used-up server quota); <= now if
    // not paused.
    util::TimePoint paused_until(util::TimePoint now);
    LaneStats &stats() { return stats_; }
    // Sets stats().oldest_created_ms to the acceptance time of the oldest task it holds:
    // the oldest of the connection's whole backlog, since the tasks left in the log are
    // newer than the window. A walk over the held records: the dispatcher calls it about
    // once a second, not per task.
    void note_oldest();

    // ---- The window ----
    // A lane is *caught up* while every task of its connection above loaded_upto() is
    // still on its way to it from ingest (committed, handed to the dispatcher): it takes
    // them from there, as long as it has room. Once its window is full it leaves the rest
    // in the task log and is no longer caught up; when its work falls below half the
    // window it reads the next tasks from the log (above loaded_upto(), in order), until a
    // read returns less than asked: caught up again. A new lane (a start, a reload adding a
    // connection) begins not caught up, so it reads its tasks from the log first. Tasks of
    // records waiting for a time (a retry, or not due yet) do not count against the window
    // (a burst of failures, or a backlog of retries read after a restart, would otherwise
    // stall it), up to four windows in all. A lane grown for a slow CRM holds at least
    // twice its calls in flight, so its calls never wait for a read of the log.
    void set_window(size_t tasks) { window_ = std::max<size_t>(tasks, 1); }
    size_t window() const {
        const int target = target_.current();
        return target > connection_->config.max_in_flight ? std::max(window_, 2 * static_cast<size_t>(target)) : window_;
    }
    // A task ingest just committed: held (true) if the lane is caught up and has room;
    // else false, and it stays in the log for a later read. Ids come in increasing order
    // (the task log's commit order); one the lane already read from the log is ignored.
    bool offer(model::Task task, util::TimePoint ready_at, bool &folded);
    // How many tasks to read from the log now: 0 while caught up or with enough work.
    size_t wanted() const;
    int64_t loaded_upto() const { return loaded_upto_; }
    // The tasks a read returned (above loaded_upto(), oldest first) and whether that was
    // all the log had (fewer than asked). Returns how many folded into waiting tasks.
    size_t loaded(std::vector<model::Task> tasks, bool all, util::TimePoint now);
    size_t held() const { return held_; }
    bool caught_up() const { return caught_up_; }

    // Adds a task behind the record's earlier ones (`ready_at`: not before then), folding
    // it into the record's last *waiting* task where the result is the same: an update
    // into a waiting create, upsert or update (payloads merged, JSON objects recursively,
    // the newer winning; an older change, a replay, is absorbed without a merge); a delete
    // in place of a waiting task that never went out (its call may not have been made, so
    // nothing else needs undoing; the sync state decides at the head whether there is
    // anything to delete). A task in flight, or one whose call may have gone out, is never
    // replaced. Returns true if it folded. Folded tasks leave the task log with the task
    // they folded into (Task::absorbed).
    bool push(model::Task task, util::TimePoint ready_at);
    // Moves records whose retry time has come into the ready FIFO.
    void promote_due(util::TimePoint now);
    // True if a record can start (never on a removed lane); drops stale entries from the
    // ready FIFO first.
    bool has_ready();
    // max_in_flight counts calls on the wire: a call whose answer is in but not yet
    // recorded (results are committed in batches) no longer holds a slot, though its
    // record stays busy until then.
    bool below_concurrency_cap() const { return in_flight_ < target_.current(); }
    // A call of the lane was answered after `answer` (at `now`): calls in flight follow.
    // True if its target changed.
    bool note_answer(util::SteadyClock::duration answer, util::TimePoint now);
    int in_flight_target() const { return target_.current(); }
    // Marks the next ready record in flight and returns its head task.
    // Only after has_ready() returned true. A batch's riders (on_wire = false) are in
    // flight but hold no call slot and no place in the server's quota: the batch is one
    // call, counted on the record that started it, and end_call/cancel_call on a rider do
    // nothing.
    model::Task &start_next(bool on_wire = true);
    // The head task of the next ready record (only after has_ready() returned true).
    const model::Task &next_ready() const;
    // Ready records, counting entries gone stale (an upper bound), and when the ready FIFO
    // last went from empty to holding one: how long a part-full batch has been waiting.
    size_t ready_size() const { return ready_.size(); }
    util::TimePoint ready_since() const { return ready_since_; }
    // The token bucket's tokens now (unlimited: infinity).
    double spare_tokens(util::TimePoint now) { return bucket_.available(now); }
    // The record's head task goes in a call of its own, never in a batch (after its batch
    // was refused as a whole, so one bad record cannot fail the others), until it finishes.
    void set_solo(const std::string &record_id);
    bool solo(const std::string &record_id) const;
    // The head task of a record in flight.
    model::Task &head(const std::string &record_id);
    // The record's sync state at this link, as last read or written (nullopt: not read
    // since the record came into the window). Valid while the record has tasks here: the
    // dispatcher is the only writer of this lane's links.
    std::optional<model::LinkState> &link(const std::string &record_id);
    // The store's state of the record changed outside this lane's results (a change from
    // that side: Dispatcher::forget_links): read it again before its next call. A record
    // in flight keeps its copy, which its result writes over anyway.
    void forget_link(const std::string &record_id);
    // Records of `object` whose create or upsert has started and not finished (in flight,
    // waiting for its result or for a retry): while any is, a record the CRM announces
    // for the first time may be one of them, its id not yet recorded.
    int creating(std::string_view object) const;
    // Records that came into the window since the last call, whose sync state is to be
    // read (the dispatcher reads a batch of them at once); cleared by the call.
    std::vector<std::string> take_unlinked() { return std::exchange(unlinked_, {}); }
    bool has_unlinked() const { return !unlinked_.empty(); }
    // The record's call is over at `now` (answered, failed to send, or never sent): its
    // slot is free for another record, and the server's quota learns when the answer came.
    // Idempotent; finish and retry_at imply it.
    void end_call(const std::string &record_id, util::TimePoint now);
    // The record's call never went out (no id to act on, the plugin refused to build it,
    // the state database failed): its slot is free and it holds no place in the quota.
    void cancel_call(const std::string &record_id);
    // The head task finished (done, skipped or dead-lettered) and left the log with what
    // it absorbed: the record's next task, if any, queues.
    void finish(const std::string &record_id, util::TimePoint now);
    // The head task will be tried again at `at` (a retry).
    void retry_at(const std::string &record_id, util::TimePoint at, util::TimePoint now);
    // The head task goes again at `at`, as the next step of the same attempt (a FIND
    // answered, a 404 on the update of a create): not a retry, and not counted as one.
    void again_at(const std::string &record_id, util::TimePoint at, util::TimePoint now);
    // Earliest pending retry, or TimePoint::max().
    util::TimePoint next_retry() const;
    // Calls on the wire (see below_concurrency_cap).
    int in_flight() const { return in_flight_; }

    // Access token for calls: the configured one, or (auth refresh) the one the host
    // fetched through the plugin, cached until shortly before it expires.
    using AuthState = dispatch::AuthState;
    AuthState &auth() { return auth_; }

    // Where the LaneScheduler has this lane (its bookkeeping, kept here to need no map).
    struct ScheduleState {
        bool in_ring = false;
        util::TimePoint timer = util::TimePoint::max();  // the live timer; max() if none
        bool refill_listed = false;  // in the dispatcher's list of lanes to read from the log
        bool unlinked_listed = false;  // in its list of lanes with records to read the sync state of
    };
    ScheduleState &schedule_state() { return schedule_state_; }
    const std::string &access_token() const { return connection_->provider->has_auth_refresh() ? auth_.token : connection_->config.access_token; }
    // Where its calls go: the connection's base_url, or the one its token answer named.
    const std::string &base_url() const { return auth_.base_url.empty() ? connection_->config.base_url : auth_.base_url; }

    // Most tasks folded into one: past it the next change queues behind as a task of its
    // own (which folds the ones after it), so a record changed a million times while its
    // CRM is down costs a few thousand ids in memory, not a million.
    static constexpr size_t kMaxAbsorbed = 1000;

private:
    struct Record {
        // A list, not a deque: nearly every record holds one task (coalescing folds most
        // changes), and an empty std::deque already allocates a 512-byte block, which was
        // most of the memory of a million queued tasks (bench/run lanes).
        std::list<model::Task> tasks;
        std::optional<model::LinkState> link;
        bool in_flight = false;  // its head task started and is not yet recorded
        bool on_wire = false;    // ... and its call is not over yet (a batch's riders: never)
        bool solo = false;       // its head task goes alone (set_solo)
        bool scheduled = false;  // in ready_ or in delayed_
        bool creating = false;   // its head is a create or upsert that has started (counted in creating_)
        bool waiting = false;    // in delayed_: a retry, or not due yet (not counted against the window)
        uint64_t ticket = 0;     // the current schedule entry; older entries are stale
    };
    // A schedule entry: valid only while the record still holds this ticket.
    struct Entry {
        std::string id;
        uint64_t ticket;
    };
    void schedule(const std::string &id, Record &r, util::TimePoint at, util::TimePoint now);
    void delay(const std::string &id, Record &r, util::TimePoint at);
    // `answered`: when the call ended; none if it never went out.
    void end_call(Record &r, std::optional<util::TimePoint> answered);
    bool current(const Entry &e) const;
    // The bucket's rate, mirrored in stats() for /v1/status.
    void set_rate(double rate_per_second, util::TimePoint now);
    // Tasks that count against the window: held, less those of records waiting for a time
    // (a retry, or a task not due yet).
    size_t working() const { return held_ - std::min(held_, waiting_tasks_); }
    void count_held(int64_t delta);

    std::shared_ptr<const model::ConnectionRuntime> connection_;
    model::Backlog &backlog_;
    model::Backlog::Counter &queued_;
    ratelimit::TokenBucket bucket_;
    ratelimit::ServerQuota quota_;
    std::shared_ptr<ratelimit::SharedTokens> shared_;
    std::unordered_map<std::string, Record> records_;
    std::vector<std::string> unlinked_;  // see take_unlinked
    std::map<std::string, int, std::less<>> creating_;  // see creating()
    std::deque<Entry> ready_;
    util::TimePoint ready_since_{};
    uint64_t next_ticket_ = 1;
    struct Timed {
        util::TimePoint at;
        Entry entry;
        bool operator>(const Timed &o) const { return at > o.at; }
    };
    std::priority_queue<Timed, std::vector<Timed>, std::greater<>> delayed_;
    int in_flight_ = 0;
    InFlightTarget target_;
    bool removed_ = false;
    // The window (see above).
    size_t window_ = 4096;
    size_t held_ = 0;
    size_t waiting_tasks_ = 0;  // held by records waiting for a time
    bool caught_up_ = false;
    int64_t loaded_upto_ = 0;
    util::TimePoint last_decrease_{};
    AuthState auth_;
    ScheduleState schedule_state_;
    LaneStats stats_;
};

}  // namespace recsync::dispatch
