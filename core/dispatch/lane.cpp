#include "dispatch/lane.hpp"

#include <algorithm>
#include <cassert>

namespace recsync::dispatch {

Lane::Lane(std::shared_ptr<const engine::ConnectionRuntime> connection, util::TimePoint now)
    : connection_(std::move(connection)), bucket_(connection_->rate_per_second, connection_->burst, now) {
    stats_.current_rate.store(bucket_.rate(), std::memory_order_relaxed);
}

void Lane::set_connection(std::shared_ptr<const engine::ConnectionRuntime> next, util::TimePoint now) {
    connection_ = std::move(next);
    set_rate(connection_->rate_per_second, now);
}

void Lane::set_rate(double rate_per_second, util::TimePoint now) {
    bucket_.set_rate(rate_per_second, now);
    stats_.current_rate.store(rate_per_second, std::memory_order_relaxed);
}

void Lane::schedule(const std::string &id, Record &r, util::TimePoint at, util::TimePoint now) {
    r.scheduled = true;
    r.ticket = next_ticket_++;
    if (at <= now) ready_.push_back({id, r.ticket});
    else delayed_.push({at, {id, r.ticket}});
}

bool Lane::current(const Entry &e) const {
    auto it = records_.find(e.id);
    return it != records_.end() && it->second.scheduled && !it->second.in_flight && it->second.ticket == e.ticket && !it->second.tasks.empty();
}

namespace {
// What sending `older` then `newer` (an update, i.e. a partial write) leaves behind:
// objects merged recursively, newer values winning. Not RFC 7386: a null here is a value
// the provider's transform chose to send, not a deletion.
std::string merge_payloads(const std::string &older, const std::string &newer) {
    auto a = nlohmann::json::parse(older, nullptr, false);
    const auto b = nlohmann::json::parse(newer, nullptr, false);
    if (!a.is_object() || !b.is_object()) return newer;
    a.update(b, /*merge_objects=*/true);
    return a.dump();
}
}  // namespace

Lane::Coalesced Lane::push(queue::Task task, util::TimePoint ready_at) {
    Coalesced c;
    const std::string id = task.record_id();
    auto &r = records_[id];
    const size_t waiting = r.tasks.size() - (r.in_flight ? 1 : 0);
    if (waiting > 0) {
        queue::Task &last = r.tasks.back();
        const auto a = last.action, b = task.action;
        if (b == RECSYNC_ACTION_UPDATE && (a == RECSYNC_ACTION_CREATE || a == RECSYNC_ACTION_UPSERT || a == RECSYNC_ACTION_UPDATE)) {
            last.payload = merge_payloads(last.payload, task.payload);
            c.rewritten = last.id;
            c.payload = last.payload;
            c.dropped.push_back(task.id);
            return c;
        }
        if (b == RECSYNC_ACTION_DELETE && a == RECSYNC_ACTION_CREATE && last.attempts == 0 && !last.sent) {
            // Never sent: the record never has to exist there.
            c.dropped = {last.id, task.id};
            r.tasks.pop_back();
            stats_.queued.fetch_sub(1, std::memory_order_relaxed);
            if (r.tasks.empty()) records_.erase(id);  // its schedule entry goes stale
            return c;
        }
        if (b == RECSYNC_ACTION_DELETE && (a == RECSYNC_ACTION_UPDATE || a == RECSYNC_ACTION_UPSERT)) {
            c.dropped.push_back(last.id);  // the delete replaces it in place
            last = std::move(task);
            return c;
        }
    }
    r.tasks.push_back(std::move(task));
    stats_.queued.fetch_add(1, std::memory_order_relaxed);
    if (!r.in_flight && !r.scheduled) schedule(id, r, ready_at, util::SteadyClock::now());
    return c;
}

void Lane::promote_due(util::TimePoint now) {
    while (!delayed_.empty() && delayed_.top().at <= now) {
        if (current(delayed_.top().entry)) ready_.push_back(delayed_.top().entry);
        delayed_.pop();
    }
}

bool Lane::has_ready() {
    if (removed_) return false;
    while (!ready_.empty() && !current(ready_.front())) ready_.pop_front();
    return !ready_.empty();
}

queue::Task &Lane::start_next() {
    const std::string id = std::move(ready_.front().id);
    ready_.pop_front();
    auto &r = records_.at(id);
    r.scheduled = false;
    r.in_flight = true;
    r.on_wire = true;
    ++in_flight_;
    stats_.in_flight.store(in_flight_, std::memory_order_relaxed);
    return r.tasks.front();
}

queue::Task &Lane::head(const std::string &record_id) { return records_.at(record_id).tasks.front(); }

void Lane::end_call(Record &r, std::optional<util::TimePoint> answered) {
    if (!r.on_wire) return;
    r.on_wire = false;
    if (answered) quota_.call_ended(*answered);
    else quota_.call_cancelled();
    --in_flight_;
    stats_.in_flight.store(in_flight_, std::memory_order_relaxed);
}

void Lane::end_call(const std::string &record_id, util::TimePoint now) { end_call(records_.at(record_id), now); }

void Lane::cancel_call(const std::string &record_id) { end_call(records_.at(record_id), std::nullopt); }

void Lane::finish(const std::string &record_id, util::TimePoint now) {
    auto it = records_.find(record_id);
    auto &r = it->second;
    end_call(r, now);
    r.tasks.pop_front();
    r.in_flight = false;
    stats_.queued.fetch_sub(1, std::memory_order_relaxed);
    if (r.tasks.empty()) {
        records_.erase(it);
        return;
    }
    schedule(record_id, r, now, now);
}

void Lane::retry_at(const std::string &record_id, util::TimePoint at, util::TimePoint now) {
    auto &r = records_.at(record_id);
    end_call(r, now);
    r.in_flight = false;
    r.scheduled = true;
    r.ticket = next_ticket_++;
    delayed_.push({at, {record_id, r.ticket}});
}

void Lane::on_throttled(util::TimePoint now) {
    const double max_rate = connection_->rate_per_second;
    if (max_rate <= 0) return;  // unlimited lanes only pause: there is no rate to scale
    if (last_decrease_ != util::TimePoint{} && now - last_decrease_ < std::chrono::seconds(1)) return;
    last_decrease_ = now;
    set_rate(std::max(max_rate / 64, bucket_.rate() / 2), now);
}

void Lane::on_success(util::TimePoint now) {
    const double max_rate = connection_->rate_per_second;
    if (max_rate <= 0 || bucket_.rate() >= max_rate) return;
    set_rate(std::min(max_rate, bucket_.rate() + max_rate / 50), now);
}

bool Lane::acquire_send(util::TimePoint now, util::TimePoint &wake) {
    // The quota first: a token taken from the bucket for a call the server would refuse
    // would be lost.
    if (const auto until = quota_.blocked_until(now); until > now) {
        wake = std::min(wake, until);
        return false;
    }
    if (!bucket_.try_acquire(now)) {
        wake = std::min(wake, now + bucket_.wait_time(now));
        return false;
    }
    // Cannot be refused: blocked_until said the quota allows a call at `now`.
    [[maybe_unused]] const bool counted = quota_.try_acquire(now);
    assert(counted);
    return true;
}

util::TimePoint Lane::paused_until(util::TimePoint now) { return std::max(bucket_.paused_until(), quota_.blocked_until(now)); }

util::TimePoint Lane::next_retry() const { return delayed_.empty() ? util::TimePoint::max() : delayed_.top().at; }

}  // namespace recsync::dispatch
