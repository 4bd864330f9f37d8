#include "dispatch/lane_scheduler.hpp"

#include <algorithm>

namespace recsync::dispatch {

void LaneScheduler::ready(Lane *lane) {
    auto &s = lane->schedule_state();
    if (s.in_ring) return;
    s.in_ring = true;
    ring_.push_back(lane);
}

void LaneScheduler::ready_first(const std::vector<Lane *> &lanes) {
    for (auto it = lanes.rbegin(); it != lanes.rend(); ++it) {
        auto &s = (*it)->schedule_state();
        if (s.in_ring) continue;
        s.in_ring = true;
        ring_.push_front(*it);
    }
}

void LaneScheduler::wake_at(Lane *lane, util::TimePoint at) {
    auto &s = lane->schedule_state();
    if (at >= s.timer) return;  // an earlier (or the same) timer is already set
    s.timer = at;
    timers_.push({at, lane});
}

void LaneScheduler::promote(util::TimePoint now) {
    while (!timers_.empty() && timers_.top().at <= now) {
        const Timer t = timers_.top();
        timers_.pop();
        auto &s = t.lane->schedule_state();
        if (s.timer != t.at) continue;  // replaced by an earlier timer that already fired
        s.timer = util::TimePoint::max();
        ready(t.lane);
    }
}

std::vector<Lane *> LaneScheduler::take_turn(size_t max_lanes) {
    const auto n = static_cast<std::ptrdiff_t>(std::min(max_lanes, ring_.size()));
    std::vector<Lane *> turn(ring_.begin(), ring_.begin() + n);
    ring_.erase(ring_.begin(), ring_.begin() + n);
    for (Lane *l : turn) l->schedule_state().in_ring = false;
    return turn;
}

util::TimePoint LaneScheduler::next_timer() {
    while (!timers_.empty() && timers_.top().lane->schedule_state().timer != timers_.top().at) timers_.pop();
    return timers_.empty() ? util::TimePoint::max() : timers_.top().at;
}

}  // namespace recsync::dispatch
