// Quoting record values inside error messages: a 100k-character field must not become a
// 100k-character log line. Cuts on a UTF-8 character boundary.
#pragma once

#include <string>
#include <string_view>

namespace recsync::mapping::detail {

inline std::string quote_value(std::string_view s, size_t max_bytes = 80) {
    if (s.size() <= max_bytes) return "'" + std::string(s) + "'";
    size_t cut = max_bytes;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // not inside a character
    return "'" + std::string(s.substr(0, cut)) + "...' (" + std::to_string(s.size()) + " bytes)";
}

}  // namespace recsync::mapping::detail
