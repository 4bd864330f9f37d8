// A typed snapshot of one lane, taken by the dispatcher and rendered by the server as
// /v1/status JSON and /metrics text (one source, no parsing of our own output back).
#pragma once

#include "model/latency_histogram.hpp"

#include <cstdint>
#include <string>

namespace recsync::model {

struct LaneStatus {
    std::string connection;
    std::string provider;
    int64_t queued = 0;     // accepted and not finished (in the task log, in memory or not)
    int64_t in_memory = 0;  // of those, held by the lane (its window of the backlog)
    int64_t in_flight = 0;
    int64_t in_flight_target = 0;  // calls it may have in flight now (from the CRM's answer times)
    double answer_ms = 0;          // the CRM's recent mean answer time
    int64_t paused_until_ms = 0;    // epoch ms; 0 if not paused
    int64_t server_remaining = -1;  // the server's reported allowance; -1 if none
    double rate_per_second = 0;     // configured
    double current_rate_per_second = 0;  // in force (lowered by throttling)
    uint64_t succeeded = 0;
    uint64_t retried = 0;
    uint64_t dead_lettered = 0;
    uint64_t unchanged = 0;  // finished without a call: the payload was what was last written
    uint64_t skipped = 0;    // finished without a call for another reason (stale, deleted, never made)
    uint64_t throttled = 0;      // answers that said "too many" (a 429, or a 503 with Retry-After)
    int64_t throttled_ms = 0;    // time paused by those answers' Retry-After, in all
    int64_t oldest_age_ms = 0;   // how long the oldest task still waiting has waited since it was accepted; 0: none
    LatencyHistogram::Snapshot delivery;  // acceptance -> delivered, per task delivered
    LatencyHistogram::Snapshot answer;    // the CRM's answer time, per call
    std::string last_error;     // the last retry's or dead letter's reason; empty if none
    int64_t last_error_ms = 0;  // when (epoch ms)
    std::string auth_error;  // the last token refresh's failure; empty if none
    bool removed = false;    // by a reload: sends nothing, keeps its tasks
};

}  // namespace recsync::model
