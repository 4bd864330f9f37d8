// plan_call and the state transitions: what call a task's intent becomes from the record's
// sync state at its link, and what the link knows after the result.
#include "dispatch/call_plan.hpp"

#include "config/config.hpp"

#include <gtest/gtest.h>

namespace {

using recsync::dispatch::CallPlan;
using recsync::dispatch::plan_call;
using recsync::dispatch::Skip;
using recsync::dispatch::state_after_dead_letter;
using recsync::dispatch::state_after_skip;
using recsync::dispatch::state_after_success;
using recsync::model::Change;
using recsync::model::CreateRetry;
using recsync::model::LinkState;
using recsync::model::Order;
using recsync::model::payload_hash;
using recsync::model::SendState;
using recsync::model::Task;

Task task(recsync_action action, Change change, int64_t id = 10, std::string payload = R"({"properties":{"a":"1"}})") {
    Task t;
    t.id = id;
    t.connection = "crm";
    t.object = "contacts";
    t.record_key = "k";
    t.action = action;
    t.change = change;
    t.payload = std::move(payload);
    return t;
}

LinkState linked(std::string id = "901") {
    LinkState s;
    s.external_id = std::move(id);
    return s;
}

CallPlan plan(const Task &t, const LinkState &s, CreateRetry retry = CreateRetry::Upsert) { return plan_call(t, s, retry, payload_hash(t.payload)); }

TEST(CallPlan, ACreatedEventForALinkedRecordBecomesAnUpdateOfIt) {
    const auto p = plan(task(RECSYNC_ACTION_CREATE, Change::Created), linked());
    ASSERT_EQ(p.kind, CallPlan::Kind::Send);
    EXPECT_EQ(p.action, RECSYNC_ACTION_UPDATE);
    EXPECT_EQ(p.external_id, "901");
}

TEST(CallPlan, AReadGoesByTheLinkOrByTheIdItsHydrationNames) {
    auto p = plan(task(RECSYNC_ACTION_READ, Change::Updated, 10, ""), linked());
    ASSERT_EQ(p.kind, CallPlan::Kind::Send);
    EXPECT_EQ(p.action, RECSYNC_ACTION_READ);
    EXPECT_EQ(p.external_id, "901");
    p = plan(task(RECSYNC_ACTION_READ, Change::Updated, 10, recsync::model::read_payload("77")), LinkState{});
    ASSERT_EQ(p.kind, CallPlan::Kind::Send);
    EXPECT_EQ(p.external_id, "77");
    EXPECT_EQ(plan(task(RECSYNC_ACTION_READ, Change::Updated, 10, ""), LinkState{}).kind, CallPlan::Kind::Fail) << "nothing names the record there";
    EXPECT_EQ(recsync::model::read_target("not json"), "");
    // Deleted there: a late change reads nothing; a creation (a restore) does.
    LinkState gone;
    gone.deleted = true;
    EXPECT_EQ(plan(task(RECSYNC_ACTION_READ, Change::Updated, 10, recsync::model::read_payload("77")), gone).skip, Skip::AfterDelete);
    EXPECT_EQ(plan(task(RECSYNC_ACTION_READ, Change::Created, 10, recsync::model::read_payload("77")), gone).kind, CallPlan::Kind::Send);
}

TEST(CallPlan, ACreateOfARecordNeverMadeThereIsACreate) {
    const auto p = plan(task(RECSYNC_ACTION_CREATE, Change::Created), LinkState{});
    ASSERT_EQ(p.kind, CallPlan::Kind::Send);
    EXPECT_EQ(p.action, RECSYNC_ACTION_CREATE);
    EXPECT_FALSE(p.in_doubt);
}

TEST(CallPlan, AnUpdateWhosePayloadIsWhatWasLastWrittenSendsNothing) {
    const auto t = task(RECSYNC_ACTION_UPDATE, Change::Updated);
    auto s = linked();
    s.written_hash = payload_hash(t.payload);
    const auto p = plan(t, s);
    EXPECT_EQ(p.kind, CallPlan::Kind::Skip);
    EXPECT_EQ(p.skip, Skip::Unchanged);
    // One byte more and it goes.
    const auto changed = task(RECSYNC_ACTION_UPDATE, Change::Updated, 11, R"({"properties":{"a":"2"}})");
    EXPECT_EQ(plan(changed, s).action, RECSYNC_ACTION_UPDATE);
    // A repeated create of the same record, unchanged: nothing either.
    EXPECT_EQ(plan(task(RECSYNC_ACTION_CREATE, Change::Created), s).skip, Skip::Unchanged);
}

TEST(CallPlan, AnUpsertOfALinkedRecordUpdatesItById) {
    const auto p = plan(task(RECSYNC_ACTION_UPSERT, Change::Updated), linked("77"));
    EXPECT_EQ(p.action, RECSYNC_ACTION_UPDATE);
    EXPECT_EQ(p.external_id, "77");
    EXPECT_EQ(plan(task(RECSYNC_ACTION_UPSERT, Change::Updated), LinkState{}).action, RECSYNC_ACTION_UPSERT);
}

TEST(CallPlan, AnUpdateOfARecordNeverMadeThereFailsSayingSo) {
    const auto p = plan(task(RECSYNC_ACTION_UPDATE, Change::Updated), LinkState{});
    EXPECT_EQ(p.kind, CallPlan::Kind::Fail);
    EXPECT_NE(p.reason.find("no external id"), std::string::npos) << p.reason;
}

TEST(CallPlan, ADeleteOfALinkedRecordIsSentAndOneNeverMadeIsNot) {
    const auto p = plan(task(RECSYNC_ACTION_DELETE, Change::Deleted, 10, ""), linked("5"));
    ASSERT_EQ(p.kind, CallPlan::Kind::Send);
    EXPECT_EQ(p.action, RECSYNC_ACTION_DELETE);
    EXPECT_EQ(p.external_id, "5");
    EXPECT_EQ(plan(task(RECSYNC_ACTION_DELETE, Change::Deleted, 10, ""), LinkState{}).skip, Skip::NotSynced);
}

// A create that went out without an answer and was dead-lettered may have made the record:
// a delete cannot know which record to delete, and says so instead of doing nothing.
TEST(CallPlan, ADeleteOfARecordThatMayExistWithoutAnIdFailsSayingWhy) {
    LinkState s;
    s.maybe_exists = true;
    const auto p = plan(task(RECSYNC_ACTION_DELETE, Change::Deleted, 10, ""), s);
    EXPECT_EQ(p.kind, CallPlan::Kind::Fail);
    EXPECT_NE(p.reason.find("may have been made"), std::string::npos) << p.reason;
}

TEST(CallPlan, ALateUpdateAfterADeleteDoesNotBringTheRecordBack) {
    LinkState tombstone;
    tombstone.deleted = true;
    for (const auto action : {RECSYNC_ACTION_UPDATE, RECSYNC_ACTION_UPSERT, RECSYNC_ACTION_CREATE}) {
        const auto p = plan(task(action, Change::Updated), tombstone);
        EXPECT_EQ(p.kind, CallPlan::Kind::Skip) << recsync::model::action_text(action);
        EXPECT_EQ(p.skip, Skip::AfterDelete);
    }
    // Its creation does.
    const auto p = plan(task(RECSYNC_ACTION_CREATE, Change::Created), tombstone);
    ASSERT_EQ(p.kind, CallPlan::Kind::Send);
    EXPECT_EQ(p.action, RECSYNC_ACTION_CREATE);
}

TEST(CallPlan, AChangeOlderThanTheOneAppliedIsStale) {
    LinkState s = linked();
    s.applied_seq = 50;
    auto replay = task(RECSYNC_ACTION_UPDATE, Change::Updated, 80);
    replay.seq = 40;  // a dead letter of task 40, replayed as task 80
    EXPECT_EQ(plan(replay, s).skip, Skip::Stale);
    replay.seq = 60;
    EXPECT_EQ(plan(replay, s).kind, CallPlan::Kind::Send);
    // By the source's own order too, whatever the acceptance order says.
    s.applied_order = {Order::Version, 7};
    auto older = task(RECSYNC_ACTION_UPDATE, Change::Updated, 90);
    older.order = {Order::Version, 6};
    EXPECT_EQ(plan(older, s).skip, Skip::Stale);
    older.order = {Order::Version, 7};
    EXPECT_EQ(plan(older, s).kind, CallPlan::Kind::Send) << "the same version is not older";
    older.order = {Order::Time, 1};
    EXPECT_EQ(plan(older, s).kind, CallPlan::Kind::Send) << "orders of different kinds do not compare";
}

TEST(CallPlan, ACreateThatMayAlreadyHaveBeenMadeGoesAsTheProviderSays) {
    auto t = task(RECSYNC_ACTION_CREATE, Change::Created);
    t.send = SendState::SentUnmarked;
    auto p = plan(t, LinkState{}, CreateRetry::Upsert);
    EXPECT_EQ(p.action, RECSYNC_ACTION_UPSERT);
    EXPECT_TRUE(p.in_doubt);
    p = plan(t, LinkState{}, CreateRetry::Find);
    EXPECT_EQ(p.action, RECSYNC_ACTION_FIND);
    EXPECT_EQ(plan(t, LinkState{}, CreateRetry::Resend).action, RECSYNC_ACTION_CREATE);
    t.send = SendState::Absent;  // a FIND found nothing
    EXPECT_EQ(plan(t, LinkState{}, CreateRetry::Find).action, RECSYNC_ACTION_CREATE);
}

// A record whose earlier create was dead-lettered in doubt: a new create of it must not
// make a second one either.
TEST(CallPlan, ACreateOfARecordThatMayExistIsInDoubtEvenAsAFreshTask) {
    LinkState s;
    s.maybe_exists = true;
    const auto p = plan(task(RECSYNC_ACTION_CREATE, Change::Created), s, CreateRetry::Upsert);
    EXPECT_EQ(p.action, RECSYNC_ACTION_UPSERT);
    EXPECT_TRUE(p.in_doubt);
}

TEST(CallPlan, StateAfterACreateLinksTheRecordAndRemembersThePayload) {
    const auto t = task(RECSYNC_ACTION_CREATE, Change::Created, 12);
    LinkState before;
    before.deleted = true;
    before.maybe_exists = true;
    const auto s = state_after_success(before, t, RECSYNC_ACTION_CREATE, "444", 99);
    EXPECT_EQ(s.external_id, "444");
    EXPECT_EQ(s.written_hash, 99u);
    EXPECT_EQ(s.applied_seq, 12);
    EXPECT_FALSE(s.deleted);
    EXPECT_FALSE(s.maybe_exists);
}

TEST(CallPlan, StateAfterADeleteIsATombstone) {
    auto t = task(RECSYNC_ACTION_DELETE, Change::Deleted, 30, "");
    t.order = {Order::Version, 4};
    auto s = state_after_success(linked("1"), t, RECSYNC_ACTION_DELETE, "1", 0);
    EXPECT_FALSE(s.linked());
    EXPECT_TRUE(s.deleted);
    EXPECT_EQ(s.applied_seq, 30);
    EXPECT_EQ(s.applied_order, (Order{Order::Version, 4}));
    // Nothing to delete: a tombstone all the same, so a late update does not make it.
    s = state_after_skip(LinkState{}, t, Skip::NotSynced);
    EXPECT_TRUE(s.deleted);
}

TEST(CallPlan, AFindThatFoundTheRecordLinksItButAppliesNothing) {
    const auto t = task(RECSYNC_ACTION_CREATE, Change::Created, 12);
    const auto s = state_after_success(LinkState{}, t, RECSYNC_ACTION_FIND, "808", 5);
    EXPECT_EQ(s.external_id, "808");
    EXPECT_EQ(s.applied_seq, 0) << "the create itself is still to come (as an update)";
    EXPECT_EQ(state_after_success(LinkState{}, t, RECSYNC_ACTION_FIND, "", 5), LinkState{});
}

TEST(CallPlan, ASkippedStaleChangeChangesNothing) {
    auto s = linked();
    s.applied_seq = 100;
    EXPECT_EQ(state_after_skip(s, task(RECSYNC_ACTION_UPDATE, Change::Updated, 5), Skip::Stale), s);
    EXPECT_EQ(state_after_skip(s, task(RECSYNC_ACTION_UPDATE, Change::Updated, 5), Skip::AfterDelete), s);
}

TEST(CallPlan, ADeadLetteredCreateThatWentOutLeavesARecordThatMayExist) {
    auto t = task(RECSYNC_ACTION_CREATE, Change::Created);
    t.send = SendState::Sent;
    auto s = state_after_dead_letter(LinkState{}, t, false);
    ASSERT_TRUE(s);
    EXPECT_TRUE(s->maybe_exists);
    // A definite refusal on the first attempt: nothing was made.
    EXPECT_FALSE(state_after_dead_letter(LinkState{}, t, true));
    // ... unless an earlier attempt had no answer.
    t.attempts = 2;
    EXPECT_TRUE(state_after_dead_letter(LinkState{}, t, true));
    // Never sent, or a linked record, or an update: nothing changes.
    t.send = SendState::Unsent;
    t.attempts = 0;
    EXPECT_FALSE(state_after_dead_letter(LinkState{}, t, false));
    t.send = SendState::Sent;
    EXPECT_FALSE(state_after_dead_letter(linked(), t, false));
    auto u = task(RECSYNC_ACTION_UPDATE, Change::Updated);
    u.send = SendState::Sent;
    EXPECT_FALSE(state_after_dead_letter(LinkState{}, u, false));
}

// ---- conflicts: a two-way task toward a side that changed the record itself ----------

Task two_way(recsync::config::ConflictPolicy p, int64_t at_ms, int64_t id = 10) {
    Task t = task(RECSYNC_ACTION_UPSERT, Change::Updated, id);
    t.order = {Order::Time, at_ms};
    t.conflict = static_cast<uint8_t>(p);
    return t;
}
using recsync::config::ConflictPolicy;
using recsync::dispatch::conflict_loss;
using recsync::model::SideChange;

TEST(ConflictLoss, LastWriterWinsByEachSidesTimeWithTiesToSystemA) {
    const Task t = two_way(ConflictPolicy::LastWriterWins, 1000);
    EXPECT_NE(conflict_loss(t, SideChange{11, 2000}, false), "") << "the CRM changed it later";
    EXPECT_EQ(conflict_loss(t, SideChange{11, 500}, false), "") << "the CRM's change is older";
    EXPECT_NE(conflict_loss(t, SideChange{5, 2000}, false), "") << "an older change arriving late still loses";
    // Within one millisecond System A's change wins, whichever was accepted first.
    EXPECT_EQ(conflict_loss(t, SideChange{11, 1000}, false), "") << "a tie toward the CRM: this change, System A's, wins";
    EXPECT_EQ(conflict_loss(t, SideChange{9, 1000}, false), "") << "a tie toward the CRM: this change, System A's, wins";
    EXPECT_NE(conflict_loss(t, SideChange{9, 1000}, true), "") << "a tie toward System A: System A's change there wins";
    EXPECT_NE(conflict_loss(t, SideChange{11, 1000}, true), "") << "a tie toward System A: System A's change there wins";
    EXPECT_EQ(conflict_loss(t, std::nullopt, false), "") << "the side never changed it";
    // Without occurred_at, the change's time is when it was accepted.
    Task untimed = two_way(ConflictPolicy::LastWriterWins, 0);
    untimed.order = {};
    untimed.created_ms = 3000;
    EXPECT_EQ(conflict_loss(untimed, SideChange{11, 2000}, false), "");
    // A replay (its change's seq kept, its acceptance stamped anew) without occurred_at
    // loses to any change there since its change was accepted, whatever the clock says.
    Task replay = untimed;
    replay.seq = 4;
    replay.created_ms = 9000;
    EXPECT_NE(conflict_loss(replay, SideChange{5, 2000}, false), "");
    EXPECT_EQ(conflict_loss(replay, SideChange{3, 2000}, false), "");
}

TEST(ConflictLoss, APreferredSideWinsWhenTheChangesWereConcurrent) {
    const Task t = two_way(ConflictPolicy::PreferInternal, 1000, 10);
    EXPECT_EQ(conflict_loss(t, SideChange{12, 9000}, false), "") << "toward the CRM, System A is preferred";
    EXPECT_NE(conflict_loss(t, SideChange{12, 1}, true), "") << "toward System A, which changed it after this was accepted";
    EXPECT_EQ(conflict_loss(t, SideChange{9, 1}, true), "") << "System A's change came before this one: no conflict";
    const Task e = two_way(ConflictPolicy::PreferExternal, 1000, 10);
    EXPECT_NE(conflict_loss(e, SideChange{10, 1}, false), "");
    EXPECT_EQ(conflict_loss(e, SideChange{10, 9000}, true), "");
}

// What System A's database is told to check at the row for a write toward it.
TEST(ConflictLoss, SystemAsDatabaseIsToldFromWhenItsOwnChangeWins) {
    using recsync::dispatch::loses_to_system_a_changes_since_ms;
    EXPECT_EQ(loses_to_system_a_changes_since_ms(two_way(ConflictPolicy::LastWriterWins, 1000)), 1000) << "the change's own time";
    Task accepted = two_way(ConflictPolicy::PreferInternal, 1000);
    accepted.created_ms = 4000;
    EXPECT_EQ(loses_to_system_a_changes_since_ms(accepted), 4000) << "concurrent: changed there after this was accepted";
    EXPECT_EQ(loses_to_system_a_changes_since_ms(two_way(ConflictPolicy::PreferExternal, 1000)), 0);
    EXPECT_EQ(loses_to_system_a_changes_since_ms(two_way(ConflictPolicy::None, 1000)), 0);
    Task d = two_way(ConflictPolicy::LastWriterWins, 1000);
    d.action = RECSYNC_ACTION_DELETE;
    EXPECT_EQ(loses_to_system_a_changes_since_ms(d), 0) << "deletes stand";
}

TEST(ConflictLoss, DeletesReadsAndTasksWithoutAPolicyNeverLose) {
    Task d = two_way(ConflictPolicy::LastWriterWins, 1000);
    d.action = RECSYNC_ACTION_DELETE;
    EXPECT_EQ(conflict_loss(d, SideChange{11, 9000}, false), "");
    EXPECT_EQ(conflict_loss(two_way(ConflictPolicy::None, 1000), SideChange{11, 9000}, false), "");
    // A conflict lost leaves the link as applied: nothing is still on its way there.
    const auto s = state_after_skip(linked(), two_way(ConflictPolicy::LastWriterWins, 1000, 33), Skip::Conflict);
    EXPECT_EQ(s.applied_seq, 33);
}

TEST(CallPlan, ADeleteAtSystemAIsSentByKeyEvenIfRecsyncNeverWroteTheRecordThere) {
    const Task d = task(RECSYNC_ACTION_DELETE, Change::Deleted);
    EXPECT_EQ(plan_call(d, LinkState{}, CreateRetry::Upsert, 0).kind, CallPlan::Kind::Skip) << "a CRM: never made there";
    const CallPlan p = plan_call(d, LinkState{}, CreateRetry::Upsert, 0, /*addressed_by_key=*/true);
    ASSERT_EQ(p.kind, CallPlan::Kind::Send);
    EXPECT_EQ(p.action, RECSYNC_ACTION_DELETE);
    EXPECT_EQ(p.external_id, "k");
    LinkState gone;
    gone.deleted = true;
    EXPECT_EQ(plan_call(d, gone, CreateRetry::Upsert, 0, true).kind, CallPlan::Kind::Skip) << "deleted there already";
}

}  // namespace
