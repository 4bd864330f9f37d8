// A token bucket (rate tokens per second, up to `burst` stored) with a pause: a 429/503
// with Retry-After stops the bucket until then. Not thread-safe: one lane, one owner
// (the dispatcher thread). Time is passed in so tests and simulations control it.
#pragma once

#include "util/clock.hpp"

namespace recsync::ratelimit {

class TokenBucket {
public:
    // rate <= 0 means unlimited.
    TokenBucket(double rate_per_second, double burst, util::TimePoint now);

    // Takes one token if available (and not paused).
    bool try_acquire(util::TimePoint now);
    // The tokens stored now (0 while paused; unlimited: infinity).
    double available(util::TimePoint now);
    // How long until try_acquire can succeed (zero if it can now).
    util::SteadyClock::duration wait_time(util::TimePoint now);
    // No tokens before `until`; the bucket restarts empty then, so the resumed traffic
    // does not arrive as a burst at a server that just said "slow down".
    void pause_until(util::TimePoint until);

    // Changes the refill rate, keeping the tokens already stored (AIMD adjusts it).
    void set_rate(double rate_per_second, util::TimePoint now);

    double rate() const { return rate_; }
    double burst() const { return burst_; }
    bool paused(util::TimePoint now) const { return now < paused_until_; }
    util::TimePoint paused_until() const { return paused_until_; }

private:
    void refill(util::TimePoint now);
    double rate_;
    double burst_;
    double tokens_;
    util::TimePoint last_;
    util::TimePoint paused_until_{};
};

}  // namespace recsync::ratelimit
