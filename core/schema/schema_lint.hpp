// Checks an operator-written JSON Schema (rules/schemas/*.json) for mistakes a validator
// would silently accept: a misspelt keyword ("propertes", "requird") is an annotation to
// JSON Schema, so the schema would check nothing there. Keywords are those of draft 7
// (plus "$defs"); names starting with "x-" are allowed as the operator's own annotations.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

namespace recsync::schema {

struct LintError {
    std::string pointer;  // JSON Pointer of the offending value ("" is the root)
    std::string message;  // what is wrong and what was expected
};

std::vector<LintError> lint_schema(const nlohmann::json &schema);

// "line:col" (1-based) of the value at `pointer` in JSON `text`, or "" if it cannot be
// found. JSON is YAML, and yaml-cpp keeps every value's position, which nlohmann does not.
std::string position_of(const std::string &text, const std::string &pointer);

}  // namespace recsync::schema
