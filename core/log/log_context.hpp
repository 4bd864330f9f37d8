// What a log line is about (connection, record, rule, attempt), for the current thread:
// the JSON log format adds it to every line (log/log_format.hpp). Set with
// ScopedLogContext where it is known; read only when a line is written.
#pragma once

#include <string_view>

namespace recsync::log {

struct LogContext {
    // Views of strings that outlive the guard that set them: nothing is copied, so a
    // guard costs a few stores whether or not anything is logged.
    std::string_view connection, record_key, rule;
    int attempt = 0;  // 0: not known (attempts count from 1)
};

// This thread's context (spdlog's loggers here are synchronous: the formatter runs on the
// thread that logs).
inline LogContext &current_context() noexcept {
    thread_local LogContext context;
    return context;
}

// Sets this thread's context for its scope and restores the previous one at exit. Empty
// fields (attempt 0) keep the enclosing scope's values, so nested guards add detail.
class ScopedLogContext {
public:
    explicit ScopedLogContext(std::string_view connection, std::string_view record_key = {}, std::string_view rule = {}, int attempt = 0) noexcept
        : saved_(current_context()) {
        auto &c = current_context();
        if (!connection.empty()) c.connection = connection;
        if (!record_key.empty()) c.record_key = record_key;
        if (!rule.empty()) c.rule = rule;
        if (attempt > 0) c.attempt = attempt;
    }
    ~ScopedLogContext() { current_context() = saved_; }
    ScopedLogContext(const ScopedLogContext &) = delete;
    ScopedLogContext &operator=(const ScopedLogContext &) = delete;

private:
    LogContext saved_;
};

}  // namespace recsync::log
