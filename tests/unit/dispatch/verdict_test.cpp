// decide: what becomes of a task after a verdict under the connection's retry policy.
#include "dispatch/verdict.hpp"

#include <gtest/gtest.h>

namespace {

using recsync::dispatch::decide;
using recsync::dispatch::Fate;
using recsync::dispatch::Verdict;

Verdict verdict(recsync_result_kind kind, int status, int64_t retry_after_ms = 0) {
    Verdict v;
    v.kind = kind;
    v.status = status;
    v.retry_after_ms = retry_after_ms;
    v.reason = "HTTP " + std::to_string(status);
    return v;
}

recsync::config::RetryConfig policy(int max_attempts = 3, int64_t max_age_ms = 0) {
    recsync::config::RetryConfig r;
    r.max_attempts = max_attempts;
    r.base_delay_ms = 100;
    r.max_delay_ms = 1000;
    r.max_age_ms = max_age_ms;
    r.max_age_text = "1m";
    return r;
}

TEST(Decide, SuccessIsDone) {
    std::mt19937_64 rng(1);
    EXPECT_EQ(decide({}, verdict(RECSYNC_RESULT_OK, 200), policy(), "crm", 0, rng).kind, Fate::Kind::Done);
}

TEST(Decide, APermanentFailureIsADeadLetterWithItsReason) {
    std::mt19937_64 rng(1);
    const auto f = decide({}, verdict(RECSYNC_RESULT_FAIL, 400), policy(), "crm", 0, rng);
    EXPECT_EQ(f.kind, Fate::Kind::Dead);
    EXPECT_EQ(f.reason, "HTTP 400");
}

TEST(Decide, TransientFailuresRetryUntilMaxAttempts) {
    std::mt19937_64 rng(1);
    recsync::model::Task t;
    for (int attempts = 0; attempts < 2; ++attempts) {
        t.attempts = attempts;
        const auto f = decide(t, verdict(RECSYNC_RESULT_RETRY, 503), policy(3), "crm", 0, rng);
        EXPECT_EQ(f.kind, Fate::Kind::Retry) << attempts;
        EXPECT_EQ(f.attempts, attempts + 1);
        EXPECT_LE(f.delay_ms, 1000);
    }
    t.attempts = 2;
    const auto f = decide(t, verdict(RECSYNC_RESULT_RETRY, 503), policy(3), "crm", 0, rng);
    EXPECT_EQ(f.kind, Fate::Kind::Dead);
    EXPECT_EQ(f.reason, "gave up after 3 attempts; last: HTTP 503");
}

TEST(Decide, AThrottleUsesNoAttemptAndWaitsAtLeastRetryAfter) {
    std::mt19937_64 rng(1);
    recsync::model::Task t;
    t.attempts = 2;
    for (const int status : {429, 503}) {
        const auto f = decide(t, verdict(RECSYNC_RESULT_RETRY, status, 5000), policy(3), "crm", 0, rng);
        EXPECT_EQ(f.kind, Fate::Kind::Retry) << status;
        EXPECT_EQ(f.attempts, 2) << status;
        EXPECT_GE(f.delay_ms, 5000) << status;
    }
    // A 503 without Retry-After is an ordinary transient failure.
    EXPECT_EQ(decide(t, verdict(RECSYNC_RESULT_RETRY, 503), policy(3), "crm", 0, rng).kind, Fate::Kind::Dead);
}

TEST(Decide, ARetryPastMaxAgeIsADeadLetterNamingIt) {
    std::mt19937_64 rng(1);
    recsync::model::Task t;
    t.created_ms = 1'000'000;
    const auto f = decide(t, verdict(RECSYNC_RESULT_RETRY, 429, 120'000), policy(100, 60'000), "crm", 1'000'000, rng);
    EXPECT_EQ(f.kind, Fate::Kind::Dead);
    EXPECT_NE(f.reason.find("retry.max_age (1m) at connection 'crm'"), std::string::npos) << f.reason;
}

}  // namespace
