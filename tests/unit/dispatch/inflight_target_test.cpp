#include "dispatch/inflight_target.hpp"

#include <gtest/gtest.h>

namespace {

using recsync::dispatch::InFlightTarget;
using Clock = recsync::util::SteadyClock;
using std::chrono::milliseconds;

// Drives a lane held back by its own target against a CRM answering in `answer`: each
// window completes target x window / answer calls (Little's law), as a saturated lane does.
int run_windows(InFlightTarget &t, Clock::time_point &now, milliseconds answer, int windows) {
    for (int w = 0; w < windows; ++w) {
        const int answers = static_cast<int>(t.current() * InFlightTarget::kWindow / answer);
        for (int i = 0; i < answers; ++i) t.answered(answer);
        now += InFlightTarget::kWindow;
        t.update(now);
    }
    return t.current();
}

TEST(InFlightTarget, GrowsByLittlesLawUntilTheCeilingAgainstASlowCrm) {
    InFlightTarget t(8, 4096);
    auto now = Clock::time_point{} + std::chrono::hours(1);
    t.update(now);  // opens the first window
    EXPECT_EQ(t.current(), 8);
    const int after_one = run_windows(t, now, milliseconds(150), 1);
    EXPECT_GT(after_one, 8) << "a saturated lane asks for more";
    EXPECT_LE(after_one, static_cast<int>(8 * InFlightTarget::kHeadroom) + InFlightTarget::kSlack + 1) << "by half a window, not at once";
    EXPECT_EQ(run_windows(t, now, milliseconds(150), 40), 4096) << "up to the ceiling";
    EXPECT_NEAR(t.answer_ms(), 150, 1);
}

TEST(InFlightTarget, FollowsTheRateTheDemandOrQuotaAllowsAndFallsSlowly) {
    InFlightTarget t(8, 4096);
    auto now = Clock::time_point{} + std::chrono::hours(1);
    t.update(now);
    run_windows(t, now, milliseconds(100), 30);
    ASSERT_EQ(t.current(), 4096);
    // Now only 1,000 calls/s are wanted (a quota, or the demand): 100 in flight would do.
    int last = t.current();
    for (int w = 0; w < 60; ++w) {
        for (int i = 0; i < 100; ++i) t.answered(milliseconds(100));
        now += InFlightTarget::kWindow;
        t.update(now);
        EXPECT_GE(t.current(), last - last / 8 - 1) << "at most an eighth per window";
        last = t.current();
    }
    EXPECT_EQ(t.current(), 152) << "1,000/s x 0.1 s x 1.5 + 2";
}

TEST(InFlightTarget, StaysAtItsFloorWhenItIsNotHeldBackAndDoesNotGrowWhileAnswersQueue) {
    // 5,000 calls/s of 2 ms need 10 in flight (15 with the headroom): 32 never bind.
    InFlightTarget fast(32, 4096);
    auto now = Clock::time_point{} + std::chrono::hours(1);
    fast.update(now);
    for (int w = 0; w < 20; ++w) {
        for (int i = 0; i < 500; ++i) fast.answered(milliseconds(2));
        now += InFlightTarget::kWindow;
        fast.update(now);
    }
    EXPECT_EQ(fast.current(), 32) << "never below max_in_flight";
    InFlightTarget slowing(8, 4096);
    slowing.update(now);
    run_windows(slowing, now, milliseconds(50), 5);
    const int grown = slowing.current();
    // Every extra call now only waits longer: the answer time doubles and more.
    for (int w = 0; w < 10; ++w) {
        for (int i = 0; i < grown; ++i) slowing.answered(milliseconds(400));
        now += InFlightTarget::kWindow;
        slowing.update(now);
    }
    EXPECT_LE(slowing.current(), grown) << "no growth while the CRM queues";
}

TEST(InFlightTarget, AFixedCapNeverMovesAndNewBoundsClampIt) {
    InFlightTarget fixed(4, 4);
    auto now = Clock::time_point{} + std::chrono::hours(1);
    fixed.update(now);
    EXPECT_EQ(run_windows(fixed, now, milliseconds(150), 20), 4);
    InFlightTarget t(8, 4096);
    t.update(now);
    run_windows(t, now, milliseconds(150), 20);
    t.set_bounds(8, 100);
    EXPECT_EQ(t.current(), 100);
    t.set_bounds(200, 300);
    EXPECT_EQ(t.current(), 200);
}

}  // namespace
