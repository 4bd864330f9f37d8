// Changes from a connection (System B -> A) in the engine's event form, for Intake: a
// webhook delivery's events as the provider's parse_webhook yields them
// (provider_abi.h), and the record a hydrating read brought back. Each becomes an event
// from source <connection> whose entity is the provider's object and whose key is the
// record's id there; its data is the plugin's transform(INBOUND) of the record, which is
// what inbound rules and mappings see.
#pragma once

#include "model/runtime.hpp"
#include "model/task.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace recsync::sources {

// Throws pipeline::EventError (422, naming the event and the problem) for an event the
// plugin produced wrongly or whose data its inbound transform refuses.
std::vector<nlohmann::json> inbound_events(const model::ConnectionRuntime &conn, std::vector<nlohmann::json> &&plugin_events);

// The event a finished hydrating read makes of `record` (the plugin's READ answer): the
// change the webhook announced, with the record's current state. Its id follows from the
// read task's change, so a read repeated after a crash adds nothing.
// `external_id` and `modified`: the record's id and modification stamp there, as the read
// answered.
nlohmann::json hydrated_event(const model::ConnectionRuntime &conn, const model::Task &read, const std::string &external_id, const std::string &record,
                              const std::string &modified);

// Epoch milliseconds as RFC 3339 in UTC with milliseconds ("2026-12-02T03:04:05.678Z").
std::string rfc3339_ms(int64_t epoch_ms);

}  // namespace recsync::sources
