// Checks an operator-written JSON Schema (rules/schemas/*.json) for mistakes a validator
// would silently accept: a misspelt keyword ("propertes", "requird") is an annotation to
// JSON Schema, so the schema would check nothing there. Keywords are those of draft 7
// (plus "$defs"); names starting with "x-" are allowed as the operator's own annotations.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <vector>

namespace recsync::schema {

struct LintError {
    std::string pointer;   // JSON Pointer of the offending value ("" is the root)
    std::string message;   // what is wrong and what was expected
    bool warning = false;  // an unknown keyword that is no near-miss: it checks nothing
};

// Errors: a misspelt keyword (a near-miss of a draft-7 one), a keyword value of the wrong
// kind. Warnings: other unknown keywords (`nullable`, `example`: annotations to draft 7).
std::vector<LintError> lint_schema(const nlohmann::json &schema);

// Where values are in one JSON text: "line:col" (1-based) for a JSON Pointer. JSON is
// YAML, and yaml-cpp keeps every value's position, which nlohmann does not; the text is
// read once, however many values are looked up.
class JsonPositions {
public:
    explicit JsonPositions(const std::string &text);
    ~JsonPositions();
    // "" if the value cannot be found (or the text is not YAML-readable).
    std::string of(const std::string &pointer) const;
    // "file:line:col: ..." for the first key written twice in one object (nlohmann keeps
    // the last one silently), or a nesting beyond 64 levels; "" if there is none.
    std::string structure_error(const std::string &file) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace recsync::schema
