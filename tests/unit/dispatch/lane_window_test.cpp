// A lane's window of its backlog: taken from ingest while caught up and with room, else
// left in the task log and read in order as the lane works through what it holds.
#include "dispatch/lane.hpp"
#include "unit/dispatch/lane_support.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

namespace {

using namespace std::chrono_literals;
using recsync::dispatch::Lane;
using recsync::model::Task;
using recsync::testing::kPast;
using recsync::testing::mock_connection;
using recsync::util::SteadyClock;

Task task(int64_t id, const std::string &key) {
    Task t;
    t.id = id;
    t.connection = "crm";
    t.object = "contacts";
    t.record_key = key;
    t.payload = "{}";
    return t;
}

std::vector<Task> tasks(int64_t from, int64_t to) {
    std::vector<Task> out;
    for (int64_t i = from; i <= to; ++i) out.push_back(task(i, "r" + std::to_string(i)));
    return out;
}

class LaneWindow : public ::testing::Test {
protected:
    LaneWindow() : lane_(mock_connection("crm", 100), backlog_, SteadyClock::now()) { lane_.set_window(4); }
    recsync::model::Backlog backlog_;
    Lane lane_;
    bool folded_ = false;
};

TEST_F(LaneWindow, ANewLaneReadsItsBacklogBeforeTakingFromIngest) {
    EXPECT_FALSE(lane_.caught_up());
    EXPECT_EQ(lane_.wanted(), 4u);
    EXPECT_FALSE(lane_.offer(task(1, "a"), kPast, folded_)) << "not caught up: it stays in the log";
    EXPECT_EQ(lane_.held(), 0u);
    lane_.loaded(tasks(1, 3), /*all=*/true, SteadyClock::now());
    EXPECT_TRUE(lane_.caught_up());
    EXPECT_EQ(lane_.loaded_upto(), 3);
    EXPECT_EQ(lane_.held(), 3u);
    EXPECT_TRUE(lane_.offer(task(2, "dup"), kPast, folded_)) << "read already";
    EXPECT_EQ(lane_.held(), 3u);
    EXPECT_TRUE(lane_.offer(task(4, "r4"), kPast, folded_));
    EXPECT_EQ(lane_.held(), 4u);
}

TEST_F(LaneWindow, AFullWindowLeavesTheRestInTheLogAndReadsItInOrder) {
    lane_.loaded({}, true, SteadyClock::now());
    for (int64_t i = 1; i <= 4; ++i) EXPECT_TRUE(lane_.offer(task(i, "r" + std::to_string(i)), kPast, folded_));
    EXPECT_FALSE(lane_.offer(task(5, "r5"), kPast, folded_)) << "the window is full";
    EXPECT_FALSE(lane_.caught_up());
    EXPECT_FALSE(lane_.offer(task(6, "r6"), kPast, folded_)) << "and later ones wait behind it";
    EXPECT_EQ(lane_.wanted(), 0u) << "it has enough to do";
    // Working through it: below half the window, it asks for more, from after what it holds.
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(lane_.has_ready());
        const auto &t = lane_.start_next();
        lane_.finish(t.record_id(), SteadyClock::now());
    }
    EXPECT_EQ(lane_.held(), 1u);
    EXPECT_EQ(lane_.wanted(), 3u);
    EXPECT_EQ(lane_.loaded_upto(), 4);
    lane_.loaded(tasks(5, 7), /*all=*/false, SteadyClock::now());
    EXPECT_FALSE(lane_.caught_up()) << "a full read: there may be more";
    std::vector<int64_t> order;
    while (lane_.has_ready()) {
        const auto &t = lane_.start_next();
        order.push_back(t.id);
        lane_.finish(t.record_id(), SteadyClock::now());
    }
    EXPECT_EQ(order, (std::vector<int64_t>{4, 5, 6, 7}));
    lane_.loaded({}, true, SteadyClock::now());
    EXPECT_TRUE(lane_.caught_up());
    EXPECT_TRUE(lane_.offer(task(8, "r8"), kPast, folded_));
}

// Records waiting for a retry do not count against the window (a burst of failures would
// stall the lane), up to four windows held in all.
TEST_F(LaneWindow, TasksWaitingForARetryDoNotFillTheWindow) {
    lane_.loaded(tasks(1, 4), true, SteadyClock::now());
    for (int i = 0; i < 4; ++i) {
        ASSERT_TRUE(lane_.has_ready());
        const auto &t = lane_.start_next();
        lane_.retry_at(t.record_id(), SteadyClock::now() + 1h, SteadyClock::now());
    }
    EXPECT_EQ(lane_.held(), 4u);
    EXPECT_TRUE(lane_.offer(task(5, "r5"), kPast, folded_)) << "retrying records leave room";
    for (int64_t i = 6; i <= 8; ++i) EXPECT_TRUE(lane_.offer(task(i, "r" + std::to_string(i)), kPast, folded_));
    EXPECT_FALSE(lane_.offer(task(9, "r9"), kPast, folded_)) << "four working tasks: full";
    // Their retries come due: they count again.
    lane_.promote_due(SteadyClock::now() + 2h);
    EXPECT_EQ(lane_.wanted(), 0u);
}

TEST_F(LaneWindow, AtMostFourWindowsAreHeldWhateverIsRetrying) {
    lane_.loaded({}, true, SteadyClock::now());
    int64_t id = 1;
    while (lane_.offer(task(id, "r" + std::to_string(id)), kPast, folded_)) {
        ASSERT_TRUE(lane_.has_ready());
        const auto &t = lane_.start_next();
        lane_.retry_at(t.record_id(), SteadyClock::now() + 1h, SteadyClock::now());
        ++id;
        ASSERT_LT(id, 100);
    }
    EXPECT_EQ(lane_.held(), 16u);
    EXPECT_EQ(lane_.wanted(), 0u);
}

TEST_F(LaneWindow, ATaskNotDueYetWaitsForItsTime) {
    auto t = task(1, "later");
    t.not_before_ms = recsync::util::epoch_ms() + 3'600'000;
    std::vector<Task> batch;
    batch.push_back(std::move(t));
    lane_.loaded(std::move(batch), true, SteadyClock::now());
    EXPECT_EQ(lane_.held(), 1u);
    EXPECT_FALSE(lane_.has_ready());
    EXPECT_GT(lane_.next_retry(), SteadyClock::now() + 59min);
}

}  // namespace
