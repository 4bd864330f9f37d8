// A compiled JSON Schema (valijson over nlohmann/json). Compiled once at load; validating
// parses nothing. Used for internal entities' schemas (input) and providers' schemas
// (output of transform).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <vector>

namespace recsync::schema {

class JsonSchema {
public:
    // Throws std::runtime_error naming `name` if `schema` is not a usable JSON Schema.
    static std::shared_ptr<const JsonSchema> compile(const nlohmann::json &schema, const std::string &name);
    ~JsonSchema();

    // Empty if `doc` conforms; otherwise one line per violation: "<path>: <reason>".
    std::vector<std::string> validate(const nlohmann::json &doc) const;
    // validate(nlohmann::json::parse(text)), but valid text is checked without building a
    // document. Throws nlohmann::json::exception if `text` is not JSON.
    std::vector<std::string> validate_text(const std::string &text) const;
    const std::string &name() const { return name_; }

private:
    JsonSchema();
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::string name_;
};

}  // namespace recsync::schema
