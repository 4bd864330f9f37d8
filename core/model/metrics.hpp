// Process-wide counters, exported at /metrics (Prometheus text) and /v1/status.
#pragma once

#include <atomic>
#include <cstdint>

namespace recsync::model {

struct Metrics {
    std::atomic<uint64_t> events_accepted{0};    // acknowledged with a 2xx (duplicates and stale ones included)
    std::atomic<uint64_t> events_rejected{0};    // refused with a 4xx for what they said
    std::atomic<uint64_t> fields_withheld{0};     // fields left out of a change because the other side owns them (conflicts.owners)
    std::atomic<uint64_t> echoes_suppressed{0};  // changes from a connection that were recsync's own write coming back: dropped
    std::atomic<uint64_t> webhook_deliveries{0};  // webhook requests whose signature held
    std::atomic<uint64_t> webhooks_unauthenticated{0};  // refused with a 401: signature missing, wrong or stale
    std::atomic<uint64_t> requests_unauthorized{0};  // refused with a 401 or 403: no, unknown or the wrong kind of bearer token
    std::atomic<uint64_t> polls{0};               // poll requests sent (poll/poller.hpp)
    std::atomic<uint64_t> poll_failures{0};       // of those, ones that brought no durable page
    std::atomic<uint64_t> poll_events{0};         // events in the pages made durable
    std::atomic<uint64_t> pg_rows_captured{0};     // PostgreSQL change-log rows made durable events
    std::atomic<uint64_t> pg_own_rows_skipped{0};  // rows recsync's own apply wrote: not captured again
    std::atomic<uint64_t> pg_rows_refused{0};      // rows the rules or schemas refused: logged and skipped
    std::atomic<uint64_t> pg_capture_failures{0};  // reads or commits that failed (connection lost, backlog full)
    std::atomic<uint64_t> poll_events_refused{0}; // polled changes refused (rules, schema): skipped so the cursor moves on
    std::atomic<uint64_t> events_duplicate{0};   // an event id seen within the retention: acknowledged, ignored
    std::atomic<uint64_t> events_stale{0};       // older than the record's last accepted change: acknowledged, dropped
    std::atomic<uint64_t> requests_throttled{0}; // refused with a 429: a backlog was full
    std::atomic<uint64_t> tasks_enqueued{0};
    std::atomic<uint64_t> tasks_succeeded{0};
    std::atomic<uint64_t> tasks_retried{0};
    std::atomic<uint64_t> tasks_dead_lettered{0};
    std::atomic<uint64_t> tasks_coalesced{0};    // folded into a waiting task of the same record, never sent
    // Finished without a call, because the sync state made the call needless:
    std::atomic<uint64_t> tasks_unchanged{0};    // the payload equals what was last written there
    std::atomic<uint64_t> tasks_stale{0};        // the record has since applied a newer change (a replay)
    std::atomic<uint64_t> tasks_after_delete{0}; // an update of a record deleted there: not brought back
    std::atomic<uint64_t> tasks_not_synced{0};   // a delete of a record never made there
    std::atomic<uint64_t> tasks_conflict{0};     // a two-way task whose change lost a conflict at its target
    std::atomic<uint64_t> conflicts{0};          // conflicts resolved: changes dropped at ingest, tasks skipped at delivery
    std::atomic<uint64_t> http_calls{0};
    // Batches (ABI 1.6): calls that carried several records, the records they carried, and
    // those records' own failures or retries inside them. Records per batch call:
    // batched_records / batch_calls.
    std::atomic<uint64_t> batch_calls{0};
    std::atomic<uint64_t> batched_records{0};
    std::atomic<uint64_t> batch_record_failures{0};
    // Gauges: calls allowed in flight across all connections now (dispatch::ConcurrencyLimit),
    // and tasks the lanes hold in memory (a window of each backlog).
    std::atomic<uint64_t> calls_in_flight_limit{0};
    std::atomic<uint64_t> tasks_in_memory{0};
};

}  // namespace recsync::model
