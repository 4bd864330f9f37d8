#include "log/log_format.hpp"

#include "log/log_context.hpp"
#include "log/redact.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>

namespace recsync::log {

std::optional<Format> parse_format(std::string_view name) {
    if (name == "text") return Format::Text;
    if (name == "json") return Format::Json;
    return std::nullopt;
}

namespace {

// RFC 3339, UTC, milliseconds: 2026-01-31T12:34:56.789Z.
std::string rfc3339_ms(spdlog::log_clock::time_point t) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    const std::time_t secs = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    const size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms - static_cast<int64_t>(secs) * 1000));
    return buf;
}

}  // namespace

Formatter::Formatter(Format format) : format_(format), text_(std::make_unique<spdlog::pattern_formatter>()) {}

void Formatter::format(const spdlog::details::log_msg &msg, spdlog::memory_buf_t &dest) {
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    std::string clean;
    const std::string_view text = redact(payload, clean) ? std::string_view(clean) : payload;
    if (format_ == Format::Text) {
        spdlog::details::log_msg m = msg;
        m.payload = spdlog::string_view_t(text.data(), text.size());
        text_->format(m, dest);
        // The color sinks read the level's range from the message they passed in.
        msg.color_range_start = m.color_range_start;
        msg.color_range_end = m.color_range_end;
        return;
    }
    const auto &ctx = current_context();
    nlohmann::ordered_json line;
    line["ts"] = rfc3339_ms(msg.time);
    const auto level = spdlog::level::to_string_view(msg.level);
    line["level"] = std::string_view(level.data(), level.size());
    line["msg"] = text;
    if (!ctx.connection.empty()) line["connection"] = ctx.connection;
    if (!ctx.record_key.empty()) line["record_key"] = ctx.record_key;
    if (!ctx.rule.empty()) line["rule"] = ctx.rule;
    if (ctx.attempt > 0) line["attempt"] = ctx.attempt;
    // A plugin's text need not be UTF-8: invalid bytes become U+FFFD, never an exception.
    const std::string out = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    dest.append(out.data(), out.data() + out.size());
    dest.push_back('\n');
}

std::unique_ptr<spdlog::formatter> Formatter::clone() const { return std::make_unique<Formatter>(format_); }

void use_format(Format format) { spdlog::set_formatter(std::make_unique<Formatter>(format)); }

}  // namespace recsync::log
