// The dispatcher: one thread that feeds every lane into the HTTP executor. Each turn it
// takes what ingest committed, lets lanes that ran low read the next window of their
// backlog from the task log, visits the lanes that can start a call (LaneScheduler: a
// ready ring and a timer heap, so idle lanes cost nothing) and starts a bounded number of
// ready tasks on each, as far as the lane's concurrency cap, the server's reported quota
// and its token bucket allow, then polls the network. A task's call is decided at the
// head of its record's queue from the record's sync state (call_plan.hpp); finished calls
// are judged (verdict.hpp) and recorded durably in one delivery-log commit per batch.
#pragma once

#include "dispatch/call_plan.hpp"
#include "dispatch/concurrency_limit.hpp"
#include "dispatch/call_executor.hpp"
#include "dispatch/lane.hpp"
#include "dispatch/lane_scheduler.hpp"
#include "dispatch/verdict.hpp"
#include "model/backlog.hpp"
#include "model/lane_status.hpp"
#include "model/metrics.hpp"
#include "store/delivery_log.hpp"
#include "store/sync_state.hpp"
#include "store/task_log.hpp"

#include <atomic>
#include <functional>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

namespace recsync::dispatch {

struct DispatcherOptions {
    // Calls in flight across all lanes (delivery.max_calls_in_flight; see limit_ below).
    size_t max_calls_in_flight = 256;
    // ... up to this many while lanes grow for slow CRMs (delivery.max_calls_in_flight_ceiling).
    size_t max_calls_in_flight_ceiling = 4096;
    // Tasks held in memory across all lanes (delivery.tasks_in_memory): each lane's window
    // is this divided by the lanes, between kMinWindow and kMaxWindow.
    int64_t tasks_in_memory = 200'000;
    // Connections' limits shared with other instances (ratelimit.backend); none: each
    // lane's own bucket is the limit.
    std::shared_ptr<ratelimit::SharedLimiter> shared_limits;
};

// What became of a read's record handed to the inbound sink.
struct InboundOutcome {
    recsync_result_kind kind = RECSYNC_RESULT_OK;  // OK: durable; RETRY: try the read again later; FAIL: dead-letter it
    std::string reason;
    int64_t retry_after_ms = 0;  // RETRY for flow control (a full backlog): not before then, no attempt used
};

class Dispatcher {
public:
    using Connections = std::map<std::string, std::shared_ptr<model::ConnectionRuntime>>;
    // A finished READ's record (hydration): the engine plans it as an event from the
    // connection and calls `done` (from any thread, once) when that is durable or refused.
    // The read task finishes only then, so a crash in between reads the record again.
    using InboundDone = std::function<void(InboundOutcome)>;
    struct ReadRecord {
        std::string external_id;  // the record's id there
        std::string record;       // the plugin's READ answer (transform(INBOUND)'s input)
        std::string modified;     // its modification stamp there; empty: not reported
    };
    using InboundSink = std::function<void(const model::ConnectionRuntime &, const model::Task &, const ReadRecord &, InboundDone)>;
    static constexpr size_t kMinWindow = 32;
    static constexpr size_t kMaxWindow = 4096;

    Dispatcher(store::TaskLog &log, store::DeliveryLog &deliveries, store::SyncState &state, model::Backlog &backlog, model::Metrics &metrics,
               DispatcherOptions options = {});
    ~Dispatcher();

    // Creates one lane per connection, each of which first reads its backlog from the
    // task log (tasks of connections not configured stay there), then starts the thread.
    void start(const Connections &connections);
    // Tasks ingest just committed, in commit order. Thread-safe.
    void submit(std::vector<model::Task> tasks);
    // Links whose state in the store changed outside the results (store::Appended::
    // changed_links): a lane holding one reads it again before its record's next call.
    // Thread-safe; applied before tasks submitted after it.
    void forget_links(std::vector<model::LinkKey> keys);
    // Set before start(). Without a sink a READ simply finishes.
    void set_inbound_sink(InboundSink sink) { inbound_sink_ = std::move(sink); }
    // Reload: lanes switch to these connection runtimes before starting their next call
    // (calls in flight finish on the runtime they started with). A connection not there
    // before gets a lane, which reads its tasks from the log (accepted under an earlier
    // config). A lane whose connection is gone stops starting calls and keeps its tasks
    // until it is configured again (Lane::set_removed). Applied before any task submitted
    // after this call. Thread-safe.
    void update_connections(const Connections &connections);
    // Stops starting calls, waits up to `drain` for calls in flight, joins the thread.
    void stop(std::chrono::milliseconds drain = std::chrono::seconds(10));

    bool running() const { return running_.load(); }
    // Every lane's queue, window, calls and counters. Thread-safe.
    std::vector<model::LaneStatus> status() const;

private:
    // Calls in flight across all lanes, at most max_calls_in_flight. Ten thousand lanes
    // with one call each would open ten thousand connections, more than libcurl keeps for
    // reuse: it closes and reopens them, and the time goes to connection setup and malloc
    // (bench/run lanes: 0.19 of a single lane's throughput). Below that maximum the limit
    // follows what this thread keeps up with (ConcurrencyLimit). Lanes share it
    // round-robin (LaneScheduler), so none waits more than a turn for its share.
    ConcurrencyLimit limit_;
    struct InFlight {
        Lane *lane = nullptr;
        std::shared_ptr<const model::ConnectionRuntime> connection;  // the one build_request used
        std::string record_id;
        std::string external_id;
        std::string access_token;  // the token the call was sent with
        bool auth = false;         // a token request, not a task
        recsync_action action = RECSYNC_ACTION_CREATE;  // what was sent (the intent may differ)
        bool in_doubt = false;      // a create that an earlier attempt may have made
        model::SendState send_before = model::SendState::Unsent;  // the task's, before this call
        uint64_t payload_hash = 0;
        // A batch (ABI 1.6): every record it carries, in the order the plugin built it
        // (the first is the one above, which holds the call's slot); empty for one record.
        struct Member {
            std::string record_id;
            std::string external_id;
            bool in_doubt = false;
            model::SendState send_before = model::SendState::Unsent;
            uint64_t payload_hash = 0;
        };
        std::vector<Member> batch;
        util::TimePoint started{};  // when the call was handed to the executor: its answer time
    };
    // A task whose call is decided (plan_task) and not yet built.
    struct Planned {
        model::Task *task = nullptr;
        std::string record_id;
        CallPlan plan;
        model::CreateRetry create_retry = model::CreateRetry::Resend;
        uint64_t payload_hash = 0;
    };
    struct Completion;
    // A create's first call, held until the task's durable "sent" mark is committed.
    struct AwaitingMark {
        HttpCall call;
        Lane *lane;
        std::string record_id;
        int64_t task_id;
    };

    void run();
    void start_calls(util::TimePoint now, util::TimePoint &wake);
    void begin(Lane &lane, model::Task &task, std::vector<Completion> &immediate);
    // begin() in two steps: decide the call (or end the task without one: nullopt), then
    // build and send it alone.
    std::optional<Planned> plan_task(Lane &lane, model::Task &task, std::vector<Completion> &immediate);
    void send_single(Lane &lane, Planned &&p);
    // On a lane whose provider has batch endpoints: the started task, and as many ready
    // records as its batch may carry whose calls are of the same object and action, go in
    // one call (one token, one slot); the first decides. A record whose call cannot go in
    // that batch goes back to the ready queue for the next turn.
    void begin_batch(Lane &lane, model::Task &first, util::TimePoint now);
    void send_batch(Lane &lane, std::vector<Planned> &&group, util::TimePoint now);
    // Whether the planned call may ride in a batch, and how many records that batch takes.
    size_t batch_size_for(const Lane &lane, const Planned &p) const;
    // batch.max_wait_ms: until when a lane short of tokens holds its part-full batch for
    // more ready records (at most that long after the first was ready); <= now: send.
    util::TimePoint batch_hold_until(Lane &lane, util::TimePoint now);
    // The task's send state now that its call goes out (see begin()); true if the call
    // must wait for a durable mark first.
    bool note_sending(Lane &lane, const Planned &p, recsync_action sent);
    void answered_batch(InFlight &&f, HttpOutcome &&o, util::TimePoint at);
    // A record's Completion, before its verdict: what its call was sent as.
    static Completion completion_of(const InFlight &f, InFlight::Member &&m);
    // Auth refresh: true if the lane has a usable token; starts a refresh when due.
    bool ensure_token(Lane &lane, util::TimePoint now, util::TimePoint &wake);
    // A finished call, judged: its completion goes with the next results.
    void answered(InFlight &&f, HttpOutcome &&o, util::TimePoint at);
    // Records finished calls durably, then applies them to the lanes. With wait=false it
    // gives up (returns false, nothing changed) while another thread holds the database:
    // ingest's group commits hold it through their fsync, and the dispatcher should be
    // starting calls meanwhile, not queueing behind them.
    bool complete(std::vector<Completion> &batch, bool wait);
    // Tries to record unrecorded_ (all of it: wait=true, at exit) together with the
    // "sent" marks of awaiting_mark_, whose calls then start. With wait=false both wait
    // for the next turn while another thread holds the database.
    void record_results(bool wait);
    // After that commit: start the marked calls, or, if it failed, turn them into retries.
    void start_marked();
    // record_results(false) once results have waited kResultsDelay, or kResultsBatch of
    // them are waiting, or calls wait for their marks. Each commit rewrites the database
    // pages it touches: one per answer was a third of the dispatcher's time at 20,000
    // calls/s (bench/run e2e), one per 2 ms costs a fraction. A result waiting here holds
    // its record (its next change waits), not a call slot (Lane::end_call).
    void record_results_if_due(util::TimePoint now);
    // Keeps unrecorded_since_ true: max() when nothing waits, else when the oldest came.
    void note_unrecorded(util::TimePoint now);
    // What an answer says about the lane's pace (a 429, or a 503 with Retry-After: pause
    // and AIMD; the server's reported quota; a success climbs back), applied when the
    // answer comes, not when it is recorded: the next call may be about to start.
    void apply_flow_control(Lane &lane, const Completion &c, util::TimePoint now);
    static constexpr std::chrono::milliseconds kResultsDelay{2};
    static constexpr size_t kResultsBatch = 256;
    // Past this age, or kResultsBatch waiting, results are recorded even if that means
    // waiting for the database.
    static constexpr std::chrono::milliseconds kResultsMaxWait{50};
    void fail_marked(const std::exception &e);
    void take_inbox();
    void apply_connections(Connections connections, util::TimePoint now);
    Lane &add_lane(const std::string &name, std::shared_ptr<model::ConnectionRuntime> conn, util::TimePoint now);
    // Gives a limited lane its shared tokens (options_.shared_limits), or takes them away
    // from one whose connection became unlimited.
    void share_limit(const std::string &name, Lane &lane);
    // Every lane's window from tasks_in_memory and the number of lanes.
    void size_windows();
    // Lanes that ran low read their next window from the task log: at most kRefillsPerTurn
    // per turn, so a start with 10,000 lanes does not hold the network for a second.
    void refill(util::TimePoint now);
    void note_refill(Lane &lane);
    // A lane's call answered: its calls-in-flight target, and with it the global maximum.
    void note_answer(Lane &lane, const InFlight &f, util::TimePoint at);
    // Each lane's growth past its max_in_flight (InFlightTarget), and their sum, which
    // raises limit_'s maximum from max_calls_in_flight toward the ceiling.
    std::unordered_map<const Lane *, int> lane_growth_;
    int64_t growth_ = 0;
    static constexpr size_t kRefillsPerTurn = 64;
    // The sync state of records that came into windows this turn, read in batches of
    // kLinksPerRead (one read transaction each), before any of them starts.
    void note_unlinked(Lane &lane);
    void read_links();
    static constexpr size_t kLinksPerRead = 512;
    // A first-sighting read waits while creates of its object are unrecorded on its lane,
    // looking again this often, for at most this long after it was accepted.
    static constexpr std::chrono::milliseconds kFirstSightingRecheck{200};
    static constexpr int64_t kFirstSightingMaxWaitMs = 30'000;
    // A create or upsert read from the log that an earlier run may have sent (its id is
    // no newer than the log's at this start) is in doubt, unless the store's mark is exact
    // for it (creates retried by a FIND are marked before they go out).
    void adopt_from_earlier_run(model::Task &t, const model::ConnectionRuntime &conn) const;

    store::TaskLog &log_;
    store::DeliveryLog &deliveries_;
    store::SyncState &state_;
    model::Backlog &backlog_;
    model::Metrics &metrics_;
    const DispatcherOptions options_;
    CallExecutor http_;  // HTTP, and PostgreSQL connections' appliers
    int64_t last_id_at_start_ = 0;
    // Added to (never erased) by reloads on the dispatcher thread, under lanes_mutex_.
    std::map<std::string, std::unique_ptr<Lane>> lanes_;
    util::TimePoint next_oldest_at_{};  // when the lanes next note their oldest task (Lane::note_oldest)
    std::vector<Lane *> refill_;  // lanes that want to read from the log (Lane::wanted)
    std::vector<Lane *> unlinked_;  // lanes with records whose sync state is not read yet
    util::TimePoint refill_retry_at_{};  // after a failed read
    LaneScheduler scheduler_;  // which lanes to look at, and when
    std::unordered_map<uint64_t, InFlight> in_flight_;
    // Finished calls not yet recorded (the database was busy). Their records stay in flight.
    std::vector<Completion> unrecorded_;
    util::TimePoint unrecorded_since_ = util::TimePoint::max();  // when the oldest of them came
    util::TimePoint record_retry_at_{};  // after a failed results commit, the next try
    std::vector<AwaitingMark> awaiting_mark_;
    std::vector<int64_t> lazy_marks_;  // creates sent without waiting for their mark (see begin)
    uint64_t next_tag_ = 1;
    std::mt19937_64 rng_{std::random_device{}()};

    InboundSink inbound_sink_;
    // Reads whose record the sink has, by a number of ours, until it says what became of it.
    std::unordered_map<uint64_t, Completion> awaiting_inbound_;
    std::vector<const Completion *> inbound_this_round_;  // in awaiting_inbound_: flow control still to apply
    uint64_t next_inbound_ = 1;
    void hand_inbound(Completion &&c, const model::ConnectionRuntime &conn);
    void take_inbound_outcomes();

    std::mutex inbox_mutex_;
    std::vector<model::Task> inbox_;
    std::vector<std::pair<uint64_t, InboundOutcome>> inbound_outcomes_;  // under inbox_mutex_
    std::vector<model::LinkKey> forgotten_links_;                        // under inbox_mutex_
    std::optional<Connections> pending_connections_;  // under inbox_mutex_
    mutable std::mutex lanes_mutex_;  // guards each lane's connection pointer and auth error against status()
    std::atomic<bool> stopping_{false};
    std::atomic<bool> running_{false};
    std::chrono::steady_clock::time_point drain_deadline_{};
    std::thread thread_;
};

// "POST https://host/path\nName: value\n...\n\nbody", secret header values redacted.
std::string describe_request(const HttpCall &call);

}  // namespace recsync::dispatch
