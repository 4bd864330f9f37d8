// The record is the unit, not the event: each rule of the event model and of the sync
// state, end to end through one engine (HTTP -> rules -> task log -> lane -> HubSpot plugin
// -> the mock CRM), each test named after what it proves.
#include "model/task.hpp"
#include "store/state_backend.hpp"
#include "support/engine_harness.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace recsync;
using nlohmann::json;
using testkit::http_request;
using testkit::wait_until;

namespace {

class RecordState : public testkit::OneCrmEngineTest {
protected:
    void SetUp() override {
        OneCrmEngineTest::SetUp();
        for (const char *entity : {"company", "deal"})
            dir_.write(std::string("rules/schemas/") + entity + ".json",
                       R"({"type":"object","required":["ref"],"properties":{"ref":{"type":"string","minLength":1},"name":{"type":"string"}}})");
        dir_.write("rules/schemas/lead.json", R"({"type":"object","required":["email"],"properties":{"email":{"type":"string"},"last_name":{"type":"string"}}})");
        std::string rules =
            "mappings:\n"
            "  contact: { fields: [ { from: email, to: email }, { from: last_name, to: lastname } ] }\n"
            "  company: { fields: [ { from: ref, to: acme_key, required: true }, { from: name, to: name } ] }\n"
            "  deal: { fields: [ { from: ref, to: recsync_key, required: true }, { from: name, to: dealname } ] }\n"
            "rules:\n"
            "  - { name: lead, on: { entity: lead, event: [created, updated] }, do: { action: upsert, target: crm, object: contacts, mapping: contact } }\n"
            "  - { name: lead-gone, on: { entity: lead, event: deleted }, do: { action: delete, target: crm, object: contacts } }\n";
        for (const auto &[entity, object] : {std::pair{"contact", "contacts"}, {"company", "companies"}, {"deal", "deals"}}) {
            const std::string e = entity, o = object;
            rules += "  - { name: new-" + e + ", on: { entity: " + e + ", event: created }, do: { action: create, target: crm, object: " + o + ", mapping: " + e + " } }\n";
            rules += "  - { name: upd-" + e + ", on: { entity: " + e + ", event: updated }, do: { action: update, target: crm, object: " + o + ", mapping: " + e + " } }\n";
            rules += "  - { name: del-" + e + ", on: { entity: " + e + ", event: deleted }, do: { action: delete, target: crm, object: " + o + " } }\n";
        }
        dir_.write("rules/crm.yaml", rules);
    }

    // Companies upsert by a unique property, deals are searched for first (idempotent
    // creates); `extra` adds to the connection.
    void start(const std::string &extra = "", const std::string &top_level = "", int max_in_flight = 4) {
        start_engine("max_in_flight: " + std::to_string(max_in_flight) + ", rate_limit: { per_second: 100000, burst: 1000 }, retry: { max_attempts: 20, base_delay_ms: 5, max_delay_ms: 50 }, "
                     "settings: { key_properties: { companies: acme_key }, lookup_properties: { deals: recsync_key } }" +
                         (extra.empty() ? "" : ", " + extra),
                     top_level);
    }

    static std::string event(const std::string &entity, const std::string &kind, const std::string &key, const std::string &name, const json &extra = json::object()) {
        json e = {{"entity", entity}, {"event", kind}, {"key", key}};
        if (kind != "deleted")
            e["data"] = entity == "contact" || entity == "lead" ? json{{"email", key + "@example.com"}, {"last_name", name}} : json{{"ref", "ref-" + key}, {"name", name}};
        e.update(extra);
        return e.dump();
    }
    json send(const std::string &body, long expect = 202) {
        const auto r = http_request("POST", base_ + "/v1/events", body, {"Content-Type: application/x-ndjson"});
        EXPECT_EQ(r.status, expect) << r.body;
        return json::parse(r.body, nullptr, false);
    }
    bool idle() { return engine_->state().tasks().count() == 0; }
    size_t count(const std::string &method, const std::string &path_suffix) {
        size_t n = 0;
        for (const auto &r : crm_->requests()) n += r.method == method && r.target.ends_with(path_suffix);
        return n;
    }
    size_t calls_for(const std::string &needle) {
        size_t n = 0;
        for (const auto &r : crm_->requests()) n += r.body.find(needle) != std::string::npos || r.target.find(needle) != std::string::npos;
        return n;
    }
    std::string field(const std::string &object, const std::string &name) {
        const auto recs = crm_->records(object);
        return recs.size() == 1 && recs[0].properties.count(name) ? recs[0].properties.at(name) : "<" + std::to_string(recs.size()) + " records>";
    }
    json status() { return json::parse(http_request("GET", base_ + "/v1/status").body)["connections"]["crm"]; }
    std::string metrics() { return http_request("GET", base_ + "/metrics").body; }
};

TEST_F(RecordState, ARepeatedEventIdIsAcknowledgedAndIgnored) {
    start();
    const auto e = event("contact", "created", "k1", "One", {{"id", "evt-1"}});
    auto a = send(e);
    EXPECT_EQ(a, (json{{"accepted", 1}, {"duplicates", 0}, {"stale", 0}, {"tasks", 1}}));
    a = send(e);
    EXPECT_EQ(a, (json{{"accepted", 1}, {"duplicates", 1}, {"stale", 0}, {"tasks", 0}})) << "acknowledged, nothing stored";
    // In one request too, and by id alone: a repeat with other data is still a repeat.
    a = send(event("contact", "updated", "k1", "Two", {{"id", "evt-2"}}) + "\n" + event("contact", "updated", "k1", "Three", {{"id", "evt-2"}}));
    EXPECT_EQ(a["duplicates"], 1);
    EXPECT_EQ(a["tasks"], 1);
    ASSERT_TRUE(wait_until([&] { return idle() && field("contacts", "lastname") == "Two"; })) << field("contacts", "lastname");
    EXPECT_EQ(crm_->counters().created, 1u);
    EXPECT_NE(metrics().find("recsync_events_duplicate_total 2"), std::string::npos) << metrics();
}

// A repeat is acknowledged as the repeat it is, without being planned again: since it was
// accepted, a reload may have made its data fail the entity's schema, and a sender that
// re-sends what it is unsure of must not have its whole request refused for that.
TEST_F(RecordState, ARepeatIsAcknowledgedEvenIfItWouldNoLongerPlan) {
    start();
    const auto e = event("contact", "created", "k1", "One", {{"id", "evt-1"}, {"version", 1}});
    send(e);
    ASSERT_TRUE(wait_until([&] { return idle() && crm_->record_count("contacts") == 1; }));
    dir_.write("rules/schemas/contact.json", R"({"type":"object","required":["email","phone"],"properties":{"email":{"type":"string"},"phone":{"type":"string"}}})");
    ASSERT_TRUE(engine_->reload().ok);
    auto a = send(e);
    EXPECT_EQ(a["duplicates"], 1) << a.dump();
    // A stale one too (by its version), and a new event is planned as ever: refused.
    a = send(event("contact", "updated", "k1", "Zero", {{"id", "evt-0"}, {"version", 0}}));
    EXPECT_EQ(a["stale"], 1) << a.dump();
    const auto refused = http_request("POST", base_ + "/v1/events", event("contact", "updated", "k1", "Two", {{"id", "evt-2"}, {"version", 2}}));
    EXPECT_EQ(refused.status, 422) << refused.body;
    EXPECT_NE(refused.body.find("phone"), std::string::npos) << refused.body;
}

// A sender that repeats a `created` without an id (or after the id was forgotten): the
// record is linked by then, so the repeat is an update of it, or nothing when unchanged;
// never a second record. Companies without a unique key show it best: a plain create
// again would have made a duplicate.
TEST_F(RecordState, ARepeatedCreatedBecomesAnUpdateOfTheLinkedRecordNeverASecondOne) {
    start_engine("max_in_flight: 4, retry: { max_attempts: 5, base_delay_ms: 5, max_delay_ms: 50 }");  // companies: no unique key
    send(event("company", "created", "c1", "Acme"));
    ASSERT_TRUE(wait_until([&] { return idle() && crm_->record_count("companies") == 1; }));
    send(event("company", "created", "c1", "Acme"));
    ASSERT_TRUE(wait_until([&] { return idle() && status()["unchanged"] == 1; })) << status().dump();
    send(event("company", "created", "c1", "Acme Corp"));
    ASSERT_TRUE(wait_until([&] { return idle() && field("companies", "name") == "Acme Corp"; })) << field("companies", "name");
    EXPECT_EQ(crm_->record_count("companies"), 1u);
    EXPECT_EQ(crm_->counters().created, 1u);
    EXPECT_EQ(count("POST", "/crm/v3/objects/companies"), 1u);
    EXPECT_EQ(count("PATCH", "/crm/v3/objects/companies/" + crm_->records("companies")[0].id), 1u);
}

TEST_F(RecordState, EventsOutOfVersionOrderKeepTheNewestState) {
    start();
    send(event("contact", "created", "k1", "v1", {{"version", 1}}));
    send(event("contact", "updated", "k1", "v3", {{"version", 3}}));
    auto a = send(event("contact", "updated", "k1", "v2", {{"version", 2}}));
    EXPECT_EQ(a["stale"], 1) << "older than the record's last accepted change";
    EXPECT_EQ(a["tasks"], 0);
    a = send(event("contact", "updated", "k1", "v3-again", {{"version", 3}}));
    EXPECT_EQ(a["stale"], 0) << "the same version is not older: arrival order decides";
    ASSERT_TRUE(wait_until([&] { return idle() && field("contacts", "lastname") == "v3-again"; })) << field("contacts", "lastname");
    // occurred_at orders as well, per record.
    send(event("contact", "created", "k2", "t1", {{"occurred_at", "2026-12-01T10:00:00Z"}}));
    a = send(event("contact", "updated", "k2", "t0", {{"occurred_at", "2026-12-01T10:30:00+01:00"}}));  // 09:30 UTC
    EXPECT_EQ(a["stale"], 1);
    EXPECT_NE(metrics().find("recsync_events_stale_total 2"), std::string::npos) << metrics();
    ASSERT_TRUE(wait_until([&] { return idle() && crm_->record_count("contacts") == 2; }));
    for (const auto &r : crm_->records("contacts"))
        if (r.properties.at("email") == "k2@example.com") EXPECT_EQ(r.properties.at("lastname"), "t1");
}

// The create's answer is lost (the CRM made the record); the delete that follows must not
// be folded away with it: the record ends deleted, for every kind of idempotent create.
TEST_F(RecordState, ADeleteAfterACreateThatMayHaveBeenSentIsSent) {
    start("timeout_ms: 2000");
    for (const auto &[entity, object] : {std::pair{"company", "companies"}, {"deal", "0-3"}, {"lead", "contacts"}}) {
        crm_->lose_answer_next(1);
        send(event(entity, "created", std::string(entity) + "-1", "x"));
        ASSERT_TRUE(wait_until([&] { return crm_->counters().lost_answers >= 1; }));
        send(event(entity, "deleted", std::string(entity) + "-1", ""));
        ASSERT_TRUE(wait_until([&] { return idle(); })) << entity;
        EXPECT_EQ(crm_->record_count(object), 0u) << entity << ": the record its first create made must be deleted";
        crm_->reset();
    }
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
}

// The same after a crash between the create's call and its result (the task comes back
// with no attempt counted): for objects with an idempotent create it is in doubt, found or
// upserted, then deleted; for one without (HubSpot companies with no unique key), the
// delete still goes out and is not cancelled by the create it follows.
TEST_F(RecordState, ADeleteAfterACrashDuringItsCreateIsNotFoldedAway) {
    for (const bool idempotent : {true, false}) {
        crm_->reset();
        crm_->set_latency(std::chrono::milliseconds(600));  // the create is in flight when the engine stops
        if (idempotent) start();
        else start_engine("max_in_flight: 4, retry: { max_attempts: 20, base_delay_ms: 5, max_delay_ms: 50 }");
        base_ = testkit::base_url(*engine_);
        const std::string key = idempotent ? "crash-a" : "crash-b";
        send(event("company", "created", key, "x"));
        ASSERT_TRUE(wait_until([&] { return status()["in_flight"] == 1; }, std::chrono::seconds(5)));
        engine_->stop(std::chrono::milliseconds(0));  // its result is never recorded
        engine_.reset();
        ASSERT_TRUE(wait_until([&] { return crm_->record_count("companies") == 1; })) << "the CRM made it";
        crm_->set_latency(std::chrono::milliseconds(0));
        if (idempotent) start();
        else start_engine("max_in_flight: 4, retry: { max_attempts: 20, base_delay_ms: 5, max_delay_ms: 50 }");
        send(event("company", "deleted", key, ""));
        ASSERT_TRUE(wait_until([&] { return idle(); }));
        EXPECT_EQ(count("DELETE", ""), 1u) << (idempotent ? "idempotent" : "no retry policy");
        if (idempotent) {
            EXPECT_EQ(crm_->record_count("companies"), 0u) << "the record the first create made is found (upsert by its key) and deleted";
            EXPECT_EQ(crm_->counters().created, 1u);
        }
        engine_->stop(std::chrono::seconds(2));
        engine_.reset();
        std::filesystem::remove_all(dir_.file("state"));
    }
}

TEST_F(RecordState, ALateUpdateAfterADeleteDoesNotBringTheRecordBack) {
    start();
    for (const char *entity : {"contact", "lead"}) {  // an update rule and an upsert rule
        const std::string key = std::string(entity) + "-1";
        send(event(entity, "created", key, "v1"));
        ASSERT_TRUE(wait_until([&] { return idle() && crm_->record_count("contacts") == 1; })) << entity;
        send(event(entity, "deleted", key, ""));
        ASSERT_TRUE(wait_until([&] { return idle() && crm_->record_count("contacts") == 0; })) << entity;
        send(event(entity, "updated", key, "late"));  // no order: arrival says newer, but a deleted record is not updated
        ASSERT_TRUE(wait_until([&] { return idle(); }));
        EXPECT_EQ(crm_->record_count("contacts"), 0u) << entity << ": not brought back";
    }
    EXPECT_NE(metrics().find("recsync_tasks_skipped_total{reason=\"after_delete\"} 2"), std::string::npos) << metrics();
    // Its creation does bring it back.
    send(event("contact", "created", "contact-1", "again"));
    ASSERT_TRUE(wait_until([&] { return idle() && crm_->record_count("contacts") == 1; }));
    EXPECT_EQ(field("contacts", "lastname"), "again");
    // And with versions, an older update after the delete is stale already at ingest.
    send(event("contact", "created", "v-1", "v1", {{"version", 1}}));
    send(event("contact", "deleted", "v-1", "", {{"version", 5}}));
    EXPECT_EQ(send(event("contact", "updated", "v-1", "v4", {{"version", 4}}))["stale"], 1);
}

TEST_F(RecordState, AnUnchangedPayloadSendsNothing) {
    start();
    send(event("contact", "created", "k1", "Same"));
    ASSERT_TRUE(wait_until([&] { return idle() && crm_->record_count("contacts") == 1; }));
    const auto calls = crm_->counters().requests;
    for (int i = 0; i < 3; ++i) {
        send(event("contact", "updated", "k1", "Same"));
        ASSERT_TRUE(wait_until([&] { return idle(); }));
    }
    EXPECT_EQ(crm_->counters().requests, calls) << "no call for an update that changes nothing there";
    EXPECT_EQ(status()["unchanged"], 3) << status().dump();
    EXPECT_NE(metrics().find("recsync_tasks_skipped_total{reason=\"unchanged\"} 3"), std::string::npos) << metrics();
    send(event("contact", "updated", "k1", "Other"));
    ASSERT_TRUE(wait_until([&] { return idle() && field("contacts", "lastname") == "Other"; }));
    EXPECT_EQ(crm_->counters().requests, calls + 1);
}

// A dead letter whose record has since applied a newer change is dropped, not replayed:
// it would put the older state back.
TEST_F(RecordState, AStaleDeadLetterReplayIsDroppedWithItsReason) {
    start();
    send(event("contact", "created", "k1", "v1"));
    ASSERT_TRUE(wait_until([&] { return idle() && crm_->record_count("contacts") == 1; }));
    crm_->fail_next(1, 400);
    send(event("contact", "updated", "k1", "v2"));
    ASSERT_TRUE(wait_until([&] { return engine_->state().dead_letters().count() == 1 && idle(); }));
    const int64_t letter = engine_->state().dead_letters().list(1).at(0).id;
    send(event("contact", "updated", "k1", "v3"));
    ASSERT_TRUE(wait_until([&] { return idle() && field("contacts", "lastname") == "v3"; }));
    const auto r = engine_->replay_dead_letters({{letter}, {}});
    EXPECT_EQ(r.replayed, 0u);
    EXPECT_EQ(r.stale, std::vector<int64_t>{letter});
    EXPECT_EQ(engine_->state().dead_letters().count(), 0) << "dropped";
    ASSERT_TRUE(wait_until([&] { return idle(); }));
    EXPECT_EQ(field("contacts", "lastname"), "v3") << "the newer state stays";
    // A letter with nothing newer applied is replayed.
    crm_->fail_next(1, 400);
    send(event("contact", "updated", "k1", "v4"));
    ASSERT_TRUE(wait_until([&] { return engine_->state().dead_letters().count() == 1 && idle(); }));
    const auto again = engine_->replay_dead_letters({{}, {}});
    EXPECT_EQ(again.replayed, 1u);
    EXPECT_TRUE(again.stale.empty());
    ASSERT_TRUE(wait_until([&] { return idle() && field("contacts", "lastname") == "v4"; }));
}

// The review's fold bug: an upsert whose answer was lost, then a delete. The delete took
// the upsert's place, found no id and sent nothing: the record stayed in the CRM.
TEST_F(RecordState, AnUpsertThenADeleteDeletesTheRecordItMayHaveMade) {
    start("timeout_ms: 2000");
    crm_->lose_answer_next(1);
    send(event("lead", "created", "l1", "x"));
    ASSERT_TRUE(wait_until([&] { return crm_->counters().lost_answers == 1; }));
    send(event("lead", "deleted", "l1", ""));
    ASSERT_TRUE(wait_until([&] { return idle(); }));
    EXPECT_EQ(crm_->record_count("contacts"), 0u);
    EXPECT_EQ(count("DELETE", ""), 1u);
}

// The record recsync linked was deleted at the CRM by someone else. A `created` for it is
// an update of the linked id, which finds it gone (404): the intent is a record there, so
// it is made again, and linked to its new id. An update of it is dead-lettered instead.
TEST_F(RecordState, ACreateOfALinkedRecordDeletedAtTheCrmMakesItAgain) {
    start();
    send(event("contact", "created", "k1", "v1"));
    ASSERT_TRUE(wait_until([&] { return idle() && crm_->record_count("contacts") == 1; }));
    const std::string first = crm_->records("contacts")[0].id;
    ASSERT_EQ(http_request("DELETE", crm_->base_url() + "/crm/v3/objects/contacts/" + first).status, 204);
    send(event("contact", "created", "k1", "v2"));
    ASSERT_TRUE(wait_until([&] { return idle() && crm_->record_count("contacts") == 1; }));
    EXPECT_NE(crm_->records("contacts")[0].id, first);
    EXPECT_EQ(field("contacts", "lastname"), "v2");
    EXPECT_EQ(testkit::external_id(*engine_, "crm", "contacts", "k1"), crm_->records("contacts")[0].id);
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
    ASSERT_EQ(http_request("DELETE", crm_->base_url() + "/crm/v3/objects/contacts/" + crm_->records("contacts")[0].id).status, 204);
    send(event("contact", "updated", "k1", "v3"));
    ASSERT_TRUE(wait_until([&] { return idle() && engine_->state().dead_letters().count() == 1; }));
    EXPECT_EQ(crm_->record_count("contacts"), 0u);
}

TEST_F(RecordState, ABacklogPastItsLimitIsRefusedWith429AndNothingIsStored) {
    // The CRM is unreachable: nothing leaves the backlog.
    engine_ = testkit::start_engine(dir_, "  crm: { provider: hubspot, base_url: 'http://127.0.0.1:" + std::to_string(testkit::free_port()) +
                                              "', connect_timeout_ms: 100, retry: { max_attempts: 1000, base_delay_ms: 1000, max_delay_ms: 1000 } }\n",
                                    "delivery: { max_backlog: { per_connection: 3, total: 100 } }\n");
    base_ = testkit::base_url(*engine_);
    send(event("contact", "created", "a", "x") + "\n" + event("contact", "created", "b", "x"));
    send(event("contact", "created", "c", "x"));
    const auto r = http_request("POST", base_ + "/v1/events", event("contact", "created", "d", "x"), {"Content-Type: application/json"});
    EXPECT_EQ(r.status, 429) << r.body;
    EXPECT_NE(r.body.find("the backlog of connection 'crm' is full: 3 tasks wait (delivery.max_backlog.per_connection 3)"), std::string::npos) << r.body;
    EXPECT_EQ(engine_->state().tasks().count(), 3) << "nothing of the refused request is stored";
    EXPECT_EQ(status()["queued"], 3);
    EXPECT_NE(metrics().find("recsync_requests_throttled_total 1"), std::string::npos);
    EXPECT_NE(r.body.find("retry later"), std::string::npos);
    EXPECT_NE(r.headers.find("Retry-After: 5"), std::string::npos) << r.headers;
}

TEST_F(RecordState, TheTotalBacklogLimitRefusesToo) {
    engine_ = testkit::start_engine(dir_, "  crm: { provider: hubspot, base_url: 'http://127.0.0.1:" + std::to_string(testkit::free_port()) +
                                              "', connect_timeout_ms: 100, retry: { max_attempts: 1000, base_delay_ms: 1000, max_delay_ms: 1000 } }\n",
                                    "delivery: { max_backlog: { per_connection: 100, total: 2 } }\n");
    base_ = testkit::base_url(*engine_);
    send(event("contact", "created", "a", "x") + "\n" + event("contact", "created", "b", "x"));
    const auto r = http_request("POST", base_ + "/v1/events", event("contact", "created", "c", "x"));
    EXPECT_EQ(r.status, 429);
    EXPECT_NE(r.body.find("delivery.max_backlog.total 2"), std::string::npos) << r.body;
}

// Bounded memory: a lane holds a window of its backlog, reads the rest from the task log
// as it goes, and delivers all of it, each record once, across a restart too.
TEST_F(RecordState, ALaneHoldsAWindowOfItsBacklogAndDeliversAllOfIt) {
    crm_->set_latency(std::chrono::milliseconds(20));
    start("", "delivery: { tasks_in_memory: 1000 }\n", 1);  // one lane: a window of 1,000
    constexpr int kEvents = 4000;
    for (int b = 0; b < kEvents; b += 500) {
        std::string body;
        for (int i = b; i < b + 500; ++i) body += event("contact", "created", "w" + std::to_string(i), "x") + "\n";
        send(body);
    }
    const auto s = status();
    EXPECT_GT(s["queued"].get<int64_t>(), 2000) << "more waits than the window holds: " << s.dump();
    EXPECT_LE(s["in_memory"].get<int64_t>(), 1000) << s.dump();
    EXPECT_GT(s["in_memory"].get<int64_t>(), 0) << s.dump();
    // A restart reads the backlog a window at a time too.
    engine_->stop(std::chrono::seconds(2));
    crm_->set_latency(std::chrono::milliseconds(0));
    start("", "delivery: { tasks_in_memory: 1000 }\n");
    EXPECT_LE(status()["in_memory"].get<int64_t>(), 1000);
    ASSERT_TRUE(wait_until([&] { return idle(); }, std::chrono::seconds(60))) << status().dump();
    EXPECT_EQ(crm_->record_count("contacts"), static_cast<size_t>(kEvents));
    EXPECT_EQ(crm_->counters().duplicates, 0u);
    EXPECT_EQ(status()["queued"], 0);
}

}  // namespace
