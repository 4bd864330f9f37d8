#include "dispatch/concurrency_limit.hpp"

#include <algorithm>

namespace recsync::dispatch {

ConcurrencyLimit::ConcurrencyLimit(size_t max, size_t floor) : max_(std::max<size_t>(1, max)), floor_(std::clamp<size_t>(floor, 1, max_)), limit_(max_) {}

void ConcurrencyLimit::update(util::TimePoint now) {
    if (!started_) {
        started_ = true;
        interval_start_ = now;
    }
    const auto elapsed = now - interval_start_;
    if (elapsed < kInterval) return;
    const double idle = std::chrono::duration<double>(idle_) / std::chrono::duration<double>(elapsed);
    // Only while the limit is what holds lanes back: one that binds nobody says nothing.
    if (capped_ && idle < kSaturatedIdle) {
        // Down by an eighth: from 256 to the floor of 16 in about a second.
        limit_ = std::max(floor_, limit_ - std::max<size_t>(1, limit_ / 8));
    } else if (capped_ && idle > kGrowIdle) {
        // Up by a quarter: a burst against slow CRMs gets its calls back within a second.
        limit_ = std::min(max_, limit_ + std::max<size_t>(1, limit_ / 4));
    }
    interval_start_ = now;
    idle_ = {};
    capped_ = false;
}

}  // namespace recsync::dispatch
