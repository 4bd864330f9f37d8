#include "dispatch/auth_refresh.hpp"

#include <spdlog/spdlog.h>

namespace recsync::dispatch {

namespace {

void set_error(AuthState &auth, std::string error, std::mutex &status_mutex) {
    std::lock_guard l(status_mutex);
    auth.last_error = std::move(error);
}

// 1 s, 2 s, 4 s ... a minute.
util::TimePoint retry_after_failure(AuthState &auth, util::TimePoint now) { return now + std::chrono::seconds(std::min(60, 1 << std::min(auth.failures++, 6))); }

}  // namespace

void token_refused(AuthState &auth, const std::string &used_token) {
    if (auth.token == used_token) auth.token.clear();
}

HttpCall connection_call(plugin::BuiltRequest &&req, const config::ConnectionConfig &c, std::string_view base_url) {
    HttpCall call;
    call.method = std::move(req.method);
    call.url = std::string(base_url) + req.path;
    call.body = std::move(req.body);
    call.headers = std::move(req.headers);
    call.connect_timeout_ms = c.connect_timeout_ms;
    call.timeout_ms = c.timeout_ms;
    call.ca_file = c.tls_ca_file;
    return call;
}

TokenNeed token_need(AuthState &auth, const model::ConnectionRuntime &conn, util::TimePoint now, util::TimePoint &wake, std::mutex &status_mutex) {
    TokenNeed need;
    need.usable = !auth.token.empty() && now < auth.expires;
    if (auth.refreshing) return need;
    if (need.usable && now < auth.refresh_at) {
        wake = std::min(wake, auth.refresh_at);
        return need;
    }
    if (now < auth.retry_at) {
        wake = std::min(wake, auth.retry_at);
        return need;
    }
    HttpCall call;
    try {
        // The token request always goes to the configured base_url (the login host).
        call = connection_call(conn.provider->build_auth_request(), conn.config, conn.config.base_url);
    } catch (const std::exception &e) {
        set_error(auth, e.what(), status_mutex);
        auth.retry_at = retry_after_failure(auth, now);
        wake = std::min(wake, auth.retry_at);
        spdlog::error("connection '{}': cannot build the token request: {}", conn.config.name, e.what());
        return need;
    }
    auth.refreshing = true;
    need.request = std::move(call);
    return need;
}

void token_answered(AuthState &auth, const model::ConnectionRuntime &conn, const HttpOutcome &o, util::TimePoint now, std::mutex &status_mutex) {
    auth.refreshing = false;
    try {
        if (o.status == 0) throw std::runtime_error("transport error: " + o.transport_error);
        const auto t = conn.provider->parse_auth_response(plugin::ResponseView{o.status, &o.headers, o.body});
        if (t.instance_url.starts_with("http://") && conn.config.base_url.starts_with("https://"))
            throw std::runtime_error("the token answer names " + t.instance_url + " for calls: plain http, where base_url is https (refused)");
        auth.token = t.token;
        auth.base_url = t.instance_url;
        if (t.expires_in_seconds > 0) {
            const auto ttl = std::chrono::seconds(t.expires_in_seconds);
            auth.expires = now + ttl;
            // Refresh when a tenth of the lifetime (at most a minute) is left.
            auth.refresh_at = auth.expires - std::min<util::SteadyClock::duration>(ttl / 10, std::chrono::seconds(60));
        } else {
            // No stated lifetime (Salesforce's answers have none): until a 401 clears it.
            auth.expires = auth.refresh_at = util::TimePoint::max();
        }
        auth.failures = 0;
        set_error(auth, "", status_mutex);
        spdlog::info("connection '{}': access token refreshed, valid {}{}", conn.config.name,
                     t.expires_in_seconds > 0 ? "for " + std::to_string(t.expires_in_seconds) + " s" : std::string("until refused"),
                     t.instance_url.empty() ? "" : ", calls to " + t.instance_url);
    } catch (const std::exception &e) {
        set_error(auth, e.what(), status_mutex);
        auth.retry_at = retry_after_failure(auth, now);
        spdlog::error("connection '{}': token refresh failed (attempt {}): {}", conn.config.name, auth.failures, e.what());
    }
}

}  // namespace recsync::dispatch
