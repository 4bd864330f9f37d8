// The running engine: state database, dispatcher and HTTP API over one Runtime.
#pragma once

#include "config/config.hpp"
#include "engine/metrics.hpp"
#include "engine/runtime.hpp"

#include <memory>

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

namespace recsync::engine {

class Engine {
public:
    // Builds the runtime (throws config::ConfigErrors) and opens the state database.
    explicit Engine(const config::EngineConfig &cfg);
    ~Engine();

    // Resumes unfinished tasks, starts the dispatcher, then listens.
    void start();
    // Stops listening, drains calls in flight (up to `drain`), stops the dispatcher.
    void stop(std::chrono::milliseconds drain = std::chrono::seconds(10));
    uint16_t port() const;

    const Runtime &runtime() const { return *runtime_; }
    Metrics &metrics() { return metrics_; }
    queue::TaskQueue &queue() { return *queue_; }
    store::StateStore &state() { return *state_; }
    dispatch::Dispatcher &dispatcher() { return *dispatcher_; }

private:
    std::shared_ptr<const Runtime> runtime_;
    Metrics metrics_;
    std::unique_ptr<store::SqliteDb> db_;
    std::unique_ptr<queue::TaskQueue> queue_;
    std::unique_ptr<store::StateStore> state_;
    std::unique_ptr<dispatch::Dispatcher> dispatcher_;
    std::unique_ptr<server::HttpListener> listener_;
};

}  // namespace recsync::engine
