// How log lines look: `text` (spdlog's default pattern, as before) or `json` (one object a
// line: ts, level, msg and the thread's LogContext). Both redact secrets (log/redact.hpp).
#pragma once

#include <spdlog/formatter.h>

#include <memory>
#include <optional>
#include <string_view>

namespace recsync::log {

enum class Format { Text, Json };

std::optional<Format> parse_format(std::string_view name);  // "text" | "json"

// A formatter for spdlog sinks: the message redacted, then laid out in `format`.
class Formatter final : public spdlog::formatter {
public:
    explicit Formatter(Format format);
    void format(const spdlog::details::log_msg &msg, spdlog::memory_buf_t &dest) override;
    std::unique_ptr<spdlog::formatter> clone() const override;

private:
    Format format_;
    std::unique_ptr<spdlog::formatter> text_;  // the default pattern, for Format::Text
};

// Every logger's sinks (and those made later) use Formatter(format).
void use_format(Format format);

}  // namespace recsync::log
