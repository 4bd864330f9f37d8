// Watches directories (inotify) and calls back once things have been quiet for a moment,
// so an editor's save (write, rename, chmod...) or a `cp -r` of a rules tree causes one
// reload, not ten. Written on inotify directly: it is one syscall family, and the
// well-kept libraries for it are much larger than this file.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace recsync::engine {

class DirWatcher {
public:
    // `on_change` runs on the watcher's thread, `quiet` after the last change seen.
    DirWatcher(std::vector<std::string> dirs, std::chrono::milliseconds quiet, std::function<void()> on_change);
    ~DirWatcher();
    DirWatcher(const DirWatcher &) = delete;
    DirWatcher &operator=(const DirWatcher &) = delete;

private:
    void run();
    int fd_ = -1;
    std::chrono::milliseconds quiet_;
    std::function<void()> on_change_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace recsync::engine
