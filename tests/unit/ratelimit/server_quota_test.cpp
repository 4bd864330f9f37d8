// ServerQuota (what the server says remains), with explicit time points only: nothing
// here reads the clock.
#include "ratelimit/server_quota.hpp"
#include "unit/test_support.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace {

using namespace std::chrono_literals;
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
    EXPECT_EQ(drain(q, t0, 3), 3);  // three calls in flight, perhaps not counted yet
    q.report({100, 10, 10'000, 0}, t0);
    EXPECT_EQ(q.remaining(t0), 7);
    EXPECT_EQ(drain(q, t0), 7);
    // Used up by calls the server counted before it knew of ours: they hold their places
    // for a full window from the report, then everything is free again.
    EXPECT_EQ(q.blocked_until(t0 + 1ms), t0 + 10s);
    EXPECT_FALSE(q.try_acquire(t0 + 9999ms));
    EXPECT_TRUE(q.try_acquire(t0 + 10s));
}

TEST(ServerQuota, RemainingZeroPausesUntilTheWindowResets) {
    ServerQuota q;
    q.report({10, 0, 1000, 0}, t0);
    EXPECT_FALSE(q.try_acquire(t0));
    EXPECT_EQ(q.blocked_until(t0), t0 + 1s);
    // A later "still nothing" moves the end: a rolling window frees up a full length later.
    q.report({10, 0, 1000, 0}, t0 + 400ms);
    EXPECT_EQ(q.blocked_until(t0 + 400ms), t0 + 1400ms);
    EXPECT_FALSE(q.try_acquire(t0 + 1399ms));
    EXPECT_TRUE(q.try_acquire(t0 + 1400ms));
}

// A counted window filled by our own calls: each place frees one length after its call's
// answer, not a whole length after the window filled up.
TEST(ServerQuota, OurCallsFreeTheirPlacesOneLengthAfterTheirAnswers) {
    ServerQuota q;
    q.report({10, 10, 1000, 0}, t0);
    EXPECT_EQ(drain(q, t0), 10);
    EXPECT_EQ(q.blocked_until(t0), TimePoint::max()) << "nothing answered yet: only an answer can free a place";
    for (int i = 0; i < 4; ++i) q.call_ended(t0 + 100ms);
    for (int i = 0; i < 6; ++i) q.call_ended(t0 + 300ms);
    q.report({10, 0, 1000, 0}, t0 + 300ms);  // the server counts all ten
    EXPECT_EQ(q.blocked_until(t0 + 300ms), t0 + 1100ms);
    EXPECT_FALSE(q.try_acquire(t0 + 1099ms));
    EXPECT_EQ(q.remaining(t0 + 1100ms), 4);
    EXPECT_EQ(drain(q, t0 + 1100ms), 4);
    EXPECT_EQ(q.blocked_until(t0 + 1100ms), t0 + 1300ms);
    EXPECT_EQ(drain(q, t0 + 1300ms), 6);
    // A place is held from the moment the call is let through, so a report that does not
    // count them yet (sent before they arrived) lets nothing more through.
    q.report({10, 10, 1000, 0}, t0 + 1300ms);
    EXPECT_FALSE(q.try_acquire(t0 + 1300ms));
}

// Used partly by someone else: those places free a length after the report says so, ours
// a length after our answers, whichever gives the lane a place first.
TEST(ServerQuota, ForeignCallsHoldTheirPlacesOneLengthAfterTheReport) {
    ServerQuota q;
    q.report({10, 10, 1000, 0}, t0);
    EXPECT_EQ(drain(q, t0, 2), 2);
    q.call_ended(t0 + 10ms);
    q.call_ended(t0 + 20ms);
    q.report({10, 0, 1000, 0}, t0 + 500ms);  // 2 of ours, 8 of others'
    EXPECT_EQ(q.remaining(t0 + 500ms), 0);
    EXPECT_EQ(q.blocked_until(t0 + 500ms), t0 + 1010ms);  // our first call is out of the window first
    EXPECT_TRUE(q.try_acquire(t0 + 1010ms));
    EXPECT_FALSE(q.try_acquire(t0 + 1010ms));
    EXPECT_TRUE(q.try_acquire(t0 + 1020ms));
    // Now the lane needs a place its own calls cannot give: the others' end at t0 + 1.5 s.
    EXPECT_EQ(q.blocked_until(t0 + 1020ms), t0 + 1500ms);
    EXPECT_EQ(drain(q, t0 + 1500ms), 8);
}

// Reports applied at one instant (one poll's answers) are in no particular order: the most
// used-up one is the newest. A later report is the server's newer word.
TEST(ServerQuota, AtOneInstantTheMostUsedUpReportCounts) {
    ServerQuota q;
    q.report({100, 20, 10'000, 0}, t0);
    q.report({100, 50, 10'000, 0}, t0);
    EXPECT_EQ(q.remaining(t0), 20);
    q.report({100, 50, 10'000, 0}, t0 + 1s);
    EXPECT_EQ(q.remaining(t0 + 1s), 50);
}

TEST(ServerQuota, AnExplicitResetTimeWins) {
    ServerQuota q;
    q.report({0, 0, 60'000, 250}, t0);
    EXPECT_EQ(q.blocked_until(t0), t0 + 250ms);
    EXPECT_TRUE(q.try_acquire(t0 + 250ms));
    // Used up by our calls, a window with a known reset time still ends then.
    ServerQuota r;
    r.report({0, 1, 0, 300}, t0);
    EXPECT_TRUE(r.try_acquire(t0 + 100ms));
    EXPECT_EQ(r.blocked_until(t0 + 100ms), t0 + 300ms);
    // With a limit too, the reset time still decides.
    ServerQuota s;
    s.report({100, 1, 60'000, 300}, t0);
    EXPECT_TRUE(s.try_acquire(t0));
    s.call_ended(t0);
    EXPECT_EQ(s.blocked_until(t0), t0 + 300ms);
}

// Without a limit the calls cannot be counted against it: responses overtake each other,
// so an older, higher count must not give back what a newer one took, and within a window
// the end does not move while something remains.
TEST(ServerQuota, WithoutALimitTheAllowanceOnlyGoesDownWithinAWindow) {
    ServerQuota q;
    q.report({0, 5, 10'000, 0}, t0);
    q.report({0, 50, 10'000, 0}, t0 + 1s);
    EXPECT_EQ(q.remaining(t0 + 1s), 5);
    q.report({0, 2, 10'000, 0}, t0 + 2s);
    EXPECT_EQ(q.remaining(t0 + 2s), 2);
    EXPECT_EQ(drain(q, t0 + 2s), 2);
    // Used up by our own calls at t0 + 2 s: a full window from then.
    EXPECT_EQ(q.blocked_until(t0 + 2s), t0 + 12s);
    q.call_ended(t0 + 2s);
    q.call_ended(t0 + 2s);
    q.report({0, 0, 10'000, 0}, t0 + 3s);
    EXPECT_EQ(q.blocked_until(t0 + 3s), t0 + 13s);
    // A new window takes the server's count as it is.
    q.report({0, 80, 10'000, 0}, t0 + 13s);
    EXPECT_EQ(q.remaining(t0 + 13s), 80);
}

TEST(ServerQuota, EveryReportedWindowMustAllowTheCall) {
    ServerQuota q;
    q.report({190, 100, 10'000, 0}, t0);  // HubSpot's rolling ten seconds ...
    q.report({19, 3, 1000, 0}, t0);       // ... and its second
    EXPECT_EQ(q.remaining(t0), 3);
    EXPECT_EQ(drain(q, t0), 3);
    EXPECT_EQ(q.blocked_until(t0), t0 + 1s);
    for (int i = 0; i < 3; ++i) q.call_ended(t0 + 10ms);
    // The second is over; our three calls still hold their places in both windows.
    q.report({19, 19, 1000, 0}, t0 + 1s);
    EXPECT_EQ(q.remaining(t0 + 1s), 16);
    EXPECT_EQ(q.remaining(t0 + 1010ms), 19);
    EXPECT_EQ(drain(q, t0 + 1010ms), 19);
    EXPECT_EQ(q.remaining(t0 + 1010ms), 0);
    for (int i = 0; i < 19; ++i) q.call_ended(t0 + 1500ms);
    q.report({19, 19, 1000, 0}, t0 + 3s);
    EXPECT_EQ(q.remaining(t0 + 3s), 19);
    // Idle, the second still caps a burst at 19, though the ten seconds would allow 78
    // (190 - 90 others' - 22 ours) ...
    EXPECT_EQ(drain(q, t0 + 5s), 19);
    for (int i = 0; i < 19; ++i) q.call_ended(t0 + 5s);
    EXPECT_EQ(q.remaining(t0 + 5s), 0);
}

// A window that went quiet keeps its limit: the next burst comes before any answer can
// bring a report, and must not be let through whole.
TEST(ServerQuota, AQuietCountedWindowStillCapsTheNextBurst) {
    ServerQuota q;
    q.report({10, 10, 1000, 0}, t0);
    EXPECT_EQ(drain(q, t0), 10);
    for (int i = 0; i < 10; ++i) q.call_ended(t0 + 10ms);
    EXPECT_EQ(q.remaining(t0 + 1h), 10);
    EXPECT_EQ(drain(q, t0 + 1h), 10);
}

// A call that never went out (nothing to act on, the plugin refused to build it) gives its
// place back at once; one that went out holds it a length after its end.
TEST(ServerQuota, ACallThatNeverWentOutHoldsNoPlace) {
    ServerQuota q;
    q.report({10, 10, 1000, 0}, t0);
    EXPECT_EQ(drain(q, t0), 10);
    for (int i = 0; i < 4; ++i) q.call_cancelled();
    for (int i = 0; i < 6; ++i) q.call_ended(t0);
    EXPECT_EQ(drain(q, t0), 4);
    EXPECT_EQ(q.blocked_until(t0), t0 + 1s);
}

// A response without the limit turns the window into one that cannot be counted; when the
// limit comes back, our calls answered meanwhile still hold their places, so a stale
// report cannot pass them off as free.
TEST(ServerQuota, ALimitThatComesAndGoesKeepsOurCallsCounted) {
    ServerQuota q;
    q.report({10, 10, 1000, 0}, t0);
    EXPECT_EQ(drain(q, t0), 10);
    for (int i = 0; i < 10; ++i) q.call_ended(t0 + 10ms);
    q.report({0, 0, 1000, 0}, t0 + 20ms);  // no limit this time
    q.report({10, 9, 1000, 0}, t0 + 30ms);  // an answer that was overtaken: only one counted
    EXPECT_FALSE(q.try_acquire(t0 + 30ms));
    EXPECT_EQ(q.blocked_until(t0 + 30ms), t0 + 1010ms);
    EXPECT_EQ(drain(q, t0 + 1010ms), 10);
}

TEST(ServerQuota, WindowsLongerThanAYearAreAYear) {
    ServerQuota q;
    q.report({0, 0, INT64_MAX, 0}, t0);
    const auto until = q.blocked_until(t0);
    EXPECT_GT(until, t0 + 365 * 24h);
    EXPECT_LE(until, t0 + 366 * 24h);
}

TEST(ServerQuota, ReportsThatCannotSayWhenItResetsAreIgnored) {
    ServerQuota q;
    q.report({10, 0, 0, 0}, t0);
    q.report({10, 0, -5, -5}, t0);
    EXPECT_TRUE(q.try_acquire(t0));
    EXPECT_EQ(q.remaining(t0), -1);
    // Negative counts are nothing left, not a huge allowance.
    q.report({10, -3, 1000, 0}, t0);
    EXPECT_FALSE(q.try_acquire(t0));
}

}  // namespace
