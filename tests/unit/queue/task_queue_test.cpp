// TaskQueue: the durable task log in SQLite (ids, order, reschedule, remove, transactions).
#include "queue/task_queue.hpp"
#include "unit/test_support.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using recsync::queue::Task;
using recsync::queue::TaskQueue;
using recsync::store::SqliteDb;
using recsync::testing::TempDir;

Task task(const std::string &key, recsync_action action = RECSYNC_ACTION_CREATE) {
    Task t;
    t.connection = "crm";
    t.object = "contacts";
    t.record_key = key;
    t.action = action;
    t.payload = action == RECSYNC_ACTION_DELETE ? "" : "{\"key\":\"" + key + "\"}";
    return t;
}

class TaskQueueTest : public ::testing::Test {
protected:
    void SetUp() override {
        db_ = std::make_unique<SqliteDb>(path(), "normal");
        queue_ = std::make_unique<TaskQueue>(*db_);
    }
    std::string path() const { return (dir_.path() / "state.db").string(); }
    TempDir dir_;
    std::unique_ptr<SqliteDb> db_;
    std::unique_ptr<TaskQueue> queue_;
};

TEST_F(TaskQueueTest, AppendAssignsIncreasingIds) {
    std::vector<Task> batch = {task("a"), task("b"), task("c")};
    queue_->append(batch);
    EXPECT_GT(batch[0].id, 0);
    EXPECT_LT(batch[0].id, batch[1].id);
    EXPECT_LT(batch[1].id, batch[2].id);
    std::vector<Task> more = {task("d")};
    queue_->append(more);
    EXPECT_GT(more[0].id, batch[2].id);
    EXPECT_EQ(queue_->count(), 4);
}

TEST_F(TaskQueueTest, AppendSetsCreatedTimeUnlessGiven) {
    std::vector<Task> batch = {task("a"), task("b")};
    batch[1].created_ms = 1234;
    queue_->append(batch);
    EXPECT_GT(batch[0].created_ms, 1'600'000'000'000);  // epoch ms, after 2020
    EXPECT_EQ(batch[1].created_ms, 1234);
}

TEST_F(TaskQueueTest, AppendEmptyIsANoOp) {
    std::vector<Task> none;
    queue_->append(none);
    EXPECT_EQ(queue_->count(), 0);
    EXPECT_TRUE(queue_->load_pending().empty());
}

TEST_F(TaskQueueTest, LoadPendingInAcceptanceOrderWithAllFields) {
    std::vector<Task> batch = {task("a"), task("b", RECSYNC_ACTION_UPDATE), task("c", RECSYNC_ACTION_DELETE)};
    batch[1].attempts = 2;
    batch[1].not_before_ms = 5555;
    batch[1].object = "companies";
    batch[1].connection = "other";
    queue_->append(batch);
    std::vector<Task> second = {task("d", RECSYNC_ACTION_UPSERT)};
    queue_->append(second);

    const auto pending = queue_->load_pending();
    ASSERT_EQ(pending.size(), 4u);
    std::vector<std::string> keys;
    for (const auto &t : pending) keys.push_back(t.record_key);
    EXPECT_EQ(keys, (std::vector<std::string>{"a", "b", "c", "d"}));
    for (size_t i = 1; i < pending.size(); ++i) EXPECT_LT(pending[i - 1].id, pending[i].id);

    EXPECT_EQ(pending[0].id, batch[0].id);
    EXPECT_EQ(pending[0].connection, "crm");
    EXPECT_EQ(pending[0].payload, "{\"key\":\"a\"}");
    EXPECT_EQ(pending[0].action, RECSYNC_ACTION_CREATE);
    EXPECT_EQ(pending[0].attempts, 0);
    EXPECT_EQ(pending[0].created_ms, batch[0].created_ms);
    EXPECT_EQ(pending[1].action, RECSYNC_ACTION_UPDATE);
    EXPECT_EQ(pending[1].attempts, 2);
    EXPECT_EQ(pending[1].not_before_ms, 5555);
    EXPECT_EQ(pending[1].object, "companies");
    EXPECT_EQ(pending[1].connection, "other");
    EXPECT_EQ(pending[2].action, RECSYNC_ACTION_DELETE);
    EXPECT_EQ(pending[2].payload, "");
    EXPECT_EQ(pending[3].action, RECSYNC_ACTION_UPSERT);
}

// What a reload reads for the connections it adds: theirs only, in acceptance order, names
// taken as they are (a quote or a comma in a name is no syntax).
TEST_F(TaskQueueTest, LoadPendingOfSomeConnections) {
    std::vector<Task> batch = {task("a"), task("b"), task("c"), task("d"), task("e")};
    batch[0].connection = "x";
    batch[1].connection = "it's, y";
    batch[3].connection = "x";
    queue_->append(batch);
    const auto some = queue_->load_pending(std::vector<std::string>{"x", "it's, y"});
    std::vector<std::string> keys;
    for (const auto &t : some) keys.push_back(t.record_key);
    EXPECT_EQ(keys, (std::vector<std::string>{"a", "b", "d"}));
    EXPECT_EQ(some.at(1).connection, "it's, y");
    EXPECT_TRUE(queue_->load_pending(std::vector<std::string>{"nobody"}).empty());
    EXPECT_TRUE(queue_->load_pending(std::vector<std::string>{}).empty());
}

TEST_F(TaskQueueTest, RescheduleUpdatesAttemptsAndNotBefore) {
    std::vector<Task> batch = {task("a"), task("b")};
    queue_->append(batch);
    queue_->reschedule(batch[0].id, 3, 99'999, "HTTP 503");
    const auto pending = queue_->load_pending();
    ASSERT_EQ(pending.size(), 2u);
    EXPECT_EQ(pending[0].id, batch[0].id);  // order unchanged
    EXPECT_EQ(pending[0].attempts, 3);
    EXPECT_EQ(pending[0].not_before_ms, 99'999);
    EXPECT_EQ(pending[1].attempts, 0);
    EXPECT_EQ(pending[1].not_before_ms, 0);
    auto l = db_->lock();
    auto st = db_->prepare("SELECT last_error FROM tasks ORDER BY id");
    ASSERT_TRUE(st.step());
    EXPECT_EQ(st.column_text(0), "HTTP 503");
    ASSERT_TRUE(st.step());
    EXPECT_TRUE(st.column_is_null(0));
}

TEST_F(TaskQueueTest, RemoveDeletesOnlyThatTask) {
    std::vector<Task> batch = {task("a"), task("b"), task("c")};
    queue_->append(batch);
    queue_->remove(batch[1].id);
    EXPECT_EQ(queue_->count(), 2);
    const auto pending = queue_->load_pending();
    ASSERT_EQ(pending.size(), 2u);
    EXPECT_EQ(pending[0].record_key, "a");
    EXPECT_EQ(pending[1].record_key, "c");
    queue_->remove(batch[1].id);  // already gone: no-op
    queue_->remove(987654);
    EXPECT_EQ(queue_->count(), 2);
}

TEST_F(TaskQueueTest, IdsAreNeverReusedAfterRemove) {
    std::vector<Task> batch = {task("a"), task("b")};
    queue_->append(batch);
    queue_->remove(batch[1].id);
    queue_->remove(batch[0].id);
    std::vector<Task> next = {task("c")};
    queue_->append(next);
    EXPECT_GT(next[0].id, batch[1].id);
}

TEST_F(TaskQueueTest, AppendInsideAFailedOuterTransactionLeavesNothing) {
    std::vector<Task> batch = {task("a"), task("b")};
    EXPECT_THROW(db_->transaction([&] {
        queue_->append_here(batch);
        throw std::runtime_error("event rejected after the tasks were written");
    }),
                 std::runtime_error);
    EXPECT_EQ(queue_->count(), 0);
    EXPECT_TRUE(queue_->load_pending().empty());
}

TEST_F(TaskQueueTest, ConcurrentAppendsShareCommitsAndLoseNothing) {
    constexpr int kThreads = 8, kPerThread = 200;
    std::vector<std::vector<int64_t>> ids(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i) {
                std::vector<Task> one = {task("t" + std::to_string(t) + "-" + std::to_string(i)), task("x")};
                queue_->append(one);
                ASSERT_GT(one[0].id, 0);
                ASSERT_EQ(one[1].id, one[0].id + 1) << "a request's tasks stay together and in order";
                ids[t].push_back(one[0].id);
            }
        });
    for (auto &th : threads) th.join();
    EXPECT_EQ(queue_->count(), kThreads * kPerThread * 2);
    for (const auto &mine : ids)
        for (size_t i = 1; i < mine.size(); ++i) EXPECT_LT(mine[i - 1], mine[i]) << "one sender's requests keep their order";
    std::set<int64_t> all;
    for (const auto &mine : ids) all.insert(mine.begin(), mine.end());
    EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
}

// append_async: the caller goes on; the callback gets the stored tasks (ids set), in the
// order the appends were made, and flush() waits for every callback.
TEST_F(TaskQueueTest, AppendAsyncCallsBackInAppendOrderWithIds) {
    std::mutex m;
    std::vector<std::pair<int, int64_t>> seen;  // (append number, first id)
    for (int i = 0; i < 50; ++i) {
        std::vector<Task> batch = {task("a" + std::to_string(i)), task("b" + std::to_string(i))};
        queue_->append_async(std::move(batch), [&, i](std::vector<Task> &&stored, std::exception_ptr error) {
            ASSERT_FALSE(error);
            ASSERT_EQ(stored.size(), 2u);
            EXPECT_EQ(stored[0].record_key, "a" + std::to_string(i));
            EXPECT_EQ(stored[1].id, stored[0].id + 1);
            std::lock_guard l(m);
            seen.emplace_back(i, stored[0].id);
        });
    }
    queue_->flush();
    std::lock_guard l(m);
    ASSERT_EQ(seen.size(), 50u);
    for (size_t i = 0; i < seen.size(); ++i) {
        EXPECT_EQ(seen[i].first, static_cast<int>(i));
        if (i) {
            EXPECT_LT(seen[i - 1].second, seen[i].second);
        }
    }
    EXPECT_EQ(queue_->count(), 100);
}

TEST_F(TaskQueueTest, AppendAsyncOfNothingCallsBackAtOnce) {
    bool called = false;
    queue_->append_async({}, [&](std::vector<Task> &&stored, std::exception_ptr error) {
        called = true;
        EXPECT_TRUE(stored.empty());
        EXPECT_FALSE(error);
    });
    EXPECT_TRUE(called);
}

// A commit that fails reports the error to every append in it, and stores none of them.
TEST_F(TaskQueueTest, AFailedCommitReportsTheErrorAndStoresNothing) {
    db_->exec("ALTER TABLE tasks RENAME TO tasks_elsewhere");
    std::atomic<int> errors{0};
    for (int i = 0; i < 5; ++i)
        queue_->append_async({task("k" + std::to_string(i))}, [&](std::vector<Task> &&stored, std::exception_ptr error) {
            EXPECT_TRUE(error);
            EXPECT_EQ(stored.at(0).id, 0);
            ++errors;
        });
    std::vector<Task> sync = {task("s")};
    EXPECT_THROW(queue_->append(sync), std::exception);
    queue_->flush();
    EXPECT_EQ(errors.load(), 5);
    db_->exec("ALTER TABLE tasks_elsewhere RENAME TO tasks");
    EXPECT_EQ(queue_->count(), 0);
}

// What was appended is committed before the queue goes, callbacks included.
TEST_F(TaskQueueTest, DestroyingTheQueueCommitsWhatWasAppended) {
    auto slow = std::make_unique<TaskQueue>(*db_, std::chrono::milliseconds(200));
    std::atomic<int> done{0};
    for (int i = 0; i < 20; ++i)
        slow->append_async({task("k" + std::to_string(i))}, [&](std::vector<Task> &&, std::exception_ptr error) {
            EXPECT_FALSE(error);
            ++done;
        });
    slow.reset();
    EXPECT_EQ(done.load(), 20);
    EXPECT_EQ(queue_->count(), 20);
}

// The commit window: an idle commit thread waits that long after the first append, so the
// appends made meanwhile share its commit (and its one callback round). Bounded below only:
// the machine may be slower, never faster.
TEST_F(TaskQueueTest, TheCommitWindowGathersAppendsIntoOneCommit) {
    queue_ = std::make_unique<TaskQueue>(*db_, std::chrono::milliseconds(100));
    // Once flush() returns, the commit thread is idle (it waits before it lets go of the
    // lock flush() needs): the next append is the first of a group.
    std::vector<Task> first = {task("first")};
    queue_->append(first);
    queue_->flush();
    std::mutex m;
    std::vector<std::chrono::steady_clock::time_point> at;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 5; ++i)
        queue_->append_async({task("k" + std::to_string(i))}, [&](std::vector<Task> &&, std::exception_ptr) {
            std::lock_guard l(m);
            at.push_back(std::chrono::steady_clock::now());
        });
    queue_->flush();
    ASSERT_EQ(at.size(), 5u);
    EXPECT_GE(at.front() - start, std::chrono::milliseconds(100)) << "the first append waited for the window";
    // All five arrived within the window: their callbacks ran one after the other, in one round.
    EXPECT_LT(at.back() - at.front(), std::chrono::milliseconds(100));
}

// A Committed callback runs on the commit thread: appending or flushing from it would wait
// for itself, so it throws instead of hanging.
TEST_F(TaskQueueTest, AppendingFromACommitCallbackThrowsInsteadOfHanging) {
    std::atomic<int> refused{0};
    queue_->append_async({task("a")}, [&](std::vector<Task> &&, std::exception_ptr) {
        std::vector<Task> more = {task("b")};
        try {
            queue_->append(more);
        } catch (const std::logic_error &) {
            ++refused;
        }
        try {
            queue_->flush();
        } catch (const std::logic_error &) {
            ++refused;
        }
    });
    queue_->flush();
    EXPECT_EQ(refused.load(), 2);
    EXPECT_EQ(queue_->count(), 1);
}

TEST_F(TaskQueueTest, PendingSurvivesReopen) {
    std::vector<Task> batch = {task("a"), task("b")};
    queue_->append(batch);
    queue_->remove(batch[0].id);
    queue_.reset();
    db_.reset();
    SqliteDb db(path(), "full");
    TaskQueue again(db);
    const auto pending = again.load_pending();
    ASSERT_EQ(pending.size(), 1u);
    EXPECT_EQ(pending[0].id, batch[1].id);
    EXPECT_EQ(pending[0].record_key, "b");
}

TEST_F(TaskQueueTest, SentMarkSurvivesReopen) {
    std::vector<Task> tasks{task("a"), task("b")};
    queue_->append(tasks);
    queue_->mark_sent(tasks[1].id);
    queue_.reset();
    db_ = std::make_unique<SqliteDb>(path(), "normal");
    queue_ = std::make_unique<TaskQueue>(*db_);
    const auto pending = queue_->load_pending();
    ASSERT_EQ(pending.size(), 2u);
    EXPECT_FALSE(pending[0].sent);
    EXPECT_TRUE(pending[1].sent);
    EXPECT_FALSE(pending[1].verified_absent);  // in memory only
}

TEST_F(TaskQueueTest, ADatabaseFromBeforeTheSentColumnIsUpgraded) {
    queue_.reset();
    db_.reset();
    const std::string old_path = (dir_.path() / "old.db").string();
    {
        SqliteDb old(old_path, "normal");
        old.exec(
            "CREATE TABLE tasks (id INTEGER PRIMARY KEY AUTOINCREMENT, connection TEXT NOT NULL, object TEXT NOT NULL,"
            " record_key TEXT NOT NULL, action INTEGER NOT NULL, payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
            " not_before INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, last_error TEXT)");
        old.exec("INSERT INTO tasks(connection, object, record_key, action, payload, created_at) VALUES('crm', 'contacts', 'k', 1, '{}', 5)");
    }
    db_ = std::make_unique<SqliteDb>(old_path, "normal");
    queue_ = std::make_unique<TaskQueue>(*db_);
    auto pending = queue_->load_pending();
    ASSERT_EQ(pending.size(), 1u);
    EXPECT_EQ(pending[0].record_key, "k");
    EXPECT_FALSE(pending[0].sent);
    queue_->mark_sent(pending[0].id);
    EXPECT_TRUE(queue_->load_pending()[0].sent);
    TaskQueue again(*db_);  // opening an upgraded database changes nothing
    EXPECT_TRUE(again.load_pending()[0].sent);
}

TEST(TaskAction, Text) {
    EXPECT_STREQ(recsync::queue::action_text(RECSYNC_ACTION_CREATE), "create");
    EXPECT_STREQ(recsync::queue::action_text(RECSYNC_ACTION_UPDATE), "update");
    EXPECT_STREQ(recsync::queue::action_text(RECSYNC_ACTION_UPSERT), "upsert");
    EXPECT_STREQ(recsync::queue::action_text(RECSYNC_ACTION_DELETE), "delete");
    EXPECT_STREQ(recsync::queue::action_text(RECSYNC_ACTION_READ), "read");
    EXPECT_STREQ(recsync::queue::action_text(RECSYNC_ACTION_FIND), "find");
}

}  // namespace
