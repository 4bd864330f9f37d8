// The sync state of one record at one link (connection, object): what recsync knows of
// the record there. The dispatcher reads it when a task reaches the head of its record's
// queue and decides the call from it (dispatch/call_plan.hpp); the delivery log writes it
// with each result.
#pragma once

#include "model/task.hpp"

#include <cstdint>
#include <string>

namespace recsync::model {

struct LinkKey {
    std::string connection;
    std::string object;
    std::string record_key;
};

struct LinkState {
    std::string external_id;    // their id; empty: none known
    uint64_t written_hash = 0;  // payload_hash of what was last written there; 0: nothing
    int64_t applied_seq = 0;    // Task::change_seq of the change last applied (written, or found unchanged)
    Order applied_order;        // ... and its order in the source
    // Tombstone: deleted there through recsync (or found never made). Only a `created`
    // event brings the record back; a late update does not.
    bool deleted = false;
    // A create of it may have been made there (it went out, its answer was lost, and it was
    // dead-lettered) without recsync learning its id: later creates go out as in doubt.
    bool maybe_exists = false;
    // The record's modification stamp there after recsync's last write (ABI 1.3, the
    // provider's "modified"; empty: unknown). A change read back with this stamp is that
    // write coming back (an echo), not an edit made there.
    std::string written_modified;

    bool linked() const { return !external_id.empty(); }
    bool operator==(const LinkState &) const = default;
};

// The last change accepted from one side of a two-way pair for a record (conflicts):
// when (the task log's id sequence at its commit: tasks accepted before it have ids up to
// this) and its time at that side (occurred_at, or its acceptance).
struct SideChange {
    int64_t seq = 0;
    int64_t at_ms = 0;
};

// The hash of a payload text as written (XXH3, 64 bits; never 0, which means "none").
uint64_t payload_hash(std::string_view payload);

// Why `task`'s change is older than what the record has applied at the link (by the
// source's order, or by acceptance order, which a dead-letter replay keeps); empty if it
// is not. Such a change would put older state back: it is skipped, or its letter dropped.
std::string stale_reason(const Task &task, const LinkState &link);

}  // namespace recsync::model
