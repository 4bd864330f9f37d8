// Process-wide counters, exported at /metrics (Prometheus text) and /v1/status.
#pragma once

#include <atomic>
#include <cstdint>

namespace recsync::engine {

struct Metrics {
    std::atomic<uint64_t> events_accepted{0};
    std::atomic<uint64_t> events_rejected{0};
    std::atomic<uint64_t> tasks_enqueued{0};
    std::atomic<uint64_t> tasks_succeeded{0};
    std::atomic<uint64_t> tasks_retried{0};
    std::atomic<uint64_t> tasks_dead_lettered{0};
    std::atomic<uint64_t> tasks_coalesced{0};  // folded into a waiting task, never sent
    std::atomic<uint64_t> http_calls{0};
    // Gauge: calls allowed in flight across all connections now (dispatch::ConcurrencyLimit).
    std::atomic<uint64_t> calls_in_flight_limit{0};
};

}  // namespace recsync::engine
