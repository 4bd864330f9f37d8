#include "plugin/conformance_isolation.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

namespace recsync::plugin {

using nlohmann::json;

namespace {

constexpr size_t kMaxDetailBytes = 2000;  // a plugin's message can hold a whole 1 MB body
const char *const kIsolationCheck = "runs to the end without crashing or hanging";

void write_line(int fd, const json &line) {
    const std::string text = line.dump(-1, ' ', false, json::error_handler_t::replace) + '\n';
    for (size_t off = 0; off < text.size();) {
        const ssize_t n = ::write(fd, text.data() + off, text.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) _exit(3);  // the parent is gone
        off += static_cast<size_t>(n);
    }
}

[[noreturn]] void run_child(int out, const std::string &so_path, const std::string &config_json, ConformanceOptions::Depth depth) {
    ConformanceOptions options;
    options.depth = depth;
    options.on_start = [out](const std::string &name) { write_line(out, {{"start", name}}); };
    options.on_check = [out](const ConformanceCheck &c) {
        write_line(out, {{"check", c.name}, {"passed", c.passed}, {"skipped", c.skipped}, {"detail", c.detail.substr(0, kMaxDetailBytes)}});
    };
    try {
        run_conformance(so_path, config_json, options);
    } catch (const std::exception &e) {
        write_line(out, {{"check", "the kit itself"}, {"passed", false}, {"skipped", false}, {"detail", e.what()}});
    }
    write_line(out, {{"done", true}});
    _exit(0);  // not exit(): the parent's atexit handlers and stdio buffers are not ours
}

int wait_for(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

// Reads the child's lines into `report` until it ends or goes quiet for longer than the
// limit. Returns the failed isolation check's detail, or empty if the child finished.
std::string follow_child(pid_t pid, int in, const ConformanceOptions &options, const IsolationLimits &limits, ConformanceReport &report) {
    std::string buffer, during = "loading the plugin";
    bool done = false;
    auto handle = [&](const std::string &text) {
        const json line = json::parse(text, nullptr, false);
        if (!line.is_object()) return;
        if (line.contains("start")) {
            during = "'" + line["start"].get<std::string>() + "'";
            if (options.on_start) options.on_start(line["start"].get<std::string>());
        } else if (line.contains("check")) {
            ConformanceCheck c{line["check"].get<std::string>(), line.value("passed", false), line.value("detail", ""), line.value("skipped", false)};
            during = "after '" + c.name + "'";
            if (options.on_check) options.on_check(c);
            report.checks.push_back(std::move(c));
        } else if (line.contains("done")) {
            done = true;
        }
    };
    char chunk[65536];
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(limits.call_timeout_ms);
    while (true) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
        pollfd p{in, POLLIN, 0};
        const int ready = left <= 0 ? 0 : ::poll(&p, 1, static_cast<int>(left));
        if (ready < 0 && errno == EINTR) continue;
        if (ready == 0) {
            ::kill(pid, SIGKILL);
            wait_for(pid);
            return "hangs: no answer within " + std::to_string(limits.call_timeout_ms) + " ms during " + during;
        }
        const ssize_t n = ::read(in, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // the child closed its end: it ended
        deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(limits.call_timeout_ms);
        buffer.append(chunk, static_cast<size_t>(n));
        for (size_t nl; (nl = buffer.find('\n')) != std::string::npos; buffer.erase(0, nl + 1)) handle(buffer.substr(0, nl));
    }
    const int status = wait_for(pid);
    if (WIFSIGNALED(status)) return "crashes (signal " + std::to_string(WTERMSIG(status)) + ", " + strsignal(WTERMSIG(status)) + ") during " + during;
    if (!done) return "exits (status " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ") during " + during;
    return {};
}

}  // namespace

ConformanceReport run_conformance_isolated(const std::string &so_path, const std::string &config_json, ConformanceOptions options, IsolationLimits limits) {
    ConformanceReport report;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    std::cout.flush();
    std::fflush(nullptr);  // or the child's copy of a buffer could be written twice
    const pid_t pid = ::fork();
    if (pid < 0) {
        ::close(fds[0]);
        ::close(fds[1]);
        throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    }
    if (pid == 0) {
        ::close(fds[0]);
        run_child(fds[1], so_path, config_json, options.depth);
    }
    ::close(fds[1]);
    const std::string failure = follow_child(pid, fds[0], options, limits, report);
    ::close(fds[0]);
    ConformanceCheck isolation{kIsolationCheck, failure.empty(), failure, false};
    if (options.on_check) options.on_check(isolation);
    report.checks.push_back(std::move(isolation));
    return report;
}

}  // namespace recsync::plugin
