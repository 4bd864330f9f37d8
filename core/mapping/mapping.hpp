// Mappings: rename fields (dotted paths both ways) and apply small named conversions.
// Compiled from YAML once; apply() parses nothing. Anything provider-specific belongs in
// the plugin's transform, not here.
#pragma once

#include "util/json_path.hpp"

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace recsync::mapping {

enum class Conversion { Trim, Lower, Upper, ToString, ToNumber, ToBool };

struct FieldMapping {
    util::JsonPath from;  // empty for a constant
    util::JsonPath to;
    std::vector<Conversion> conversions;
    std::optional<nlohmann::json> constant;       // `value:`
    std::optional<nlohmann::json> default_value;  // used when the source is missing or null
    bool required = false;
    std::string where;  // file:line:col
};

// A record that cannot be mapped (a required field missing, a conversion that cannot apply).
class MappingError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class Mapping {
public:
    std::string name;
    std::string where;
    std::vector<FieldMapping> fields;

    // Maps `record` to a new object. Throws MappingError naming the mapping and the field.
    nlohmann::json apply(const nlohmann::json &record) const;
};

// Compiles one mapping from its YAML node ({fields: [...]}). Throws config::ConfigError.
Mapping compile_mapping(const std::string &file, const std::string &name, const YAML::Node &node);

}  // namespace recsync::mapping
