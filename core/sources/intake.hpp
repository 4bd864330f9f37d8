// The one door every change comes in through: System A's HTTP events today; webhooks,
// pollers and PostgreSQL capture join it. A request's events are planned against one
// runtime (any bad event refuses the whole request, nothing stored; an event the task log
// already knows as a repeat or a stale change is acknowledged without being planned),
// refused with a 429 while a backlog is full, appended in one durable commit (which drops
// repeats and stale changes for good: store/task_log.hpp), and only then answered and
// handed to delivery.
#pragma once

#include "model/backlog.hpp"
#include "model/metrics.hpp"
#include "model/runtime.hpp"
#include "store/task_log.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace recsync::sources {

// delivery.max_backlog: tasks accepted and not finished.
struct BacklogLimits {
    int64_t per_connection = 0;
    int64_t total = 0;
};

// How long a sender refused for a full backlog is asked to wait (Retry-After, seconds):
// long enough that a crowd of retrying senders costs little, short next to a backlog that
// took minutes to fill.
inline constexpr int kBacklogRetryAfterSeconds = 5;

struct IntakeAnswer {
    int status = 202;  // 202; 4xx for what the request said; 429 backlog full; 503 store failed
    std::string error;
    int retry_after_s = 0;  // with 429 and 503
    size_t accepted = 0;    // events acknowledged (durable now, or repeats of ones that were)
    size_t duplicates = 0;  // of those, event ids seen within the retention
    size_t stale = 0;       // of those, older than their record's last accepted change
    size_t echoes = 0;      // of those, from a connection: recsync's own write coming back
    size_t conflicts = 0;   // of those (or their tasks to one side), changes that lost a conflict
    size_t tasks = 0;       // tasks made durable
};

class Intake {
public:
    // Receives committed tasks on the task log's commit thread, in commit order.
    using HandOff = std::function<void(std::vector<model::Task> &&)>;
    Intake(store::TaskLog &log, model::Backlog &backlog, model::Metrics &metrics, BacklogLimits limits, HandOff hand_off);

    // Plans `events` from `source` against `rt` and answers through `done`: at once for a
    // refusal, else from the commit thread once the changes are durable.
    void accept(const model::Runtime &rt, const std::string &source, const std::vector<nlohmann::json> &events, std::function<void(IntakeAnswer)> done) {
        accept(rt, source, events, std::nullopt, std::move(done));
    }
    // ... and moves a poller's cursor in the same commit (none of it if refused).
    void accept(const model::Runtime &rt, const std::string &source, const std::vector<nlohmann::json> &events, std::optional<store::Cursor> cursor,
                std::function<void(IntakeAnswer)> done);
    // What a commit hands over: counts the tasks into the backlog, then hands them off.
    // Also for tasks appended by others (dead-letter replays).
    void deliver(std::vector<model::Task> &&tasks);
    void set_limits(BacklogLimits limits);
    // Told (on the commit thread, before the commit's tasks are handed off) of links whose
    // "last written" a commit dropped: the dispatcher reads them again.
    void on_changed_links(std::function<void(std::vector<model::LinkKey> &&)> listener) { changed_links_ = std::move(listener); }

private:
    // Per event: whether the task log already knows it as a repeat or a stale change.
    std::vector<store::Known> known(const std::string &source, const std::vector<nlohmann::json> &events);
    // Empty if the tasks fit in the backlogs, else why not.
    std::string over_limit(const store::AppendBatch &batch) const;

    store::TaskLog &log_;
    model::Backlog &backlog_;
    model::Metrics &metrics_;
    std::atomic<int64_t> per_connection_limit_;
    std::atomic<int64_t> total_limit_;
    HandOff hand_off_;
    std::function<void(std::vector<model::LinkKey> &&)> changed_links_;
};

}  // namespace recsync::sources
