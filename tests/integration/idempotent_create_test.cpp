// Creates whose answer is lost: the CRM made the record, recsync never heard of it. The
// retry must not make a second one: contacts are re-sent as an upsert by email, deals are
// looked up by their lookup property first and updated if found. libcurl must not re-send
// a create by itself either (it does, on a reused connection that dies unanswered).
#include "store/state_backend.hpp"
#include "support/engine_harness.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>

using namespace recsync;
using nlohmann::json;
using testkit::http_request;
using testkit::wait_until;

namespace {

class IdempotentCreate : public testkit::OneCrmEngineTest {
protected:
    void SetUp() override {
        OneCrmEngineTest::SetUp();
        dir_.write("rules/schemas/deal.json", R"({"type":"object","required":["ref"],"properties":{"ref":{"type":"string","minLength":1},"name":{"type":"string"}}})");
        dir_.write("rules/crm.yaml",
                   "mappings:\n"
                   "  contact: { fields: [ { from: email, to: email }, { from: name, to: lastname } ] }\n"
                   "  deal: { fields: [ { from: ref, to: recsync_key, required: true }, { from: name, to: dealname } ] }\n"
                   "rules:\n"
                   "  - { name: c, on: { entity: contact, event: created }, do: { action: create, target: crm, object: contacts, mapping: contact } }\n"
                   "  - { name: d, on: { entity: deal, event: created }, do: { action: create, target: crm, object: deals, mapping: deal } }\n"
                   "  - { name: du, on: { entity: deal, event: updated }, do: { action: update, target: crm, object: deals, mapping: deal } }\n");
        start_engine("max_in_flight: 1, timeout_ms: 2000, retry: { max_attempts: 20, base_delay_ms: 5, max_delay_ms: 50 },"
                     " settings: { lookup_properties: { deals: recsync_key } }");
    }
    static std::string deal(const std::string &key, const char *event, const std::string &name) {
        return json{{"entity", "deal"}, {"event", event}, {"key", key}, {"data", {{"ref", "erp:" + key}, {"name", name}}}}.dump();
    }
    bool queue_empty() { return json::parse(http_request("GET", base_ + "/v1/status").body)["connections"]["crm"]["queued"] == 0; }
    // One request first, so that the connection the next one goes out on is a reused one:
    // that is where libcurl would re-send a request by itself.
    void warm_up() {
        post(deal("warm", "created", "warm"));
        ASSERT_TRUE(wait_until([&] { return crm_->record_count("0-3") == 1 && queue_empty(); })) << log_text();
    }
    std::string log_text() {
        std::string out = http_request("GET", base_ + "/v1/status").body + "\n";
        for (const auto &r : crm_->requests()) out += std::to_string(r.at_ms % 100000) + " " + r.method + " " + r.target + " -> " + std::to_string(r.status) + " " + r.body + "\n";
        return out;
    }
    size_t count_requests(const std::string &method, const std::string &path) {
        const auto log = crm_->requests();
        return static_cast<size_t>(std::count_if(log.begin(), log.end(), [&](const mock::LoggedRequest &r) { return r.method == method && r.target == path; }));
    }
};

TEST_F(IdempotentCreate, AContactWhoseCreateAnswerIsLostIsUpsertedNotCreatedTwice) {
    warm_up();
    crm_->lose_answer_next(1);
    post(R"({"entity":"contact","event":"created","key":"c1","data":{"email":"c1@example.com","name":"One"}})");
    ASSERT_TRUE(wait_until([&] { return crm_->counters().lost_answers == 1 && queue_empty(); }));
    const auto contacts = crm_->records("contacts");
    ASSERT_EQ(contacts.size(), 1u);
    EXPECT_EQ(contacts[0].properties.at("lastname"), "One");
    // The create went out once (libcurl did not re-send it), the retry was an upsert.
    EXPECT_EQ(count_requests("POST", "/crm/v3/objects/contacts"), 1u);
    EXPECT_EQ(count_requests("POST", "/crm/v3/objects/contacts/batch/upsert"), 1u);
    EXPECT_EQ(crm_->counters().duplicates, 0u);
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
}

TEST_F(IdempotentCreate, ADealWhoseCreateAnswerIsLostIsFoundAndUpdated) {
    warm_up();
    crm_->lose_answer_next(1);
    post(deal("d1", "created", "First"));
    // A change made meanwhile folds into the waiting create; it must reach the CRM too.
    ASSERT_TRUE(wait_until([&] { return crm_->counters().lost_answers == 1; }));
    post(deal("d1", "updated", "Second"));
    ASSERT_TRUE(wait_until([&] { return queue_empty() && crm_->record_count("0-3") == 2; }));
    const auto deals = crm_->records("0-3");
    ASSERT_EQ(deals.size(), 2u);  // the warm-up deal and d1, once
    EXPECT_EQ(deals[1].properties.at("recsync_key"), "erp:d1");
    EXPECT_TRUE(wait_until([&] { return crm_->records("0-3")[1].properties.at("dealname") == "Second"; }));
    EXPECT_EQ(count_requests("POST", "/crm/v3/objects/0-3"), 2u);  // warm-up + d1's one create
    EXPECT_GE(count_requests("POST", "/crm/v3/objects/0-3/search"), 1u);
    // Found by the search: its create went as an update (with the change folded in, or
    // followed by it).
    EXPECT_GE(count_requests("PATCH", "/crm/v3/objects/0-3/" + deals[1].id), 1u);
    EXPECT_EQ(testkit::external_id(*engine_, "crm", "deals", "d1"), deals[1].id);
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
}

TEST_F(IdempotentCreate, ADealWhoseCreateNeverArrivedIsSearchedForThenCreated) {
    warm_up();
    crm_->reset_next(1);  // the connection dies before the request reaches the CRM
    post(deal("d2", "created", "Only"));
    ASSERT_TRUE(wait_until([&] { return queue_empty() && crm_->record_count("0-3") == 2; }));
    EXPECT_EQ(crm_->counters().resets, 1u);
    EXPECT_EQ(count_requests("POST", "/crm/v3/objects/0-3/search"), 1u);  // found nothing
    EXPECT_EQ(crm_->records("0-3")[1].properties.at("dealname"), "Only");
    EXPECT_EQ(crm_->counters().created, 2u);
}

// A contact create carries no durable "sent" mark (an upsert by email is right whether it
// went out or not): whatever is still queued at a restart may have gone out, so it goes as
// an upsert, and the record is made once.
TEST_F(IdempotentCreate, AContactCreateStillQueuedAtARestartGoesAsAnUpsert) {
    warm_up();
    engine_->stop(std::chrono::seconds(2));
    // The same state, but a CRM that cannot be reached: the create stays queued.
    engine_ = testkit::start_engine(dir_, "  crm: { provider: hubspot, base_url: 'http://127.0.0.1:" + std::to_string(testkit::free_port()) +
                                              "', max_in_flight: 1, connect_timeout_ms: 200, retry: { max_attempts: 50, base_delay_ms: 50, max_delay_ms: 100 } }\n");
    base_ = testkit::base_url(*engine_);
    post(R"({"entity":"contact","event":"created","key":"c9","data":{"email":"c9@example.com","name":"Nine"}})");
    ASSERT_TRUE(wait_until([&] { return json::parse(http_request("GET", base_ + "/v1/status").body)["connections"]["crm"]["retried"] > 0; }));
    engine_->stop(std::chrono::seconds(2));
    start_engine("max_in_flight: 1, retry: { max_attempts: 20, base_delay_ms: 5, max_delay_ms: 50 }, settings: { lookup_properties: { deals: recsync_key } }");
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 1 && queue_empty(); })) << log_text();
    EXPECT_EQ(count_requests("POST", "/crm/v3/objects/contacts"), 0u);
    EXPECT_EQ(count_requests("POST", "/crm/v3/objects/contacts/batch/upsert"), 1u);
    EXPECT_EQ(crm_->records("contacts")[0].properties.at("lastname"), "Nine");
    EXPECT_EQ(crm_->counters().duplicates, 0u);
}

// The mark of a create that an upsert retries does not hold its call back: it is written
// with the next results. It matters if the object's retry becomes a FIND (a reload) before
// the task is done: a FIND-retried create must not go out unmarked.
TEST_F(IdempotentCreate, AnUpsertRetriedCreateIsMarkedWithTheNextResults) {
    warm_up();
    engine_->stop(std::chrono::seconds(2));
    start_engine("max_in_flight: 2, timeout_ms: 5000, retry: { max_attempts: 20, base_delay_ms: 5, max_delay_ms: 50 }");
    crm_->hang_next(1, std::chrono::milliseconds(1500));  // c1's call stays out, then its connection is reset
    post(R"({"entity":"contact","event":"created","key":"c1","data":{"email":"c1@example.com","name":"One"}})");
    ASSERT_TRUE(wait_until([&] { return crm_->counters().hangs == 1; }));
    post(R"({"entity":"contact","event":"created","key":"c2","data":{"email":"c2@example.com","name":"Two"}})");
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 1; })) << log_text();
    auto marked = [&] {
        for (const auto &t : engine_->state().tasks().read("crm", 0, 10))
            if (t.record_key == "c1") return t.send == model::SendState::Sent;
        return false;
    };
    EXPECT_TRUE(wait_until(marked, std::chrono::seconds(1))) << "c2's results carried c1's mark";
    // c1's call times out (2 s) and is retried as an upsert: one record each, none twice.
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 2 && queue_empty(); })) << log_text();
    EXPECT_EQ(crm_->counters().duplicates, 0u);
}

}  // namespace
