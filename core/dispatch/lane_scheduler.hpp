// Which lanes the dispatcher looks at, so that one wake-up costs O(lanes with work), not
// O(lanes): a FIFO ring of lanes that may start a call now, and a timer heap of lanes that
// may start one later (a retry coming due, the bucket refilling, a pause ending, a token
// refresh). A turn visits each lane in the ring once and starts at most kStartsPerVisit
// calls on it; a lane with more goes to the back of the ring. So a lane with a million
// waiting tasks gets the same turn as a quiet one, and 10,000 idle lanes cost nothing.
// Owned by the dispatcher thread.
#pragma once

#include "dispatch/lane.hpp"

#include <cstdint>
#include <deque>
#include <queue>
#include <vector>

namespace recsync::dispatch {

class LaneScheduler {
public:
    static constexpr int kStartsPerVisit = 16;

    // The lane may be able to start a call now (new work, a call finished, a reload).
    // A lane already in the ring keeps its place.
    void ready(Lane *lane);
    // Lanes a turn could not serve (the dispatcher's global cap on calls in flight was
    // reached): they go to the front of the ring, in this order, so they are served first
    // next turn and the lanes that already had theirs cannot starve them.
    void ready_first(const std::vector<Lane *> &lanes);
    // Look at the lane again at `at` (an earlier time replaces a later one).
    void wake_at(Lane *lane, util::TimePoint at);
    // Lanes whose time has come join the ring.
    void promote(util::TimePoint now);
    // This turn's lanes, in ring order, at most `max_lanes` of them (the calls that may
    // start, e.g. the free slots under the dispatcher's global cap): each leaves the ring
    // until ready() again; the others keep their places, untouched. Taking the whole ring
    // when only a few calls can start cost O(lanes) per wake-up: with 10,000 busy lanes,
    // two passes over 10,000 lanes' memory for every few calls (bench/run lanes).
    std::vector<Lane *> take_turn(size_t max_lanes = SIZE_MAX);
    bool has_ready() const { return !ring_.empty(); }
    // The earliest timer, or TimePoint::max().
    util::TimePoint next_timer();

private:
    struct Timer {
        util::TimePoint at;
        Lane *lane;
        bool operator>(const Timer &o) const { return at > o.at; }
    };
    std::deque<Lane *> ring_;
    std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;  // stale entries skipped
};

// Starts up to `max_starts` of the lane's ready tasks, as far as its concurrency cap, the
// server's quota and its token bucket allow, calling start(task) for each. Returns true if
// it stopped only because of `max_starts` (the lane wants another turn); otherwise `wake`
// is lowered to when the lane may go on, if a limit says (a full concurrency cap frees up
// when a call completes, which makes the lane ready again).
template <typename Start>
bool start_some(Lane &lane, util::TimePoint now, int max_starts, util::TimePoint &wake, Start &&start) {
    lane.promote_due(now);
    for (int started = 0; lane.has_ready() && lane.below_concurrency_cap(); ++started) {
        if (started == max_starts) return true;
        if (!lane.acquire_send(now, wake)) break;
        start(lane.start_next());
    }
    wake = std::min(wake, lane.next_retry());
    return false;
}

}  // namespace recsync::dispatch
