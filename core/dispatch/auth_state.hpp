// A connection's refreshed credential as the host holds it (RECSYNC_CAP_AUTH_REFRESH):
// the token, where calls made with it go, and when to fetch the next one. One per lane
// (the dispatcher's calls) and one per polled connection (the poller's): each fetches its
// own token, so neither waits on the other's thread.
#pragma once

#include "util/clock.hpp"

#include <string>

namespace recsync::dispatch {

struct AuthState {
    std::string token;
    // The base URL the token answer named for calls made with it (Salesforce's
    // instance_url); empty: the connection's base_url.
    std::string base_url;
    util::TimePoint expires{};     // TimePoint::max(): valid until the server refuses it (a 401)
    util::TimePoint refresh_at{};  // refresh early, while the old token still works
    util::TimePoint retry_at{};    // after a failed refresh
    bool refreshing = false;
    int failures = 0;
    std::string last_error;
};

}  // namespace recsync::dispatch
