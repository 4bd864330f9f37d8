// LaneScheduler and start_some: which lanes a dispatcher turn visits, and how many calls it
// starts on each. Counts and order only; no clock is read for any assertion.
#include "dispatch/lane_scheduler.hpp"
#include "unit/dispatch/lane_support.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using recsync::dispatch::Lane;
using recsync::dispatch::LaneScheduler;
using recsync::dispatch::start_some;
using recsync::model::Task;
using recsync::testing::kPast;
using recsync::testing::mock_connection;
using recsync::util::SteadyClock;
using recsync::util::TimePoint;

std::unique_ptr<Lane> make_lane(const std::string &name, int max_in_flight = 1'000'000, double rate = 0) {
    return std::make_unique<Lane>(mock_connection(name, max_in_flight, rate), recsync::testing::test_backlog(), SteadyClock::now());
}

Task task(int64_t id, const std::string &lane, const std::string &key) {
    Task t;
    t.id = id;
    t.connection = lane;
    t.object = "contacts";
    t.record_key = key;
    return t;
}

struct Started {
    std::string lane;
    int64_t task;
};

// One dispatcher turn, as Dispatcher::start_calls runs it.
void turn(LaneScheduler &s, TimePoint now, std::vector<Started> &log, int *visits = nullptr) {
    s.promote(now);
    for (Lane *lane : s.take_turn()) {
        if (visits) ++*visits;
        TimePoint wake = TimePoint::max();
        const bool more = start_some(*lane, now, LaneScheduler::kStartsPerVisit, wake, [&](Task &t) { log.push_back({lane->connection().config.name, t.id}); });
        if (more) s.ready(lane);
        if (wake != TimePoint::max()) s.wake_at(lane, wake);
    }
}

// The case: a lane with a backlog of 100,000 must not delay a quiet lane's task,
// even when the busy lane is first in the ring and nothing (cap, bucket) holds it back.
TEST(LaneScheduler, AQuietLaneStartsWithinTheFirstTurnBesideA100kBacklog) {
    auto busy = make_lane("busy");
    auto quiet = make_lane("quiet");
    for (int i = 0; i < 100'000; ++i) busy->push(task(i + 1, "busy", "b" + std::to_string(i)), kPast);
    quiet->push(task(1'000'001, "quiet", "q"), kPast);
    LaneScheduler s;
    s.ready(busy.get());
    s.ready(quiet.get());
    std::vector<Started> log;
    const auto now = SteadyClock::now();
    turn(s, now, log);
    ASSERT_EQ(log.size(), static_cast<size_t>(LaneScheduler::kStartsPerVisit) + 1);
    EXPECT_EQ(log.back().lane, "quiet") << "the quiet lane's task starts after at most one bounded visit of the busy lane";
    // The busy lane goes on, round robin, a bounded number per turn, in its FIFO order.
    EXPECT_TRUE(s.has_ready());
    turn(s, now, log);
    ASSERT_EQ(log.size(), 2u * LaneScheduler::kStartsPerVisit + 1);
    for (size_t i = 1; i < log.size(); ++i) {
        if (log[i].lane == "busy" && log[i - 1].lane == "busy") {
            EXPECT_EQ(log[i].task, log[i - 1].task + 1);
        }
    }
    // New work for the quiet lane is started on the very next turn, not after the backlog.
    quiet->finish(task(0, "quiet", "q").record_id(), now);
    quiet->push(task(1'000'002, "quiet", "q2"), kPast);
    s.ready(quiet.get());
    const size_t before = log.size();
    turn(s, now, log);
    ASSERT_EQ(log.size(), before + LaneScheduler::kStartsPerVisit + 1);
    EXPECT_EQ(log.back().task, 1'000'002);
}

// A turn costs O(lanes with work): 10,000 idle lanes are never visited.
TEST(LaneScheduler, IdleLanesAreNotVisited) {
    std::vector<std::unique_ptr<Lane>> lanes;
    for (int i = 0; i < 10'000; ++i) lanes.push_back(make_lane("l" + std::to_string(i)));
    lanes[4242]->push(task(1, "l4242", "k"), kPast);
    LaneScheduler s;
    s.ready(lanes[4242].get());
    s.ready(lanes[4242].get());  // twice: still one place in the ring
    std::vector<Started> log;
    int visits = 0;
    turn(s, SteadyClock::now(), log, &visits);
    EXPECT_EQ(visits, 1);
    ASSERT_EQ(log.size(), 1u);
    EXPECT_EQ(log[0].lane, "l4242");
    visits = 0;
    turn(s, SteadyClock::now(), log, &visits);
    EXPECT_EQ(visits, 0) << "nothing left to do: the lane left the ring";
    EXPECT_EQ(s.next_timer(), TimePoint::max());
}

// A lane waiting for a retry (or a bucket) sleeps in the timer heap until then.
TEST(LaneScheduler, ALaneWaitingForARetryWakesWhenItIsDue) {
    auto lane = make_lane("crm");
    lane->push(task(1, "crm", "k"), kPast);
    LaneScheduler s;
    s.ready(lane.get());
    std::vector<Started> log;
    const auto now = SteadyClock::now();
    turn(s, now, log);
    ASSERT_EQ(log.size(), 1u);
    lane->retry_at(task(1, "crm", "k").record_id(), now + 5s, now);
    s.ready(lane.get());  // what complete() does
    turn(s, now, log);
    EXPECT_EQ(log.size(), 1u) << "not due yet";
    EXPECT_FALSE(s.has_ready());
    EXPECT_EQ(s.next_timer(), now + 5s);
    turn(s, now + 4999ms, log);
    EXPECT_EQ(log.size(), 1u);
    turn(s, now + 5s, log);
    ASSERT_EQ(log.size(), 2u);
    EXPECT_EQ(log[1].task, 1);
}

TEST(LaneScheduler, AnEarlierTimerReplacesALaterOne) {
    auto lane = make_lane("crm");
    LaneScheduler s;
    const auto now = SteadyClock::now();
    s.wake_at(lane.get(), now + 10s);
    s.wake_at(lane.get(), now + 2s);
    s.wake_at(lane.get(), now + 5s);  // later than the live one: ignored
    EXPECT_EQ(s.next_timer(), now + 2s);
    s.promote(now + 2s);
    EXPECT_EQ(s.take_turn().size(), 1u);
    // The stale 10 s entry neither fires nor shows as the next timer.
    EXPECT_EQ(s.next_timer(), TimePoint::max());
    s.promote(now + 10s);
    EXPECT_FALSE(s.has_ready());
}

// The bucket limits a visit like the cap does, and says when to come back.
TEST(LaneScheduler, StartSomeStopsAtTheBucketAndTheCap) {
    auto limited = make_lane("limited", 1'000'000, /*rate=*/2);  // burst 2
    auto capped = make_lane("capped", /*max_in_flight=*/3);
    for (int i = 0; i < 10; ++i) {
        limited->push(task(i + 1, "limited", "k" + std::to_string(i)), kPast);
        capped->push(task(i + 1, "capped", "k" + std::to_string(i)), kPast);
    }
    const auto now = SteadyClock::now();
    int started = 0;
    TimePoint wake = TimePoint::max();
    EXPECT_FALSE(start_some(*limited, now, 16, wake, [&](Task &) { ++started; }));
    EXPECT_EQ(started, 2);
    EXPECT_GT(wake, now);
    EXPECT_LE(wake, now + 1s);
    started = 0;
    wake = TimePoint::max();
    EXPECT_FALSE(start_some(*capped, now, 16, wake, [&](Task &) { ++started; }));
    EXPECT_EQ(started, 3);
    EXPECT_EQ(wake, TimePoint::max()) << "a full cap frees up on a completion, not at a time";
}

}  // namespace
namespace {

// Lanes a turn could not serve (global cap reached) are served first next turn, in their
// order, ahead of lanes that had their share and asked for more.
TEST(LaneScheduler, LanesSkippedAtTheCapGoFirstNextTurn) {
    auto a = make_lane("a"), b = make_lane("b"), c = make_lane("c"), d = make_lane("d");
    LaneScheduler s;
    for (Lane *l : {a.get(), b.get(), c.get(), d.get()}) s.ready(l);
    const auto turn = s.take_turn();
    ASSERT_EQ(turn.size(), 4u);
    s.ready(a.get());  // served, wants more
    s.ready_first({c.get(), d.get()});  // the cap was reached at c
    s.ready(b.get());
    const auto next = s.take_turn();
    ASSERT_EQ(next.size(), 4u);
    EXPECT_EQ(next[0], c.get());
    EXPECT_EQ(next[1], d.get());
    EXPECT_EQ(next[2], a.get());
    EXPECT_EQ(next[3], b.get());
    s.ready(a.get());
    s.ready_first({a.get()});  // already in the ring: keeps its place, no duplicate
    EXPECT_EQ(s.take_turn().size(), 1u);
}

// A turn takes no more lanes than calls may start; the rest keep their places, in order,
// and are not touched (they stay in the ring: ready() adds no duplicate).
TEST(LaneScheduler, ATurnTakesNoMoreLanesThanCallsMayStart) {
    std::vector<std::unique_ptr<Lane>> lanes;
    LaneScheduler s;
    for (int i = 0; i < 6; ++i) {
        lanes.push_back(make_lane("l" + std::to_string(i)));
        s.ready(lanes.back().get());
    }
    auto turn = s.take_turn(2);
    ASSERT_EQ(turn.size(), 2u);
    EXPECT_EQ(turn[0], lanes[0].get());
    EXPECT_EQ(turn[1], lanes[1].get());
    EXPECT_TRUE(lanes[2]->schedule_state().in_ring);
    s.ready(lanes[3].get());  // already there: keeps its place
    s.ready(lanes[0].get());  // served, wants more: to the back
    EXPECT_TRUE(s.take_turn(0).empty());
    turn = s.take_turn();
    ASSERT_EQ(turn.size(), 5u);
    EXPECT_EQ(turn[0], lanes[2].get());
    EXPECT_EQ(turn[1], lanes[3].get());
    EXPECT_EQ(turn[2], lanes[4].get());
    EXPECT_EQ(turn[3], lanes[5].get());
    EXPECT_EQ(turn[4], lanes[0].get());
    EXPECT_FALSE(s.has_ready());
}

}  // namespace
