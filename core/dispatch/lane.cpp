#include "dispatch/lane.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cassert>

namespace recsync::dispatch {

Lane::Lane(std::shared_ptr<const model::ConnectionRuntime> connection, model::Backlog &backlog, util::TimePoint now)
    : connection_(std::move(connection)),
      backlog_(backlog),
      queued_(backlog.counter(connection_->config.name)),
      bucket_(connection_->rate_per_second, connection_->burst, now),
      target_(connection_->config.max_in_flight, connection_->config.max_in_flight_ceiling) {
    stats_.current_rate.store(bucket_.rate(), std::memory_order_relaxed);
    stats_.in_flight_target.store(target_.current(), std::memory_order_relaxed);
}

void Lane::set_connection(std::shared_ptr<const model::ConnectionRuntime> next, util::TimePoint now) {
    connection_ = std::move(next);
    set_rate(connection_->rate_per_second, now);
    if (shared_) shared_->set_limit(connection_->rate_per_second, connection_->burst);
    target_.set_bounds(connection_->config.max_in_flight, connection_->config.max_in_flight_ceiling);
    stats_.in_flight_target.store(target_.current(), std::memory_order_relaxed);
}

bool Lane::note_answer(util::SteadyClock::duration answer, util::TimePoint now) {
    target_.answered(answer);
    const bool changed = target_.update(now);
    stats_.in_flight_target.store(target_.current(), std::memory_order_relaxed);
    stats_.answer_ms.store(target_.answer_ms(), std::memory_order_relaxed);
    return changed;
}

void Lane::set_rate(double rate_per_second, util::TimePoint now) {
    bucket_.set_rate(rate_per_second, now);
    stats_.current_rate.store(rate_per_second, std::memory_order_relaxed);
}

void Lane::count_held(int64_t delta) {
    held_ = static_cast<size_t>(static_cast<int64_t>(held_) + delta);
    stats_.in_memory.store(static_cast<int64_t>(held_), std::memory_order_relaxed);
}

void Lane::schedule(const std::string &id, Record &r, util::TimePoint at, util::TimePoint now) {
    if (at > now) return delay(id, r, at);
    r.scheduled = true;
    r.ticket = next_ticket_++;
    if (ready_.empty()) ready_since_ = now;
    ready_.push_back({id, r.ticket});
}

void Lane::delay(const std::string &id, Record &r, util::TimePoint at) {
    r.scheduled = true;
    r.ticket = next_ticket_++;
    if (!r.waiting) waiting_tasks_ += r.tasks.size();
    r.waiting = true;
    delayed_.push({at, {id, r.ticket}});
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

bool writes_record(recsync_action a) { return a == RECSYNC_ACTION_CREATE || a == RECSYNC_ACTION_UPSERT || a == RECSYNC_ACTION_UPDATE; }
}  // namespace

bool Lane::push(model::Task task, util::TimePoint ready_at) {
    const std::string id = task.record_id();
    auto [it, added] = records_.try_emplace(id);
    auto &r = it->second;
    if (added) unlinked_.push_back(id);
    const size_t waiting = r.tasks.size() - (r.in_flight ? 1 : 0);
    if (waiting > 0) {
        model::Task &last = r.tasks.back();
        if (last.absorbed.size() < kMaxAbsorbed) {
            if (task.action == RECSYNC_ACTION_UPDATE && writes_record(last.action)) {
                // A change older than the one it joins (a replayed dead letter) adds nothing.
                const bool older = task.order.older_than(last.order) || task.change_seq() < last.change_seq();
                if (!older) {
                    last.payload = merge_payloads(last.payload, task.payload);
                    last.seq = task.change_seq();
                    if (task.order.kind != model::Order::None) last.order = task.order;
                }
                last.absorbed.push_back(task.id);
                last.absorbed.insert(last.absorbed.end(), task.absorbed.begin(), task.absorbed.end());
                return true;
            }
            if (task.action == RECSYNC_ACTION_READ && last.action == RECSYNC_ACTION_READ) {
                // One read of the record's current state answers both (hydration).
                if (task.order.kind != model::Order::None && !task.order.older_than(last.order)) last.order = task.order;
                last.seq = std::max(last.change_seq(), task.change_seq());
                last.absorbed.push_back(task.id);
                last.absorbed.insert(last.absorbed.end(), task.absorbed.begin(), task.absorbed.end());
                return true;
            }
            // Never sent, so nothing of it needs undoing, unless the delete is the older
            // change (a replayed dead letter): it then follows, and is stale at the head.
            if (task.action == RECSYNC_ACTION_DELETE && !last.may_have_gone_out() && !(task.order.older_than(last.order) || task.change_seq() < last.change_seq())) {
                // The delete goes out only if the record exists there (the sync state says so
                // at the head).
                task.absorbed.push_back(last.id);
                task.absorbed.insert(task.absorbed.end(), last.absorbed.begin(), last.absorbed.end());
                last = std::move(task);
                return true;
            }
        }
    }
    r.tasks.push_back(std::move(task));
    count_held(1);
    if (r.waiting) ++waiting_tasks_;
    if (!r.in_flight && !r.scheduled) schedule(id, r, ready_at, util::SteadyClock::now());
    return false;
}

bool Lane::offer(model::Task task, util::TimePoint ready_at, bool &folded) {
    folded = false;
    if (task.id <= loaded_upto_) return true;  // read from the log already
    if (!caught_up_) return false;
    if (working() >= window() || held_ >= 4 * window()) {
        caught_up_ = false;  // this one and the rest wait in the log
        return false;
    }
    loaded_upto_ = task.id;
    folded = push(std::move(task), ready_at);
    return true;
}

size_t Lane::wanted() const {
    const size_t window = this->window();
    if (caught_up_ || held_ >= 4 * window) return 0;
    const size_t w = working();
    if (w >= std::max<size_t>(1, window / 2)) return 0;
    return std::min(window - w, 4 * window - held_);
}

size_t Lane::loaded(std::vector<model::Task> tasks, bool all, util::TimePoint now) {
    size_t folded = 0;
    const int64_t epoch = util::epoch_ms();
    for (auto &t : tasks) {
        if (t.id <= loaded_upto_) continue;
        loaded_upto_ = t.id;
        const auto at = now + std::chrono::milliseconds(std::max<int64_t>(0, t.not_before_ms - epoch));
        folded += push(std::move(t), at);
    }
    if (all) caught_up_ = true;
    return folded;
}

void Lane::promote_due(util::TimePoint now) {
    while (!delayed_.empty() && delayed_.top().at <= now) {
        const auto &e = delayed_.top().entry;
        if (current(e)) {
            auto &r = records_.at(e.id);
            if (r.waiting) {
                waiting_tasks_ -= std::min(waiting_tasks_, r.tasks.size());
                r.waiting = false;
            }
            if (ready_.empty()) ready_since_ = now;
            ready_.push_back(e);
        }
        delayed_.pop();
    }
}

bool Lane::has_ready() {
    if (removed_) return false;
    while (!ready_.empty() && !current(ready_.front())) ready_.pop_front();
    return !ready_.empty();
}

const model::Task &Lane::next_ready() const { return records_.at(ready_.front().id).tasks.front(); }

model::Task &Lane::start_next(bool on_wire) {
    const std::string id = std::move(ready_.front().id);
    ready_.pop_front();
    auto &r = records_.at(id);
    r.scheduled = false;
    r.in_flight = true;
    if (on_wire) {
        r.on_wire = true;
        ++in_flight_;
        stats_.in_flight.store(in_flight_, std::memory_order_relaxed);
    }
    auto &t = r.tasks.front();
    if (!r.creating && (t.action == RECSYNC_ACTION_CREATE || t.action == RECSYNC_ACTION_UPSERT)) {
        r.creating = true;
        ++creating_[t.object];
    }
    return t;
}

void Lane::set_solo(const std::string &record_id) { records_.at(record_id).solo = true; }

bool Lane::solo(const std::string &record_id) const { return records_.at(record_id).solo; }

int Lane::creating(std::string_view object) const {
    const auto it = creating_.find(object);
    return it == creating_.end() ? 0 : it->second;
}

model::Task &Lane::head(const std::string &record_id) { return records_.at(record_id).tasks.front(); }

std::optional<model::LinkState> &Lane::link(const std::string &record_id) { return records_.at(record_id).link; }

void Lane::forget_link(const std::string &record_id) {
    const auto it = records_.find(record_id);
    if (it != records_.end() && !it->second.in_flight) it->second.link.reset();
}

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
    backlog_.remove(queued_, static_cast<int64_t>(1 + r.tasks.front().absorbed.size()));
    if (r.creating) {
        --creating_[r.tasks.front().object];
        r.creating = false;
    }
    r.tasks.pop_front();
    r.in_flight = false;
    r.solo = false;
    count_held(-1);
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
    delay(record_id, r, at);
}

void Lane::again_at(const std::string &record_id, util::TimePoint at, util::TimePoint now) {
    auto &r = records_.at(record_id);
    end_call(r, now);
    r.in_flight = false;
    schedule(record_id, r, at, now);
}

void Lane::note_oldest() {
    int64_t oldest = 0;
    for (const auto &[id, r] : records_)
        if (!r.tasks.empty() && r.tasks.front().created_ms > 0 && (oldest == 0 || r.tasks.front().created_ms < oldest)) oldest = r.tasks.front().created_ms;
    stats_.oldest_created_ms.store(oldest, std::memory_order_relaxed);
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
    // The shared tokens are looked at before the bucket and taken after it, so that neither
    // loses a token when the other refuses.
    if (shared_ && !shared_->available(now)) {
        wake = std::min(wake, shared_->next_try(now));
        return false;
    }
    if (!bucket_.try_acquire(now)) {
        wake = std::min(wake, now + bucket_.wait_time(now));
        return false;
    }
    if (shared_) shared_->take(now);
    // Cannot be refused: blocked_until said the quota allows a call at `now`.
    [[maybe_unused]] const bool counted = quota_.try_acquire(now);
    assert(counted);
    return true;
}

util::TimePoint Lane::paused_until(util::TimePoint now) { return std::max(bucket_.paused_until(), quota_.blocked_until(now)); }

util::TimePoint Lane::next_retry() const { return delayed_.empty() ? util::TimePoint::max() : delayed_.top().at; }

}  // namespace recsync::dispatch
