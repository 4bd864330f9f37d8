// What an operator alerts on, through the whole engine: per connection the histograms of
// acceptance -> delivered and of the CRM's answer times, the answers that throttled and
// the time they paused the lane, and the age of the oldest task still waiting.
#include "support/engine_harness.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sstream>

using namespace recsync;
using nlohmann::json;
using testkit::http_request;
using testkit::wait_until;

namespace {

class LaneMetrics : public testkit::OneCrmEngineTest {
protected:
    void SetUp() override {
        OneCrmEngineTest::SetUp();
        dir_.write("rules/crm.yaml",
                   "mappings:\n  m: { fields: [ { from: email, to: email } ] }\n"
                   "rules:\n  - { name: new, on: { entity: contact, event: created }, do: { action: create, target: crm, object: contacts, mapping: m } }\n");
    }
    void post_records(int n) {
        std::string body;
        for (int i = 0; i < n; ++i)
            body += R"({"entity":"contact","event":"created","key":"k)" + std::to_string(i) + R"(","data":{"email":"k)" + std::to_string(i) + R"(@example.com"}})" "\n";
        post(body);
    }
    // The value of the /metrics line that starts with `series` (name and labels); -1 if none.
    double metric(const std::string &series) {
        std::istringstream in(http_request("GET", base_ + "/metrics").body);
        for (std::string line; std::getline(in, line);)
            if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
        return -1;
    }
    json lane() { return json::parse(http_request("GET", base_ + "/v1/status").body).at("connections").at("crm"); }
};

TEST_F(LaneMetrics, HistogramsCountEveryDeliveryAndEveryCallAndThrottlesAreCounted) {
    // One record per call, so that calls and records can be counted apart.
    start_engine("batch: { max_size: 1 }");
    crm_->fail_next(1, 429, 1);  // the first call: too many, come back in a second
    post_records(5);
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 5 && engine_->state().tasks().count() == 0; }));
    const std::string c = "{connection=\"crm\"}";
    EXPECT_TRUE(wait_until([&] { return metric("recsync_delivery_latency_seconds_count" + c) == 5; })) << metric("recsync_delivery_latency_seconds_count" + c);
    EXPECT_EQ(metric("recsync_crm_answer_seconds_count" + c), 6) << "5 creates and the throttled call";
    EXPECT_EQ(metric("recsync_lane_throttled_total" + c), 1);
    EXPECT_EQ(metric("recsync_lane_throttled_seconds_total" + c), 1);
    // The throttled record waited its second: the slowest delivery is in a bucket past 1 s,
    // and the buckets are cumulative up to +Inf.
    EXPECT_LE(metric("recsync_delivery_latency_seconds_bucket{connection=\"crm\",le=\"0.5\"}"), 4);
    EXPECT_EQ(metric("recsync_delivery_latency_seconds_bucket{connection=\"crm\",le=\"+Inf\"}"), 5);
    EXPECT_GE(metric("recsync_delivery_latency_seconds_sum" + c), 1.0);
    const auto s = lane();
    EXPECT_EQ(s.at("throttled"), 1);
    EXPECT_EQ(s.at("throttled_ms"), 1000);
    EXPECT_GE(s.at("delivery_p99_ms").get<double>(), 1000);
}

TEST_F(LaneMetrics, TheOldestWaitingTasksAgeGrowsWhileTheCrmFailsAndIsZeroOnceDelivered) {
    start_engine("retry: { max_attempts: 50, base_delay_ms: 50, max_delay_ms: 200 }");
    crm_->fail_ratio(1.0, 503);
    post_records(3);
    EXPECT_TRUE(wait_until([&] { return lane().at("oldest_age_ms").get<int64_t>() >= 1500; }, std::chrono::seconds(10))) << lane().dump();
    EXPECT_NE(lane().value("last_error", "").find("503"), std::string::npos) << lane().dump();
    EXPECT_GE(metric("recsync_lane_oldest_task_age_seconds{connection=\"crm\"}"), 1.5);
    crm_->clear_faults();
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == 3; }));
    EXPECT_TRUE(wait_until([&] { return lane().at("oldest_age_ms") == 0; })) << lane().dump();
}

}  // namespace
