#include "ratelimit/server_quota.hpp"

#include <algorithm>

namespace recsync::ratelimit {

void ServerQuota::expire(util::TimePoint now) {
    std::erase_if(windows_, [&](const Window &w) { return now >= w.ends; });
}

void ServerQuota::report(const ServerReport &r, int unanswered, util::TimePoint now) {
    const int64_t window_ms = std::max<int64_t>(0, r.window_ms);
    const int64_t reset_ms = std::max<int64_t>(0, r.reset_after_ms);
    if (window_ms == 0 && reset_ms == 0) return;
    expire(now);
    const int64_t allowance = std::max<int64_t>(0, r.remaining) - std::max(0, unanswered);
    const auto span = std::chrono::milliseconds(reset_ms > 0 ? reset_ms : window_ms);
    auto it = std::find_if(windows_.begin(), windows_.end(), [&](const Window &w) { return w.key == window_ms; });
    if (it == windows_.end()) {
        const util::SteadyClock::duration length = reset_ms > 0 ? util::SteadyClock::duration{} : span;
        windows_.push_back({window_ms, allowance, now + span, length});
        return;
    }
    it->allowance = std::min(it->allowance, allowance);
    if (it->allowance <= 0) it->ends = std::max(it->ends, now + span);
}

bool ServerQuota::try_acquire(util::TimePoint now) {
    expire(now);
    for (const auto &w : windows_)
        if (w.allowance <= 0) return false;
    for (auto &w : windows_)
        if (--w.allowance == 0 && w.length.count() > 0) w.ends = std::max(w.ends, now + w.length);
    return true;
}

util::TimePoint ServerQuota::blocked_until(util::TimePoint now) {
    expire(now);
    util::TimePoint until = now;
    for (const auto &w : windows_)
        if (w.allowance <= 0) until = std::max(until, w.ends);
    return until;
}

int64_t ServerQuota::remaining(util::TimePoint now) {
    expire(now);
    int64_t least = -1;
    for (const auto &w : windows_) least = least < 0 ? std::max<int64_t>(0, w.allowance) : std::min(least, std::max<int64_t>(0, w.allowance));
    return least;
}

}  // namespace recsync::ratelimit
