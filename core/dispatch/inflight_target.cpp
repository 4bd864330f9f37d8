#include "dispatch/inflight_target.hpp"

#include <algorithm>
#include <cmath>

namespace recsync::dispatch {

InFlightTarget::InFlightTarget(int floor, int ceiling) : floor_(std::max(1, floor)), ceiling_(std::max(floor_, ceiling)), target_(floor_) {}

void InFlightTarget::set_bounds(int floor, int ceiling) {
    floor_ = std::max(1, floor);
    ceiling_ = std::max(floor_, ceiling);
    target_ = std::clamp(target_, floor_, ceiling_);
}

void InFlightTarget::answered(util::SteadyClock::duration answer) {
    ++answers_;
    answer_sum_s_ += std::chrono::duration<double>(answer).count();
}

bool InFlightTarget::update(util::TimePoint now) {
    if (!started_) {
        started_ = true;
        window_start_ = now;
    }
    const double elapsed = std::chrono::duration<double>(now - window_start_).count();
    if (now - window_start_ < kWindow) return false;
    const int before = target_;
    if (answers_ > 0) {
        const double mean = answer_sum_s_ / static_cast<double>(answers_);
        answer_s_ = answer_s_ == 0 ? mean : 0.5 * answer_s_ + 0.5 * mean;
        fastest_s_ = fastest_s_ == 0 ? mean : std::min(mean, fastest_s_ * (1 + kFastestDrift));
    }
    if (floor_ < ceiling_) {
        const double rate = static_cast<double>(answers_) / elapsed;
        const double needed = std::ceil(rate * answer_s_ * kHeadroom) + kSlack;
        const bool queueing = answer_s_ > kQueueingFactor * fastest_s_;
        const int want = static_cast<int>(std::min<double>(needed, ceiling_));
        if (want > target_ && !queueing) target_ = want;
        else if (want < target_) target_ = std::max({floor_, want, target_ - std::max(1, target_ / 8)});
    }
    window_start_ = now;
    answers_ = 0;
    answer_sum_s_ = 0;
    return target_ != before;
}

}  // namespace recsync::dispatch
