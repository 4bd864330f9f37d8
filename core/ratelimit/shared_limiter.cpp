#include "ratelimit/shared_limiter.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace recsync::ratelimit {

using util::TimePoint;

SharedTokens::SharedTokens(std::string connection, double rate, double burst, int fallback_instances, std::function<void()> wake)
    : connection_(std::move(connection)), wake_(std::move(wake)), rate_(rate), burst_(std::max(1.0, burst > 0 ? burst : rate)), fallback_instances_(std::max(1, fallback_instances)) {}

double SharedTokens::effective_rate_locked() const { return bucket_rate_ > 0 ? std::min(rate_, bucket_rate_) : rate_; }

double SharedTokens::share_locked() const { return effective_rate_locked() / (instances_ > 0 ? instances_ : fallback_instances_); }

bool SharedTokens::server_cap_locked(TimePoint now, double &rate, double &burst) {
    std::erase_if(server_windows_, [&](const ServerWindow &w) { return now - w.at >= kServerLimitLife; });
    if (server_windows_.empty()) return false;
    rate = std::numeric_limits<double>::max();
    burst = std::numeric_limits<double>::max();
    for (const auto &w : server_windows_) {
        rate = std::min(rate, static_cast<double>(w.limit) * 1000.0 / static_cast<double>(w.window_ms));
        burst = std::min(burst, static_cast<double>(w.limit));
    }
    return true;
}

bool SharedTokens::server_due_locked(TimePoint now) {
    double rate = 0, burst = 0;
    if (!server_cap_locked(now, rate, burst)) return false;
    return rate != server_rate_sent_ || burst != server_burst_sent_ || now - server_sent_at_ >= kServerLimitResend;
}

void SharedTokens::server_limit(int64_t limit, int64_t window_ms, TimePoint now) {
    if (limit <= 0 || window_ms <= 0 || window_ms > kServerLimitMaxWindowMs) return;
    bool wake = false;
    {
        std::lock_guard l(mutex_);
        auto it = std::find_if(server_windows_.begin(), server_windows_.end(), [&](const ServerWindow &w) { return w.window_ms == window_ms; });
        if (it == server_windows_.end()) it = server_windows_.insert(server_windows_.end(), ServerWindow{window_ms, limit, now});
        it->limit = limit;
        it->at = now;
        wake = !asking_ && server_due_locked(now);
    }
    if (wake) wake_();
}

int SharedTokens::want_locked() const {
    const int n = static_cast<int>(std::ceil(share_locked() * kLeaseSeconds));
    return std::clamp(n, 1, std::max(1, static_cast<int>(burst_)));
}

void SharedTokens::expire_locked(TimePoint now) {
    if (stock_ > 0 && now >= stock_expires_) stock_ = 0;
}

bool SharedTokens::want_more_locked() {
    if (wanted_) return false;
    wanted_ = true;
    return !asking_;
}

bool SharedTokens::available(TimePoint now) {
    bool wake = false;
    bool ok = false;
    {
        std::lock_guard l(mutex_);
        expire_locked(now);
        if (stock_ > 0) {
            ok = true;
        } else {
            wake = want_more_locked();
            ok = fallback_ && fallback_bucket_->available(now) >= 1.0;
        }
    }
    if (wake) wake_();
    return ok;
}

void SharedTokens::take(TimePoint now) {
    bool wake = false;
    {
        std::lock_guard l(mutex_);
        expire_locked(now);
        if (stock_ > 0) {
            --stock_;
            // Ask for the next lease while half of this one is left, so a busy lane does
            // not wait a round trip for each.
            if (stock_ * 2 <= want_locked()) wake = want_more_locked();
        } else if (fallback_) {
            fallback_bucket_->try_acquire(now);
        }
    }
    if (wake) wake_();
}

TimePoint SharedTokens::next_try(TimePoint now) {
    std::lock_guard l(mutex_);
    if (retry_at_ > now) return retry_at_;
    if (fallback_) return std::min(now + fallback_bucket_->wait_time(now), now + std::chrono::milliseconds(50));
    // A lease is on its way: a loopback round trip is well under this.
    return now + std::chrono::milliseconds(2);
}

void SharedTokens::pause_all(int64_t ms) {
    {
        std::lock_guard l(mutex_);
        pause_ms_ = std::max(pause_ms_, ms);
        stock_ = 0;  // the server said stop: what is leased must not go out either
    }
    wake_();
}

void SharedTokens::set_limit(double rate, double burst) {
    std::lock_guard l(mutex_);
    rate_ = rate;
    burst_ = std::max(1.0, burst > 0 ? burst : rate);
    if (fallback_bucket_) fallback_bucket_->set_rate(share_locked(), util::SteadyClock::now());
}

std::optional<SharedTokens::Request> SharedTokens::request(TimePoint now) {
    std::lock_guard l(mutex_);
    if (asking_) return std::nullopt;
    Request r{rate_, burst_, 0, pause_ms_};
    if (wanted_ && now >= retry_at_) r.want = want_locked();
    if (server_due_locked(now)) {
        server_cap_locked(now, r.server_rate, r.server_burst);
        server_rate_sent_ = r.server_rate;
        server_burst_sent_ = r.server_burst;
        server_sent_at_ = now;
    }
    if (r.want == 0 && r.pause_ms == 0 && r.server_rate == 0) return std::nullopt;
    asked_ = r.want;
    pause_ms_ = 0;
    asking_ = true;
    return r;
}

void SharedTokens::granted(int granted, int64_t wait_ms, int instances, double bucket_rate, TimePoint now) {
    std::lock_guard l(mutex_);
    asking_ = false;
    instances_ = std::max(1, instances);
    bucket_rate_ = bucket_rate;
    fallback_ = false;
    fallback_bucket_.reset();
    expire_locked(now);
    if (granted > 0) {
        stock_ += granted;
        stock_expires_ = now + kLeaseLife;
        ++leases_;
        leased_ += static_cast<uint64_t>(granted);
    }
    // Short of the lease: the others are taking their shares too. Ask again once this
    // instance's share could have refilled the rest (at least when the bucket has a
    // token): asking sooner would only spend Redis calls on a token or two each. But not
    // so late that the bucket, asked by n instances in turn, fills past its burst and
    // loses tokens: each asks at least every n/2 times the time it takes to fill.
    retry_at_ = {};
    if (granted < asked_ && rate_ > 0) {
        const double rest_ms = (asked_ - granted) * 1000.0 / share_locked();
        const double fill_ms = burst_ * 1000.0 / effective_rate_locked() * std::max(1, instances_) / 2;
        const auto ms = std::max(wait_ms, static_cast<int64_t>(std::ceil(std::min(rest_ms, fill_ms))));
        retry_at_ = now + std::chrono::milliseconds(ms);
    }
    // Still short (nothing granted, or under half a lease): ask again, after the wait.
    wanted_ = wanted_ && stock_ * 2 <= want_locked();
}

void SharedTokens::unreachable(TimePoint now) {
    std::lock_guard l(mutex_);
    asking_ = false;
    pause_ms_ = 0;  // by the time the backend is back, the pause is over
    retry_at_ = {};
    server_sent_at_ = {};  // the server's limit did not arrive: say it again once it is back
    if (!fallback_) {
        fallback_ = true;
        // Burst 1: switching over must not add a burst to what was just leased.
        fallback_bucket_.emplace(share_locked(), 1.0, now);
        fallback_bucket_->try_acquire(now);
    }
}

TimePoint SharedTokens::next_request(TimePoint now) {
    std::lock_guard l(mutex_);
    if (asking_) return TimePoint::max();
    if (pause_ms_ > 0 || server_due_locked(now)) return now;
    if (wanted_) return std::max(now, retry_at_);
    return TimePoint::max();
}

SharedTokens::Status SharedTokens::status(TimePoint now) {
    std::lock_guard l(mutex_);
    expire_locked(now);
    return {rate_, bucket_rate_, instances_, fallback_, stock_, leases_, leased_};
}

}  // namespace recsync::ratelimit
