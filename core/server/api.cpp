#include "server/api.hpp"

#include "dispatch/dispatcher.hpp"
#include "engine/engine.hpp"
#include "pipeline/ingest.hpp"
#include "queue/task_queue.hpp"
#include "store/state_store.hpp"

#include <spdlog/spdlog.h>

#include <charconv>

namespace recsync::server {

using nlohmann::json;

namespace {

// Plans every event of the request, then answers once its tasks are durable: the
// request waits for the group commit without holding an I/O thread.
void post_events(engine::Engine &engine, const HttpRequest &req, Respond respond) {
    const auto ct = req.header("content-type");
    if (!ct.empty() && ct.find("json") == std::string_view::npos)
        return respond(HttpResponse::error(415, "unsupported content type '" + std::string(ct) + "': send application/json or application/x-ndjson"));
    auto &m = engine.metrics();
    std::vector<queue::Task> tasks;
    size_t events_count = 0;
    const auto runtime = engine.runtime();  // one snapshot for the whole request
    try {
        const auto events = pipeline::parse_events(req.body);
        events_count = events.size();
        for (size_t i = 0; i < events.size(); ++i) {
            try {
                auto plan = pipeline::plan_event(*runtime, events[i]);
                for (auto &a : plan.actions)
                    if (!a.task.connection.empty()) tasks.push_back(std::move(a.task));
            } catch (const pipeline::EventError &e) {
                throw pipeline::EventError(e.status(), events.size() > 1 ? "event " + std::to_string(i) + ": " + e.what() : std::string(e.what()));
            }
        }
    } catch (const pipeline::EventError &e) {
        m.events_rejected.fetch_add(std::max<size_t>(1, events_count), std::memory_order_relaxed);
        return respond(HttpResponse::error(e.status(), e.what()));
    }
    engine.queue().append_async(std::move(tasks), [&engine, &m, events_count, respond = std::move(respond)](std::vector<queue::Task> &&stored, std::exception_ptr error) {
        if (error) {
            try {
                std::rethrow_exception(error);
            } catch (const std::exception &e) {
                spdlog::error("cannot store {} task(s): {}", stored.size(), e.what());
            }
            return respond(HttpResponse::error(503, "cannot store events right now; nothing was accepted, retry later"));
        }
        m.events_accepted.fetch_add(events_count, std::memory_order_relaxed);
        m.tasks_enqueued.fetch_add(stored.size(), std::memory_order_relaxed);
        const size_t n_tasks = stored.size();
        engine.dispatcher().submit(std::move(stored));
        respond(HttpResponse::json(202, json{{"accepted", events_count}, {"tasks", n_tasks}}.dump()));
    });
}

// Constant-time comparison, so the admin token cannot be guessed byte by byte from
// response timing (written here to avoid linking OpenSSL for one function).
bool same_secret(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

bool admin_allowed(engine::Engine &engine, const HttpRequest &req, HttpResponse &deny) {
    const auto token = engine.runtime()->config.server.admin_token;
    if (token.empty()) {
        deny = HttpResponse::error(403, "admin endpoints are disabled: set server.admin_token_env to an environment variable holding a token");
        return false;
    }
    const auto auth = req.header("authorization");
    const std::string_view prefix = "Bearer ";
    if (auth.substr(0, prefix.size()) != prefix || !same_secret(auth.substr(std::min(prefix.size(), auth.size())), token)) {
        deny = HttpResponse::error(401, "admin endpoint: missing or wrong bearer token");
        deny.headers.emplace_back("WWW-Authenticate", "Bearer");
        return false;
    }
    return true;
}

json status_json(engine::Engine &engine) {
    const auto runtime = engine.runtime();
    json plugins = json::object();
    for (const auto &[id, lib] : runtime->libraries) plugins[id] = {{"version", lib->version()}, {"path", lib->path()}};
    return {{"connections", engine.dispatcher().status()},
            {"plugins", plugins},
            {"rules", runtime->rules->rules.size()},
            {"reload", engine.reload_status()},
            {"refused_plugins", runtime->refused_plugins},
            {"dead_letters", engine.state().dead_letter_count()}};
}

std::string metrics_text(engine::Engine &engine) {
    const auto &m = engine.metrics();
    std::string out;
    auto counter = [&](const char *name, const char *help, uint64_t v) {
        out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name + " " + std::to_string(v) + "\n";
    };
    counter("recsync_events_accepted_total", "Events accepted over HTTP.", m.events_accepted);
    counter("recsync_events_rejected_total", "Events rejected with a 4xx.", m.events_rejected);
    counter("recsync_tasks_enqueued_total", "Tasks made durable.", m.tasks_enqueued);
    counter("recsync_tasks_succeeded_total", "Tasks delivered.", m.tasks_succeeded);
    counter("recsync_tasks_retried_total", "Delivery attempts that will be retried.", m.tasks_retried);
    counter("recsync_tasks_dead_lettered_total", "Tasks moved to the dead-letter queue.", m.tasks_dead_lettered);
    counter("recsync_http_calls_total", "HTTP calls started to external systems.", m.http_calls);
    counter("recsync_tasks_coalesced_total", "Tasks folded into a waiting task of the same record, never sent.", m.tasks_coalesced);
    out += "# HELP recsync_calls_in_flight_limit Calls allowed in flight across all connections now (at most delivery.max_calls_in_flight).\n"
           "# TYPE recsync_calls_in_flight_limit gauge\nrecsync_calls_in_flight_limit " + std::to_string(m.calls_in_flight_limit.load()) + "\n";
    out += "# HELP recsync_lane_queued Tasks waiting or in flight per connection.\n# TYPE recsync_lane_queued gauge\n";
    const auto lanes = engine.dispatcher().status();
    for (const auto &[name, s] : lanes.items()) out += "recsync_lane_queued{connection=\"" + name + "\"} " + std::to_string(s["queued"].get<int64_t>()) + "\n";
    out += "# HELP recsync_lane_in_flight Calls in flight per connection.\n# TYPE recsync_lane_in_flight gauge\n";
    for (const auto &[name, s] : lanes.items()) out += "recsync_lane_in_flight{connection=\"" + name + "\"} " + std::to_string(s["in_flight"].get<int64_t>()) + "\n";
    return out;
}

json dead_letter_json(const store::DeadLetter &d, bool full);

HttpResponse list_dead_letters(engine::Engine &engine, const HttpRequest &req) {
    int64_t limit = 100, after = 0;
    const auto l = req.query_param("limit"), a = req.query_param("after");
    if (!l.empty() && (std::from_chars(l.data(), l.data() + l.size(), limit).ec != std::errc() || limit < 1 || limit > 10000))
        return HttpResponse::error(400, "limit: expected a whole number from 1 to 10000");
    if (!a.empty() && std::from_chars(a.data(), a.data() + a.size(), after).ec != std::errc()) return HttpResponse::error(400, "after: expected a dead-letter id");
    json out = json::array();
    for (const auto &d : engine.state().dead_letters(limit, after)) out.push_back(dead_letter_json(d, false));
    return HttpResponse::json(200, out.dump());
}

json dead_letter_json(const store::DeadLetter &d, bool full) {
    json j = {{"id", d.id}, {"connection", d.task.connection}, {"object", d.task.object}, {"record_key", d.task.record_key},
              {"action", queue::action_text(d.task.action)}, {"attempts", d.task.attempts}, {"reason", d.reason}, {"response_status", d.response_status},
              {"failed_at_ms", d.failed_ms}};
    if (full) {
        j["payload"] = d.task.payload;
        j["request"] = d.request;
        j["response_body"] = d.response_body;
    }
    return j;
}

// /v1/admin/dlq/{id} (GET shows, DELETE drops), /v1/admin/dlq/{id}/replay and
// /v1/admin/dlq/replay[?connection=NAME] (POST).
HttpResponse dead_letter_route(engine::Engine &engine, const HttpRequest &req, std::string_view rest) {
    HttpResponse deny;
    if (!admin_allowed(engine, req, deny)) return deny;
    if (rest == "replay") {
        if (req.method != "POST") return HttpResponse::error(405, "use POST to replay");
        size_t held = 0;
        const auto n = engine.replay_dead_letters({}, std::string(req.query_param("connection")), &held);
        return HttpResponse::json(200, json{{"replayed", n}, {"held_not_configured", held}}.dump());
    }
    const bool replay = rest.ends_with("/replay");
    const auto id_text = replay ? rest.substr(0, rest.size() - 7) : rest;
    int64_t id = 0;
    if (std::from_chars(id_text.data(), id_text.data() + id_text.size(), id).ec != std::errc() || id <= 0)
        return HttpResponse::error(400, "expected a dead-letter id, got '" + std::string(id_text) + "'");
    if (replay) {
        if (req.method != "POST") return HttpResponse::error(405, "use POST to replay");
        size_t held = 0;
        const auto n = engine.replay_dead_letters({id}, {}, &held);
        if (held) {
            const auto d = engine.state().dead_letter(id);
            return HttpResponse::error(409, "dead letter " + std::to_string(id) + " is for connection '" + (d ? d->task.connection : std::string("?")) +
                                                "', which is not configured: add it to the config and reload, then replay");
        }
        return n ? HttpResponse::json(200, json{{"replayed", n}}.dump()) : HttpResponse::error(404, "no dead letter " + std::to_string(id));
    }
    if (req.method == "GET") {
        const auto d = engine.state().dead_letter(id);
        return d ? HttpResponse::json(200, dead_letter_json(*d, true).dump()) : HttpResponse::error(404, "no dead letter " + std::to_string(id));
    }
    if (req.method == "DELETE")
        return engine.state().drop_dead_letter(id) ? HttpResponse::json(200, json{{"dropped", id}}.dump()) : HttpResponse::error(404, "no dead letter " + std::to_string(id));
    return HttpResponse::error(405, "use GET, DELETE, or POST .../replay");
}

HttpResponse reload_route(engine::Engine &engine, const HttpRequest &req) {
    if (req.method != "POST") return HttpResponse::error(405, "use POST for /v1/admin/reload");
    HttpResponse deny;
    if (!admin_allowed(engine, req, deny)) return deny;
    const auto r = engine.reload();
    if (r.ok) return HttpResponse::json(200, json{{"reloaded", true}, {"message", r.message}}.dump());
    return HttpResponse::error(422, "reload rejected, the running configuration stays: " + r.message);
}

// Every endpoint but POST /v1/events: answered at once.
HttpResponse route(engine::Engine &engine, const HttpRequest &req) {
    const auto path = req.path();
    if (path == "/v1/admin/reload") return reload_route(engine, req);
    if (path.starts_with("/v1/admin/dlq/")) return dead_letter_route(engine, req, path.substr(14));
    if (req.method != "GET") return HttpResponse::error(405, "method " + req.method + " not allowed on " + std::string(path));
    if (path == "/healthz") return HttpResponse::json(200, R"({"status":"ok"})");
    if (path == "/readyz")
        return engine.dispatcher().running() ? HttpResponse::json(200, R"({"status":"ready"})") : HttpResponse::error(503, "dispatcher not running");
    if (path == "/metrics") {
        auto r = HttpResponse::json(200, metrics_text(engine));
        r.content_type = "text/plain; version=0.0.4";
        return r;
    }
    if (path == "/v1/status") return HttpResponse::json(200, status_json(engine).dump());
    if (path == "/v1/admin/dlq") {
        HttpResponse deny;
        if (!admin_allowed(engine, req, deny)) return deny;
        return list_dead_letters(engine, req);
    }
    return HttpResponse::error(404, "no such endpoint: " + std::string(path));
}

}  // namespace

AsyncHttpHandler make_api_handler(engine::Engine &engine) {
    return [&engine](HttpRequest &&req, Respond respond) {
        const auto path = req.path();
        // Reloads and replays can take a while: on the admin thread, so that the I/O
        // threads go on reading events (with two of them, two reloads stalled ingest).
        if (path == "/v1/admin/reload" || path == "/v1/admin/dlq" || path.starts_with("/v1/admin/dlq/"))
            return engine.run_admin([&engine, req = std::move(req), respond = std::move(respond)] {
                try {
                    respond(route(engine, req));
                } catch (const std::exception &e) {
                    spdlog::error("admin request {} failed: {}", req.path(), e.what());
                    respond(HttpResponse::error(500, "internal error"));
                }
            });
        if (path != "/v1/events") return respond(route(engine, req));
        if (req.method != "POST") return respond(HttpResponse::error(405, "use POST for /v1/events"));
        post_events(engine, req, std::move(respond));
    };
}

}  // namespace recsync::server
