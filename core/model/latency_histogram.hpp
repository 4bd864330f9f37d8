// A latency histogram with fixed buckets, written by one thread and read by any: counts
// only, no samples kept, so its memory is fixed whatever the traffic. Rendered as a
// Prometheus histogram (cumulative buckets, _sum, _count) by server/status_render.
// Written here rather than taken from prometheus-cpp: Debian 12 does not package it, and
// this is twenty lines of atomics.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace recsync::model {

class LatencyHistogram {
public:
    // Upper bounds in seconds: from a fast CRM's answer (5 ms) to a task delivered after
    // a long outage (an hour); past the last, +Inf.
    static constexpr std::array<double, 16> kBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600};

    void observe_ms(int64_t ms) {
        if (ms < 0) ms = 0;
        const double s = static_cast<double>(ms) / 1000.0;
        size_t i = 0;
        while (i < kBounds.size() && s > kBounds[i]) ++i;
        counts_[i].fetch_add(1, std::memory_order_relaxed);
        sum_ms_.fetch_add(static_cast<uint64_t>(ms), std::memory_order_relaxed);
    }

    struct Snapshot {
        std::array<uint64_t, kBounds.size() + 1> counts{};  // per bucket, not cumulative; the last is +Inf
        uint64_t sum_ms = 0;
        uint64_t count() const {
            uint64_t n = 0;
            for (const auto c : counts) n += c;
            return n;
        }
    };
    Snapshot snapshot() const {
        Snapshot s;
        for (size_t i = 0; i < counts_.size(); ++i) s.counts[i] = counts_[i].load(std::memory_order_relaxed);
        s.sum_ms = sum_ms_.load(std::memory_order_relaxed);
        return s;
    }

private:
    std::array<std::atomic<uint64_t>, kBounds.size() + 1> counts_{};
    std::atomic<uint64_t> sum_ms_{0};
};

}  // namespace recsync::model
