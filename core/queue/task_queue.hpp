// The durable task log (SQLite table `tasks`). Every accepted event's tasks are appended
// in one transaction before the sender gets its 2xx; a task leaves the table only when it
// is done or dead-lettered, so a restart resumes everything unfinished.
#pragma once

#include "queue/task.hpp"
#include "store/sqlite_db.hpp"

#include <condition_variable>
#include <exception>
#include <mutex>
#include <vector>

namespace recsync::queue {

class TaskQueue {
public:
    explicit TaskQueue(store::SqliteDb &db);

    // Appends the tasks durably and sets their ids; returns once they are committed.
    // Group commit: concurrent callers share one transaction (one fsync) — whoever finds
    // no commit running writes everything queued so far, the others wait for it. If that
    // transaction fails, every caller in the group gets the exception (nothing accepted).
    // Must not be called inside a transaction of the caller's: use append_here.
    void append(std::vector<Task> &tasks);
    // Appends within the caller's current transaction (or its own if none).
    void append_here(std::vector<Task> &tasks);
    // Everything unfinished, in acceptance order.
    std::vector<Task> load_pending();
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

    struct Waiter {
        std::vector<Task> *tasks;
        bool done = false;
        std::exception_ptr error;
    };
    std::mutex group_mutex_;
    std::condition_variable group_done_;
    std::vector<Waiter *> group_;  // queued for the next commit
    bool committing_ = false;
};

}  // namespace recsync::queue
