// SharedTokens, the lane's side of a shared limit, without a backend: what it asks for,
// how long leased tokens last, the share it falls back to, and the server's limit it
// passes on.
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
        t.granted(n, 0, 2, 100, now);
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
    s.t.granted(10, 0, 4, 100, now);
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
    s.t.granted(1, 0, 2, 100, now);  // 1 of 10: the others took the rest
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
    s.t.granted(0, 0, 4, 100, now);  // four instances seen
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
    s.t.granted(5, 0, 4, 100, now);
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

// A server's counted windows go out with the next request as the strictest rate and
// burst (190 per 10 s and 19 per second: 19/s, burst 19), once, then again only when they
// change or kServerLimitResend has passed; they lapse kServerLimitLife after the last
// report.
TEST(SharedTokens, TheServersLimitIsSentWithTheNextRequest) {
    Tokens s;
    const auto now = recsync::util::SteadyClock::now();
    s.t.server_limit(190, 10000, now);
    s.t.server_limit(19, 1000, now);
    s.t.server_limit(0, 1000, now);  // no limit known: nothing to say
    s.t.server_limit(10, 3600000, now);  // an hourly quota is not spread as a rate
    EXPECT_GE(s.wakes, 1) << "the backend's thread was not told";
    EXPECT_EQ(s.t.next_request(now), now);
    auto r = s.t.request(now);
    ASSERT_TRUE(r) << "a server limit to share is a request even without tokens wanted";
    EXPECT_EQ(r->want, 0);
    EXPECT_DOUBLE_EQ(r->server_rate, 19.0);
    EXPECT_DOUBLE_EQ(r->server_burst, 19.0);
    s.t.granted(0, 0, 2, 19, now);
    s.t.server_limit(19, 1000, now + 1s);
    EXPECT_FALSE(s.t.request(now + 1s)) << "the same limit sent again at once";
    s.t.server_limit(50, 1000, now + 2s);  // the 1 s window grew: the 10 s one is stricter now
    r = s.t.request(now + 2s);
    ASSERT_TRUE(r);
    EXPECT_DOUBLE_EQ(r->server_rate, 19.0);
    EXPECT_DOUBLE_EQ(r->server_burst, 50.0);
    s.t.granted(0, 0, 2, 19, now + 2s);
    r = s.t.request(now + 2s + SharedTokens::kServerLimitResend);
    ASSERT_TRUE(r) << "not said again after kServerLimitResend";
    EXPECT_DOUBLE_EQ(r->server_rate, 19.0);
    s.t.granted(0, 0, 2, 19, now + 2s + SharedTokens::kServerLimitResend);
    EXPECT_FALSE(s.t.request(now + 2s + SharedTokens::kServerLimitLife)) << "a lapsed report was sent";
}

// The bucket's rate Redis answers with (capped by a server's limit) sizes the leases and
// the fallback share: 20/s over two instances is 10/s each, 2 tokens per lease, not 10.
TEST(SharedTokens, ACappedBucketSizesLeasesAndTheFallbackShare) {
    Tokens s;
    auto now = recsync::util::SteadyClock::now();
    s.t.available(now);
    s.t.request(now);
    s.t.granted(0, 0, 2, 20, now);
    EXPECT_DOUBLE_EQ(s.t.status(now).bucket_rate, 20.0);
    auto r = s.t.request(now + 1s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->want, 2);
    s.t.unreachable(now + 1s);
    now += 1s;
    int taken = 0;
    for (int ms = 1; ms <= 1000; ++ms) {
        const auto t = now + std::chrono::milliseconds(ms);
        if (s.t.available(t)) {
            s.t.take(t);
            ++taken;
        }
    }
    EXPECT_GE(taken, 9);
    EXPECT_LE(taken, 11) << "the fallback share ignored the capped rate";
}

}  // namespace
