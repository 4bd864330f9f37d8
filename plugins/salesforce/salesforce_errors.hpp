// Salesforce's error answers: a JSON array of {message, errorCode, fields}.
#pragma once

#include <recsync/provider_sdk.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace salesforce {

struct ApiError {
    std::string message;             // "Salesforce returned 400 REQUIRED_FIELD_MISSING: ... (fields: Name)", every error
    std::vector<std::string> codes;  // every errorCode ("REQUEST_LIMIT_EXCEEDED"), in order
    bool has(std::string_view error_code) const;  // any of the errors has this code
};

// The answer as Salesforce words errors: `body` is its parsed `text` (discarded if not
// JSON: then a snippet of the text is the message).
ApiError api_error(int status, const recsync::sdk::json &body, std::string_view text);
// The same from the text alone (parsed here).
ApiError api_error(int status, std::string_view text);

}  // namespace salesforce
