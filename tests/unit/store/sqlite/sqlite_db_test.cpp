// SqliteDb on a temporary database file: pragmas, statements, nested transactions.
#include "store/sqlite/sqlite_db.hpp"
#include "unit/test_support.hpp"

#include <gtest/gtest.h>

#include <future>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

using recsync::store::sqlite::SqliteDb;
using recsync::store::sqlite::SqliteError;
using recsync::testing::TempDir;

int64_t count(SqliteDb &db) {
    auto l = db.lock();
    auto st = db.prepare("SELECT COUNT(*) FROM t");
    EXPECT_TRUE(st.step());
    return st.column_int(0);
}

void insert(SqliteDb &db, const std::string &v) {
    auto l = db.lock();
    db.prepare("INSERT INTO t(v) VALUES(?)").bind(1, v).step();
}

class SqliteDbTest : public ::testing::Test {
protected:
    void SetUp() override {
        db_ = std::make_unique<SqliteDb>(path(), "full");
        db_->exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    }
    std::string path() const { return (dir_.path() / "state.db").string(); }
    TempDir dir_;
    std::unique_ptr<SqliteDb> db_;
};

TEST_F(SqliteDbTest, CacheSizeIsSetInMebibytesAndZeroKeepsSqlitesDefault) {
    auto cache_size = [&] {
        auto l = db_->lock();
        auto st = db_->prepare("PRAGMA cache_size");
        EXPECT_TRUE(st.step());
        return st.column_int(0);
    };
    const int64_t sqlite_default = cache_size();
    db_->set_cache_mib(0);
    EXPECT_EQ(cache_size(), sqlite_default);
    db_->set_cache_mib(64);
    EXPECT_EQ(cache_size(), -64 * 1024);  // negative: KiB
}

TEST_F(SqliteDbTest, OpensInWalModeWithRequestedSynchronous) {
    EXPECT_EQ(db_->path(), path());
    auto l = db_->lock();
    {
        auto st = db_->prepare("PRAGMA journal_mode");
        ASSERT_TRUE(st.step());
        EXPECT_EQ(st.column_text(0), "wal");
    }
    {
        auto st = db_->prepare("PRAGMA synchronous");
        ASSERT_TRUE(st.step());
        EXPECT_EQ(st.column_int(0), 2);  // FULL
    }
    {
        auto st = db_->prepare("PRAGMA foreign_keys");
        ASSERT_TRUE(st.step());
        EXPECT_EQ(st.column_int(0), 1);
    }
    SqliteDb normal((dir_.path() / "other.db").string(), "normal");
    auto l2 = normal.lock();
    auto st = normal.prepare("PRAGMA synchronous");
    ASSERT_TRUE(st.step());
    EXPECT_EQ(st.column_int(0), 1);  // NORMAL
}

TEST_F(SqliteDbTest, BindAndReadColumns) {
    auto l = db_->lock();
    db_->exec("CREATE TABLE k (a INTEGER, b TEXT, c TEXT)");
    const std::string with_nul("x\0y", 3);
    db_->prepare("INSERT INTO k VALUES(?, ?, ?)").bind(1, int64_t{-9'000'000'000'000}).bind(2, with_nul).bind_null(3).step();
    EXPECT_EQ(db_->changes(), 1);
    auto st = db_->prepare("SELECT a, b, c FROM k");
    ASSERT_TRUE(st.step());
    EXPECT_EQ(st.column_int(0), -9'000'000'000'000);
    EXPECT_EQ(st.column_text(1), with_nul);  // length-exact, not NUL-terminated
    EXPECT_TRUE(st.column_is_null(2));
    EXPECT_FALSE(st.column_is_null(1));
    EXPECT_EQ(st.column_text(2), "");
    EXPECT_FALSE(st.step());
}

TEST_F(SqliteDbTest, CachedStatementIsResetForReuse) {
    insert(*db_, "a");
    insert(*db_, "b");
    for (int round = 0; round < 3; ++round) {
        auto l = db_->lock();
        auto st = db_->prepare("SELECT v FROM t ORDER BY id");
        ASSERT_TRUE(st.step()) << round;
        EXPECT_EQ(st.column_text(0), "a");
        // abandoned after one row: the destructor resets it
    }
    EXPECT_EQ(db_->last_insert_id(), 2);
}

TEST_F(SqliteDbTest, TransactionCommits) {
    db_->transaction([&] {
        insert(*db_, "a");
        insert(*db_, "b");
    });
    EXPECT_EQ(count(*db_), 2);
}

TEST_F(SqliteDbTest, TransactionRollsBackOnException) {
    insert(*db_, "before");
    EXPECT_THROW(db_->transaction([&] {
        insert(*db_, "a");
        insert(*db_, "b");
        throw std::runtime_error("boom");
    }),
                 std::runtime_error);
    EXPECT_EQ(count(*db_), 1);
    // Usable afterwards: the next transaction is a fresh outermost one.
    db_->transaction([&] { insert(*db_, "after"); });
    EXPECT_EQ(count(*db_), 2);
}

TEST_F(SqliteDbTest, NestedTransactionsCommitWithTheOutermost) {
    db_->transaction([&] {
        insert(*db_, "outer");
        db_->transaction([&] {
            insert(*db_, "inner");
            db_->transaction([&] { insert(*db_, "innermost"); });
        });
        EXPECT_EQ(count(*db_), 3);
    });
    EXPECT_EQ(count(*db_), 3);
    // Committed for real: a second connection sees it.
    SqliteDb other(path(), "full");
    auto l = other.lock();
    auto st = other.prepare("SELECT COUNT(*) FROM t");
    ASSERT_TRUE(st.step());
    EXPECT_EQ(st.column_int(0), 3);
}

TEST_F(SqliteDbTest, ExceptionInNestedTransactionRollsBackEverything) {
    EXPECT_THROW(db_->transaction([&] {
        insert(*db_, "outer");
        db_->transaction([&] {
            insert(*db_, "inner");
            throw std::logic_error("inner fails");
        });
    }),
                 std::logic_error);
    EXPECT_EQ(count(*db_), 0);
    db_->transaction([&] { insert(*db_, "ok"); });
    EXPECT_EQ(count(*db_), 1);
}

TEST_F(SqliteDbTest, InnerFailureCaughtByOuterJoinsTheOuterTransaction) {
    // Documented: nested calls join the outer transaction (no savepoints), so work the inner
    // call did before throwing commits with the outer one.
    db_->transaction([&] {
        insert(*db_, "outer");
        try {
            db_->transaction([&] {
                insert(*db_, "inner");
                throw std::runtime_error("x");
            });
        } catch (const std::runtime_error &) {
        }
        insert(*db_, "outer2");
    });
    EXPECT_EQ(count(*db_), 3);
    // Depth is back to zero: a failing transaction now rolls back.
    EXPECT_THROW(db_->transaction([&] {
        insert(*db_, "x");
        throw std::runtime_error("y");
    }),
                 std::runtime_error);
    EXPECT_EQ(count(*db_), 3);
}

TEST_F(SqliteDbTest, SqlErrorsThrowSqliteError) {
    EXPECT_THROW(db_->exec("THIS IS NOT SQL"), SqliteError);
    auto l = db_->lock();
    EXPECT_THROW(db_->prepare("SELECT * FROM no_such_table"), SqliteError);
    db_->exec("CREATE TABLE u (x INTEGER NOT NULL)");
    try {
        db_->prepare("INSERT INTO u(x) VALUES(?)").bind_null(1).step();
        FAIL() << "expected SqliteError";
    } catch (const SqliteError &e) {
        EXPECT_NE(std::string(e.what()).find("NOT NULL"), std::string::npos) << e.what();
    }
}

TEST_F(SqliteDbTest, DataSurvivesReopen) {
    insert(*db_, "persisted");
    db_.reset();
    SqliteDb again(path(), "full");
    auto l = again.lock();
    auto st = again.prepare("SELECT v FROM t");
    ASSERT_TRUE(st.step());
    EXPECT_EQ(st.column_text(0), "persisted");
}

TEST(SqliteDb, CannotOpenNamesThePath) {
    TempDir dir;
    const std::string bad = (dir.path() / "missing-dir" / "state.db").string();
    try {
        SqliteDb db(bad, "full");
        FAIL() << "expected SqliteError";
    } catch (const SqliteError &e) {
        EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
}

}  // namespace

namespace {

// A crash-safe transaction runs at synchronous=NORMAL and puts FULL back afterwards, also
// when it fails; the connection's own setting is what every other transaction gets.
TEST(SqliteDbDurability, CrashSafeRelaxesOnlyItsOwnCommit) {
    recsync::testing::TempDir dir;
    recsync::store::sqlite::SqliteDb db((dir.path() / "d.db").string(), "full");
    auto synchronous = [&] {
        auto l = db.lock();
        auto st = db.prepare("PRAGMA synchronous");
        EXPECT_TRUE(st.step());
        return st.column_int(0);
    };
    EXPECT_EQ(synchronous(), 2);  // FULL
    int inside = -1;
    db.transaction([&] { inside = synchronous(); }, recsync::store::sqlite::SqliteDb::Durability::CrashSafe);
    EXPECT_EQ(inside, 1);  // NORMAL
    EXPECT_EQ(synchronous(), 2);
    EXPECT_THROW(db.transaction([&] { throw std::runtime_error("x"); }, recsync::store::sqlite::SqliteDb::Durability::CrashSafe), std::runtime_error);
    EXPECT_EQ(synchronous(), 2);
}

}  // namespace

namespace {

// try_transaction gives up at once, without running its function, while another thread
// holds the database (the dispatcher then goes on starting calls); otherwise it commits.
TEST(SqliteDbTry, GivesUpWhileAnotherThreadHoldsTheDatabase) {
    recsync::testing::TempDir dir;
    recsync::store::sqlite::SqliteDb db((dir.path() / "t.db").string(), "normal");
    std::promise<void> held, release;
    std::thread holder([&] {
        auto l = db.lock();
        held.set_value();
        release.get_future().wait();
    });
    held.get_future().wait();
    bool ran = false;
    EXPECT_FALSE(db.try_transaction([&] { ran = true; }));
    EXPECT_FALSE(ran);
    release.set_value();
    holder.join();
    EXPECT_TRUE(db.try_transaction([&] { ran = true; }));
    EXPECT_TRUE(ran);
}

}  // namespace
