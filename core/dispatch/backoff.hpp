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

}  // namespace recsync::dispatch
