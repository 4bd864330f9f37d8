// Parsing is hand-written and strict on purpose:
//  - std::chrono::parse (C++20) is not in libstdc++ 12 (GCC 12, our toolchain), and
//    std::format/chrono formatting arrived only in GCC 13;
//  - strptime() is locale-dependent, skips blanks anywhere, accepts trailing text unless
//    checked by hand, and silently normalises "2026-02-30" on a later timegm(). We want a
//    mismatch to be an error naming the value, never a shifted date.
// The calendar arithmetic is std::chrono's (year_month_day <-> sys_days), which GCC 12 has.
#include "mapping/date_format.hpp"

#include "config/yaml_source.hpp"
#include "mapping/quote.hpp"

#include <cmath>
#include <limits>
#include <optional>
#include <string_view>

namespace recsync::mapping {

using nlohmann::json;
namespace chr = std::chrono;

namespace {

constexpr const char *kMonthNames[12] = {"January", "February", "March",     "April",   "May",      "June",
                                         "July",    "August",   "September", "October", "November", "December"};

constexpr TimePoint kMin = TimePoint(chr::sys_days(chr::year{0} / 1 / 1));
constexpr TimePoint kMax = TimePoint(chr::sys_days(chr::year{10000} / 1 / 1)) - chr::milliseconds(1);

constexpr const char *kSupported = "%Y %m %d %H %M %S %F %T %b %B %z %%";

// The broken-down fields read from a string; offset in minutes east of UTC.
struct Fields {
    int year = -1, month = -1, day = -1, hour = 0, minute = 0, second = 0, millis = 0, offset = 0;
};

// A cursor over the input; each reader returns false (and sets `why`) on a mismatch.
struct Reader {
    std::string_view s;
    size_t pos = 0;
    std::string why;

    bool at_end() const { return pos == s.size(); }
    bool peek(char c) const { return pos < s.size() && s[pos] == c; }
    bool eat(char c) {
        if (!peek(c)) return false;
        ++pos;
        return true;
    }
    bool fail(std::string reason) {
        why = std::move(reason);
        return false;
    }
    std::string here() const { return "at character " + std::to_string(pos + 1); }
    // Between `min` and `max` ASCII digits (greedy).
    bool digits(size_t min, size_t max, int &out, const char *what) {
        size_t n = 0;
        int v = 0;
        while (n < max && pos + n < s.size() && s[pos + n] >= '0' && s[pos + n] <= '9') v = v * 10 + (s[pos + n++] - '0');
        if (n < min) return fail("expected " + std::string(what) + " " + here());
        pos += n;
        out = v;
        return true;
    }
    bool literal(std::string_view lit) {
        if (s.substr(pos, lit.size()) != lit) return fail("expected '" + std::string(lit) + "' " + here());
        pos += lit.size();
        return true;
    }
    // "Z" | ±hh | ±hhmm | ±hh:mm
    bool offset(int &minutes) {
        if (eat('Z') || eat('z')) {
            minutes = 0;
            return true;
        }
        const bool neg = peek('-');
        if (!eat('+') && !eat('-')) return fail("expected a UTC offset (Z or +hh:mm) " + here());
        int h = 0, m = 0;
        if (!digits(2, 2, h, "offset hours")) return false;
        if (eat(':')) {
            if (!digits(2, 2, m, "offset minutes")) return false;
        } else if (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
            if (!digits(2, 2, m, "offset minutes")) return false;
        }
        if (h > 23 || m > 59) return fail("offset out of range");
        minutes = (neg ? -1 : 1) * (h * 60 + m);
        return true;
    }
    bool month_name(bool full, int &month) {
        for (int i = 0; i < 12; ++i) {
            const std::string_view name = full ? std::string_view(kMonthNames[i]) : std::string_view(kMonthNames[i], 3);
            if (s.size() - pos < name.size()) continue;
            bool same = true;
            for (size_t k = 0; k < name.size() && same; ++k) {
                const char a = s[pos + k], b = name[k];
                same = (a | 0x20) == (b | 0x20);  // ASCII letters only, case-insensitive
            }
            if (same) {
                pos += name.size();
                month = i + 1;
                return true;
            }
        }
        return fail(std::string("expected a month name (") + (full ? "January" : "Jan") + ") " + here());
    }
};

// Fields -> instant, validating the calendar. Returns nullopt with `why` set.
std::optional<TimePoint> to_time(const Fields &f, std::string &why) {
    if (f.month < 1 || f.month > 12) {
        why = "month " + std::to_string(f.month) + " out of range";
        return std::nullopt;
    }
    const chr::year_month_day ymd{chr::year{f.year}, chr::month{static_cast<unsigned>(f.month)}, chr::day{static_cast<unsigned>(f.day)}};
    if (!ymd.ok()) {
        why = "no day " + std::to_string(f.day) + " in " + std::to_string(f.year) + "-" + (f.month < 10 ? "0" : "") + std::to_string(f.month);
        return std::nullopt;
    }
    if (f.hour > 23) why = "hour " + std::to_string(f.hour) + " out of range";
    else if (f.minute > 59) why = "minute " + std::to_string(f.minute) + " out of range";
    else if (f.second > 59) why = "second " + std::to_string(f.second) + " out of range";
    if (!why.empty()) return std::nullopt;
    TimePoint t = TimePoint(chr::sys_days(ymd)) + chr::hours(f.hour) + chr::minutes(f.minute) + chr::seconds(f.second) +
                  chr::milliseconds(f.millis) - chr::minutes(f.offset);
    if (t < kMin || t > kMax) {
        why = "out of range (years 0000-9999 UTC)";
        return std::nullopt;
    }
    return t;
}

bool read_ymd(Reader &r, Fields &f) {
    return r.digits(4, 4, f.year, "a 4-digit year") && r.literal("-") && r.digits(2, 2, f.month, "a 2-digit month") && r.literal("-") &&
           r.digits(2, 2, f.day, "a 2-digit day");
}

bool read_iso8601(Reader &r, Fields &f) {
    if (!read_ymd(r, f)) return false;
    if (r.at_end()) return true;  // a date alone: midnight UTC
    if (!r.eat('T') && !r.eat('t') && !r.eat(' ')) return r.fail("expected 'T' before the time " + r.here());
    if (!r.digits(2, 2, f.hour, "a 2-digit hour") || !r.literal(":") || !r.digits(2, 2, f.minute, "2-digit minutes")) return false;
    if (r.eat(':')) {
        if (!r.digits(2, 2, f.second, "2-digit seconds")) return false;
        if (r.eat('.') || r.eat(',')) {
            size_t n = 0;
            int ms = 0;
            while (!r.at_end() && r.s[r.pos] >= '0' && r.s[r.pos] <= '9') {
                if (n < 3) ms = ms * 10 + (r.s[r.pos] - '0');  // further digits are truncated
                ++n, ++r.pos;
            }
            if (n == 0 || n > 9) return r.fail("expected 1 to 9 digits of fractional seconds");
            for (size_t k = n; k < 3; ++k) ms *= 10;
            f.millis = ms;
        }
    }
    if (r.at_end()) return true;  // no offset: UTC
    return r.offset(f.offset) && (r.at_end() || r.fail("unexpected text " + r.here()));
}

bool read_pattern(Reader &r, const std::vector<DateFormat::Piece> &pieces, Fields &f) {
    for (const auto &p : pieces) {
        bool ok = true;
        switch (p.directive) {
            case 0: ok = r.literal(p.literal); break;
            case 'Y': ok = r.digits(4, 4, f.year, "a 4-digit year (%Y)"); break;
            case 'm': ok = r.digits(1, 2, f.month, "a month (%m)"); break;
            case 'd': ok = r.digits(1, 2, f.day, "a day (%d)"); break;
            case 'H': ok = r.digits(1, 2, f.hour, "an hour (%H)"); break;
            case 'M': ok = r.digits(1, 2, f.minute, "minutes (%M)"); break;
            case 'S': ok = r.digits(1, 2, f.second, "seconds (%S)"); break;
            case 'b': ok = r.month_name(false, f.month); break;
            case 'B': ok = r.month_name(true, f.month); break;
            case 'z': ok = r.offset(f.offset); break;
            default: ok = r.fail("internal: unknown directive");
        }
        if (!ok) return false;
    }
    if (!r.at_end()) return r.fail("unexpected text " + r.here());
    return true;
}

void put(std::string &out, int v, int width) {
    char buf[8];
    for (int i = width - 1; i >= 0; --i, v /= 10) buf[i] = static_cast<char>('0' + v % 10);
    out.append(buf, static_cast<size_t>(width));
}

const char *type_of(const json &v) { return v.type_name(); }

}  // namespace

DateFormat DateFormat::compile(const std::string &spec, Role role) {
    DateFormat f;
    f.text_ = spec;
    if (spec == "iso8601") f.kind_ = Kind::Iso8601;
    else if (spec == "date") f.kind_ = Kind::Date;
    else if (spec == "epoch_ms") f.kind_ = Kind::EpochMs;
    else if (spec == "epoch_s") f.kind_ = Kind::EpochS;
    else if (spec.find('%') == std::string::npos)
        throw std::invalid_argument("unknown date format '" + spec +
                                    "' (expected iso8601, date, epoch_ms, epoch_s or a pattern such as \"%d/%m/%Y\")");
    else {
        f.kind_ = Kind::Pattern;
        auto add = [&](char d) { f.pieces_.push_back(Piece{d, {}}); };
        auto lit = [&](std::string_view s) {
            if (f.pieces_.empty() || f.pieces_.back().directive != 0) f.pieces_.push_back(Piece{});
            f.pieces_.back().literal += s;
        };
        for (size_t i = 0; i < spec.size(); ++i) {
            if (spec[i] != '%') {
                lit(std::string_view(&spec[i], 1));
                continue;
            }
            if (i + 1 == spec.size())
                throw std::invalid_argument("pattern '" + spec + "' ends with a lone '%' (write %% for a percent sign)");
            const char d = spec[++i];
            switch (d) {
                case 'Y': case 'm': case 'd': case 'H': case 'M': case 'S': case 'b': case 'B': case 'z': add(d); break;
                case 'F': add('Y'), lit("-"), add('m'), lit("-"), add('d'); break;
                case 'T': add('H'), lit(":"), add('M'), lit(":"), add('S'); break;
                case '%': lit("%"); break;
                default:
                    throw std::invalid_argument("unknown directive '%" + std::string(1, d) + "' at character " + std::to_string(i) +
                                                " of pattern '" + spec + "' (supported: " + kSupported + ")");
            }
        }
        if (role == Role::Parse) {
            int year = 0, month = 0, day = 0, other[128] = {};
            for (const auto &p : f.pieces_) {
                if (p.directive == 0) continue;
                if (p.directive == 'Y') ++year;
                else if (p.directive == 'm' || p.directive == 'b' || p.directive == 'B') ++month;
                else if (p.directive == 'd') ++day;
                else if (++other[static_cast<unsigned char>(p.directive)] > 1)
                    throw std::invalid_argument("pattern '" + spec + "' reads '%" + std::string(1, p.directive) + "' twice");
            }
            if (year != 1 || month != 1 || day != 1)
                throw std::invalid_argument("pattern '" + spec + "' must read exactly one year (%Y), one month (%m, %b or %B) and one day (%d) to parse dates");
        }
    }
    return f;
}

std::string DateFormat::expected() const {
    switch (kind_) {
        case Kind::Iso8601: return "ISO 8601, e.g. 2026-11-24, 2026-11-24T09:30:00Z or 2026-11-24T09:30:00.250+01:00";
        case Kind::Date: return "YYYY-MM-DD";
        case Kind::EpochMs: return "whole milliseconds since 1970-01-01T00:00:00Z";
        case Kind::EpochS: return "seconds since 1970-01-01T00:00:00Z";
        case Kind::Pattern: return "pattern '" + text_ + "'";
    }
    return text_;
}

TimePoint DateFormat::parse(const json &v) const {
    // Only errors name the format: no string is built for a value that parses.
    const auto fmt = [this] { return "format '" + text_ + "'"; };
    if (kind_ == Kind::EpochMs || kind_ == Kind::EpochS) {
        json n = v;
        if (v.is_string()) {
            auto parsed = config::parse_number(v.get_ref<const std::string &>());
            if (!parsed) throw DateError(detail::quote_value(v.get_ref<const std::string &>()) + " is not a number (" + fmt() + " expects " + expected() + ")");
            n = std::move(*parsed);
        } else if (!v.is_number()) {
            throw DateError(std::string("expected a number or a numeric string (") + fmt() + ": " + expected() + "), got " + type_of(v));
        }
        const long long unit = kind_ == Kind::EpochMs ? 1 : 1000;
        const long long lo = kMin.time_since_epoch().count(), hi = kMax.time_since_epoch().count();
        auto out_of_range = [&] { return DateError(n.dump() + " is out of range for " + fmt() + " (years 0000-9999 UTC)"); };
        long long ms = 0;
        if (n.is_number_unsigned()) {
            const auto u = n.get<uint64_t>();
            if (u > static_cast<uint64_t>(hi) / static_cast<uint64_t>(unit)) throw out_of_range();
            ms = static_cast<long long>(u) * unit;
        } else if (n.is_number_integer()) {
            const auto i = n.get<int64_t>();
            if (i > hi / unit || i < lo / unit) throw out_of_range();
            ms = i * unit;
        } else {
            const double d = n.get<double>() * static_cast<double>(unit);
            if (!std::isfinite(d) || d > static_cast<double>(hi) || d < static_cast<double>(lo)) throw out_of_range();
            if (kind_ == Kind::EpochMs && d != std::floor(d))
                throw DateError(n.dump() + " is not a whole number of milliseconds (" + fmt() + ")");
            ms = std::llround(d);  // epoch_s may carry a fraction: rounded to the millisecond
        }
        const TimePoint t{chr::milliseconds(ms)};
        if (t < kMin || t > kMax) throw out_of_range();
        return t;
    }
    if (!v.is_string()) throw DateError(std::string("expected a string in ") + fmt() + " (" + expected() + "), got " + type_of(v));
    const std::string &s = v.get_ref<const std::string &>();
    Reader r{s, 0, {}};
    Fields f;
    bool ok = false;
    switch (kind_) {
        case Kind::Iso8601: ok = read_iso8601(r, f); break;
        case Kind::Date: ok = read_ymd(r, f) && (r.at_end() || r.fail("unexpected text " + r.here())); break;
        case Kind::Pattern: ok = read_pattern(r, pieces_, f); break;
        default: break;
    }
    std::optional<TimePoint> t;
    if (ok) t = to_time(f, r.why);
    if (!t) throw DateError(detail::quote_value(s) + " is not a valid date in " + fmt() + " (" + r.why + "; expected " + expected() + ")");
    return *t;
}

json DateFormat::format(TimePoint t) const {
    if (kind_ == Kind::EpochMs) return t.time_since_epoch().count();
    if (kind_ == Kind::EpochS) return chr::floor<chr::seconds>(t).time_since_epoch().count();
    if (t < kMin || t > kMax) throw DateError("the date is out of range for format '" + text_ + "' (years 0000-9999)");
    const auto day = chr::floor<chr::days>(t);
    const chr::year_month_day ymd{day};
    const chr::hh_mm_ss<chr::milliseconds> hms{t - day};
    const int Y = static_cast<int>(ymd.year()), m = static_cast<int>(static_cast<unsigned>(ymd.month())),
              d = static_cast<int>(static_cast<unsigned>(ymd.day()));
    const int H = static_cast<int>(hms.hours().count()), M = static_cast<int>(hms.minutes().count()),
              S = static_cast<int>(hms.seconds().count()), ms = static_cast<int>(hms.subseconds().count());
    std::string out;
    out.reserve(32);
    switch (kind_) {
        case Kind::Date: put(out, Y, 4), out += '-', put(out, m, 2), out += '-', put(out, d, 2); break;
        case Kind::Iso8601:
            put(out, Y, 4), out += '-', put(out, m, 2), out += '-', put(out, d, 2), out += 'T';
            put(out, H, 2), out += ':', put(out, M, 2), out += ':', put(out, S, 2);
            if (ms != 0) out += '.', put(out, ms, 3);
            out += 'Z';
            break;
        case Kind::Pattern:
            for (const auto &p : pieces_) {
                switch (p.directive) {
                    case 0: out += p.literal; break;
                    case 'Y': put(out, Y, 4); break;
                    case 'm': put(out, m, 2); break;
                    case 'd': put(out, d, 2); break;
                    case 'H': put(out, H, 2); break;
                    case 'M': put(out, M, 2); break;
                    case 'S': put(out, S, 2); break;
                    case 'b': out.append(kMonthNames[m - 1], 3); break;
                    case 'B': out += kMonthNames[m - 1]; break;
                    case 'z': out += "+0000"; break;
                    default: break;
                }
            }
            break;
        default: break;
    }
    return out;
}

}  // namespace recsync::mapping
