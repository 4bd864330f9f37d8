// TokenBucket with explicit time points only: nothing here reads the clock.
#include "ratelimit/token_bucket.hpp"
#include "unit/test_support.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>

namespace {

using namespace std::chrono_literals;
using recsync::ratelimit::TokenBucket;
using recsync::testing::drain;
using recsync::util::SteadyClock;
using recsync::util::TimePoint;

const TimePoint t0 = TimePoint{} + 1h;

// |a - b| <= 1 microsecond: wait_time goes through double seconds.
::testing::AssertionResult near(SteadyClock::duration a, SteadyClock::duration b) {
    const auto diff = a > b ? a - b : b - a;
    if (diff <= std::chrono::duration_cast<SteadyClock::duration>(1us)) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << std::chrono::duration_cast<std::chrono::nanoseconds>(a).count() << "ns vs "
                                         << std::chrono::duration_cast<std::chrono::nanoseconds>(b).count() << "ns";
}

TEST(TokenBucket, StartsFullThenEmptiesAfterBurst) {
    TokenBucket b(4, 3, t0);
    EXPECT_DOUBLE_EQ(b.rate(), 4);
    EXPECT_DOUBLE_EQ(b.burst(), 3);
    EXPECT_TRUE(b.try_acquire(t0));
    EXPECT_TRUE(b.try_acquire(t0));
    EXPECT_TRUE(b.try_acquire(t0));
    EXPECT_FALSE(b.try_acquire(t0));
    EXPECT_FALSE(b.try_acquire(t0));
}

TEST(TokenBucket, RefillsAtRate) {
    TokenBucket b(4, 3, t0);  // one token every 250 ms
    ASSERT_EQ(drain(b, t0), 3);
    EXPECT_FALSE(b.try_acquire(t0 + 249ms));  // 0.996 tokens
    EXPECT_TRUE(b.try_acquire(t0 + 251ms));   // 1.004
    EXPECT_FALSE(b.try_acquire(t0 + 251ms));
    EXPECT_EQ(drain(b, t0 + 752ms), 2);  // two more periods
    EXPECT_EQ(drain(b, t0 + 1003ms), 1);
    EXPECT_EQ(drain(b, t0 + 1004ms), 0);
}

TEST(TokenBucket, RefillIsCappedAtBurst) {
    TokenBucket b(4, 3, t0);
    ASSERT_EQ(drain(b, t0), 3);
    EXPECT_EQ(drain(b, t0 + 1h), 3);  // an hour idle still gives only `burst`
    EXPECT_EQ(drain(b, t0 + 1h + 500ms), 2);
}

TEST(TokenBucket, SustainedRateOverManySteps) {
    TokenBucket b(8, 1, t0);
    int got = 0;
    // Steps of 1/64 s (exact in binary): 0.125 tokens each, 640 steps = 10 s.
    for (int step = 0; step <= 640; ++step) got += drain(b, t0 + std::chrono::microseconds(15'625 * step));
    EXPECT_EQ(got, 81);  // 1 initial + 8/s for 10 s
}

TEST(TokenBucket, BurstDefaultsToRateAndIsAtLeastOne) {
    TokenBucket a(5, 0, t0);
    EXPECT_DOUBLE_EQ(a.burst(), 5);
    EXPECT_EQ(drain(a, t0), 5);
    TokenBucket slow(0.5, 0, t0);
    EXPECT_DOUBLE_EQ(slow.burst(), 1);
    EXPECT_EQ(drain(slow, t0), 1);
    EXPECT_FALSE(slow.try_acquire(t0 + 1999ms));
    EXPECT_TRUE(slow.try_acquire(t0 + 2001ms));
    TokenBucket tiny(10, 0.25, t0);
    EXPECT_DOUBLE_EQ(tiny.burst(), 1);
}

TEST(TokenBucket, WaitTime) {
    TokenBucket b(4, 2, t0);
    EXPECT_EQ(b.wait_time(t0), SteadyClock::duration::zero());
    ASSERT_EQ(drain(b, t0), 2);
    EXPECT_TRUE(near(b.wait_time(t0), 250ms));
    EXPECT_TRUE(near(b.wait_time(t0 + 125ms), 125ms));  // half a token there
    EXPECT_EQ(b.wait_time(t0 + 250ms), SteadyClock::duration::zero());
    EXPECT_TRUE(b.try_acquire(t0 + 250ms));
    EXPECT_TRUE(near(b.wait_time(t0 + 250ms), 250ms));
    // wait_time is a promise: after waiting that long, acquire succeeds.
    const auto w = b.wait_time(t0 + 300ms);
    EXPECT_TRUE(near(w, 200ms));
    EXPECT_TRUE(b.try_acquire(t0 + 300ms + w + 1us));
}

TEST(TokenBucket, TimeGoingBackwardsAddsNothing) {
    TokenBucket b(4, 2, t0);
    ASSERT_EQ(drain(b, t0 + 10s), 2);
    EXPECT_FALSE(b.try_acquire(t0));
    EXPECT_FALSE(b.try_acquire(t0 + 5s));
    EXPECT_FALSE(b.try_acquire(t0 + 10s + 249ms));
    EXPECT_TRUE(b.try_acquire(t0 + 10s + 251ms));
}

TEST(TokenBucket, UnlimitedAlwaysGrants) {
    for (double rate : {0.0, -1.0}) {
        TokenBucket b(rate, 0, t0);
        EXPECT_EQ(drain(b, t0, 100'000), 100'000) << rate;
        EXPECT_EQ(b.wait_time(t0), SteadyClock::duration::zero());
        EXPECT_FALSE(b.paused(t0));
    }
}

TEST(TokenBucket, PauseBlocksUntilThenRestartsEmpty) {
    TokenBucket b(4, 3, t0);  // full: 3 tokens
    b.pause_until(t0 + 2s);
    EXPECT_TRUE(b.paused(t0));
    EXPECT_EQ(b.paused_until(), t0 + 2s);
    EXPECT_FALSE(b.try_acquire(t0));  // tokens in hand do not help
    EXPECT_FALSE(b.try_acquire(t0 + 1999ms));
    EXPECT_TRUE(near(b.wait_time(t0 + 500ms), 1500ms));
    EXPECT_TRUE(b.paused(t0 + 1999ms));
    EXPECT_FALSE(b.paused(t0 + 2s));
    // Restarts empty: no burst at the moment the pause ends.
    EXPECT_FALSE(b.try_acquire(t0 + 2s));
    EXPECT_TRUE(near(b.wait_time(t0 + 2s), 250ms));
    EXPECT_TRUE(b.try_acquire(t0 + 2s + 250ms));
    EXPECT_FALSE(b.try_acquire(t0 + 2s + 250ms));
    // Refill counts from the end of the pause, not from its start.
    EXPECT_EQ(drain(b, t0 + 2s + 750ms), 2);
}

TEST(TokenBucket, LongerPauseWinsShorterIsIgnored) {
    TokenBucket b(4, 3, t0);
    b.pause_until(t0 + 5s);
    b.pause_until(t0 + 1s);  // earlier: ignored
    EXPECT_EQ(b.paused_until(), t0 + 5s);
    EXPECT_FALSE(b.try_acquire(t0 + 3s));
    b.pause_until(t0 + 8s);
    EXPECT_EQ(b.paused_until(), t0 + 8s);
    EXPECT_FALSE(b.try_acquire(t0 + 7s));
    EXPECT_FALSE(b.try_acquire(t0 + 8s));
    EXPECT_TRUE(b.try_acquire(t0 + 8s + 250ms));
}

TEST(TokenBucket, PauseAppliesToUnlimitedBuckets) {
    TokenBucket b(0, 0, t0);
    b.pause_until(t0 + 1s);
    EXPECT_FALSE(b.try_acquire(t0 + 999ms));
    EXPECT_EQ(b.wait_time(t0 + 400ms), std::chrono::duration_cast<SteadyClock::duration>(600ms));
    EXPECT_TRUE(b.try_acquire(t0 + 1s));
    EXPECT_EQ(b.wait_time(t0 + 1s), SteadyClock::duration::zero());
}

}  // namespace

namespace {

// available(): what a lane asks before holding a part-full batch (fewer than two: scarce).
TEST(TokenBucket, AvailableCountsStoredTokensRefilledAndNoneWhilePaused) {
    TokenBucket b(10, 2, t0);
    EXPECT_DOUBLE_EQ(b.available(t0), 2);
    ASSERT_TRUE(b.try_acquire(t0));
    EXPECT_DOUBLE_EQ(b.available(t0), 1);
    EXPECT_NEAR(b.available(t0 + 50ms), 1.5, 1e-9);
    EXPECT_DOUBLE_EQ(b.available(t0 + 10s), 2) << "capped at the burst";
    b.pause_until(t0 + 20s);
    EXPECT_DOUBLE_EQ(b.available(t0 + 15s), 0);
    EXPECT_TRUE(std::isinf(TokenBucket(0, 0, t0).available(t0))) << "unlimited";
}

}  // namespace
