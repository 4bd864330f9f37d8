// System B -> A through signed webhooks: HubSpot's v3 signature checked by the plugin, the
// record read back from the (mock) CRM on its lane, inbound rules and mappings, and the
// built-in http connector delivering to a System A service that checks its signature.
#include "connectors/http/http_target.hpp"
#include "server/http_listener.hpp"
#include "support/engine_harness.hpp"
#include "support/system_a_service.hpp"
#include "util/clock.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>

namespace recsync {
namespace {

using json = nlohmann::json;
using testkit::http_request;
using testkit::wait_until;

constexpr const char *kClientSecret = "hs-client-secret-for-tests";
constexpr const char *kSigningSecret = "system-a-signing-secret";
constexpr const char *kHookUrl = "https://sync.example.com/hooks/crm";

int64_t now_ms() { return util::epoch_ms(); }

class WebhookTest : public ::testing::Test {
protected:
    void SetUp() override {
        setenv("RECSYNC_TEST_HS_SECRET", kClientSecret, 1);
        setenv("RECSYNC_TEST_A_SECRET", kSigningSecret, 1);
        crm_.start();
        testkit::stage_hubspot(dir_);
        dir_.write("rules/inbound.yaml",
                   "mappings:\n"
                   "  hs-to-erp: { fields: [ { from: email, to: email }, { from: firstname, to: first_name }, { from: id, to: hubspot_id } ] }\n"
                   "rules:\n"
                   "  - { name: from-crm, on: { source: crm, entity: contacts, event: [created, updated] }, do: { action: upsert, target: erp, object: contacts, mapping: hs-to-erp } }\n"
                   "  - { name: gone-from-crm, on: { source: crm, entity: contacts, event: deleted }, do: { action: delete, target: erp, object: contacts } }\n");
        // System A -> CRM as well: two-way.
        dir_.write("rules/outbound.yaml",
                   "mappings:\n"
                   "  contact-to-hs: { fields: [ { from: email, to: email }, { from: first_name, to: firstname } ] }\n"
                   "rules:\n"
                   "  - { name: to-crm, on: { entity: contact, event: [created, updated] }, do: { action: upsert, target: crm, object: contacts, mapping: contact-to-hs } }\n"
                   "  - { name: gone-from-a, on: { entity: contact, event: deleted }, do: { action: delete, target: crm, object: contacts } }\n");
        engine_ = testkit::start_engine(
            dir_,
            "  crm: { provider: hubspot, base_url: '" + crm_.base_url() + "', settings: { webhook_url: '" + kHookUrl +
                "' }, credentials: { client_secret_env: RECSYNC_TEST_HS_SECRET }, retry: { base_delay_ms: 5, max_delay_ms: 50 } }\n"
                "  erp: { provider: http, base_url: '" + system_a_.base_url() + "', settings: { objects: [contacts] }, credentials: { signing_secret_env: RECSYNC_TEST_A_SECRET },"
                " retry: { base_delay_ms: 5, max_delay_ms: 50 } }\n");
        base_ = testkit::base_url(*engine_);
    }
    void TearDown() override {
        engine_->stop(std::chrono::seconds(2));
        crm_.stop();
    }

    // Delivers `body` as HubSpot would, signed at `ts` (now by default) with `secret`.
    testkit::HttpReply deliver(const std::string &body, int64_t ts = 0, const std::string &sign_body = {}) {
        const std::string t = std::to_string(ts ? ts : now_ms());
        const std::string sig = mock::hubspot_v3_signature(kClientSecret, "POST", kHookUrl, sign_body.empty() ? body : sign_body, t);
        return http_request("POST", base_ + "/v1/webhooks/crm", body,
                            {"Content-Type: application/json", "X-HubSpot-Signature-v3: " + sig, "X-HubSpot-Request-Timestamp: " + t});
    }
    std::string make_contact(const std::string &email, const std::string &first) {
        const auto r = http_request("POST", crm_.base_url() + "/crm/v3/objects/contacts", json{{"properties", {{"email", email}, {"firstname", first}}}, {"associations", json::array()}}.dump());
        EXPECT_EQ(r.status, 201) << r.body;
        return json::parse(r.body)["id"].get<std::string>();
    }
    static std::string change(const std::string &id, const char *type, int64_t at, const char *property = "email") {
        json e = {{"eventId", at}, {"subscriptionId", 1}, {"portalId", 2}, {"occurredAt", at}, {"subscriptionType", type}, {"attemptNumber", 0}, {"objectId", std::stoll(id)}};
        if (std::string(type).ends_with("propertyChange")) e["propertyName"] = property, e["propertyValue"] = "x";
        return json::array({e}).dump();
    }
    uint64_t accepted() { return engine_->metrics().events_accepted.load(); }

    testkit::TempDir dir_;
    mock::MockCrm crm_;
    testkit::SystemA system_a_{kSigningSecret};
    std::unique_ptr<engine::Engine> engine_;
    std::string base_;
};

TEST_F(WebhookTest, AChangeInTheCrmReachesSystemAWithTheRecordReadBack) {
    const std::string id = make_contact("ada@example.com", "Ada");
    const auto r = deliver(change(id, "contact.propertyChange", 1'700'000'000'000));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json::parse(r.body)["accepted"], 1);
    ASSERT_TRUE(wait_until([&] { return system_a_.record("/contacts/" + id).has_value(); })) << "System A never got the contact";
    // The webhook named one property; System A got the whole record, as the read found it.
    EXPECT_EQ(*system_a_.record("/contacts/" + id), (json{{"email", "ada@example.com"}, {"first_name", "Ada"}, {"hubspot_id", id}}));
    EXPECT_EQ(system_a_.bad_signatures(), 0);
    bool read = false;
    for (const auto &q : crm_.requests()) read = read || (q.method == "GET" && q.target == "/crm/v3/objects/contacts/" + id);
    EXPECT_TRUE(read) << "the record was not read from the CRM";

    // The same change delivered again (HubSpot retries) is acknowledged, not applied twice.
    const auto again = deliver(change(id, "contact.propertyChange", 1'700'000'000'000));
    ASSERT_EQ(again.status, 200) << again.body;
    EXPECT_EQ(json::parse(again.body)["duplicates"], 1);

    // Deleted in the CRM: deleted in System A.
    const auto gone = deliver(change(id, "contact.deletion", 1'700'000'000'500));
    ASSERT_EQ(gone.status, 200) << gone.body;
    ASSERT_TRUE(wait_until([&] { return !system_a_.record("/contacts/" + id).has_value(); })) << "System A still has the deleted contact";
    // A late change from before the delete is dropped: the record does not come back.
    const auto late = deliver(change(id, "contact.propertyChange", 1'700'000'000'100, "firstname"));
    ASSERT_EQ(late.status, 200) << late.body;
    EXPECT_EQ(json::parse(late.body)["stale"], 1);
}

// HubSpot delivers up to 100 changes per webhook call: their hydrating reads go to the CRM
// as batch/read calls on the lane (a token each), not one GET per record.
TEST_F(WebhookTest, ManyChangedRecordsAreReadBackInBatches) {
    constexpr int kRecords = 40;
    json events = json::array();
    std::vector<std::string> ids;
    for (int i = 0; i < kRecords; ++i) {
        ids.push_back(make_contact("r" + std::to_string(i) + "@example.com", "R" + std::to_string(i)));
        events.push_back(json::parse(change(ids.back(), "contact.propertyChange", 1'700'000'000'000 + i))[0]);
    }
    const auto before = crm_.requests().size();
    const auto r = deliver(events.dump());
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json::parse(r.body)["accepted"], kRecords);
    ASSERT_TRUE(wait_until([&] {
        for (const auto &id : ids)
            if (!system_a_.record("/contacts/" + id)) return false;
        return true;
    })) << "not every changed record reached System A";
    EXPECT_EQ(*system_a_.record("/contacts/" + ids[7]), (json{{"email", "r7@example.com"}, {"first_name", "R7"}, {"hubspot_id", ids[7]}}));
    size_t batch_reads = 0, single_reads = 0;
    const auto requests = crm_.requests();
    for (size_t i = before; i < requests.size(); ++i) {
        const auto &q = requests[i];
        if (q.method == "POST" && q.target == "/crm/v3/objects/contacts/batch/read") ++batch_reads;
        if (q.method == "GET" && q.target.starts_with("/crm/v3/objects/contacts/")) ++single_reads;
    }
    EXPECT_GE(batch_reads, 1u) << "no batch/read call";
    EXPECT_LE(batch_reads + single_reads, static_cast<size_t>(kRecords / 4)) << batch_reads << " batch reads and " << single_reads << " single reads for " << kRecords << " records";
    EXPECT_EQ(engine_->dead_letters().count(), 0);
}

TEST_F(WebhookTest, BadSignaturesAre401AndStoreNothing) {
    const std::string id = make_contact("eve@example.com", "Eve");
    const std::string body = change(id, "contact.propertyChange", 1'700'000'000'000);
    const auto before = accepted();
    std::string altered = body;
    altered.replace(altered.find("\"x\""), 3, "\"y\"");
    const std::vector<std::pair<const char *, testkit::HttpReply>> refused = {
        {"altered body", deliver(altered, 0, body)},
        {"stale", deliver(body, now_ms() - 6 * 60'000)},
        {"future", deliver(body, now_ms() + 6 * 60'000)},
        {"unsigned", http_request("POST", base_ + "/v1/webhooks/crm", body)},
    };
    for (const auto &[what, r] : refused) {
        SCOPED_TRACE(what);
        EXPECT_EQ(r.status, 401) << r.body;
        EXPECT_EQ(std::string(r.body).find(kClientSecret), std::string::npos);
    }
    EXPECT_EQ(accepted(), before);
    EXPECT_EQ(engine_->state().tasks().count(), 0);
    EXPECT_EQ(engine_->metrics().webhooks_unauthenticated.load(), refused.size());
    // A signed body that is not HubSpot's: 400; an unknown connection or one without webhooks: 404.
    EXPECT_EQ(deliver("{\"not\":\"events\"}").status, 400);
    EXPECT_EQ(http_request("POST", base_ + "/v1/webhooks/nope", body).status, 404);
    EXPECT_EQ(http_request("POST", base_ + "/v1/webhooks/erp", body).status, 404);
    EXPECT_EQ(http_request("GET", base_ + "/v1/webhooks/crm").status, 405);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_EQ(system_a_.calls(), 0);
}

// Announced, then gone before its read: nothing reaches System A, nothing is dead-lettered
// (its deletion is announced as well), and a late change of it reads nothing.
TEST_F(WebhookTest, AReadOfARecordGoneMeanwhileFinishesWithoutADeadLetter) {
    const auto r = deliver(change("999999", "contact.creation", 1'700'000'000'000));
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_TRUE(wait_until([&] { return engine_->state().tasks().count() == 0; }));
    EXPECT_TRUE(engine_->dead_letters().list(10, 0).empty());
    EXPECT_EQ(engine_->metrics().tasks_not_synced.load(), 1u);
    const auto reads = crm_.requests().size();
    ASSERT_EQ(deliver(change("999999", "contact.propertyChange", 1'700'000'000'100)).status, 200);
    ASSERT_TRUE(wait_until([&] { return engine_->state().tasks().count() == 0; }));
    EXPECT_EQ(crm_.requests().size(), reads) << "a late change of a record gone there was read";
    EXPECT_EQ(system_a_.calls(), 0);
}

// Both ways at once, against a CRM that sends a webhook for every change made through its
// API, recsync's own included.
TEST_F(WebhookTest, OwnWritesComingBackAreEchoesAndCrmEditsReachTheLinkedRecord) {
    crm_.set_webhooks(mock::WebhookTarget{base_ + "/v1/webhooks/crm", kHookUrl, kClientSecret});
    testkit::post_events(base_, R"({"entity":"contact","event":"created","key":"a-1","data":{"email":"ada@example.com","first_name":"Ada"}})");
    ASSERT_TRUE(wait_until([&] { return crm_.record_count("contacts") == 1; }));
    const std::string id = crm_.records("contacts").front().id;
    // HubSpot announces the contact recsync made: read back, it is recsync's own write.
    ASSERT_TRUE(wait_until([&] { return engine_->metrics().echoes_suppressed.load() >= 1; })) << "the creation's echo was not recognised";
    ASSERT_TRUE(wait_until([&] { return engine_->state().tasks().count() == 0; }));
    EXPECT_EQ(system_a_.calls(), 0) << "System A got its own change back";

    // Edited in the CRM: System A's record a-1 changes (by its own key, not the CRM's id).
    const auto r = http_request("PATCH", crm_.base_url() + "/crm/v3/objects/contacts/" + id, R"({"properties":{"firstname":"Augusta"}})");
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_TRUE(wait_until([&] { return system_a_.record("/contacts/a-1").has_value(); })) << "the CRM's edit did not reach System A";
    EXPECT_EQ(system_a_.record("/contacts/a-1")->value("first_name", ""), "Augusta");
    EXPECT_FALSE(system_a_.record("/contacts/" + id).has_value());
    EXPECT_EQ(system_a_.bad_signatures(), 0);

    // System A reports the change it was sent as its own event (what a service that emits
    // an event per write does): recsync's write coming back, not sent to the CRM again.
    const auto crm_calls = crm_.counters().requests;
    const auto echoes = engine_->metrics().echoes_suppressed.load();
    const json got = *system_a_.record("/contacts/a-1");
    testkit::post_events(base_, json{{"entity", "contact"}, {"event", "updated"}, {"key", "a-1"}, {"data", got}}.dump());
    ASSERT_TRUE(wait_until([&] { return engine_->metrics().echoes_suppressed.load() == echoes + 1; })) << "System A's echo was not recognised";
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(crm_.counters().requests, crm_calls) << "the echo went back to the CRM";

    // System A sets the name back to what recsync first wrote to the CRM: the CRM has
    // changed since, so that is a change there, not "unchanged".
    testkit::post_events(base_, R"({"entity":"contact","event":"updated","key":"a-1","data":{"email":"ada@example.com","first_name":"Ada"}})");
    ASSERT_TRUE(wait_until([&] {
        const auto r = crm_.record("contacts", id);
        return r && r->properties.count("firstname") && r->properties.at("firstname") == "Ada";
    })) << "the CRM kept the name System A changed back";

    // A reload keeps the built-in connector (it has no file to check).
    const auto reloaded = engine_->reload();
    EXPECT_TRUE(reloaded.ok) << reloaded.message;

    // Deleted in the CRM: deleted in System A.
    ASSERT_EQ(http_request("DELETE", crm_.base_url() + "/crm/v3/objects/contacts/" + id).status, 204);
    ASSERT_TRUE(wait_until([&] { return !system_a_.record("/contacts/a-1").has_value(); }));
    EXPECT_GE(crm_.webhook_stats().deliveries, 3u);
    // A stale update from System A (sent before it saw the delete) does not bring the
    // record back in the CRM (the revived record): only a `created` would.
    ASSERT_TRUE(wait_until([&] { return engine_->state().tasks().count() == 0; }));
    testkit::post_events(base_, R"({"entity":"contact","event":"updated","key":"a-1","data":{"email":"ada@example.com","first_name":"Late"}})");
    ASSERT_TRUE(wait_until([&] { return engine_->state().tasks().count() == 0; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_EQ(crm_.record_count("contacts"), 0u) << "the CRM's deleted record came back";
}

// The CRM announces the record recsync created before recsync knows its id (here the
// create's answer is lost: it is in doubt until its retry, an upsert by email, answers).
// The announcement's read waits for that create, so the record is System A's a-2, and
// its own write comes back as an echo, not as a new record for System A.
TEST_F(WebhookTest, ARecordAnnouncedBeforeOurCreateOfItIsRecordedIsStillOurs) {
    crm_.set_webhooks(mock::WebhookTarget{base_ + "/v1/webhooks/crm", kHookUrl, kClientSecret});
    crm_.lose_answer_next(1);
    testkit::post_events(base_, R"({"entity":"contact","event":"created","key":"a-2","data":{"email":"grace@example.com","first_name":"Grace"}})");
    ASSERT_TRUE(wait_until([&] { return crm_.webhook_stats().events_sent >= 1 && engine_->state().tasks().count() == 0; }));
    EXPECT_EQ(crm_.record_count("contacts"), 1u);
    EXPECT_GE(engine_->metrics().echoes_suppressed.load(), 1u);
    EXPECT_EQ(system_a_.calls(), 0) << "System A got the CRM's copy of its own record";
    EXPECT_EQ(testkit::external_id(*engine_, "crm", "contacts", "a-2"), crm_.records("contacts").front().id);
}

// System A deletes a record; recsync deletes it in the CRM, whose deletion webhook then
// comes back: the link there is a tombstone already, so it is recsync's own delete (an
// echo), not sent to System A. (Delivered here once the delete's result is recorded; one
// that overtakes that result is sent on, and System A answers 404: "Not built yet".)
TEST_F(WebhookTest, OwnDeletesComingBackAreEchoes) {
    testkit::post_events(base_, R"({"entity":"contact","event":"created","key":"a-9","data":{"email":"gone@example.com","first_name":"G"}})");
    ASSERT_TRUE(wait_until([&] { return crm_.record_count("contacts") == 1; }));
    const std::string id = crm_.records("contacts").front().id;
    testkit::post_events(base_, R"({"entity":"contact","event":"deleted","key":"a-9"})");
    ASSERT_TRUE(wait_until([&] { return crm_.record_count("contacts") == 0 && engine_->state().tasks().count() == 0; }));
    const auto echoes = engine_->metrics().echoes_suppressed.load();
    const auto r = deliver(change(id, "contact.deletion", now_ms()));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json::parse(r.body)["echoes"], 1) << r.body;
    EXPECT_EQ(engine_->metrics().echoes_suppressed.load(), echoes + 1);
    ASSERT_TRUE(wait_until([&] { return engine_->state().tasks().count() == 0; }));
    EXPECT_EQ(system_a_.calls(), 0) << "System A was sent the delete it made";
}

}  // namespace
}  // namespace recsync
