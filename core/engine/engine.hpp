// The running engine: the state backend, intake, dispatcher and HTTP API over one Runtime.
// It is the API's backend (server::ApiBackend); the rest of core/ knows nothing of it.
#pragma once

#include "config/config.hpp"
#include "model/backlog.hpp"
#include "model/metrics.hpp"
#include "model/runtime.hpp"
#include "server/api.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace recsync::dispatch {
class Dispatcher;
}
namespace recsync::poll {
class Poller;
}
namespace recsync::server {
class HttpListener;
}
namespace recsync::sources {
class Intake;
class PgCapture;
}
namespace recsync::ratelimit {
class SharedLimiter;
}
namespace recsync::store {
class StateBackend;
}
namespace recsync::util {
class WorkerThread;
}

namespace recsync::engine {

class DirWatcher;

class Engine final : public server::ApiBackend {
public:
    // Builds the runtime (throws config::ConfigErrors) and opens the state backend.
    explicit Engine(const config::EngineConfig &cfg);
    ~Engine() override;

    using ReloadResult = server::ReloadResult;
    // Re-reads the config file, plugins and rules and, only if all of it loads, swaps
    // them in: new events use the new rules, new calls the new plugin instances, while
    // calls in flight finish on the instances they started with (each holds its own
    // reference; the old library unloads when the last one completes). On any error
    // nothing changes and the reason is returned, logged and shown in /v1/status.
    // Thread-safe; reloads are serialised.
    ReloadResult reload() override;

    // Starts the dispatcher (its lanes read their backlogs from the task log), then listens.
    void start();
    // Stops listening, drains calls in flight (up to `drain`), stops the dispatcher.
    void stop(std::chrono::milliseconds drain = std::chrono::seconds(10));
    uint16_t port() const;

    // Moves dead letters back into their lanes as fresh tasks (attempts reset), each in
    // the commit that appends its task; a letter whose record has since applied a newer
    // change is dropped instead. Only letters of connections configured now: the others
    // stay dead letters, counted in `held` (a task for a connection without a lane would
    // wait unseen until a restart).
    store::ReplayReport replay_dead_letters(const store::ReplaySelection &selection) override;

    std::shared_ptr<const model::Runtime> runtime() const override;
    nlohmann::json reload_status() const override;
    model::Metrics &metrics() override { return metrics_; }
    sources::Intake &intake() override { return *intake_; }
    bool ready() const override;
    std::vector<model::LaneStatus> lanes() const override;
    std::vector<model::PollStatus> polls() const override;
    std::vector<sources::PgCaptureStatus> captures() const override;
    nlohmann::json shared_limits_status() const override;
    store::DeadLetterStore &dead_letters() override;
    // Runs `job` on the engine's admin thread, off the HTTP I/O threads (reloads and dead-
    // letter replays can take a while). Jobs must not throw. Until stop().
    void run_admin(std::function<void()> job) override;

    store::StateBackend &state() { return *state_; }
    model::Backlog &backlog() { return backlog_; }
    dispatch::Dispatcher &dispatcher() { return *dispatcher_; }

private:
    std::string config_path_;
    mutable std::mutex runtime_mutex_;
    std::shared_ptr<const model::Runtime> runtime_;
    std::mutex reload_mutex_;
    uint64_t generation_ = 1;
    int64_t last_reload_ok_ms_ = 0;
    std::string last_reload_error_;
    int64_t last_reload_error_ms_ = 0;
    model::Metrics metrics_;
    model::Backlog backlog_;
    std::unique_ptr<store::StateBackend> state_;
    std::shared_ptr<ratelimit::SharedLimiter> shared_limits_;  // none: ratelimit.backend local
    std::unique_ptr<dispatch::Dispatcher> dispatcher_;
    std::unique_ptr<sources::Intake> intake_;
    std::unique_ptr<poll::Poller> poller_;  // the connections' polling: (after intake_: it feeds it)
    std::unique_ptr<sources::PgCapture> capture_;  // PostgreSQL connections' change logs (after intake_)
    std::unique_ptr<server::HttpListener> listener_;
    std::unique_ptr<DirWatcher> watcher_;        // rules_dir changes -> reload()
    std::unique_ptr<util::WorkerThread> admin_;  // admin requests (see run_admin)
};

}  // namespace recsync::engine
