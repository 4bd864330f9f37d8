// ServerQuota (what the server says remains) and ReportCapture (the host side of
// host_api.set_rate_limit), with explicit time points only: nothing here reads the clock.
#include "ratelimit/report_capture.hpp"
#include "ratelimit/server_quota.hpp"
#include "unit/test_support.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace {

using namespace std::chrono_literals;
using recsync::ratelimit::ReportCapture;
using recsync::ratelimit::ServerQuota;
using recsync::ratelimit::ServerReport;
using recsync::testing::drain;
using recsync::util::TimePoint;

const TimePoint t0 = TimePoint{} + 1h;

TEST(ServerQuota, WithoutReportsNothingIsLimited) {
    ServerQuota q;
    EXPECT_EQ(drain(q, t0, 500), 500);
    EXPECT_EQ(q.blocked_until(t0), t0);
    EXPECT_EQ(q.remaining(t0), -1);
}

TEST(ServerQuota, NeverSendsMoreThanRemainsMinusCallsInFlight) {
    ServerQuota q;
    q.report({100, 10, 10'000, 0}, /*unanswered=*/3, t0);
    EXPECT_EQ(q.remaining(t0), 7);
    EXPECT_EQ(drain(q, t0), 7);
    // Used up: paused a full window from then, then free again.
    EXPECT_EQ(q.blocked_until(t0 + 1ms), t0 + 10s);
    EXPECT_FALSE(q.try_acquire(t0 + 9999ms));
    EXPECT_TRUE(q.try_acquire(t0 + 10s));
}

TEST(ServerQuota, RemainingZeroPausesUntilTheWindowResets) {
    ServerQuota q;
    q.report({10, 0, 1000, 0}, 0, t0);
    EXPECT_FALSE(q.try_acquire(t0));
    EXPECT_EQ(q.blocked_until(t0), t0 + 1s);
    // A later "still nothing" moves the end: a rolling window frees up a full length later.
    q.report({10, 0, 1000, 0}, 0, t0 + 400ms);
    EXPECT_EQ(q.blocked_until(t0 + 400ms), t0 + 1400ms);
    EXPECT_FALSE(q.try_acquire(t0 + 1399ms));
    EXPECT_TRUE(q.try_acquire(t0 + 1400ms));
}

TEST(ServerQuota, AnExplicitResetTimeWins) {
    ServerQuota q;
    q.report({0, 0, 60'000, 250}, 0, t0);
    EXPECT_EQ(q.blocked_until(t0), t0 + 250ms);
    EXPECT_TRUE(q.try_acquire(t0 + 250ms));
    // Used up by our calls, a window with a known reset time still ends then.
    ServerQuota r;
    r.report({0, 1, 0, 300}, 0, t0);
    EXPECT_TRUE(r.try_acquire(t0 + 100ms));
    EXPECT_EQ(r.blocked_until(t0 + 100ms), t0 + 300ms);
}

// Responses overtake each other: an older, higher count must not give back what a newer
// one took; and within a window the end does not move while something remains.
TEST(ServerQuota, WithinAWindowTheAllowanceOnlyGoesDown) {
    ServerQuota q;
    q.report({100, 5, 10'000, 0}, 0, t0);
    q.report({100, 50, 10'000, 0}, 0, t0 + 1s);
    EXPECT_EQ(q.remaining(t0 + 1s), 5);
    q.report({100, 2, 10'000, 0}, 0, t0 + 2s);
    EXPECT_EQ(q.remaining(t0 + 2s), 2);
    EXPECT_EQ(drain(q, t0 + 2s), 2);
    // Used up by our own calls at t0 + 2 s: a full window from then.
    EXPECT_EQ(q.blocked_until(t0 + 2s), t0 + 12s);
    q.report({100, 0, 10'000, 0}, 0, t0 + 3s);
    EXPECT_EQ(q.blocked_until(t0 + 3s), t0 + 13s);
    // A new window takes the server's count as it is.
    q.report({100, 80, 10'000, 0}, 0, t0 + 13s);
    EXPECT_EQ(q.remaining(t0 + 13s), 80);
}

TEST(ServerQuota, EveryReportedWindowMustAllowTheCall) {
    ServerQuota q;
    q.report({190, 100, 10'000, 0}, 0, t0);  // HubSpot's rolling ten seconds ...
    q.report({19, 3, 1000, 0}, 0, t0);       // ... and its second
    EXPECT_EQ(q.remaining(t0), 3);
    EXPECT_EQ(drain(q, t0), 3);
    EXPECT_EQ(q.blocked_until(t0), t0 + 1s);
    // The secondly window reopens; the ten-second one was charged for those three too.
    q.report({19, 19, 1000, 0}, 0, t0 + 1s);
    EXPECT_EQ(q.remaining(t0 + 1s), 19);
    EXPECT_EQ(drain(q, t0 + 1s), 19);
    EXPECT_EQ(q.remaining(t0 + 1s), 0);
}

TEST(ServerQuota, ReportsThatCannotSayWhenItResetsAreIgnored) {
    ServerQuota q;
    q.report({10, 0, 0, 0}, 0, t0);
    q.report({10, 0, -5, -5}, 0, t0);
    EXPECT_TRUE(q.try_acquire(t0));
    EXPECT_EQ(q.remaining(t0), -1);
    // Negative counts are nothing left, not a huge allowance.
    q.report({10, -3, 1000, 0}, 0, t0);
    EXPECT_FALSE(q.try_acquire(t0));
}

TEST(ReportCapture, CollectsOnItsThreadOnly) {
    using recsync::ratelimit::host_set_rate_limit;
    host_set_rate_limit(nullptr, 1, 2, 3, 4);  // no capture open: dropped, no crash
    ReportCapture capture;
    host_set_rate_limit(nullptr, 100, 42, 10'000, 0);
    std::thread([] { host_set_rate_limit(nullptr, 9, 9, 9, 9); }).join();  // another thread: not ours
    {
        ReportCapture inner;  // nested: the innermost collects
        host_set_rate_limit(nullptr, 19, 3, 1000, 0);
        const auto got = inner.take();
        ASSERT_EQ(got.size(), 1u);
        EXPECT_EQ(got[0].remaining, 3);
    }
    const auto got = capture.take();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].limit, 100);
    EXPECT_EQ(got[0].remaining, 42);
    EXPECT_EQ(got[0].window_ms, 10'000);
    EXPECT_EQ(got[0].reset_after_ms, 0);
    EXPECT_TRUE(capture.take().empty());
}

}  // namespace
