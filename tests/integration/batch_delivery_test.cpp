// Batches through the whole engine against the mock CRM's HubSpot batch endpoints: records
// ready together go in one call each of one object and action, and every record keeps its
// own result: a batch refused as a whole is split, a record the batch could not apply is
// dead-lettered alone with its own reason, nothing is made twice.
#include "support/engine_harness.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <set>
#include <thread>

using namespace recsync;
using nlohmann::json;
using testkit::http_request;
using testkit::wait_until;

namespace {

class BatchDelivery : public testkit::OneCrmEngineTest {
protected:
    void SetUp() override {
        OneCrmEngineTest::SetUp();
        dir_.write("rules/crm.yaml",
                   "mappings:\n  m: { fields: [ { from: email, to: email }, { from: last_name, to: lastname } ] }\n"
                   "rules:\n"
                   "  - { name: new, on: { entity: contact, event: created }, do: { action: create, target: crm, object: contacts, mapping: m } }\n"
                   "  - { name: upd, on: { entity: contact, event: updated }, do: { action: update, target: crm, object: contacts, mapping: m } }\n");
    }
    static std::string event(int i, const char *kind, const std::string &last_name) {
        return R"({"entity":"contact","event":")" + std::string(kind) + R"(","key":"k)" + std::to_string(i) + R"(","data":{"email":"d)" + std::to_string(i) +
               R"(@example.com","last_name":")" + last_name + R"("}})";
    }
    // `n` records' events in one request: ready together, so they can share calls.
    void post_all(int n, const char *kind, const std::string &last_name) {
        std::string body;
        for (int i = 0; i < n; ++i) body += event(i, kind, last_name) + "\n";
        post(body);
    }
    size_t requests_to(const std::string &path) {
        size_t n = 0;
        for (const auto &r : crm_->requests())
            if (r.target.rfind(path, 0) == 0) ++n;
        return n;
    }
    void expect_each_email_once(int n) {
        std::set<std::string> emails;
        for (const auto &r : crm_->records("contacts")) EXPECT_TRUE(emails.insert(r.properties.at("email")).second) << "made twice: " << r.properties.at("email");
        EXPECT_EQ(emails.size(), static_cast<size_t>(n));
    }
};

// 250 records ready at once: a few calls of at most 100, each record made once.
TEST_F(BatchDelivery, ReadyRecordsShareCallsAndEachIsMadeOnce) {
    // Slow enough that the records queue up behind the first call.
    start_engine("rate_limit: { per_second: 5, burst: 1 }");
    post_all(250, "created", "v0");
    ASSERT_TRUE(wait_until([&] { return engine_->state().tasks().count() == 0; }, std::chrono::seconds(60)));
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
    EXPECT_EQ(crm_->counters().created, 250u);
    expect_each_email_once(250);
    const size_t batches = requests_to("/crm/v3/objects/contacts/batch/create");
    EXPECT_GE(batches, 3u) << "at most 100 records per call";
    EXPECT_LE(crm_->counters().requests, 20u) << "records went one per call";
    EXPECT_GE(engine_->metrics().batched_records.load(), 200u);
    EXPECT_EQ(engine_->metrics().batch_record_failures.load(), 0u);
    const auto metrics = http_request("GET", base_ + "/metrics").body;
    EXPECT_NE(metrics.find("recsync_batch_calls_total "), std::string::npos);

    // Their updates go as batch/update, in order after the creates (each record's own).
    post_all(250, "updated", "v1");
    ASSERT_TRUE(wait_until([&] { return engine_->state().tasks().count() == 0; }, std::chrono::seconds(60)));
    EXPECT_GE(requests_to("/crm/v3/objects/contacts/batch/update"), 3u);
    for (const auto &r : crm_->records("contacts")) EXPECT_EQ(r.properties.at("lastname"), "v1") << r.properties.at("email");
    EXPECT_EQ(crm_->counters().created, 250u);
}

// Three of 100 contacts are already in the CRM (someone else made them): HubSpot refuses
// the whole batch/create with 409. The batch is split and each record sent alone: 97 are
// made, the 3 adopt the existing records, nothing is made twice or dead-lettered.
TEST_F(BatchDelivery, ABatchRefusedAsAWholeIsSplitAndNothingIsMadeTwice) {
    std::vector<std::string> existing;
    for (int i : {5, 50, 95}) {
        const auto r = http_request("POST", crm_->base_url() + "/crm/v3/objects/contacts",
                                    R"({"properties":{"email":"d)" + std::to_string(i) + R"(@example.com"},"associations":[]})", {"Content-Type: application/json"});
        ASSERT_EQ(r.status, 201) << r.body;
        existing.push_back(json::parse(r.body)["id"].get<std::string>());
    }
    start_engine("rate_limit: { per_second: 50, burst: 1 }");
    post_all(100, "created", "v0");
    ASSERT_TRUE(wait_until([&] { return engine_->state().tasks().count() == 0; }, std::chrono::seconds(60)));
    EXPECT_EQ(engine_->state().dead_letters().count(), 0);
    EXPECT_EQ(crm_->record_count("contacts"), 100u);
    EXPECT_EQ(crm_->counters().created, 100u) << "97 made by us, 3 before";
    expect_each_email_once(100);
    EXPECT_GE(crm_->counters().conflicts, 1u) << "a batch was refused";
    for (const auto &id : existing) EXPECT_TRUE(crm_->record("contacts", id)) << "the existing record was adopted, not replaced: " << id;
}

// Three of 100 linked records were deleted in the CRM: their updates fail inside the
// batch (207, OBJECT_NOT_FOUND) and go to the dead-letter queue alone, each with its own
// reason; the other 97 are updated.
TEST_F(BatchDelivery, ARecordTheBatchCouldNotApplyIsDeadLetteredAlone) {
    start_engine("rate_limit: { per_second: 5, burst: 1 }, retry: { max_attempts: 2, base_delay_ms: 10, max_delay_ms: 50 }");
    post_all(100, "created", "v0");
    ASSERT_TRUE(wait_until([&] { return engine_->state().tasks().count() == 0; }, std::chrono::seconds(60)));
    std::set<std::string> gone;
    for (const auto &r : crm_->records("contacts"))
        if (r.properties.at("email") == "d7@example.com" || r.properties.at("email") == "d42@example.com" || r.properties.at("email") == "d77@example.com") {
            ASSERT_EQ(http_request("DELETE", crm_->base_url() + "/crm/v3/objects/contacts/" + r.id).status, 204);
            gone.insert(r.properties.at("email"));
        }
    ASSERT_EQ(gone.size(), 3u);
    const auto failures_before = engine_->metrics().batch_record_failures.load();
    post_all(100, "updated", "v1");
    ASSERT_TRUE(wait_until([&] { return engine_->state().tasks().count() == 0; }, std::chrono::seconds(60)));
    const auto letters = engine_->state().dead_letters().list(10);
    ASSERT_EQ(letters.size(), 3u);
    for (const auto &dl : letters) {
        EXPECT_EQ(dl.response_status, 404) << dl.reason;
        EXPECT_NE(dl.reason.find("Object not found"), std::string::npos) << dl.reason;
        EXPECT_TRUE(gone.count("d" + dl.task.record_key.substr(1) + "@example.com")) << dl.task.record_key;
    }
    size_t updated = 0;
    for (const auto &r : crm_->records("contacts")) updated += r.properties.at("lastname") == "v1";
    EXPECT_EQ(updated, 97u);
    EXPECT_EQ(engine_->metrics().batch_record_failures.load() - failures_before, 3u);
}

// Short of tokens (burst 1: the next call would wait for one), a part-full batch is held
// for batch.max_wait_ms for more ready records: a record, then four more 200 ms later,
// go in one call, not two.
TEST_F(BatchDelivery, ALaneShortOfTokensHoldsAPartFullBatchForMoreRecords) {
    start_engine("rate_limit: { per_second: 5, burst: 1 }, batch: { max_wait_ms: 1500 }");
    const auto first_sent = std::chrono::steady_clock::now();
    post(event(0, "created", "v0"));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_EQ(crm_->counters().requests, 0u) << "the first record went alone";
    std::string more;
    for (int i = 1; i < 5; ++i) more += event(i, "created", "v0") + "\n";
    post(more);
    ASSERT_TRUE(wait_until([&] { return engine_->state().tasks().count() == 0; }, std::chrono::seconds(20)));
    const auto waited = std::chrono::steady_clock::now() - first_sent;
    EXPECT_EQ(crm_->counters().created, 5u);
    EXPECT_EQ(requests_to("/crm/v3/objects/contacts/batch/create"), 1u);
    EXPECT_EQ(crm_->counters().requests, 1u) << "five records, one call";
    EXPECT_GE(waited, std::chrono::milliseconds(1400)) << "the batch did not wait its max_wait_ms";
    expect_each_email_once(5);
}

// With tokens to spare a batch never waits: one record goes at once, whatever max_wait_ms.
TEST_F(BatchDelivery, ALaneWithTokensToSpareSendsWhatIsReadyAtOnce) {
    start_engine("rate_limit: { per_second: 100, burst: 10 }, batch: { max_wait_ms: 10000 }");
    post(event(0, "created", "v0"));
    ASSERT_TRUE(wait_until([&] { return crm_->counters().created == 1; }, std::chrono::seconds(5))) << "the record waited for its batch to fill";
    ASSERT_TRUE(wait_until([&] { return engine_->state().tasks().count() == 0; }, std::chrono::seconds(5)));
}

}  // namespace

namespace {

// Calls in flight follow the answer time: against a CRM that answers every call after
// 200 ms, a connection without max_in_flight grows past its 8; one with max_in_flight set
// keeps it as a fixed cap. (Counts, not speed: the mock's accepted connections show how
// many calls were open at once, since each keep-alive connection carries one at a time.)
class InFlightGrowth : public testkit::OneCrmEngineTest {
protected:
    void run(const std::string &connection_extra, int records) {
        crm_->stop();  // the suite's mock, made slow
        mock::MockCrmOptions o;
        o.threads = 2;
        o.delay_ms = 200;
        crm_ = std::make_unique<mock::MockCrm>(o);
        crm_->start();
        dir_.write("rules/crm.yaml",
                   "mappings:\n  m: { fields: [ { from: email, to: email } ] }\n"
                   "rules:\n"
                   "  - { name: new, on: { entity: contact, event: created }, do: { action: create, target: crm, object: contacts, mapping: m } }\n");
        start_engine("rate_limit: { per_second: 100000, burst: 1000 }, batch: { max_size: 1 }" + connection_extra);
        std::string body;
        for (int i = 0; i < records; ++i) body += R"({"entity":"contact","event":"created","key":"g)" + std::to_string(i) + R"(","data":{"email":"g)" + std::to_string(i) + "@example.com\"}}\n";
        post(body);
        ASSERT_TRUE(wait_until([&] { return engine_->state().tasks().count() == 0; }, std::chrono::seconds(120)));
        EXPECT_EQ(crm_->counters().created, static_cast<uint64_t>(records));
        const json status = json::parse(http_request("GET", base_ + "/v1/status").body)["connections"]["crm"];
        target_ = status["in_flight_target"].get<int>();
        EXPECT_GE(status["answer_ms"].get<double>(), 200.0);
    }
    int target_ = 0;
};

TEST_F(InFlightGrowth, ADefaultConnectionGrowsPastItsStartAgainstASlowCrm) {
    run("", 600);
    EXPECT_GT(crm_->counters().connections, 16u) << "calls in flight stayed near the 8 they start at";
    EXPECT_GT(target_, 8);
}

TEST_F(InFlightGrowth, AMaxInFlightSetIsAFixedCap) {
    run(", max_in_flight: 4", 60);
    EXPECT_LE(crm_->counters().connections, 4u);
    EXPECT_EQ(target_, 4);
}

}  // namespace
