#include "store/dead_letter_replay.hpp"

namespace recsync::store {

std::vector<queue::Task> requeue_dead_letters(SqliteDb &db, queue::TaskQueue &queue, StateStore &state, const std::vector<int64_t> &ids,
                                              const std::string &connection, const std::function<bool(const std::string &)> &replayable, size_t *held) {
    if (held) *held = 0;
    std::vector<queue::Task> tasks;
    db.transaction([&] {
        std::vector<DeadLetter> letters;
        if (ids.empty()) {
            int64_t after = 0;
            while (true) {
                auto page = state.dead_letters(1000, after);
                if (page.empty()) break;
                after = page.back().id;
                for (auto &d : page)
                    if (connection.empty() || d.task.connection == connection) letters.push_back(std::move(d));
            }
        } else {
            for (const auto id : ids)
                if (auto d = state.dead_letter(id)) letters.push_back(std::move(*d));
        }
        for (auto &d : letters) {
            if (replayable && !replayable(d.task.connection)) {
                if (held) ++*held;
                continue;
            }
            state.drop_dead_letter(d.id);
            queue::Task t = std::move(d.task);
            t.id = 0;
            t.attempts = 0;
            t.not_before_ms = 0;
            t.created_ms = 0;  // stamped now: retry.max_age counts from the replay
            tasks.push_back(std::move(t));
        }
        queue.append_here(tasks);  // in this transaction: all or nothing
    });
    return tasks;
}

}  // namespace recsync::store
