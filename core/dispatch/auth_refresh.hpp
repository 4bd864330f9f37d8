// Access tokens for providers with RECSYNC_CAP_AUTH_REFRESH: the host runs the plugin's
// token request itself, reads the token from its answer, refreshes it when a tenth of its
// lifetime (at most a minute) is left (or, for a token with no stated lifetime, once the
// server refuses it with a 401), and after a failure retries with backoff (1 s doubling to
// a minute). The token request carries client secrets: it is never logged or stored.
// The state is an AuthState (auth_state.hpp), driven by one thread: a lane's by the
// dispatcher's, a polled connection's by the poller's.
#pragma once

#include "dispatch/auth_state.hpp"
#include "dispatch/http_executor.hpp"
#include "model/runtime.hpp"

#include <mutex>
#include <optional>
#include <string_view>

namespace recsync::dispatch {

struct TokenNeed {
    bool usable = false;              // there is a token calls may use now
    std::optional<HttpCall> request;  // a token request to start now (tag unset)
};

// Whether calls can go now, and the token request to start if one is due. Lowers `wake`
// to when to look again. `status_mutex` guards the auth error that /v1/status reads.
TokenNeed token_need(AuthState &auth, const model::ConnectionRuntime &conn, util::TimePoint now, util::TimePoint &wake, std::mutex &status_mutex);
// The token request's answer: the new token, or the failure and when to try again.
void token_answered(AuthState &auth, const model::ConnectionRuntime &conn, const HttpOutcome &answer, util::TimePoint now, std::mutex &status_mutex);

// A call made with `used_token` was answered 401: that token is dropped (unless a newer one
// has replaced it meanwhile), so the next call fetches another.
void token_refused(AuthState &auth, const std::string &used_token);

// The call a plugin's request makes at the connection (a record's, a token's, a poll's):
// its path under `base_url` (the connection's, or the one its token answer named), with
// what the connection's config says about every call to it.
HttpCall connection_call(plugin::BuiltRequest &&req, const config::ConnectionConfig &c, std::string_view base_url);

}  // namespace recsync::dispatch
