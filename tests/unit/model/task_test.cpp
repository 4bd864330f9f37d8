// Task and its small helpers: ids, change order, send state, payload hashes.
#include "model/link_state.hpp"
#include "model/task.hpp"

#include <gtest/gtest.h>

namespace {

using recsync::model::Order;
using recsync::model::SendState;
using recsync::model::Task;

TEST(Task, RecordIdSeparatesObjects) {
    Task a, b;
    a.object = "contacts";
    a.record_key = "k";
    b.object = "companies";
    b.record_key = "k";
    EXPECT_NE(a.record_id(), b.record_id());
    Task c, d;
    c.object = "a";
    c.record_key = "b";
    d.object = "a.b";
    d.record_key = "";
    EXPECT_NE(c.record_id(), d.record_id());
}

TEST(Task, ChangeSeqIsTheIdUnlessAReplayKeptAnother) {
    Task t;
    t.id = 42;
    EXPECT_EQ(t.change_seq(), 42);
    t.seq = 7;
    EXPECT_EQ(t.change_seq(), 7);
}

TEST(Task, OrdersCompareOnlyWithinOneKind) {
    EXPECT_TRUE((Order{Order::Version, 1}).older_than({Order::Version, 2}));
    EXPECT_FALSE((Order{Order::Version, 2}).older_than({Order::Version, 2}));
    EXPECT_FALSE((Order{Order::Version, 1}).older_than({Order::Time, 2}));
    EXPECT_FALSE((Order{}).older_than({Order::Version, 2}));
}

TEST(Task, WhatMayHaveGoneOut) {
    Task t;
    EXPECT_FALSE(t.may_have_gone_out());
    t.send = SendState::Absent;
    EXPECT_FALSE(t.in_doubt());
    t.send = SendState::SentUnmarked;
    EXPECT_TRUE(t.in_doubt());
    t.send = SendState::Sent;
    EXPECT_TRUE(t.may_have_gone_out());
    t.send = SendState::Unsent;
    t.attempts = 1;
    EXPECT_TRUE(t.may_have_gone_out());
}

TEST(Task, ActionAndChangeText) {
    EXPECT_STREQ(recsync::model::action_text(RECSYNC_ACTION_CREATE), "create");
    EXPECT_STREQ(recsync::model::action_text(RECSYNC_ACTION_FIND), "find");
    EXPECT_STREQ(recsync::model::action_text(static_cast<recsync_action>(99)), "?");
    EXPECT_STREQ(recsync::model::change_text(recsync::model::Change::Deleted), "deleted");
}

TEST(PayloadHash, DiffersForDifferentTextAndIsNeverZero) {
    EXPECT_EQ(recsync::model::payload_hash("{\"a\":1}"), recsync::model::payload_hash("{\"a\":1}"));
    EXPECT_NE(recsync::model::payload_hash("{\"a\":1}"), recsync::model::payload_hash("{\"a\":2}"));
    EXPECT_NE(recsync::model::payload_hash(""), 0u);
}

}  // namespace
