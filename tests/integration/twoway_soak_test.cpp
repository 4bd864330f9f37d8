// The two-way soak, small (bench/run twoway runs it larger): records edited on both sides
// at once, some deleted, under last-writer-wins. Every record converges to one value on
// both sides, no deleted record comes back, and the CRM is written no more than System A
// changed (no ping-pong).
#include "support/twoway_soak.hpp"

#include <gtest/gtest.h>

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <iostream>

namespace recsync {
namespace {

TEST(TwoWaySoak, BothSidesConvergeWithoutPingPongOrRevivedRecords) {
    if (std::getenv("RECSYNC_SOAK_DEBUG")) spdlog::set_level(spdlog::level::debug);
    testkit::SoakOptions o;
    o.records = 100;
    o.seconds = 8;
    o.edits_per_second = 60;
    const auto r = testkit::run_twoway_soak(o);
    std::cout << "[ soak ] " << r.to_json().dump() << "\n";
    for (const auto &e : r.examples) std::cout << "[ soak ]   " << e << "\n";
    EXPECT_TRUE(r.settled) << "the queues did not empty after the edits";
    EXPECT_GT(r.edits_a, 100);
    EXPECT_GT(r.edits_b, 100);
    EXPECT_GT(r.both, 10);
    EXPECT_EQ(r.diverged, 0);
    EXPECT_EQ(r.resurrected, 0);
    EXPECT_EQ(r.excess_calls, 0);
    EXPECT_GT(r.echoes_suppressed, 0u) << "recsync's own writes came back and were not recognised";
    EXPECT_GT(r.b_to_a_samples, 0u);
}

// The same under prefer: internal (smaller): both sides converge too; where the two sides
// were edited at once, System A's value stands (wrong_winner counts last-writer results
// and is not asserted here).
TEST(TwoWaySoak, PreferInternalConvergesToo) {
    testkit::SoakOptions o;
    o.records = 50;
    o.seconds = 5;
    o.edits_per_second = 60;
    o.seed = 7;
    o.policy = "prefer: internal";
    const auto r = testkit::run_twoway_soak(o);
    std::cout << "[ soak prefer internal ] " << r.to_json().dump() << "\n";
    for (const auto &e : r.examples) std::cout << "[ soak ]   " << e << "\n";
    EXPECT_TRUE(r.settled);
    EXPECT_GT(r.both, 5);
    EXPECT_EQ(r.diverged, 0);
    EXPECT_EQ(r.resurrected, 0);
    EXPECT_EQ(r.excess_calls, 0);
    EXPECT_GT(r.conflicts, 0u) << "no concurrent edit met its policy";
}

}  // namespace
}  // namespace recsync
