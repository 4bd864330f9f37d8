// Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
// Jitter"): delay = random(0, min(cap, base * 2^attempt)). Full jitter spreads retries of
// many records that failed together instead of moving the thundering herd.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>

namespace recsync::dispatch {

inline int64_t backoff_delay_ms(int attempt, int64_t base_ms, int64_t cap_ms, std::mt19937_64 &rng) {
    const int shift = std::clamp(attempt, 0, 30);
    const int64_t ceiling = std::min<int64_t>(cap_ms, base_ms << shift);
    std::uniform_int_distribution<int64_t> dist(0, std::max<int64_t>(ceiling, 1));
    return dist(rng);
}

// retry.max_age: true if a retry at `retry_at_ms` (epoch) would come later than the task's
// acceptance + `max_age_ms`. 0 (no limit) or an unknown creation time never expire.
inline bool past_max_age(int64_t created_ms, int64_t retry_at_ms, int64_t max_age_ms) {
    return max_age_ms > 0 && created_ms > 0 && retry_at_ms > created_ms + max_age_ms;
}

}  // namespace recsync::dispatch
