// No secret in any log line: every line's message (plugins' own text too) goes through
// redact() in the log formatter (log/log_format.hpp), in both formats.
#pragma once

#include <string>
#include <string_view>

namespace recsync::log {

inline constexpr std::string_view kRedacted = "[redacted]";

// A secret value to replace wherever it appears (the config's tokens, client secrets,
// admin token, DSNs). Thread-safe; values shorter than 4 characters are ignored (they
// would blank out ordinary words).
void register_secret(std::string value);
// A PostgreSQL connection string: itself, and its password (key=value or URI form).
void register_dsn(std::string_view dsn);
void clear_secrets();  // for tests

// `text` with the registered secrets and the well-known secret shapes replaced by
// [redacted]: `Bearer <x>`, `Authorization: <value>`, `password=<x>`, a URL's
// `user:<password>@`, and the values of access_token, refresh_token, client_secret (JSON
// fields or form/query parameters). False (and `out` untouched) when there is nothing to
// redact: the common case costs a few scans and no allocation.
bool redact(std::string_view text, std::string &out);
std::string redacted(std::string_view text);  // convenience: the result either way

}  // namespace recsync::log
