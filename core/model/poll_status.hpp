// A typed snapshot of one poller (a connection's object searched for changes), taken by
// the poller and rendered by the server in /v1/status and /metrics.
#pragma once

#include <cstdint>
#include <string>

namespace recsync::model {

struct PollStatus {
    std::string connection;
    std::string object;
    int64_t interval_ms = 0;
    std::string cursor;          // the durable cursor ("" before the first page)
    int64_t last_page_ms = 0;    // epoch ms of the last page made durable; 0: none yet
    int64_t next_poll_ms = 0;    // epoch ms of the next request (about)
    uint64_t pages = 0;          // pages made durable since start
    uint64_t events = 0;         // their events
    uint64_t failures = 0;       // requests that brought no page (errors, refusals)
    uint64_t refused = 0;        // polled changes the rules or the provider refused: skipped, logged
    std::string last_error;      // the last failure's reason; empty after a page
};

}  // namespace recsync::model
