// The whole path in one process: HTTP event -> rules -> mapping -> HubSpot plugin ->
// lane -> libcurl -> the mock CRM, with the shipped rules and the real SQLite state.
#include "dispatch/dispatcher.hpp"
#include "engine/engine.hpp"
#include "mock_crm.hpp"
#include "store/state_backend.hpp"
#include "support/engine_harness.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>

using namespace recsync;
using nlohmann::json;
using testkit::http_request;
using testkit::wait_until;

namespace {

constexpr const char *kToken = "e2e-secret-token";

class EngineE2E : public ::testing::Test {
protected:
    void SetUp() override {
        setenv("RECSYNC_E2E_HUBSPOT_TOKEN", kToken, 1);
        setenv("RECSYNC_E2E_ADMIN_TOKEN", "admin-token", 1);
        mock::MockCrmOptions mo;
        mo.token = kToken;
        crm_ = std::make_unique<mock::MockCrm>(mo);
        crm_->start();
        testkit::copy_plugin(RECSYNC_PLUGIN_DIR, "hubspot", dir_.file("plugins"));
    }
    void TearDown() override {
        if (engine_) engine_->stop(std::chrono::seconds(2));
        engine_.reset();
        crm_->stop();
    }

    std::string write_config(const std::string &extra_connection = "", size_t max_body = 65536, int max_attempts = 5) {
        return dir_.write("recsync.yaml", "plugins_dir: plugins\n"
                                          "rules_dir: " RECSYNC_SOURCE_DIR "/rules\n"
                                          "state: { path: state/recsync.db, synchronous: normal }\n"
                                          "server: { listen: '127.0.0.1:0', max_body_bytes: " + std::to_string(max_body) + ", admin_token_env: RECSYNC_E2E_ADMIN_TOKEN }\n"
                                          "log_level: warn\n"
                                          "connections:\n"
                                          "  hubspot-main:\n"
                                          "    provider: hubspot\n"
                                          "    base_url: " + crm_->base_url() + "\n"
                                          "    credentials: { token_env: RECSYNC_E2E_HUBSPOT_TOKEN }\n"
                                          "    retry: { max_attempts: " + std::to_string(max_attempts) + ", base_delay_ms: 10, max_delay_ms: 200 }\n" + extra_connection);
    }

    void start_engine(const std::string &extra_connection = "", size_t max_body = 65536, int max_attempts = 5) {
        engine_ = std::make_unique<engine::Engine>(config::load_config(write_config(extra_connection, max_body, max_attempts)));
        engine_->start();
        base_ = "http://127.0.0.1:" + std::to_string(engine_->port());
    }

    testkit::HttpReply post(const std::string &body, const std::vector<std::string> &headers = {"Content-Type: application/json"}) {
        return http_request("POST", base_ + "/v1/events", body, headers);
    }

    std::vector<mock::LoggedRequest> requests_with(const std::string &method) {
        std::vector<mock::LoggedRequest> out;
        for (auto &r : crm_->requests())
            if (r.method == method) out.push_back(r);
        return out;
    }

    testkit::TempDir dir_;
    std::unique_ptr<mock::MockCrm> crm_;
    std::unique_ptr<engine::Engine> engine_;
    std::string base_;
};

const char *kCreated = R"({"entity":"contact","event":"created","key":"c-1","data":{"email":"  Ada@Example.COM ","first_name":"Ada","last_name":"Lovelace","company":{"name":"Analytical Engines"},"status":"customer","lifetime_value":1200}})";

TEST_F(EngineE2E, CreateThenUpdateThenDeleteReachTheCrm) {
    start_engine();
    auto r = post(kCreated);
    ASSERT_EQ(r.status, 202) << r.body;
    EXPECT_EQ(json::parse(r.body)["tasks"], 1);

    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 1; }));
    const auto rec = crm_->records("contacts").at(0);
    EXPECT_EQ(rec.properties.at("email"), "ada@example.com");  // trim + lower from the mapping
    EXPECT_EQ(rec.properties.at("firstname"), "Ada");
    EXPECT_EQ(rec.properties.at("lastname"), "Lovelace");
    EXPECT_EQ(rec.properties.at("company"), "Analytical Engines");  // nested source path
    EXPECT_EQ(rec.properties.at("lifecyclestage"), "customer");
    EXPECT_EQ(rec.properties.at("total_revenue"), "1200");

    // The CRM's id lands in the id map once the create is recorded.
    ASSERT_TRUE(wait_until([&] { return testkit::external_id(*engine_, "hubspot-main", "contacts", "c-1").has_value(); }));
    EXPECT_EQ(*testkit::external_id(*engine_, "hubspot-main", "contacts", "c-1"), rec.id);

    r = post(R"({"entity":"contact","event":"updated","key":"c-1","data":{"email":"ada@example.com","first_name":"Ada","last_name":"King"},
                 "previous":{"email":"ada@example.com","first_name":"Ada","last_name":"Lovelace"}})");
    ASSERT_EQ(r.status, 202) << r.body;
    ASSERT_TRUE(wait_until([&] { return crm_->record("contacts", rec.id) && crm_->record("contacts", rec.id)->properties.at("lastname") == "King"; }));
    // The mock logs a request after its handler has run: wait for the entry too.
    ASSERT_TRUE(wait_until([&] { return !requests_with("PATCH").empty(); }));
    const auto patches = requests_with("PATCH");
    ASSERT_EQ(patches.size(), 1u);
    EXPECT_EQ(patches[0].target, "/crm/v3/objects/contacts/" + rec.id);

    r = post(R"({"entity":"contact","event":"deleted","key":"c-1"})");
    ASSERT_EQ(r.status, 202) << r.body;
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 0 && !requests_with("DELETE").empty(); }));
    const auto deletes = requests_with("DELETE");
    ASSERT_EQ(deletes.size(), 1u);
    EXPECT_EQ(deletes[0].target, "/crm/v3/objects/contacts/" + rec.id);
    ASSERT_TRUE(wait_until([&] { return !testkit::external_id(*engine_, "hubspot-main", "contacts", "c-1").has_value(); }));
    EXPECT_TRUE(wait_until([&] { return engine_->state().tasks().count() == 0; }));
}

TEST_F(EngineE2E, UpdateWithoutRelevantChangeIsNotSent) {
    start_engine();
    ASSERT_EQ(post(kCreated).status, 202);
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 1; }));
    const auto r = post(R"({"entity":"contact","event":"updated","key":"c-1","data":{"email":"ada@example.com"},"previous":{"email":"ada@example.com"}})");
    ASSERT_EQ(r.status, 202) << r.body;
    EXPECT_EQ(json::parse(r.body)["tasks"], 0);
}

TEST_F(EngineE2E, BadInputIsRejectedWithAReasonAndChangesNothing) {
    start_engine("", 2048);
    struct Case {
        std::string body;
        long status;
        std::string reason;
    };
    const std::vector<Case> cases = {
        {"{\"entity\": \"contact\", ", 400, "malformed JSON"},
        {R"({"entity":"contact","event":"created","key":"k","data":{"first_name":"No email"}})", 422, "email"},
        {R"({"entity":"contact","event":"created","key":"k","data":{"email":"not-an-email"}})", 422, "does not match the schema"},
        {R"({"entity":"invoice","event":"created","key":"k","data":{}})", 422, "unknown entity 'invoice'"},
        {R"({"entity":"contact","event":"exploded","key":"k","data":{}})", 422, "unknown event 'exploded'"},
        {R"({"entity":"contact","event":"created","data":{"email":"a@b.c"}})", 422, "missing 'key'"},
        {R"({"entity":"contact","event":"created","key":"k","data":{"email":"a@b.c"},"colour":"red"})", 422, "unknown field 'colour'"},
        {R"([)" + std::string(kCreated) + R"(,{"entity":"contact","event":"created","key":"k2","data":{}}])", 422, "event 1:"},
        {"{\"entity\":\"contact\",\"event\":\"created\",\"key\":\"big\",\"data\":{\"email\":\"a@b.c\",\"first_name\":\"" + std::string(4096, 'x') + "\"}}", 413,
         "exceeds the limit of 2048 bytes"},
    };
    // Found by fuzzing: none of these may crash the engine or answer 500.
    std::string deep = R"({"entity":"contact","event":"created","key":"k","data":{"email":"a@b.c"},"previous":)";
    for (int i = 0; i < 500; ++i) deep += "[";
    for (int i = 0; i < 500; ++i) deep += "]";
    deep += "}";
    std::vector<Case> fuzzed = {
        {"{\"entity\":\"contact\",\"event\":\"created\",\"key\":\"k\",\"data\":{\"email\":\"a@b.c\",\"lifetime_value\":1e3089}}\n", 400, "malformed JSON"},
        {deep, 400, "nested deeper than 64 levels"},
    };
    for (const auto &c : fuzzed) {
        const auto r = post(c.body);
        EXPECT_EQ(r.status, c.status) << r.body;
        EXPECT_NE(r.body.find(c.reason), std::string::npos) << r.body;
    }
    for (const auto &c : cases) {
        const auto r = post(c.body);
        EXPECT_EQ(r.status, c.status) << c.body.substr(0, 120) << " -> " << r.body;
        EXPECT_NE(r.body.find(c.reason), std::string::npos) << "expected '" << c.reason << "' in " << r.body;
    }
    EXPECT_EQ(post(kCreated, {"Content-Type: text/plain"}).status, 415);
    EXPECT_EQ(engine_->state().tasks().count(), 0);
    EXPECT_EQ(engine_->metrics().tasks_enqueued.load(), 0u);
    EXPECT_TRUE(crm_->requests().empty());
}

TEST_F(EngineE2E, AHugeStringAgainstASchemaPatternIsRejectedNotFatal) {
    start_engine("", 200000);
    // std::regex (valijson's) recursed once per character and overflowed the stack here.
    const auto r = post(R"({"entity":"contact","event":"created","key":"k","data":{"email":")" + std::string(60000, 'x') + R"(@example.com"}})");
    EXPECT_EQ(r.status, 422) << r.body.substr(0, 300);
    EXPECT_EQ(http_request("GET", base_ + "/healthz").status, 200);
}

TEST_F(EngineE2E, NdjsonBatchIsAcceptedWhole) {
    start_engine();
    std::string body;
    for (int i = 0; i < 5; ++i)
        body += R"({"entity":"contact","event":"created","key":"n-)" + std::to_string(i) + R"(","data":{"email":"n)" + std::to_string(i) + R"(@example.com"}})" + "\n";
    const auto r = post(body, {"Content-Type: application/x-ndjson"});
    ASSERT_EQ(r.status, 202) << r.body;
    EXPECT_EQ(json::parse(r.body)["accepted"], 5);
    EXPECT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 5; }));
}

TEST_F(EngineE2E, ABurstOfEditsToOneRecordBecomesOneCall) {
    start_engine();
    // One request: a create and twenty updates of the same record reach the lane together,
    // before the create is sent: they fold into one create carrying the final state.
    std::string body = std::string(kCreated) + "\n";
    for (int v = 1; v <= 20; ++v)
        body += R"({"entity":"contact","event":"updated","key":"c-1","data":{"email":"ada@example.com","last_name":"v)" + std::to_string(v) + R"("}})" + "\n";
    ASSERT_EQ(post(body, {"Content-Type: application/x-ndjson"}).status, 202);
    ASSERT_TRUE(wait_until([&] { return engine_->state().tasks().count() == 0 && crm_->record_count("contacts") == 1; }));
    EXPECT_EQ(crm_->records("contacts").at(0).properties.at("lastname"), "v20");
    EXPECT_EQ(crm_->records("contacts").at(0).properties.at("firstname"), "Ada");  // as if the PATCHes were sent
    EXPECT_EQ(requests_with("POST").size(), 1u);
    EXPECT_EQ(requests_with("PATCH").size(), 0u);
    EXPECT_EQ(engine_->metrics().tasks_coalesced.load(), 20u);
}

TEST_F(EngineE2E, SkipRuleSendsNothing) {
    start_engine();
    const auto r = post(R"({"entity":"contact","event":"created","key":"t-1","data":{"email":"qa@example.com","status":"test"}})");
    ASSERT_EQ(r.status, 202) << r.body;
    EXPECT_EQ(json::parse(r.body)["tasks"], 0);
    EXPECT_EQ(engine_->state().tasks().count(), 0);
}

TEST_F(EngineE2E, TransientFailuresAreRetried) {
    start_engine();
    crm_->fail_next(2, 503);
    ASSERT_EQ(post(kCreated).status, 202);
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 1; }));
    EXPECT_GE(engine_->metrics().tasks_retried.load(), 2u);
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
}

TEST_F(EngineE2E, PermanentFailuresAreDeadLetteredWithTheReason) {
    start_engine();
    crm_->fail_next(1, 400);
    ASSERT_EQ(post(kCreated).status, 202);
    ASSERT_TRUE(wait_until([&] { return engine_->state().dead_letters().count() == 1; }));
    auto dl = engine_->state().dead_letters().list(10).at(0);
    EXPECT_EQ(dl.task.record_key, "c-1");
    EXPECT_EQ(dl.response_status, 400);
    EXPECT_NE(dl.reason.find("400"), std::string::npos) << dl.reason;
    EXPECT_NE(dl.request.find("POST " + crm_->base_url() + "/crm/v3/objects/contacts"), std::string::npos) << dl.request;
    // The bearer token never reaches the dead-letter store.
    EXPECT_EQ(dl.request.find(kToken), std::string::npos) << dl.request;
    EXPECT_NE(dl.request.find("[redacted]"), std::string::npos);

    // An update for a record never created through recsync cannot be sent: dead-lettered.
    ASSERT_EQ(post(R"({"entity":"contact","event":"updated","key":"ghost","data":{"email":"g@example.com"}})").status, 202);
    ASSERT_TRUE(wait_until([&] { return engine_->state().dead_letters().count() == 2; }));
    EXPECT_NE(engine_->state().dead_letters().list(10).at(1).reason.find("no external id"), std::string::npos);
    EXPECT_TRUE(wait_until([&] { return engine_->state().tasks().count() == 0; }));

    // The admin endpoint lists them, only with the token.
    EXPECT_EQ(http_request("GET", base_ + "/v1/admin/dlq").status, 401);
    EXPECT_EQ(http_request("GET", base_ + "/v1/admin/dlq", "", {"Authorization: Bearer wrong"}).status, 401);
    const auto listed = http_request("GET", base_ + "/v1/admin/dlq", "", {"Authorization: Bearer admin-token"});
    ASSERT_EQ(listed.status, 200);
    EXPECT_EQ(json::parse(listed.body).size(), 2u);
}

TEST_F(EngineE2E, DeadLettersCanBeShownReplayedAndDropped) {
    start_engine();
    const std::vector<std::string> admin = {"Authorization: Bearer admin-token"};
    crm_->fail_next(1, 400);
    ASSERT_EQ(post(kCreated).status, 202);
    ASSERT_TRUE(wait_until([&] { return engine_->state().dead_letters().count() == 1; }));
    const auto id = std::to_string(engine_->state().dead_letters().list(1).at(0).id);

    const auto shown = http_request("GET", base_ + "/v1/admin/dlq/" + id, "", admin);
    ASSERT_EQ(shown.status, 200) << shown.body;
    const auto d = json::parse(shown.body);
    EXPECT_NE(d["payload"].get<std::string>().find("ada@example.com"), std::string::npos);
    EXPECT_EQ(d["request"].get<std::string>().find(kToken), std::string::npos);
    EXPECT_EQ(http_request("GET", base_ + "/v1/admin/dlq/" + id).status, 401);
    EXPECT_EQ(http_request("GET", base_ + "/v1/admin/dlq/abc", "", admin).status, 400);

    // The cause is fixed (the CRM accepts it now): replay sends it at once.
    const auto replayed = http_request("POST", base_ + "/v1/admin/dlq/" + id + "/replay", "", admin);
    ASSERT_EQ(replayed.status, 200) << replayed.body;
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 1; }));
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
    EXPECT_EQ(http_request("POST", base_ + "/v1/admin/dlq/" + id + "/replay", "", admin).status, 404);

    crm_->fail_next(1, 422);
    ASSERT_EQ(post(R"({"entity":"contact","event":"created","key":"c-2","data":{"email":"b@example.com"}})").status, 202);
    ASSERT_TRUE(wait_until([&] { return engine_->state().dead_letters().count() == 1; }));
    const auto id2 = std::to_string(engine_->state().dead_letters().list(1).at(0).id);
    EXPECT_EQ(http_request("DELETE", base_ + "/v1/admin/dlq/" + id2, "", admin).status, 200);
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
}

TEST_F(EngineE2E, DeadLettersCanBeReplayedFromTheCliWhileStopped) {
    start_engine();
    crm_->fail_next(1, 400);
    ASSERT_EQ(post(kCreated).status, 202);
    ASSERT_TRUE(wait_until([&] { return engine_->state().dead_letters().count() == 1; }));
    const auto id = std::to_string(engine_->state().dead_letters().list(1).at(0).id);
    engine_->stop();
    engine_.reset();

    const std::string cli = RECSYNC_BINARY_DIR "/recsync";
    const auto cfg = dir_.file("recsync.yaml");
    auto [rc, out] = testkit::run_command(cli + " dlq show -c " + cfg + " " + id);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("reason: "), std::string::npos) << out;
    EXPECT_NE(out.find("key=c-1"), std::string::npos) << out;
    EXPECT_EQ(out.find(kToken), std::string::npos) << "no secret in the output";
    std::tie(rc, out) = testkit::run_command(cli + " dlq replay -c " + cfg + " " + id);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("1 dead letter(s) queued again"), std::string::npos) << out;
    std::tie(rc, out) = testkit::run_command(cli + " dlq drop -c " + cfg + " " + id);
    EXPECT_EQ(rc, 1) << "already replayed: " << out;

    start_engine();  // the replayed task is picked up at start
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 1; }));
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
}

TEST_F(EngineE2E, RateLimitedCrmStillGetsEverythingExactlyOnce) {
    crm_->set_rate_limit(5, 1);  // stricter than the provider default the lane uses (10/s, burst 10)
    start_engine("    batch: { max_size: 1 }\n");  // a call per record: 30 calls, past the limit
    std::string body = "[";
    for (int i = 0; i < 30; ++i)
        body += std::string(i ? "," : "") + R"({"entity":"contact","event":"created","key":"r-)" + std::to_string(i) + R"(","data":{"email":"r)" + std::to_string(i) +
                R"(@example.com"}})";
    body += "]";
    ASSERT_EQ(post(body).status, 202);
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 30; }, std::chrono::seconds(60)));
    EXPECT_GT(crm_->counters().rejected_429, 0u);  // the limit was hit and honoured
    EXPECT_EQ(crm_->counters().created, 30u);
    EXPECT_EQ(crm_->counters().duplicates, 0u);
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
}

TEST_F(EngineE2E, AcceptedEventsSurviveARestart) {
    crm_->stop();  // the CRM is down: nothing can be delivered
    start_engine("", 65536, 1000);  // retries must outlast the outage
    ASSERT_EQ(post(kCreated).status, 202);
    EXPECT_EQ(engine_->state().tasks().count(), 1);
    engine_->stop(std::chrono::milliseconds(100));
    engine_.reset();

    crm_->start();
    start_engine("", 65536, 1000);  // same state database; the mock's new port is in the new config
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 1; }));
    EXPECT_EQ(crm_->records("contacts").at(0).properties.at("email"), "ada@example.com");
}

TEST_F(EngineE2E, HealthStatusAndMetrics) {
    start_engine();
    EXPECT_EQ(http_request("GET", base_ + "/healthz").status, 200);
    EXPECT_EQ(http_request("GET", base_ + "/readyz").status, 200);
    ASSERT_EQ(post(kCreated).status, 202);
    ASSERT_TRUE(wait_until([&] { return engine_->metrics().tasks_succeeded.load() == 1; }));
    const auto status = http_request("GET", base_ + "/v1/status");
    ASSERT_EQ(status.status, 200);
    const auto s = json::parse(status.body);
    EXPECT_EQ(s["connections"]["hubspot-main"]["succeeded"], 1);
    EXPECT_EQ(s["plugins"]["hubspot"]["version"].get<std::string>().empty(), false);
    const auto metrics = http_request("GET", base_ + "/metrics");
    EXPECT_NE(metrics.body.find("recsync_tasks_succeeded_total 1"), std::string::npos) << metrics.body;
    // One call never saturates the dispatcher: the limit stays at the default maximum.
    EXPECT_NE(metrics.body.find("\nrecsync_calls_in_flight_limit 256\n"), std::string::npos) << metrics.body;
    EXPECT_EQ(http_request("GET", base_ + "/nope").status, 404);
    EXPECT_EQ(http_request("DELETE", base_ + "/v1/events").status, 405);
}

}  // namespace
