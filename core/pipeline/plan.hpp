// Planning: what one change event means for each connection, before anything is written.
//   event -> envelope checks -> the entity's JSON Schema -> rules -> for each fired rule:
//   mapping -> plugin transform -> provider JSON Schema + plugin validate -> task.
// The rule gives the intent; the sync state gives the call, later, when the task reaches
// the head of its record's queue (dispatch/call_plan.hpp). Intake (sources/intake.hpp)
// plans every event of a request before it appends any.
#pragma once

#include "model/runtime.hpp"
#include "model/task.hpp"

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>
#include <vector>

namespace recsync::pipeline {

// An event that cannot be accepted. `status` is the HTTP status to answer with.
class EventError : public std::runtime_error {
public:
    EventError(int status, const std::string &message) : std::runtime_error(message), status_(status) {}
    int status() const { return status_; }

private:
    int status_;
};

struct PlannedAction {
    std::string rule;
    std::string action;  // create / update / upsert / delete / skip
    model::Task task;    // unset for skip
};

struct EventPlan {
    std::string entity;
    std::string event;
    std::string key;
    std::string id;      // the event's idempotency key; empty: none
    model::Order order;  // its place among the record's changes
    std::string external_id;  // from a connection: the record's id there
    std::string modified;     // ... and its modification stamp there (echo detection)
    uint64_t data_hash = 0;   // from System A, with System A connections configured: its data's hash (echo detection)
    size_t withheld = 0;      // fields left out because the other side owns them (conflicts.owners)
    std::vector<PlannedAction> actions;
};

// Deepest array/object nesting accepted in a request body. Checked on the text before
// parsing: nlohmann copies, compares and dumps recursively, so a 200 kB body of nested
// brackets would overflow the stack (fuzz finding F3); no event needs more than a few.
inline constexpr size_t kMaxEventDepth = 64;
size_t nesting_depth(std::string_view json_text);

// Splits a request body into events: one JSON object, a JSON array of them, or NDJSON.
// Throws EventError(400) for malformed JSON, naming the line and position.
std::vector<nlohmann::json> parse_events(const std::string &body);

// Plans one event from `source` ("internal": System A's events; a connection's name for
// what comes from it) against a runtime; sends nothing, writes nothing. Throws
// EventError(422) naming the problem.
EventPlan plan_event(const model::Runtime &rt, const nlohmann::json &event, const std::string &source = "internal");

}  // namespace recsync::pipeline
