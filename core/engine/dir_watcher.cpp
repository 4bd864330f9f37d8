#include "engine/dir_watcher.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace recsync::engine {

DirWatcher::DirWatcher(std::vector<std::string> dirs, std::chrono::milliseconds quiet, std::function<void()> on_change)
    : quiet_(quiet), on_change_(std::move(on_change)) {
    fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd_ < 0) {
        spdlog::warn("cannot watch for rule changes (inotify: {}); use SIGHUP or the admin endpoint to reload", std::strerror(errno));
        return;
    }
    for (const auto &d : dirs) {
        if (inotify_add_watch(fd_, d.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE) < 0 && errno != ENOENT)
            spdlog::warn("cannot watch {}: {}", d, std::strerror(errno));
    }
    thread_ = std::thread([this] { run(); });
}

DirWatcher::~DirWatcher() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
}

void DirWatcher::run() {
    using Clock = std::chrono::steady_clock;
    bool pending = false;
    Clock::time_point last{};
    alignas(inotify_event) char buf[8192];
    while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        const int ready = ::poll(&p, 1, 100);  // short timeout: stop_ is noticed quickly
        if (ready > 0) {
            while (::read(fd_, buf, sizeof buf) > 0) {
            }
            pending = true;
            last = Clock::now();
        }
        if (pending && Clock::now() - last >= quiet_) {
            pending = false;
            try {
                on_change_();
            } catch (const std::exception &e) {
                spdlog::error("reload after a file change failed: {}", e.what());
            }
        }
    }
}

}  // namespace recsync::engine
