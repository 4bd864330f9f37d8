// Ingest: turns internal change events into durable tasks.
//   event -> envelope checks -> the entity's JSON Schema -> rules -> for each fired rule:
//   mapping -> plugin transform -> provider JSON Schema + plugin validate -> task.
// A request's events are all planned before anything is written: one bad event rejects
// the request (4xx naming the event and the problem) and changes nothing; otherwise all
// tasks are appended in one transaction, and only then is the sender answered.
#pragma once

#include "engine/runtime.hpp"
#include "queue/task.hpp"

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
    queue::Task task;    // unset for skip
};

struct EventPlan {
    std::string entity;
    std::string event;
    std::string key;
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

// Plans one internal event against a runtime; sends nothing, writes nothing. Throws
// EventError(422) naming the problem.
EventPlan plan_event(const engine::Runtime &rt, const nlohmann::json &event);

}  // namespace recsync::pipeline
