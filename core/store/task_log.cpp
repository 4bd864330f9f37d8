#include "store/task_log.hpp"

#include <future>
#include <stdexcept>

namespace recsync::store {

namespace {
thread_local int g_callback_depth = 0;
}

CommitCallbackScope::CommitCallbackScope() { ++g_callback_depth; }
CommitCallbackScope::~CommitCallbackScope() { --g_callback_depth; }
bool CommitCallbackScope::active() { return g_callback_depth > 0; }

Appended append_and_wait(TaskLog &log, AppendBatch batch) {
    if (CommitCallbackScope::active()) throw std::logic_error("append_and_wait called from a commit callback: it would wait for itself");
    std::promise<Appended> committed;
    auto result = committed.get_future();
    log.append(std::move(batch), [&](Appended &&a) { committed.set_value(std::move(a)); });
    auto a = result.get();
    if (a.error) std::rethrow_exception(a.error);
    return a;
}

AppendBatch batch_of(std::vector<model::Task> tasks) {
    AppendBatch b;
    b.changes.reserve(tasks.size());
    for (auto &t : tasks) {
        PlannedChange c;
        c.tasks.push_back(std::move(t));
        b.changes.push_back(std::move(c));
    }
    return b;
}

}  // namespace recsync::store
