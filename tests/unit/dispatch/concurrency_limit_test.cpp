// ConcurrencyLimit: shrinks while lanes wait and the dispatcher has not waited for the
// network for kShrinkAfter intervals in a row, grows while lanes wait and it has time to
// spare, holds otherwise; stays within [floor, max]. Time is passed in, so nothing here
// sleeps.
#include "dispatch/concurrency_limit.hpp"

#include <gtest/gtest.h>

namespace {

using recsync::dispatch::ConcurrencyLimit;
using recsync::util::TimePoint;
using std::chrono::milliseconds;

constexpr auto kInterval = ConcurrencyLimit::kInterval;
constexpr int kShrinkAfter = ConcurrencyLimit::kShrinkAfter;

// A limit whose first interval is open, and the dispatcher's clock.
struct Started {
    ConcurrencyLimit l;
    TimePoint now{};
    Started(size_t max, size_t floor) : l(max, floor) { l.update(now); }
    // Runs `n` intervals: capped or not, idle for `idle_share` of each.
    void intervals(int n, bool capped, double idle_share) {
        for (int i = 0; i < n; ++i) {
            if (capped) l.note_capped();
            l.note_idle(std::chrono::duration_cast<recsync::util::SteadyClock::duration>(kInterval * idle_share));
            now += kInterval;
            l.update(now);
        }
    }
};

TEST(ConcurrencyLimit, StartsAtTheMaximum) {
    ConcurrencyLimit l(256);
    EXPECT_EQ(l.current(), 256u);
    EXPECT_EQ(l.max(), 256u);
}

TEST(ConcurrencyLimit, ShrinksToTheFloorWhileSaturatedAndCapped) {
    Started t(256, 16);  // opens the first interval
    t.intervals(kShrinkAfter - 1, true, 0.0);
    EXPECT_EQ(t.l.current(), 256u) << "not yet a trend";
    t.intervals(1, true, 0.0);
    EXPECT_EQ(t.l.current(), 224u) << "down by an eighth";
    t.intervals(1, true, 0.0);
    EXPECT_EQ(t.l.current(), 196u) << "and again each saturated interval while the run lasts";
    t.intervals(100, true, 0.0);
    EXPECT_EQ(t.l.current(), 16u);
}

TEST(ConcurrencyLimit, ABusyIntervalNowAndThenIsNoTrend) {
    // A commit or a checkpoint makes an interval busy; an interval with any idle time in
    // between starts the count again.
    Started t(256, 16);
    for (int i = 0; i < 10; ++i) {
        t.intervals(kShrinkAfter - 1, true, 0.0);
        t.intervals(1, true, 0.02);
    }
    EXPECT_EQ(t.l.current(), 256u);
}

TEST(ConcurrencyLimit, HoldsWhenNoLaneWaits) {
    // Saturated by something else (ingest, a slow commit): the limit binds nobody, so it
    // says nothing about how many calls the thread keeps up with.
    Started t(256, 16);
    t.intervals(20, false, 0.0);
    EXPECT_EQ(t.l.current(), 256u);
}

TEST(ConcurrencyLimit, GrowsBackWhenCappedWithTimeToSpare) {
    Started t(256, 16);
    t.intervals(100, true, 0.0);
    ASSERT_EQ(t.l.current(), 16u);
    t.intervals(1, true, 0.5);
    EXPECT_EQ(t.l.current(), 20u) << "up by a quarter";
    t.intervals(30, true, 0.5);
    EXPECT_EQ(t.l.current(), 256u) << "never above the maximum";
}

TEST(ConcurrencyLimit, HoldsBetweenTheThresholds) {
    Started t(256, 16);
    t.intervals(kShrinkAfter + 2, true, 0.0);
    const size_t before = t.l.current();
    ASSERT_LT(before, 256u);
    // Idle 2%: neither saturated (< 1%) nor with time to spare (> 3%).
    t.intervals(10, true, 0.02);
    EXPECT_EQ(t.l.current(), before);
}

TEST(ConcurrencyLimit, AnIntervalClosesOnlyAfterItsLength) {
    Started t(256, 16);
    t.intervals(kShrinkAfter - 1, true, 0.0);
    t.l.note_capped();
    t.l.update(t.now + kInterval / 2);
    EXPECT_EQ(t.l.current(), 256u) << "half an interval: no decision yet";
    t.l.update(t.now + kInterval);
    EXPECT_EQ(t.l.current(), 224u);
}

TEST(ConcurrencyLimit, IdleIsMeasuredOverTheWholeInterval) {
    // 2 ms idle over a 400 ms interval (a dispatcher that was not called for a while) is
    // 0.5%: saturated, not 4% of one 50 ms interval.
    Started t(256, 16);
    t.intervals(kShrinkAfter - 1, true, 0.0);
    t.l.note_capped();
    t.l.note_idle(milliseconds(2));
    t.l.update(t.now + milliseconds(400));
    EXPECT_EQ(t.l.current(), 224u);
}

TEST(ConcurrencyLimit, FloorAndMaximumAreClamped) {
    Started t(8, 16);  // a maximum under the floor: the floor is the maximum
    t.intervals(10, true, 0.0);
    EXPECT_EQ(t.l.current(), 8u);
    ConcurrencyLimit one(0);  // at least one call
    EXPECT_EQ(one.current(), 1u);
    EXPECT_EQ(one.max(), 1u);
}

}  // namespace
