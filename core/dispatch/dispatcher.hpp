// The dispatcher: one thread that feeds every lane into the HTTP executor. Each turn it
// visits the lanes that can start a call (LaneScheduler: a ready ring and a timer heap, so
// idle lanes cost nothing) and starts a bounded number of ready tasks on each, as far as the
// lane's concurrency cap, the server's reported quota and its token bucket allow, then
// polls the network; finished calls are judged by the plugin
// (parse_response) and recorded durably in one transaction per batch: done (id map
// updated, task removed), retry (backoff with full jitter, Retry-After honoured and the
// lane paused) or dead-lettered with the request, response and reason.
#pragma once

#include "dispatch/concurrency_limit.hpp"
#include "dispatch/http_executor.hpp"
#include "dispatch/lane.hpp"
#include "dispatch/lane_scheduler.hpp"
#include "engine/metrics.hpp"
#include "queue/task_queue.hpp"
#include "store/state_store.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

namespace recsync::dispatch {

class Dispatcher {
public:
    using Connections = std::map<std::string, std::shared_ptr<engine::ConnectionRuntime>>;
    // max_calls_in_flight: across all lanes (delivery.max_calls_in_flight; see below).
    Dispatcher(store::SqliteDb &db, queue::TaskQueue &queue, store::StateStore &state, engine::Metrics &metrics, size_t max_calls_in_flight = 256);
    ~Dispatcher();

    // Creates one lane per connection and queues `pending` (tasks found at startup); then
    // starts the thread. Tasks for unknown connections stay in the database, logged.
    void start(const Connections &connections, std::vector<queue::Task> pending);
    // Queues durable tasks (already in the task table). Thread-safe.
    void submit(std::vector<queue::Task> tasks);
    // Reload: lanes switch to these connection runtimes before starting their next call
    // (calls in flight finish on the runtime they started with). A connection not there
    // before gets a lane, with `waiting`: its tasks in the database, read by the caller
    // before any runtime could make new ones for it. A lane whose connection is gone
    // stops starting calls and keeps its tasks until it is configured again
    // (Lane::set_removed). Applied before any task submitted after this call. Thread-safe.
    void update_connections(const Connections &connections, std::vector<queue::Task> waiting = {});
    // Stops starting calls, waits up to `drain` for calls in flight, joins the thread.
    void stop(std::chrono::milliseconds drain = std::chrono::seconds(10));

    bool running() const { return running_.load(); }
    // Per-lane queue depth, in-flight count, pause and counters. Thread-safe.
    nlohmann::json status() const;

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
        std::shared_ptr<const engine::ConnectionRuntime> connection;  // the one build_request used
        std::string record_id;
        std::string external_id;
        std::string access_token;  // the token the call was sent with
        bool auth = false;         // a token request, not a task
        recsync_action action = RECSYNC_ACTION_CREATE;  // what was sent (a create may go as upsert, find or update)
        bool was_in_doubt = false;  // a create that an earlier attempt may have made
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
    void begin(Lane &lane, queue::Task &task, std::vector<Completion> &immediate);
    // Auth refresh: true if the lane has a usable token; starts a refresh when due.
    bool ensure_token(Lane &lane, util::TimePoint now, util::TimePoint &wake);
    void finish_auth(Lane &lane, const engine::ConnectionRuntime &conn, const HttpOutcome &o);
    void set_auth_error(Lane::AuthState &auth, std::string error);
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
    void apply_connections(Connections connections, std::vector<queue::Task> waiting, util::TimePoint now);
    // Pushes tasks into their lanes and records what coalescing folded away.
    void enqueue(std::vector<queue::Task> tasks, bool from_start);

    store::SqliteDb &db_;
    queue::TaskQueue &queue_;
    store::StateStore &state_;
    engine::Metrics &metrics_;
    HttpExecutor http_;
    // Added to (never erased) by reloads on the dispatcher thread, under lanes_mutex_.
    std::map<std::string, std::unique_ptr<Lane>> lanes_;
    LaneScheduler scheduler_;                              // which lanes to look at, and when
    std::unordered_map<uint64_t, InFlight> in_flight_;
    // Finished calls not yet recorded (the database was busy). Their records stay in flight.
    std::vector<Completion> unrecorded_;
    util::TimePoint unrecorded_since_ = util::TimePoint::max();  // when the oldest of them came
    std::vector<AwaitingMark> awaiting_mark_;
    std::vector<int64_t> lazy_marks_;  // creates sent without waiting for their mark (see begin)
    uint64_t next_tag_ = 1;
    std::mt19937_64 rng_{std::random_device{}()};

    std::mutex inbox_mutex_;
    std::vector<queue::Task> inbox_;
    std::optional<Connections> pending_connections_;  // under inbox_mutex_, with:
    std::vector<queue::Task> pending_waiting_;
    mutable std::mutex lanes_mutex_;  // guards each lane's connection pointer against status()
    std::atomic<bool> stopping_{false};
    std::atomic<bool> running_{false};
    std::chrono::steady_clock::time_point drain_deadline_{};
    std::thread thread_;
};

// "POST https://host/path\nName: value\n...\n\nbody", secret header values redacted.
std::string describe_request(const HttpCall &call);

}  // namespace recsync::dispatch
