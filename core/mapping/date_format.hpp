// Date formats for the mapping `date` conversion: named formats (iso8601, date, epoch_ms,
// epoch_s) and strftime-style patterns ("%d/%m/%Y"). A format is compiled once at load;
// parse() and format() read and write values without any further set-up.
//
// Every instant is UTC with millisecond precision. Offsets in the input ("+02:00", "Z")
// are applied when parsing; output is always UTC.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace recsync::mapping {

using TimePoint = std::chrono::sys_time<std::chrono::milliseconds>;

// A value that does not match its format. what() names the value and the expected format
// (the caller adds the mapping and the field).
class DateError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class DateFormat {
public:
    enum class Kind { Iso8601, Date, EpochMs, EpochS, Pattern };
    enum class Role { Parse, Format };

    DateFormat() = default;

    // Compiles a named format or a pattern (anything containing '%'). A pattern used for
    // parsing must contain a year, a month and a day. Throws std::invalid_argument with a
    // message saying what is wrong and where in the pattern (the caller adds file:line:col).
    static DateFormat compile(const std::string &spec, Role role);

    // Reads a value in this format. Throws DateError naming the value and the format.
    TimePoint parse(const nlohmann::json &value) const;
    // Writes `t` in this format (a number for epoch_*, else a string). Throws DateError if
    // the year does not fit the format (0000-9999).
    nlohmann::json format(TimePoint t) const;

    Kind kind() const { return kind_; }
    const std::string &text() const { return text_; }
    // A human description of what parse() accepts, for error messages.
    std::string expected() const;

    // One piece of a compiled pattern: a literal run, or a directive letter (Y m d H M S b B z %).
    struct Piece {
        char directive = 0;  // 0: `literal`
        std::string literal;
    };

private:
    Kind kind_ = Kind::Iso8601;
    std::string text_;
    std::vector<Piece> pieces_;
};

}  // namespace recsync::mapping
