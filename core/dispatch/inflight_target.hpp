// How many calls one lane may have in flight: from the CRM's measured answer times, by
// Little's law (calls in flight = completions/s x answer time), between the connection's
// max_in_flight (where it starts, and its floor) and max_in_flight_ceiling.
//
// A CRM that answers in 150 ms needs 150 calls in flight for 1,000 records/s; a fixed cap
// of 8 gives it 53/s whatever its quota. So every window (kWindow) the lane's completions
// per second and mean answer time give what the rate it reaches needs, with headroom to
// find a higher one: target = rate x answer x kHeadroom + kSlack. A lane held back by its
// target completes target/answer calls per second, so that product is kHeadroom x the
// target: it grows by half per window until the CRM's quota (its completions stop
// growing), the demand, or the ceiling binds.
//
// Growth stops while the answers slow down past kQueueingFactor x the fastest window seen
// (more calls then only queue at the CRM, or in our own thread: the answer time would
// keep rising with the calls, and Little's law keep asking for more). It falls by at most
// an eighth per window, so one quiet window does not throw the calls away.
//
// Single-threaded: the dispatcher thread calls every member.
#pragma once

#include "util/clock.hpp"

#include <cstdint>

namespace recsync::dispatch {

class InFlightTarget {
public:
    // floor: the connection's max_in_flight; ceiling >= floor (equal: a fixed cap).
    InFlightTarget(int floor, int ceiling);

    int current() const { return target_; }
    // The mean answer time of recent windows, in ms (0 before any answer).
    double answer_ms() const { return answer_s_ * 1000; }

    // A reload: new bounds, the target kept inside them.
    void set_bounds(int floor, int ceiling);
    // A call answered after `answer` (not a call cancelled before it went out).
    void answered(util::SteadyClock::duration answer);
    // Closes a window once kWindow has passed: adjusts the target. True if it changed.
    bool update(util::TimePoint now);

    static constexpr util::SteadyClock::duration kWindow = std::chrono::milliseconds(100);
    static constexpr double kHeadroom = 1.5;
    static constexpr int kSlack = 2;
    static constexpr double kQueueingFactor = 2.0;
    // The fastest window seen drifts up by this share per window, so a CRM that got slower
    // for good (a new region, heavier records) is taken as it is after a while (~7 s to 2x).
    static constexpr double kFastestDrift = 0.01;

private:
    int floor_, ceiling_, target_;
    bool started_ = false;
    util::TimePoint window_start_{};
    int64_t answers_ = 0;  // in this window
    double answer_sum_s_ = 0;
    double answer_s_ = 0;       // smoothed over windows
    double fastest_s_ = 0;      // the fastest window's mean (0: none yet)
};

}  // namespace recsync::dispatch
