// An answer's verdict for the REST provider: which Outcome its status means for the call
// (the defaults, or the settings' `status:`), what that makes of the body (the id, the
// record, a find's results), the reason for a RETRY or FAIL with every secret redacted,
// and what the rate-limit headers say.
#pragma once

#include "rest_settings.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace rest {

// `doc` at `pointer`, or null when it is not there (never throws).
const json *at_pointer(const json &doc, const Pointer &pointer);

// An id as text: a non-empty string, or an integer; empty otherwise.
std::string id_text(const json *value);

// ": <the message at `message`>" from a JSON body, ": <printable snippet>" of another
// body, or "" for an empty one; short, valid UTF-8, every secret replaced by [redacted].
std::string describe_body(const json &body, std::string_view raw, const Pointer &message, const std::vector<std::string> &secrets);

// The status's meaning for a call: the settings' own, else 2xx Ok; 408, 429 and 5xx Retry;
// anything else Fail.
Outcome outcome_of(const ActionSpec &action, int status);

// What the rate-limit headers say, as the host takes it (none when they are absent).
std::vector<recsync::sdk::RateLimit> rate_limits(const RateLimitHeaders &headers, const recsync::sdk::Response &response, int64_t now_ms);

// The verdict on `response` to `call`, a call of `verb` on `object`.
recsync::sdk::Result judge(const Settings &settings, const ObjectSpec &object, Verb verb, const recsync::sdk::Call &call, const recsync::sdk::Response &response);

}  // namespace rest
