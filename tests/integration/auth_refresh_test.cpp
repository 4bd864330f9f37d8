// Auth refresh: the plugin describes the token request, the host runs it, caches the
// token until shortly before it expires, hands it to build_request, and fetches a new one
// when the old one expires or is refused (401). Secrets never reach the dead letters.
#include "engine/engine.hpp"
#include "mock_crm.hpp"
#include "store/state_backend.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <thread>

using namespace recsync;
using nlohmann::json;
using testkit::http_request;
using testkit::wait_until;

namespace {

class AuthRefresh : public ::testing::Test {
protected:
    void SetUp() override {
        setenv("RECSYNC_AUTH_CLIENT_ID", "client-1", 1);
        setenv("RECSYNC_AUTH_CLIENT_SECRET", "s3cret-client-secret", 1);
        testkit::copy_plugin(RECSYNC_FIXTURE_PLUGIN_DIR, "authed", dir_.file("plugins"));
        std::filesystem::create_directories(dir_.file("rules/schemas"));
        std::filesystem::copy_file(RECSYNC_SOURCE_DIR "/rules/schemas/contact.json", dir_.file("rules/schemas/contact.json"));
        dir_.write("rules/sync.yaml",
                   "mappings:\n  m: { fields: [ { from: email, to: email } ] }\n"
                   "rules:\n"
                   "  - name: c\n    on: { entity: contact, event: created }\n    do: { action: create, target: crm, object: contacts, mapping: m }\n");
    }
    void start(mock::MockCrmOptions mo) {
        crm_ = std::make_unique<mock::MockCrm>(mo);
        crm_->start();
        const auto cfg = dir_.write("recsync.yaml", "plugins_dir: plugins\nrules_dir: rules\nstate: { path: state/r.db, synchronous: normal }\n"
                                                    "server: { listen: '127.0.0.1:0' }\nlog_level: warn\nconnections:\n"
                                                    "  crm:\n    provider: authed\n    base_url: '" + crm_->base_url() + "'\n"
                                                    "    credentials: { client_id_env: RECSYNC_AUTH_CLIENT_ID, client_secret_env: RECSYNC_AUTH_CLIENT_SECRET }\n"
                                                    "    retry: { max_attempts: 3, base_delay_ms: 10, max_delay_ms: 50 }\n");
        engine_ = std::make_unique<engine::Engine>(config::load_config(cfg));
        engine_->start();
        base_ = "http://127.0.0.1:" + std::to_string(engine_->port());
    }
    void TearDown() override {
        if (engine_) engine_->stop(std::chrono::seconds(2));
        engine_.reset();
        if (crm_) crm_->stop();
    }
    bool post(int i) {
        return http_request("POST", base_ + "/v1/events",
                            R"({"entity":"contact","event":"created","key":"a-)" + std::to_string(i) + R"(","data":{"email":"a)" + std::to_string(i) + R"(@example.com"}})")
                   .status == 202;
    }
    testkit::TempDir dir_;
    std::unique_ptr<mock::MockCrm> crm_;
    std::unique_ptr<engine::Engine> engine_;
    std::string base_;
};

mock::MockCrmOptions oauth(int ttl_seconds) {
    mock::MockCrmOptions mo;
    mo.oauth_client_id = "client-1";
    mo.oauth_client_secret = "s3cret-client-secret";
    mo.oauth_token_ttl_seconds = ttl_seconds;
    return mo;
}

TEST_F(AuthRefresh, TokenIsFetchedOnceAndReused) {
    start(oauth(3600));
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(post(i));
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 10; }));
    EXPECT_EQ(crm_->counters().tokens_issued, 1u);
    EXPECT_EQ(crm_->counters().unauthorized, 0u);
}

TEST_F(AuthRefresh, ARefusedTokenIsReplacedAndTheCallRetried) {
    start(oauth(3600));
    ASSERT_TRUE(post(1));
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 1; }));
    crm_->expire_tokens();  // revoked behind our back: the next call gets 401
    ASSERT_TRUE(post(2));
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 2; }));
    EXPECT_EQ(crm_->counters().tokens_issued, 2u);
    EXPECT_GE(crm_->counters().unauthorized, 1u);
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
}

TEST_F(AuthRefresh, ShortLivedTokensAreRefreshedBeforeTheyExpire) {
    start(oauth(2));  // refreshed when a tenth of the lifetime is left
    ASSERT_TRUE(post(1));
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 1; }));
    ASSERT_TRUE(wait_until([&] { return crm_->counters().tokens_issued >= 2; }, std::chrono::seconds(10)));
    ASSERT_TRUE(post(2));
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 2; }));
}

// A connection a reload removed keeps no token fresh: its credentials may be revoked.
TEST_F(AuthRefresh, ARemovedConnectionFetchesNoMoreTokens) {
    start(oauth(2));  // refreshed every ~1.8 s while configured
    ASSERT_TRUE(post(1));
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 1; }));
    dir_.write("rules/sync.yaml", "mappings:\n  m: { fields: [ { from: email, to: email } ] }\n"
                                  "rules:\n  - name: c\n    on: { entity: contact, event: created }\n"
                                  "    do: { action: create, target: other, object: contacts, mapping: m }\n");
    dir_.write("recsync.yaml", "plugins_dir: plugins\nrules_dir: rules\nstate: { path: state/r.db, synchronous: normal }\n"
                               "server: { listen: '127.0.0.1:0' }\nlog_level: warn\nwatch_rules: false\nconnections:\n"
                               "  other:\n    provider: authed\n    base_url: 'http://127.0.0.1:1'\n"  // its tokens are not counted here
                               "    credentials: { client_id_env: RECSYNC_AUTH_CLIENT_ID, client_secret_env: RECSYNC_AUTH_CLIENT_SECRET }\n");
    const auto r = engine_->reload();
    ASSERT_TRUE(r.ok) << r.message;
    // The dispatcher applies the reload on its own thread, and a refresh it started just
    // before may still be answered: count from when the lane shows as removed, plus the
    // time a loopback token call takes.
    ASSERT_TRUE(wait_until([&] { return json::parse(http_request("GET", base_ + "/v1/status").body)["connections"]["crm"].value("removed", false); }));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto issued = crm_->counters().tokens_issued;
    std::this_thread::sleep_for(std::chrono::milliseconds(4500));  // two refresh periods
    EXPECT_EQ(crm_->counters().tokens_issued, issued);
}

TEST_F(AuthRefresh, WrongClientSecretStallsTheLaneVisiblyWithoutLosingWork) {
    auto mo = oauth(3600);
    mo.oauth_client_secret = "something-else";
    start(mo);
    ASSERT_TRUE(post(1));
    ASSERT_TRUE(wait_until([&] {
        const auto s = json::parse(http_request("GET", base_ + "/v1/status").body);
        return s["connections"]["crm"].contains("auth_error");
    }));
    const auto s = json::parse(http_request("GET", base_ + "/v1/status").body);
    const std::string err = s["connections"]["crm"]["auth_error"];
    EXPECT_NE(err.find("HTTP 401"), std::string::npos) << err;
    EXPECT_EQ(err.find("s3cret"), std::string::npos) << "no secret in the status";
    EXPECT_EQ(s["connections"]["crm"]["queued"], 1);  // waiting, not dead-lettered
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
    EXPECT_EQ(crm_->record_count("contacts"), 0u);
}

}  // namespace
