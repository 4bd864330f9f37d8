// What an event says about itself beyond the record: its id (the idempotency key: a repeat
// is acknowledged and ignored) and its place among the record's changes (`version`, an
// integer, or `occurred_at`, an RFC 3339 date-time). Both optional: without an id nothing
// is deduplicated; without an order, arrival order decides.
#pragma once

#include "model/task.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace recsync::pipeline {

struct EventIdentity {
    std::string id;  // empty: none
    model::Order order;
};

inline constexpr size_t kMaxEventIdBytes = 256;

// Reads "id", "version" and "occurred_at" from an event object. Throws EventError(422)
// naming the field and what it must be. With both, `version` orders (it is exact).
EventIdentity read_identity(const nlohmann::json &event);

// The record an event is about and its identity, read without planning it (ingest asks
// the task log whether it is a repeat first); nullopt if the event is malformed, for
// plan_event to refuse with the reason.
struct ChangeRef {
    std::string entity;
    std::string key;
    EventIdentity identity;
};
std::optional<ChangeRef> peek_change(const nlohmann::json &event);

}  // namespace recsync::pipeline
