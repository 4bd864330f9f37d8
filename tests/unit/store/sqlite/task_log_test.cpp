// TaskLog through the SQLite backend (store::open_state_backend): ids and order, group
// commit, failed commits, the event model (event-id deduplication, record orders),
// dead-letter consumption, cursors, reopening, and the upgrade of older databases.
// SqliteDb is used directly only to build an old database, to break a commit from a
// second connection, or to look at what no interface shows.
#include "store/sqlite/schema.hpp"
#include "store/sqlite/sqlite_db.hpp"
#include "store/state_backend.hpp"
#include "unit/test_support.hpp"
#include "util/clock.hpp"

#include "config/config.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using recsync::config::StateConfig;
using recsync::model::Change;
using recsync::model::Order;
using recsync::model::SendState;
using recsync::model::Task;
using recsync::store::AppendBatch;
using recsync::store::Appended;
using recsync::store::append_and_wait;
using recsync::store::batch_of;
using recsync::store::CommitCallbackScope;
using recsync::store::Cursor;
using recsync::store::DeadLetter;
using recsync::store::DeliveryBatch;
using recsync::store::open_state_backend;
using recsync::store::PlannedChange;
using recsync::store::sqlite::SqliteDb;
using recsync::store::StateBackend;
using recsync::testing::TempDir;

Task task(const std::string &key, const std::string &connection = "crm", recsync_action action = RECSYNC_ACTION_CREATE) {
    Task t;
    t.connection = connection;
    t.object = "contacts";
    t.record_key = key;
    t.action = action;
    t.payload = action == RECSYNC_ACTION_DELETE ? "" : "{\"key\":\"" + key + "\"}";
    return t;
}

PlannedChange change(const std::string &source, const std::string &event_id, const std::string &key, Order order, std::vector<Task> tasks) {
    PlannedChange c;
    c.source = source;
    c.event_id = event_id;
    c.entity = "contact";
    c.record_key = key;
    c.order = order;
    c.tasks = std::move(tasks);
    return c;
}

// One change with one task for its record (the usual shape of an event).
PlannedChange event(const std::string &event_id, const std::string &key, Order order = {}, const std::string &source = "internal") {
    Task t = task(key);
    t.order = order;  // as ingest plans it: the task carries its change's order
    return change(source, event_id, key, order, {t});
}

AppendBatch batch(std::vector<PlannedChange> changes) {
    AppendBatch b;
    b.changes = std::move(changes);
    return b;
}

std::vector<std::string> keys(const std::vector<Task> &tasks) {
    std::vector<std::string> out;
    for (const auto &t : tasks) out.push_back(t.record_key);
    return out;
}

// Holds the log's commit thread in the callback of a commit of its own (one task, key
// "holder") until release(): appends made meanwhile all wait for the next commit, and
// share it.
class Holder {
public:
    explicit Holder(recsync::store::TaskLog &log) {
        log.append(batch_of({task("holder")}), [this](Appended &&) {
            entered_.set_value();
            release_.get_future().wait();
        });
        entered_.get_future().wait();
    }
    ~Holder() { release(); }
    void release() {
        if (!released_) release_.set_value();
        released_ = true;
    }

private:
    std::promise<void> entered_, release_;
    bool released_ = false;
};

class TaskLogTest : public ::testing::Test {
protected:
    void SetUp() override { backend_ = open(); }

    std::string path() const { return (dir_.path() / file_).string(); }
    std::unique_ptr<StateBackend> open(int commit_window_us = 0, int64_t event_id_retention_ms = 7LL * 86'400'000) const {
        return open_state_backend(StateConfig{path(), "normal", commit_window_us, event_id_retention_ms});
    }
    recsync::store::TaskLog &log() { return backend_->tasks(); }
    std::vector<Task> all(const std::string &connection = "crm") { return log().read(connection, 0, 1'000'000); }

    // A dead letter made the way the dispatcher makes one: its task leaves the log in the
    // commit that adds the letter. Returns the letter's id.
    int64_t dead_letter_of(const std::string &key) {
        auto appended = append_and_wait(log(), batch_of({task(key)}));
        DeadLetter d;
        d.task = appended.tasks.at(0);
        d.reason = "rejected";
        DeliveryBatch b;
        b.finished.push_back(d.task.id);
        b.dead_letters.push_back(d);
        EXPECT_TRUE(backend_->deliveries().record(b, true));
        auto letters = backend_->dead_letters().list(1'000'000);
        EXPECT_FALSE(letters.empty());
        return letters.empty() ? 0 : letters.back().id;
    }

    // Renames `tasks` away from a second connection: the backend's next commit fails.
    void break_tasks_table() {
        SqliteDb other(path(), "normal");
        other.exec("ALTER TABLE tasks RENAME TO tasks_elsewhere");
    }
    void repair_tasks_table() {
        SqliteDb other(path(), "normal");
        other.exec("ALTER TABLE tasks_elsewhere RENAME TO tasks");
    }

    TempDir dir_;
    std::string file_ = "state.db";  // the old-database tests use another
    std::unique_ptr<StateBackend> backend_;
};

// --- ids, times, fields ---------------------------------------------------------------

TEST_F(TaskLogTest, AppendAssignsIncreasingIds) {
    const auto first = append_and_wait(log(), batch_of({task("a"), task("b"), task("c")}));
    ASSERT_EQ(first.tasks.size(), 3u);
    EXPECT_GT(first.tasks[0].id, 0);
    EXPECT_LT(first.tasks[0].id, first.tasks[1].id);
    EXPECT_LT(first.tasks[1].id, first.tasks[2].id);
    EXPECT_EQ(keys(first.tasks), (std::vector<std::string>{"a", "b", "c"}));
    const auto more = append_and_wait(log(), batch_of({task("d")}));
    ASSERT_EQ(more.tasks.size(), 1u);
    EXPECT_GT(more.tasks[0].id, first.tasks[2].id);
    EXPECT_EQ(log().count(), 4);
    EXPECT_EQ(log().last_id(), more.tasks[0].id);
}

TEST_F(TaskLogTest, IdsAreNeverReusedAfterTheNewestTaskFinishes) {
    const auto a = append_and_wait(log(), batch_of({task("a"), task("b")}));
    DeliveryBatch done;
    done.finished = {a.tasks[0].id, a.tasks[1].id};
    ASSERT_TRUE(backend_->deliveries().record(done, true));
    EXPECT_EQ(log().last_id(), a.tasks[1].id) << "the newest id given, whether or not its task is still there";
    const auto next = append_and_wait(log(), batch_of({task("c")}));
    EXPECT_GT(next.tasks.at(0).id, a.tasks[1].id);
}

TEST_F(TaskLogTest, AppendSetsCreatedTimeUnlessGiven) {
    std::vector<Task> tasks = {task("a"), task("b")};
    tasks[1].created_ms = 1234;
    const int64_t before = recsync::util::epoch_ms();
    const auto a = append_and_wait(log(), batch_of(tasks));
    const int64_t after = recsync::util::epoch_ms();
    ASSERT_EQ(a.tasks.size(), 2u);
    EXPECT_GE(a.tasks[0].created_ms, before);
    EXPECT_LE(a.tasks[0].created_ms, after);
    EXPECT_EQ(a.tasks[1].created_ms, 1234);
    const auto stored = all();
    ASSERT_EQ(stored.size(), 2u);
    EXPECT_EQ(stored[0].created_ms, a.tasks[0].created_ms);
    EXPECT_EQ(stored[1].created_ms, 1234);
}

TEST_F(TaskLogTest, AppendingNothingStoresNothingAndStillCallsBack) {
    const auto a = append_and_wait(log(), AppendBatch{});
    EXPECT_TRUE(a.tasks.empty());
    EXPECT_FALSE(a.error);
    EXPECT_EQ(a.duplicates + a.stale + a.replays_gone, 0u);
    const auto b = append_and_wait(log(), batch_of({}));
    EXPECT_TRUE(b.tasks.empty());
    // A change no rule fired for: acknowledged, no task.
    const auto c = append_and_wait(log(), batch({change("internal", "", "k", {}, {})}));
    EXPECT_TRUE(c.tasks.empty());
    EXPECT_EQ(log().count(), 0);
    EXPECT_EQ(log().last_id(), 0);
    EXPECT_TRUE(all().empty());
    EXPECT_TRUE(log().count_by_connection().empty());
}

TEST_F(TaskLogTest, EveryFieldRoundTripsThroughRead) {
    Task full = task("a", "crm", RECSYNC_ACTION_UPDATE);
    full.object = "companies";
    full.change = Change::Updated;
    full.order = {Order::Time, 1'700'000'000'123};
    full.payload = "{\"name\":\"Zoë 東京 🚀\"}";
    full.attempts = 2;
    full.not_before_ms = 5555;
    full.created_ms = 4444;
    full.send = SendState::Sent;
    full.seq = 3;  // a replay's place in its record's order
    Task del = task("b", "crm", RECSYNC_ACTION_DELETE);
    del.change = Change::Deleted;
    del.order = {Order::Version, 42};
    Task upsert = task("c", "crm", RECSYNC_ACTION_UPSERT);
    upsert.change = Change::Created;
    Task absent = task("d", "crm", RECSYNC_ACTION_FIND);
    absent.send = SendState::Absent;  // stored as a mark: it went out before its FIND

    const auto a = append_and_wait(log(), batch_of({full, del, upsert, absent}));
    ASSERT_EQ(a.tasks.size(), 4u);
    const auto stored = all();
    ASSERT_EQ(stored.size(), 4u);

    const Task &s = stored[0];
    EXPECT_EQ(s.id, a.tasks[0].id);
    EXPECT_EQ(s.connection, "crm");
    EXPECT_EQ(s.object, "companies");
    EXPECT_EQ(s.record_key, "a");
    EXPECT_EQ(s.action, RECSYNC_ACTION_UPDATE);
    EXPECT_EQ(s.change, Change::Updated);
    EXPECT_EQ(s.order, (Order{Order::Time, 1'700'000'000'123}));
    EXPECT_EQ(s.payload, full.payload);
    EXPECT_EQ(s.attempts, 2);
    EXPECT_EQ(s.not_before_ms, 5555);
    EXPECT_EQ(s.created_ms, 4444);
    EXPECT_EQ(s.send, SendState::Sent);
    EXPECT_EQ(s.seq, 3);
    EXPECT_EQ(s.change_seq(), 3);
    EXPECT_EQ(s.from_dead_letter, 0);

    EXPECT_EQ(stored[1].action, RECSYNC_ACTION_DELETE);
    EXPECT_EQ(stored[1].change, Change::Deleted);
    EXPECT_EQ(stored[1].order, (Order{Order::Version, 42}));
    EXPECT_EQ(stored[1].payload, "");
    EXPECT_EQ(stored[1].attempts, 0);
    EXPECT_EQ(stored[1].not_before_ms, 0);
    EXPECT_EQ(stored[1].send, SendState::Unsent);
    EXPECT_EQ(stored[1].seq, 0);  // its own id is its change's place
    EXPECT_EQ(stored[1].change_seq(), stored[1].id);

    EXPECT_EQ(stored[2].action, RECSYNC_ACTION_UPSERT);
    EXPECT_EQ(stored[2].change, Change::Created);
    EXPECT_EQ(stored[2].order, Order{});
    EXPECT_EQ(stored[3].action, RECSYNC_ACTION_FIND);
    EXPECT_EQ(stored[3].send, SendState::Sent);
}

// --- read, counts ------------------------------------------------------------------------

TEST_F(TaskLogTest, ReadReturnsOneConnectionsTasksOldestFirstAfterAnIdUpToALimit) {
    const auto a = append_and_wait(log(), batch_of({task("a1", "a"), task("b1", "b"), task("a2", "a"), task("a3", "it's, a"), task("a4", "a")}));
    const auto more = append_and_wait(log(), batch_of({task("a5", "a"), task("b2", "b")}));
    EXPECT_EQ(keys(log().read("a", 0, 100)), (std::vector<std::string>{"a1", "a2", "a4", "a5"}));
    EXPECT_EQ(keys(log().read("b", 0, 100)), (std::vector<std::string>{"b1", "b2"}));
    EXPECT_EQ(keys(log().read("it's, a", 0, 100)), (std::vector<std::string>{"a3"}));  // a name, not syntax
    EXPECT_EQ(keys(log().read("a", 0, 2)), (std::vector<std::string>{"a1", "a2"}));
    // After an id: the next window starts past the last one read.
    const auto window = log().read("a", 0, 2);
    EXPECT_EQ(keys(log().read("a", window.back().id, 2)), (std::vector<std::string>{"a4", "a5"}));
    EXPECT_EQ(keys(log().read("a", a.tasks[1].id, 100)), (std::vector<std::string>{"a2", "a4", "a5"}));  // after b1's id
    EXPECT_TRUE(log().read("a", more.tasks[0].id, 100).empty());
    EXPECT_TRUE(log().read("a", 0, 0).empty());
    EXPECT_TRUE(log().read("nobody", 0, 100).empty());
    const auto window_a = log().read("a", 0, 100);
    for (size_t i = 1; i < window_a.size(); ++i) EXPECT_LT(window_a[i - 1].id, window_a[i].id);
}

TEST_F(TaskLogTest, CountsPerConnectionTotalAndLastId) {
    EXPECT_EQ(log().count(), 0);
    EXPECT_EQ(log().last_id(), 0);
    const auto a = append_and_wait(log(), batch_of({task("1", "a"), task("2", "b"), task("3", "a"), task("4", "c"), task("5", "a")}));
    EXPECT_EQ(log().count_by_connection(), (std::map<std::string, int64_t>{{"a", 3}, {"b", 1}, {"c", 1}}));
    EXPECT_EQ(log().count(), 5);
    EXPECT_EQ(log().last_id(), a.tasks.back().id);
    DeliveryBatch done;
    done.finished = {a.tasks[1].id, a.tasks[4].id};  // b's only task, and the newest
    ASSERT_TRUE(backend_->deliveries().record(done, true));
    EXPECT_EQ(log().count_by_connection(), (std::map<std::string, int64_t>{{"a", 2}, {"c", 1}}));
    EXPECT_EQ(log().count(), 3);
    EXPECT_EQ(log().last_id(), a.tasks[4].id) << "the newest id given, finished or not";
}

// --- group commit ------------------------------------------------------------------------

TEST_F(TaskLogTest, ConcurrentAppendsLoseNothingAndKeepEachSendersOrder) {
    constexpr int kThreads = 8, kPerThread = 100;
    std::vector<std::vector<int64_t>> ids(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i) {
                const auto a = append_and_wait(log(), batch_of({task("t" + std::to_string(t) + "-" + std::to_string(i)), task("x")}));
                ASSERT_EQ(a.tasks.size(), 2u);
                ASSERT_GT(a.tasks[0].id, 0);
                ASSERT_EQ(a.tasks[1].id, a.tasks[0].id + 1) << "a request's tasks stay together and in order";
                ids[t].push_back(a.tasks[0].id);
            }
        });
    for (auto &th : threads) th.join();
    EXPECT_EQ(log().count(), kThreads * kPerThread * 2);
    for (const auto &mine : ids)
        for (size_t i = 1; i < mine.size(); ++i) EXPECT_LT(mine[i - 1], mine[i]) << "one sender's requests keep their order";
    std::set<int64_t> distinct;
    for (const auto &mine : ids) distinct.insert(mine.begin(), mine.end());
    EXPECT_EQ(distinct.size(), static_cast<size_t>(kThreads * kPerThread));
}

// Appends that arrive while the commit thread is busy (here: in the callback of the
// commit before, held until they are all in) wait together and share the next commit.
// Each callback counts the tasks committed when it runs (callbacks run between commits):
// one commit, one count.
TEST_F(TaskLogTest, AppendsArrivingDuringACommitShareTheNextOne) {
    constexpr int kThreads = 4, kPerThread = 25;
    Holder hold(log());
    std::mutex m;
    std::vector<int64_t> seen_counts;
    std::vector<Task> stored;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i)
                log().append(batch_of({task("t" + std::to_string(t) + "-" + std::to_string(i))}), [&](Appended &&a) {
                    EXPECT_FALSE(a.error);
                    const int64_t now = log().count();
                    std::lock_guard l(m);
                    seen_counts.push_back(now);
                    stored.insert(stored.end(), a.tasks.begin(), a.tasks.end());
                });
        });
    for (auto &th : threads) th.join();
    hold.release();
    log().flush();
    std::lock_guard l(m);
    ASSERT_EQ(seen_counts.size(), static_cast<size_t>(kThreads * kPerThread));
    EXPECT_EQ(std::set<int64_t>(seen_counts.begin(), seen_counts.end()), std::set<int64_t>{1 + kThreads * kPerThread}) << "100 appends, one commit";
    ASSERT_EQ(stored.size(), static_cast<size_t>(kThreads * kPerThread));
    for (size_t i = 1; i < stored.size(); ++i) EXPECT_EQ(stored[i].id, stored[i - 1].id + 1) << "callbacks in commit order";
    EXPECT_EQ(log().count(), 1 + kThreads * kPerThread);
}

// Done callbacks run in append order, on the commit thread, with the stored tasks; flush()
// returns once every earlier append's callback ran.
TEST_F(TaskLogTest, CallbacksRunInAppendOrderWithIds) {
    std::mutex m;
    std::vector<std::pair<int, int64_t>> seen;  // (append number, first id)
    std::atomic<bool> on_caller_thread{false}, outside_scope{false};
    const auto caller = std::this_thread::get_id();
    for (int i = 0; i < 50; ++i)
        log().append(batch_of({task("a" + std::to_string(i)), task("b" + std::to_string(i))}), [&, i](Appended &&a) {
            if (std::this_thread::get_id() == caller) on_caller_thread = true;
            if (!CommitCallbackScope::active()) outside_scope = true;
            ASSERT_FALSE(a.error);
            ASSERT_EQ(a.tasks.size(), 2u);
            EXPECT_EQ(a.tasks[0].record_key, "a" + std::to_string(i));
            EXPECT_EQ(a.tasks[1].id, a.tasks[0].id + 1);
            std::lock_guard l(m);
            seen.emplace_back(i, a.tasks[0].id);
        });
    log().flush();
    std::lock_guard l(m);
    ASSERT_EQ(seen.size(), 50u);
    for (size_t i = 0; i < seen.size(); ++i) {
        EXPECT_EQ(seen[i].first, static_cast<int>(i));
        if (i) {
            EXPECT_LT(seen[i - 1].second, seen[i].second);
        }
    }
    EXPECT_FALSE(on_caller_thread.load());
    EXPECT_FALSE(outside_scope.load()) << "callbacks run inside a CommitCallbackScope";
    EXPECT_FALSE(CommitCallbackScope::active());
    EXPECT_EQ(log().count(), 100);
}

// A commit that fails reports its error to every append in it and stores none of them:
// no task, no event id, no record order, no cursor. The log goes on afterwards.
TEST_F(TaskLogTest, AFailedCommitReportsTheErrorAndStoresNothing) {
    append_and_wait(log(), batch_of({task("before")}));
    log().flush();
    break_tasks_table();
    std::atomic<int> errors{0};
    for (int i = 0; i < 5; ++i)
        log().append(batch({event("e" + std::to_string(i), "k" + std::to_string(i), {Order::Version, 10})}), [&](Appended &&a) {
            EXPECT_TRUE(a.error);
            EXPECT_TRUE(a.tasks.empty());
            EXPECT_EQ(a.duplicates + a.stale + a.replays_gone, 0u);
            ++errors;
        });
    std::string msg;
    RECSYNC_EXPECT_THROW_MSG(append_and_wait(log(), batch_of({task("sync")})), std::exception, msg);
    EXPECT_NE(msg.find("tasks"), std::string::npos) << msg;
    log().flush();
    EXPECT_EQ(errors.load(), 5);
    repair_tasks_table();
    EXPECT_EQ(keys(all()), (std::vector<std::string>{"before"}));
    // Nothing of the failed commits stuck: the same ids and orders are accepted now.
    const auto again = append_and_wait(log(), batch({event("e0", "k0", {Order::Version, 1}), event("e1", "k1", {Order::Version, 9})}));
    EXPECT_EQ(again.duplicates, 0u);
    EXPECT_EQ(again.stale, 0u);
    EXPECT_EQ(keys(again.tasks), (std::vector<std::string>{"k0", "k1"}));
    EXPECT_EQ(log().count(), 3);
}

// What was appended is committed before the log goes, callbacks included.
TEST_F(TaskLogTest, DestroyingTheLogCommitsWhatWasAppended) {
    backend_.reset();
    auto slow = open(/*commit_window_us=*/200'000);
    std::atomic<int> done{0};
    for (int i = 0; i < 20; ++i)
        slow->tasks().append(batch_of({task("k" + std::to_string(i))}), [&](Appended &&a) {
            EXPECT_FALSE(a.error);
            EXPECT_EQ(a.tasks.size(), 1u);
            ++done;
        });
    slow.reset();
    EXPECT_EQ(done.load(), 20);
    backend_ = open();
    EXPECT_EQ(log().count(), 20);
}

// The commit window: the commit thread waits that long after a group's first append, so
// appends made meanwhile share its commit. Each callback counts the committed tasks: all
// five see all five (one commit), not 1, 2, 3, ... The window is long (1 s) only so that
// five appends in a row surely fit in it; nothing is timed.
TEST_F(TaskLogTest, TheCommitWindowGathersAppendsIntoOneCommit) {
    backend_.reset();
    backend_ = open(/*commit_window_us=*/1'000'000);
    std::mutex m;
    std::vector<int64_t> seen_counts;
    for (int i = 0; i < 5; ++i)
        log().append(batch_of({task("k" + std::to_string(i))}), [&](Appended &&a) {
            EXPECT_FALSE(a.error);
            const int64_t now = log().count();
            std::lock_guard l(m);
            seen_counts.push_back(now);
        });
    log().flush();
    std::lock_guard l(m);
    EXPECT_EQ(seen_counts, (std::vector<int64_t>{5, 5, 5, 5, 5}));
}

// A Done callback runs on the commit thread: waiting for a commit from it would wait for
// itself, so append_and_wait and flush throw std::logic_error instead of hanging.
TEST_F(TaskLogTest, WaitingFromACommitCallbackThrowsInsteadOfHanging) {
    std::atomic<int> refused{0};
    log().append(batch_of({task("a")}), [&](Appended &&) {
        try {
            append_and_wait(log(), batch_of({task("b")}));
        } catch (const std::logic_error &) {
            ++refused;
        }
        try {
            log().flush();
        } catch (const std::logic_error &) {
            ++refused;
        }
    });
    log().flush();
    EXPECT_EQ(refused.load(), 2);
    EXPECT_EQ(keys(all()), (std::vector<std::string>{"a"}));
}

TEST_F(TaskLogTest, TasksSurviveReopen) {
    const auto a = append_and_wait(log(), batch_of({task("a"), task("b")}));
    DeliveryBatch done;
    done.finished = {a.tasks[0].id};
    ASSERT_TRUE(backend_->deliveries().record(done, true));
    backend_.reset();
    backend_ = open();
    const auto stored = all();
    ASSERT_EQ(stored.size(), 1u);
    EXPECT_EQ(stored[0].id, a.tasks[1].id);
    EXPECT_EQ(stored[0].record_key, "b");
    EXPECT_EQ(stored[0].payload, "{\"key\":\"b\"}");
    EXPECT_EQ(log().last_id(), a.tasks[1].id);
}

TEST_F(TaskLogTest, TheSentMarkSurvivesReopen) {
    const auto a = append_and_wait(log(), batch_of({task("a"), task("b")}));
    DeliveryBatch marks;
    marks.sent_marks = {a.tasks[1].id};
    ASSERT_TRUE(backend_->deliveries().record(marks, true));
    backend_.reset();
    backend_ = open();
    const auto stored = all();
    ASSERT_EQ(stored.size(), 2u);
    EXPECT_EQ(stored[0].send, SendState::Unsent);
    EXPECT_EQ(stored[1].send, SendState::Sent);
    EXPECT_TRUE(stored[1].in_doubt());
}

// --- event ids ---------------------------------------------------------------------------

TEST_F(TaskLogTest, AnEventIdSeenBeforeIsADuplicateAndStoresNoTask) {
    const auto first = append_and_wait(log(), batch({event("e-1", "k")}));
    EXPECT_EQ(first.tasks.size(), 1u);
    EXPECT_EQ(first.duplicates, 0u);
    const auto again = append_and_wait(log(), batch({event("e-1", "k")}));
    EXPECT_TRUE(again.tasks.empty());
    EXPECT_EQ(again.duplicates, 1u);
    EXPECT_EQ(log().count(), 1);
    // Even with other tasks: the id decides, not the content.
    const auto other_content = append_and_wait(log(), batch({change("internal", "e-1", "z", {}, {task("z"), task("y")})}));
    EXPECT_TRUE(other_content.tasks.empty());
    EXPECT_EQ(other_content.duplicates, 1u);
    EXPECT_EQ(log().count(), 1);
}

TEST_F(TaskLogTest, ARepeatWithinOneBatchIsADuplicate) {
    const auto a = append_and_wait(log(), batch({event("e", "k1"), event("f", "k2"), event("e", "k3"), event("e", "k4")}));
    EXPECT_EQ(keys(a.tasks), (std::vector<std::string>{"k1", "k2"}));
    EXPECT_EQ(a.duplicates, 2u);
    EXPECT_EQ(log().count(), 2);
}

TEST_F(TaskLogTest, ARepeatInAnotherBatchOfTheSameCommitIsADuplicate) {
    Holder hold(log());  // the two appends below wait together: one commit
    std::promise<Appended> first, second;
    log().append(batch({event("e", "k1")}), [&](Appended &&a) { first.set_value(std::move(a)); });
    log().append(batch({event("e", "k2")}), [&](Appended &&a) { second.set_value(std::move(a)); });
    hold.release();
    const auto a = first.get_future().get(), b = second.get_future().get();
    EXPECT_EQ(keys(a.tasks), (std::vector<std::string>{"k1"})) << "the first one is kept";
    EXPECT_EQ(a.duplicates, 0u);
    EXPECT_TRUE(b.tasks.empty());
    EXPECT_EQ(b.duplicates, 1u);
    EXPECT_EQ(log().count(), 1 + 1);  // the holder's task and k1
}

TEST_F(TaskLogTest, TheSameEventIdFromAnotherSourceIsNotADuplicate) {
    const auto a = append_and_wait(log(), batch({event("e", "k", {}, "internal"), event("e", "k", {}, "crm"), event("e", "k", {}, "erp")}));
    EXPECT_EQ(a.tasks.size(), 3u);
    EXPECT_EQ(a.duplicates, 0u);
    const auto b = append_and_wait(log(), batch({event("e", "k", {}, "crm")}));
    EXPECT_EQ(b.duplicates, 1u);
}

TEST_F(TaskLogTest, ChangesWithoutAnEventIdAreNeverDuplicates) {
    const auto a = append_and_wait(log(), batch({event("", "k"), event("", "k")}));
    const auto b = append_and_wait(log(), batch({event("", "k")}));
    EXPECT_EQ(a.tasks.size() + b.tasks.size(), 3u);
    EXPECT_EQ(a.duplicates + b.duplicates, 0u);
}

// An id is remembered for state.event_id_retention; a repeat after that is a new event.
TEST_F(TaskLogTest, AnEventIdOlderThanTheRetentionIsAcceptedAgain) {
    backend_.reset();
    backend_ = open(0, /*event_id_retention_ms=*/1);
    const auto first = append_and_wait(log(), batch({event("e", "k1")}));
    ASSERT_EQ(first.tasks.size(), 1u);
    const int64_t seen = recsync::util::epoch_ms();  // at or after the commit's time
    while (recsync::util::epoch_ms() <= seen + 1) std::this_thread::yield();
    const auto again = append_and_wait(log(), batch({event("e", "k2")}));
    EXPECT_EQ(again.duplicates, 0u) << "seen more than the retention ago: not a repeat";
    EXPECT_EQ(keys(again.tasks), (std::vector<std::string>{"k2"}));
    EXPECT_EQ(log().count(), 2);
}

// Expired ids leave the table as new ones come (inspected with a second connection: no
// interface shows the table).
TEST_F(TaskLogTest, ExpiredEventIdsArePruned) {
    backend_.reset();
    backend_ = open(0, /*event_id_retention_ms=*/1);
    append_and_wait(log(), batch({event("a", "k"), event("b", "k"), event("c", "k")}));
    auto rows = [&] {
        SqliteDb other(path(), "normal");
        auto l = other.lock();
        auto st = other.prepare("SELECT COUNT(*) FROM event_ids");
        EXPECT_TRUE(st.step());
        return st.column_int(0);
    };
    EXPECT_EQ(rows(), 3);
    const int64_t seen = recsync::util::epoch_ms();
    while (recsync::util::epoch_ms() <= seen + 1) std::this_thread::yield();
    append_and_wait(log(), batch({event("d", "k")}));
    EXPECT_EQ(rows(), 1) << "a, b and c expired; d is new";
}

// --- record orders -----------------------------------------------------------------------

TEST_F(TaskLogTest, AChangeOlderThanTheRecordsLastIsStaleAndStoresNoTask) {
    const auto v5 = append_and_wait(log(), batch({event("", "k", {Order::Version, 5})}));
    EXPECT_EQ(v5.tasks.size(), 1u);
    const auto v4 = append_and_wait(log(), batch({event("", "k", {Order::Version, 4})}));
    EXPECT_TRUE(v4.tasks.empty());
    EXPECT_EQ(v4.stale, 1u);
    EXPECT_EQ(v4.duplicates, 0u);
    const auto v6 = append_and_wait(log(), batch({event("", "k", {Order::Version, 6})}));
    EXPECT_EQ(v6.tasks.size(), 1u);
    EXPECT_EQ(v6.stale, 0u);
    // Stale against the newest (6), not the first (5).
    const auto v5b = append_and_wait(log(), batch({event("", "k", {Order::Version, 5})}));
    EXPECT_EQ(v5b.stale, 1u);
    EXPECT_EQ(log().count(), 2);
}

TEST_F(TaskLogTest, StaleWithinOneBatch) {
    const auto a = append_and_wait(log(), batch({event("", "k", {Order::Time, 2000}), event("", "k", {Order::Time, 1000}), event("", "k", {Order::Time, 3000})}));
    EXPECT_EQ(a.tasks.size(), 2u);
    EXPECT_EQ(a.stale, 1u);
    ASSERT_EQ(a.tasks.size(), 2u);
    EXPECT_EQ(a.tasks[0].order.value, 2000);
    EXPECT_EQ(a.tasks[1].order.value, 3000);
}

TEST_F(TaskLogTest, AnEqualOrderPasses) {
    append_and_wait(log(), batch({event("", "k", {Order::Version, 5})}));
    const auto same = append_and_wait(log(), batch({event("", "k", {Order::Version, 5})}));
    EXPECT_EQ(same.tasks.size(), 1u);
    EXPECT_EQ(same.stale, 0u);
}

// Orders of different kinds cannot be compared: the newer kind replaces the older.
// known(): what ingest asks before planning, on a read-only connection of its own.
TEST_F(TaskLogTest, KnownTellsRepeatsAndStaleChangesBeforeAnyCommit) {
    auto first = event("e1", "k", {Order::Version, 5});
    append_and_wait(log(), batch({first}));
    auto repeat = event("e1", "other", {});
    auto fresh = event("e2", "k2", {});
    auto older = event("", "k", {Order::Version, 3});
    auto same = event("", "k", {Order::Version, 5});
    auto newer = event("", "k", {Order::Version, 7});
    auto other_kind = event("", "k", {Order::Time, 1});
    auto other_source = event("e1", "k", {}, "crm");
    const auto k = log().known({repeat, fresh, older, same, newer, other_kind, other_source});
    using recsync::store::Known;
    EXPECT_EQ(k, (std::vector<Known>{Known::Duplicate, Known::New, Known::Stale, Known::New, Known::New, Known::New, Known::New}));
}

// An id seen within a minute of its retention's end is not called a repeat: the commit
// that follows might no longer see it, and the change would be acknowledged unplanned.
TEST_F(TaskLogTest, KnownLeavesIdsAboutToExpireToTheCommit) {
    backend_.reset();
    backend_ = open(0, /*event_id_retention_ms=*/1000);  // 1 s: every sighting is within a minute of expiring
    append_and_wait(log(), batch({event("e1", "k", {})}));
    EXPECT_EQ(log().known({event("e1", "k", {})}), std::vector<recsync::store::Known>{recsync::store::Known::New});
    EXPECT_EQ(append_and_wait(log(), batch({event("e1", "k", {})})).duplicates, 1u) << "the commit decides";
}

// Versions and times are kept apart: each is compared with the last of its own kind only,
// so a sender mixing them cannot slip an older version in behind a time.
TEST_F(TaskLogTest, EachKindOfOrderIsComparedWithItsOwnLastOnly) {
    append_and_wait(log(), batch({event("", "k", {Order::Version, 100})}));
    const auto time = append_and_wait(log(), batch({event("", "k", {Order::Time, 1})}));
    EXPECT_EQ(time.tasks.size(), 1u) << "a time after a version is not compared with it";
    const auto older_time = append_and_wait(log(), batch({event("", "k", {Order::Time, 0})}));
    EXPECT_EQ(older_time.stale, 1u) << "compared with the last time";
    const auto version = append_and_wait(log(), batch({event("", "k", {Order::Version, 3})}));
    EXPECT_EQ(version.stale, 1u) << "still compared with the version 100, whatever times came between";
    const auto newer_version = append_and_wait(log(), batch({event("", "k", {Order::Version, 101})}));
    EXPECT_EQ(newer_version.tasks.size(), 1u);
}

TEST_F(TaskLogTest, OrdersAreKeptPerSourceEntityAndRecord) {
    append_and_wait(log(), batch({event("", "k", {Order::Version, 10})}));
    PlannedChange other_entity = event("", "k", {Order::Version, 1});
    other_entity.entity = "company";
    const auto a = append_and_wait(log(), batch({event("", "k2", {Order::Version, 1}),            // another record
                                                  event("", "k", {Order::Version, 1}, "crm"),     // another source
                                                  std::move(other_entity)}));                    // another entity
    EXPECT_EQ(a.tasks.size(), 3u);
    EXPECT_EQ(a.stale, 0u);
    const auto b = append_and_wait(log(), batch({event("", "k", {Order::Version, 9})}));
    EXPECT_EQ(b.stale, 1u) << "the first record's order is untouched by the others";
}

TEST_F(TaskLogTest, AChangeWithoutOrderIsNeverStale) {
    append_and_wait(log(), batch({event("", "k", {Order::Version, 10})}));
    const auto none = append_and_wait(log(), batch({event("", "k"), event("", "k")}));
    EXPECT_EQ(none.tasks.size(), 2u);
    EXPECT_EQ(none.stale, 0u);
    const auto older = append_and_wait(log(), batch({event("", "k", {Order::Version, 9})}));
    EXPECT_EQ(older.stale, 1u) << "a change without order does not reset the record's order";
}

// A change no rule made a task of (or a skip rule) is still the record's newest change.
TEST_F(TaskLogTest, ASkippedChangeStillAdvancesTheOrder) {
    const auto skipped = append_and_wait(log(), batch({change("internal", "", "k", {Order::Version, 7}, {})}));
    EXPECT_TRUE(skipped.tasks.empty());
    EXPECT_EQ(skipped.stale, 0u);
    const auto older = append_and_wait(log(), batch({event("", "k", {Order::Version, 6})}));
    EXPECT_TRUE(older.tasks.empty());
    EXPECT_EQ(older.stale, 1u);
    EXPECT_EQ(log().count(), 0);
}

TEST_F(TaskLogTest, ADuplicateIsCountedOnceNotAlsoStale) {
    append_and_wait(log(), batch({event("e", "k", {Order::Version, 5})}));
    const auto repeat = append_and_wait(log(), batch({event("e", "k", {Order::Version, 4})}));
    EXPECT_EQ(repeat.duplicates, 1u);
    EXPECT_EQ(repeat.stale, 0u);
}

// --- dead letters consumed by their replay ----------------------------------------------

TEST_F(TaskLogTest, AReplayConsumesItsDeadLetterInTheSameCommit) {
    const int64_t letter = dead_letter_of("k");
    ASSERT_GT(letter, 0);
    ASSERT_EQ(backend_->dead_letters().count(), 1);
    Task replay = task("k");
    replay.from_dead_letter = letter;
    const auto a = append_and_wait(log(), batch_of({replay}));
    ASSERT_EQ(a.tasks.size(), 1u);
    EXPECT_EQ(a.replays_gone, 0u);
    EXPECT_EQ(a.tasks[0].from_dead_letter, 0) << "appending only";
    EXPECT_EQ(backend_->dead_letters().count(), 0);
    EXPECT_FALSE(backend_->dead_letters().get(letter));
    EXPECT_EQ(log().count(), 1);
}

TEST_F(TaskLogTest, AReplayOfALetterAlreadyGoneIsDroppedAndCounted) {
    const int64_t letter = dead_letter_of("k");
    Task replay = task("k");
    replay.from_dead_letter = letter;
    // Twice in one batch: the first takes the letter, the second finds it gone.
    const auto a = append_and_wait(log(), batch_of({replay, task("plain"), replay}));
    EXPECT_EQ(keys(a.tasks), (std::vector<std::string>{"k", "plain"}));
    EXPECT_EQ(a.replays_gone, 1u);
    const auto b = append_and_wait(log(), batch_of({replay}));
    EXPECT_TRUE(b.tasks.empty());
    EXPECT_EQ(b.replays_gone, 1u);
    Task never = task("n");
    never.from_dead_letter = 987654;
    const auto c = append_and_wait(log(), batch_of({never}));
    EXPECT_TRUE(c.tasks.empty());
    EXPECT_EQ(c.replays_gone, 1u);
    EXPECT_EQ(log().count(), 2);
}

TEST_F(TaskLogTest, AFailedReplayCommitKeepsTheLetter) {
    const int64_t letter = dead_letter_of("k");
    Task replay = task("k");
    replay.from_dead_letter = letter;
    break_tasks_table();
    EXPECT_THROW(append_and_wait(log(), batch_of({replay})), std::exception);
    repair_tasks_table();
    EXPECT_TRUE(backend_->dead_letters().get(letter));
    EXPECT_EQ(log().count(), 0);
}

// --- cursors -----------------------------------------------------------------------------

TEST_F(TaskLogTest, TheCursorMovesInTheCommitOfItsPage) {
    auto &cursors = backend_->cursors();
    EXPECT_EQ(cursors.get("crm", "contacts"), std::nullopt);
    AppendBatch page = batch({event("", "k1"), event("", "k2")});
    page.cursor = Cursor{"crm", "contacts", "2024-01-01T00:00:00Z|42"};
    const auto a = append_and_wait(log(), std::move(page));
    EXPECT_EQ(a.tasks.size(), 2u);
    EXPECT_EQ(cursors.get("crm", "contacts"), "2024-01-01T00:00:00Z|42");
    EXPECT_EQ(cursors.get("crm", "companies"), std::nullopt);
    EXPECT_EQ(cursors.get("other", "contacts"), std::nullopt);
    // A page with nothing new still moves it; another object's is its own.
    AppendBatch empty_page;
    empty_page.cursor = Cursor{"crm", "contacts", "43"};
    append_and_wait(log(), std::move(empty_page));
    AppendBatch companies;
    companies.cursor = Cursor{"crm", "companies", "c-1"};
    append_and_wait(log(), std::move(companies));
    EXPECT_EQ(cursors.get("crm", "contacts"), "43");
    EXPECT_EQ(cursors.get("crm", "companies"), "c-1");
    backend_.reset();
    backend_ = open();
    EXPECT_EQ(backend_->cursors().get("crm", "contacts"), "43");
}

TEST_F(TaskLogTest, ACursorWhoseCommitFailsStaysWhereItWas) {
    AppendBatch first;
    first.cursor = Cursor{"crm", "contacts", "1"};
    append_and_wait(log(), std::move(first));
    break_tasks_table();
    AppendBatch page = batch({event("", "k")});
    page.cursor = Cursor{"crm", "contacts", "2"};
    EXPECT_THROW(append_and_wait(log(), std::move(page)), std::exception);
    repair_tasks_table();
    EXPECT_EQ(backend_->cursors().get("crm", "contacts"), "1");
    EXPECT_EQ(log().count(), 0);
}

// --- databases of earlier recsyncs -------------------------------------------------------

int64_t user_version(const std::string &path) {
    SqliteDb db(path, "normal");
    auto l = db.lock();
    auto st = db.prepare("PRAGMA user_version");
    EXPECT_TRUE(st.step());
    return st.column_int(0);
}

bool has_table(const std::string &path, const char *name) {
    SqliteDb db(path, "normal");
    return db.table_exists(name);
}

// The tables as the last recsync before the event model made them (TaskQueue and
// StateStore), with an id map keyed connection first, and user_version 0.
void make_old_database(const std::string &path) {
    SqliteDb old(path, "normal");
    old.exec(
        "CREATE TABLE tasks (id INTEGER PRIMARY KEY AUTOINCREMENT, connection TEXT NOT NULL, object TEXT NOT NULL,"
        " record_key TEXT NOT NULL, action INTEGER NOT NULL, payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
        " not_before INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, last_error TEXT, sent INTEGER NOT NULL DEFAULT 0)");
    old.exec(
        "CREATE TABLE id_map (connection TEXT NOT NULL, object TEXT NOT NULL, record_key TEXT NOT NULL,"
        " external_id TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (connection, object, record_key)) WITHOUT ROWID");
    old.exec(
        "CREATE TABLE dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, task_id INTEGER NOT NULL,"
        " connection TEXT NOT NULL, object TEXT NOT NULL, record_key TEXT NOT NULL,"
        " action INTEGER NOT NULL, payload TEXT NOT NULL, attempts INTEGER NOT NULL,"
        " request TEXT, response_status INTEGER, response_body TEXT, reason TEXT NOT NULL,"
        " created_at INTEGER NOT NULL, failed_at INTEGER NOT NULL, sent INTEGER NOT NULL DEFAULT 0)");
    old.exec(
        "INSERT INTO tasks(connection, object, record_key, action, payload, attempts, not_before, created_at, last_error, sent) VALUES"
        " ('crm', 'contacts', 'k1', 1, '{\"a\":1}', 0, 0, 5, NULL, 0),"
        " ('crm', 'contacts', 'k2', 2, '{\"a\":2}', 3, 777, 6, 'HTTP 503', 1),"
        " ('erp', 'accounts', 'k3', 4, '', 0, 0, 7, NULL, 0),"
        " ('crm', 'contacts', 'gone', 1, '{}', 0, 0, 8, NULL, 0)");
    old.exec("DELETE FROM tasks WHERE record_key = 'gone'");  // id 4 was used: never again
    old.exec("INSERT INTO id_map VALUES ('crm-a', 'contacts', 'c-1', 'A1', 1), ('crm-b', 'contacts', 'c-1', 'B1', 2), ('crm-a', 'deals', 'd-9', 'A9', 3)");
    old.exec(
        "INSERT INTO dead_letters(task_id, connection, object, record_key, action, payload, attempts, request, response_status, response_body,"
        " reason, created_at, failed_at, sent) VALUES (2, 'crm', 'contacts', 'dl', 1, '{\"x\":1}', 4, 'POST /x', 500, 'oops', 'gave up', 11, 12, 1)");
}

TEST_F(TaskLogTest, AnOldDatabaseIsUpgradedInPlaceKeepingTasksAndIds) {
    backend_.reset();
    file_ = "old.db";
    make_old_database(path());
    ASSERT_EQ(user_version(path()), 0);
    backend_ = open();

    const auto crm = all("crm");
    ASSERT_EQ(crm.size(), 2u);
    EXPECT_EQ(crm[0].id, 1);
    EXPECT_EQ(crm[0].record_key, "k1");
    EXPECT_EQ(crm[0].action, RECSYNC_ACTION_CREATE);
    EXPECT_EQ(crm[0].payload, "{\"a\":1}");
    EXPECT_EQ(crm[0].created_ms, 5);
    EXPECT_EQ(crm[0].send, SendState::Unsent);
    EXPECT_EQ(crm[0].change, Change::Unknown);  // the new columns' defaults
    EXPECT_EQ(crm[0].order, Order{});
    EXPECT_EQ(crm[0].seq, 0);
    EXPECT_EQ(crm[1].id, 2);
    EXPECT_EQ(crm[1].attempts, 3);
    EXPECT_EQ(crm[1].not_before_ms, 777);
    EXPECT_EQ(crm[1].send, SendState::Sent);
    EXPECT_EQ(keys(all("erp")), (std::vector<std::string>{"k3"}));
    EXPECT_EQ(log().last_id(), 4) << "the old table's AUTOINCREMENT high-water mark: ids go on after it";

    // The id map became the links' external ids.
    auto &state = backend_->sync_state();
    EXPECT_EQ(state.link({"crm-a", "contacts", "c-1"}).external_id, "A1");
    EXPECT_EQ(state.link({"crm-b", "contacts", "c-1"}).external_id, "B1");
    EXPECT_EQ(state.link({"crm-a", "deals", "d-9"}).external_id, "A9");
    const auto linked = state.link({"crm-a", "deals", "d-9"});
    EXPECT_EQ(linked.applied_seq, 0);
    EXPECT_FALSE(linked.deleted);
    EXPECT_FALSE(linked.maybe_exists);
    EXPECT_FALSE(state.link({"crm-a", "deals", "c-1"}).linked());

    // The dead letter keeps its fields; its change keeps its task's place (task 2).
    const auto letters = backend_->dead_letters().list(10);
    ASSERT_EQ(letters.size(), 1u);
    EXPECT_EQ(letters[0].task.id, 2);
    EXPECT_EQ(letters[0].task.change_seq(), 2);
    EXPECT_EQ(letters[0].task.record_key, "dl");
    EXPECT_EQ(letters[0].task.attempts, 4);
    EXPECT_EQ(letters[0].task.send, SendState::Sent);
    EXPECT_EQ(letters[0].request, "POST /x");
    EXPECT_EQ(letters[0].response_status, 500);
    EXPECT_EQ(letters[0].response_body, "oops");
    EXPECT_EQ(letters[0].reason, "gave up");
    EXPECT_EQ(letters[0].failed_ms, 12);

    // New tasks use the new columns, and ids go on after the old ones (4 was used).
    Task t = task("new");
    t.order = {Order::Version, 2};
    t.change = Change::Updated;
    const auto a = append_and_wait(log(), batch({change("internal", "ev", "new", {Order::Version, 2}, {t})}));
    ASSERT_EQ(a.tasks.size(), 1u);
    EXPECT_EQ(a.tasks[0].id, 5);
    EXPECT_EQ(all("crm").back().order, (Order{Order::Version, 2}));
    EXPECT_EQ(append_and_wait(log(), batch({event("ev", "new")})).duplicates, 1u);
    DeliveryBatch marks;
    marks.sent_marks = {1};
    ASSERT_TRUE(backend_->deliveries().record(marks, true));

    backend_.reset();
    EXPECT_EQ(user_version(path()), recsync::store::sqlite::kSchemaVersion);
    EXPECT_FALSE(has_table(path(), "id_map"));
    // Opening it again changes nothing.
    backend_ = open();
    EXPECT_EQ(all("crm").size(), 3u);
    EXPECT_EQ(all("crm")[0].send, SendState::Sent);
    EXPECT_EQ(backend_->sync_state().link({"crm-b", "contacts", "c-1"}).external_id, "B1");
    EXPECT_EQ(backend_->dead_letters().count(), 1);
}

// Older still: no `sent` columns, and the id map already keyed record first.
TEST_F(TaskLogTest, ADatabaseFromBeforeTheSentColumnsIsUpgraded) {
    backend_.reset();
    file_ = "older.db";
    {
        SqliteDb old(path(), "normal");
        old.exec(
            "CREATE TABLE tasks (id INTEGER PRIMARY KEY AUTOINCREMENT, connection TEXT NOT NULL, object TEXT NOT NULL,"
            " record_key TEXT NOT NULL, action INTEGER NOT NULL, payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
            " not_before INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, last_error TEXT)");
        old.exec(
            "CREATE TABLE id_map (connection TEXT NOT NULL, object TEXT NOT NULL, record_key TEXT NOT NULL,"
            " external_id TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (record_key, connection, object)) WITHOUT ROWID");
        old.exec(
            "CREATE TABLE dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, task_id INTEGER NOT NULL,"
            " connection TEXT NOT NULL, object TEXT NOT NULL, record_key TEXT NOT NULL,"
            " action INTEGER NOT NULL, payload TEXT NOT NULL, attempts INTEGER NOT NULL,"
            " request TEXT, response_status INTEGER, response_body TEXT, reason TEXT NOT NULL,"
            " created_at INTEGER NOT NULL, failed_at INTEGER NOT NULL)");
        old.exec("INSERT INTO tasks(connection, object, record_key, action, payload, created_at) VALUES('crm', 'contacts', 'k', 1, '{}', 5)");
        old.exec("INSERT INTO id_map VALUES ('crm', 'contacts', 'k', '77', 1)");
        old.exec(
            "INSERT INTO dead_letters(task_id, connection, object, record_key, action, payload, attempts, reason, created_at, failed_at)"
            " VALUES (9, 'crm', 'contacts', 'd', 1, '{}', 1, 'no', 1, 2)");
    }
    backend_ = open();
    const auto stored = all();
    ASSERT_EQ(stored.size(), 1u);
    EXPECT_EQ(stored[0].record_key, "k");
    EXPECT_EQ(stored[0].send, SendState::Unsent);
    DeliveryBatch marks;
    marks.sent_marks = {stored[0].id};
    ASSERT_TRUE(backend_->deliveries().record(marks, true));
    EXPECT_EQ(all()[0].send, SendState::Sent);
    EXPECT_EQ(backend_->sync_state().link({"crm", "contacts", "k"}).external_id, "77");
    const auto letter = backend_->dead_letters().list(1);
    ASSERT_EQ(letter.size(), 1u);
    EXPECT_EQ(letter[0].task.send, SendState::Unsent);
    EXPECT_EQ(letter[0].task.change_seq(), 9);
    backend_.reset();
    EXPECT_EQ(user_version(path()), recsync::store::sqlite::kSchemaVersion);
}

TEST_F(TaskLogTest, ADatabaseOfANewerRecsyncIsRefused) {
    backend_.reset();
    file_ = "future.db";
    {
        SqliteDb future(path(), "normal");
        future.exec("CREATE TABLE tasks_v9 (id INTEGER PRIMARY KEY)");
        future.exec(("PRAGMA user_version = " + std::to_string(recsync::store::sqlite::kSchemaVersion + 1)).c_str());
    }
    std::string msg;
    RECSYNC_EXPECT_THROW_MSG(open(), std::runtime_error, msg);
    EXPECT_NE(msg.find("made by a newer recsync"), std::string::npos) << msg;
    EXPECT_NE(msg.find(path()), std::string::npos) << msg;
    // Left as it was.
    EXPECT_EQ(user_version(path()), recsync::store::sqlite::kSchemaVersion + 1);
    EXPECT_FALSE(has_table(path(), "tasks"));
}

// ---- changes from a connection (B -> A): identity, first sightings, echoes ----------------

// A change from connection "crm" about its record `external_id`, with one task of `action`
// (on connection "erp", System A) as the rules would plan it: keyed by the id there.
PlannedChange from_crm(const std::string &external_id, recsync_action action = RECSYNC_ACTION_UPSERT, const std::string &modified = {}) {
    Task t = task(external_id, action == RECSYNC_ACTION_READ ? "crm" : "erp", action);
    PlannedChange c = change("crm", "", external_id, {}, {t});
    c.entity = "contacts";
    c.external_id = external_id;
    c.modified = modified;
    return c;
}

// What the dispatcher records when a create at "crm" answers with `external_id`.
void created_at_crm(StateBackend &b, const std::string &key, const std::string &external_id, const std::string &modified = {}) {
    DeliveryBatch d;
    recsync::model::LinkState s;
    s.external_id = external_id;
    s.written_modified = modified;
    d.links.push_back({{"crm", "contacts", key}, s, true});
    ASSERT_TRUE(b.deliveries().record(d, true));
}

TEST_F(TaskLogTest, AChangeFromAConnectionIsKeyedByTheRecordItsIdIsLinkedTo) {
    created_at_crm(*backend_, "a-1", "123");
    const auto a = append_and_wait(log(), batch({from_crm("123")}));
    ASSERT_EQ(a.tasks.size(), 1u);
    EXPECT_EQ(a.tasks[0].record_key, "a-1") << "System A's key, not the CRM's id";
    EXPECT_EQ(all("erp").at(0).record_key, "a-1");
}

TEST_F(TaskLogTest, ARecordFirstSeenThereIsLinkedToItsIdOnceItsChangeWrites) {
    // Only a read so far (hydration): nothing linked yet (it may be a record recsync's own
    // create just made, whose id is not recorded yet).
    const auto r = append_and_wait(log(), batch({from_crm("88", RECSYNC_ACTION_READ)}));
    ASSERT_EQ(r.tasks.size(), 1u);
    EXPECT_FALSE(backend_->sync_state().link({"crm", "contacts", "88"}).linked());
    // Its change writes to System A: from now on it is the record "88" there, linked.
    append_and_wait(log(), batch({from_crm("88")}));
    EXPECT_EQ(backend_->sync_state().link({"crm", "contacts", "88"}).external_id, "88");
    // A later create at the CRM that learns another record's id there does not take it.
    created_at_crm(*backend_, "a-7", "99");
    EXPECT_EQ(append_and_wait(log(), batch({from_crm("99")})).tasks.at(0).record_key, "a-7");
    EXPECT_EQ(append_and_wait(log(), batch({from_crm("88")})).tasks.at(0).record_key, "88");
}

TEST_F(TaskLogTest, AChangeCarryingTheStampOfRecsyncsOwnWriteIsAnEcho) {
    created_at_crm(*backend_, "a-1", "123", "2026-12-02T03:00:00.000Z");
    const auto echo = append_and_wait(log(), batch({from_crm("123", RECSYNC_ACTION_UPSERT, "2026-12-02T03:00:00.000Z")}));
    EXPECT_EQ(echo.echoes, 1u);
    EXPECT_TRUE(echo.tasks.empty());
    // Changed there since: another stamp, a real change.
    const auto edit = append_and_wait(log(), batch({from_crm("123", RECSYNC_ACTION_UPSERT, "2026-12-02T03:00:05.000Z")}));
    EXPECT_EQ(edit.echoes, 0u);
    ASSERT_EQ(edit.tasks.size(), 1u);
    EXPECT_EQ(edit.tasks[0].record_key, "a-1");
    // No stamp reported: never taken for an echo.
    EXPECT_EQ(append_and_wait(log(), batch({from_crm("123")})).tasks.size(), 1u);
}

// ---- conflicts: concurrent changes on both sides of a two-way pair ----------------------

constexpr uint8_t kLww = static_cast<uint8_t>(recsync::config::ConflictPolicy::LastWriterWins);
constexpr uint8_t kPreferInternal = static_cast<uint8_t>(recsync::config::ConflictPolicy::PreferInternal);
constexpr uint8_t kPreferExternal = static_cast<uint8_t>(recsync::config::ConflictPolicy::PreferExternal);

// System A's change of `key` at `at_ms`, written to "crm" under `policy` (System A's
// service is connection "erp").
PlannedChange from_a(const std::string &key, int64_t at_ms, uint8_t policy, recsync_action action = RECSYNC_ACTION_UPSERT) {
    Task t = task(key, "crm", action);
    t.order = {Order::Time, at_ms};
    t.conflict = policy;
    PlannedChange c = change("internal", "", key, {Order::Time, at_ms}, {t});
    c.echo_connections = {"erp"};
    c.data_hash = 1;
    return c;
}
// The CRM's change of its record `external_id` at `at_ms`, written to System A under `policy`.
PlannedChange crm_change(const std::string &external_id, int64_t at_ms, uint8_t policy) {
    PlannedChange c = from_crm(external_id);
    c.order = {Order::Time, at_ms};
    c.tasks[0].order = c.order;
    c.tasks[0].conflict = policy;
    c.conflict = policy;
    return c;
}

TEST_F(TaskLogTest, LastWriterWinsDropsTheOlderOfTwoConcurrentChanges) {
    created_at_crm(*backend_, "a-1", "123");
    // System A's change at t=2000 is on its way to the CRM (not written yet).
    ASSERT_EQ(append_and_wait(log(), batch({from_a("a-1", 2000, kLww)})).tasks.size(), 1u);
    // The CRM's change made at t=1000 (before it) loses: nothing goes to System A.
    const auto older = append_and_wait(log(), batch({crm_change("123", 1000, kLww)}));
    EXPECT_EQ(older.conflicts, 1u);
    EXPECT_TRUE(older.tasks.empty());
    EXPECT_FALSE(backend_->sync_state().side_change("a-1", "crm")) << "a losing change is not the side's latest";
    // One made at t=3000 wins: it goes to System A, and is the CRM side's latest (the
    // dispatcher then skips System A's older write there).
    const auto newer = append_and_wait(log(), batch({crm_change("123", 3000, kLww)}));
    EXPECT_EQ(newer.conflicts, 0u);
    ASSERT_EQ(newer.tasks.size(), 1u);
    const auto side = backend_->sync_state().side_change("a-1", "crm");
    ASSERT_TRUE(side);
    EXPECT_EQ(side->at_ms, 3000);
    EXPECT_GE(side->seq, newer.tasks[0].id - 1) << "accepted after System A's task";
    const auto a_side = backend_->sync_state().side_change("a-1", "internal");
    ASSERT_TRUE(a_side);
    EXPECT_EQ(a_side->at_ms, 2000);
}

TEST_F(TaskLogTest, PreferInternalDropsTheCrmsChangeWhileSystemAsIsOnItsWayOnly) {
    created_at_crm(*backend_, "a-1", "123");
    const auto a = append_and_wait(log(), batch({from_a("a-1", 1000, kPreferInternal)}));
    ASSERT_EQ(a.tasks.size(), 1u);
    EXPECT_EQ(append_and_wait(log(), batch({crm_change("123", 5000, kPreferInternal)})).conflicts, 1u) << "later, but System A is preferred";
    // Once System A's change is written there, a CRM edit is no conflict: it goes on.
    DeliveryBatch done;
    done.finished.push_back(a.tasks[0].id);
    ASSERT_TRUE(backend_->deliveries().record(done, true));
    const auto after = append_and_wait(log(), batch({crm_change("123", 6000, kPreferInternal)}));
    EXPECT_EQ(after.conflicts, 0u);
    EXPECT_EQ(after.tasks.size(), 1u);
}

// A webhook that only announces a change (its read comes later, after System A's write on
// the same lane) is not dropped: the read finds what the CRM holds by then.
TEST_F(TaskLogTest, AnAnnouncedChangeIsReadEvenWhileSystemAsChangeIsOnItsWay) {
    created_at_crm(*backend_, "a-1", "123");
    ASSERT_EQ(append_and_wait(log(), batch({from_a("a-1", 1000, kPreferInternal)})).tasks.size(), 1u);
    PlannedChange announced = from_crm("123", RECSYNC_ACTION_READ);
    announced.order = {Order::Time, 5000};
    announced.tasks[0].order = announced.order;
    announced.tasks[0].conflict = kPreferInternal;
    announced.conflict = kPreferInternal;
    const auto a = append_and_wait(log(), batch({announced}));
    EXPECT_EQ(a.conflicts, 0u);
    ASSERT_EQ(a.tasks.size(), 1u);
    EXPECT_EQ(a.tasks[0].action, RECSYNC_ACTION_READ);
}

TEST_F(TaskLogTest, PreferExternalDropsSystemAsWriteWhileTheCrmsChangeIsOnItsWay) {
    created_at_crm(*backend_, "a-1", "123");
    ASSERT_EQ(append_and_wait(log(), batch({crm_change("123", 1000, kPreferExternal)})).tasks.size(), 1u);  // on its way to System A
    const auto a = append_and_wait(log(), batch({from_a("a-1", 9000, kPreferExternal)}));
    EXPECT_EQ(a.conflicts, 1u);
    EXPECT_TRUE(a.tasks.empty()) << "System A's write to the CRM lost";
    // Deletes stand, whatever the policy.
    EXPECT_EQ(append_and_wait(log(), batch({from_a("a-1", 9500, kPreferExternal, RECSYNC_ACTION_DELETE)})).tasks.size(), 1u);
}

TEST_F(TaskLogTest, WithoutAPolicyConcurrentChangesAllStand) {
    created_at_crm(*backend_, "a-1", "123");
    ASSERT_EQ(append_and_wait(log(), batch({from_a("a-1", 2000, 0)})).tasks.size(), 1u);
    const auto c = append_and_wait(log(), batch({crm_change("123", 1000, 0)}));
    EXPECT_EQ(c.conflicts, 0u);
    EXPECT_EQ(c.tasks.size(), 1u);
    EXPECT_FALSE(backend_->sync_state().side_change("a-1", "crm"));
}

// What the dispatcher records when recsync's PUT of `key` to System A's service ("erp") succeeds.
void written_to_a(StateBackend &b, const std::string &key, uint64_t hash = 7) {
    DeliveryBatch d;
    recsync::model::LinkState s;
    s.external_id = key;  // the http connector answers with our key
    s.written_hash = hash;
    d.links.push_back({{"erp", "contacts", key}, s, false});
    ASSERT_TRUE(b.deliveries().record(d, true));
}

TEST_F(TaskLogTest, ADeleteInSystemATombstonesItsSystemALinksUntilSystemAHasTheRecordAgain) {
    written_to_a(*backend_, "a-1");
    PlannedChange del = from_a("a-1", 1000, 0, RECSYNC_ACTION_DELETE);
    del.deletes = true;
    del.data_hash = 0;
    const auto d = append_and_wait(log(), batch({del}));
    ASSERT_EQ(d.tasks.size(), 1u);
    auto link = backend_->sync_state().link({"erp", "contacts", "a-1"});
    EXPECT_TRUE(link.deleted);
    EXPECT_FALSE(link.linked()) << "a CRM change on its way finds a tombstone, not a record to update";
    bool told = false;
    for (const auto &k : d.changed_links) told = told || (k.connection == "erp" && k.object == "contacts" && k.record_key == "a-1");
    EXPECT_TRUE(told) << "the dispatcher's copy of the link must be read again";
    // Made again in System A: CRM changes of it go there again.
    PlannedChange again = from_a("a-1", 2000, 0);
    again.data_hash = 99;
    append_and_wait(log(), batch({again}));
    EXPECT_FALSE(backend_->sync_state().link({"erp", "contacts", "a-1"}).deleted);
}

TEST_F(TaskLogTest, ACrmDeletionOfARecordNeverLinkedWritesNothing) {
    PlannedChange c = from_crm("555", RECSYNC_ACTION_DELETE);
    c.deletes = true;
    const auto a = append_and_wait(log(), batch({c}));
    EXPECT_TRUE(a.tasks.empty()) << "System A would be asked to delete its record keyed '555'";
}

TEST_F(TaskLogTest, ALosingCrmChangeStillMeansWhatWasWrittenThereIsGone) {
    created_at_crm(*backend_, "a-1", "123");
    DeliveryBatch d;
    recsync::model::LinkState s;
    s.external_id = "123";
    s.written_hash = 42;
    d.links.push_back({{"crm", "contacts", "a-1"}, s, false});
    ASSERT_TRUE(backend_->deliveries().record(d, true));
    ASSERT_EQ(append_and_wait(log(), batch({from_a("a-1", 2000, kLww)})).tasks.size(), 1u);
    EXPECT_EQ(append_and_wait(log(), batch({crm_change("123", 1000, kLww)})).conflicts, 1u);
    EXPECT_EQ(backend_->sync_state().link({"crm", "contacts", "a-1"}).written_hash, 0u)
        << "System A's write must go out even if it equals what recsync wrote there before";
}

TEST_F(TaskLogTest, AnotherCrmsChangeOnItsWayToSystemAIsNoConflictForThisOne) {
    created_at_crm(*backend_, "a-1", "123");
    // crm's change on its way to System A...
    ASSERT_EQ(append_and_wait(log(), batch({crm_change("123", 9000, kPreferExternal)})).tasks.size(), 1u);
    // ... does not stop System A's write to crm2.
    PlannedChange a = from_a("a-1", 1000, kPreferExternal);
    a.tasks[0].connection = "crm2";
    const auto r = append_and_wait(log(), batch({a}));
    EXPECT_EQ(r.conflicts, 0u);
    EXPECT_EQ(r.tasks.size(), 1u);
}

TEST_F(TaskLogTest, AnUpgradedDatabaseKnowsTheRecordsEveryLinkNames) {
    backend_.reset();
    file_ = "old-ids.db";
    make_old_database(path());
    backend_ = open();
    // id_map: ('crm-a', 'contacts', 'c-1', 'A1'): a change from crm-a about A1 is c-1's.
    PlannedChange c = from_crm("A1");
    c.source = "crm-a";
    const auto a = append_and_wait(log(), batch({c}));
    ASSERT_EQ(a.tasks.size(), 1u);
    EXPECT_EQ(a.tasks[0].record_key, "c-1");
}

TEST(TaskAction, Text) {
    EXPECT_STREQ(recsync::model::action_text(RECSYNC_ACTION_CREATE), "create");
    EXPECT_STREQ(recsync::model::action_text(RECSYNC_ACTION_UPDATE), "update");
    EXPECT_STREQ(recsync::model::action_text(RECSYNC_ACTION_UPSERT), "upsert");
    EXPECT_STREQ(recsync::model::action_text(RECSYNC_ACTION_DELETE), "delete");
    EXPECT_STREQ(recsync::model::action_text(RECSYNC_ACTION_READ), "read");
    EXPECT_STREQ(recsync::model::action_text(RECSYNC_ACTION_FIND), "find");
}

}  // namespace
