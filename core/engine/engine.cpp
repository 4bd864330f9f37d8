#include "engine/engine.hpp"

#include "config/yaml_source.hpp"
#include "dispatch/dispatcher.hpp"
#include "engine/dir_watcher.hpp"
#include "engine/runtime_builder.hpp"
#include "plugin/conformance.hpp"
#include "poll/poller.hpp"
#include "ratelimit/open_shared_limiter.hpp"
#include "server/http_listener.hpp"
#include "pipeline/plan.hpp"
#include "sources/intake.hpp"
#include "sources/pg_capture.hpp"
#include "sources/webhook.hpp"
#include "store/dead_letter_replay.hpp"
#include "store/state_backend.hpp"
#include "util/clock.hpp"
#include "util/worker_thread.hpp"

#include <spdlog/spdlog.h>

#include <set>


namespace recsync::engine {

namespace {
sources::BacklogLimits limits_of(const config::DeliveryConfig &d) { return {d.max_backlog_per_connection, d.max_backlog_total}; }
}  // namespace

Engine::Engine(const config::EngineConfig &cfg) : config_path_(cfg.file), runtime_(build_runtime(cfg)) {
    state_ = store::open_state_backend(cfg.state);
    shared_limits_ = ratelimit::open_shared_limiter(cfg.ratelimit);
    // Counted once (an index scan, not the rows): ingest's limits hold from the first request.
    backlog_.reset(state_->tasks().count_by_connection());
    dispatcher_ = std::make_unique<dispatch::Dispatcher>(state_->tasks(), state_->deliveries(), state_->sync_state(), backlog_, metrics_,
                                                         dispatch::DispatcherOptions{static_cast<size_t>(cfg.delivery.max_calls_in_flight),
                                                                                     static_cast<size_t>(cfg.delivery.max_calls_in_flight_ceiling), cfg.delivery.tasks_in_memory,
                                                                                     shared_limits_});
    intake_ = std::make_unique<sources::Intake>(state_->tasks(), backlog_, metrics_, limits_of(cfg.delivery),
                                                [this](std::vector<model::Task> &&tasks) { dispatcher_->submit(std::move(tasks)); });
    poller_ = std::make_unique<poll::Poller>([this] { return runtime(); }, *intake_, state_->cursors(), metrics_);
    capture_ = std::make_unique<sources::PgCapture>([this] { return runtime(); }, *intake_, metrics_);
    intake_->on_changed_links([this](std::vector<model::LinkKey> &&keys) { dispatcher_->forget_links(std::move(keys)); });
    // Hydration: a record a read brought back is planned as an event from its connection.
    dispatcher_->set_inbound_sink([this](const model::ConnectionRuntime &conn, const model::Task &read, const dispatch::Dispatcher::ReadRecord &r,
                                         dispatch::Dispatcher::InboundDone done) {
        std::vector<nlohmann::json> events;
        try {
            events.push_back(sources::hydrated_event(conn, read, r.external_id, r.record, r.modified));
        } catch (const pipeline::EventError &e) {
            return done({RECSYNC_RESULT_FAIL, e.what(), 0});
        }
        intake_->accept(*runtime(), read.connection, events, [done = std::move(done)](sources::IntakeAnswer a) {
            if (a.status == 202) return done({RECSYNC_RESULT_OK, {}, 0});
            // A full backlog or a store that failed passes; what the rules refused does not.
            if (a.status == 429) return done({RECSYNC_RESULT_RETRY, a.error, int64_t{a.retry_after_s} * 1000});
            done({a.status >= 500 ? RECSYNC_RESULT_RETRY : RECSYNC_RESULT_FAIL, a.error, 0});
        });
    });
}

Engine::~Engine() { stop(std::chrono::milliseconds(0)); }

bool Engine::ready() const { return dispatcher_->running(); }

std::vector<model::LaneStatus> Engine::lanes() const { return dispatcher_->status(); }

std::vector<model::PollStatus> Engine::polls() const { return poller_->status(); }

std::vector<sources::PgCaptureStatus> Engine::captures() const { return capture_->status(); }

nlohmann::json Engine::shared_limits_status() const {
    if (!shared_limits_) return nullptr;
    const auto s = shared_limits_->status();
    nlohmann::json connections = nlohmann::json::object();
    for (const auto &[name, t] : s.connections)
        connections[name] = {{"rate_per_second", t.rate}, {"bucket_rate_per_second", t.bucket_rate}, {"instances", t.instances}, {"fallback", t.fallback},
                             {"leased_unused", t.stock}, {"leases", t.leases}, {"leased", t.leased}};
    nlohmann::json j = {{"backend", s.backend}, {"reachable", s.reachable}, {"calls", s.calls}, {"errors", s.errors}, {"connections", std::move(connections)}};
    if (!s.last_error.empty()) j["last_error"] = s.last_error;
    return j;
}

store::DeadLetterStore &Engine::dead_letters() { return state_->dead_letters(); }

std::shared_ptr<const model::Runtime> Engine::runtime() const {
    std::lock_guard l(runtime_mutex_);
    return runtime_;
}

void Engine::start() {
    const auto &cfg = runtime_->config;
    dispatcher_->start(runtime_->connections);
    const auto [host, port] = server::parse_host_port(cfg.server.listen);
    server::ListenerOptions opts;
    opts.address = host;
    opts.port = port;
    opts.max_body_bytes = cfg.server.max_body_bytes;
    opts.threads = cfg.server.threads;
    if (cfg.server.tls()) opts.tls = server::TlsFiles{cfg.server.tls_cert_file, cfg.server.tls_key_file, cfg.server.tls_client_ca_file};
    if (!cfg.server.ingest_auth)
        spdlog::warn("server.ingest_auth: none: POST /v1/events takes events from anyone who reaches {}; a proxy in front must authenticate", cfg.server.listen);
    else if (cfg.server.ingest_tokens.empty())
        spdlog::warn("no server.ingest_tokens: POST /v1/events takes events without a token, from processes on this host only ({})", cfg.server.listen);
    admin_ = std::make_unique<util::WorkerThread>();
    listener_ = std::make_unique<server::HttpListener>(opts, server::make_api_handler(*this));
    spdlog::info("state: {}; {} task(s) waiting", state_->description(), backlog_.total());
    listener_->start();
    poller_->start();
    capture_->refresh();
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
    if (poller_) poller_->stop();  // its page waiting for a commit is answered first
    if (capture_) capture_->stop();  // rows whose commit it gave up on stay in the change log
    if (listener_) listener_->stop();
    // Requests still waiting for their commit: committed and answered (into the stopped
    // listener, which drops the answers) while the listener still exists.
    if (state_) state_->tasks().flush();
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
    std::shared_ptr<const model::Runtime> next;
    try {
        const auto cfg = config::load_config(config_path_);
        // What only a restart can change: the state backend and the listener are built
        // once, and so are the dispatcher's bounds. A reload that changes one is refused,
        // not half applied. (delivery.max_backlog applies at once.)
        const auto &was = old->config;
        const std::pair<bool, const char *> fixed[] = {
            {cfg.state.path != was.state.path, "state.path"},
            {cfg.state.synchronous != was.state.synchronous, "state.synchronous"},
            {cfg.state.commit_window_us != was.state.commit_window_us, "state.commit_window_us"},
            {cfg.state.event_id_retention_ms != was.state.event_id_retention_ms, "state.event_id_retention"},
            {cfg.state.cache_mib != was.state.cache_mib, "state.cache_mib"},
            {cfg.server.listen != was.server.listen, "server.listen"},
            {cfg.server.threads != was.server.threads, "server.threads"},
            {cfg.server.max_body_bytes != was.server.max_body_bytes, "server.max_body_bytes"},
            {cfg.server.tls() != was.server.tls() || cfg.server.tls_cert_file != was.server.tls_cert_file || cfg.server.tls_key_file != was.server.tls_key_file ||
                 cfg.server.tls_client_ca_file != was.server.tls_client_ca_file,
             "server.tls"},
            {cfg.delivery.max_calls_in_flight != was.delivery.max_calls_in_flight, "delivery.max_calls_in_flight"},
            {cfg.delivery.max_calls_in_flight_ceiling != was.delivery.max_calls_in_flight_ceiling, "delivery.max_calls_in_flight_ceiling"},
            {cfg.delivery.tasks_in_memory != was.delivery.tasks_in_memory, "delivery.tasks_in_memory"},
            {cfg.ratelimit != was.ratelimit, "ratelimit"},
        };
        for (const auto &[changed, what] : fixed)
            if (changed) return fail(std::string(what) + " changed: restart recsync to change it (nothing was reloaded)");
        next = build_runtime(cfg);
        // A build must also pass the conformance checks before it serves traffic: the light
        // kit (a few milliseconds per plugin; reloads are rare, so every plugin is checked).
        // In-process: this process has many threads, and a forked child of a multithreaded
        // process may only call async-signal-safe functions, not a plugin. A plugin that
        // crashes or hangs on the kit's input would take the engine with it: check a new
        // build with `recsync plugin check` (its full kit runs in a child) before deploying.
        // With the settings of every connection that uses it (a check that passes for one
        // connection's settings may fail for another's), once per distinct settings: 10,000
        // connections of one provider and one configuration are one check.
        std::set<std::string> checked;
        const plugin::ConformanceOptions light_kit;  // Depth::light is the default
        for (const auto &[name, conn] : next->connections) {
            nlohmann::json instance_config = conn->config.settings;
            instance_config["base_url"] = conn->config.base_url;
            if (!conn->config.plugin_credentials.empty()) instance_config["credentials"] = conn->config.plugin_credentials;
            const auto &lib = conn->provider->library();
            if (lib.builtin()) continue;  // compiled in: its own tests are its conformance
            const std::string text = instance_config.dump();
            if (!checked.insert(lib.path() + '\n' + text).second) continue;
            const auto report = plugin::run_conformance(lib.path(), text, light_kit);
            if (!report.passed()) {
                std::string failed;
                for (const auto &c : report.checks)
                    if (!c.passed) failed += (failed.empty() ? "" : "; ") + c.name + (c.detail.empty() ? "" : ": " + c.detail);
                return fail("plugin " + lib.path() + " does not conform with connection '" + name + "': " + failed);
            }
        }
        // The listener's certificate and key, read again (rotated files); a file that does
        // not load fails the reload and the running certificate stays.
        if (listener_) listener_->reload_tls();
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
    // Applied by the dispatcher before any task committed after this: a connection this
    // adds reads its tasks still in the log (accepted under an earlier config) itself.
    intake_->set_limits(limits_of(next->config.delivery));
    dispatcher_->update_connections(next->connections);
    {
        std::lock_guard l(runtime_mutex_);
        runtime_ = next;
        ++generation_;
        last_reload_ok_ms_ = util::epoch_ms();
        last_reload_error_.clear();
    }
    poller_->wake();
    capture_->refresh();
    const std::string msg = "generation " + std::to_string(generation_) + ": " + std::to_string(next->rules->rules.size()) + " rule(s); plugins " + changed;
    spdlog::info("reloaded: {}", msg);
    return {true, msg};
}

store::ReplayReport Engine::replay_dead_letters(const store::ReplaySelection &selection) {
    const auto rt = runtime();
    auto report = store::replay_dead_letters(
        state_->tasks(), state_->dead_letters(), state_->sync_state(), selection, [&](const std::string &name) { return rt->connection(name) != nullptr; },
        [this](std::vector<model::Task> &&tasks) { intake_->deliver(std::move(tasks)); });
    if (report.replayed || !report.stale.empty())
        spdlog::info("dead letters: {} replayed, {} dropped as stale, {} held (connection not configured)", report.replayed, report.stale.size(), report.held);
    return report;
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
