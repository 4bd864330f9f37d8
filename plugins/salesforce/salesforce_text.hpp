// Salesforce's text formats: its dateTime values, SOQL literals, and field names.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace salesforce {

// Epoch ms -> a SOQL dateTime literal, whole seconds rounded down ("2026-12-02T10:20:30Z"):
// SOQL's documented dateTime formats have no fractional seconds.
std::string soql_datetime(int64_t epoch_ms);
// A SOQL string literal: quoted, with \ ' " and line breaks escaped (SOQL escapes with a
// backslash, never by doubling), so a value can never end the literal early.
std::string soql_string(std::string_view value);
// An sObject or field API name: a letter, then letters, digits and '_' (custom names end
// in "__c"). Anything else is refused before it reaches a URL or a query.
bool is_api_name(std::string_view name);
// A record id: 15 or 18 letters and digits (005... for a user).
bool is_record_id(std::string_view id);
// Digits only, at most 18 (no overflow); nullopt otherwise.
std::optional<int64_t> parse_digits(std::string_view s);

}  // namespace salesforce
