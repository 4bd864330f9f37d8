// The running engine: state database, dispatcher and HTTP API over one Runtime.
#pragma once

#include "config/config.hpp"
#include "engine/metrics.hpp"
#include "engine/runtime.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace recsync::dispatch {
class Dispatcher;
}
namespace recsync::queue {
class TaskQueue;
}
namespace recsync::server {
class HttpListener;
}
namespace recsync::store {
class SqliteDb;
class StateStore;
}  // namespace recsync::store

namespace recsync::util {
class WorkerThread;
}

namespace recsync::engine {

class DirWatcher;

class Engine {
public:
    // Builds the runtime (throws config::ConfigErrors) and opens the state database.
    explicit Engine(const config::EngineConfig &cfg);

    struct ReloadResult {
        bool ok = false;
        std::string message;  // what changed, or why nothing did
    };
    // Re-reads the config file, plugins and rules and, only if all of it loads, swaps
    // them in: new events use the new rules, new calls the new plugin instances, while
    // calls in flight finish on the instances they started with (each holds its own
    // reference; the old library unloads when the last one completes). On any error
    // nothing changes and the reason is returned, logged and shown in /v1/status.
    // Thread-safe; reloads are serialised.
    ReloadResult reload();
    ~Engine();

    // Resumes unfinished tasks, starts the dispatcher, then listens.
    void start();
    // Stops listening, drains calls in flight (up to `drain`), stops the dispatcher.
    void stop(std::chrono::milliseconds drain = std::chrono::seconds(10));
    uint16_t port() const;

    // Moves dead letters back into their lanes as fresh tasks (attempts reset), in one
    // transaction. ids empty: all of them (of `connection`, if not empty). Returns how many.
    // Only letters of connections configured now: the others stay dead letters, counted in
    // `held` (a task for a connection without a lane would wait unseen until a restart).
    size_t replay_dead_letters(const std::vector<int64_t> &ids, const std::string &connection = {}, size_t *held = nullptr);

    // The current runtime; hold the pointer for as long as one request uses it.
    std::shared_ptr<const Runtime> runtime() const;
    // {"generation", "last_ok_ms", "last_error", "last_error_ms"} for /v1/status.
    nlohmann::json reload_status() const;
    Metrics &metrics() { return metrics_; }
    // Runs `job` on the engine's admin thread, off the HTTP I/O threads (reloads and dead-
    // letter replays can take a while). Jobs must not throw. Until stop().
    void run_admin(std::function<void()> job);
    queue::TaskQueue &queue() { return *queue_; }
    store::StateStore &state() { return *state_; }
    dispatch::Dispatcher &dispatcher() { return *dispatcher_; }

private:
    std::string config_path_;
    mutable std::mutex runtime_mutex_;
    std::shared_ptr<const Runtime> runtime_;
    std::mutex reload_mutex_;
    uint64_t generation_ = 1;
    int64_t last_reload_ok_ms_ = 0;
    std::string last_reload_error_;
    int64_t last_reload_error_ms_ = 0;
    Metrics metrics_;
    std::unique_ptr<store::SqliteDb> db_;
    std::unique_ptr<queue::TaskQueue> queue_;
    std::unique_ptr<store::StateStore> state_;
    std::unique_ptr<dispatch::Dispatcher> dispatcher_;
    std::unique_ptr<server::HttpListener> listener_;
    std::unique_ptr<DirWatcher> watcher_;  // rules_dir changes -> reload()
    std::unique_ptr<util::WorkerThread> admin_;  // admin requests (see run_admin)
};

}  // namespace recsync::engine
