// Path templates: "/v1/customers/{external_id}", "/v1/customers?external_ref={field:external_ref}".
// Split once when the settings are read; every value put in is percent-encoded, so a value
// can never add a path segment or a query parameter.
#pragma once

#include <recsync/provider_sdk.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace rest {

struct PathTemplate {
    enum class Kind { Text, RecordKey, ExternalId, Field };
    struct Part {
        Kind kind = Kind::Text;
        std::string text;  // Text: the text; Field: the field's name
    };
    std::vector<Part> parts;
    std::string source;  // as written, for messages

    bool uses(Kind kind) const;
    bool empty() const { return parts.empty(); }
};

// Throws sdk::ConfigError "<where>: ..." for a path that does not start with '/', an
// unclosed or empty brace, or an unknown placeholder.
PathTemplate parse_path(std::string_view text, const std::string &where);

// What a call fills a template with. `payload` may be null (no payload: delete, read).
struct PathValues {
    std::string_view record_key;
    std::string_view external_id;
    const recsync::sdk::json *payload = nullptr;
    std::string_view what;  // "update of customers", for messages
};

// Throws sdk::InvalidInput naming the placeholder whose value is missing or empty.
std::string expand_path(const PathTemplate &path, const PathValues &values);

}  // namespace rest
