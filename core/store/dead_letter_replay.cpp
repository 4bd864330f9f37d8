#include "store/dead_letter_replay.hpp"

#include <spdlog/spdlog.h>

#include <future>

namespace recsync::store {

namespace {

constexpr int64_t kPage = 1000;

// One page of letters -> one append (each letter moves in the commit of its task).
void move(TaskLog &log, std::vector<DeadLetter> &page, ReplayReport &report, const std::function<void(std::vector<model::Task> &&)> &hand_off) {
    if (page.empty()) return;
    std::vector<model::Task> tasks;
    tasks.reserve(page.size());
    for (auto &d : page) {
        model::Task t = std::move(d.task);
        t.seq = t.change_seq();  // its place in the record's order
        t.id = 0;
        t.attempts = 0;
        t.not_before_ms = 0;
        t.created_ms = 0;  // stamped now: retry.max_age counts from the replay
        t.from_dead_letter = d.id;
        tasks.push_back(std::move(t));
    }
    page.clear();
    struct Page {  // what the caller waits for: the counts, not the tasks
        std::exception_ptr error;
        size_t appended = 0, gone = 0;
    };
    std::promise<Page> committed;
    auto result = committed.get_future();
    log.append(batch_of(std::move(tasks)), [&](Appended &&a) {
        Page p{a.error, a.tasks.size(), a.replays_gone};
        if (!a.error && hand_off && !a.tasks.empty()) hand_off(std::move(a.tasks));
        committed.set_value(p);
    });
    const auto p = result.get();
    if (p.error) std::rethrow_exception(p.error);
    report.missing += p.gone;
    report.replayed += p.appended;
}

}  // namespace

ReplayReport replay_dead_letters(TaskLog &log, DeadLetterStore &letters, SyncState &state, const ReplaySelection &selection,
                                 const std::function<bool(const std::string &)> &replayable, const std::function<void(std::vector<model::Task> &&)> &hand_off) {
    ReplayReport report;
    std::vector<DeadLetter> page;
    auto consider = [&](DeadLetter &&d) {
        if (!selection.connection.empty() && d.task.connection != selection.connection) return;
        if (replayable && !replayable(d.task.connection)) {
            ++report.held;
            return;
        }
        const auto why = model::stale_reason(d.task, state.link({d.task.connection, d.task.object, d.task.record_key}));
        if (!why.empty()) {
            spdlog::info("dead letter {} ({} {}/{} '{}') not replayed but dropped: {}", d.id, model::action_text(d.task.action), d.task.connection,
                         d.task.object, d.task.record_key, why);
            if (letters.drop(d.id)) report.stale.push_back(d.id);
            return;
        }
        page.push_back(std::move(d));
        if (static_cast<int64_t>(page.size()) >= kPage) move(log, page, report, hand_off);
    };
    if (selection.ids.empty()) {
        // Pages by id: letters moved meanwhile are gone from later pages.
        for (int64_t after = 0;;) {
            auto batch = letters.list(kPage, after);
            if (batch.empty()) break;
            after = batch.back().id;
            for (auto &d : batch) consider(std::move(d));
        }
    } else {
        for (const auto id : selection.ids) {
            if (auto d = letters.get(id)) consider(std::move(*d));
            else ++report.missing;
        }
    }
    move(log, page, report, hand_off);
    return report;
}

}  // namespace recsync::store
