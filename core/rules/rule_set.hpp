// The compiled rules, mappings and internal entity schemas of one rules directory.
// Immutable once loaded: a reload builds a new RuleSet and swaps the shared_ptr, so a
// broken edit never replaces the rules that are running.
#pragma once

#include "mapping/mapping.hpp"
#include "rules/condition.hpp"
#include "schema/json_schema.hpp"

#include <recsync/provider_abi.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace recsync::rules {

enum EventType : uint8_t { kCreated = 1, kUpdated = 2, kDeleted = 4 };

// "created" -> kCreated ...; 0 if unknown.
uint8_t parse_event_type(std::string_view name);
const char *event_type_name(uint8_t event);

enum class ActionKind { Create, Update, Upsert, Delete, Skip };
const char *action_name(ActionKind a);
recsync_action to_abi(ActionKind a);  // not for Skip (std::logic_error)

struct Rule {
    std::string name;
    std::string where;   // file:line:col
    std::string source;  // "internal" or a connection name
    std::string entity;
    uint8_t events = 0;  // EventType bits
    std::optional<Condition> when;
    ActionKind action = ActionKind::Skip;
    std::string target;  // connection name
    std::string target_where;
    std::string object;  // provider object
    std::string mapping_name;
    const mapping::Mapping *mapping = nullptr;  // resolved at load; null for delete/skip
    bool stop = false;   // no further rules after this one fires
};

struct RuleSet {
    RuleSet() = default;
    RuleSet(const RuleSet &) = delete;  // by_source points into rules
    RuleSet &operator=(const RuleSet &) = delete;

    std::vector<Rule> rules;  // in evaluation order: files by name, then file order
    std::map<std::string, mapping::Mapping> mappings;
    std::map<std::string, std::shared_ptr<const schema::JsonSchema>> entity_schemas;
    std::vector<std::string> files;
    // Rules by source, then entity, in evaluation order: an event only looks at its own.
    // Transparent comparators: looked up by string_view, nothing allocated per event.
    std::map<std::string, std::map<std::string, std::vector<const Rule *>, std::less<>>, std::less<>> by_source;
    size_t field_slots = 0;  // distinct condition fields (Condition::slot)
    size_t in_slots = 0;     // distinct in/not_in tests over strings (Condition::in_slot)

    // Loads every *.yaml / *.yml in `dir` and every schemas/<entity>.json. Throws
    // config::ConfigErrors listing every problem with file:line:col.
    static std::shared_ptr<const RuleSet> load(const std::string &dir);

    // The rules that fire for this event, in order. A `skip` rule that matches ends the
    // evaluation (it is returned, so callers can report it); so does a rule with stop.
    std::vector<const Rule *> evaluate(std::string_view source, std::string_view entity, uint8_t event, const nlohmann::json &data,
                                       const nlohmann::json *previous) const;

    const schema::JsonSchema *entity_schema(std::string_view entity) const;
};

}  // namespace recsync::rules
