#include "sources/intake.hpp"

#include "pipeline/event_identity.hpp"
#include "log/log_context.hpp"
#include "pipeline/plan.hpp"
#include "util/clock.hpp"

#include <spdlog/spdlog.h>

#include <unordered_map>

namespace recsync::sources {

Intake::Intake(store::TaskLog &log, model::Backlog &backlog, model::Metrics &metrics, BacklogLimits limits, HandOff hand_off)
    : log_(log), backlog_(backlog), metrics_(metrics), per_connection_limit_(limits.per_connection), total_limit_(limits.total), hand_off_(std::move(hand_off)) {}

void Intake::set_limits(BacklogLimits limits) {
    per_connection_limit_ = limits.per_connection;
    total_limit_ = limits.total;
}

std::string Intake::over_limit(const store::AppendBatch &batch) const {
    // Approximate by design: requests checked at once may together pass a limit by what
    // they carry. The limit keeps the disk from filling, not an exact count.
    const int64_t total_limit = total_limit_, per_connection = per_connection_limit_;
    std::unordered_map<std::string_view, int64_t> adding;
    int64_t n_tasks = 0;
    for (const auto &c : batch.changes)
        for (const auto &t : c.tasks) {
            ++adding[t.connection];
            ++n_tasks;
        }
    if (const int64_t total = backlog_.total(); total + n_tasks > total_limit)
        return "the backlog is full: " + std::to_string(total) + " tasks wait across all connections (delivery.max_backlog.total " + std::to_string(total_limit) +
               "); nothing was accepted, retry later";
    for (const auto &[name, n] : adding) {
        const std::string connection(name);
        if (const int64_t queued = backlog_.of(connection); queued + n > per_connection)
            return "the backlog of connection '" + connection + "' is full: " + std::to_string(queued) + " tasks wait (delivery.max_backlog.per_connection " +
                   std::to_string(per_connection) + "); nothing was accepted, retry later";
    }
    return {};
}

std::vector<store::Known> Intake::known(const std::string &source, const std::vector<nlohmann::json> &events) {
    std::vector<store::Known> of_event(events.size(), store::Known::New);
    std::vector<store::PlannedChange> asked;
    std::vector<size_t> which;
    for (size_t i = 0; i < events.size(); ++i) {
        auto c = pipeline::peek_change(events[i]);
        if (!c || (c->identity.id.empty() && c->identity.order.kind == model::Order::None)) continue;
        asked.push_back({source, std::move(c->identity.id), std::move(c->entity), std::move(c->key), c->identity.order, {}});
        which.push_back(i);
    }
    if (asked.empty()) return of_event;
    try {
        const auto k = log_.known(asked);
        for (size_t j = 0; j < which.size(); ++j) of_event[which[j]] = k[j];
    } catch (const std::exception &e) {
        // Planned, then: the commit still drops repeats, only a repeat that no longer plans
        // is refused.
        spdlog::warn("cannot look up known event ids and orders: {}; planning every event", e.what());
    }
    return of_event;
}

void Intake::accept(const model::Runtime &rt, const std::string &source, const std::vector<nlohmann::json> &events, std::optional<store::Cursor> cursor,
                    std::function<void(IntakeAnswer)> done) {
    store::AppendBatch batch;
    batch.cursor = std::move(cursor);
    batch.changes.reserve(events.size());
    const auto of_event = known(source, events);
    // The same for every event of the request: when it came, and the source's conflict policy.
    const int64_t accepted_ms = util::epoch_ms();
    const bool system_a = rt.from_system_a(source);
    const auto *from = !system_a ? rt.connection(source) : nullptr;
    const uint8_t conflict = from ? static_cast<uint8_t>(from->config.conflict_policy) : 0;
    log::ScopedLogContext log_context(source);  // where the events come from ("internal": System A)
    try {
        for (size_t i = 0; i < events.size(); ++i) {
            if (of_event[i] != store::Known::New) {
                // A repeat, or older than its record's state: acknowledged as it is, not
                // planned again (the commit counts it).
                auto c = *pipeline::peek_change(events[i]);
                batch.changes.push_back({source, std::move(c.identity.id), std::move(c.entity), std::move(c.key), c.identity.order, {}});
                continue;
            }
            try {
                auto plan = pipeline::plan_event(rt, events[i], source);
                store::PlannedChange c{source, std::move(plan.id), std::move(plan.entity), std::move(plan.key), plan.order, {}, std::move(plan.external_id), std::move(plan.modified)};
                c.deletes = plan.event == "deleted";
                c.from_system_a = system_a;
                if ((c.data_hash = plan.data_hash) || (c.deletes && system_a)) c.echo_connections = rt.system_a_connections;
                c.accepted_ms = accepted_ms;
                c.conflict = conflict;
                if (plan.withheld) metrics_.fields_withheld.fetch_add(plan.withheld, std::memory_order_relaxed);
                for (auto &a : plan.actions)
                    if (!a.task.connection.empty()) c.tasks.push_back(std::move(a.task));
                batch.changes.push_back(std::move(c));
            } catch (const pipeline::EventError &e) {
                throw pipeline::EventError(e.status(), events.size() > 1 ? "event " + std::to_string(i) + ": " + e.what() : std::string(e.what()));
            }
        }
    } catch (const pipeline::EventError &e) {
        metrics_.events_rejected.fetch_add(std::max<size_t>(1, events.size()), std::memory_order_relaxed);
        IntakeAnswer a;
        a.status = e.status();
        a.error = e.what();
        return done(std::move(a));
    }
    if (auto why = over_limit(batch); !why.empty()) {
        metrics_.requests_throttled.fetch_add(1, std::memory_order_relaxed);
        IntakeAnswer a;
        a.status = 429;
        a.error = std::move(why);
        a.retry_after_s = kBacklogRetryAfterSeconds;
        return done(std::move(a));
    }
    const size_t n_events = events.size();
    log_.append(std::move(batch), [this, n_events, done = std::move(done)](store::Appended &&r) {
        IntakeAnswer a;
        if (r.error) {
            try {
                std::rethrow_exception(r.error);
            } catch (const std::exception &e) {
                spdlog::error("cannot store {} event(s): {}", n_events, e.what());
            }
            a.status = 503;
            a.error = "cannot store events right now; nothing was accepted, retry later";
            a.retry_after_s = 1;
            return done(std::move(a));
        }
        a.accepted = n_events;
        a.duplicates = r.duplicates;
        a.stale = r.stale;
        a.echoes = r.echoes;
        a.conflicts = r.conflicts;
        metrics_.conflicts.fetch_add(r.conflicts, std::memory_order_relaxed);
        a.tasks = r.tasks.size();
        metrics_.events_accepted.fetch_add(n_events, std::memory_order_relaxed);
        metrics_.events_duplicate.fetch_add(r.duplicates, std::memory_order_relaxed);
        metrics_.events_stale.fetch_add(r.stale, std::memory_order_relaxed);
        metrics_.echoes_suppressed.fetch_add(r.echoes, std::memory_order_relaxed);
        if (!r.changed_links.empty() && changed_links_) changed_links_(std::move(r.changed_links));
        deliver(std::move(r.tasks));
        done(std::move(a));
    });
}

void Intake::deliver(std::vector<model::Task> &&tasks) {
    if (tasks.empty()) return;
    model::Backlog::Counter *counter = nullptr;
    const std::string *counted = nullptr;  // the connection `counter` counts (tasks come in runs of one)
    for (const auto &t : tasks) {
        if (!counted || *counted != t.connection) {
            counter = &backlog_.counter(t.connection);
            counted = &t.connection;
        }
        backlog_.add(*counter, 1);
    }
    metrics_.tasks_enqueued.fetch_add(tasks.size(), std::memory_order_relaxed);
    hand_off_(std::move(tasks));
}

}  // namespace recsync::sources
