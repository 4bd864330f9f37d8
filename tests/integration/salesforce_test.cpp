// The salesforce provider through the engine, against the Salesforce mock: OAuth (client
// credentials and the JWT bearer flow) with calls at the token answer's instance_url,
// create / update / delete / upsert, a create whose answer was lost retried as an upsert
// on the External ID, a token refused mid-run, the org's API quota spent, 300 on duplicate
// External IDs, polling (changes, deletions, paging, our own writes not echoed), and sObject
// Collections batches (each record its own result; a lost collection create retried as upserts).
#include "engine/engine.hpp"
#include "salesforce_mock.hpp"
#include "store/state_backend.hpp"
#include "support/engine_harness.hpp"
#include "support/system_a_service.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

using namespace recsync;
using nlohmann::json;
using testkit::http_request;
using testkit::wait_until;
using namespace std::chrono_literals;

namespace {

constexpr const char *kSigningSecret = "system-a-signing-secret";

// A fresh 2048-bit RSA key pair as PEM: {private, public}.
std::pair<std::string, std::string> rsa_key_pair() {
    EVP_PKEY *key = EVP_RSA_gen(2048);
    const auto pem = [&](bool priv) {
        BIO *bio = BIO_new(BIO_s_mem());
        if (priv) PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
        else PEM_write_bio_PUBKEY(bio, key);
        char *data = nullptr;
        const long n = BIO_get_mem_data(bio, &data);
        std::string out(data, static_cast<size_t>(n));
        BIO_free(bio);
        return out;
    };
    auto pair = std::make_pair(pem(true), pem(false));
    EVP_PKEY_free(key);
    return pair;
}

class SalesforceTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() { keys_ = new std::pair<std::string, std::string>(rsa_key_pair()); }
    static void TearDownTestSuite() { delete keys_; }

    void SetUp() override {
        setenv("RECSYNC_SF_CLIENT_ID", "mock-consumer-key", 1);
        setenv("RECSYNC_SF_CLIENT_SECRET", "mock-consumer-secret", 1);
        setenv("RECSYNC_TEST_A_SECRET", kSigningSecret, 1);
        testkit::copy_plugin(RECSYNC_PLUGIN_DIR, "salesforce", dir_.file("plugins"));
        std::filesystem::create_directories(dir_.file("rules/schemas"));
        std::filesystem::copy_file(RECSYNC_SOURCE_DIR "/rules/schemas/contact.json", dir_.file("rules/schemas/contact.json"));
        std::filesystem::copy_file(RECSYNC_SOURCE_DIR "/rules/schemas/contact.json", dir_.file("rules/schemas/lead.json"));
        dir_.write("keys/app.pem", keys_->first);
        dir_.write("rules/sync.yaml",
                   "mappings:\n"
                   "  to-sf: { fields: [ { from: email, to: Email }, { from: first_name, to: FirstName }, { from: last_name, to: LastName, default: Unknown } ] }\n"
                   "  from-sf: { fields: [ { from: Email, to: email }, { from: FirstName, to: first_name }, { from: LastName, to: last_name } ] }\n"
                   "rules:\n"
                   "  - { name: new, on: { source: internal, entity: contact, event: created }, do: { action: create, target: sf, object: Contact, mapping: to-sf } }\n"
                   "  - { name: changed, on: { source: internal, entity: contact, event: updated }, do: { action: update, target: sf, object: Contact, mapping: to-sf } }\n"
                   "  - { name: gone, on: { source: internal, entity: contact, event: deleted }, do: { action: delete, target: sf, object: Contact } }\n"
                   "  - { name: merged, on: { source: internal, entity: lead, event: [created, updated] }, do: { action: upsert, target: sf, object: Contact, mapping: to-sf } }\n"
                   "  - { name: from-sf, on: { source: sf, entity: Contact, event: [created, updated] }, do: { action: upsert, target: erp, object: contacts, mapping: from-sf } }\n"
                   "  - { name: from-sf-gone, on: { source: sf, entity: Contact, event: deleted }, do: { action: delete, target: erp, object: contacts } }\n");
    }
    void TearDown() override {
        if (engine_) engine_->stop(2s);
        engine_.reset();
        if (sf_) sf_->stop();
    }
    void start_mock(mock::SalesforceMockOptions o = {}) {
        o.jwt_public_key_pem = keys_->second;
        sf_ = std::make_unique<mock::SalesforceMock>(o);
        sf_->start();
    }
    // The sf connection with `settings` (after objects), and System A as erp.
    void start(const std::string &settings = "", const std::string &extra = "") {
        engine_ = testkit::start_engine(
            dir_, "  sf: { provider: salesforce, base_url: '" + sf_->base_url() +
                      "', credentials: { client_id_env: RECSYNC_SF_CLIENT_ID, client_secret_env: RECSYNC_SF_CLIENT_SECRET, private_key_file: keys/app.pem },"
                      " settings: { objects: { Contact: { external_id_field: Recsync_Key__c, fields: [Email, FirstName, LastName] } }" + settings +
                      " }, retry: { max_attempts: 5, base_delay_ms: 10, max_delay_ms: 100 }" + extra + " }\n"
                      "  erp: { provider: http, base_url: '" + system_a_.base_url() + "', settings: { objects: [contacts] }, credentials: { signing_secret_env: RECSYNC_TEST_A_SECRET },"
                      " retry: { base_delay_ms: 5, max_delay_ms: 50 } }\n");
        base_ = testkit::base_url(*engine_);
    }
    int post(const std::string &entity, const std::string &event, const std::string &key, const json &data = json::object()) {
        json e = {{"entity", entity}, {"event", event}, {"key", key}};
        if (event != "deleted") e["data"] = data;
        return http_request("POST", base_ + "/v1/events", e.dump()).status;
    }
    std::optional<mock::SalesforceRecord> by_key(const std::string &key) {
        for (auto &r : sf_->records("Contact"))
            if (r.fields.value("Recsync_Key__c", "") == key) return r;
        return std::nullopt;
    }
    bool idle() { return engine_->state().tasks().count() == 0; }
    std::string first_dead_letter() {
        const auto list = engine_->state().dead_letters().list(1);
        return list.empty() ? std::string("(none)") : list[0].reason;
    }

    static std::pair<std::string, std::string> *keys_;
    testkit::TempDir dir_;
    std::unique_ptr<mock::SalesforceMock> sf_;
    testkit::SystemA system_a_{kSigningSecret};
    std::unique_ptr<engine::Engine> engine_;
    std::string base_;
};

std::pair<std::string, std::string> *SalesforceTest::keys_ = nullptr;

// sObject Collections (ABI 1.6 batches): 450 records ready at once on a slow lane are
// created in a few composite/sobjects calls of at most 200, each made once; their updates
// go as composite PATCH; one record deleted in the org meanwhile is dead-lettered alone
// with its own ENTITY_IS_DELETED while the other 449 are updated.
TEST_F(SalesforceTest, ReadyRecordsGoInCollectionCallsAndEachKeepsItsOwnResult) {
    start_mock();
    start("", ", rate_limit: { per_second: 5, burst: 1 }");
    const int n = 450;
    const auto post_all = [&](const char *event, const std::string &last_name) {
        std::string body;
        for (int i = 0; i < n; ++i)
            body += json{{"entity", "contact"}, {"event", event}, {"key", "c-" + std::to_string(i)},
                         {"data", {{"email", "p" + std::to_string(i) + "@example.com"}, {"last_name", last_name}}}}.dump() + "\n";
        const auto r = http_request("POST", base_ + "/v1/events", body);
        ASSERT_EQ(r.status, 202) << r.body;
    };
    const auto calls = [&](const std::string &method) {
        size_t k = 0;
        for (const auto &r : sf_->requests()) k += r.method == method && r.target.find("/composite/sobjects") != std::string::npos;
        return k;
    };
    post_all("created", "v0");
    ASSERT_TRUE(wait_until([&] { return idle(); }, 60s)) << first_dead_letter();
    EXPECT_EQ(engine_->state().dead_letters().count(), 0) << first_dead_letter();
    EXPECT_EQ(sf_->record_count("Contact"), static_cast<size_t>(n));
    EXPECT_EQ(sf_->counters().created, static_cast<uint64_t>(n)) << "a record made twice";
    std::set<std::string> keys;
    for (const auto &r : sf_->records("Contact")) EXPECT_TRUE(keys.insert(r.fields.value("Recsync_Key__c", "")).second) << "made twice: " << r.fields.dump();
    EXPECT_EQ(keys.size(), static_cast<size_t>(n));
    const size_t creates = calls("POST");
    EXPECT_GE(creates, 3u) << "at most 200 records per call";
    EXPECT_LE(sf_->counters().api_requests, 30u) << "records went one per call";
    EXPECT_GE(engine_->metrics().batched_records.load(), 400u);
    for (const auto &r : sf_->requests()) {
        if (r.method == "POST" && r.target.find("/composite/sobjects") != std::string::npos) EXPECT_LE(json::parse(r.body)["records"].size(), 200u);
    }

    // c-7 is deleted in Salesforce by a user; then every record is updated.
    const auto gone = by_key("c-7");
    ASSERT_TRUE(gone);
    sf_->delete_as_user("Contact", gone->id);
    post_all("updated", "v1");
    ASSERT_TRUE(wait_until([&] { return idle(); }, 60s)) << first_dead_letter();
    EXPECT_GE(calls("PATCH"), 3u);
    const auto letters = engine_->state().dead_letters().list(10);
    ASSERT_EQ(letters.size(), 1u);
    EXPECT_EQ(letters[0].task.record_key, "c-7");
    EXPECT_NE(letters[0].reason.find("ENTITY_IS_DELETED"), std::string::npos) << letters[0].reason;
    size_t updated = 0;
    for (const auto &r : sf_->records("Contact")) updated += r.fields.value("LastName", "") == "v1";
    EXPECT_EQ(updated, static_cast<size_t>(n - 1));
    EXPECT_EQ(sf_->counters().created, static_cast<uint64_t>(n));
    EXPECT_LE(sf_->counters().api_requests, 60u);
}

// A collection create whose answer was lost (its records made, recsync never told): each
// record is in doubt and retried as an upsert by the External ID (in a collection upsert
// where several are retried together); nothing is made twice.
TEST_F(SalesforceTest, ALostCollectionCreateIsRetriedAsUpsertsAndMakesNoDuplicate) {
    start_mock();
    sf_->lose_answer_next(1);  // the first API call: the first collection create
    start("", ", rate_limit: { per_second: 5, burst: 1 }");
    std::string body;
    for (int i = 0; i < 300; ++i)
        body += json{{"entity", "contact"}, {"event", "created"}, {"key", "l-" + std::to_string(i)}, {"data", {{"email", "l" + std::to_string(i) + "@example.com"}}}}.dump() + "\n";
    ASSERT_EQ(http_request("POST", base_ + "/v1/events", body).status, 202);
    ASSERT_TRUE(wait_until([&] { return idle() && sf_->counters().lost_answers == 1; }, 60s)) << first_dead_letter();
    EXPECT_EQ(engine_->state().dead_letters().count(), 0) << first_dead_letter();
    EXPECT_EQ(sf_->record_count("Contact"), 300u) << "a record made twice";
    EXPECT_EQ(sf_->counters().created, 300u);
    size_t upserts = 0;
    for (const auto &r : sf_->requests()) upserts += r.method == "PATCH" && r.target.find("Recsync_Key__c") != std::string::npos;
    EXPECT_GE(upserts, 1u) << "the lost records should be retried as upserts on the External ID";
    for (int i = 0; i < 300; i += 37) EXPECT_TRUE(testkit::external_id(*engine_, "sf", "Contact", "l-" + std::to_string(i))) << i;
}

// The mock's sObject Collections themselves: results in order, one bad record alone,
// at most 200 records, allOrNone false only.
TEST_F(SalesforceTest, TheMocksCollectionsAnswerEachRecordInOrder) {
    start_mock();
    const auto token = http_request("POST", sf_->base_url() + "/services/oauth2/token", "grant_type=client_credentials&client_id=mock-consumer-key&client_secret=mock-consumer-secret",
                                    {"Content-Type: application/x-www-form-urlencoded"});
    ASSERT_EQ(token.status, 200) << token.body;
    const std::vector<std::string> h = {"Content-Type: application/json", "Authorization: Bearer " + json::parse(token.body)["access_token"].get<std::string>()};
    const std::string url = sf_->instance_url() + "/services/data/v60.0/composite/sobjects";
    json body = {{"allOrNone", false},
                 {"records", {{{"attributes", {{"type", "Contact"}}}, {"LastName", "A"}, {"Recsync_Key__c", "k1"}},
                              {{"attributes", {{"type", "Contact"}}}, {"FirstName", "no last name"}},
                              {{"attributes", {{"type", "Contact"}}}, {"LastName", "C"}, {"Recsync_Key__c", "k3"}}}}};
    auto r = http_request("POST", url, body.dump(), h);
    ASSERT_EQ(r.status, 200) << r.body;
    json out = json::parse(r.body);
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[0]["success"], true);
    EXPECT_EQ(out[1]["success"], false);
    EXPECT_EQ(out[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    EXPECT_EQ(out[2]["success"], true);
    EXPECT_EQ(sf_->record_count("Contact"), 2u);
    const std::string a = out[0]["id"], c = out[2]["id"];

    body = {{"allOrNone", false}, {"records", {{{"attributes", {{"type", "Contact"}}}, {"id", a}, {"LastName", "A2"}}, {{"attributes", {{"type", "Contact"}}}, {"id", "003999999999999AAA"}, {"LastName", "X"}}}}};
    r = http_request("PATCH", url, body.dump(), h);
    out = json::parse(r.body);
    EXPECT_EQ(out[0]["success"], true);
    EXPECT_EQ(out[1]["success"], false);
    EXPECT_EQ(sf_->record("Contact", a)->fields["LastName"], "A2");

    body = {{"allOrNone", false}, {"records", {{{"attributes", {{"type", "Contact"}}}, {"Recsync_Key__c", "k3"}, {"LastName", "C2"}}, {{"attributes", {{"type", "Contact"}}}, {"Recsync_Key__c", "k4"}, {"LastName", "D"}}}}};
    r = http_request("PATCH", url + "/Contact/Recsync_Key__c", body.dump(), h);
    out = json::parse(r.body);
    EXPECT_EQ(out[0]["id"], c);
    EXPECT_EQ(out[0]["created"], false);
    EXPECT_EQ(out[1]["created"], true);

    r = http_request("DELETE", url + "?ids=" + a + "," + a + "&allOrNone=false", "", h);
    out = json::parse(r.body);
    EXPECT_EQ(out[0]["success"], true);
    EXPECT_EQ(out[1]["errors"][0]["statusCode"], "ENTITY_IS_DELETED");

    json many = {{"allOrNone", false}, {"records", json::array()}};
    for (int i = 0; i < 201; ++i) many["records"].push_back({{"attributes", {{"type", "Contact"}}}, {"LastName", "L"}});
    r = http_request("POST", url, many.dump(), h);
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.body.find("EXCEEDED_ID_LIMIT"), std::string::npos) << r.body;
    many["allOrNone"] = true;
    many["records"].erase(200);
    EXPECT_EQ(http_request("POST", url, many.dump(), h).status, 400);
    EXPECT_EQ(sf_->record_count("Contact"), 2u) << "refused calls make nothing";
}

TEST_F(SalesforceTest, CreateUpdateDeleteGoToTheInstanceTheTokenNamed) {
    start_mock();
    start();
    ASSERT_EQ(post("contact", "created", "c-1", {{"email", "ada@example.com"}, {"first_name", "Ada"}, {"last_name", "Lovelace"}}), 202);
    ASSERT_TRUE(wait_until([&] { return by_key("c-1").has_value() && idle(); })) << first_dead_letter();
    const auto created = *by_key("c-1");
    EXPECT_EQ(created.fields["Email"], "ada@example.com");
    EXPECT_EQ(created.fields["FirstName"], "Ada");
    EXPECT_EQ(testkit::external_id(*engine_, "sf", "Contact", "c-1"), created.id);

    ASSERT_EQ(post("contact", "updated", "c-1", {{"email", "ada@example.com"}, {"first_name", "Augusta"}, {"last_name", "Lovelace"}}), 202);
    ASSERT_TRUE(wait_until([&] { return sf_->record("Contact", created.id)->fields["FirstName"] == "Augusta" && idle(); })) << first_dead_letter();
    ASSERT_EQ(post("contact", "deleted", "c-1"), 202);
    ASSERT_TRUE(wait_until([&] { return sf_->record("Contact", created.id)->deleted && idle(); })) << first_dead_letter();

    EXPECT_EQ(sf_->counters().tokens_issued, 1u);
    EXPECT_EQ(sf_->counters().unauthorized, 0u);
    int writes = 0;
    for (const auto &r : sf_->requests()) {
        if (r.target.starts_with("/services/oauth2/")) continue;
        EXPECT_TRUE(r.target.starts_with("/instance/services/data/v60.0/sobjects/Contact/")) << r.method << " " << r.target;
        EXPECT_EQ(r.call_options, "client=recsync") << r.method << " " << r.target;
        ++writes;
    }
    EXPECT_EQ(writes, 3);
}

TEST_F(SalesforceTest, ACreateWhoseAnswerWasLostIsRetriedAsAnUpsertAndMakesNoDuplicate) {
    start_mock();
    sf_->lose_answer_next(1);  // the create is made; recsync never hears of it
    start();
    ASSERT_EQ(post("contact", "created", "c-2", {{"email", "grace@example.com"}, {"last_name", "Hopper"}}), 202);
    ASSERT_TRUE(wait_until([&] { return idle() && sf_->counters().lost_answers == 1 && testkit::external_id(*engine_, "sf", "Contact", "c-2"); })) << first_dead_letter();
    EXPECT_EQ(sf_->record_count("Contact"), 1u);
    bool upserted = false;
    for (const auto &r : sf_->requests()) upserted = upserted || (r.method == "PATCH" && r.target == "/instance/services/data/v60.0/sobjects/Contact/Recsync_Key__c/c-2");
    EXPECT_TRUE(upserted) << "the retry should be an upsert on the External ID";
    EXPECT_EQ(testkit::external_id(*engine_, "sf", "Contact", "c-2"), sf_->records("Contact").at(0).id);
}

TEST_F(SalesforceTest, ARefusedTokenIsFetchedAgainMidRunAndNothingIsLost) {
    start_mock();
    start();
    for (int i = 0; i < 5; ++i) ASSERT_EQ(post("contact", "created", "t-" + std::to_string(i), {{"email", "t" + std::to_string(i) + "@example.com"}}), 202);
    ASSERT_TRUE(wait_until([&] { return sf_->record_count("Contact") == 5 && idle(); })) << first_dead_letter();
    sf_->expire_tokens();
    for (int i = 5; i < 10; ++i) ASSERT_EQ(post("contact", "created", "t-" + std::to_string(i), {{"email", "t" + std::to_string(i) + "@example.com"}}), 202);
    ASSERT_TRUE(wait_until([&] { return sf_->record_count("Contact") == 10 && idle(); })) << first_dead_letter();
    EXPECT_EQ(sf_->counters().tokens_issued, 2u);
    EXPECT_GE(sf_->counters().unauthorized, 1u);
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
}

TEST_F(SalesforceTest, TheJwtBearerFlowSignsItsAssertionWithThePrivateKey) {
    start_mock();
    start(", auth: jwt_bearer, username: integration@example.com");
    ASSERT_EQ(post("contact", "created", "j-1", {{"email", "jwt@example.com"}}), 202);
    ASSERT_TRUE(wait_until([&] { return by_key("j-1").has_value() && idle(); })) << first_dead_letter();
    EXPECT_EQ(sf_->counters().tokens_issued, 1u);
    EXPECT_EQ(sf_->counters().token_refusals, 0u);
}

TEST_F(SalesforceTest, AnAssertionForAnotherUserIsRefusedAndNothingIsSent) {
    start_mock();
    start(", auth: jwt_bearer, username: someone-else@example.com");
    ASSERT_EQ(post("contact", "created", "j-2", {{"email", "jwt2@example.com"}}), 202);
    ASSERT_TRUE(wait_until([&] { return sf_->counters().token_refusals >= 1; }));
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(sf_->record_count("Contact"), 0u);
    EXPECT_EQ(sf_->counters().api_requests, 0u);
    const json status = json::parse(http_request("GET", base_ + "/v1/status").body);
    const std::string auth_error = status["connections"]["sf"].value("auth_error", "");
    EXPECT_NE(auth_error.find("invalid_grant"), std::string::npos) << status.dump();
}

TEST_F(SalesforceTest, ASpentApiQuotaPausesTheConnectionWithoutDeadLetters) {
    mock::SalesforceMockOptions o;
    o.daily_api_limit = 1000;
    start_mock(o);
    sf_->set_api_usage(1000, 1000);  // spent
    start(", limit_exceeded_retry_s: 1");
    ASSERT_EQ(post("contact", "created", "q-1", {{"email", "quota@example.com"}}), 202);
    ASSERT_TRUE(wait_until([&] { return sf_->counters().limit_exceeded >= 1; }));
    sf_->set_api_usage(0, 1000);  // the rolling day moved on
    ASSERT_TRUE(wait_until([&] { return by_key("q-1").has_value() && idle(); })) << first_dead_letter();
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
    EXPECT_LE(sf_->counters().limit_exceeded, 3u) << "the lane kept calling into a spent quota";
}

TEST_F(SalesforceTest, AnUpsertMatchingSeveralRecordsIsDeadLetteredNamingThem) {
    mock::SalesforceMockOptions o;
    o.external_ids_unique = false;
    start_mock(o);
    const auto a = sf_->create_as_user("Contact", {{"LastName", "One"}, {"Recsync_Key__c", "dup-1"}});
    const auto b = sf_->create_as_user("Contact", {{"LastName", "Two"}, {"Recsync_Key__c", "dup-1"}});
    start();
    ASSERT_EQ(post("lead", "created", "dup-1", {{"email", "dup@example.com"}}), 202);
    ASSERT_TRUE(wait_until([&] { return engine_->state().dead_letters().count() == 1 && idle(); }));
    const std::string reason = first_dead_letter();
    EXPECT_NE(reason.find(a), std::string::npos) << reason;
    EXPECT_NE(reason.find(b), std::string::npos) << reason;
    EXPECT_EQ(sf_->counters().multiple_choices, 1u);
}

TEST_F(SalesforceTest, AnUpsertCreatesThenUpdatesByTheExternalId) {
    start_mock();
    start();
    ASSERT_EQ(post("lead", "created", "u-1", {{"email", "u1@example.com"}, {"last_name", "First"}}), 202);
    ASSERT_TRUE(wait_until([&] { return by_key("u-1").has_value() && idle(); })) << first_dead_letter();
    ASSERT_EQ(post("lead", "updated", "u-1", {{"email", "u1@example.com"}, {"last_name", "Second"}}), 202);
    ASSERT_TRUE(wait_until([&] { return by_key("u-1")->fields["LastName"] == "Second" && idle(); })) << first_dead_letter();
    EXPECT_EQ(sf_->record_count("Contact"), 1u);
}

TEST_F(SalesforceTest, PollingBringsChangesAndDeletionsOnceEachAcrossPagesButNotOurOwnWrites) {
    start_mock();
    sf_->set_fixed_modstamp(1'700'000'000'000);  // 250 changes in one millisecond: more than a page
    std::vector<std::string> ids;
    for (int i = 0; i < 250; ++i) ids.push_back(sf_->create_as_user("Contact", {{"LastName", "P" + std::to_string(i)}, {"Email", "p" + std::to_string(i) + "@example.com"}}));
    sf_->set_fixed_modstamp(std::nullopt);
    start(", poll_since: beginning, poll_overlap_s: 0", ", polling: { requests_per_second: 100, objects: { Contact: 1s } }");
    ASSERT_TRUE(wait_until([&] { return system_a_.size() == 250 && idle(); }, 60s)) << "System A has " << system_a_.size() << "; " << first_dead_letter();
    // One of ours (made by recsync's integration user) is not brought back as a change.
    ASSERT_EQ(post("contact", "created", "own-1", {{"email", "own@example.com"}, {"last_name", "Own"}}), 202);
    ASSERT_TRUE(wait_until([&] { return by_key("own-1").has_value() && idle(); })) << first_dead_letter();
    sf_->update_as_user("Contact", ids[7], {{"FirstName", "Changed"}});
    sf_->delete_as_user("Contact", ids[8]);
    ASSERT_TRUE(wait_until([&] { return system_a_.size() == 249 && idle(); }, 30s))
        << "System A has " << system_a_.size() << "; status: " << http_request("GET", base_ + "/v1/status").body << "; dead: " << first_dead_letter() << "\n" << http_request("GET", base_ + "/metrics").body;
    EXPECT_TRUE(wait_until([&] {
        const auto r = system_a_.record("/contacts/" + ids[7]);
        return r && r->value("first_name", "") == "Changed";
    })) << "the change made in Salesforce did not reach System A";
    for (const auto &[path, n] : system_a_.puts()) EXPECT_LE(n, 2) << path << " was written " << n << " times";
    bool paged = false;
    for (const auto &r : sf_->requests()) paged = paged || r.target.find("/queryAll/01g") != std::string::npos;
    EXPECT_TRUE(paged) << "250 rows at a batch size of 200 should have followed nextRecordsUrl";
    EXPECT_FALSE(system_a_.record("/contacts/" + by_key("own-1")->id).has_value()) << "recsync's own write came back as a change";
}

}  // namespace

namespace {

// The shipped example (packaging/examples/salesforce.yaml with rules/examples/salesforce/)
// passes `recsync check`, pointed at this build's plugins.
TEST(SalesforceExample, TheShippedExampleConfigAndRulesPassRecsyncCheck) {
    testkit::TempDir dir;
    std::ifstream in(RECSYNC_SOURCE_DIR "/packaging/examples/salesforce.yaml");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    const auto replace = [&](const std::string &from, const std::string &to) {
        const auto pos = text.find(from);
        ASSERT_NE(pos, std::string::npos) << from;
        text.replace(pos, from.size(), to);
    };
    replace("../../build/plugins", dir.file("plugins"));
    replace("../../rules/examples/salesforce", RECSYNC_SOURCE_DIR "/rules/examples/salesforce");
    replace("../../var/salesforce/recsync.db", dir.file("state/r.db"));
    testkit::copy_plugin(RECSYNC_PLUGIN_DIR, "salesforce", dir.file("plugins"));
    const auto cfg = dir.write("recsync.yaml", text);
    const std::string cmd = "SF_CLIENT_ID=k SF_CLIENT_SECRET=s ERP_SIGNING_SECRET=x " RECSYNC_BINARY_DIR "/recsync check -c '" + cfg + "' > '" + dir.file("out.txt") + "' 2>&1";
    const int rc = std::system(cmd.c_str());
    std::ifstream out(dir.file("out.txt"));
    std::stringstream os;
    os << out.rdbuf();
    EXPECT_EQ(rc, 0) << os.str();
    EXPECT_NE(os.str().find("8 rule(s), 3 mapping(s), 2 entity schema(s)"), std::string::npos) << os.str();
}

}  // namespace
