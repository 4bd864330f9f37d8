// What the server itself says about its rate limit (a plugin reads it from the response
// headers and reports it through host_api.set_rate_limit): "`remaining` more requests in
// this window, which is `window_ms` long / resets in `reset_after_ms`". The lane asks the
// quota before every call, next to its own token bucket, so it never sends more than the
// server said remains and pauses while nothing does. Not thread-safe: one lane, one owner
// (the dispatcher thread). Time is passed in so tests control it.
#pragma once

#include "util/clock.hpp"

#include <cstdint>
#include <vector>

namespace recsync::ratelimit {

// One window as a plugin reported it (the arguments of host_api.set_rate_limit).
struct ServerReport {
    int64_t limit = 0;           // the window's size; 0 if unknown (status only)
    int64_t remaining = 0;       // requests the server still allows in this window
    int64_t window_ms = 0;       // the window's length; 0 if unknown
    int64_t reset_after_ms = 0;  // until it resets; 0 if unknown
};

class ServerQuota {
public:
    // Applies one report. `unanswered`: the lane's other calls in flight; the server may
    // not have counted them yet, so they are taken off what remains. Windows are told apart
    // by their length (HubSpot reports a 10 s and a 1 s window); a report with neither a
    // length nor a reset time cannot say when sending may resume and is ignored.
    //
    // Within an open window the allowance only goes down (a response that overtook an
    // older one must not give back what a newer one took), and the window keeps the end it
    // opened with. When the allowance is used up (by a report, or by our own calls), the
    // window ends no sooner than its reset time or, if only its length is known, a full
    // length after that moment: safe for a fixed, a rolling and a token-bucket window alike
    // (a bucket that is empty now is full again one length later).
    void report(const ServerReport &r, int unanswered, util::TimePoint now);

    // True, and one request counted against every open window, if every window allows one.
    bool try_acquire(util::TimePoint now);
    // When try_acquire can succeed next: `now` if it can now.
    util::TimePoint blocked_until(util::TimePoint now);
    // For /v1/status: the smallest allowance of the open windows (-1: none open).
    int64_t remaining(util::TimePoint now);

private:
    struct Window {
        int64_t key = 0;  // window_ms (0 for windows known only by their reset time)
        int64_t allowance = 0;
        util::TimePoint ends{};
        util::SteadyClock::duration length{};  // zero when the server gave the reset time
    };
    void expire(util::TimePoint now);
    std::vector<Window> windows_;  // open windows; rarely more than two
};

}  // namespace recsync::ratelimit
