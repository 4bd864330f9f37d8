// The REST mock as scripts run it (recsync-mock-crm --personality rest) and in process:
// the API's answers, its credential check, the 409 naming the existing record, the
// change listing across one timestamp, and its faults.
#include "rest_mock.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

namespace {

using json = nlohmann::json;
using recsync::testkit::http_request;

const std::vector<std::string> kAuthed = {"Content-Type: application/json", "Authorization: Bearer tok-1"};

TEST(RestMockExecutable, ServesTheBankingApiBehindItsToken) {
    recsync::testkit::TempDir dir;
    const std::string port_file = dir.file("port");
    recsync::testkit::ChildProcess mock({MOCK_CRM_EXE, "--personality", "rest", "--listen", "127.0.0.1:0", "--port-file", port_file, "--auth", "bearer", "--token", "tok-1"}, true);
    std::string port;
    ASSERT_TRUE(recsync::testkit::wait_until([&] {
        std::ifstream f(port_file);
        return static_cast<bool>(std::getline(f, port)) && !port.empty();
    })) << "no port file";
    const std::string base = "http://127.0.0.1:" + port;
    EXPECT_EQ(http_request("GET", base + "/v1/customers").status, 401);
    const auto made = http_request("POST", base + "/v1/customers", R"({"data":{"external_ref":"K1","full_name":"Ada"}})", kAuthed);
    ASSERT_EQ(made.status, 201) << made.body;
    const std::string id = json::parse(made.body)["data"]["id"];
    EXPECT_EQ(id, "cus_000001");
    const auto again = http_request("POST", base + "/v1/customers", R"({"data":{"external_ref":"K1"}})", kAuthed);
    EXPECT_EQ(again.status, 409);
    EXPECT_EQ(json::parse(again.body)["error"]["existing_id"], id);
    EXPECT_EQ(json::parse(http_request("GET", base + "/v1/customers?external_ref=K1", "", kAuthed).body)["data"].size(), 1u);
    EXPECT_EQ(http_request("DELETE", base + "/v1/customers/" + id, "", kAuthed).status, 204);
    EXPECT_EQ(http_request("DELETE", base + "/v1/customers/" + id, "", kAuthed).status, 404);
    EXPECT_TRUE(mock.stop());
}

TEST(RestMock, TheChangeListingPagesPastRecordsSharingATimestamp) {
    recsync::mock::RestMock mock;
    mock.start();
    mock.set_fixed_time(1'772'359'200'000);
    for (int i = 0; i < 3; ++i) mock.insert("customers", {{"external_ref", "K" + std::to_string(i)}});
    const std::string t = "2026-03-01T10%3A00%3A00.000Z";
    auto page = json::parse(http_request("GET", mock.base_url() + "/v1/customers?updated_since=" + t + "&page_size=2", "", {}).body);
    ASSERT_EQ(page["data"].size(), 2u);
    EXPECT_TRUE(page["has_more"]);
    page = json::parse(http_request("GET", mock.base_url() + "/v1/customers?updated_since=" + t + "&after_id=cus_000002&page_size=2", "", {}).body);
    ASSERT_EQ(page["data"].size(), 1u);
    EXPECT_EQ(page["data"][0]["id"], "cus_000003");
    mock.remove("customers", "cus_000003");
    page = json::parse(http_request("GET", mock.base_url() + "/v1/customers?updated_since=" + t + "&after_id=cus_000002", "", {}).body);
    EXPECT_TRUE(page["data"][0]["deleted"]);
}

TEST(RestMock, ALostAnswerMakesTheChangeAndResetsTheConnection) {
    recsync::mock::RestMock mock;
    mock.start();
    mock.lose_answer_next(1);
    EXPECT_EQ(http_request("POST", mock.base_url() + "/v1/customers", R"({"data":{"external_ref":"K"}})").status, 0);
    EXPECT_EQ(mock.record_count("customers"), 1u);
    EXPECT_EQ(mock.counters().lost_answers, 1u);
    mock.set_rate_limit(1, 1);
    EXPECT_EQ(http_request("GET", mock.base_url() + "/v1/customers/cus_000001").status, 200);
    const auto throttled = http_request("GET", mock.base_url() + "/v1/customers/cus_000001");
    EXPECT_EQ(throttled.status, 429);
    EXPECT_NE(throttled.headers.find("Retry-After: 1"), std::string::npos) << throttled.headers;
    EXPECT_NE(throttled.headers.find("X-RateLimit-Remaining: 0"), std::string::npos) << throttled.headers;
}

}  // namespace
