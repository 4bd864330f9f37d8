#include "dispatch/auth_refresh.hpp"

#include <spdlog/spdlog.h>

namespace recsync::dispatch {

namespace {

void set_error(Lane::AuthState &auth, std::string error, std::mutex &status_mutex) {
    std::lock_guard l(status_mutex);
    auth.last_error = std::move(error);
}

// 1 s, 2 s, 4 s ... a minute.
util::TimePoint retry_after_failure(Lane::AuthState &auth, util::TimePoint now) { return now + std::chrono::seconds(std::min(60, 1 << std::min(auth.failures++, 6))); }

}  // namespace

HttpCall connection_call(plugin::BuiltRequest &&req, const config::ConnectionConfig &c) {
    HttpCall call;
    call.method = std::move(req.method);
    call.url = c.base_url + req.path;
    call.body = std::move(req.body);
    call.headers = std::move(req.headers);
    call.connect_timeout_ms = c.connect_timeout_ms;
    call.timeout_ms = c.timeout_ms;
    call.ca_file = c.tls_ca_file;
    return call;
}

TokenNeed token_need(Lane &lane, util::TimePoint now, util::TimePoint &wake, std::mutex &status_mutex) {
    auto &auth = lane.auth();
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
    const auto &conn = lane.connection();
    HttpCall call;
    try {
        call = connection_call(conn.provider->build_auth_request(), conn.config);
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

void token_answered(Lane &lane, const model::ConnectionRuntime &conn, const HttpOutcome &o, util::TimePoint now, std::mutex &status_mutex) {
    auto &auth = lane.auth();
    auth.refreshing = false;
    try {
        if (o.status == 0) throw std::runtime_error("transport error: " + o.transport_error);
        const auto t = conn.provider->parse_auth_response(plugin::ResponseView{o.status, &o.headers, o.body});
        const auto ttl = std::chrono::seconds(std::max<int64_t>(1, t.expires_in_seconds));
        auth.token = t.token;
        auth.expires = now + ttl;
        // Refresh when a tenth of the lifetime (at most a minute) is left.
        auth.refresh_at = auth.expires - std::min<util::SteadyClock::duration>(ttl / 10, std::chrono::seconds(60));
        auth.failures = 0;
        set_error(auth, "", status_mutex);
        spdlog::info("connection '{}': access token refreshed, valid for {} s", conn.config.name, t.expires_in_seconds);
    } catch (const std::exception &e) {
        set_error(auth, e.what(), status_mutex);
        auth.retry_at = retry_after_failure(auth, now);
        spdlog::error("connection '{}': token refresh failed (attempt {}): {}", conn.config.name, auth.failures, e.what());
    }
}

}  // namespace recsync::dispatch
