// Delivery behaviour across lanes and retries: a lane paused by Retry-After (seconds or an
// HTTP-date, on a 429 or a 503) does not hold up the others; per-record order survives
// retries.
#include "store/state_backend.hpp"
#include "support/engine_harness.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>
#include <vector>

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
            dir_, "  slow: { provider: hubspot, base_url: '" + slow_->base_url() + "', retry: { max_attempts: 10, base_delay_ms: 10, max_delay_ms: 50 }, batch: { max_size: 1 } }\n"
                  "  fast: { provider: hubspot, base_url: '" + fast_->base_url() + "', retry: { max_attempts: 10, base_delay_ms: 10, max_delay_ms: 50 }, batch: { max_size: 1 } }\n");
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
    static std::string updated(int i, const std::string &last_name) {
        return R"({"entity":"contact","event":"updated","key":"k)" + std::to_string(i) + R"(","data":{"email":"d)" + std::to_string(i) + R"(@example.com","last_name":")" +
               last_name + R"("}})";
    }
    json lane_status(const std::string &name) { return json::parse(http_request("GET", base_ + "/v1/status").body)["connections"][name]; }

    // The slow CRM's first answer (set up by the caller) says "come back in about 8 s": its
    // rate is halved at once (HubSpot's default 10/s -> 5/s), the slow lane sends nothing
    // until the wait is over, and the fast lane delivers all 11 records meanwhile. The
    // order is read from the mocks' logs (one epoch clock), not from how long this took,
    // so a loaded machine cannot fail it.
    void expect_a_paused_lane_not_to_hold_up_the_others() {
        post(created(0));
        ASSERT_TRUE(wait_until([&] { return slow_->counters().injected_failures == 1; }));
        ASSERT_TRUE(wait_until([&] { return lane_status("slow")["current_rate_per_second"].get<double>() == 5; }, std::chrono::seconds(5)))
            << "AIMD halved it: " << lane_status("slow").dump();
        const auto status = lane_status("slow");
        EXPECT_GT(status["paused_until_ms"].get<int64_t>(), 0) << status.dump();
        EXPECT_DOUBLE_EQ(status["rate_per_second"].get<double>(), 10) << status.dump();
        for (int i = 1; i <= 10; ++i) post(created(i));
        ASSERT_TRUE(wait_until([&] { return fast_->record_count("contacts") == 11; }, std::chrono::seconds(30)));
        EXPECT_DOUBLE_EQ(lane_status("fast")["current_rate_per_second"].get<double>(), 10);
        ASSERT_TRUE(wait_until([&] { return slow_->record_count("contacts") == 11; }, std::chrono::seconds(40)));
        // The slow CRM's log: the refusal, then nothing until the wait was (about) over.
        const auto log = slow_->requests();
        ASSERT_GE(log.size(), 12u);
        EXPECT_NE(log[0].status / 100, 2) << "the first request was the refused one";
        EXPECT_GE(log[1].at_ms - log[0].at_ms, 7000) << "the lane resumed before Retry-After";
        // Every fast create arrived before the slow lane's first call after the pause.
        int64_t fast_last = 0;
        for (const auto &r : fast_->requests()) fast_last = std::max(fast_last, r.at_ms);
        EXPECT_LT(fast_last, log[1].at_ms) << "the fast lane waited for the paused one";
        EXPECT_EQ(engine_->state().dead_letters().count(), 0);
    }
    testkit::TempDir dir_;
    std::unique_ptr<mock::MockCrm> slow_, fast_;
    std::unique_ptr<engine::Engine> engine_;
    std::string base_;
};

TEST_F(Delivery, ALanePausedByRetryAfterDoesNotHoldUpTheOthers) {
    slow_->fail_next(1, 429, 8);  // "come back in 8 s"
    expect_a_paused_lane_not_to_hold_up_the_others();
}

// The same wait, said as a date: "come back at <now + 8 s>" (rounded up to the second).
TEST_F(Delivery, ALanePausedByARetryAfterDateDoesNotHoldUpTheOthers) {
    slow_->set_retry_after_http_date(true);
    slow_->fail_next(1, 429, 8);
    expect_a_paused_lane_not_to_hold_up_the_others();
}

// An overloaded server's 503 with Retry-After is a throttle like a 429: the lane pauses
// and lowers its rate while the others go on.
TEST_F(Delivery, ALanePausedByA503WithRetryAfterDoesNotHoldUpTheOthers) {
    slow_->fail_next(1, 503, 8);
    expect_a_paused_lane_not_to_hold_up_the_others();
}

TEST_F(Delivery, PerRecordOrderSurvivesRetries) {
    // The create fails three times before it lands (a create that failed with a 503 may
    // have been made, so its retries go as upserts).
    slow_->fail_next(3, 503);
    post(created(1));
    ASSERT_TRUE(wait_until([&] { return slow_->record_count("contacts") == 1 && engine_->state().tasks().count() == 0; }));
    // Then updates, each posted while the one before may still be in the lane: the first
    // PATCH fails twice, and the others must neither overtake it nor be lost.
    slow_->fail_next(2, 503);
    post(updated(1, "v1"));
    ASSERT_TRUE(wait_until([&] { return slow_->counters().injected_failures >= 4; })) << "the first PATCH was never refused";
    post(updated(1, "v2"));
    post(updated(1, "v3"));
    ASSERT_TRUE(wait_until([&] {
        const auto r = slow_->records("contacts");
        return r.size() == 1 && r[0].properties.at("lastname") == "v3" && engine_->state().tasks().count() == 0;
    }));
    // The log: failed POSTs, the POST that created it, then PATCHes only: refused ones, and
    // accepted ones whose last names never go backwards and end with the latest.
    bool created_seen = false;
    int patches_refused = 0;
    std::vector<std::string> patched;  // last names of the accepted PATCHes, in arrival order
    for (const auto &req : slow_->requests()) {
        if (req.method == "POST" && (req.status == 201 || (req.status == 200 && req.target.ends_with("/batch/upsert")))) created_seen = true;
        if (req.method != "PATCH") continue;
        EXPECT_TRUE(created_seen) << "a PATCH overtook the create";
        if (req.status == 503) ++patches_refused;
        if (req.status == 200) patched.push_back(json::parse(req.body)["properties"]["lastname"].get<std::string>());
    }
    EXPECT_TRUE(created_seen);
    EXPECT_EQ(patches_refused, 2) << "the updates went out after retries";
    ASSERT_FALSE(patched.empty()) << "no PATCH was ever accepted";
    EXPECT_TRUE(std::is_sorted(patched.begin(), patched.end())) << "an older update overtook a newer one";
    EXPECT_EQ(patched.back(), "v3");
    EXPECT_EQ(slow_->counters().created, 1u);
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
}

}  // namespace
