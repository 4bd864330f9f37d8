#include "salesforce_text.hpp"

#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdio>

namespace salesforce {

std::optional<int64_t> parse_datetime_ms(std::string_view t) {
    const auto num = [&](size_t pos, size_t len, int &out) {
        if (pos + len > t.size()) return false;
        const auto r = std::from_chars(t.data() + pos, t.data() + pos + len, out);
        return r.ec == std::errc() && r.ptr == t.data() + pos + len;
    };
    int y, mo, d, h, mi, s;
    if (t.size() < 20 || t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' || t[16] != ':') return std::nullopt;
    if (!num(0, 4, y) || !num(5, 2, mo) || !num(8, 2, d) || !num(11, 2, h) || !num(14, 2, mi) || !num(17, 2, s)) return std::nullopt;
    using namespace std::chrono;
    const year_month_day date{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
    if (!date.ok() || h > 23 || mi > 59 || s > 60) return std::nullopt;
    size_t pos = 19;
    int64_t ms = 0;
    if (pos < t.size() && t[pos] == '.') {
        int64_t scale = 100;
        for (++pos; pos < t.size() && t[pos] >= '0' && t[pos] <= '9'; ++pos, scale /= 10) ms += (t[pos] - '0') * scale;
    }
    int64_t offset_min = 0;
    if (pos < t.size() && t[pos] == 'Z') {
        ++pos;
    } else if (pos < t.size() && (t[pos] == '+' || t[pos] == '-')) {
        int oh, om;
        const bool colon = pos + 3 < t.size() && t[pos + 3] == ':';  // +00:00 or +0000
        if (!num(pos + 1, 2, oh) || !num(pos + (colon ? 4 : 3), 2, om)) return std::nullopt;
        offset_min = (t[pos] == '+' ? 1 : -1) * (oh * 60 + om);
        pos += colon ? 6 : 5;
    } else {
        return std::nullopt;
    }
    if (pos != t.size()) return std::nullopt;
    const auto at = sys_days{date} + hours{h} + minutes{mi - offset_min} + seconds{s};
    return duration_cast<milliseconds>(at.time_since_epoch()).count() + ms;
}

std::string soql_datetime(int64_t epoch_ms) {
    using namespace std::chrono;
    const auto secs = floor<seconds>(sys_time<milliseconds>(milliseconds(epoch_ms)));
    const auto days = floor<std::chrono::days>(secs);
    const year_month_day ymd{days};
    const hh_mm_ss hms{secs - days};
    char buf[32];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                  static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                  static_cast<int>(hms.seconds().count()));
    return buf;
}

std::string soql_string(std::string_view value) {
    std::string out = "'";
    for (const char c : value) {
        switch (c) {
        case '\\': out += "\\\\"; break;
        case '\'': out += "\\'"; break;
        case '"': out += "\\\""; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default: out += c;
        }
    }
    return out + "'";
}

bool is_api_name(std::string_view name) {
    if (name.empty() || name.size() > 80) return false;
    const auto letter = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); };
    if (!letter(name.front())) return false;
    for (const char c : name)
        if (!letter(c) && !(c >= '0' && c <= '9') && c != '_') return false;
    return true;
}

bool is_record_id(std::string_view id) {
    if (id.size() != 15 && id.size() != 18) return false;
    for (const char c : id)
        if (!std::isalnum(static_cast<unsigned char>(c))) return false;
    return true;
}

std::optional<int64_t> parse_digits(std::string_view s) {
    if (s.empty() || s.size() > 18) return std::nullopt;
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || v < 0) return std::nullopt;
    return v;
}

}  // namespace salesforce
