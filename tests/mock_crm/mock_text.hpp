// Text the mocks read and write the same way: percent-escapes, form bodies, and the
// millisecond UTC timestamps HubSpot and the REST mock answer with.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace recsync::mock {

// %XX escapes decoded (a malformed one is kept as it is); with `plus_is_space`, '+' is a
// space (form bodies and query strings as browsers write them).
std::string percent_decode(std::string_view s, bool plus_is_space = false);
// application/x-www-form-urlencoded fields.
std::map<std::string, std::string> form_fields(std::string_view body);
// "2026-03-01T10:00:00.123Z": fixed width, so text order is time order.
std::string utc_ms_text(int64_t epoch_ms);

}  // namespace recsync::mock
