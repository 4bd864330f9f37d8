// Lane: per-record FIFO with at most one task in flight per record, fairness between
// records, the retry heap and the concurrency cap. A ConnectionRuntime without a provider.
#include "dispatch/lane.hpp"
#include "unit/dispatch/lane_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using recsync::dispatch::Lane;
using recsync::model::ConnectionRuntime;
using recsync::model::Task;
using recsync::testing::kPast;
using recsync::testing::mock_connection;
using recsync::testing::test_backlog;
using recsync::util::SteadyClock;
using recsync::util::TimePoint;

std::shared_ptr<const ConnectionRuntime> connection(int max_in_flight = 8, double rate = 0, double burst = 0) {
    return mock_connection("crm", max_in_flight, rate, burst);
}

recsync::model::Backlog &counter() { return test_backlog(); }

Task task(int64_t id, const std::string &key, const std::string &object = "contacts") {
    Task t;
    t.id = id;
    t.connection = "crm";
    t.object = object;
    t.record_key = key;
    t.payload = "{\"n\":" + std::to_string(id) + "}";
    return t;
}

std::string rid(const std::string &key, const std::string &object = "contacts") { return task(0, key, object).record_id(); }

TEST(Lane, RecordIdSeparatesObjects) {
    EXPECT_NE(task(1, "k", "contacts").record_id(), task(2, "k", "companies").record_id());
    EXPECT_EQ(task(1, "k").record_id(), task(2, "k").record_id());
    // The separator cannot be confused with a key containing the object name.
    EXPECT_NE(task(1, "b", "a").record_id(), task(2, "", "a.b").record_id());
}

TEST(Lane, OneInFlightPerRecordAndFifo) {
    Lane lane(connection(), counter(), SteadyClock::now());
    lane.push(task(1, "r1"), kPast);
    lane.push(task(2, "r1"), kPast);
    ASSERT_TRUE(lane.has_ready());
    EXPECT_EQ(lane.start_next().id, 1);
    // The second task of the same record is not ready while the first is in flight.
    EXPECT_FALSE(lane.has_ready());
    EXPECT_EQ(lane.in_flight(), 1);
    EXPECT_EQ(lane.head(rid("r1")).id, 1);

    lane.finish(rid("r1"), SteadyClock::now());
    ASSERT_TRUE(lane.has_ready());
    EXPECT_EQ(lane.start_next().id, 2);
    EXPECT_FALSE(lane.has_ready());
    lane.finish(rid("r1"), SteadyClock::now());
    EXPECT_FALSE(lane.has_ready());
    EXPECT_EQ(lane.in_flight(), 0);
    EXPECT_EQ(lane.next_retry(), TimePoint::max());
}

// A call whose answer is in but not yet recorded frees its slot for another record; its
// own record stays busy (its next change waits) until finish or retry_at.
TEST(Lane, AnEndedCallFreesItsSlotButNotItsRecord) {
    Lane lane(connection(1), counter(), SteadyClock::now());
    lane.push(task(1, "r1"), kPast);
    lane.push(task(2, "r1"), kPast);
    lane.push(task(3, "r2"), kPast);
    EXPECT_EQ(lane.start_next().id, 1);
    EXPECT_FALSE(lane.below_concurrency_cap());
    lane.end_call(rid("r1"), SteadyClock::now());
    lane.end_call(rid("r1"), SteadyClock::now());  // idempotent
    EXPECT_EQ(lane.in_flight(), 0);
    EXPECT_TRUE(lane.below_concurrency_cap());
    ASSERT_TRUE(lane.has_ready());
    EXPECT_EQ(lane.start_next().id, 3) << "r2, not r1's next task";
    EXPECT_FALSE(lane.has_ready());
    lane.finish(rid("r1"), SteadyClock::now());  // r1's call had ended: no second decrement
    EXPECT_EQ(lane.in_flight(), 1);
    ASSERT_TRUE(lane.has_ready());
    EXPECT_EQ(lane.head(rid("r1")).id, 2);
    lane.end_call(rid("r2"), SteadyClock::now());
    lane.retry_at(rid("r2"), SteadyClock::now() + 1h, SteadyClock::now());
    EXPECT_EQ(lane.in_flight(), 0);
    EXPECT_EQ(lane.start_next().id, 2);
    EXPECT_EQ(lane.in_flight(), 1);
}

TEST(Lane, ManyTasksOnOneRecordStayInOrder) {
    Lane lane(connection(), counter(), SteadyClock::now());
    for (int i = 1; i <= 20; ++i) lane.push(task(i, "r"), kPast);
    for (int i = 1; i <= 20; ++i) {
        ASSERT_TRUE(lane.has_ready()) << i;
        EXPECT_EQ(lane.start_next().id, i);
        EXPECT_FALSE(lane.has_ready());
        lane.finish(rid("r"), SteadyClock::now());
    }
    EXPECT_FALSE(lane.has_ready());
}

TEST(Lane, OtherRecordsProceedWhileOneIsInFlight) {
    Lane lane(connection(), counter(), SteadyClock::now());
    lane.push(task(1, "r1"), kPast);
    lane.push(task(2, "r1"), kPast);
    lane.push(task(3, "r2"), kPast);
    lane.push(task(4, "x", "companies"), kPast);  // same lane, different object
    EXPECT_EQ(lane.start_next().id, 1);
    ASSERT_TRUE(lane.has_ready());
    EXPECT_EQ(lane.start_next().id, 3);
    ASSERT_TRUE(lane.has_ready());
    EXPECT_EQ(lane.start_next().id, 4);
    EXPECT_FALSE(lane.has_ready());
    EXPECT_EQ(lane.in_flight(), 3);

    lane.finish(rid("r2"), SteadyClock::now());  // r2 had nothing else
    EXPECT_FALSE(lane.has_ready());
    lane.finish(rid("r1"), SteadyClock::now());
    ASSERT_TRUE(lane.has_ready());
    EXPECT_EQ(lane.start_next().id, 2);
}

TEST(Lane, BusyRecordDoesNotStarveOthers) {
    Lane lane(connection(), counter(), SteadyClock::now());
    lane.push(task(1, "busy"), kPast);
    lane.push(task(2, "busy"), kPast);
    lane.push(task(3, "busy"), kPast);
    lane.push(task(4, "a"), kPast);
    lane.push(task(5, "b"), kPast);
    EXPECT_EQ(lane.start_next().id, 1);
    lane.finish(rid("busy"), SteadyClock::now());  // busy goes to the back of the ready FIFO
    std::vector<int64_t> order;
    while (lane.has_ready()) order.push_back(lane.start_next().id);
    EXPECT_EQ(order, (std::vector<int64_t>{4, 5, 2}));
}

TEST(Lane, PushWhileInFlightDoesNotScheduleTwice) {
    Lane lane(connection(), counter(), SteadyClock::now());
    lane.push(task(1, "r"), kPast);
    EXPECT_EQ(lane.start_next().id, 1);
    lane.push(task(2, "r"), kPast);
    lane.push(task(3, "r"), kPast);
    EXPECT_FALSE(lane.has_ready());
    lane.finish(rid("r"), SteadyClock::now());
    EXPECT_EQ(lane.start_next().id, 2);
    EXPECT_FALSE(lane.has_ready());  // exactly one entry for the record
    lane.finish(rid("r"), SteadyClock::now());
    EXPECT_EQ(lane.start_next().id, 3);
    EXPECT_FALSE(lane.has_ready());
}

TEST(Lane, RetryAtDelaysTheRecordUntilPromoted) {
    Lane lane(connection(), counter(), SteadyClock::now());
    lane.push(task(1, "r1"), kPast);
    lane.push(task(2, "r1"), kPast);
    lane.push(task(3, "r2"), kPast);
    Task &t = lane.start_next();
    ASSERT_EQ(t.id, 1);
    t.attempts = 1;

    const TimePoint at = TimePoint{} + 10h;
    lane.retry_at(rid("r1"), at, SteadyClock::now());
    EXPECT_EQ(lane.in_flight(), 0);
    EXPECT_EQ(lane.next_retry(), at);
    // r2 is still ready; r1 (neither task) is not.
    ASSERT_TRUE(lane.has_ready());
    EXPECT_EQ(lane.start_next().id, 3);
    EXPECT_FALSE(lane.has_ready());

    lane.promote_due(at - 1ms);
    EXPECT_FALSE(lane.has_ready());
    lane.promote_due(at);
    ASSERT_TRUE(lane.has_ready());
    EXPECT_EQ(lane.next_retry(), TimePoint::max());
    Task &again = lane.start_next();
    EXPECT_EQ(again.id, 1);  // the same head task, with its state kept
    EXPECT_EQ(again.attempts, 1);
    EXPECT_FALSE(lane.has_ready());
    lane.finish(rid("r1"), at);
    ASSERT_TRUE(lane.has_ready());
    EXPECT_EQ(lane.start_next().id, 2);
}

TEST(Lane, PushForADelayedRecordWaitsBehindTheRetry) {
    Lane lane(connection(), counter(), SteadyClock::now());
    lane.push(task(1, "r"), kPast);
    lane.start_next();
    const TimePoint at = TimePoint{} + 5h;
    lane.retry_at(rid("r"), at, SteadyClock::now());
    lane.push(task(2, "r"), kPast);  // ready by itself, but r's head is waiting
    EXPECT_FALSE(lane.has_ready());
    lane.promote_due(at);
    ASSERT_TRUE(lane.has_ready());
    EXPECT_EQ(lane.start_next().id, 1);
    EXPECT_FALSE(lane.has_ready());
}

TEST(Lane, DelayedHeapReleasesInTimeOrder) {
    Lane lane(connection(), counter(), SteadyClock::now());
    for (int i = 1; i <= 3; ++i) lane.push(task(i, "r" + std::to_string(i)), kPast);
    for (int i = 1; i <= 3; ++i) lane.start_next();
    const TimePoint base = TimePoint{} + 1h;
    lane.retry_at(rid("r1"), base + 30s, SteadyClock::now());
    lane.retry_at(rid("r2"), base + 10s, SteadyClock::now());
    lane.retry_at(rid("r3"), base + 20s, SteadyClock::now());
    EXPECT_EQ(lane.next_retry(), base + 10s);

    lane.promote_due(base + 10s);
    ASSERT_TRUE(lane.has_ready());
    EXPECT_EQ(lane.start_next().id, 2);
    EXPECT_FALSE(lane.has_ready());
    EXPECT_EQ(lane.next_retry(), base + 20s);

    lane.promote_due(base + 1min);  // both remaining are due: earliest first
    std::vector<int64_t> order;
    while (lane.has_ready()) order.push_back(lane.start_next().id);
    EXPECT_EQ(order, (std::vector<int64_t>{3, 1}));
}

TEST(Lane, PushWithFutureReadyAtIsDelayed) {
    Lane lane(connection(), counter(), SteadyClock::now());
    const TimePoint later = SteadyClock::now() + 1h;
    lane.push(task(1, "r"), later);
    EXPECT_FALSE(lane.has_ready());
    EXPECT_EQ(lane.next_retry(), later);
    lane.promote_due(later - 1s);
    EXPECT_FALSE(lane.has_ready());
    lane.promote_due(later);
    ASSERT_TRUE(lane.has_ready());
    EXPECT_EQ(lane.start_next().id, 1);
}

TEST(Lane, ConcurrencyCap) {
    Lane lane(connection(2), counter(), SteadyClock::now());
    for (int i = 1; i <= 4; ++i) lane.push(task(i, "r" + std::to_string(i)), kPast);
    EXPECT_TRUE(lane.below_concurrency_cap());
    lane.start_next();
    EXPECT_TRUE(lane.below_concurrency_cap());
    lane.start_next();
    EXPECT_FALSE(lane.below_concurrency_cap());
    EXPECT_TRUE(lane.has_ready());  // work is waiting, the cap holds it back

    lane.finish(rid("r1"), SteadyClock::now());
    EXPECT_TRUE(lane.below_concurrency_cap());
    lane.start_next();
    EXPECT_FALSE(lane.below_concurrency_cap());
    lane.retry_at(rid("r2"), TimePoint{} + 1h, SteadyClock::now());  // a retry frees the slot too
    EXPECT_TRUE(lane.below_concurrency_cap());
}

TEST(Lane, CapOfOneSerialisesTheLane) {
    Lane lane(connection(1), counter(), SteadyClock::now());
    lane.push(task(1, "a"), kPast);
    lane.push(task(2, "b"), kPast);
    int started = 0;
    while (lane.has_ready() && lane.below_concurrency_cap()) {
        lane.start_next();
        ++started;
    }
    EXPECT_EQ(started, 1);
}

// in_memory counts the tasks the lane holds; the connection's backlog counter goes down
// as tasks finish (ingest counts them up: model::Backlog), by what they absorbed too.
TEST(Lane, StatsCountHeldTasksAndInFlightAndFinishingLowersTheBacklog) {
    recsync::model::Backlog backlog;
    auto &queued = backlog.counter("crm");
    backlog.add(queued, 3);
    Lane lane(connection(), backlog, SteadyClock::now());
    auto &s = lane.stats();
    EXPECT_EQ(s.in_memory.load(), 0);
    EXPECT_EQ(s.in_flight.load(), 0);
    lane.push(task(1, "r1"), kPast);
    lane.push(task(2, "r1"), kPast);
    lane.push(task(3, "r2"), kPast);
    EXPECT_EQ(s.in_memory.load(), 3);
    EXPECT_EQ(s.in_flight.load(), 0);
    lane.start_next();
    lane.start_next();
    EXPECT_EQ(s.in_memory.load(), 3);  // in flight still held
    EXPECT_EQ(s.in_flight.load(), 2);
    lane.retry_at(rid("r2"), TimePoint{} + 1h, SteadyClock::now());
    EXPECT_EQ(s.in_memory.load(), 3);
    EXPECT_EQ(s.in_flight.load(), 1);
    lane.finish(rid("r1"), SteadyClock::now());
    EXPECT_EQ(s.in_memory.load(), 2);
    EXPECT_EQ(queued.load(), 2);
    EXPECT_EQ(s.in_flight.load(), 0);
    lane.start_next();
    lane.finish(rid("r1"), SteadyClock::now());
    EXPECT_EQ(s.in_memory.load(), 1);
    lane.promote_due(TimePoint{} + 1h);
    lane.start_next();
    lane.finish(rid("r2"), SteadyClock::now());
    EXPECT_EQ(s.in_memory.load(), 0);
    EXPECT_EQ(queued.load(), 0);
    EXPECT_EQ(backlog.total(), 0);
    EXPECT_EQ(s.in_flight.load(), 0);
}

TEST(Lane, BucketComesFromTheConnection) {
    const auto now = SteadyClock::now();
    Lane lane(connection(8, 4, 2), counter(), now);
    EXPECT_DOUBLE_EQ(lane.bucket().rate(), 4);
    EXPECT_DOUBLE_EQ(lane.bucket().burst(), 2);
    EXPECT_TRUE(lane.bucket().try_acquire(now));
    EXPECT_TRUE(lane.bucket().try_acquire(now));
    EXPECT_FALSE(lane.bucket().try_acquire(now));
    EXPECT_EQ(lane.connection().config.name, "crm");

    Lane unlimited(connection(), counter(), now);
    EXPECT_LE(unlimited.bucket().rate(), 0);
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(unlimited.bucket().try_acquire(now));
}

// The server's own count (set_rate_limit) caps the lane below its configured bucket, calls
// in flight count as spent, and the lane pauses until the window is over.
TEST(Lane, ServerRateLimitReportsCapAndPauseTheLane) {
    const auto now = SteadyClock::now();
    Lane lane(connection(8, 1000, 1000), counter(), now);
    for (int i = 1; i <= 10; ++i) lane.push(task(i, "r" + std::to_string(i)), kPast);
    TimePoint wake = TimePoint::max();
    for (int i = 0; i < 2; ++i) {  // two calls in flight
        ASSERT_TRUE(lane.acquire_send(now, wake));
        lane.start_next();
    }
    lane.on_rate_limit({100, 5, 10'000, 0}, now);
    int sent = 0;
    while (lane.acquire_send(now, wake)) ++sent;
    EXPECT_EQ(sent, 3);  // 5 remaining - 2 unanswered
    EXPECT_EQ(wake, now + 10s);
    EXPECT_EQ(lane.paused_until(now), now + 10s);
    // The bucket was charged only for the calls that were allowed.
    EXPECT_TRUE(lane.bucket().try_acquire(now));
    // Over: the lane may send again.
    wake = TimePoint::max();
    EXPECT_TRUE(lane.acquire_send(now + 10s, wake));
    EXPECT_LE(lane.paused_until(now + 10s), now + 10s);
}

// A counted window (a limit and a length): a call's place is free again one length after
// its answer, which the lane passes on when the call ends.
TEST(Lane, AnAnsweredCallFreesItsPlaceOneWindowAfterItsAnswer) {
    const auto now = SteadyClock::now();
    Lane lane(connection(8), counter(), now);
    for (int i = 1; i <= 4; ++i) lane.push(task(i, "r" + std::to_string(i)), kPast);
    lane.on_rate_limit({2, 2, 1000, 0}, now);
    TimePoint wake = TimePoint::max();
    for (int i = 0; i < 2; ++i) {
        ASSERT_TRUE(lane.acquire_send(now, wake));
        lane.start_next();
    }
    EXPECT_FALSE(lane.acquire_send(now, wake));
    EXPECT_EQ(lane.paused_until(now), TimePoint::max()) << "only an answer can free a place";
    lane.end_call(rid("r1"), now + 30ms);
    lane.retry_at(rid("r2"), now + 1h, now + 50ms);  // a retry ends the call too
    EXPECT_EQ(lane.paused_until(now + 50ms), now + 1030ms);
    wake = TimePoint::max();
    EXPECT_FALSE(lane.acquire_send(now + 1029ms, wake));
    EXPECT_EQ(wake, now + 1030ms);
    EXPECT_TRUE(lane.acquire_send(now + 1030ms, wake));
    lane.start_next();
    EXPECT_FALSE(lane.acquire_send(now + 1030ms, wake));
    // A call that never went out (the plugin refused to build it) gives its place back.
    lane.cancel_call(rid("r3"));
    EXPECT_TRUE(lane.acquire_send(now + 1030ms, wake));
    EXPECT_FALSE(lane.acquire_send(now + 1049ms, wake));
    EXPECT_TRUE(lane.acquire_send(now + 1050ms, wake));
}

TEST(Lane, RemainingZeroPausesEvenAnUnlimitedLane) {
    const auto now = SteadyClock::now();
    Lane lane(connection(), counter(), now);
    lane.on_rate_limit({10, 0, 1000, 0}, now);
    TimePoint wake = TimePoint::max();
    EXPECT_FALSE(lane.acquire_send(now, wake));
    EXPECT_EQ(wake, now + 1s);
    EXPECT_TRUE(lane.acquire_send(now + 1s, wake));
}

// ---- AIMD (on_throttled / on_success) -------------------------------------------------
// Configured at 640/s: a throttle halves the rate, the floor is 640/64 = 10/s, and each
// success adds 640/50 = 12.8/s back.

TEST(LaneAimd, AThrottleHalvesTheRateAtMostOnceASecond) {
    const auto now = SteadyClock::now();
    Lane lane(connection(8, 640, 10), counter(), now);
    EXPECT_DOUBLE_EQ(lane.stats().current_rate.load(), 640);
    lane.on_throttled(now);
    EXPECT_DOUBLE_EQ(lane.bucket().rate(), 320);
    EXPECT_DOUBLE_EQ(lane.stats().current_rate.load(), 320) << "/v1/status shows the lowered rate";
    // The other refusals of the same burst are the same signal.
    lane.on_throttled(now + 1ms);
    lane.on_throttled(now + 999ms);
    EXPECT_DOUBLE_EQ(lane.bucket().rate(), 320);
    lane.on_throttled(now + 1s);
    EXPECT_DOUBLE_EQ(lane.bucket().rate(), 160);
    // The second counts from the last halving, not from the last throttle.
    lane.on_throttled(now + 1500ms);
    EXPECT_DOUBLE_EQ(lane.bucket().rate(), 160);
    lane.on_throttled(now + 2s);
    EXPECT_DOUBLE_EQ(lane.bucket().rate(), 80);
    EXPECT_DOUBLE_EQ(lane.connection().rate_per_second, 640) << "the configured rate stays what it was";
}

TEST(LaneAimd, TheRateNeverFallsBelowASixtyFourthOfTheConfiguredRate) {
    const auto now = SteadyClock::now();
    Lane lane(connection(8, 640, 10), counter(), now);
    for (int i = 0; i < 6; ++i) lane.on_throttled(now + i * 1s);  // 640 -> 320 -> ... -> 10
    EXPECT_DOUBLE_EQ(lane.bucket().rate(), 10);
    for (int i = 6; i < 20; ++i) lane.on_throttled(now + i * 1s);
    EXPECT_DOUBLE_EQ(lane.bucket().rate(), 10);
    EXPECT_DOUBLE_EQ(lane.stats().current_rate.load(), 10);
    // A floor that is not a power-of-two fraction: 100/s halves to 50, 25, 12.5, 6.25,
    // 3.125, then stops at 100/64 = 1.5625 instead of going on to 0.78125.
    Lane odd(connection(8, 100, 10), counter(), now);
    for (int i = 0; i < 10; ++i) odd.on_throttled(now + i * 1s);
    EXPECT_DOUBLE_EQ(odd.bucket().rate(), 100.0 / 64);
}

TEST(LaneAimd, SuccessesAddTheRateBackUpToTheConfiguredRate) {
    const auto now = SteadyClock::now();
    Lane lane(connection(8, 640, 10), counter(), now);
    lane.on_success(now);
    EXPECT_DOUBLE_EQ(lane.bucket().rate(), 640) << "never above the configured rate";
    for (int i = 0; i < 6; ++i) lane.on_throttled(now + i * 1s);
    ASSERT_DOUBLE_EQ(lane.bucket().rate(), 10);
    const auto later = now + 10s;
    lane.on_success(later);
    EXPECT_DOUBLE_EQ(lane.bucket().rate(), 22.8);  // + 640/50
    for (int i = 0; i < 48; ++i) lane.on_success(later);
    EXPECT_NEAR(lane.bucket().rate(), 10 + 49 * 12.8, 1e-9);  // 637.2: one step short
    lane.on_success(later);
    EXPECT_DOUBLE_EQ(lane.bucket().rate(), 640) << "the last step stops at the configured rate";
    for (int i = 0; i < 10; ++i) lane.on_success(later);
    EXPECT_DOUBLE_EQ(lane.bucket().rate(), 640);
    EXPECT_DOUBLE_EQ(lane.stats().current_rate.load(), 640);
    // Recovered, the next throttle halves from the configured rate again.
    lane.on_throttled(later + 1s);
    EXPECT_DOUBLE_EQ(lane.bucket().rate(), 320);
}

// The lowered rate is what the bucket hands out: at 640/s a token comes back every
// 1.6 ms; lowered to 10/s, one comes back every 100 ms.
TEST(LaneAimd, TheBucketPacesCallsAtTheLoweredRate) {
    const auto now = SteadyClock::now();
    Lane lane(connection(8, 640, 10), counter(), now);
    for (int i = 0; i < 6; ++i) lane.on_throttled(now);  // one halving: the others are the same second
    EXPECT_DOUBLE_EQ(lane.bucket().rate(), 320);
    for (int i = 1; i < 6; ++i) lane.on_throttled(now + i * 1s);
    ASSERT_DOUBLE_EQ(lane.bucket().rate(), 10);
    const auto t = now + 6s;
    while (lane.bucket().try_acquire(t)) {
    }
    EXPECT_FALSE(lane.bucket().try_acquire(t + 90ms));
    EXPECT_TRUE(lane.bucket().try_acquire(t + 110ms));
    EXPECT_FALSE(lane.bucket().try_acquire(t + 110ms));
}

TEST(LaneAimd, AnUnlimitedLaneHasNoRateToLower) {
    const auto now = SteadyClock::now();
    Lane lane(connection(), counter(), now);
    lane.on_throttled(now);
    lane.on_success(now);
    EXPECT_LE(lane.bucket().rate(), 0);
    EXPECT_EQ(lane.stats().current_rate.load(), 0);
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(lane.bucket().try_acquire(now));
}

// A reload that changes the configured rate starts the lane over at the new rate.
TEST(LaneAimd, AReloadSetsTheNewConfiguredRate) {
    const auto now = SteadyClock::now();
    Lane lane(connection(8, 640, 10), counter(), now);
    lane.on_throttled(now);
    ASSERT_DOUBLE_EQ(lane.bucket().rate(), 320);
    lane.set_connection(connection(8, 100, 10), now);
    EXPECT_DOUBLE_EQ(lane.bucket().rate(), 100);
    EXPECT_DOUBLE_EQ(lane.stats().current_rate.load(), 100);
}

}  // namespace

// ---- coalescing ----------------------------------------------------------------------

Task action_task(int64_t id, const std::string &key, recsync_action action, const std::string &payload = "") {
    Task t = task(id, key);
    t.action = action;
    if (!payload.empty()) t.payload = payload;
    return t;
}

TEST(LaneCoalescing, UpdatesFoldIntoAWaitingCreate) {
    Lane lane(connection(), counter(), SteadyClock::now());
    EXPECT_FALSE(lane.push(action_task(1, "r", RECSYNC_ACTION_CREATE, "v1"), kPast));
    EXPECT_TRUE(lane.push(action_task(2, "r", RECSYNC_ACTION_UPDATE, "v2"), kPast));
    EXPECT_TRUE(lane.push(action_task(3, "r", RECSYNC_ACTION_UPDATE, "v3"), kPast));
    EXPECT_EQ(lane.held(), 1u);
    ASSERT_TRUE(lane.has_ready());
    auto &t = lane.start_next();
    EXPECT_EQ(t.action, RECSYNC_ACTION_CREATE);  // still a create, with the latest state
    EXPECT_EQ(t.payload, "v3");                   // not JSON objects: replaced
    EXPECT_EQ(t.id, 1);
    EXPECT_EQ(t.change_seq(), 3) << "it carries the newest change";
    EXPECT_EQ(t.absorbed, (std::vector<int64_t>{2, 3})) << "they leave the task log with it";
    lane.finish(rid("r"), SteadyClock::now());
    EXPECT_FALSE(lane.has_ready());
}

// Hydration: reads of one record waiting together are one read of its current state.
TEST(LaneCoalescing, WaitingReadsOfARecordFoldIntoOne) {
    Lane lane(connection(), counter(), SteadyClock::now());
    EXPECT_FALSE(lane.push(action_task(1, "r", RECSYNC_ACTION_READ, R"({"external_id":"7"})"), kPast));
    EXPECT_TRUE(lane.push(action_task(2, "r", RECSYNC_ACTION_READ, R"({"external_id":"7"})"), kPast));
    EXPECT_FALSE(lane.push(action_task(3, "r", RECSYNC_ACTION_UPDATE, "v3"), kPast)) << "an update does not fold into a read";
    EXPECT_EQ(lane.held(), 2u);
    auto &t = lane.start_next();
    EXPECT_EQ(t.action, RECSYNC_ACTION_READ);
    EXPECT_EQ(t.absorbed, std::vector<int64_t>{2});
    EXPECT_EQ(t.change_seq(), 2);
}

TEST(LaneCoalescing, ObjectPayloadsMergeLikeTheUpdatesWouldHave) {
    Lane lane(connection(), counter(), SteadyClock::now());
    lane.push(action_task(1, "r", RECSYNC_ACTION_CREATE, R"({"properties":{"a":"1","b":"1"}})"), kPast);
    lane.push(action_task(2, "r", RECSYNC_ACTION_UPDATE, R"({"properties":{"b":"2","c":"2"}})"), kPast);
    ASSERT_TRUE(lane.has_ready());
    EXPECT_EQ(nlohmann::json::parse(lane.start_next().payload), nlohmann::json::parse(R"({"properties":{"a":"1","b":"2","c":"2"}})"));
}

// A replayed dead letter (an older change) folding into a newer waiting task adds nothing:
// the newer state is not overwritten.
TEST(LaneCoalescing, AnOlderChangeFoldsWithoutOverwritingTheNewerOne) {
    Lane lane(connection(), counter(), SteadyClock::now());
    lane.push(action_task(20, "r", RECSYNC_ACTION_UPDATE, R"({"properties":{"a":"new"}})"), kPast);
    auto replay = action_task(21, "r", RECSYNC_ACTION_UPDATE, R"({"properties":{"a":"old"}})");
    replay.seq = 5;  // accepted long before task 20
    EXPECT_TRUE(lane.push(std::move(replay), kPast));
    auto versioned = action_task(22, "r", RECSYNC_ACTION_UPDATE, R"({"properties":{"a":"older"}})");
    lane.head(rid("r")).order = {recsync::model::Order::Version, 9};
    versioned.order = {recsync::model::Order::Version, 3};
    EXPECT_TRUE(lane.push(std::move(versioned), kPast));
    ASSERT_TRUE(lane.has_ready());
    const auto &t = lane.start_next();
    EXPECT_EQ(nlohmann::json::parse(t.payload)["properties"]["a"], "new");
    EXPECT_EQ(t.change_seq(), 20);
    EXPECT_EQ(t.order.value, 9);
    EXPECT_EQ(t.absorbed, (std::vector<int64_t>{21, 22}));
}

TEST(LaneCoalescing, ATaskInFlightIsNeverTouched) {
    Lane lane(connection(), counter(), SteadyClock::now());
    lane.push(action_task(1, "r", RECSYNC_ACTION_CREATE, "v1"), kPast);
    ASSERT_TRUE(lane.has_ready());
    EXPECT_EQ(lane.start_next().payload, "v1");
    EXPECT_FALSE(lane.push(action_task(2, "r", RECSYNC_ACTION_UPDATE, "v2"), kPast));  // nothing waiting to fold into
    EXPECT_TRUE(lane.push(action_task(3, "r", RECSYNC_ACTION_UPDATE, "v3"), kPast));   // into the waiting update
    EXPECT_EQ(lane.head(rid("r")).payload, "v1");
    lane.finish(rid("r"), SteadyClock::now());
    ASSERT_TRUE(lane.has_ready());
    auto &t = lane.start_next();
    EXPECT_EQ(t.action, RECSYNC_ACTION_UPDATE);
    EXPECT_EQ(t.payload, "v3");
    EXPECT_EQ(t.id, 2);
}

// A create that never went out, then a delete: the delete takes its place (and the create
// leaves the log with it). At the head the sync state decides: a record never made there
// needs no call; one made by an earlier create (linked) is deleted. Never "nothing" by
// itself: that is what left records a repeated create had made in the CRM.
TEST(LaneCoalescing, ADeleteTakesThePlaceOfAnUnsentCreate) {
    Lane lane(connection(), counter(), SteadyClock::now());
    lane.push(action_task(1, "r", RECSYNC_ACTION_CREATE), kPast);
    lane.push(action_task(2, "other", RECSYNC_ACTION_CREATE), kPast);
    EXPECT_TRUE(lane.push(action_task(3, "r", RECSYNC_ACTION_DELETE), kPast));
    EXPECT_EQ(lane.held(), 2u);
    ASSERT_TRUE(lane.has_ready());
    const auto &t = lane.start_next();
    EXPECT_EQ(t.action, RECSYNC_ACTION_DELETE);
    EXPECT_EQ(t.id, 3);
    EXPECT_EQ(t.absorbed, std::vector<int64_t>{1});
}

TEST(LaneCoalescing, AnAttemptedCreateIsNotReplacedByADelete) {
    Lane lane(connection(), counter(), SteadyClock::now());
    lane.push(action_task(1, "r", RECSYNC_ACTION_CREATE), kPast);
    ASSERT_TRUE(lane.has_ready());
    lane.start_next().attempts = 1;  // it may have reached the CRM (e.g. a timeout)
    lane.retry_at(rid("r"), kPast, SteadyClock::now());
    EXPECT_FALSE(lane.push(action_task(2, "r", RECSYNC_ACTION_DELETE), kPast));
    EXPECT_EQ(lane.held(), 2u);
    EXPECT_EQ(lane.head(rid("r")).action, RECSYNC_ACTION_CREATE);
}

// The fold bug the review found: an upsert whose call went out (its answer lost) may have
// made the record; a delete that replaced it found no id and sent nothing.
TEST(LaneCoalescing, AnUpsertThatMayHaveGoneOutIsNotReplacedByADelete) {
    Lane lane(connection(), counter(), SteadyClock::now());
    lane.push(action_task(1, "r", RECSYNC_ACTION_UPSERT, "v1"), kPast);
    ASSERT_TRUE(lane.has_ready());
    lane.start_next().send = recsync::model::SendState::SentUnmarked;
    lane.retry_at(rid("r"), kPast, SteadyClock::now());
    EXPECT_FALSE(lane.push(action_task(2, "r", RECSYNC_ACTION_DELETE), kPast));
    EXPECT_EQ(lane.held(), 2u);
}

// What an attempted create is spared is a delete, not updates: they merge into it while
// it waits for its retry, which then goes out (as an in-doubt create) with the latest state.
TEST(LaneCoalescing, UpdatesMergeIntoAnAttemptedCreateWaitingForItsRetry) {
    Lane lane(connection(), counter(), SteadyClock::now());
    lane.push(action_task(1, "r", RECSYNC_ACTION_CREATE, R"({"properties":{"a":"1"}})"), kPast);
    ASSERT_TRUE(lane.has_ready());
    lane.start_next().attempts = 1;
    const auto retry = SteadyClock::now() + 1h;
    lane.retry_at(rid("r"), retry, SteadyClock::now());
    EXPECT_TRUE(lane.push(action_task(2, "r", RECSYNC_ACTION_UPDATE, R"({"properties":{"a":"2","b":"2"}})"), kPast));
    EXPECT_EQ(lane.held(), 1u);
    EXPECT_FALSE(lane.has_ready()) << "the update must not bring the retry forward";
    EXPECT_EQ(lane.next_retry(), retry);
    lane.promote_due(retry);
    ASSERT_TRUE(lane.has_ready());
    const auto &t = lane.start_next();
    EXPECT_EQ(t.action, RECSYNC_ACTION_CREATE);
    EXPECT_EQ(t.attempts, 1);
    EXPECT_EQ(nlohmann::json::parse(t.payload), nlohmann::json::parse(R"({"properties":{"a":"2","b":"2"}})"));
}

// Resumed after a restart: no attempt counted, but its call may have gone out (the
// dispatcher marks what an earlier run may have sent: SentUnmarked, or the store's mark).
TEST(LaneCoalescing, ACreateSentBeforeACrashIsNotReplacedByADelete) {
    for (const auto state : {recsync::model::SendState::Sent, recsync::model::SendState::SentUnmarked}) {
        Lane lane(connection(), counter(), SteadyClock::now());
        auto create = action_task(1, "r", RECSYNC_ACTION_CREATE);
        create.send = state;
        lane.push(std::move(create), kPast);
        EXPECT_FALSE(lane.push(action_task(2, "r", RECSYNC_ACTION_DELETE), kPast));
        EXPECT_EQ(lane.held(), 2u);
    }
}

// A replayed delete (an older change) must not take the place of a newer change waiting
// for the record (its re-creation, say): it follows it, and is stale at the head.
TEST(LaneCoalescing, AnOlderDeleteDoesNotReplaceANewerWaitingTask) {
    Lane lane(connection(), counter(), SteadyClock::now());
    lane.push(action_task(90, "r", RECSYNC_ACTION_CREATE, "v"), kPast);
    auto replay = action_task(91, "r", RECSYNC_ACTION_DELETE);
    replay.seq = 5;
    EXPECT_FALSE(lane.push(std::move(replay), kPast));
    EXPECT_EQ(lane.held(), 2u);
    ASSERT_TRUE(lane.has_ready());
    EXPECT_EQ(lane.start_next().action, RECSYNC_ACTION_CREATE);
}

TEST(LaneCoalescing, DeleteReplacesAWaitingUpdate) {
    Lane lane(connection(), counter(), SteadyClock::now());
    lane.push(action_task(1, "r", RECSYNC_ACTION_UPDATE, "v1"), kPast);
    EXPECT_TRUE(lane.push(action_task(2, "r", RECSYNC_ACTION_DELETE), kPast));
    ASSERT_TRUE(lane.has_ready());
    auto &t = lane.start_next();
    EXPECT_EQ(t.action, RECSYNC_ACTION_DELETE);
    EXPECT_EQ(t.id, 2);
    EXPECT_EQ(t.absorbed, std::vector<int64_t>{1});
}

// A record changed without end while its CRM is down folds into a task up to a bound; past
// it, the next change queues as a task of its own (which folds the ones after it).
TEST(LaneCoalescing, FoldingIntoOneTaskIsBounded) {
    Lane lane(connection(), counter(), SteadyClock::now());
    lane.push(action_task(1, "r", RECSYNC_ACTION_CREATE, "v"), kPast);
    const int64_t n = static_cast<int64_t>(Lane::kMaxAbsorbed) + 5;
    for (int64_t i = 2; i <= n + 1; ++i) lane.push(action_task(i, "r", RECSYNC_ACTION_UPDATE, "v"), kPast);
    EXPECT_EQ(lane.held(), 2u);
    EXPECT_EQ(lane.head(rid("r")).absorbed.size(), Lane::kMaxAbsorbed);
}

TEST(LaneCoalescing, AStaleRetryEntryNeverStartsARecordEarly) {
    Lane lane(connection(), counter(), SteadyClock::now());
    lane.push(action_task(1, "r", RECSYNC_ACTION_CREATE), kPast);
    lane.push(action_task(2, "r", RECSYNC_ACTION_DELETE), kPast);  // takes the create's place
    lane.push(action_task(3, "r", RECSYNC_ACTION_CREATE), kPast);  // queues behind it
    ASSERT_TRUE(lane.has_ready());
    EXPECT_EQ(lane.start_next().id, 2);
    lane.finish(rid("r"), SteadyClock::now());
    ASSERT_TRUE(lane.has_ready());
    EXPECT_EQ(lane.start_next().id, 3);
    lane.retry_at(rid("r"), SteadyClock::now() + 1h, SteadyClock::now());
    EXPECT_FALSE(lane.has_ready()) << "no leftover entry may start it before its retry time";
}
