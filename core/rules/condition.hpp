// Rule conditions, compiled from YAML into a small tree. Evaluation parses nothing:
// paths are pre-split, regexes pre-compiled, `in` lists pre-built.
#pragma once

#include "util/json_path.hpp"

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

namespace re2 {
class RE2;
}

namespace recsync::rules {

// What RuleSet::evaluate remembers within one event; RuleSet::load numbers the entries.
struct EvalMemo {
    const nlohmann::json **data = nullptr;      // per field slot: kUnresolved until looked up
    const nlohmann::json **previous = nullptr;  // the same in previous
    int8_t *in_tests = nullptr;                 // per in_slot: -1 until run, else the value was found (1) or not (0)
};

struct Condition {
    enum class Op { All, Any, Not, Eq, Ne, In, NotIn, Gt, Gte, Lt, Lte, Exists, Matches, Changed };
    Op op = Op::All;
    util::JsonPath field;
    nlohmann::json value;                  // eq/ne/gt/...: the operand; in/not_in: an array
    // in/not_in whose operands are all strings: a hash set, so a 30-country list costs one
    // lookup, not 30 comparisons (the operands stay in `value` for printing).
    std::shared_ptr<const std::unordered_set<std::string>> strings;
    // Those with the same field and the same strings share an in_slot, so fifty rules gated
    // by the same country list run the lookup once per event.
    int in_slot = -1;
    // gt/gte/lt/lte with an ISO-8601 date or date-time operand: its instant (UTC epoch
    // ms). Values are then compared as instants, so offsets and fractions order correctly.
    std::optional<int64_t> instant_ms;
    bool exists = true;                    // exists: true|false
    // matches: RE2 runs in linear time with bounded memory, so an operator's pattern
    // cannot hang the engine or overflow the stack on long input (std::regex can).
    std::shared_ptr<const re2::RE2> regex;
    std::vector<util::JsonPath> changed;   // changed: [fields]
    std::vector<int> changed_slots;        // their slots (as `slot`), when numbered
    std::vector<Condition> children;       // all / any / not (one child)
    // Index of `field` among the distinct fields of a rule set (RuleSet::load numbers them),
    // or -1. Fifty rules testing `country` then look it up once per event, not fifty times.
    int slot = -1;

    // `data` is the record now; `previous` the record before this change (may be null).
    // `memo` (optional): what this event already looked up (see EvalMemo).
    bool eval(const nlohmann::json &data, const nlohmann::json *previous, const EvalMemo *memo = nullptr) const;
    static const nlohmann::json *const kUnresolved;
};

// Compiles a `when:` node. Throws config::ConfigError at the offending node.
Condition compile_condition(const std::string &file, const YAML::Node &node);

}  // namespace recsync::rules
