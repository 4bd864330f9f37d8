#include "dispatch/concurrency_limit.hpp"

#include <algorithm>

namespace recsync::dispatch {

ConcurrencyLimit::ConcurrencyLimit(size_t max, size_t floor) : max_(std::max<size_t>(1, max)), floor_(std::clamp<size_t>(floor, 1, max_)), limit_(max_) {}

void ConcurrencyLimit::set_max(size_t max) {
    max_ = std::max(floor_, max);
    limit_ = std::min(limit_, max_);
}

bool ConcurrencyLimit::update(util::TimePoint now) {
    if (!started_) {
        started_ = true;
        interval_start_ = now;
    }
    const auto elapsed = now - interval_start_;
    if (elapsed < kInterval) return false;
    const size_t before = limit_;
    const double idle = std::chrono::duration<double>(idle_) / std::chrono::duration<double>(elapsed);
    // Only while the limit is what holds lanes back: one that binds nobody says nothing.
    if (capped_ && idle < kSaturatedIdle) {
        // Down by an eighth once saturated for kShrinkAfter intervals in a row: one busy
        // interval (a commit, a checkpoint) is no trend, and a limit below the knee costs
        // more than one above it (the thread then waits for answers it could have had).
        if (++saturated_run_ >= kShrinkAfter) limit_ = std::max(floor_, limit_ - std::max<size_t>(1, limit_ / 8));
    } else {
        saturated_run_ = 0;
        // Up by a quarter: a burst against slow CRMs gets its calls back within a second.
        if (capped_ && idle > kGrowIdle) limit_ = std::min(max_, limit_ + std::max<size_t>(1, limit_ / 4));
    }
    interval_start_ = now;
    idle_ = {};
    capped_ = false;
    return limit_ != before;
}

}  // namespace recsync::dispatch
