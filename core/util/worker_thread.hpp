// One thread that runs posted jobs in order. For work that must not run on an I/O thread
// (a reload builds every plugin instance and compiles every schema: with two I/O threads,
// two reload requests would stall ingest for as long as they take). stop() runs what was
// posted before it, then joins; jobs posted after stop() are dropped.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace recsync::util {

class WorkerThread {
public:
    WorkerThread() : thread_([this] { run(); }) {}
    ~WorkerThread() { stop(); }
    WorkerThread(const WorkerThread &) = delete;
    WorkerThread &operator=(const WorkerThread &) = delete;

    void post(std::function<void()> job) {
        {
            std::lock_guard lock(mutex_);
            if (stopping_) return;
            jobs_.push_back(std::move(job));
        }
        ready_.notify_one();
    }

    void stop() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        ready_.notify_one();
        if (thread_.joinable()) thread_.join();
    }

private:
    void run() {
        std::unique_lock lock(mutex_);
        for (;;) {
            ready_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
            if (jobs_.empty()) return;  // stopping, nothing left
            auto job = std::move(jobs_.front());
            jobs_.pop_front();
            lock.unlock();
            job();  // jobs catch their own exceptions (an escaping one ends the process)
            lock.lock();
        }
    }

    std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<std::function<void()>> jobs_;
    bool stopping_ = false;
    std::thread thread_;  // last: starts once the rest is built
};

}  // namespace recsync::util
