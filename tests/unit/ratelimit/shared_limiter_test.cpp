// SharedTokens, the lane's side of a shared limit, without a backend: what it asks for,
// how long leased tokens last, and the share it falls back to.
#include "ratelimit/shared_limiter.hpp"

#include <gtest/gtest.h>

using recsync::ratelimit::SharedTokens;
using namespace std::chrono_literals;

namespace {

struct Tokens {
    int wakes = 0;
    SharedTokens t{"crm", 100, 20, 2, [this] { ++wakes; }};
    // The lane wanted tokens, asked, and the backend granted `n` (two instances seen).
    void lease(int n, recsync::util::TimePoint now) {
        t.available(now);
        t.request(now);
        t.granted(n, 0, 2, now);
    }
};

TEST(SharedTokens, AsksForALeaseOfItsShareOnlyWhenTheLaneWantsTokens) {
    Tokens s;
    const auto now = recsync::util::SteadyClock::now();
    EXPECT_FALSE(s.t.request(now)) << "an idle lane leases nothing";
    EXPECT_FALSE(s.t.available(now));
    EXPECT_EQ(s.wakes, 1);
    auto r = s.t.request(now);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->want, 10) << "0.2 s of 100/s shared by fallback_instances 2";
    EXPECT_FALSE(s.t.request(now)) << "one request at a time";
    s.t.granted(10, 0, 4, now);
    EXPECT_TRUE(s.t.available(now));
    for (int i = 0; i < 10; ++i) {
        ASSERT_TRUE(s.t.available(now));
        s.t.take(now);
    }
    EXPECT_FALSE(s.t.available(now));
    r = s.t.request(now);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->want, 5) << "four instances seen: 0.2 s of 25/s";
}

TEST(SharedTokens, LeasedTokensExpireUnused) {
    Tokens s;
    const auto now = recsync::util::SteadyClock::now();
    s.lease(10, now);
    EXPECT_TRUE(s.t.available(now + 900ms));
    EXPECT_FALSE(s.t.available(now + SharedTokens::kLeaseLife)) << "a lease held back past its life";
    EXPECT_EQ(s.t.status(now + SharedTokens::kLeaseLife).stock, 0);
}

TEST(SharedTokens, APartLeaseWaitsBeforeAskingAgain) {
    Tokens s;
    const auto now = recsync::util::SteadyClock::now();
    s.t.available(now);
    s.t.request(now);
    s.t.granted(1, 0, 2, now);  // 1 of 10: the others took the rest
    s.t.take(now);
    EXPECT_FALSE(s.t.available(now));
    EXPECT_FALSE(s.t.request(now + 10ms)) << "asked again at once for a token or two";
    EXPECT_GT(s.t.next_try(now), now + 10ms);
    EXPECT_TRUE(s.t.request(now + 200ms));
}

TEST(SharedTokens, UnreachableFallsBackToTheShareOfTheInstancesSeen) {
    Tokens s;
    auto now = recsync::util::SteadyClock::now();
    s.t.available(now);
    s.t.request(now);
    s.t.granted(0, 0, 4, now);  // four instances seen
    s.t.unreachable(now);
    EXPECT_TRUE(s.t.status(now).fallback);
    // 25/s from a bucket of burst 1, emptied at the switch: 25 tokens in a second, not 100.
    int taken = 0;
    for (int ms = 1; ms <= 1000; ++ms) {
        const auto t = now + std::chrono::milliseconds(ms);
        if (s.t.available(t)) {
            s.t.take(t);
            ++taken;
        }
    }
    EXPECT_GE(taken, 24);
    EXPECT_LE(taken, 26);
    // An answer again: the shared tokens, no fallback.
    now += 1s;
    s.t.granted(5, 0, 4, now);
    EXPECT_FALSE(s.t.status(now).fallback);
}

TEST(SharedTokens, APauseIsSentAndDropsWhatIsLeased) {
    Tokens s;
    const auto now = recsync::util::SteadyClock::now();
    s.lease(10, now);
    s.t.pause_all(1500);
    EXPECT_FALSE(s.t.available(now));
    const auto r = s.t.request(now);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->pause_ms, 1500);
}

}  // namespace
