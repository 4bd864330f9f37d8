// Delivery against a misbehaving network and a server that says how much it allows:
// connection resets and hung requests are retried until every record has arrived once and
// in order; the rate-limit headers the plugin reports keep a lane from ever being refused.
#include "plugin/provider_instance.hpp"
#include "store/state_store.hpp"
#include "support/engine_harness.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <map>

using namespace recsync;
using nlohmann::json;
using testkit::http_request;
using testkit::wait_until;

namespace {

class DeliveryFaults : public testkit::OneCrmEngineTest {
protected:
    void SetUp() override {
        OneCrmEngineTest::SetUp();
        dir_.write("rules/crm.yaml",
                   "mappings:\n  m: { fields: [ { from: email, to: email }, { from: last_name, to: lastname } ] }\n"
                   "rules:\n"
                   "  - { name: new, on: { entity: contact, event: created }, do: { action: create, target: crm, object: contacts, mapping: m } }\n"
                   "  - { name: upd, on: { entity: contact, event: updated }, do: { action: update, target: crm, object: contacts, mapping: m } }\n");
    }
    static std::string event(int i, const char *kind, int version) {
        return R"({"entity":"contact","event":")" + std::string(kind) + R"(","key":"k)" + std::to_string(i) + R"(","data":{"email":"d)" + std::to_string(i) +
               R"(@example.com","last_name":"v)" + std::to_string(version) + R"("}})";
    }
};

// 20% of requests reset, 10% hang past the client's timeout: every record still arrives,
// once, with its updates applied in order, and nothing is dead-lettered.
TEST_F(DeliveryFaults, ResetsAndTimeoutsAreRetriedUntilEveryRecordArrivesOnce) {
    crm_->reset_ratio(0.2);
    crm_->hang_ratio(0.1, std::chrono::milliseconds(3000));
    start_engine("timeout_ms: 1000, connect_timeout_ms: 1000, max_in_flight: 8, retry: { max_attempts: 100, base_delay_ms: 5, max_delay_ms: 100 }");
    constexpr int kRecords = 60;
    // Three separate requests per record: the create, then two updates; whatever is still
    // waiting may be coalesced, but nothing may overtake the create or an earlier update.
    std::string creates, updates1, updates2;
    for (int i = 0; i < kRecords; ++i) {
        creates += event(i, "created", 0) + "\n";
        updates1 += event(i, "updated", 1) + "\n";
        updates2 += event(i, "updated", 2) + "\n";
    }
    post(creates);
    post(updates1);
    post(updates2);
    ASSERT_TRUE(wait_until(
        [&] {
            const auto recs = crm_->records("contacts");
            if (recs.size() != kRecords) return false;
            for (const auto &r : recs)
                if (r.properties.at("lastname") != "v2") return false;
            return true;
        },
        std::chrono::seconds(60)))
        << crm_->record_count("contacts") << " records";
    const auto c = crm_->counters();
    EXPECT_GT(c.resets, 0u) << "the faults never fired";
    EXPECT_GT(c.hangs, 0u) << "the faults never fired";
    EXPECT_EQ(c.created, static_cast<uint64_t>(kRecords)) << "a record was created twice";
    EXPECT_EQ(c.duplicates, 0u);
    EXPECT_EQ(engine_->state().dead_letter_count(), 0);
    // Per record: no PATCH reached the server before that record's create had succeeded
    // (as a create, or as the upsert a create is retried as when it may have been made).
    std::map<std::string, bool> created;  // email -> created
    for (const auto &req : crm_->requests()) {
        if (req.method == "POST" && req.status == 201) created[json::parse(req.body)["properties"]["email"].get<std::string>()] = true;
        if (req.method == "POST" && req.status == 200 && req.target.ends_with("/batch/upsert"))
            created[json::parse(req.body)["inputs"][0]["properties"]["email"].get<std::string>()] = true;
        if (req.method == "PATCH" && req.status == 200) {
            const auto email = json::parse(req.body)["properties"]["email"].get<std::string>();
            EXPECT_TRUE(created[email]) << "a PATCH for " << email << " overtook its create";
        }
    }
}

// The mock enforces 20/s (bucket of 10) and says so in HubSpot's headers; the lane is
// configured far faster. Fed a backlog, it keeps to what the server says remains: no 429.
TEST_F(DeliveryFaults, RateLimitHeadersKeepALaneUnderTheServersLimit) {
    if (!plugin::host_api()->set_rate_limit)
        GTEST_SKIP() << "the host api table does not offer set_rate_limit yet (core/plugin/provider_instance.cpp)";
    crm_->set_rate_limit(20, 10);
    start_engine("rate_limit: { per_second: 1000, burst: 1000 }, max_in_flight: 4");
    constexpr int kRecords = 80;
    std::string creates;
    for (int i = 0; i < kRecords; ++i) creates += event(i, "created", 0) + "\n";
    post(creates);
    ASSERT_TRUE(wait_until([&] { return crm_->record_count("contacts") == kRecords; }, std::chrono::seconds(60)));
    // Guaranteed: the mock reports its bucket as a window of 10 calls in 500 ms (the time
    // to refill); each call holds a place from its start until 500 ms after its answer, so
    // at most 10 ever count within 500 ms, which the bucket always allows. Lanes held
    // only by calls in flight are woken by their answers, or this would never finish.
    EXPECT_EQ(crm_->counters().rejected_429, 0u);
    EXPECT_EQ(engine_->state().dead_letter_count(), 0);
}

// A change that cannot be delivered within the connection's retry.max_age is dead-lettered
// with a reason naming it, long before max_attempts would have given up.
TEST_F(DeliveryFaults, RetriesStopAtMaxAge) {
    crm_->fail_ratio(1.0, 503);
    start_engine("retry: { max_attempts: 1000, base_delay_ms: 100, max_delay_ms: 400, max_age: 2s }");
    post(event(1, "created", 0));
    ASSERT_TRUE(wait_until([&] { return engine_->state().dead_letter_count() == 1; }, std::chrono::seconds(20)));
    const auto dl = engine_->state().dead_letters(10);
    ASSERT_EQ(dl.size(), 1u);
    EXPECT_NE(dl[0].reason.find("retry.max_age (2s)"), std::string::npos) << dl[0].reason;
    EXPECT_NE(dl[0].reason.find("503"), std::string::npos) << "the last failure is kept: " << dl[0].reason;
    EXPECT_LT(dl[0].task.attempts, 1000);
    EXPECT_GE(crm_->counters().injected_failures, 2u) << "it was retried before giving up";
    EXPECT_EQ(crm_->record_count("contacts"), 0u);
}

}  // namespace
