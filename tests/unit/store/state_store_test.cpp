// StateStore: the id map (upsert, erase) and the dead-letter queue (paging with after/limit).
#include "store/state_store.hpp"
#include "store/dead_letter_replay.hpp"
#include "unit/test_support.hpp"

#include <chrono>

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace {

using recsync::queue::Task;
using recsync::store::DeadLetter;
using recsync::store::SqliteDb;
using recsync::store::StateStore;
using recsync::testing::TempDir;

class StateStoreTest : public ::testing::Test {
protected:
    void SetUp() override {
        db_ = std::make_unique<SqliteDb>((dir_.path() / "state.db").string(), "normal");
        store_ = std::make_unique<StateStore>(*db_);
    }
    TempDir dir_;
    std::unique_ptr<SqliteDb> db_;
    std::unique_ptr<StateStore> store_;
};

DeadLetter dead_letter(int n) {
    DeadLetter d;
    d.task.id = 100 + n;
    d.task.connection = "crm";
    d.task.object = "contacts";
    d.task.record_key = "k" + std::to_string(n);
    d.task.action = RECSYNC_ACTION_UPDATE;
    d.task.payload = "{\"n\":" + std::to_string(n) + "}";
    d.task.attempts = n;
    d.task.created_ms = 1'700'000'000'000 + n;
    d.request = "PATCH https://x/contacts/" + std::to_string(n);
    d.response_status = 400 + n;
    d.response_body = "{\"error\":\"bad " + std::to_string(n) + "\"}";
    d.reason = "rejected " + std::to_string(n);
    d.failed_ms = 1'800'000'000'000 + n;
    return d;
}

TEST_F(StateStoreTest, IdMapPutGet) {
    EXPECT_EQ(store_->external_id("crm", "contacts", "c-1"), std::nullopt);
    store_->put_external_id("crm", "contacts", "c-1", "9001");
    EXPECT_EQ(store_->external_id("crm", "contacts", "c-1"), "9001");
}

TEST_F(StateStoreTest, IdMapUpsertOverwrites) {
    store_->put_external_id("crm", "contacts", "c-1", "9001");
    store_->put_external_id("crm", "contacts", "c-1", "9002");
    EXPECT_EQ(store_->external_id("crm", "contacts", "c-1"), "9002");
    auto l = db_->lock();
    auto st = db_->prepare("SELECT COUNT(*) FROM id_map");
    ASSERT_TRUE(st.step());
    EXPECT_EQ(st.column_int(0), 1);
}

TEST_F(StateStoreTest, IdMapKeysAreConnectionObjectAndRecord) {
    store_->put_external_id("crm", "contacts", "k", "1");
    store_->put_external_id("crm", "companies", "k", "2");
    store_->put_external_id("other", "contacts", "k", "3");
    store_->put_external_id("crm", "contacts", "K", "4");
    EXPECT_EQ(store_->external_id("crm", "contacts", "k"), "1");
    EXPECT_EQ(store_->external_id("crm", "companies", "k"), "2");
    EXPECT_EQ(store_->external_id("other", "contacts", "k"), "3");
    EXPECT_EQ(store_->external_id("crm", "contacts", "K"), "4");
    EXPECT_EQ(store_->external_id("other", "companies", "k"), std::nullopt);
}

TEST_F(StateStoreTest, IdMapErase) {
    store_->put_external_id("crm", "contacts", "a", "1");
    store_->put_external_id("crm", "contacts", "b", "2");
    store_->erase_external_id("crm", "contacts", "a");
    EXPECT_EQ(store_->external_id("crm", "contacts", "a"), std::nullopt);
    EXPECT_EQ(store_->external_id("crm", "contacts", "b"), "2");
    EXPECT_NO_THROW(store_->erase_external_id("crm", "contacts", "never"));
    store_->put_external_id("crm", "contacts", "a", "5");  // put again after erase
    EXPECT_EQ(store_->external_id("crm", "contacts", "a"), "5");
}

TEST_F(StateStoreTest, IdMapUnicodeAndLongValues) {
    const std::string key = "ключ-東京-🚀", ext(5000, 'x');
    store_->put_external_id("crm", "contacts", key, ext);
    EXPECT_EQ(store_->external_id("crm", "contacts", key), ext);
}

TEST_F(StateStoreTest, DeadLettersRoundTrip) {
    EXPECT_EQ(store_->dead_letter_count(), 0);
    EXPECT_TRUE(store_->dead_letters(10).empty());
    store_->add_dead_letter(dead_letter(1));
    ASSERT_EQ(store_->dead_letter_count(), 1);
    const auto list = store_->dead_letters(10);
    ASSERT_EQ(list.size(), 1u);
    const DeadLetter &d = list[0];
    const DeadLetter want = dead_letter(1);
    EXPECT_GT(d.id, 0);
    EXPECT_EQ(d.task.id, want.task.id);
    EXPECT_EQ(d.task.connection, want.task.connection);
    EXPECT_EQ(d.task.object, want.task.object);
    EXPECT_EQ(d.task.record_key, want.task.record_key);
    EXPECT_EQ(d.task.action, RECSYNC_ACTION_UPDATE);
    EXPECT_EQ(d.task.payload, want.task.payload);
    EXPECT_EQ(d.task.attempts, 1);
    EXPECT_EQ(d.task.created_ms, want.task.created_ms);
    EXPECT_EQ(d.request, want.request);
    EXPECT_EQ(d.response_status, 401);
    EXPECT_EQ(d.response_body, want.response_body);
    EXPECT_EQ(d.reason, want.reason);
    EXPECT_EQ(d.failed_ms, want.failed_ms);
}

TEST_F(StateStoreTest, DeadLettersPageWithAfterAndLimit) {
    for (int i = 1; i <= 5; ++i) store_->add_dead_letter(dead_letter(i));
    EXPECT_EQ(store_->dead_letter_count(), 5);

    const auto first = store_->dead_letters(2);
    ASSERT_EQ(first.size(), 2u);
    EXPECT_EQ(first[0].task.record_key, "k1");
    EXPECT_EQ(first[1].task.record_key, "k2");
    EXPECT_LT(first[0].id, first[1].id);

    const auto second = store_->dead_letters(2, first.back().id);
    ASSERT_EQ(second.size(), 2u);
    EXPECT_EQ(second[0].task.record_key, "k3");
    EXPECT_EQ(second[1].task.record_key, "k4");

    const auto third = store_->dead_letters(2, second.back().id);
    ASSERT_EQ(third.size(), 1u);
    EXPECT_EQ(third[0].task.record_key, "k5");

    EXPECT_TRUE(store_->dead_letters(2, third.back().id).empty());
    EXPECT_TRUE(store_->dead_letters(0).empty());
    EXPECT_EQ(store_->dead_letters(100).size(), 5u);
    EXPECT_EQ(store_->dead_letters(100, first[0].id).size(), 4u);
}

TEST_F(StateStoreTest, EmptyOptionalFieldsRoundTrip) {
    DeadLetter d;
    d.task.connection = "crm";
    d.task.object = "contacts";
    d.task.record_key = "k";
    d.task.action = RECSYNC_ACTION_DELETE;
    d.reason = "no route";
    store_->add_dead_letter(d);
    const auto list = store_->dead_letters(1);
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0].task.payload, "");
    EXPECT_EQ(list[0].request, "");
    EXPECT_EQ(list[0].response_status, 0);
    EXPECT_EQ(list[0].task.action, RECSYNC_ACTION_DELETE);
}

TEST_F(StateStoreTest, SurvivesReopen) {
    store_->put_external_id("crm", "contacts", "c", "7");
    store_->add_dead_letter(dead_letter(1));
    const std::string path = db_->path();
    store_.reset();
    db_.reset();
    SqliteDb db(path, "full");
    StateStore again(db);  // CREATE TABLE IF NOT EXISTS: keeps the data
    EXPECT_EQ(again.external_id("crm", "contacts", "c"), "7");
    EXPECT_EQ(again.dead_letter_count(), 1);
}

// A database whose id map is keyed connection first (before it was ordered by record key)
// keeps every id: the table is rebuilt once, at open, in the new order.
TEST(StateStoreMigration, AnIdMapKeyedByConnectionFirstIsRebuiltKeepingEveryId) {
    TempDir dir;
    const std::string path = (dir.path() / "old.db").string();
    {
        SqliteDb db(path, "normal");
        db.exec(
            "CREATE TABLE id_map (connection TEXT NOT NULL, object TEXT NOT NULL, record_key TEXT NOT NULL,"
            " external_id TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (connection, object, record_key)) WITHOUT ROWID");
        db.exec("INSERT INTO id_map VALUES ('crm-a', 'contacts', 'c-1', 'A1', 1), ('crm-b', 'contacts', 'c-1', 'B1', 2), ('crm-a', 'deals', 'd-9', 'A9', 3)");
    }
    SqliteDb db(path, "full");
    StateStore store(db);
    EXPECT_EQ(store.external_id("crm-a", "contacts", "c-1"), "A1");
    EXPECT_EQ(store.external_id("crm-b", "contacts", "c-1"), "B1");
    EXPECT_EQ(store.external_id("crm-a", "deals", "d-9"), "A9");
    std::string sql;
    {
        auto l = db.lock();
        auto st = db.prepare("SELECT sql FROM sqlite_master WHERE name = 'id_map'");
        ASSERT_TRUE(st.step());
        sql = st.column_text(0);
    }
    EXPECT_NE(sql.find("PRIMARY KEY (record_key, connection, object)"), std::string::npos) << sql;
    store.put_external_id("crm-a", "contacts", "c-1", "A2");  // the upsert's ON CONFLICT matches the new key
    EXPECT_EQ(store.external_id("crm-a", "contacts", "c-1"), "A2");
    StateStore again(db);  // a second open finds nothing to migrate
    EXPECT_EQ(again.external_id("crm-b", "contacts", "c-1"), "B1");
}

}  // namespace

namespace {

// A replayed dead letter is a fresh task: no attempts used, and created now, or
// retry.max_age (counted from created_ms) would dead-letter it again at its first retry.
TEST_F(StateStoreTest, ReplayedDeadLetterIsAFreshTask) {
    recsync::queue::TaskQueue queue(*db_);
    store_->add_dead_letter(dead_letter(3));
    const int64_t before = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    const auto tasks = recsync::store::requeue_dead_letters(*db_, queue, *store_, {}, "");
    ASSERT_EQ(tasks.size(), 1u);
    EXPECT_EQ(store_->dead_letter_count(), 0);
    EXPECT_EQ(tasks[0].attempts, 0);
    EXPECT_GE(tasks[0].created_ms, before);
    EXPECT_EQ(tasks[0].payload, dead_letter(3).task.payload);
}

TEST_F(StateStoreTest, AReplayedCreateThatWasSentStaysInDoubt) {
    recsync::queue::TaskQueue queue(*db_);
    DeadLetter sent = dead_letter(4), unsent = dead_letter(5);
    sent.task.action = unsent.task.action = RECSYNC_ACTION_CREATE;
    sent.task.sent = true;  // e.g. it gave up after timeouts: the CRM may have made it
    store_->add_dead_letter(sent);
    store_->add_dead_letter(unsent);
    const auto tasks = recsync::store::requeue_dead_letters(*db_, queue, *store_, {}, "");
    ASSERT_EQ(tasks.size(), 2u);
    EXPECT_TRUE(tasks[0].sent);
    EXPECT_FALSE(tasks[1].sent);
    const auto pending = queue.load_pending();  // and so after a restart
    ASSERT_EQ(pending.size(), 2u);
    EXPECT_TRUE(pending[0].sent);
    EXPECT_FALSE(pending[1].sent);
}

}  // namespace
