#include "engine/engine.hpp"

#include "config/yaml_source.hpp"
#include "dispatch/dispatcher.hpp"
#include "plugin/conformance.hpp"
#include "engine/dir_watcher.hpp"
#include "queue/task_queue.hpp"
#include "server/api.hpp"
#include "server/http_listener.hpp"
#include "store/dead_letter_replay.hpp"
#include "store/state_store.hpp"
#include "util/clock.hpp"
#include "util/worker_thread.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>

namespace recsync::engine {

Engine::Engine(const config::EngineConfig &cfg) : config_path_(cfg.file), runtime_(build_runtime(cfg)) {
    const auto dir = std::filesystem::path(cfg.state.path).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir);
    db_ = std::make_unique<store::SqliteDb>(cfg.state.path, cfg.state.synchronous);
    queue_ = std::make_unique<queue::TaskQueue>(*db_, std::chrono::microseconds(cfg.state.commit_window_us));
    state_ = std::make_unique<store::StateStore>(*db_);
    dispatcher_ = std::make_unique<dispatch::Dispatcher>(*db_, *queue_, *state_, metrics_, static_cast<size_t>(cfg.delivery.max_calls_in_flight));
}

Engine::~Engine() { stop(std::chrono::milliseconds(0)); }

std::shared_ptr<const Runtime> Engine::runtime() const {
    std::lock_guard l(runtime_mutex_);
    return runtime_;
}

void Engine::start() {
    const auto &cfg = runtime_->config;
    dispatcher_->start(runtime_->connections, queue_->load_pending());
    const auto [host, port] = server::parse_host_port(cfg.server.listen);
    server::ListenerOptions opts;
    opts.address = host;
    opts.port = port;
    opts.max_body_bytes = cfg.server.max_body_bytes;
    opts.threads = cfg.server.threads;
    admin_ = std::make_unique<util::WorkerThread>();
    listener_ = std::make_unique<server::HttpListener>(opts, server::make_api_handler(*this));
    listener_->start();
    if (cfg.watch_rules) {
        watcher_ = std::make_unique<DirWatcher>(std::vector<std::string>{cfg.rules_dir, cfg.rules_dir + "/schemas"}, std::chrono::milliseconds(300), [this] {
            spdlog::info("rules directory changed: reloading");
            reload();
        });
    }
    for (const auto &[name, conn] : runtime_->connections)
        spdlog::info("connection '{}': provider {} {} at {}, rate {}/s burst {}, max {} in flight", name, conn->provider->library().id(), conn->provider->library().version(),
                     conn->config.base_url, conn->rate_per_second > 0 ? std::to_string(conn->rate_per_second) : "unlimited", conn->burst, conn->config.max_in_flight);
    spdlog::info("recsync listening on {}:{} ({} rules, {} mappings)", host, listener_->port(), runtime_->rules->rules.size(), runtime_->rules->mappings.size());
}

void Engine::stop(std::chrono::milliseconds drain) {
    watcher_.reset();
    if (listener_) listener_->stop();
    // Requests still waiting for their commit: committed and answered (into the stopped
    // listener, which drops the answers) while the listener still exists.
    if (queue_) queue_->flush();
    // Admin requests still running answer into the stopped listener too, while it exists.
    if (admin_) admin_->stop();
    if (dispatcher_) dispatcher_->stop(drain);
}

Engine::ReloadResult Engine::reload() {
    std::lock_guard serial(reload_mutex_);
    const auto old = runtime();
    auto fail = [&](const std::string &why) {
        {
            std::lock_guard l(runtime_mutex_);
            last_reload_error_ = why;
            last_reload_error_ms_ = util::epoch_ms();
        }
        spdlog::error("reload rejected, still running generation {}: {}", generation_, why);
        return ReloadResult{false, why};
    };
    std::shared_ptr<const Runtime> next;
    try {
        const auto cfg = config::load_config(config_path_);
        // What only a restart can change: where state lives and what we listen on.
        if (cfg.state.path != old->config.state.path) return fail("state.path changed: restart recsync to move the state database");
        if (cfg.server.listen != old->config.server.listen) return fail("server.listen changed: restart recsync to listen elsewhere");
        if (cfg.delivery.max_calls_in_flight != old->config.delivery.max_calls_in_flight)
            return fail("delivery.max_calls_in_flight changed: restart recsync to change it");
        next = build_runtime(cfg);
        // A build must also pass the conformance checks before it serves traffic (a few
        // milliseconds per plugin; reloads are rare, so every plugin is checked).
        for (const auto &[id, lib] : next->libraries) {
            nlohmann::json instance_config = nlohmann::json::object();
            for (const auto &[name, conn] : next->connections)
                if (conn->config.provider == id) instance_config = conn->config.settings, instance_config["base_url"] = conn->config.base_url;
            const auto report = plugin::run_conformance(lib->path(), instance_config.dump());
            if (!report.passed()) {
                std::string failed;
                for (const auto &c : report.checks)
                    if (!c.passed) failed += (failed.empty() ? "" : "; ") + c.name + (c.detail.empty() ? "" : ": " + c.detail);
                return fail("plugin " + lib->path() + " does not conform: " + failed);
            }
        }
    } catch (const config::ConfigErrors &e) {
        std::string why;
        for (const auto &line : e.errors()) why += (why.empty() ? "" : "\n") + line;
        return fail(why);
    } catch (const std::exception &e) {
        return fail(e.what());
    }
    std::string changed;
    for (const auto &[id, lib] : next->libraries) {
        auto it = old->libraries.find(id);
        const std::string before = it == old->libraries.end() ? "none" : it->second->version();
        changed += (changed.empty() ? "" : ", ") + id + " " + before + " -> " + lib->version();
    }
    // Connections this reload adds: their tasks still in the database (accepted under an
    // earlier config), read now, before the swap lets any rule make new ones for them.
    std::vector<std::string> added;
    for (const auto &[name, _] : next->connections)
        if (!old->connection(name)) added.push_back(name);
    std::vector<queue::Task> waiting;
    if (!added.empty()) {
        try {
            waiting = queue_->load_pending(added);
        } catch (const std::exception &e) {
            return fail(std::string("cannot read the queued tasks of the connections it adds: ") + e.what());
        }
    }
    dispatcher_->update_connections(next->connections, std::move(waiting));
    {
        std::lock_guard l(runtime_mutex_);
        runtime_ = next;
        ++generation_;
        last_reload_ok_ms_ = util::epoch_ms();
        last_reload_error_.clear();
    }
    const std::string msg = "generation " + std::to_string(generation_) + ": " + std::to_string(next->rules->rules.size()) + " rule(s); plugins " + changed;
    spdlog::info("reloaded: {}", msg);
    return {true, msg};
}

size_t Engine::replay_dead_letters(const std::vector<int64_t> &ids, const std::string &connection, size_t *held) {
    const auto rt = runtime();
    auto tasks = store::requeue_dead_letters(*db_, *queue_, *state_, ids, connection, [&](const std::string &name) { return rt->connection(name) != nullptr; }, held);
    const size_t n = tasks.size();
    if (n) spdlog::info("replaying {} dead letter(s)", n);
    dispatcher_->submit(std::move(tasks));
    return n;
}

nlohmann::json Engine::reload_status() const {
    std::lock_guard l(runtime_mutex_);
    return {{"generation", generation_}, {"last_ok_ms", last_reload_ok_ms_}, {"last_error", last_reload_error_}, {"last_error_ms", last_reload_error_ms_}};
}

uint16_t Engine::port() const { return listener_ ? listener_->port() : 0; }

void Engine::run_admin(std::function<void()> job) {
    if (admin_) admin_->post(std::move(job));
}

}  // namespace recsync::engine
