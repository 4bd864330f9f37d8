// Salesforce's error answers: a JSON array of {message, errorCode, fields}.
#pragma once

#include <recsync/provider_sdk.hpp>

#include <string>
#include <string_view>

namespace salesforce {

struct ApiError {
    std::string code;     // the first error's errorCode ("REQUEST_LIMIT_EXCEEDED"); empty if none
    std::string message;  // "Salesforce returned 400 REQUIRED_FIELD_MISSING: ... (fields: Name)", every error
    bool has(std::string_view error_code) const;  // any of the errors has this code
    std::string codes;  // every errorCode, comma-separated
};

// Reads the body as Salesforce words errors (or a snippet of a body that is not JSON).
ApiError api_error(int status, std::string_view body);

}  // namespace salesforce
