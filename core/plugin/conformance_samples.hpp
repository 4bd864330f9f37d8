// The record the conformance kit feeds an object's transform(OUTBOUND): the "sample" its
// describe() gives, else one built from the object's JSON Schema where that is possible.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace recsync::plugin {

struct SampleRecord {
    std::optional<nlohmann::json> record;
    bool from_describe = false;  // false: built from the schema (a guess at transform's input)
    std::string why_none;        // set when there is no record
    bool malformed = false;      // describe's "sample" is there but not an object: the plugin's bug
};

// `object` is describe()'s entry for one object.
SampleRecord sample_for(const nlohmann::json &object);

// A minimal instance of `schema`: its required properties with values of their type.
// Nothing when a required property's type cannot be guessed (the reason in `why`).
std::optional<nlohmann::json> sample_from_schema(const nlohmann::json &schema, std::string &why);

}  // namespace recsync::plugin
