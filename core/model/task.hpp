// One unit of outbound work: the rule's intent for one record at one connection, with
// what the record's source said about the change (its kind and order). The sync state
// turns the intent into a call when the task reaches the head of its record's queue
// (dispatch/call_plan.hpp).
#pragma once

#include <recsync/provider_abi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace recsync::model {

// A record's id within a lane: records are ordered per (object, key).
inline std::string record_id(const std::string &object, const std::string &key) { return object + '\x1f' + key; }

// What the source said happened to the record.
enum class Change : uint8_t { Unknown = 0, Created = 1, Updated = 2, Deleted = 3 };
const char *change_text(Change c);

// Where a change stands among a record's changes in its source: the event's `version`
// (an integer), or `occurred_at` (milliseconds since the epoch). Orders of different
// kinds, or none, are not compared: arrival order decides.
struct Order {
    enum Kind : uint8_t { None = 0, Version = 1, Time = 2 };
    Kind kind = None;
    int64_t value = 0;

    // Known to come before `other`.
    bool older_than(const Order &other) const { return kind != None && kind == other.kind && value < other.value; }
    bool operator==(const Order &) const = default;
};

// Whether a task's call may already have reached the provider (its answer lost: a
// timeout, a reset, a crash). One state instead of three flags.
enum class SendState : uint8_t {
    Unsent,        // never went out
    SentUnmarked,  // went out, or may have (a task from before a restart); the store's mark is not written yet
    Sent,          // went out, and the store's mark says so (it survives a crash)
    Absent,        // a FIND found no record: the next attempt is a plain create
};

struct Task {
    int64_t id = 0;   // the task log's id: acceptance order, also within a lane
    int64_t seq = 0;  // acceptance order of the change it carries: 0 = id (a dead-letter replay keeps the original)
    std::string connection;  // lane
    std::string object;      // provider object, e.g. "contacts"
    std::string record_key;  // our key
    recsync_action action = RECSYNC_ACTION_CREATE;  // the rule's intent
    Change change = Change::Unknown;
    Order order;
    std::string payload;  // transformed JSON (empty for delete)
    int attempts = 0;
    int64_t not_before_ms = 0;  // epoch ms; 0 = now
    int64_t created_ms = 0;
    SendState send = SendState::Unsent;
    // The conflict policy of the two-way pair this task crosses (config::ConflictPolicy;
    // 0: none, arrival order decides), set when it is planned.
    uint8_t conflict = 0;
    // Appending only: the dead letter this task replays; the append removes it in the same
    // commit (and drops the task if it is gone already).
    int64_t from_dead_letter = 0;
    // In memory only: tasks of the same record folded into this one (coalescing). They stay
    // in the task log until this one is done, and leave it with it: if that commit never
    // happens, a restart reads and folds them again, so memory and the log never disagree.
    std::vector<int64_t> absorbed;

    int64_t change_seq() const { return seq ? seq : id; }
    // When its change happened at its source, for last-writer-wins: the source's
    // occurred_at, else when recsync accepted it.
    int64_t change_time_ms() const { return order.kind == Order::Time ? order.value : created_ms; }
    bool in_doubt() const { return send == SendState::SentUnmarked || send == SendState::Sent; }
    bool may_have_gone_out() const { return attempts > 0 || in_doubt(); }
    // Records are ordered per (object, key) within a lane.
    std::string record_id() const { return model::record_id(object, record_key); }
};

const char *action_text(recsync_action a);

// A READ task's payload when the record is named by its id there rather than by a link
// (a webhook that only said "record X changed": hydration): {"external_id": "..."}.
std::string read_payload(std::string_view external_id);
// The id such a payload names; empty if none.
std::string read_target(std::string_view payload);

}  // namespace recsync::model
