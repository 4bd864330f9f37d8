#include "store/dead_letter_replay.hpp"

#include <spdlog/spdlog.h>

#include <future>

namespace recsync::store {

std::string stale_reason(const model::Task &task, const model::LinkState &link) {
    if (task.order.older_than(link.applied_order))
        return "the record has since applied a newer change (order " + std::to_string(link.applied_order.value) + " > " + std::to_string(task.order.value) + ")";
    if (task.change_seq() < link.applied_seq)
        return "the record has since applied a newer change (accepted as task " + std::to_string(link.applied_seq) + ", after this one's " +
               std::to_string(task.change_seq()) + ")";
    return {};
}

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
    std::promise<Appended> committed;
    auto result = committed.get_future();
    log.append(batch_of(std::move(tasks)), [&](Appended &&a) {
        if (!a.error && hand_off && !a.tasks.empty()) {
            auto copy = a.tasks;
            hand_off(std::move(copy));
        }
        committed.set_value(std::move(a));
    });
    auto a = result.get();
    if (a.error) std::rethrow_exception(a.error);
    report.missing += a.replays_gone;
    std::move(a.tasks.begin(), a.tasks.end(), std::back_inserter(report.tasks));
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
        const auto why = stale_reason(d.task, state.link({d.task.connection, d.task.object, d.task.record_key}));
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
