#include "dispatch/lane.hpp"

#include <algorithm>

namespace recsync::dispatch {

Lane::Lane(std::shared_ptr<const engine::ConnectionRuntime> connection, util::TimePoint now)
    : connection_(std::move(connection)), bucket_(connection_->rate_per_second, connection_->burst, now) {}

void Lane::set_connection(std::shared_ptr<const engine::ConnectionRuntime> next, util::TimePoint now) {
    connection_ = std::move(next);
    bucket_.set_rate(connection_->rate_per_second, now);
}

void Lane::schedule(const std::string &id, Record &r, util::TimePoint at, util::TimePoint now) {
    r.scheduled = true;
    if (at <= now) ready_.push_back(id);
    else delayed_.emplace(at, id);
}

void Lane::push(queue::Task task, util::TimePoint ready_at) {
    const std::string id = task.record_id();
    auto &r = records_[id];
    r.tasks.push_back(std::move(task));
    stats_.queued.fetch_add(1, std::memory_order_relaxed);
    if (!r.in_flight && !r.scheduled) schedule(id, r, ready_at, util::SteadyClock::now());
}

void Lane::promote_due(util::TimePoint now) {
    while (!delayed_.empty() && delayed_.top().first <= now) {
        ready_.push_back(delayed_.top().second);
        delayed_.pop();
    }
}

queue::Task &Lane::start_next() {
    const std::string id = std::move(ready_.front());
    ready_.pop_front();
    auto &r = records_.at(id);
    r.scheduled = false;
    r.in_flight = true;
    ++in_flight_;
    stats_.in_flight.store(in_flight_, std::memory_order_relaxed);
    return r.tasks.front();
}

queue::Task &Lane::head(const std::string &record_id) { return records_.at(record_id).tasks.front(); }

void Lane::finish(const std::string &record_id, util::TimePoint now) {
    auto it = records_.find(record_id);
    auto &r = it->second;
    r.tasks.pop_front();
    r.in_flight = false;
    --in_flight_;
    stats_.in_flight.store(in_flight_, std::memory_order_relaxed);
    stats_.queued.fetch_sub(1, std::memory_order_relaxed);
    if (r.tasks.empty()) {
        records_.erase(it);
        return;
    }
    schedule(record_id, r, now, now);
}

void Lane::retry_at(const std::string &record_id, util::TimePoint at) {
    auto &r = records_.at(record_id);
    r.in_flight = false;
    --in_flight_;
    stats_.in_flight.store(in_flight_, std::memory_order_relaxed);
    r.scheduled = true;
    delayed_.emplace(at, record_id);
}

void Lane::on_throttled(util::TimePoint now) {
    const double max_rate = connection_->rate_per_second;
    if (max_rate <= 0) return;  // unlimited lanes only pause: there is no rate to scale
    if (last_decrease_ != util::TimePoint{} && now - last_decrease_ < std::chrono::seconds(1)) return;
    last_decrease_ = now;
    bucket_.set_rate(std::max(max_rate / 64, bucket_.rate() / 2), now);
}

void Lane::on_success(util::TimePoint now) {
    const double max_rate = connection_->rate_per_second;
    if (max_rate <= 0 || bucket_.rate() >= max_rate) return;
    bucket_.set_rate(std::min(max_rate, bucket_.rate() + max_rate / 50), now);
}

util::TimePoint Lane::next_retry() const { return delayed_.empty() ? util::TimePoint::max() : delayed_.top().first; }

}  // namespace recsync::dispatch
