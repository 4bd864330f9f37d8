#include "server/api.hpp"

#include "pipeline/plan.hpp"
#include "plugin/plugin_error.hpp"
#include "server/access.hpp"
#include "server/status_page.hpp"
#include "sources/webhook.hpp"

#include <spdlog/spdlog.h>

#include <charconv>
#include <memory>
#include <optional>

namespace recsync::server {

using nlohmann::json;

namespace {

HttpResponse answer_of(const sources::IntakeAnswer &a) {
    if (a.status != 202) {
        auto r = HttpResponse::error(a.status, a.error);
        if (a.retry_after_s > 0) r.headers.emplace_back("Retry-After", std::to_string(a.retry_after_s));
        return r;
    }
    json body = {{"accepted", a.accepted}, {"duplicates", a.duplicates}, {"stale", a.stale}, {"tasks", a.tasks}};
    if (a.echoes) body["echoes"] = a.echoes;
    if (a.conflicts) body["conflicts"] = a.conflicts;
    return HttpResponse::json(202, body.dump());
}

// Refused requests are logged like refused webhooks: the first ones, then one in a
// thousand (anyone who reaches the port can send them). Never the token.
// Per I/O thread, the digests of the running config's tokens, made again only when a reload
// brings a new runtime (a weak_ptr: an old runtime is not kept alive, and a new one at its
// address is not taken for it).
const AccessTokens &access_tokens(const std::shared_ptr<const model::Runtime> &runtime) {
    thread_local std::weak_ptr<const model::Runtime> made_for;
    thread_local std::optional<AccessTokens> tokens;
    if (!tokens || made_for.lock() != runtime) {
        tokens.emplace(runtime->config.server);
        made_for = runtime;
    }
    return *tokens;
}

bool allowed(ApiBackend &backend, const HttpRequest &req, Access access, HttpResponse &deny, std::string *caller = nullptr) {
    const auto runtime = backend.runtime();  // holds the config the digests point into
    auto check = check_access(access_tokens(runtime), req, access);
    if (check.allowed) {
        if (caller) *caller = std::move(check.caller);
        return true;
    }
    const auto n = backend.metrics().requests_unauthorized.fetch_add(1, std::memory_order_relaxed);
    if (n < 10 || n % 1000 == 0) spdlog::warn("{} {} from {} refused ({} so far): {}", req.method, req.path(), req.remote, n + 1, check.reason);
    deny = std::move(check.deny);
    return false;
}

// Plans every event of the request, then answers once its changes are durable: the
// request waits for the group commit without holding an I/O thread.
void post_events(ApiBackend &backend, const HttpRequest &req, Respond respond) {
    if (HttpResponse deny; !allowed(backend, req, Access::Ingest, deny)) return respond(std::move(deny));
    const auto ct = req.header("content-type");
    if (!ct.empty() && ct.find("json") == std::string_view::npos)
        return respond(HttpResponse::error(415, "unsupported content type '" + std::string(ct) + "': send application/json or application/x-ndjson"));
    std::vector<json> events;
    try {
        events = pipeline::parse_events(req.body);
    } catch (const pipeline::EventError &e) {
        backend.metrics().events_rejected.fetch_add(1, std::memory_order_relaxed);
        return respond(HttpResponse::error(e.status(), e.what()));
    }
    const auto runtime = backend.runtime();  // one snapshot for the whole request
    backend.intake().accept(*runtime, "internal", events, [respond = std::move(respond)](sources::IntakeAnswer a) { respond(answer_of(a)); });
}

// POST /v1/webhooks/{connection}: the connection's plugin checks the signature and reads
// the events; they are answered 200 once durable (the sender retries anything else), 401
// with nothing stored for a bad signature, 4xx for a body the plugin refuses, 429 while a
// backlog is full. No bearer token: the signature is the credential.
void post_webhook(ApiBackend &backend, const HttpRequest &req, std::string_view name, Respond respond) {
    if (req.method != "POST") return respond(HttpResponse::error(405, "use POST for webhooks"));
    const auto runtime = backend.runtime();
    const std::string connection(name);
    const auto *conn = runtime->connection(connection);
    if (!conn || !conn->webhooks) {
        // Anyone may call this route: the answer does not say which connections exist.
        spdlog::debug("webhook for '{}' refused: {}", connection, !conn ? "no such connection" : "the connection takes no webhooks (see its provider's settings)");
        return respond(HttpResponse::error(404, "no webhook endpoint for '" + connection + "'"));
    }
    std::vector<std::pair<std::string_view, std::string_view>> headers;
    headers.reserve(req.headers.size());
    for (const auto &[k, v] : req.headers) headers.emplace_back(k, v);
    std::vector<json> events;
    try {
        events = sources::inbound_events(*conn, conn->provider->parse_webhook({req.method, req.target, headers, req.body}));
    } catch (const plugin::PluginError &e) {
        if (e.status() == RECSYNC_ERR_UNAUTHENTICATED) {
            const auto n = backend.metrics().webhooks_unauthenticated.fetch_add(1, std::memory_order_relaxed);
            // Anyone can send these: the log says the first ones, then one in a thousand.
            if (n < 10 || n % 1000 == 0) spdlog::warn("webhook for connection '{}' from {} refused ({} so far): {}", connection, req.remote, n + 1, e.what());
            return respond(HttpResponse::error(401, e.what()));
        }
        backend.metrics().events_rejected.fetch_add(1, std::memory_order_relaxed);
        const int status = e.status() == RECSYNC_ERR_INVALID_INPUT ? 400 : e.status() == RECSYNC_ERR_UNSUPPORTED ? 422 : 500;
        if (status == 500) spdlog::error("webhook for connection '{}': {}", connection, e.what());
        return respond(HttpResponse::error(status, status == 500 ? std::string("internal error in the connection's plugin") : std::string(e.what())));
    } catch (const pipeline::EventError &e) {
        backend.metrics().events_rejected.fetch_add(1, std::memory_order_relaxed);
        return respond(HttpResponse::error(e.status(), e.what()));
    }
    backend.metrics().webhook_deliveries.fetch_add(1, std::memory_order_relaxed);
    if (events.empty()) return respond(HttpResponse::json(200, json{{"accepted", 0}, {"duplicates", 0}, {"stale", 0}, {"tasks", 0}}.dump()));
    backend.intake().accept(*runtime, connection, events, [respond = std::move(respond)](sources::IntakeAnswer a) {
        auto r = answer_of(a);
        if (r.status == 202) r.status = 200;  // senders want a plain 2xx; 200 is the one all accept
        respond(std::move(r));
    });
}

bool admin_allowed(ApiBackend &backend, const HttpRequest &req, HttpResponse &deny) { return allowed(backend, req, Access::Admin, deny); }

json dead_letter_json(const store::DeadLetter &d, bool full);

HttpResponse list_dead_letters(ApiBackend &backend, const HttpRequest &req) {
    int64_t limit = 100, after = 0;
    const auto l = req.query_param("limit"), a = req.query_param("after");
    if (!l.empty() && (std::from_chars(l.data(), l.data() + l.size(), limit).ec != std::errc() || limit < 1 || limit > 10000))
        return HttpResponse::error(400, "limit: expected a whole number from 1 to 10000");
    if (!a.empty() && std::from_chars(a.data(), a.data() + a.size(), after).ec != std::errc()) return HttpResponse::error(400, "after: expected a dead-letter id");
    json out = json::array();
    for (const auto &d : backend.dead_letters().list(limit, after)) out.push_back(dead_letter_json(d, false));
    return HttpResponse::json(200, out.dump());
}

json dead_letter_json(const store::DeadLetter &d, bool full) {
    json j = {{"id", d.id}, {"connection", d.task.connection}, {"object", d.task.object}, {"record_key", d.task.record_key},
              {"action", model::action_text(d.task.action)}, {"attempts", d.task.attempts}, {"reason", d.reason}, {"response_status", d.response_status},
              {"failed_at_ms", d.failed_ms}};
    if (full) {
        j["payload"] = d.task.payload;
        j["request"] = d.request;
        j["response_body"] = d.response_body;
    }
    return j;
}

json replay_json(const store::ReplayReport &r) {
    return {{"replayed", r.replayed}, {"held_not_configured", r.held}, {"dropped_stale", r.stale}, {"missing", r.missing}};
}

// /v1/admin/dlq/{id} (GET shows, DELETE drops), /v1/admin/dlq/{id}/replay and
// /v1/admin/dlq/replay[?connection=NAME] (POST).
HttpResponse dead_letter_route(ApiBackend &backend, const HttpRequest &req, std::string_view rest) {
    HttpResponse deny;
    if (!admin_allowed(backend, req, deny)) return deny;
    if (rest == "replay") {
        if (req.method != "POST") return HttpResponse::error(405, "use POST to replay");
        const auto r = backend.replay_dead_letters({{}, std::string(req.query_param("connection"))});
        return HttpResponse::json(200, replay_json(r).dump());
    }
    const bool replay = rest.ends_with("/replay");
    const auto id_text = replay ? rest.substr(0, rest.size() - 7) : rest;
    int64_t id = 0;
    if (std::from_chars(id_text.data(), id_text.data() + id_text.size(), id).ec != std::errc() || id <= 0)
        return HttpResponse::error(400, "expected a dead-letter id, got '" + std::string(id_text) + "'");
    if (replay) {
        if (req.method != "POST") return HttpResponse::error(405, "use POST to replay");
        const auto before = backend.dead_letters().get(id);
        const auto r = backend.replay_dead_letters({{id}, {}});
        if (r.held)
            return HttpResponse::error(409, "dead letter " + std::to_string(id) + " is for connection '" + (before ? before->task.connection : std::string("?")) +
                                                "', which is not configured: add it to the config and reload, then replay");
        if (!r.stale.empty()) {
            auto j = replay_json(r);
            j["message"] = "dead letter " + std::to_string(id) + " was dropped, not replayed: its record has since applied a newer change there";
            return HttpResponse::json(200, j.dump());
        }
        return r.replayed == 0 ? HttpResponse::error(404, "no dead letter " + std::to_string(id)) : HttpResponse::json(200, replay_json(r).dump());
    }
    if (req.method == "GET") {
        const auto d = backend.dead_letters().get(id);
        return d ? HttpResponse::json(200, dead_letter_json(*d, true).dump()) : HttpResponse::error(404, "no dead letter " + std::to_string(id));
    }
    if (req.method == "DELETE")
        return backend.dead_letters().drop(id) ? HttpResponse::json(200, json{{"dropped", id}}.dump()) : HttpResponse::error(404, "no dead letter " + std::to_string(id));
    return HttpResponse::error(405, "use GET, DELETE, or POST .../replay");
}

HttpResponse reload_route(ApiBackend &backend, const HttpRequest &req) {
    if (req.method != "POST") return HttpResponse::error(405, "use POST for /v1/admin/reload");
    HttpResponse deny;
    if (!admin_allowed(backend, req, deny)) return deny;
    const auto r = backend.reload();
    if (r.ok) return HttpResponse::json(200, json{{"reloaded", true}, {"message", r.message}}.dump());
    return HttpResponse::error(422, "reload rejected, the running configuration stays: " + r.message);
}

// /readyz: 503 only while the dispatcher is not running. A part that fails without
// putting accepted work at risk (the shared rate limit's Redis: each lane falls back to
// its share; a PostgreSQL capture: its changes wait in the database's own log) leaves the
// instance ready, and `degraded` names it: taking every instance out of a load balancer
// because the Redis they share is down would turn a slower instance into an outage. The
// probe is open, so the reasons name parts, never addresses or errors (/v1/status has
// those).
HttpResponse readiness(const ApiBackend &backend) {
    json degraded = json::array();
    if (const auto limits = backend.shared_limits_status(); !limits.is_null() && !limits.value("reachable", false))
        degraded.push_back("ratelimit: the shared backend is unreachable, each lane sends at its share of the limit");
    for (const auto &c : backend.captures())
        if (!c.connected) degraded.push_back("capture " + c.connection + ": not connected to PostgreSQL");
    if (!backend.ready()) return HttpResponse::json(503, json{{"status", "not ready"}, {"error", "dispatcher not running"}, {"degraded", std::move(degraded)}}.dump());
    json body = {{"status", degraded.empty() ? "ready" : "degraded"}};
    if (!degraded.empty()) body["degraded"] = std::move(degraded);
    return HttpResponse::json(200, body.dump());
}

// Every endpoint but POST /v1/events: answered at once.
HttpResponse route(ApiBackend &backend, const HttpRequest &req) {
    const auto path = req.path();
    if (path == "/v1/admin/reload") return reload_route(backend, req);
    if (path.starts_with("/v1/admin/dlq/")) return dead_letter_route(backend, req, path.substr(14));
    if (req.method != "GET") return HttpResponse::error(405, "method " + req.method + " not allowed on " + std::string(path));
    if (HttpResponse page; status_page(path, page)) return page;
    if (path == "/healthz") return HttpResponse::json(200, R"({"status":"ok"})");
    if (path == "/readyz") return readiness(backend);
    if (path == "/metrics" || path == "/v1/status") {
        if (HttpResponse deny; !allowed(backend, req, Access::Status, deny)) return deny;
    }
    if (path == "/metrics") {
        auto r = HttpResponse::json(200, metrics_text(backend.metrics(), backend.lanes()));
        r.content_type = "text/plain; version=0.0.4";
        return r;
    }
    if (path == "/v1/status") return HttpResponse::json(200, status_json(backend, backend.lanes()).dump());
    if (path == "/v1/admin/dlq") {
        HttpResponse deny;
        if (!admin_allowed(backend, req, deny)) return deny;
        return list_dead_letters(backend, req);
    }
    return HttpResponse::error(404, "no such endpoint: " + std::string(path));
}

}  // namespace

AsyncHttpHandler make_api_handler(ApiBackend &backend) {
    return [&backend](HttpRequest &&req, Respond respond) {
        const auto path = req.path();
        // Reloads and replays can take a while: on the admin thread, so that the I/O
        // threads go on reading events (with two of them, two reloads stalled ingest).
        if (path == "/v1/admin/reload" || path == "/v1/admin/dlq" || path.starts_with("/v1/admin/dlq/"))
            return backend.run_admin([&backend, req = std::move(req), respond = std::move(respond)] {
                try {
                    respond(route(backend, req));
                } catch (const std::exception &e) {
                    spdlog::error("admin request {} failed: {}", req.path(), e.what());
                    respond(HttpResponse::error(500, "internal error"));
                }
            });
        if (path.starts_with("/v1/webhooks/")) return post_webhook(backend, req, path.substr(13), std::move(respond));
        if (path != "/v1/events") return respond(route(backend, req));
        if (req.method != "POST") return respond(HttpResponse::error(405, "use POST for /v1/events"));
        post_events(backend, req, std::move(respond));
    };
}

}  // namespace recsync::server
