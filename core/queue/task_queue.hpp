// The durable task log (SQLite table `tasks`). Every accepted event's tasks are appended
// in one transaction before the sender gets its 2xx; a task leaves the table only when it
// is done or dead-lettered, so a restart resumes everything unfinished.
#pragma once

#include "queue/task.hpp"
#include "store/sqlite_db.hpp"

#include <vector>

namespace recsync::queue {

class TaskQueue {
public:
    explicit TaskQueue(store::SqliteDb &db);

    // Appends the tasks (one transaction unless the caller holds one) and sets their ids.
    void append(std::vector<Task> &tasks);
    // Everything unfinished, in acceptance order.
    std::vector<Task> load_pending();
    // Within a caller's transaction or standalone:
    void remove(int64_t id);
    void set_payload(int64_t id, const std::string &payload);
    void reschedule(int64_t id, int attempts, int64_t not_before_ms, const std::string &last_error);
    int64_t count();

private:
    store::SqliteDb &db_;
};

}  // namespace recsync::queue
