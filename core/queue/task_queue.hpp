// The durable task log (SQLite table `tasks`). Every accepted event's tasks are appended
// in one transaction before the sender gets its 2xx; a task leaves the table only when it
// is done or dead-lettered, so a restart resumes everything unfinished.
#pragma once

#include "queue/task.hpp"
#include "store/sqlite_db.hpp"

#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace recsync::queue {

class TaskQueue {
public:
    // commit_window: how long the first append of a group may wait for others to join
    // its commit (state.commit_window_us; see append_async).
    explicit TaskQueue(store::SqliteDb &db, std::chrono::microseconds commit_window = std::chrono::microseconds(0));
    // Commits what was appended before it returns.
    ~TaskQueue();

    // What append_async calls once the tasks are durable (ids set, error null) or their
    // commit failed (error set: nothing of them was stored). Runs on the commit thread:
    // keep it short and never append from it.
    using Committed = std::function<void(std::vector<Task> &&tasks, std::exception_ptr error)>;
    // Appends the tasks durably, in the background. Group commit: one thread writes
    // everything appended since its last commit in one transaction (one fsync), so a
    // sender waiting for its 2xx holds no thread, and the more senders there are, the
    // bigger each group. A commit window (a millisecond, say) gathers requests that arrive
    // one by one into fewer commits: at 3,500 single-event requests/s on two cores, 1 ms
    // halved the engine's CPU (one fsync and a round of thread wakeups per group, not per
    // request) for 0.7 ms more until the 2xx (bench/README.md "latency").
    // Callbacks run in commit order; tasks in append order.
    void append_async(std::vector<Task> tasks, Committed done);
    // Returns once everything appended before the call is committed and its callback has
    // run (engine shutdown: before the listener that the callbacks answer through goes).
    void flush();
    // The same, waiting for the commit; sets the tasks' ids. Throws what the commit threw.
    // Must not be called inside a transaction of the caller's, nor holding SqliteDb::lock()
    // (the commit thread needs the database): use append_here. From a Committed callback
    // it throws std::logic_error (flush too): it would wait for itself.
    void append(std::vector<Task> &tasks);
    // Appends within the caller's current transaction (or its own if none).
    void append_here(std::vector<Task> &tasks);
    // Everything unfinished, in acceptance order.
    std::vector<Task> load_pending();
    // The same for these connections only (added by a reload), in one pass.
    std::vector<Task> load_pending(const std::vector<std::string> &connections);
    // Within a caller's transaction or standalone:
    void remove(int64_t id);
    void set_payload(int64_t id, const std::string &payload);
    void reschedule(int64_t id, int attempts, int64_t not_before_ms, const std::string &last_error);
    // The task's call may go out: after a crash it is in doubt (Task::sent).
    void mark_sent(int64_t id);
    int64_t count();

private:
    void insert(Task &t, int64_t now_ms);
    store::SqliteDb &db_;
    const std::chrono::microseconds commit_window_;

    void commit_loop();
    void refuse_from_commit_thread(const char *what) const;

    struct Appended {
        std::vector<Task> tasks;
        Committed done;
    };
    std::mutex group_mutex_;
    std::condition_variable group_ready_;
    std::condition_variable group_done_;
    std::vector<Appended> group_;  // for the next commit
    std::chrono::steady_clock::time_point group_since_;  // when its first append came
    uint64_t appended_ = 0;        // appends so far, and how many of them are done
    uint64_t finished_ = 0;
    bool stopping_ = false;
    std::thread committer_;
};

}  // namespace recsync::queue
