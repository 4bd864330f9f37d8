#include "engine/engine.hpp"

#include "dispatch/dispatcher.hpp"
#include "queue/task_queue.hpp"
#include "server/api.hpp"
#include "server/http_listener.hpp"
#include "store/state_store.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>

namespace recsync::engine {

Engine::Engine(const config::EngineConfig &cfg) : runtime_(build_runtime(cfg)) {
    const auto dir = std::filesystem::path(cfg.state.path).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir);
    db_ = std::make_unique<store::SqliteDb>(cfg.state.path, cfg.state.synchronous);
    queue_ = std::make_unique<queue::TaskQueue>(*db_);
    state_ = std::make_unique<store::StateStore>(*db_);
    dispatcher_ = std::make_unique<dispatch::Dispatcher>(*db_, *queue_, *state_, metrics_);
}

Engine::~Engine() { stop(std::chrono::milliseconds(0)); }

void Engine::start() {
    const auto &cfg = runtime_->config;
    dispatcher_->start(runtime_->connections, queue_->load_pending());
    const auto [host, port] = server::parse_host_port(cfg.server.listen);
    server::ListenerOptions opts;
    opts.address = host;
    opts.port = port;
    opts.max_body_bytes = cfg.server.max_body_bytes;
    opts.threads = cfg.server.threads;
    listener_ = std::make_unique<server::HttpListener>(opts, server::make_api_handler(*this));
    listener_->start();
    for (const auto &[name, conn] : runtime_->connections)
        spdlog::info("connection '{}': provider {} {} at {}, rate {}/s burst {}, max {} in flight", name, conn->provider->library().id(), conn->provider->library().version(),
                     conn->config.base_url, conn->rate_per_second > 0 ? std::to_string(conn->rate_per_second) : "unlimited", conn->burst, conn->config.max_in_flight);
    spdlog::info("recsync listening on {}:{} ({} rules, {} mappings)", host, listener_->port(), runtime_->rules->rules.size(), runtime_->rules->mappings.size());
}

void Engine::stop(std::chrono::milliseconds drain) {
    if (listener_) listener_->stop();
    if (dispatcher_) dispatcher_->stop(drain);
}

uint16_t Engine::port() const { return listener_ ? listener_->port() : 0; }

}  // namespace recsync::engine
