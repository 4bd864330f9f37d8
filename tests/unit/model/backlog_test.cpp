// Backlog: per-connection counts of tasks accepted and not finished, and their total.
#include "model/backlog.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace {

using recsync::model::Backlog;

TEST(Backlog, StartsFromTheLogsCountAndFollowsAddsAndRemovals) {
    Backlog b;
    b.reset({{"a", 5}, {"gone", 2}});
    EXPECT_EQ(b.of("a"), 5);
    EXPECT_EQ(b.of("gone"), 2) << "connections not configured count too";
    EXPECT_EQ(b.of("new"), 0);
    EXPECT_EQ(b.total(), 7);
    b.add("a", 3);
    b.add("new", 1);
    auto &a = b.counter("a");
    a.fetch_sub(4);  // a lane finishing tasks lowers its counter only ...
    EXPECT_EQ(b.of("a"), 4);
    EXPECT_EQ(b.of("new"), 1);
    EXPECT_EQ(b.total(), 11) << "... so the total follows adds: the dispatcher lowers it too (Lane::finish)";
}

TEST(Backlog, ACounterStaysValidAsConnectionsAreAdded) {
    Backlog b;
    auto &first = b.counter("c0");
    for (int i = 1; i < 1000; ++i) b.counter("c" + std::to_string(i));
    b.add(first, 2);
    EXPECT_EQ(b.of("c0"), 2);
}

TEST(Backlog, ConcurrentAddsLoseNothing) {
    Backlog b;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 10000; ++i) b.add("c" + std::to_string((t + i) % 7), 1);
        });
    for (auto &t : threads) t.join();
    int64_t sum = 0;
    for (int c = 0; c < 7; ++c) sum += b.of("c" + std::to_string(c));
    EXPECT_EQ(sum, 40000);
    EXPECT_EQ(b.total(), 40000);
}

}  // namespace
