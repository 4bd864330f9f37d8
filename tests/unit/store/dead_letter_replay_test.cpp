// replay_dead_letters over a real SQLite backend: replayed tasks are fresh but keep their
// change's place and send state, each letter leaves in the commit of its task, refused
// connections keep theirs, letters overtaken by a newer change are dropped as stale, and
// the selection (ids, connection) is honoured. stale_reason's wording.
#include "store/dead_letter_replay.hpp"
#include "store/state_backend.hpp"
#include "unit/test_support.hpp"
#include "util/clock.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using recsync::config::StateConfig;
using recsync::model::Change;
using recsync::model::LinkState;
using recsync::model::Order;
using recsync::model::SendState;
using recsync::model::Task;
using recsync::store::append_and_wait;
using recsync::store::batch_of;
using recsync::store::CommitCallbackScope;
using recsync::store::DeadLetter;
using recsync::store::DeliveryBatch;
using recsync::store::open_state_backend;
using recsync::store::replay_dead_letters;
using recsync::store::ReplayReport;
using recsync::store::ReplaySelection;
using recsync::store::StateBackend;
using recsync::model::stale_reason;
using recsync::testing::TempDir;

Task task(const std::string &key, const std::string &connection = "crm", recsync_action action = RECSYNC_ACTION_UPDATE) {
    Task t;
    t.connection = connection;
    t.object = "contacts";
    t.record_key = key;
    t.action = action;
    t.change = Change::Updated;
    t.payload = "{\"key\":\"" + key + "\"}";
    return t;
}

std::vector<std::string> keys(const std::vector<Task> &tasks) {
    std::vector<std::string> out;
    for (const auto &t : tasks) out.push_back(t.record_key);
    return out;
}

class ReplayTest : public ::testing::Test {
protected:
    void SetUp() override { backend_ = open(); }
    std::unique_ptr<StateBackend> open() const { return open_state_backend(StateConfig{(dir_.path() / "state.db").string(), "normal", 0}); }

    // Dead-letters `tasks` the way the dispatcher does: each is appended, then leaves the
    // log in the commit that adds its letter (after `attempts` attempts). Returns the
    // letters' ids, in order; the tasks as they were appended go to `appended`.
    std::vector<int64_t> dead_letter(std::vector<Task> tasks, std::vector<Task> *appended = nullptr, int attempts = 3) {
        auto a = append_and_wait(backend_->tasks(), batch_of(std::move(tasks)));
        if (appended) *appended = a.tasks;
        const int64_t after = last_letter();
        DeliveryBatch b;
        for (auto &t : a.tasks) {
            DeadLetter d;
            d.task = t;
            d.task.attempts = attempts;
            d.task.not_before_ms = 1234;
            d.request = "PATCH https://crm/contacts/" + t.record_key;
            d.response_status = 400;
            d.reason = "rejected";
            d.failed_ms = recsync::util::epoch_ms();
            b.finished.push_back(t.id);
            b.dead_letters.push_back(std::move(d));
        }
        EXPECT_TRUE(backend_->deliveries().record(b, true));
        std::vector<int64_t> ids;
        for (const auto &d : backend_->dead_letters().list(1'000'000, after)) ids.push_back(d.id);
        EXPECT_EQ(ids.size(), a.tasks.size());
        return ids;
    }
    int64_t last_letter() {
        const auto all = backend_->dead_letters().list(1'000'000);
        return all.empty() ? 0 : all.back().id;
    }
    void write_link(const Task &t, const LinkState &s) {
        DeliveryBatch b;
        b.links.push_back({{t.connection, t.object, t.record_key}, s});
        ASSERT_TRUE(backend_->deliveries().record(b, true));
    }
    // The report, with the tasks handed off (collected here; the report itself keeps only
    // counts, so a replay of a million letters holds no more than a page).
    struct Replayed : ReplayReport {
        std::vector<Task> tasks;
    };
    Replayed replay(const ReplaySelection &selection = {}, const std::function<bool(const std::string &)> &replayable = {},
                    const std::function<void(std::vector<Task> &&)> &hand_off = {}) {
        Replayed r;
        const auto collect = [&](std::vector<Task> &&page) {
            r.tasks.insert(r.tasks.end(), page.begin(), page.end());
            if (hand_off) hand_off(std::move(page));
        };
        static_cast<ReplayReport &>(r) = replay_dead_letters(backend_->tasks(), backend_->dead_letters(), backend_->sync_state(), selection, replayable, collect);
        EXPECT_EQ(r.replayed, r.tasks.size()) << "the count is what was handed off";
        return r;
    }

    TempDir dir_;
    std::unique_ptr<StateBackend> backend_;
};

TEST_F(ReplayTest, NothingToReplay) {
    const auto r = replay();
    EXPECT_TRUE(r.tasks.empty());
    EXPECT_EQ(r.held, 0u);
    EXPECT_TRUE(r.stale.empty());
    EXPECT_EQ(r.missing, 0u);
    EXPECT_EQ(backend_->tasks().count(), 0);
}

// Fresh: no attempts used, due now, and created now (retry.max_age counts from the
// replay); but its change keeps its place in the record's order (the original task's id).
TEST_F(ReplayTest, AReplayedTaskIsFreshButKeepsItsChangesPlace) {
    Task t = task("k");
    t.order = {Order::Version, 4};
    t.created_ms = 1'600'000'000'000;
    std::vector<Task> original;
    const auto letters = dead_letter({t}, &original);
    ASSERT_EQ(letters.size(), 1u);
    const int64_t before = recsync::util::epoch_ms();
    const auto r = replay();
    const int64_t after = recsync::util::epoch_ms();
    ASSERT_EQ(r.tasks.size(), 1u);
    const Task &got = r.tasks[0];
    EXPECT_GT(got.id, original[0].id) << "a new task in the log";
    EXPECT_EQ(got.attempts, 0);
    EXPECT_EQ(got.not_before_ms, 0);
    EXPECT_GE(got.created_ms, before);
    EXPECT_LE(got.created_ms, after);
    EXPECT_EQ(got.seq, original[0].id);
    EXPECT_EQ(got.change_seq(), original[0].id);
    EXPECT_EQ(got.from_dead_letter, 0);
    EXPECT_EQ(got.record_key, "k");
    EXPECT_EQ(got.action, RECSYNC_ACTION_UPDATE);
    EXPECT_EQ(got.change, Change::Updated);
    EXPECT_EQ(got.order, (Order{Order::Version, 4}));
    EXPECT_EQ(got.payload, "{\"key\":\"k\"}");
    EXPECT_EQ(r.missing, 0u);
    // The letter is gone, and the task is in the log as reported.
    EXPECT_EQ(backend_->dead_letters().count(), 0);
    EXPECT_FALSE(backend_->dead_letters().get(letters[0]));
    const auto stored = backend_->tasks().read("crm", 0, 10);
    ASSERT_EQ(stored.size(), 1u);
    EXPECT_EQ(stored[0].id, got.id);
    EXPECT_EQ(stored[0].seq, original[0].id);
    EXPECT_EQ(stored[0].attempts, 0);
    EXPECT_EQ(stored[0].created_ms, got.created_ms);
}

// A dead-lettered create whose call went out may have been made there: its replay stays
// in doubt (and so after a restart); one that never went out does not.
TEST_F(ReplayTest, AReplayedCreateThatWasSentStaysInDoubt) {
    Task sent = task("sent", "crm", RECSYNC_ACTION_CREATE), unsent = task("unsent", "crm", RECSYNC_ACTION_CREATE);
    sent.send = SendState::Sent;  // e.g. it gave up after timeouts
    dead_letter({sent, unsent});
    const auto r = replay();
    ASSERT_EQ(r.tasks.size(), 2u);
    EXPECT_EQ(keys(r.tasks), (std::vector<std::string>{"sent", "unsent"}));
    EXPECT_EQ(r.tasks[0].send, SendState::Sent);
    EXPECT_TRUE(r.tasks[0].in_doubt());
    EXPECT_EQ(r.tasks[1].send, SendState::Unsent);
    backend_.reset();
    backend_ = open();
    const auto stored = backend_->tasks().read("crm", 0, 10);
    ASSERT_EQ(stored.size(), 2u);
    EXPECT_EQ(stored[0].send, SendState::Sent);
    EXPECT_EQ(stored[1].send, SendState::Unsent);
}

TEST_F(ReplayTest, HandOffReceivesTheAppendedTasksOnTheCommitThread) {
    dead_letter({task("a"), task("b"), task("c")});
    std::mutex m;
    std::vector<Task> handed;
    std::atomic<int> calls{0};
    std::atomic<bool> in_scope{true}, on_caller{false};
    const auto caller = std::this_thread::get_id();
    const auto r = replay({}, {}, [&](std::vector<Task> &&tasks) {
        ++calls;
        if (!CommitCallbackScope::active()) in_scope = false;
        if (std::this_thread::get_id() == caller) on_caller = true;
        std::lock_guard l(m);
        handed.insert(handed.end(), tasks.begin(), tasks.end());
    });
    ASSERT_EQ(r.tasks.size(), 3u);
    EXPECT_EQ(calls.load(), 1) << "one page, one commit";
    EXPECT_TRUE(in_scope.load());
    EXPECT_FALSE(on_caller.load());
    std::lock_guard l(m);
    ASSERT_EQ(handed.size(), 3u);
    for (size_t i = 0; i < handed.size(); ++i) {
        EXPECT_EQ(handed[i].id, r.tasks[i].id);
        EXPECT_EQ(handed[i].record_key, r.tasks[i].record_key);
        EXPECT_GT(handed[i].id, 0);
    }
}

TEST_F(ReplayTest, HandOffIsNotCalledWhenNothingIsAppended) {
    int calls = 0;
    const auto r = replay({}, {}, [&](std::vector<Task> &&) { ++calls; });
    EXPECT_TRUE(r.tasks.empty());
    EXPECT_EQ(calls, 0);
}

// A running engine refuses the connections it has no lane for: their letters stay.
TEST_F(ReplayTest, LettersOfRefusedConnectionsAreHeld) {
    const auto crm = dead_letter({task("c1", "crm"), task("c2", "crm")});
    const auto erp = dead_letter({task("e1", "erp")});
    std::vector<std::string> asked;
    const auto r = replay({}, [&](const std::string &connection) {
        asked.push_back(connection);
        return connection == "crm";
    });
    EXPECT_EQ(keys(r.tasks), (std::vector<std::string>{"c1", "c2"}));
    EXPECT_EQ(r.held, 1u);
    EXPECT_EQ(r.missing, 0u);
    EXPECT_TRUE(r.stale.empty());
    EXPECT_NE(std::find(asked.begin(), asked.end(), "erp"), asked.end());
    ASSERT_EQ(backend_->dead_letters().count(), 1);
    EXPECT_TRUE(backend_->dead_letters().get(erp[0]));
    EXPECT_TRUE(backend_->tasks().read("erp", 0, 10).empty());
    EXPECT_FALSE(backend_->dead_letters().get(crm[0]));
}

TEST_F(ReplayTest, RefusingEveryConnectionKeepsEveryLetter) {
    dead_letter({task("a"), task("b")});
    const auto r = replay({}, [](const std::string &) { return false; });
    EXPECT_TRUE(r.tasks.empty());
    EXPECT_EQ(r.held, 2u);
    EXPECT_EQ(backend_->dead_letters().count(), 2);
    EXPECT_EQ(backend_->tasks().count(), 0);
}

// The record has since applied a later-accepted change at its link: replaying the letter
// would overwrite it with older data, so it is dropped instead.
TEST_F(ReplayTest, ALetterOvertakenByALaterAcceptedChangeIsDroppedAsStale) {
    std::vector<Task> original;
    const auto letters = dead_letter({task("overtaken"), task("same"), task("behind")}, &original);
    LinkState newer;
    newer.external_id = "x1";
    newer.applied_seq = original[0].id + 100;  // a change accepted after this one's
    write_link(original[0], newer);
    LinkState this_one;
    this_one.applied_seq = original[1].id;  // this very change was applied: not newer
    write_link(original[1], this_one);
    LinkState older;
    older.applied_seq = original[2].id - 1;
    write_link(original[2], older);

    const auto r = replay();
    EXPECT_EQ(r.stale, (std::vector<int64_t>{letters[0]}));
    EXPECT_EQ(keys(r.tasks), (std::vector<std::string>{"same", "behind"}));
    EXPECT_EQ(backend_->dead_letters().count(), 0) << "the stale letter is dropped, not kept";
    EXPECT_TRUE(backend_->tasks().read("crm", 0, 10).size() == 2u);
    for (const auto &t : backend_->tasks().read("crm", 0, 10)) EXPECT_NE(t.record_key, "overtaken");
}

TEST_F(ReplayTest, ALetterOlderInItsSourceThanTheAppliedOrderIsDroppedAsStale) {
    Task v3 = task("v3"), v5 = task("v5"), time = task("time"), none = task("none");
    v3.order = {Order::Version, 3};
    v5.order = {Order::Version, 5};
    time.order = {Order::Time, 1};
    std::vector<Task> original;
    const auto letters = dead_letter({v3, v5, time, none}, &original);
    LinkState applied;
    applied.applied_order = {Order::Version, 5};  // applied_seq 0: only the order says it
    for (const auto &t : original) write_link(t, applied);

    const auto r = replay();
    EXPECT_EQ(r.stale, (std::vector<int64_t>{letters[0]})) << "only version 3 < 5";
    // Equal orders, another kind, or none: not known to be older.
    EXPECT_EQ(keys(r.tasks), (std::vector<std::string>{"v5", "time", "none"}));
    EXPECT_EQ(backend_->dead_letters().count(), 0);
}

TEST_F(ReplayTest, SelectionByIdsReplaysThoseAndCountsTheMissing) {
    const auto letters = dead_letter({task("a"), task("b"), task("c")});
    ReplaySelection s;
    s.ids = {letters[2], 987654, letters[0]};
    const auto r = replay(s);
    EXPECT_EQ(keys(r.tasks), (std::vector<std::string>{"c", "a"})) << "in the order asked";
    EXPECT_EQ(r.missing, 1u);
    ASSERT_EQ(backend_->dead_letters().count(), 1);
    EXPECT_TRUE(backend_->dead_letters().get(letters[1]));
}

TEST_F(ReplayTest, AnIdAskedForTwiceIsReplayedOnce) {
    const auto letters = dead_letter({task("a")});
    ReplaySelection s;
    s.ids = {letters[0], letters[0]};
    const auto r = replay(s);
    EXPECT_EQ(keys(r.tasks), (std::vector<std::string>{"a"}));
    EXPECT_EQ(r.missing, 1u) << "the second is gone by its commit";
    EXPECT_EQ(backend_->tasks().count(), 1);
    // And once replayed, asking again finds nothing.
    const auto again = replay(s);
    EXPECT_TRUE(again.tasks.empty());
    EXPECT_EQ(again.missing, 2u);
}

TEST_F(ReplayTest, SelectionByConnectionReplaysOnlyItsLetters) {
    dead_letter({task("c1", "crm"), task("e1", "erp"), task("c2", "crm"), task("e2", "erp")});
    ReplaySelection s;
    s.connection = "erp";
    const auto r = replay(s);
    EXPECT_EQ(keys(r.tasks), (std::vector<std::string>{"e1", "e2"}));
    EXPECT_EQ(r.held, 0u);
    EXPECT_EQ(r.missing, 0u);
    const auto left = backend_->dead_letters().list(10);
    ASSERT_EQ(left.size(), 2u);
    EXPECT_EQ(left[0].task.record_key, "c1");
    EXPECT_EQ(left[1].task.record_key, "c2");
    EXPECT_EQ(backend_->tasks().read("erp", 0, 10).size(), 2u);
    EXPECT_TRUE(backend_->tasks().read("crm", 0, 10).empty());
}

// More letters than one page (1,000): every one is replayed, oldest first, and leaves.
TEST_F(ReplayTest, MoreLettersThanOnePageAreAllReplayed) {
    constexpr int kLetters = 2'345;
    std::vector<Task> tasks;
    for (int i = 0; i < kLetters; ++i) tasks.push_back(task("k" + std::to_string(i)));
    std::vector<Task> original;
    dead_letter(std::move(tasks), &original);
    ASSERT_EQ(backend_->dead_letters().count(), kLetters);
    size_t handed = 0;
    const auto r = replay({}, {}, [&](std::vector<Task> &&t) { handed += t.size(); });
    ASSERT_EQ(r.tasks.size(), static_cast<size_t>(kLetters));
    EXPECT_EQ(handed, static_cast<size_t>(kLetters));
    for (int i = 0; i < kLetters; ++i) EXPECT_EQ(r.tasks[i].seq, original[i].id) << i;
    for (size_t i = 1; i < r.tasks.size(); ++i) EXPECT_LT(r.tasks[i - 1].id, r.tasks[i].id);
    EXPECT_EQ(backend_->dead_letters().count(), 0);
    EXPECT_EQ(backend_->tasks().count(), kLetters);
}

TEST(StaleReason, NamesTheNewerChange) {
    Task t;
    t.id = 40;
    t.order = {Order::Version, 5};
    LinkState link;
    EXPECT_EQ(stale_reason(t, link), "") << "nothing applied";

    link.applied_order = {Order::Version, 7};
    const auto by_order = stale_reason(t, link);
    EXPECT_NE(by_order.find("newer change"), std::string::npos) << by_order;
    EXPECT_NE(by_order.find("order 7 > 5"), std::string::npos) << by_order;

    link.applied_order = {};
    link.applied_seq = 42;
    const auto by_seq = stale_reason(t, link);
    EXPECT_NE(by_seq.find("newer change"), std::string::npos) << by_seq;
    EXPECT_NE(by_seq.find("task 42"), std::string::npos) << by_seq;
    EXPECT_NE(by_seq.find("40"), std::string::npos) << by_seq;

    t.seq = 42;  // a replay of the very change applied last
    EXPECT_EQ(stale_reason(t, link), "");
    t.seq = 43;
    EXPECT_EQ(stale_reason(t, link), "");
    link.applied_order = {Order::Time, 7};  // another kind: not compared
    EXPECT_EQ(stale_reason(t, link), "");
    link.applied_order = {Order::Version, 5};  // equal: not older
    EXPECT_EQ(stale_reason(t, link), "");
}

}  // namespace
