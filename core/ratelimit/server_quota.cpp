#include "ratelimit/server_quota.hpp"

#include <algorithm>

namespace recsync::ratelimit {

namespace {
constexpr util::TimePoint kNever = util::TimePoint::max();
// Longer windows are taken as this long: nanosecond time points overflow past ~292 years,
// and no server's rate-limit window is longer than a year.
constexpr int64_t kMaxWindowMs = 366LL * 24 * 3600 * 1000;
}

ServerQuota::Count ServerQuota::count(const Window &w, util::TimePoint now) const {
    const auto first = std::upper_bound(answered_.begin(), answered_.end(), now - w.length);
    return {first, answered_.end() - first, now < w.foreign_until ? w.foreign : 0};
}

int64_t ServerQuota::allowance(const Window &w, util::TimePoint now) const {
    return counted(w) ? free_places(w, count(w, now)) : w.allowance;
}

// The earliest moment a counted window has a free place, given that our answered calls
// free theirs one length after their answers and the foreign ones all at foreign_until.
util::TimePoint ServerQuota::frees_at(const Window &w, util::TimePoint now) const {
    const Count c = count(w, now);
    const int64_t need = 1 - free_places(w, c);
    if (need <= 0) return now;
    // When the n-th oldest of our answered calls in the window stops counting.
    auto nth_frees = [&](int64_t n) { return n <= c.answered ? *(c.first + (n - 1)) + w.length : kNever; };
    util::TimePoint at = nth_frees(need);
    if (c.foreign > 0) at = std::min(at, need <= c.foreign ? w.foreign_until : std::max(w.foreign_until, nth_frees(need - c.foreign)));
    return at;
}

void ServerQuota::expire(util::TimePoint now) {
    // A counted window stays open, idle or not: its limit still caps the next burst, which
    // may come before any answer brings a report.
    std::erase_if(windows_, [&](const Window &w) { return !counted(w) && now >= w.ends; });
    util::SteadyClock::duration longest{};
    int64_t largest = 0;
    for (const auto &w : windows_) {
        if (!counted(w)) continue;
        longest = std::max(longest, w.length);
        largest = std::max(largest, w.limit);
    }
    while (!answered_.empty() && (answered_.front() <= now - longest || static_cast<int64_t>(answered_.size()) > largest)) answered_.pop_front();
}

void ServerQuota::report(const ServerReport &r, util::TimePoint now) {
    const int64_t window_ms = std::clamp<int64_t>(r.window_ms, 0, kMaxWindowMs);
    const int64_t reset_ms = std::clamp<int64_t>(r.reset_after_ms, 0, kMaxWindowMs);
    if (window_ms == 0 && reset_ms == 0) return;
    expire(now);
    const int64_t remaining = std::max<int64_t>(0, r.remaining);
    const bool is_counted = r.limit > 0 && window_ms > 0 && reset_ms == 0;
    auto it = std::find_if(windows_.begin(), windows_.end(), [&](const Window &w) { return w.key == window_ms; });
    if (it != windows_.end() && counted(*it) != is_counted) {
        if (counted(*it) && !answered_.empty()) {
            // The server stopped (or started) giving the limit: keep our answered calls for
            // when it gives it again, as if all answered last.
            unlogged_ += static_cast<int64_t>(answered_.size());
            unlogged_last_ = answered_.back();
        }
        windows_.erase(it);
        it = windows_.end();
    }
    if (is_counted) {
        if (it == windows_.end()) {
            it = windows_.insert(windows_.end(), Window{.key = window_ms, .length = std::chrono::milliseconds(window_ms)});
            // Our calls answered before there was a window to count them in (the answers
            // of one poll end their calls before any report is applied) hold their places
            // as if all answered last: later, stale reports cannot pass them off as free.
            if (unlogged_last_ > now - it->length)
                answered_.insert(answered_.end(), static_cast<size_t>(std::min(unlogged_, r.limit)), unlogged_last_);
            unlogged_ = 0;
        }
        it->limit = r.limit;
        // Used beyond our calls the server has answered (those in flight may not be
        // counted yet, so they are not subtracted: the estimate errs high).
        const int64_t foreign = std::max<int64_t>(0, r.limit - remaining - count(*it, now).answered);
        // Reports applied at one instant (one poll's answers) come in no particular order:
        // the most used-up one is the newest.
        it->foreign = now == it->reported_at ? std::max(it->foreign, foreign) : foreign;
        it->foreign_until = now + it->length;
        it->reported_at = now;
        return;
    }
    const int64_t allowance = remaining - in_flight_;
    const auto span = std::chrono::milliseconds(reset_ms > 0 ? reset_ms : window_ms);
    if (it == windows_.end()) {
        const util::SteadyClock::duration length = reset_ms > 0 ? util::SteadyClock::duration{} : span;
        windows_.push_back({.key = window_ms, .length = length, .allowance = allowance, .ends = now + span});
        return;
    }
    it->allowance = std::min(it->allowance, allowance);
    if (it->allowance <= 0) it->ends = std::max(it->ends, now + span);
}

bool ServerQuota::try_acquire(util::TimePoint now) {
    expire(now);
    for (const auto &w : windows_)
        if (allowance(w, now) <= 0) return false;
    for (auto &w : windows_)
        if (!counted(w) && --w.allowance == 0 && w.length.count() > 0) w.ends = std::max(w.ends, now + w.length);
    ++in_flight_;
    return true;
}

void ServerQuota::call_cancelled() {
    if (in_flight_ > 0) --in_flight_;
}

void ServerQuota::call_ended(util::TimePoint now) {
    if (in_flight_ > 0) --in_flight_;
    if (std::none_of(windows_.begin(), windows_.end(), [&](const Window &w) { return counted(w); })) {
        ++unlogged_;
        unlogged_last_ = now;
        return;
    }
    // Kept in order: a caller's clock never goes back, but never trust that to a binary search.
    answered_.push_back(answered_.empty() ? now : std::max(now, answered_.back()));
    expire(now);
}

util::TimePoint ServerQuota::blocked_until(util::TimePoint now) {
    expire(now);
    util::TimePoint until = now;
    for (const auto &w : windows_) {
        if (counted(w)) until = std::max(until, frees_at(w, now));
        else if (w.allowance <= 0) until = std::max(until, w.ends);
    }
    return until;
}

int64_t ServerQuota::remaining(util::TimePoint now) {
    expire(now);
    int64_t least = -1;
    for (const auto &w : windows_) {
        const int64_t a = std::max<int64_t>(0, allowance(w, now));
        least = least < 0 ? a : std::min(least, a);
    }
    return least;
}

}  // namespace recsync::ratelimit
