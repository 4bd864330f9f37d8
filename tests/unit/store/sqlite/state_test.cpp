// The SQLite backend's state beside the task log: the sync state (SyncState, written by
// DeliveryLog::record), the delivery log's batches, and the dead-letter store (paging,
// get, drop, count). Through store::open_state_backend; a second SqliteDb connection only
// looks at a column no interface shows, or breaks a table to make a commit fail.
#include "store/sqlite/sqlite_db.hpp"
#include "store/state_backend.hpp"
#include "unit/test_support.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace {

using recsync::config::StateConfig;
using recsync::model::Change;
using recsync::model::LinkKey;
using recsync::model::LinkState;
using recsync::model::Order;
using recsync::model::SendState;
using recsync::model::Task;
using recsync::store::append_and_wait;
using recsync::store::batch_of;
using recsync::store::DeadLetter;
using recsync::store::DeliveryBatch;
using recsync::store::LinkWrite;
using recsync::store::open_state_backend;
using recsync::store::sqlite::SqliteDb;
using recsync::store::StateBackend;
using recsync::store::TaskRetry;
using recsync::testing::TempDir;

Task task(const std::string &key, recsync_action action = RECSYNC_ACTION_UPDATE) {
    Task t;
    t.connection = "crm";
    t.object = "contacts";
    t.record_key = key;
    t.action = action;
    t.payload = "{\"key\":\"" + key + "\"}";
    return t;
}

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

LinkState full_link() {
    LinkState s;
    s.external_id = "ext-9001";
    s.written_hash = std::numeric_limits<uint64_t>::max() - 5;  // above INT64_MAX: stored as a signed 64-bit column
    s.applied_seq = 1234;
    s.applied_order = {Order::Time, 1'700'000'000'555};
    s.deleted = true;
    s.maybe_exists = true;
    s.written_modified = "2026-12-02T03:00:00.123Z";
    return s;
}

class StateTest : public ::testing::Test {
protected:
    void SetUp() override { backend_ = open(); }
    std::string path() const { return (dir_.path() / "state.db").string(); }
    std::unique_ptr<StateBackend> open() const { return open_state_backend(StateConfig{path(), "normal", 0}); }

    void record(const DeliveryBatch &b) { ASSERT_TRUE(backend_->deliveries().record(b, true)); }
    void write_link(const LinkKey &key, const LinkState &state) {
        DeliveryBatch b;
        b.links.push_back({key, state});
        record(b);
    }
    LinkState link(const LinkKey &key) { return backend_->sync_state().link(key); }
    void add_dead_letter(const DeadLetter &d) {
        DeliveryBatch b;
        b.dead_letters.push_back(d);
        record(b);
    }
    std::vector<Task> tasks() { return backend_->tasks().read("crm", 0, 1000); }
    // What no interface shows: a task's last error.
    std::string last_error(int64_t id) {
        SqliteDb other(path(), "normal");
        auto l = other.lock();
        auto st = other.prepare("SELECT last_error FROM tasks WHERE id = ?");
        st.bind(1, id);
        EXPECT_TRUE(st.step());
        return st.column_is_null(0) ? "<null>" : st.column_text(0);
    }

    TempDir dir_;
    std::unique_ptr<StateBackend> backend_;
};

// --- the sync state ----------------------------------------------------------------------

TEST_F(StateTest, AnUnknownRecordHasTheDefaultLinkState) {
    const auto s = link({"crm", "contacts", "never"});
    EXPECT_EQ(s, LinkState{});
    EXPECT_FALSE(s.linked());
    EXPECT_EQ(s.written_hash, 0u);
    EXPECT_EQ(s.applied_seq, 0);
    EXPECT_EQ(s.applied_order, Order{});
    EXPECT_FALSE(s.deleted);
    EXPECT_FALSE(s.maybe_exists);
}

TEST_F(StateTest, ALinkIsReadBackWhole) {
    const LinkState want = full_link();
    write_link({"crm", "contacts", "c-1"}, want);
    const auto got = link({"crm", "contacts", "c-1"});
    EXPECT_EQ(got.external_id, "ext-9001");
    EXPECT_EQ(got.written_hash, want.written_hash);
    EXPECT_EQ(got.applied_seq, 1234);
    EXPECT_EQ(got.applied_order, (Order{Order::Time, 1'700'000'000'555}));
    EXPECT_TRUE(got.deleted);
    EXPECT_TRUE(got.maybe_exists);
    EXPECT_EQ(got, want);
    // Another kind of order, and the flags off.
    LinkState other;
    other.external_id = "x";
    other.written_hash = 1;
    other.applied_order = {Order::Version, 7};
    write_link({"crm", "contacts", "c-2"}, other);
    EXPECT_EQ(link({"crm", "contacts", "c-2"}), other);
}

// A write is the record's whole state: what it leaves out is cleared, not kept.
// The dispatcher reads the records a batch of tasks brings into a window in one read: the
// same states, in the order asked, unknown ones default.
TEST_F(StateTest, ManyLinksReadAtOnceComeBackInTheOrderAsked) {
    LinkState a, b;
    a.external_id = "1";
    a.applied_seq = 7;
    b.external_id = "2";
    b.deleted = true;
    write_link({"crm", "contacts", "a"}, a);
    write_link({"crm", "contacts", "b"}, b);
    const auto got = backend_->sync_state().links({{"crm", "contacts", "b"}, {"crm", "contacts", "none"}, {"crm", "contacts", "a"}});
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0], b);
    EXPECT_EQ(got[1], LinkState{});
    EXPECT_EQ(got[2], a);
    EXPECT_TRUE(backend_->sync_state().links({}).empty());
    // The read transaction is closed: a write after it is seen by the next read.
    a.external_id = "11";
    write_link({"crm", "contacts", "a"}, a);
    EXPECT_EQ(backend_->sync_state().links({{"crm", "contacts", "a"}}).at(0).external_id, "11");
}

TEST_F(StateTest, ALinkWriteReplacesTheWholeState) {
    write_link({"crm", "contacts", "c-1"}, full_link());
    LinkState after;
    after.applied_seq = 2000;  // e.g. deleted there: id and hash forgotten
    write_link({"crm", "contacts", "c-1"}, after);
    EXPECT_EQ(link({"crm", "contacts", "c-1"}), after);
    EXPECT_FALSE(link({"crm", "contacts", "c-1"}).linked());
}

TEST_F(StateTest, LinksAreKeyedByConnectionObjectAndRecord) {
    auto with_id = [](const std::string &id) {
        LinkState s;
        s.external_id = id;
        return s;
    };
    write_link({"crm", "contacts", "k"}, with_id("1"));
    write_link({"crm", "companies", "k"}, with_id("2"));
    write_link({"other", "contacts", "k"}, with_id("3"));
    write_link({"crm", "contacts", "K"}, with_id("4"));
    EXPECT_EQ(link({"crm", "contacts", "k"}).external_id, "1");
    EXPECT_EQ(link({"crm", "companies", "k"}).external_id, "2");
    EXPECT_EQ(link({"other", "contacts", "k"}).external_id, "3");
    EXPECT_EQ(link({"crm", "contacts", "K"}).external_id, "4");
    EXPECT_FALSE(link({"other", "companies", "k"}).linked());
    EXPECT_FALSE(link({"crm", "contacts", "k "}).linked());
}

TEST_F(StateTest, UnicodeAndLongValuesRoundTrip) {
    const std::string key = "ключ-東京-🚀", ext(5000, 'x'), connection = "crm-ü", object = "объекты";
    LinkState s;
    s.external_id = ext;
    write_link({connection, object, key}, s);
    EXPECT_EQ(link({connection, object, key}).external_id, ext);
    const std::string with_nul("a\0b", 3);
    s.external_id = "id-" + key;
    write_link({"crm", "contacts", with_nul}, s);
    EXPECT_EQ(link({"crm", "contacts", with_nul}).external_id, "id-" + key);
    EXPECT_FALSE(link({"crm", "contacts", "a"}).linked());
}

TEST_F(StateTest, LinksSurviveReopen) {
    write_link({"crm", "contacts", "c"}, full_link());
    add_dead_letter(dead_letter(1));
    backend_.reset();
    backend_ = open();
    EXPECT_EQ(link({"crm", "contacts", "c"}), full_link());
    EXPECT_EQ(backend_->dead_letters().count(), 1);
}

TEST_F(StateTest, OpeningCreatesTheDatabasesDirectory) {
    const std::string nested = (dir_.path() / "a" / "b" / "state.db").string();
    auto b = open_state_backend(StateConfig{nested, "normal", 0});
    EXPECT_EQ(b->description(), "sqlite " + nested);
    EXPECT_EQ(append_and_wait(b->tasks(), batch_of({task("x")})).tasks.size(), 1u);
}

// --- delivery batches --------------------------------------------------------------------

TEST_F(StateTest, AnEmptyBatchRecordsNothingAndSucceeds) {
    EXPECT_TRUE(DeliveryBatch{}.empty());
    EXPECT_TRUE(backend_->deliveries().record(DeliveryBatch{}, true));
    EXPECT_TRUE(backend_->deliveries().record(DeliveryBatch{}, false));
}

TEST_F(StateTest, FinishedTasksLeaveTheLog) {
    const auto a = append_and_wait(backend_->tasks(), batch_of({task("a"), task("b"), task("c")}));
    DeliveryBatch b;
    b.finished = {a.tasks[0].id, a.tasks[2].id, 987654 /* not there: ignored */};
    EXPECT_FALSE(b.empty());
    record(b);
    const auto left = tasks();
    ASSERT_EQ(left.size(), 1u);
    EXPECT_EQ(left[0].record_key, "b");
    EXPECT_EQ(backend_->tasks().count(), 1);
}

TEST_F(StateTest, RetriesUpdateAttemptsNotBeforeAndTheError) {
    const auto a = append_and_wait(backend_->tasks(), batch_of({task("a"), task("b")}));
    DeliveryBatch b;
    b.retries.push_back(TaskRetry{a.tasks[0].id, 3, 99'999, "HTTP 503"});
    record(b);
    const auto after = tasks();
    ASSERT_EQ(after.size(), 2u);
    EXPECT_EQ(after[0].id, a.tasks[0].id);  // order unchanged
    EXPECT_EQ(after[0].attempts, 3);
    EXPECT_EQ(after[0].not_before_ms, 99'999);
    EXPECT_EQ(after[0].payload, a.tasks[0].payload);
    EXPECT_EQ(after[1].attempts, 0);
    EXPECT_EQ(after[1].not_before_ms, 0);
    EXPECT_EQ(last_error(a.tasks[0].id), "HTTP 503");
    EXPECT_EQ(last_error(a.tasks[1].id), "<null>");
}

TEST_F(StateTest, SentMarksMarkOnlyTheirTasks) {
    const auto a = append_and_wait(backend_->tasks(), batch_of({task("a"), task("b"), task("c")}));
    DeliveryBatch b;
    b.sent_marks = {a.tasks[0].id, a.tasks[2].id};
    record(b);
    const auto after = tasks();
    ASSERT_EQ(after.size(), 3u);
    EXPECT_EQ(after[0].send, SendState::Sent);
    EXPECT_EQ(after[1].send, SendState::Unsent);
    EXPECT_EQ(after[2].send, SendState::Sent);
}

TEST_F(StateTest, ADeadLetterKeepsEveryFieldIncludingItsChange) {
    Task t = task("k", RECSYNC_ACTION_CREATE);
    t.change = Change::Created;
    t.order = {Order::Version, 17};
    t.created_ms = 1'700'000'000'001;
    t.send = SendState::Sent;
    const auto a = append_and_wait(backend_->tasks(), batch_of({t}));
    ASSERT_EQ(a.tasks.size(), 1u);
    DeadLetter d;
    d.task = a.tasks[0];
    d.task.attempts = 5;
    d.request = "POST https://crm/contacts\nAuthorization: <redacted>\n\n{\"key\":\"k\"}";
    d.response_status = 422;
    d.response_body = "{\"error\":\"bad email\"}";
    d.reason = "HTTP 422: bad email";
    d.failed_ms = 1'800'000'000'002;
    DeliveryBatch b;
    b.finished = {d.task.id};
    b.dead_letters = {d};
    record(b);
    EXPECT_EQ(backend_->tasks().count(), 0);
    ASSERT_EQ(backend_->dead_letters().count(), 1);

    const auto list = backend_->dead_letters().list(10);
    ASSERT_EQ(list.size(), 1u);
    const DeadLetter &got = list[0];
    EXPECT_GT(got.id, 0);
    EXPECT_EQ(got.task.id, a.tasks[0].id);
    EXPECT_EQ(got.task.connection, "crm");
    EXPECT_EQ(got.task.object, "contacts");
    EXPECT_EQ(got.task.record_key, "k");
    EXPECT_EQ(got.task.action, RECSYNC_ACTION_CREATE);
    EXPECT_EQ(got.task.payload, "{\"key\":\"k\"}");
    EXPECT_EQ(got.task.attempts, 5);
    EXPECT_EQ(got.task.created_ms, 1'700'000'000'001);
    EXPECT_EQ(got.task.change, Change::Created);
    EXPECT_EQ(got.task.order, (Order{Order::Version, 17}));
    EXPECT_EQ(got.task.send, SendState::Sent);
    EXPECT_EQ(got.task.seq, a.tasks[0].id) << "the change's place: its task's id";
    EXPECT_EQ(got.task.change_seq(), a.tasks[0].id);
    EXPECT_EQ(got.request, d.request);
    EXPECT_EQ(got.response_status, 422);
    EXPECT_EQ(got.response_body, d.response_body);
    EXPECT_EQ(got.reason, d.reason);
    EXPECT_EQ(got.failed_ms, 1'800'000'000'002);

    const auto one = backend_->dead_letters().get(got.id);
    ASSERT_TRUE(one);
    EXPECT_EQ(one->task.record_key, "k");
    EXPECT_EQ(one->task.order, got.task.order);
    EXPECT_EQ(one->reason, got.reason);
}

// A replayed task that fails again keeps the place of the change it carries (its seq),
// not its own id's.
TEST_F(StateTest, ADeadLetterOfAReplayKeepsTheOriginalSeq) {
    DeadLetter d = dead_letter(1);
    d.task.seq = 7;
    add_dead_letter(d);
    const auto got = backend_->dead_letters().list(1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].task.id, d.task.id);
    EXPECT_EQ(got[0].task.seq, 7);
    EXPECT_EQ(got[0].task.change_seq(), 7);
}

TEST_F(StateTest, EmptyOptionalFieldsRoundTrip) {
    DeadLetter d;
    d.task.connection = "crm";
    d.task.object = "contacts";
    d.task.record_key = "k";
    d.task.action = RECSYNC_ACTION_DELETE;
    d.reason = "no route";
    add_dead_letter(d);
    const auto list = backend_->dead_letters().list(1);
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0].task.payload, "");
    EXPECT_EQ(list[0].request, "");
    EXPECT_EQ(list[0].response_status, 0);
    EXPECT_EQ(list[0].response_body, "");
    EXPECT_EQ(list[0].task.action, RECSYNC_ACTION_DELETE);
    EXPECT_EQ(list[0].task.order, Order{});
    EXPECT_EQ(list[0].task.change, Change::Unknown);
    EXPECT_EQ(list[0].task.send, SendState::Unsent);
}

// Everything of a batch lands together: here the dead letter (written after the marks,
// retries and links) fails, and none of the rest is recorded either.
TEST_F(StateTest, ABatchIsRecordedAllOrNothing) {
    const auto a = append_and_wait(backend_->tasks(), batch_of({task("a"), task("b"), task("c")}));
    DeliveryBatch b;
    b.sent_marks = {a.tasks[0].id};
    b.retries.push_back(TaskRetry{a.tasks[1].id, 2, 5000, "timeout"});
    b.links.push_back({{"crm", "contacts", "a"}, full_link()});
    DeadLetter d;
    d.task = a.tasks[2];
    d.reason = "gave up";
    b.dead_letters.push_back(d);
    b.finished = {a.tasks[0].id, a.tasks[2].id};
    {
        SqliteDb other(path(), "normal");
        other.exec("ALTER TABLE dead_letters RENAME TO dead_letters_elsewhere");
    }
    EXPECT_THROW(backend_->deliveries().record(b, true), std::exception);
    {
        SqliteDb other(path(), "normal");
        other.exec("ALTER TABLE dead_letters_elsewhere RENAME TO dead_letters");
    }
    auto left = tasks();
    ASSERT_EQ(left.size(), 3u) << "no task finished";
    EXPECT_EQ(left[0].send, SendState::Unsent) << "no mark";
    EXPECT_EQ(left[1].attempts, 0) << "no retry";
    EXPECT_EQ(link({"crm", "contacts", "a"}), LinkState{}) << "no link";
    EXPECT_EQ(backend_->dead_letters().count(), 0);

    // The same batch, now that it can be written, lands whole.
    EXPECT_TRUE(backend_->deliveries().record(b, true));
    left = tasks();
    ASSERT_EQ(left.size(), 1u);
    EXPECT_EQ(left[0].id, a.tasks[1].id);
    EXPECT_EQ(left[0].attempts, 2);
    EXPECT_EQ(left[0].not_before_ms, 5000);
    EXPECT_EQ(link({"crm", "contacts", "a"}), full_link());
    ASSERT_EQ(backend_->dead_letters().count(), 1);
    EXPECT_EQ(backend_->dead_letters().list(1)[0].task.record_key, "c");
}

// wait=false with nobody else writing records like wait=true. (That it gives up at once
// while another thread holds the writer is not tested here: the backend's writer
// connection is private, and its only holder, the task log's commit thread, holds it
// for no longer than a commit, with no hook inside; SqliteDb::try_transaction itself is
// tested in sqlite_db_test.cpp.)
TEST_F(StateTest, RecordWithoutWaitingRecordsWhenTheWriterIsFree) {
    const auto a = append_and_wait(backend_->tasks(), batch_of({task("a")}));
    DeliveryBatch b;
    b.finished = {a.tasks[0].id};
    b.links.push_back({{"crm", "contacts", "a"}, full_link()});
    EXPECT_TRUE(backend_->deliveries().record(b, false));
    EXPECT_EQ(backend_->tasks().count(), 0);
    EXPECT_EQ(link({"crm", "contacts", "a"}), full_link());
}

// --- the dead-letter store ---------------------------------------------------------------

TEST_F(StateTest, DeadLettersPageWithAfterAndLimit) {
    auto &letters = backend_->dead_letters();
    EXPECT_EQ(letters.count(), 0);
    EXPECT_TRUE(letters.list(10).empty());
    DeliveryBatch b;
    for (int i = 1; i <= 5; ++i) b.dead_letters.push_back(dead_letter(i));
    record(b);
    EXPECT_EQ(letters.count(), 5);

    const auto first = letters.list(2);
    ASSERT_EQ(first.size(), 2u);
    EXPECT_EQ(first[0].task.record_key, "k1");
    EXPECT_EQ(first[1].task.record_key, "k2");
    EXPECT_LT(first[0].id, first[1].id);

    const auto second = letters.list(2, first.back().id);
    ASSERT_EQ(second.size(), 2u);
    EXPECT_EQ(second[0].task.record_key, "k3");
    EXPECT_EQ(second[1].task.record_key, "k4");

    const auto third = letters.list(2, second.back().id);
    ASSERT_EQ(third.size(), 1u);
    EXPECT_EQ(third[0].task.record_key, "k5");

    EXPECT_TRUE(letters.list(2, third.back().id).empty());
    EXPECT_TRUE(letters.list(0).empty());
    EXPECT_EQ(letters.list(100).size(), 5u);
    EXPECT_EQ(letters.list(100, first[0].id).size(), 4u);
}

TEST_F(StateTest, GetFindsOneLetterByItsId) {
    DeliveryBatch b;
    for (int i = 1; i <= 3; ++i) b.dead_letters.push_back(dead_letter(i));
    record(b);
    const auto all = backend_->dead_letters().list(10);
    ASSERT_EQ(all.size(), 3u);
    const auto middle = backend_->dead_letters().get(all[1].id);
    ASSERT_TRUE(middle);
    EXPECT_EQ(middle->id, all[1].id);
    EXPECT_EQ(middle->task.record_key, "k2");
    EXPECT_EQ(middle->response_status, 402);
    EXPECT_FALSE(backend_->dead_letters().get(all.back().id + 1));
    EXPECT_FALSE(backend_->dead_letters().get(0));
    ASSERT_TRUE(backend_->dead_letters().drop(all[1].id));
    EXPECT_FALSE(backend_->dead_letters().get(all[1].id)) << "not the next one instead";
}

TEST_F(StateTest, DropRemovesOneLetterAndSaysWhetherItWasThere) {
    DeliveryBatch b;
    for (int i = 1; i <= 3; ++i) b.dead_letters.push_back(dead_letter(i));
    record(b);
    auto &letters = backend_->dead_letters();
    const auto all = letters.list(10);
    ASSERT_EQ(all.size(), 3u);
    EXPECT_TRUE(letters.drop(all[0].id));
    EXPECT_FALSE(letters.drop(all[0].id)) << "gone already";
    EXPECT_FALSE(letters.drop(987654));
    EXPECT_EQ(letters.count(), 2);
    const auto left = letters.list(10);
    ASSERT_EQ(left.size(), 2u);
    EXPECT_EQ(left[0].task.record_key, "k2");
    EXPECT_EQ(left[1].task.record_key, "k3");
}

}  // namespace
