// plugins/rest end to end: the engine with rest.so (and rest_oauth.so) against the REST
// mock (tests/mock_crm/rest_mock.hpp), configured with no code but the shipped example's
// settings and rules (packaging/examples/rest_banking.yaml, rules/examples/rest_banking/):
// create, update, upsert, delete, a create whose answer was lost, a 409 adopted, a 429,
// polling (equal timestamps, deletions, a read for each hydrated account), an OAuth
// token that expires mid-run, for calls and for rest_oauth's polls. And `recsync check`
// on the example itself.
#include "config/config.hpp"
#include "engine/engine.hpp"
#include "rest_mock.hpp"
#include "store/state_backend.hpp"
#include "support/engine_harness.hpp"
#include "support/system_a_service.hpp"
#include "support/test_support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>

namespace recsync {
namespace {

using json = nlohmann::json;
using testkit::http_request;
using testkit::wait_until;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr const char *kBankToken = "bank-token-SECRET-42";
constexpr const char *kSigningSecret = "erp-signing-secret";
const std::string kExample = RECSYNC_SOURCE_DIR "/packaging/examples/rest_banking.yaml";
const std::string kExampleRules = RECSYNC_SOURCE_DIR "/rules/examples/rest_banking";

void set_example_env() {
    setenv("BANK_TOKEN", kBankToken, 1);
    setenv("ERP_SIGNING_SECRET", kSigningSecret, 1);
}

// The example's `bank` settings, as the engine reads them: the test runs what ships.
json example_bank_settings() {
    set_example_env();
    const auto cfg = config::load_config(kExample);
    const auto *bank = cfg.connection("bank");
    if (!bank) throw std::runtime_error("the example has no connection 'bank'");
    return bank->settings;
}

class RestEndToEnd : public ::testing::Test {
protected:
    void SetUp() override {
        set_example_env();
        testkit::copy_plugin(RECSYNC_PLUGIN_DIR, "rest", dir_.file("plugins"));
        testkit::copy_plugin(RECSYNC_PLUGIN_DIR, "rest_oauth", dir_.file("plugins"));
        std::filesystem::copy(kExampleRules, dir_.file("rules"), std::filesystem::copy_options::recursive);
    }
    void TearDown() override {
        if (engine_) engine_->stop(2s);
        engine_.reset();
        if (bank_) bank_->stop();
    }
    // The bank (mock) with `options`, and the engine on the example's rules and settings.
    // `polling`: the connection's polling section ("" for none); `auth`: the settings'
    // auth and the credentials that go with it.
    void start(mock::RestMockOptions options, const std::string &polling = "", const std::string &provider = "rest", json auth = {{"kind", "bearer"}},
               const std::string &credentials = "{ token_env: BANK_TOKEN }") {
        options.threads = 4;
        bank_ = std::make_unique<mock::RestMock>(options);
        bank_->start();
        json settings = example_bank_settings();
        settings["auth"] = std::move(auth);
        settings["objects"]["customers"]["poll"]["page_size"] = 2;  // equal timestamps span pages
        engine_ = testkit::start_engine(dir_,
                                        "  bank: { provider: " + provider + ", base_url: '" + bank_->base_url() + "', credentials: " + credentials +
                                            ", max_in_flight: 1, timeout_ms: 2000, retry: { max_attempts: 20, base_delay_ms: 5, max_delay_ms: 50 }, " +
                                            (polling.empty() ? "" : "polling: " + polling + ", ") + "settings: " + settings.dump() + " }\n" +
                                            "  erp: { provider: http, base_url: '" + erp_.base_url() + "', credentials: { signing_secret_env: ERP_SIGNING_SECRET }, settings: { objects: [customers, accounts] }, retry: { base_delay_ms: 5, max_delay_ms: 50 } }\n");
        base_ = testkit::base_url(*engine_);
    }
    // rest_oauth against the bank's client-credentials token endpoint.
    void start_oauth(const std::string &polling = "") {
        setenv("BANK_CLIENT_ID", "recsync-client", 1);
        setenv("BANK_CLIENT_SECRET", "client-SECRET-7", 1);
        mock::RestMockOptions o;
        o.auth = mock::RestAuth::OAuth;
        o.client_id = "recsync-client";
        o.client_secret = "client-SECRET-7";
        start(o, polling, "rest_oauth", {{"kind", "oauth_client_credentials"}, {"token_path", "/oauth/token"}}, "{ client_id_env: BANK_CLIENT_ID, client_secret_env: BANK_CLIENT_SECRET }");
    }
    static mock::RestMockOptions bearer() {
        mock::RestMockOptions o;
        o.auth = mock::RestAuth::Bearer;
        o.token = kBankToken;
        return o;
    }
    void post(const json &event) { testkit::post_events(base_, event.dump()); }
    static json customer(const std::string &key, const char *event, const std::string &name) {
        return {{"entity", "customer"}, {"event", event}, {"key", key}, {"data", {{"ref", "ref-" + key}, {"name", name}, {"email", key + "@example.com"}}}};
    }
    json status() { return json::parse(http_request("GET", base_ + "/v1/status").body); }
    bool idle() { return status()["connections"]["bank"]["queued"] == 0; }
    size_t count(const std::string &method, const std::string &target_prefix) {
        const auto log = bank_->requests();
        return static_cast<size_t>(std::count_if(log.begin(), log.end(), [&](const mock::RestRequest &r) { return r.method == method && r.target.starts_with(target_prefix); }));
    }
    std::string log_text() {
        std::string out = status().dump() + "\n";
        for (const auto &r : bank_->requests()) out += r.method + " " + r.target + " -> " + std::to_string(r.status) + " " + r.body + "\n";
        return out;
    }
    std::optional<std::string> linked(const std::string &object, const std::string &key) { return testkit::external_id(*engine_, "bank", object, key); }

    testkit::TempDir dir_;
    testkit::SystemA erp_{kSigningSecret};
    std::unique_ptr<mock::RestMock> bank_;
    std::unique_ptr<engine::Engine> engine_;
    std::string base_;
};

TEST_F(RestEndToEnd, ACustomerIsCreatedUpdatedAndDeleted) {
    start(bearer());
    post(customer("c1", "created", "Ada Lovelace"));
    ASSERT_TRUE(wait_until([&] { return bank_->record_count("customers") == 1 && idle(); })) << log_text();
    const auto made = bank_->records("customers")[0];
    EXPECT_EQ(made.fields["external_ref"], "ref-c1");
    EXPECT_EQ(made.fields["full_name"], "Ada Lovelace");
    EXPECT_EQ(made.fields["segment"], "retail");  // the mapping's default
    EXPECT_EQ(linked("customers", "c1"), made.id);  // the id from /data/id

    post(customer("c1", "updated", "Ada King"));
    ASSERT_TRUE(wait_until([&] { return bank_->record("customers", made.id)->fields["full_name"] == "Ada King"; })) << log_text();
    EXPECT_EQ(count("PATCH", "/v1/customers/" + made.id), 1u);

    post({{"entity", "customer"}, {"event", "deleted"}, {"key", "c1"}});
    ASSERT_TRUE(wait_until([&] { return bank_->record_count("customers") == 0 && idle(); })) << log_text();
    EXPECT_EQ(count("DELETE", "/v1/customers/" + made.id), 1u);
    EXPECT_EQ(bank_->counters().unauthorized, 0u);
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
}

TEST_F(RestEndToEnd, AnAccountIsUpsertedByItsReferenceThenUpdatedById) {
    start(bearer());
    const json account = {{"entity", "account"}, {"event", "created"}, {"key", "a1"}, {"data", {{"ref", "ACC/1"}, {"customer_ref", "ref-c1"}, {"currency", "EUR"}}}};
    post(account);
    ASSERT_TRUE(wait_until([&] { return bank_->record_count("accounts") == 1 && idle(); })) << log_text();
    EXPECT_EQ(count("PUT", "/v1/accounts/by-ref/ACC%2F1"), 1u);  // the reference percent-encoded
    const auto made = bank_->records("accounts")[0];
    EXPECT_EQ(made.fields["product"], "current");
    json changed = account;
    changed["event"] = "updated";
    changed["data"]["product"] = "savings";
    post(changed);
    ASSERT_TRUE(wait_until([&] { return bank_->record("accounts", made.id)->fields["product"] == "savings" && idle(); })) << log_text();
    EXPECT_EQ(count("PUT", "/v1/accounts/" + made.id), 1u);  // linked: an update by id
    EXPECT_EQ(bank_->record_count("accounts"), 1u);
}

// The bank made the customer, then the answer was lost: the retry finds it by
// external_ref and updates it instead of making a second one.
TEST_F(RestEndToEnd, ACreateWhoseAnswerWasLostIsFoundNotMadeTwice) {
    start(bearer());
    post(customer("warm", "created", "Warm Up"));  // so the lost create goes on a reused connection
    ASSERT_TRUE(wait_until([&] { return bank_->record_count("customers") == 1 && idle(); })) << log_text();
    bank_->lose_answer_next(1);
    post(customer("c2", "created", "Grace Hopper"));
    ASSERT_TRUE(wait_until([&] { return bank_->counters().lost_answers == 1 && idle(); })) << log_text();
    ASSERT_EQ(bank_->record_count("customers"), 2u) << log_text();
    EXPECT_EQ(count("POST", "/v1/customers"), 2u);  // warm-up + c2's one create
    EXPECT_EQ(count("GET", "/v1/customers?external_ref=ref-c2"), 1u);
    const auto c2 = bank_->records("customers")[1];
    EXPECT_EQ(linked("customers", "c2"), c2.id);
    EXPECT_EQ(bank_->counters().duplicates, 0u);
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
}

// A customer the bank already has under our external_ref: the 409 names it, and it is adopted.
TEST_F(RestEndToEnd, ACreateAnswered409AdoptsTheExistingRecord) {
    start(bearer());
    const std::string existing = bank_->insert("customers", {{"external_ref", "ref-c3"}, {"full_name", "Made at the branch"}});
    post(customer("c3", "created", "Katherine Johnson"));
    ASSERT_TRUE(wait_until([&] { return linked("customers", "c3").has_value() && idle(); })) << log_text();
    EXPECT_EQ(linked("customers", "c3"), existing);
    EXPECT_EQ(bank_->counters().duplicates, 1u);
    EXPECT_EQ(bank_->record_count("customers"), 1u);
}

TEST_F(RestEndToEnd, AThrottledCallWaitsOutRetryAfterAndSucceeds) {
    start(bearer());
    bank_->fail_next(1, 429, 1);  // Retry-After: 1
    post(customer("c4", "created", "Throttled"));
    ASSERT_TRUE(wait_until([&] { return bank_->record_count("customers") == 1 && idle(); })) << log_text();
    const auto log = bank_->requests();
    ASSERT_EQ(log.size(), 2u) << log_text();
    EXPECT_EQ(log[0].status, 429);
    EXPECT_EQ(log[1].status, 201);
    EXPECT_GE(log[1].at_ms - log[0].at_ms, 900) << "Retry-After was not honoured";
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
}

TEST_F(RestEndToEnd, AFailureTheSettingsCallPermanentIsDeadLetteredWithTheMessageAndNoSecret) {
    start(bearer());
    post({{"entity", "customer"}, {"event", "updated"}, {"key", "never-made"}, {"data", {{"ref", "x"}, {"name", "N"}}}});  // no id: dead-lettered by the host
    bank_->fail_next(1, 422, -1);
    post(customer("c5", "created", "Refused"));
    ASSERT_TRUE(wait_until([&] { return engine_->state().dead_letters().count() == 2; })) << log_text();
    std::string reasons;
    for (const auto &letter : engine_->state().dead_letters().list(10)) {
        reasons += letter.reason + "\n";
        EXPECT_THAT(letter.request, ::testing::Not(HasSubstr(kBankToken))) << "the bearer token reached a dead letter";
    }
    EXPECT_THAT(reasons, HasSubstr("HTTP 422: injected failure (rest mock)"));  // the body's /error/message
    EXPECT_THAT(reasons, HasSubstr("never-made"));
    EXPECT_EQ(bank_->record_count("customers"), 0u);
}

// Polling: five customers made in the bank at one timestamp (pages of two), then a change
// and a closure there; each reaches System A once, and recsync's own create comes back as
// an echo only.
TEST_F(RestEndToEnd, PolledChangesReachSystemAAcrossEqualTimestamps) {
    auto options = bearer();
    mock::RestMock *bank = nullptr;
    start(options, "{ objects: { customers: 1s }, requests_per_second: 100 }");
    bank = bank_.get();
    bank->set_fixed_time(1'772'359'200'000);  // 2026-03-01T10:00:00.000Z
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) ids.push_back(bank->insert("customers", {{"external_ref", "b-" + std::to_string(i)}, {"full_name", "Bank " + std::to_string(i)}}));
    bank->set_fixed_time(std::nullopt);
    ASSERT_TRUE(wait_until([&] { return erp_.size() == 5; }, 30s)) << log_text();
    for (const auto &id : ids) EXPECT_EQ(erp_.puts()["/customers/" + id], 1) << id;
    EXPECT_EQ(erp_.record("/customers/" + ids[3]).value()["name"], "Bank 3");
    EXPECT_GE(count("GET", "/v1/customers?updated_since=2026-03-01T10%3A00%3A00.000Z&after_id="), 2u);

    bank->update("customers", ids[1], {{"full_name", "Renamed at the branch"}});
    ASSERT_TRUE(wait_until([&] { return erp_.record("/customers/" + ids[1]).value()["name"] == "Renamed at the branch"; }, 30s)) << log_text();
    bank->remove("customers", ids[2]);
    ASSERT_TRUE(wait_until([&] { return !erp_.record("/customers/" + ids[2]).has_value(); }, 30s)) << log_text();

    const int erp_calls = erp_.calls();
    post(customer("ours", "created", "Made by recsync"));  // its poll comes back with our own stamp
    ASSERT_TRUE(wait_until([&] { return bank->record_count("customers") == 5 && idle(); })) << log_text();
    const size_t polls = count("GET", "/v1/customers?");
    ASSERT_TRUE(wait_until([&] { return count("GET", "/v1/customers?") >= polls + 2; }, 10s));
    EXPECT_EQ(erp_.calls(), erp_calls) << "recsync's own create was sent back to System A";
    EXPECT_FALSE(erp_.record("/customers/ours").has_value());
    EXPECT_EQ(status()["polling"][0]["failures"], 0);
}

// Accounts are polled with hydrate: each listed account is read by id before it is planned.
TEST_F(RestEndToEnd, AHydratedPollReadsEachAccount) {
    start(bearer(), "{ objects: { accounts: 1s }, requests_per_second: 100 }");
    const std::string id = bank_->insert("accounts", {{"external_ref", "ACC-9"}, {"customer_ref", "ref-c1"}, {"currency", "NOK"}, {"product", "loan"}});
    ASSERT_TRUE(wait_until([&] { return erp_.record("/accounts/" + id).has_value(); }, 30s)) << log_text();
    EXPECT_EQ(erp_.record("/accounts/" + id).value()["currency"], "NOK");
    EXPECT_GE(count("GET", "/v1/accounts/" + id), 1u);  // the read
}

// rest_oauth: the host fetches a client-credentials token, and a new one when the bank
// refuses the old one mid-run.
TEST_F(RestEndToEnd, AnOauthTokenThatExpiresMidRunIsReplaced) {
    start_oauth();
    post(customer("o1", "created", "First"));
    ASSERT_TRUE(wait_until([&] { return bank_->record_count("customers") == 1 && idle(); })) << log_text();
    EXPECT_EQ(bank_->counters().tokens_issued, 1u);
    bank_->expire_tokens();
    post(customer("o2", "created", "Second"));
    ASSERT_TRUE(wait_until([&] { return bank_->record_count("customers") == 2 && idle(); })) << log_text();
    EXPECT_EQ(bank_->counters().tokens_issued, 2u);
    EXPECT_GE(bank_->counters().unauthorized, 1u);
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
}

// rest_oauth polls as rest does: each poll carries the token the poller fetched; when the
// bank refuses it mid-run (401) the poller fetches another and the polls go on from their
// cursor, the changes reaching System A.
TEST_F(RestEndToEnd, RestOauthPollsWithItsTokenAndAnExpiredOneIsReplaced) {
    start_oauth("{ objects: { customers: 1s }, requests_per_second: 100 }");
    const auto polls = [&] {
        auto log = bank_->requests();
        std::erase_if(log, [](const mock::RestRequest &r) { return r.method != "GET" || !r.target.starts_with("/v1/customers?"); });
        return log;
    };
    const std::string before = bank_->insert("customers", {{"external_ref", "p-1"}, {"full_name", "Polled Before"}});
    ASSERT_TRUE(wait_until([&] { return erp_.record("/customers/" + before).has_value(); }, 30s)) << log_text();
    EXPECT_EQ(erp_.record("/customers/" + before).value()["name"], "Polled Before");
    const auto first = polls();
    ASSERT_FALSE(first.empty()) << log_text();
    const std::string token = first.front().authorization;
    EXPECT_THAT(token, ::testing::StartsWith("Bearer rest-mock-token-"));  // one the bank issued, not a static credential
    for (const auto &p : first) {
        EXPECT_EQ(p.authorization, token) << p.target;  // kept, not fetched per poll
        EXPECT_EQ(p.status, 200) << p.target;
    }

    bank_->expire_tokens();
    const std::string after = bank_->insert("customers", {{"external_ref", "p-2"}, {"full_name", "Polled After"}});
    ASSERT_TRUE(wait_until([&] { return erp_.record("/customers/" + after).has_value(); }, 30s)) << log_text();
    EXPECT_EQ(erp_.record("/customers/" + after).value()["name"], "Polled After");
    const auto all = polls();
    const auto refused = std::find_if(all.begin(), all.end(), [](const mock::RestRequest &r) { return r.status == 401; });
    ASSERT_NE(refused, all.end()) << "no poll was refused: " << log_text();
    EXPECT_EQ(refused->authorization, token);
    const auto resumed = std::find_if(refused, all.end(), [](const mock::RestRequest &r) { return r.status == 200; });
    ASSERT_NE(resumed, all.end()) << log_text();
    EXPECT_THAT(resumed->authorization, ::testing::StartsWith("Bearer rest-mock-token-"));
    EXPECT_NE(resumed->authorization, token) << "the refused token was used again";
    EXPECT_THAT(resumed->target, HasSubstr("after_id=" + before));  // from the stored cursor, not from scratch
    EXPECT_GE(bank_->counters().tokens_issued, 2u);
    EXPECT_EQ(erp_.puts()["/customers/" + before], 1);
    EXPECT_EQ(erp_.puts()["/customers/" + after], 1);
    EXPECT_GE(status()["polling"][0]["failures"].get<int>(), 1);
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
}

// ---- the shipped example, as an operator checks it ----------------------------------------

class RestExample : public ::testing::Test {
protected:
    void SetUp() override {
        set_example_env();
        testkit::copy_plugin(RECSYNC_PLUGIN_DIR, "rest", dir_.file("plugins"));
        std::filesystem::copy(kExampleRules, dir_.file("rules"), std::filesystem::copy_options::recursive);
    }
    // The example with its paths pointed into the test's directory and `edit` applied.
    std::string config(const std::function<void(std::string &)> &edit = {}) {
        std::ifstream in(kExample);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        text = std::regex_replace(text, std::regex("plugins_dir: .*"), "plugins_dir: plugins");
        text = std::regex_replace(text, std::regex("rules_dir: .*"), "rules_dir: rules");
        text = std::regex_replace(text, std::regex("  path: \\.\\./\\.\\./var/.*"), "  path: state/recsync.db");
        if (edit) edit(text);
        return dir_.write("recsync.yaml", text);
    }
    std::pair<int, std::string> check(const std::string &cfg) { return testkit::run_command(RECSYNC_BINARY_DIR "/recsync check -c " + cfg); }
    testkit::TempDir dir_;
};

TEST_F(RestExample, TheExampleConfigAndRulesPassRecsyncCheck) {
    const auto [rc, out] = check(config());
    EXPECT_EQ(rc, 0) << out;
    EXPECT_THAT(out, HasSubstr("plugin rest"));
    EXPECT_THAT(out, HasSubstr("7 rule(s)"));
}

// A mistake in the settings is named with the connection's file:line and the setting's path.
TEST_F(RestExample, ASettingsMistakeIsReportedWithTheFileLineAndTheSettingPath) {
    const std::string cfg = config([](std::string &t) { t = std::regex_replace(t, std::regex("path: /v1/customers\n"), "path: /v1/customers/{foo}\n"); });
    const auto [rc, out] = check(cfg);
    EXPECT_NE(rc, 0);
    EXPECT_TRUE(std::regex_search(out, std::regex("recsync\\.yaml:\\d+:\\d+: connection 'bank': rest\\.create_instance: configuration error: "
                                                  "rest settings objects\\.customers\\.create\\.path: unknown placeholder \\{foo\\}")))
        << out;
}

}  // namespace
}  // namespace recsync
