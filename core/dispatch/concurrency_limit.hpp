// How many calls may be in flight across all lanes right now: between a floor and the
// configured maximum (delivery.max_calls_in_flight), adapted to whether the dispatcher
// thread itself keeps up.
//
// Calls in flight hide the CRMs' answer times; they cannot add throughput once the one
// dispatcher thread is busy all the time. Past that point each extra call only keeps more
// transfers, connections and lanes alive between two visits, so every call finds less of
// its memory in cache: 10,000 lanes with 256 calls in flight against a local mock made
// 0.65-0.8 of the records/s of 64 (bench/run lanes). So, while lanes wait for a slot: if
// the thread never waits for the network (saturated) the limit shrinks, if it has time to
// spare the limit grows back, quickly, up to the maximum. Against CRMs that answer in
// 100 ms the thread mostly waits, and the limit stays at the maximum.
//
// The signal is the time the thread spends blocked waiting for the network, not answer
// times (they differ per CRM by a factor of ten and say nothing about this host), and not
// its CPU time: being preempted, or blocked on the database while ingest commits, is not
// spare time for more calls. A thread held up by the database shrinks the limit only
// until the calls it allows no longer keep it busy: it then waits for answers, and the
// limit grows back (calls in flight ~ what the database lets it handle x answer time).
//
// Single-threaded: the dispatcher thread calls every member.
#pragma once

#include "util/clock.hpp"

#include <cstddef>

namespace recsync::dispatch {

class ConcurrencyLimit {
public:
    // The limit starts at `max`; it never goes below min(floor, max).
    explicit ConcurrencyLimit(size_t max, size_t floor = kDefaultFloor);

    size_t current() const { return limit_; }
    size_t max() const { return max_; }
    // Lanes that grew for slow CRMs raise the maximum (and lower it again as they shrink);
    // the limit follows up as update() lets it, and down at once.
    void set_max(size_t max);

    // Lanes with work waited for a slot during this interval.
    void note_capped() { capped_ = true; }
    // The thread waited `idle` for the network (blocked in the poll).
    void note_idle(util::SteadyClock::duration idle) { idle_ += idle; }
    // Closes an interval once kInterval has passed since the last: adjusts the limit.
    // True if the limit changed.
    bool update(util::TimePoint now);

    static constexpr size_t kDefaultFloor = 16;
    static constexpr util::SteadyClock::duration kInterval = std::chrono::milliseconds(50);
    // Idle below this share of an interval: saturated; above kGrowIdle: time to spare.
    static constexpr double kSaturatedIdle = 0.01;
    static constexpr double kGrowIdle = 0.03;
    // Saturated intervals in a row before the limit shrinks (200 ms).
    static constexpr int kShrinkAfter = 4;

private:
    size_t max_;
    const size_t floor_;
    size_t limit_;
    bool started_ = false;  // the first update() opens the first interval
    util::TimePoint interval_start_{};
    util::SteadyClock::duration idle_{};
    bool capped_ = false;
    int saturated_run_ = 0;
};

}  // namespace recsync::dispatch
