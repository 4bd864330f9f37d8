// What the server itself says about its rate limit (a plugin reads it from the response
// headers and reports it through host_api.set_rate_limit): "`remaining` more requests of
// `limit` in this window, which is `window_ms` long / resets in `reset_after_ms`". The
// lane asks the quota before every call, next to its own token bucket, so it never sends
// more than the server said remains and pauses only as long as nothing does. Not
// thread-safe: one lane, one owner (the dispatcher thread). Time is passed in so tests
// control it.
#pragma once

#include "util/clock.hpp"

#include <cstdint>
#include <deque>
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
    // Applies one report. Windows are told apart by their length (HubSpot reports a 10 s
    // and a 1 s window); a report with neither a length nor a reset time cannot say when
    // sending may resume and is ignored. The lane's calls still in flight count as spent:
    // the server may not have counted them yet.
    //
    // A window with a limit and a length but no reset time (HubSpot's) is counted: the
    // server may be a fixed, a rolling or a token-bucket window, and for all three a call
    // stops counting at most one length after the server saw it. So each of our calls
    // holds a place from the moment it is let through until one length after its answer,
    // and what the report says is used beyond our own calls (another client's, or ones
    // we sent before the window was known) holds its places for one length after the
    // report. The lane then sends as soon as one place is free, instead of waiting out a
    // whole length each time the window fills: with our calls alone on the server, at
    // most `limit` of them are ever counted within one length, so none is refused. (Not
    // covered: a sliding-window *counter*, which weighs the previous fixed window's count
    // by its overlap; its 429s are handled like any other.) A counted window stays open
    // once reported, so its limit caps every later burst; only the calls let through
    // before the first report are not capped (keep max_in_flight at most the limit).
    //
    // Any other window (a reset time known, or no limit) keeps the allowance it opened
    // with, lowered by each report and each call: a response that overtook an older one
    // must not give back what the newer one took. Used up, it ends at its reset time or,
    // if only its length is known, a full length after that moment: safe for a fixed, a
    // rolling and a token-bucket window alike.
    void report(const ServerReport &r, util::TimePoint now);

    // True, and the call counted against every window, if every window allows one.
    bool try_acquire(util::TimePoint now);
    // A call let through by try_acquire is over at `now`: answered, or failed on the way
    // (the server may have counted it).
    void call_ended(util::TimePoint now);
    // A call let through by try_acquire never went out (nothing to send, the plugin
    // refused to build it): it holds no place.
    void call_cancelled();
    // When try_acquire can succeed next: `now` if it can now; TimePoint::max() if only an
    // answer to a call in flight can free a place (call_ended).
    util::TimePoint blocked_until(util::TimePoint now);
    // For /v1/status: the smallest allowance of the open windows (-1: none open).
    int64_t remaining(util::TimePoint now);

private:
    struct Window {
        int64_t key = 0;    // window_ms (0 for windows known only by their reset time)
        int64_t limit = 0;  // > 0: a counted window (see report)
        util::SteadyClock::duration length{};
        // Counted windows: places the server's count held beyond our calls, until when.
        int64_t foreign = 0;
        util::TimePoint foreign_until{};
        util::TimePoint reported_at{};
        // Other windows.
        int64_t allowance = 0;
        util::TimePoint ends{};
    };
    bool counted(const Window &w) const { return w.limit > 0; }
    // What holds a counted window's places now, besides the calls in flight.
    struct Count {
        std::deque<util::TimePoint>::const_iterator first;  // our oldest answer within it
        int64_t answered;  // ours answered within one length
        int64_t foreign;   // others', until foreign_until
    };
    Count count(const Window &w, util::TimePoint now) const;
    int64_t free_places(const Window &w, const Count &c) const { return w.limit - c.foreign - in_flight_ - c.answered; }
    int64_t allowance(const Window &w, util::TimePoint now) const;
    util::TimePoint frees_at(const Window &w, util::TimePoint now) const;
    void expire(util::TimePoint now);

    std::vector<Window> windows_;  // open windows; rarely more than two
    int64_t in_flight_ = 0;        // let through, not yet ended
    // When our calls were answered, oldest first: only while a counted window is open,
    // only as far back as its length, and no more than its limit (older ones could not
    // change when a place frees).
    std::deque<util::TimePoint> answered_;
    // Calls that ended while no counted window was open (before the first report, or
    // while the server left out the limit): how many, and the last one's end. A new
    // counted window takes them as answered then.
    int64_t unlogged_ = 0;
    util::TimePoint unlogged_last_{};
};

}  // namespace recsync::ratelimit
