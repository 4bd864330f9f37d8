#include "ratelimit/token_bucket.hpp"

#include <algorithm>
#include <limits>

namespace recsync::ratelimit {

TokenBucket::TokenBucket(double rate, double burst, util::TimePoint now)
    : rate_(rate), burst_(std::max(1.0, burst > 0 ? burst : rate)), tokens_(burst_), last_(now) {}

void TokenBucket::refill(util::TimePoint now) {
    if (now <= last_) return;
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
    last_ = now;
}

bool TokenBucket::try_acquire(util::TimePoint now) {
    if (now < paused_until_) return false;
    if (rate_ <= 0) return true;
    refill(now);
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
}

double TokenBucket::available(util::TimePoint now) {
    if (now < paused_until_) return 0;
    if (rate_ <= 0) return std::numeric_limits<double>::infinity();
    refill(now);
    return tokens_;
}

util::SteadyClock::duration TokenBucket::wait_time(util::TimePoint now) {
    if (now < paused_until_) return paused_until_ - now;
    if (rate_ <= 0) return {};
    refill(now);
    if (tokens_ >= 1.0) return {};
    const double seconds = (1.0 - tokens_) / rate_;
    return std::chrono::duration_cast<util::SteadyClock::duration>(std::chrono::duration<double>(seconds));
}

void TokenBucket::set_rate(double rate_per_second, util::TimePoint now) {
    refill(now);
    rate_ = rate_per_second;
}

void TokenBucket::pause_until(util::TimePoint until) {
    if (until <= paused_until_) return;
    paused_until_ = until;
    tokens_ = 0;
    last_ = until;
}

}  // namespace recsync::ratelimit
