#include "salesforce_errors.hpp"

#include <algorithm>

namespace salesforce {

using recsync::sdk::json;

bool ApiError::has(std::string_view error_code) const { return std::find(codes.begin(), codes.end(), error_code) != codes.end(); }

ApiError api_error(int status, std::string_view text) { return api_error(status, json::parse(text.begin(), text.end(), nullptr, false), text); }

ApiError api_error(int status, const json &body, std::string_view text) {
    ApiError e;
    e.message = "Salesforce returned " + std::to_string(status);
    // Usually an array; some gateways and the OAuth endpoints answer one object.
    const json list = body.is_array() ? body : body.is_object() ? json::array({body}) : json::array();
    std::string details;
    for (const auto &item : list) {
        if (!item.is_object()) continue;
        const std::string code = item.value("errorCode", item.value("error", std::string()));
        const std::string message = item.value("message", item.value("error_description", std::string()));
        if (!code.empty()) e.codes.push_back(code);
        std::string one = code;
        if (!message.empty()) one += (one.empty() ? "" : ": ") + message;
        if (const auto f = item.find("fields"); f != item.end() && f->is_array() && !f->empty()) {
            std::string fields;
            for (const auto &name : *f)
                if (name.is_string()) fields += (fields.empty() ? "" : ", ") + name.get<std::string>();
            one += " (fields: " + fields + ")";
        }
        if (!one.empty()) details += (details.empty() ? "" : "; ") + one;
    }
    if (!details.empty()) e.message += " " + recsync::sdk::truncate_utf8(details);
    else if (body.is_discarded() && !text.empty()) e.message += ": " + recsync::sdk::printable_snippet(text);
    return e;
}

}  // namespace salesforce
