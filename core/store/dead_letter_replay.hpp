// Moving dead letters back into the task queue, shared by the running engine (admin
// endpoint) and `recsync dlq replay` on a stopped one.
#pragma once

#include "queue/task_queue.hpp"
#include "store/state_store.hpp"

#include <functional>
#include <string>
#include <vector>

namespace recsync::store {

// In one transaction: removes the dead letters (`ids`, or all of `connection`'s, or all)
// and appends them as fresh tasks (attempts reset, created now, so that retry.max_age
// counts from the replay). Returns the new tasks, with ids. A running engine passes
// `replayable`: letters whose connection it refuses stay dead letters, counted in `held`.
std::vector<queue::Task> requeue_dead_letters(SqliteDb &db, queue::TaskQueue &queue, StateStore &state, const std::vector<int64_t> &ids,
                                              const std::string &connection, const std::function<bool(const std::string &)> &replayable = {},
                                              size_t *held = nullptr);

}  // namespace recsync::store
