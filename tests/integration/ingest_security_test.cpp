// Who may send events, through the whole engine: POST /v1/events needs an ingest token
// (one per sender), status endpoints the status token when one is set, and a TLS listener
// answers HTTPS only. Every refusal is a 401, 403 or 400 with a reason, and stores nothing:
// the refused event's id is not even remembered (the same event sent properly afterwards
// is new, not a duplicate).
#include "support/engine_harness.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>

using namespace recsync;
using nlohmann::json;
using testkit::http_request;
using testkit::wait_until;

namespace {

constexpr const char *kEvent = R"({"id":"evt-1","entity":"contact","event":"created","key":"k1","data":{"email":"k1@example.com"}})";

class IngestSecurity : public testkit::OneCrmEngineTest {
protected:
    void SetUp() override {
        OneCrmEngineTest::SetUp();
        ASSERT_EQ(::setenv("RECSYNC_TEST_INGEST_BILLING", "ingest-token-billing-5e1f", 1), 0);
        ASSERT_EQ(::setenv("RECSYNC_TEST_STATUS", "status-token-77ad", 1), 0);
        dir_.write("rules/crm.yaml",
                   "mappings:\n  m: { fields: [ { from: email, to: email } ] }\n"
                   "rules:\n  - { name: new, on: { entity: contact, event: created }, do: { action: create, target: crm, object: contacts, mapping: m } }\n");
    }
    // The engine with `server` as its server section (listen is added).
    void start_with(const std::string &server) {
        const auto path = dir_.write("recsync.yaml", "plugins_dir: plugins\nrules_dir: rules\nstate: { path: state/r.db, synchronous: normal }\n"
                                                     "server: { listen: '127.0.0.1:0', " + server + " }\nlog_level: error\nconnections:\n" + crm_connection(""));
        engine_ = std::make_unique<engine::Engine>(config::load_config(path));
        engine_->start();
        base_ = testkit::base_url(*engine_);
    }
    static std::vector<std::string> with(const std::string &authorization) {
        std::vector<std::string> h = {"Content-Type: application/json"};
        if (!authorization.empty()) h.push_back("Authorization: " + authorization);
        return h;
    }
    // Nothing accepted: no event, no task, no call to the CRM.
    void expect_nothing_stored() {
        EXPECT_EQ(engine_->metrics().events_accepted.load(), 0u);
        EXPECT_EQ(engine_->state().tasks().count(), 0);
        EXPECT_EQ(crm_->counters().requests, 0u);
    }
    // The event sent as it should be: new (not a duplicate of a refused one), and made.
    void expect_accepted(const std::string &url, const testkit::TlsClient &tls = {}) {
        const auto r = http_request("POST", url + "/v1/events", kEvent, with("Bearer ingest-token-billing-5e1f"), tls);
        ASSERT_EQ(r.status, 202) << r.body;
        EXPECT_EQ(json::parse(r.body).at("duplicates"), 0) << "a refused request left its event id behind";
        EXPECT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 1; }));
    }
};

const std::string kTokens = "ingest_tokens: [{ name: billing, token_env: RECSYNC_TEST_INGEST_BILLING }], status_token_env: RECSYNC_TEST_STATUS";

TEST_F(IngestSecurity, EventsWithoutTheRightTokenAreRefusedAndNothingIsStored) {
    start_with(kTokens);
    const auto events = base_ + "/v1/events";
    for (const std::string auth : {"", "Bearer wrong-token", "Bearer ingest-token-billing-5e1", "Basic aW5nZXN0", "Bearer "}) {
        const auto r = http_request("POST", events, kEvent, with(auth));
        EXPECT_EQ(r.status, 401) << auth << ": " << r.body;
        EXPECT_NE(r.headers.find("WWW-Authenticate: Bearer"), std::string::npos) << r.headers;
        EXPECT_NE(json::parse(r.body).at("error").get<std::string>().find("token"), std::string::npos) << r.body;
    }
    // The status token is a token, but not one that sends events.
    const auto r = http_request("POST", events, kEvent, with("Bearer status-token-77ad"));
    EXPECT_EQ(r.status, 403) << r.body;
    EXPECT_NE(r.body.find("not for sending events"), std::string::npos) << r.body;
    EXPECT_EQ(engine_->metrics().requests_unauthorized.load(), 6u);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    expect_nothing_stored();
    expect_accepted(base_);
}

TEST_F(IngestSecurity, StatusEndpointsNeedTheStatusTokenWhenOneIsSet) {
    start_with(kTokens);
    EXPECT_EQ(http_request("GET", base_ + "/metrics").status, 401);
    EXPECT_EQ(http_request("GET", base_ + "/v1/status").status, 401);
    EXPECT_EQ(http_request("GET", base_ + "/v1/status", "", with("Bearer ingest-token-billing-5e1f")).status, 403);
    const auto m = http_request("GET", base_ + "/metrics", "", with("Bearer status-token-77ad"));
    EXPECT_EQ(m.status, 200);
    EXPECT_NE(m.body.find("recsync_requests_unauthorized_total 3"), std::string::npos) << m.body;
    EXPECT_EQ(http_request("GET", base_ + "/v1/status", "", with("Bearer status-token-77ad")).status, 200);
    // Probes stay open: a load balancer has no token.
    EXPECT_EQ(http_request("GET", base_ + "/healthz").status, 200);
    EXPECT_EQ(http_request("GET", base_ + "/readyz").status, 200);
}

TEST_F(IngestSecurity, ATlsListenerRefusesPlainHttpAndServesHttpsWithTheToken) {
    ASSERT_EQ(testkit::make_test_certificates(dir_.path()), "");
    start_with(kTokens + ", tls: { cert_file: server.pem, key_file: server.key }");
    const auto port = std::to_string(engine_->port());
    const auto plain = http_request("POST", "http://127.0.0.1:" + port + "/v1/events", kEvent, with("Bearer ingest-token-billing-5e1f"));
    EXPECT_EQ(plain.status, 400) << plain.body;
    EXPECT_NE(plain.body.find("HTTPS only"), std::string::npos) << plain.body;
    // A client that does not trust the certificate sends nothing.
    EXPECT_EQ(http_request("POST", "https://127.0.0.1:" + port + "/v1/events", kEvent, with("Bearer ingest-token-billing-5e1f")).status, 0);
    const testkit::TlsClient trusting{dir_.file("ca.pem"), "", ""};
    EXPECT_EQ(http_request("POST", "https://127.0.0.1:" + port + "/v1/events", kEvent, with(""), trusting).status, 401);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    expect_nothing_stored();
    expect_accepted("https://127.0.0.1:" + port, trusting);
}

// A reload reads the tokens again: the old one is refused from then on, the new one taken
// (the listener's threads keep the digests of the config they were made from).
TEST_F(IngestSecurity, AReloadRotatesTheIngestToken) {
    start_with(kTokens);
    expect_accepted(base_);
    ASSERT_EQ(::setenv("RECSYNC_TEST_INGEST_BILLING", "ingest-token-billing-rotated-9c3d", 1), 0);
    const auto r = engine_->reload();  // what SIGHUP does
    ASSERT_TRUE(r.ok) << r.message;
    EXPECT_EQ(http_request("POST", base_ + "/v1/events", kEvent, with("Bearer ingest-token-billing-5e1f")).status, 401) << "the old token still works";
    const auto now = http_request("POST", base_ + "/v1/events", kEvent, with("Bearer ingest-token-billing-rotated-9c3d"));
    EXPECT_EQ(now.status, 202) << now.body;
}

TEST_F(IngestSecurity, AReloadRotatesTheListenersCertificate) {
    ASSERT_EQ(testkit::make_test_certificates(dir_.path()), "");
    start_with(kTokens + ", tls: { cert_file: server.pem, key_file: server.key }");
    const auto url = "https://127.0.0.1:" + std::to_string(engine_->port()) + "/healthz";
    ASSERT_EQ(http_request("GET", url, "", {}, {dir_.file("ca.pem"), "", ""}).status, 200);
    testkit::TempDir next;
    ASSERT_EQ(testkit::make_test_certificates(next.path()), "");
    const auto over = std::filesystem::copy_options::overwrite_existing;
    std::filesystem::copy_file(next.file("server.pem"), dir_.file("server.pem"), over);
    std::filesystem::copy_file(next.file("server.key"), dir_.file("server.key"), over);
    const auto r = engine_->reload();  // what SIGHUP does
    ASSERT_TRUE(r.ok) << r.message;
    EXPECT_EQ(http_request("GET", url, "", {}, {next.file("ca.pem"), "", ""}).status, 200);
    // A key that does not load: the reload is refused and says which file.
    dir_.write("server.key", "garbage\n");
    const auto bad = engine_->reload();
    EXPECT_FALSE(bad.ok);
    EXPECT_NE(bad.message.find("server.key"), std::string::npos) << bad.message;
    EXPECT_EQ(http_request("GET", url, "", {}, {next.file("ca.pem"), "", ""}).status, 200) << "the running certificate stays";
}

}  // namespace
