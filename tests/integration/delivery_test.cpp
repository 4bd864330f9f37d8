// Delivery behaviour across lanes and retries: a lane paused by Retry-After does not hold
// up the others; per-record order survives retries.
#include "store/state_store.hpp"
#include "support/engine_harness.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace recsync;
using nlohmann::json;
using testkit::http_request;
using testkit::wait_until;

namespace {

class Delivery : public ::testing::Test {
protected:
    void SetUp() override {
        slow_ = std::make_unique<mock::MockCrm>();
        fast_ = std::make_unique<mock::MockCrm>();
        slow_->start();
        fast_->start();
        testkit::stage_hubspot(dir_);
        // Fan-out: every contact goes to both CRMs.
        dir_.write("rules/fanout.yaml",
                   "mappings:\n  m: { fields: [ { from: email, to: email }, { from: last_name, to: lastname } ] }\n"
                   "rules:\n"
                   "  - { name: to-slow-new, on: { entity: contact, event: created }, do: { action: create, target: slow, object: contacts, mapping: m } }\n"
                   "  - { name: to-fast-new, on: { entity: contact, event: created }, do: { action: create, target: fast, object: contacts, mapping: m } }\n"
                   "  - { name: to-slow-upd, on: { entity: contact, event: updated }, do: { action: update, target: slow, object: contacts, mapping: m } }\n"
                   "  - { name: to-fast-upd, on: { entity: contact, event: updated }, do: { action: update, target: fast, object: contacts, mapping: m } }\n");
        engine_ = testkit::start_engine(
            dir_, "  slow: { provider: hubspot, base_url: '" + slow_->base_url() + "', retry: { max_attempts: 10, base_delay_ms: 10, max_delay_ms: 50 } }\n"
                  "  fast: { provider: hubspot, base_url: '" + fast_->base_url() + "', retry: { max_attempts: 10, base_delay_ms: 10, max_delay_ms: 50 } }\n");
        base_ = testkit::base_url(*engine_);
    }
    void TearDown() override {
        engine_->stop(std::chrono::seconds(2));
        slow_->stop();
        fast_->stop();
    }
    void post(const std::string &body) { testkit::post_events(base_, body); }
    static std::string created(int i) {
        return R"({"entity":"contact","event":"created","key":"k)" + std::to_string(i) + R"(","data":{"email":"d)" + std::to_string(i) + R"(@example.com","last_name":"v0"}})";
    }
    testkit::TempDir dir_;
    std::unique_ptr<mock::MockCrm> slow_, fast_;
    std::unique_ptr<engine::Engine> engine_;
    std::string base_;
};

TEST_F(Delivery, ALanePausedByRetryAfterDoesNotHoldUpTheOthers) {
    slow_->fail_next(1, 429, 4);  // "come back in 4 s"
    post(created(0));
    ASSERT_TRUE(wait_until([&] { return slow_->counters().injected_failures == 1; }));
    const auto paused_at = std::chrono::steady_clock::now();
    for (int i = 1; i <= 10; ++i) post(created(i));
    // The fast lane delivers everything while the slow one waits out its Retry-After.
    ASSERT_TRUE(wait_until([&] { return fast_->record_count("contacts") == 11; }, std::chrono::seconds(3)));
    EXPECT_EQ(slow_->record_count("contacts"), 0u) << "the paused lane sent nothing before Retry-After";
    const auto status = json::parse(http_request("GET", base_ + "/v1/status").body);
    EXPECT_GT(status["connections"]["slow"]["paused_until_ms"].get<int64_t>(), 0) << status.dump();
    ASSERT_TRUE(wait_until([&] { return slow_->record_count("contacts") == 11; }, std::chrono::seconds(20)));
    EXPECT_GE(std::chrono::steady_clock::now() - paused_at, std::chrono::seconds(3));
}

TEST_F(Delivery, PerRecordOrderSurvivesRetries) {
    slow_->fail_next(3, 503);  // the create fails three times before it lands
    std::string body = created(1) + "\n";
    // Updates arrive one by one while the create is being retried: none may overtake it.
    post(body);
    ASSERT_TRUE(wait_until([&] { return slow_->counters().injected_failures >= 1; }));
    for (int v = 1; v <= 3; ++v)
        post(R"({"entity":"contact","event":"updated","key":"k1","data":{"email":"d1@example.com","last_name":"v)" + std::to_string(v) + R"("}})");
    ASSERT_TRUE(wait_until([&] {
        const auto r = slow_->records("contacts");
        return r.size() == 1 && r[0].properties.at("lastname") == "v3";
    }));
    // The log: failed POSTs, then the POST that created it (a create that failed with a
    // 503 may have been made, so it is retried as an upsert); no PATCH before it.
    bool created_seen = false;
    for (const auto &req : slow_->requests()) {
        if (req.method == "POST" && (req.status == 201 || (req.status == 200 && req.target.ends_with("/batch/upsert")))) created_seen = true;
        if (req.method == "PATCH") {
            EXPECT_TRUE(created_seen) << "a PATCH overtook the create";
        }
    }
    EXPECT_TRUE(created_seen);
    EXPECT_EQ(engine_->state().dead_letter_count(), 0);
}

}  // namespace
