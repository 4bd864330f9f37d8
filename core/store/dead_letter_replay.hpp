// Moving dead letters back into the task log, shared by the running engine (admin
// endpoints) and `recsync dlq replay` on a stopped one. A replay never overwrites newer
// state: a letter whose record has since applied a newer change at its link is dropped
// with that reason instead (and the dispatcher checks again when the task comes up).
#pragma once

#include "store/dead_letters.hpp"
#include "store/sync_state.hpp"
#include "store/task_log.hpp"

#include <functional>
#include <string>
#include <vector>

namespace recsync::store {

struct ReplaySelection {
    std::vector<int64_t> ids;  // empty: every letter (of `connection`, if set)
    std::string connection;
};

struct ReplayReport {
    size_t replayed = 0;          // letters moved back into the task log (their tasks went to `hand_off`)
    size_t held = 0;              // of connections the caller refused (kept as letters)
    std::vector<int64_t> stale;   // dropped: their record has since applied a newer change
    size_t missing = 0;           // asked for by id, but not there (or gone meanwhile)
};

// Each letter leaves the dead-letter store in the commit that appends its task (fresh:
// attempts reset, created now so that retry.max_age counts from the replay; its change
// keeps its place in the record's order). `replayable(connection)`: false keeps the
// letter (a running engine refuses connections it has no lane for). `hand_off` receives
// the appended tasks on the log's commit thread, a page (1,000) at a time in commit order
// (the running engine hands them to the dispatcher there); may be empty. Nothing holds
// more than a page: a replay of a million letters runs in bounded memory.
ReplayReport replay_dead_letters(TaskLog &log, DeadLetterStore &letters, SyncState &state, const ReplaySelection &selection,
                                 const std::function<bool(const std::string &)> &replayable = {},
                                 const std::function<void(std::vector<model::Task> &&)> &hand_off = {});

}  // namespace recsync::store
