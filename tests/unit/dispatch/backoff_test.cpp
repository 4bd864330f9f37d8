// Exponential backoff with full jitter: bounds, growth and spread, with a seeded generator.
#include "dispatch/backoff.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>

namespace {

using recsync::dispatch::backoff_delay_ms;

constexpr int kSamples = 1000;

int64_t max_of(int attempt, int64_t base, int64_t cap, std::mt19937_64 &rng) {
    int64_t m = 0;
    for (int i = 0; i < kSamples; ++i) m = std::max(m, backoff_delay_ms(attempt, base, cap, rng));
    return m;
}

TEST(Backoff, StaysWithinZeroAndCeiling) {
    std::mt19937_64 rng(12345);
    const int64_t base = 200, cap = 60'000;
    for (int attempt = 0; attempt <= 12; ++attempt) {
        const int64_t ceiling = std::min<int64_t>(cap, base << attempt);
        for (int i = 0; i < kSamples; ++i) {
            const int64_t d = backoff_delay_ms(attempt, base, cap, rng);
            ASSERT_GE(d, 0) << "attempt " << attempt;
            ASSERT_LE(d, ceiling) << "attempt " << attempt;
        }
    }
}

TEST(Backoff, GrowsWithAttempt) {
    std::mt19937_64 rng(7);
    const int64_t m0 = max_of(0, 100, 60'000, rng);
    const int64_t m5 = max_of(5, 100, 60'000, rng);
    EXPECT_GT(m5, m0);
    EXPECT_LE(m0, 100);
    // 1000 uniform samples in [0, 3200] come close to the ceiling.
    EXPECT_GT(m5, 100 * 16);
    EXPECT_LE(m5, 3200);
    // Growth is monotone in the ceiling across attempts.
    int64_t prev = 0;
    for (int a = 0; a <= 8; ++a) {
        const int64_t m = max_of(a, 100, 60'000, rng);
        EXPECT_GT(m, prev / 2) << a;  // the max is near each ceiling, and ceilings double
        EXPECT_GT(m, (int64_t{100} << a) * 9 / 10) << a;
        prev = m;
    }
}

TEST(Backoff, FullJitterSpreadsOverTheWholeRange) {
    std::mt19937_64 rng(99);
    const int64_t ceiling = 100 << 4;  // 1600
    int low = 0, high = 0;
    double sum = 0;
    for (int i = 0; i < kSamples; ++i) {
        const int64_t d = backoff_delay_ms(4, 100, 60'000, rng);
        low += d < ceiling / 4;
        high += d > ceiling * 3 / 4;
        sum += static_cast<double>(d);
    }
    EXPECT_GT(low, kSamples / 10);   // ~25% expected
    EXPECT_GT(high, kSamples / 10);  // ~25% expected
    const double mean = sum / kSamples;
    EXPECT_GT(mean, ceiling * 0.4);
    EXPECT_LT(mean, ceiling * 0.6);
}

TEST(Backoff, CapIsRespectedForLargeAttempts) {
    std::mt19937_64 rng(3);
    for (int attempt : {20, 30, 31, 62, 64, 1000, 1 << 30}) {
        const int64_t m = max_of(attempt, 200, 60'000, rng);
        EXPECT_LE(m, 60'000) << attempt;
        EXPECT_GT(m, 50'000) << attempt;  // and reached: the ceiling is the cap
    }
    // A huge base must not overflow the shift.
    EXPECT_LE(max_of(1000, 3'600'000, 86'400'000, rng), 86'400'000);
}

TEST(Backoff, NegativeAttemptCountsAsZero) {
    std::mt19937_64 rng(5);
    EXPECT_LE(max_of(-3, 100, 60'000, rng), 100);
    EXPECT_LE(max_of(std::numeric_limits<int>::min(), 100, 60'000, rng), 100);
}

TEST(Backoff, SameSeedSameSequence) {
    std::mt19937_64 a(42), b(42);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(backoff_delay_ms(i % 10, 100, 10'000, a), backoff_delay_ms(i % 10, 100, 10'000, b));
}

}  // namespace

namespace {

TEST(PastMaxAge, OnlyARetryLaterThanCreatedPlusMaxAgeExpires) {
    using recsync::dispatch::past_max_age;
    const int64_t created = 1'700'000'000'000;
    EXPECT_FALSE(past_max_age(created, created + 1000, 1000));  // exactly at the limit: still allowed
    EXPECT_TRUE(past_max_age(created, created + 1001, 1000));
    EXPECT_FALSE(past_max_age(created, created + 1'000'000'000, 0)) << "0: no limit";
    EXPECT_FALSE(past_max_age(0, created, 1000)) << "unknown creation time: never expires";
}

}  // namespace
