// Exercises the mock CRM over real HTTP (libcurl against a loopback server on a free port).
// Timing assertions are one-sided or generous: the CI machine is small and shared.
#include "mock_crm.hpp"

#include <curl/curl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <locale>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using json = nlohmann::json;
using recsync::mock::MockCrm;
using recsync::mock::MockCrmOptions;

struct Resp {
    long status = 0;
    std::string body;
    std::map<std::string, std::string> headers;  // lower-case names
    CURLcode error = CURLE_OK;
    json j() const { return json::parse(body); }
};

// One curl handle per client so consecutive requests reuse the connection (keep-alive).
class Client {
public:
    Client() : curl_(curl_easy_init()) {}
    ~Client() { curl_easy_cleanup(curl_); }
    Client(const Client &) = delete;
    Client &operator=(const Client &) = delete;

    Resp request(const std::string &method, const std::string &url, const std::string &body = {}, const std::vector<std::string> &headers = {}) {
        Resp r;
        curl_easy_reset(curl_);
        curl_slist *list = nullptr;
        for (const auto &h : headers) list = curl_slist_append(list, h.c_str());
        if (!body.empty()) list = curl_slist_append(list, "Content-Type: application/json");
        curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
        curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, method.c_str());
        if (method == "GET") curl_easy_setopt(curl_, CURLOPT_HTTPGET, 1L);
        if (!body.empty() || method == "POST" || method == "PATCH") {
            curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.c_str());
            curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
        }
        curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, list);
        curl_easy_setopt(curl_, CURLOPT_TIMEOUT, 30L);
        curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, +[](char *p, size_t s, size_t n, void *ud) {
            static_cast<std::string *>(ud)->append(p, s * n);
            return s * n;
        });
        curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &r.body);
        curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, +[](char *p, size_t s, size_t n, void *ud) {
            std::string line(p, s * n);
            const auto colon = line.find(':');
            if (colon != std::string::npos) {
                std::string name = line.substr(0, colon);
                for (auto &c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                std::string value = line.substr(colon + 1);
                value.erase(0, value.find_first_not_of(' '));
                while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) value.pop_back();
                (*static_cast<std::map<std::string, std::string> *>(ud))[name] = value;
            }
            return s * n;
        });
        curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &r.headers);
        r.error = curl_easy_perform(curl_);
        curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &r.status);
        curl_slist_free_all(list);
        return r;
    }

private:
    CURL *curl_;
};

struct CurlGlobal {
    CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
    ~CurlGlobal() { curl_global_cleanup(); }
};
const CurlGlobal curl_global;

json contact(const std::string &email, json extra = json::object()) {
    json props = {{"email", email}, {"firstname", "Ada"}};
    props.update(extra);
    return json{{"properties", props}, {"associations", json::array()}};
}

class MockCrmTest : public ::testing::Test {
protected:
    void SetUp() override { start({}); }

    void start(MockCrmOptions o) {
        crm_.reset();
        o.address = "127.0.0.1";
        o.port = 0;
        crm_ = std::make_unique<MockCrm>(o);
        crm_->start();
        base_ = crm_->base_url();
    }

    Resp call(const std::string &method, const std::string &path, const std::string &body = {}, const std::vector<std::string> &headers = {}) {
        return client_.request(method, base_ + path, body, headers);
    }
    Resp post(const std::string &path, const json &body) { return call("POST", path, body.dump()); }
    Resp create(const std::string &email, const std::string &object = "contacts") {
        return post("/crm/v3/objects/" + object, contact(email));
    }

    std::unique_ptr<MockCrm> crm_;
    std::string base_;
    Client client_;
};

TEST_F(MockCrmTest, CreateGetPatchDeleteRoundTrip) {
    const auto c = create("ada@example.com");
    ASSERT_EQ(c.status, 201) << c.body;
    const auto created = c.j();
    const std::string id = created["id"];
    ASSERT_FALSE(id.empty());
    EXPECT_EQ(id.find_first_not_of("0123456789"), std::string::npos);
    EXPECT_EQ(created["properties"]["email"], "ada@example.com");
    EXPECT_EQ(created["properties"]["firstname"], "Ada");
    EXPECT_EQ(created["properties"]["hs_object_id"], id);
    EXPECT_TRUE(created["properties"].contains("createdate"));
    EXPECT_TRUE(created["properties"].contains("lastmodifieddate"));
    EXPECT_TRUE(created["createdAt"].is_string());
    EXPECT_TRUE(created["updatedAt"].is_string());
    EXPECT_EQ(created["archived"], false);

    const auto g = call("GET", "/crm/v3/objects/contacts/" + id);
    ASSERT_EQ(g.status, 200) << g.body;
    EXPECT_EQ(g.j(), created);

    const auto p = call("PATCH", "/crm/v3/objects/contacts/" + id, R"({"properties":{"lastname":"Lovelace","firstname":"Augusta"}})");
    ASSERT_EQ(p.status, 200) << p.body;
    EXPECT_EQ(p.j()["properties"]["lastname"], "Lovelace");
    EXPECT_EQ(p.j()["properties"]["firstname"], "Augusta");
    EXPECT_EQ(p.j()["properties"]["email"], "ada@example.com");  // merged, not replaced
    EXPECT_EQ(p.j()["createdAt"], created["createdAt"]);
    EXPECT_EQ(call("GET", "/crm/v3/objects/contacts/" + id).j()["properties"]["lastname"], "Lovelace");

    // HubSpot addresses a contact by email with ?idProperty=email.
    const auto by_email = call("PATCH", "/crm/v3/objects/contacts/ada%40example.com?idProperty=email", R"({"properties":{"phone":"1"}})");
    ASSERT_EQ(by_email.status, 200) << by_email.body;
    EXPECT_EQ(by_email.j()["id"], id);
    EXPECT_EQ(call("GET", "/crm/v3/objects/contacts/ada@example.com?idProperty=email").j()["properties"]["phone"], "1");

    const auto second = create("bob@example.com");
    ASSERT_EQ(second.status, 201);
    EXPECT_GT(std::stoull(second.j()["id"].get<std::string>()), std::stoull(id));

    const auto d = call("DELETE", "/crm/v3/objects/contacts/" + id);
    EXPECT_EQ(d.status, 204);
    EXPECT_TRUE(d.body.empty());
    EXPECT_EQ(call("GET", "/crm/v3/objects/contacts/" + id).status, 404);
    EXPECT_EQ(call("DELETE", "/crm/v3/objects/contacts/" + id).status, 404);
    EXPECT_EQ(call("PATCH", "/crm/v3/objects/contacts/" + id, R"({"properties":{}})").status, 404);
    EXPECT_EQ(call("GET", "/crm/v3/objects/contacts/not-a-number").status, 404);

    // Any object type works, and ids are shared across types (never reused).
    const auto company = post("/crm/v3/objects/companies", json{{"properties", {{"name", "Acme"}}}, {"associations", json::array()}});
    ASSERT_EQ(company.status, 201) << company.body;
    EXPECT_EQ(call("GET", "/crm/v3/objects/companies/" + company.j()["id"].get<std::string>()).status, 200);
    EXPECT_EQ(call("GET", "/crm/v3/objects/contacts/" + company.j()["id"].get<std::string>()).status, 404);

    const auto n = crm_->counters();
    EXPECT_EQ(n.created, 3u);
    EXPECT_EQ(n.updated, 2u);
    EXPECT_EQ(n.deleted, 1u);
    EXPECT_EQ(n.duplicates, 0u);
    EXPECT_EQ(crm_->record_count("contacts"), 1u);
    ASSERT_TRUE(crm_->record("contacts", second.j()["id"].get<std::string>()));
}

TEST_F(MockCrmTest, BadBodiesAre400NamingTheProblem) {
    struct Case {
        std::string method, path, body, expect;
    };
    const std::vector<Case> cases = {
        {"POST", "/crm/v3/objects/contacts", "{not json", "not valid JSON"},
        {"POST", "/crm/v3/objects/contacts", "[1,2]", "expected an object"},
        {"POST", "/crm/v3/objects/contacts", R"({"associations":[]})", "\"properties\""},
        {"POST", "/crm/v3/objects/contacts", R"({"properties":"x","associations":[]})", "\"properties\" must be an object"},
        {"POST", "/crm/v3/objects/contacts", R"({"properties":{"email":"a@b.c","age":42},"associations":[]})", "\"age\""},
        {"POST", "/crm/v3/objects/contacts", R"({"properties":{"flag":true},"associations":[]})", "\"flag\""},
        {"POST", "/crm/v3/objects/contacts", R"({"properties":{"x":null},"associations":[]})", "\"x\""},
        {"POST", "/crm/v3/objects/contacts", R"({"properties":{"email":"a@b.c"}})", "\"associations\""},
        {"POST", "/crm/v3/objects/contacts", R"({"properties":{},"associations":{}})", "\"associations\" must be an array"},
        {"POST", "/crm/v3/objects/contacts/batch/upsert", R"({})", "\"inputs\""},
        {"POST", "/crm/v3/objects/contacts/batch/upsert", R"({"inputs":[{"idProperty":"email","properties":{}}]})", "inputs[0].id"},
        {"POST", "/crm/v3/objects/contacts/batch/upsert", R"({"inputs":[{"idProperty":"email","id":"a@b","properties":{"n":1}}]})", "\"n\""},
    };
    for (const auto &c : cases) {
        const auto r = call(c.method, c.path, c.body);
        ASSERT_EQ(r.status, 400) << c.body << " -> " << r.body;
        const auto j = r.j();
        EXPECT_EQ(j["status"], "error");
        EXPECT_EQ(j["category"], "VALIDATION_ERROR");
        EXPECT_NE(j["message"].get<std::string>().find(c.expect), std::string::npos) << c.body << " -> " << j["message"];
    }
    // PATCH needs properties too (no associations though).
    const auto id = create("p@example.com").j()["id"].get<std::string>();
    const auto r = call("PATCH", "/crm/v3/objects/contacts/" + id, R"({"props":{}})");
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.j()["message"].get<std::string>().find("\"properties\""), std::string::npos);
    EXPECT_EQ(crm_->record_count(), 1u);
    EXPECT_EQ(crm_->counters().bad_requests, cases.size() + 1);
}

TEST_F(MockCrmTest, DuplicateEmailIs409AndCounted) {
    const auto first = create("dup@example.com");
    ASSERT_EQ(first.status, 201);
    const std::string id = first.j()["id"];

    const auto again = create("DUP@example.com");  // emails compare case-insensitively, as in HubSpot
    ASSERT_EQ(again.status, 409) << again.body;
    EXPECT_EQ(again.j()["category"], "CONFLICT");
    EXPECT_EQ(again.j()["message"], "Contact already exists. Existing ID: " + id);
    EXPECT_EQ(create("dup@example.com").status, 409);
    EXPECT_EQ(crm_->counters().duplicates, 2u);
    EXPECT_EQ(crm_->record_count("contacts"), 1u);

    // Empty emails never collide; other object types have their own index.
    EXPECT_EQ(create("").status, 201);
    EXPECT_EQ(create("").status, 201);
    EXPECT_EQ(create("dup@example.com", "deals").status, 201);

    // A PATCH onto a taken email conflicts but is not a duplicate create.
    const auto other = create("other@example.com").j()["id"].get<std::string>();
    EXPECT_EQ(call("PATCH", "/crm/v3/objects/contacts/" + other, R"({"properties":{"email":"dup@example.com"}})").status, 409);
    // Deleting the original frees its email.
    ASSERT_EQ(call("DELETE", "/crm/v3/objects/contacts/" + id).status, 204);
    EXPECT_EQ(create("dup@example.com").status, 201);
    const auto n = crm_->counters();
    EXPECT_EQ(n.duplicates, 2u);
    EXPECT_EQ(n.conflicts, 3u);
}

TEST_F(MockCrmTest, BatchUpsertCreatesAndUpdatesByEmail) {
    const auto existing = create("old@example.com").j()["id"].get<std::string>();
    const json body = {{"inputs",
                        {{{"idProperty", "email"}, {"id", "OLD@example.com"}, {"properties", {{"firstname", "Updated"}}}},
                         {{"idProperty", "email"}, {"id", "new@example.com"}, {"properties", {{"firstname", "New"}}}}}}};
    const auto r = post("/crm/v3/objects/contacts/batch/upsert", body);
    ASSERT_EQ(r.status, 200) << r.body;
    const auto j = r.j();
    EXPECT_EQ(j["status"], "COMPLETE");
    ASSERT_EQ(j["results"].size(), 2u);
    EXPECT_EQ(j["results"][0]["id"], existing);
    EXPECT_EQ(j["results"][0]["new"], false);
    EXPECT_EQ(j["results"][0]["properties"]["firstname"], "Updated");
    EXPECT_EQ(j["results"][1]["new"], true);
    EXPECT_EQ(j["results"][1]["properties"]["email"], "new@example.com");
    EXPECT_EQ(crm_->record_count("contacts"), 2u);
    EXPECT_EQ(crm_->counters().duplicates, 0u);

    // Upserting again updates; duplicate ids in one batch and oversize batches are rejected whole.
    EXPECT_EQ(post("/crm/v3/objects/contacts/batch/upsert", body).j()["results"][1]["new"], false);
    const json twice = {{"inputs",
                         {{{"idProperty", "email"}, {"id", "x@example.com"}, {"properties", json::object()}},
                          {{"idProperty", "email"}, {"id", "X@example.com"}, {"properties", json::object()}}}}};
    EXPECT_EQ(post("/crm/v3/objects/contacts/batch/upsert", twice).status, 400);
    json big = {{"inputs", json::array()}};
    for (int i = 0; i < 101; ++i)
        big["inputs"].push_back({{"idProperty", "email"}, {"id", "u" + std::to_string(i) + "@example.com"}, {"properties", json::object()}});
    EXPECT_EQ(post("/crm/v3/objects/contacts/batch/upsert", big).status, 400);
    EXPECT_EQ(crm_->record_count("contacts"), 2u);
    const auto n = crm_->counters();
    EXPECT_EQ(n.created, 2u);
    EXPECT_EQ(n.updated, 3u);
}

TEST_F(MockCrmTest, AuthRequiresTheBearerToken) {
    MockCrmOptions o;
    o.token = "s3cret";
    start(o);
    EXPECT_EQ(create("a@example.com").status, 401);
    const auto wrong = call("POST", "/crm/v3/objects/contacts", contact("a@example.com").dump(), {"Authorization: Bearer nope"});
    EXPECT_EQ(wrong.status, 401);
    EXPECT_EQ(wrong.j()["category"], "INVALID_AUTHENTICATION");
    EXPECT_EQ(call("POST", "/crm/v3/objects/contacts", contact("a@example.com").dump(), {"Authorization: s3cret"}).status, 401);
    EXPECT_EQ(call("POST", "/crm/v3/objects/contacts", contact("a@example.com").dump(), {"Authorization: Bearer s3cret"}).status, 201);
    // Admin endpoints never need the token.
    EXPECT_EQ(call("GET", "/_mock/stats").status, 200);
    EXPECT_EQ(crm_->counters().unauthorized, 3u);
    EXPECT_EQ(crm_->record_count(), 1u);
}

TEST_F(MockCrmTest, RateLimitAnswers429WithRetryAfterThenRecovers) {
    // Set through the admin endpoint to cover it; 2/s with a burst of 3.
    ASSERT_EQ(post("/_mock/faults", json{{"rate_per_second", 2}, {"rate_burst", 3}}).status, 200);
    int ok = 0;
    Resp limited;
    for (int i = 0; i < 200 && limited.status != 429; ++i) {
        auto r = create("r" + std::to_string(i) + "@example.com");
        if (r.status == 201) ++ok;
        else limited = std::move(r);
    }
    ASSERT_EQ(limited.status, 429) << "the bucket never ran dry";
    EXPECT_GE(ok, 3);  // the burst, plus whatever refilled meanwhile
    const auto j = limited.j();
    EXPECT_EQ(j["status"], "error");
    EXPECT_EQ(j["message"], "You have reached your secondly limit.");
    EXPECT_EQ(j["category"], "RATE_LIMITS");
    ASSERT_TRUE(limited.headers.count("retry-after"));
    const int retry_after = std::stoi(limited.headers.at("retry-after"));
    EXPECT_GE(retry_after, 1);
    EXPECT_LE(retry_after, 1);  // needs at most one token at 2/s
    // Admin endpoints are never limited.
    EXPECT_EQ(call("GET", "/_mock/stats").status, 200);
    EXPECT_GE(crm_->counters().rejected_429, 1u);

    std::this_thread::sleep_for(std::chrono::seconds(retry_after) + std::chrono::milliseconds(200));
    EXPECT_EQ(create("after@example.com").status, 201);

    // A slow bucket reports a longer wait: 0.2/s needs up to 5 s for the next token.
    crm_->set_rate_limit(0.2, 1);
    EXPECT_EQ(create("slow1@example.com").status, 201);
    const auto slow = create("slow2@example.com");
    ASSERT_EQ(slow.status, 429);
    const int slow_retry = std::stoi(slow.headers.at("retry-after"));
    EXPECT_GE(slow_retry, 1);
    EXPECT_LE(slow_retry, 5);
    EXPECT_EQ(create("slow3@example.com").status, 429);  // still empty: rejections take no token

    crm_->set_rate_limit(0);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(create("free" + std::to_string(i) + "@example.com").status, 201);
}

TEST_F(MockCrmTest, FailNextAndFailRatioInjection) {
    const auto set = post("/_mock/faults", json{{"fail_next", 2}, {"status", 503}, {"retry_after", 2}});
    ASSERT_EQ(set.status, 200) << set.body;
    EXPECT_EQ(set.j()["fail_next"], 2);
    for (int i = 0; i < 2; ++i) {
        const auto r = create("f@example.com");
        EXPECT_EQ(r.status, 503);
        EXPECT_EQ((r.headers.count("retry-after") ? r.headers.at("retry-after") : ""), "2");
    }
    EXPECT_EQ(create("f@example.com").status, 201);
    EXPECT_EQ(crm_->counters().injected_failures, 2u);
    EXPECT_EQ(crm_->record_count(), 1u);  // failed requests changed nothing

    crm_->fail_next(1, 429);  // an injected 429 looks like HubSpot's, without Retry-After unless given
    const auto r429 = create("g@example.com");
    EXPECT_EQ(r429.status, 429);
    EXPECT_EQ(r429.j()["category"], "RATE_LIMITS");
    EXPECT_FALSE(r429.headers.count("retry-after"));
    EXPECT_EQ(crm_->counters().rejected_429, 0u);  // only the limiter counts there

    crm_->fail_ratio(1.0, 500);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(create("h@example.com").status, 500);
    crm_->fail_ratio(0);
    EXPECT_EQ(create("h@example.com").status, 201);
    EXPECT_EQ(crm_->counters().injected_failures, 8u);

    // A ratio in between fails some but not all (200 tries; both outcomes near-certain).
    crm_->fail_ratio(0.5, 502);
    int failed = 0;
    for (int i = 0; i < 200; ++i) failed += call("GET", "/crm/v3/objects/contacts/1").status == 502;
    EXPECT_GT(failed, 0);
    EXPECT_LT(failed, 200);
    crm_->clear_faults();

    EXPECT_EQ(post("/_mock/faults", json{{"fail_nxt", 1}}).status, 400);
    EXPECT_EQ(post("/_mock/faults", json{{"fail_ratio", 2}}).status, 400);
    EXPECT_EQ(post("/_mock/faults", json{{"status", 503}}).status, 400);
}

// HubSpot's rate-limit headers, computed from the real bucket: its size, the whole tokens
// left after the request, and how long an empty bucket takes to fill.
TEST_F(MockCrmTest, RateLimitHeadersDescribeTheBucket) {
    EXPECT_FALSE(create("free@example.com").headers.count("x-hubspot-ratelimit-remaining"));  // no limit, no headers
    crm_->set_rate_limit(2, 4);
    int last = 4;
    for (int i = 0; i < 3; ++i) {
        const auto r = create("h" + std::to_string(i) + "@example.com");
        ASSERT_EQ(r.status, 201);
        ASSERT_TRUE(r.headers.count("x-hubspot-ratelimit-remaining"));
        EXPECT_EQ(r.headers.at("x-hubspot-ratelimit-max"), "4");
        EXPECT_EQ(r.headers.at("x-hubspot-ratelimit-interval-milliseconds"), "2000");
        const int remaining = std::stoi(r.headers.at("x-hubspot-ratelimit-remaining"));
        EXPECT_LT(remaining, last);  // each request takes a token; refill at 2/s is slower than us
        last = remaining;
    }
    // Drained: the 429 says so too.
    Resp limited;
    for (int i = 0; i < 50 && limited.status != 429; ++i) limited = create("x" + std::to_string(i) + "@example.com");
    ASSERT_EQ(limited.status, 429);
    EXPECT_EQ(limited.headers.at("x-hubspot-ratelimit-remaining"), "0");
}

TEST_F(MockCrmTest, ResetNextClosesTheConnectionWithoutAnAnswer) {
    const auto set = post("/_mock/faults", json{{"reset_next", 2}});
    ASSERT_EQ(set.status, 200) << set.body;
    EXPECT_EQ(set.j()["reset_next"], 2);
    // Each on a fresh connection: libcurl silently re-sends a request whose *reused*
    // connection died without an answer, which would hide the first reset.
    for (int i = 0; i < 2; ++i) {
        Client fresh;
        const auto r = fresh.request("POST", base_ + "/crm/v3/objects/contacts", contact("r@example.com").dump());
        EXPECT_NE(r.error, CURLE_OK);
        EXPECT_EQ(r.status, 0);
    }
    EXPECT_EQ(create("r@example.com").status, 201);  // a new connection, served
    EXPECT_EQ(crm_->counters().resets, 2u);
    EXPECT_EQ(crm_->record_count(), 1u);  // the reset requests never reached the application
    EXPECT_EQ(call("GET", "/_mock/stats").j()["resets"], 2);

    crm_->reset_ratio(1.0);
    EXPECT_NE(Client().request("POST", base_ + "/crm/v3/objects/contacts", contact("s@example.com").dump()).error, CURLE_OK);
    crm_->clear_faults();
    EXPECT_EQ(create("s@example.com").status, 201);
    EXPECT_EQ(post("/_mock/faults", json{{"reset_ratio", 1.5}}).status, 400);
}

TEST_F(MockCrmTest, HangNextAnswersNothingThenResets) {
    const auto set = post("/_mock/faults", json{{"hang_next", 1}, {"hang_ms", 300}});
    ASSERT_EQ(set.status, 200) << set.body;
    EXPECT_EQ(set.j()["hang_ms"], 300);
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = Client().request("POST", base_ + "/crm/v3/objects/contacts", contact("h@example.com").dump());  // fresh: see above
    EXPECT_NE(r.error, CURLE_OK);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(300));
    EXPECT_EQ(create("h@example.com").status, 201);
    EXPECT_EQ(crm_->counters().hangs, 1u);
    EXPECT_EQ(crm_->record_count(), 1u);
    EXPECT_EQ(post("/_mock/faults", json{{"hang_ms", 10}}).status, 400);  // needs hang_next or hang_ratio
}

// Seconds from now until an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"); fails the
// test and returns -1 if the text is not exactly one.
double seconds_until_http_date(const std::string &text) {
    const std::regex imf(R"(^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$)");
    EXPECT_TRUE(std::regex_match(text, imf)) << "not an IMF-fixdate: '" << text << "'";
    std::tm t{};
    std::istringstream in(text);
    in.imbue(std::locale::classic());
    in >> std::get_time(&t, "%a, %d %b %Y %H:%M:%S GMT");
    if (in.fail()) return -1;
    const auto at = std::chrono::system_clock::from_time_t(timegm(&t));
    return std::chrono::duration<double>(at - std::chrono::system_clock::now()).count();
}

// The two ways to say "slow down" differently: the limiter answers 503, and every
// Retry-After is an HTTP-date, both as options and at run time.
TEST_F(MockCrmTest, ThrottleStatusAndRetryAfterAsAnHttpDate) {
    const auto set = post("/_mock/faults", json{{"rate_per_second", 0.2}, {"rate_burst", 1}, {"throttle_status", 503}, {"retry_after_format", "http-date"}});
    ASSERT_EQ(set.status, 200) << set.body;
    EXPECT_EQ(set.j()["throttle_status"], 503);
    EXPECT_EQ(set.j()["retry_after_format"], "http-date");
    ASSERT_EQ(create("first@example.com").status, 201);
    const auto limited = create("second@example.com");
    ASSERT_EQ(limited.status, 503) << limited.body;
    EXPECT_EQ(limited.j()["message"], "The service is temporarily overloaded; retry later.");
    EXPECT_TRUE(limited.headers.count("x-hubspot-ratelimit-remaining")) << "still the bucket's headers";
    ASSERT_TRUE(limited.headers.count("retry-after"));
    // At 0.2/s the next token is up to 5 s away; rounded up to a whole second, never shorter.
    const double wait = seconds_until_http_date(limited.headers.at("retry-after"));
    EXPECT_GT(wait, 0.5);
    EXPECT_LE(wait, 7);
    EXPECT_EQ(crm_->counters().rejected_429, 1u) << "a limiter refusal, whatever its status";
    EXPECT_EQ(crm_->counters().injected_failures, 0u);

    // Injected failures take the same form: "come back in 4 s" as a date 4-5 s from now.
    crm_->set_rate_limit(0);
    crm_->fail_next(1, 429, 4);
    const auto injected = create("third@example.com");
    ASSERT_EQ(injected.status, 429);
    ASSERT_TRUE(injected.headers.count("retry-after"));
    const double injected_wait = seconds_until_http_date(injected.headers.at("retry-after"));
    EXPECT_GT(injected_wait, 3);  // 4 s, less the time the check took on a loaded machine
    EXPECT_LE(injected_wait, 5.5);

    // Back to seconds at run time; a reset goes back to the options (429, seconds).
    crm_->set_retry_after_http_date(false);
    crm_->fail_next(1, 503, 2);
    EXPECT_EQ(create("fourth@example.com").headers.at("retry-after"), "2");
    crm_->reset();
    EXPECT_EQ(crm_->faults().throttle_status, 429);
    EXPECT_FALSE(crm_->faults().retry_after_http_date);

    EXPECT_EQ(post("/_mock/faults", json{{"throttle_status", 500}}).status, 400);
    EXPECT_EQ(post("/_mock/faults", json{{"retry_after_format", "minutes"}}).status, 400);
    EXPECT_THROW(crm_->set_throttle_status(502), std::invalid_argument);

    // As options: a limiter that starts out answering 503 with dates.
    MockCrmOptions o;
    o.rate_per_second = 0.2;
    o.rate_burst = 1;
    o.throttle_status = 503;
    o.retry_after_http_date = true;
    start(o);
    ASSERT_EQ(create("a@example.com").status, 201);
    const auto again = create("b@example.com");
    EXPECT_EQ(again.status, 503);
    ASSERT_TRUE(again.headers.count("retry-after"));
    EXPECT_GT(seconds_until_http_date(again.headers.at("retry-after")), 0.5);
}

// A client that keeps its connection alive is counted once however many requests it makes.
TEST_F(MockCrmTest, ConnectionsCountsAcceptedConnectionsNotRequests) {
    const uint64_t before = crm_->counters().connections;
    for (int i = 0; i < 20; ++i) ASSERT_EQ(create("k" + std::to_string(i) + "@example.com").status, 201);
    EXPECT_EQ(crm_->counters().connections - before, 1u);
    Client other;
    EXPECT_EQ(other.request("GET", base_ + "/_mock/health").status, 200);
    EXPECT_EQ(crm_->counters().connections - before, 2u);
    EXPECT_EQ(call("GET", "/_mock/stats").j()["connections"], before + 2);
}

TEST_F(MockCrmTest, LatencyDelaysAnswers) {
    ASSERT_EQ(post("/_mock/faults", json{{"latency_ms", 300}}).status, 200);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(create("slow@example.com").status, 201);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(300));
    EXPECT_EQ(crm_->faults().latency_ms, 300);
    crm_->set_latency(std::chrono::milliseconds(0));
}

// delay_ms answers late without holding a thread: one I/O thread keeps 20 calls waiting
// at once (latency_ms would answer them one after another, 20 x 300 ms).
TEST_F(MockCrmTest, DelayAnswersLateHoldingNoThread) {
    MockCrmOptions o;
    o.threads = 1;
    o.delay_ms = 300;
    start(o);
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> clients;
    std::atomic<int> created{0};
    for (int i = 0; i < 20; ++i)
        clients.emplace_back([&, i] {
            Client c;
            if (c.request("POST", base_ + "/crm/v3/objects/contacts", contact("d" + std::to_string(i) + "@example.com").dump()).status == 201) ++created;
        });
    for (auto &t : clients) t.join();
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(created.load(), 20);
    EXPECT_GE(took, std::chrono::milliseconds(300)) << "answered before the delay";
    EXPECT_LT(took, std::chrono::milliseconds(3000)) << "the answers waited one after another";
    EXPECT_EQ(crm_->counters().created, 20u);
    crm_->stop();  // with answers none is waiting for: stops without sending them
}

TEST_F(MockCrmTest, ResetClearsEverything) {
    const auto id = std::stoull(create("a@example.com").j()["id"].get<std::string>());
    create("a@example.com");
    crm_->fail_next(5);
    crm_->set_rate_limit(1, 1);
    ASSERT_EQ(call("POST", "/_mock/reset").status, 200);
    EXPECT_EQ(crm_->record_count(), 0u);
    EXPECT_TRUE(crm_->requests().empty());
    const auto n = crm_->counters();
    EXPECT_EQ(n.requests + n.created + n.duplicates + n.conflicts + n.injected_failures, 0u);
    EXPECT_EQ(crm_->faults().fail_next, 0);
    EXPECT_EQ(crm_->faults().rate_per_second, 0);
    for (int i = 0; i < 5; ++i) ASSERT_EQ(create("a" + std::to_string(i) + "@example.com").status, 201);
    // Ids are never reused, so stale ids from before the reset cannot hit new records.
    EXPECT_GT(std::stoull(crm_->records("contacts").front().id), id);
    crm_->reset();
    EXPECT_EQ(crm_->record_count(), 0u);
}

TEST_F(MockCrmTest, InspectionEndpoints) {
    ASSERT_EQ(create("a@example.com").status, 201);
    ASSERT_EQ(create("b@example.com").status, 201);
    ASSERT_EQ(post("/crm/v3/objects/companies", json{{"properties", {{"name", "Acme"}}}, {"associations", json::array()}}).status, 201);
    ASSERT_EQ(create("a@example.com").status, 409);

    const auto contacts = call("GET", "/_mock/records?object=contacts").j();
    ASSERT_EQ(contacts.size(), 2u);
    EXPECT_EQ(contacts[0]["properties"]["email"], "a@example.com");
    EXPECT_EQ(contacts[1]["properties"]["email"], "b@example.com");
    EXPECT_EQ(contacts[0]["object"], "contacts");
    EXPECT_EQ(call("GET", "/_mock/records").j().size(), 3u);
    EXPECT_EQ(call("GET", "/_mock/records?object=companies").j()[0]["properties"]["name"], "Acme");
    EXPECT_TRUE(call("GET", "/_mock/records?object=deals").j().empty());

    const auto log = call("GET", "/_mock/requests").j();
    ASSERT_EQ(log.size(), 4u);  // admin calls are not logged
    EXPECT_EQ(log[0]["method"], "POST");
    EXPECT_EQ(log[0]["path"], "/crm/v3/objects/contacts");
    EXPECT_EQ(json::parse(log[0]["body"].get<std::string>()), contact("a@example.com"));
    EXPECT_EQ(log[0]["status"], 201);
    EXPECT_EQ(log[3]["status"], 409);
    EXPECT_LT(log[0]["seq"].get<uint64_t>(), log[3]["seq"].get<uint64_t>());
    EXPECT_EQ(crm_->requests().size(), 4u);

    const auto stats = call("GET", "/_mock/stats").j();
    EXPECT_EQ(stats["created"], 3);
    EXPECT_EQ(stats["duplicates"], 1);
    EXPECT_EQ(stats["requests"], 4);
    EXPECT_EQ(stats["records"]["contacts"], 2);
    for (const char *k : {"updated", "deleted", "rejected_429", "injected_failures"}) EXPECT_EQ(stats[k], 0) << k;
    EXPECT_EQ(call("GET", "/_mock/health").status, 200);
    EXPECT_EQ(call("GET", "/_mock/nope").status, 404);

    // Unknown API routes and methods.
    EXPECT_EQ(call("GET", "/crm/v3/objects/contacts/1/associations/x").status, 404);
    EXPECT_EQ(call("PUT", "/crm/v3/objects/contacts/1").status, 405);
    EXPECT_EQ(call("GET", "/crm/v4/objects/contacts/1").status, 404);
}

TEST_F(MockCrmTest, RequestLogCanBeDisabledAndIsCapped) {
    MockCrmOptions o;
    o.max_log_entries = 5;
    start(o);
    for (int i = 0; i < 10; ++i) call("GET", "/crm/v3/objects/contacts/" + std::to_string(i));
    const auto log = crm_->requests();
    ASSERT_EQ(log.size(), 5u);
    EXPECT_EQ(log.back().seq, 10u);
    EXPECT_EQ(log.front().seq, 6u);
    EXPECT_EQ(log.back().status, 404);
    EXPECT_EQ(crm_->counters().log_dropped, 5u);

    crm_->set_request_log(false);
    create("x@example.com");
    EXPECT_EQ(crm_->requests().size(), 5u);
    EXPECT_EQ(crm_->counters().requests, 11u);  // still counted
}

TEST_F(MockCrmTest, ConcurrentClientsAreConsistent) {
    MockCrmOptions o;
    o.threads = 4;
    start(o);
    constexpr int kThreads = 4, kPerThread = 50;
    std::atomic<int> created{0}, conflicts{0}, errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            Client c;
            for (int i = 0; i < kPerThread; ++i) {
                // Every thread also races for the same shared emails: exactly one create wins each.
                for (const auto &email : {"t" + std::to_string(t) + "-" + std::to_string(i) + "@example.com", "shared" + std::to_string(i) + "@example.com"}) {
                    const auto r = c.request("POST", base_ + "/crm/v3/objects/contacts", contact(email).dump());
                    if (r.status == 201) ++created;
                    else if (r.status == 409) ++conflicts;
                    else ++errors;
                }
            }
        });
    }
    for (auto &t : threads) t.join();
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(created.load(), kThreads * kPerThread + kPerThread);
    EXPECT_EQ(conflicts.load(), (kThreads - 1) * kPerThread);
    const auto records = crm_->records("contacts");
    ASSERT_EQ(records.size(), static_cast<size_t>(created.load()));
    std::set<std::string> ids, emails;
    for (const auto &r : records) {
        ids.insert(r.id);
        emails.insert(r.properties.at("email"));
    }
    EXPECT_EQ(ids.size(), records.size());
    EXPECT_EQ(emails.size(), records.size());
    EXPECT_EQ(crm_->counters().duplicates, static_cast<uint64_t>(conflicts.load()));
    EXPECT_EQ(crm_->requests().size(), static_cast<size_t>(2 * kThreads * kPerThread));
}

TEST_F(MockCrmTest, StopClosesAndStartServesAgainKeepingState) {
    ASSERT_EQ(create("keep@example.com").status, 201);
    crm_->stop();
    crm_->stop();  // idempotent
    const auto down = create("x@example.com");
    EXPECT_NE(down.error, CURLE_OK);  // refused (or reset on the kept-alive connection): nobody answers
    crm_->start();
    base_ = crm_->base_url();
    EXPECT_EQ(create("keep@example.com").status, 409);
    EXPECT_EQ(crm_->record_count(), 1u);
}

#ifdef MOCK_CRM_EXE
// The executable: --port-file with port 0, the admin API, clean exit on SIGTERM.
TEST(MockCrmExecutable, ServesAndStopsOnSigterm) {
    const auto dir = std::filesystem::temp_directory_path() / ("mock-crm-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    const auto port_file = (dir / "port").string();
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        execl(MOCK_CRM_EXE, MOCK_CRM_EXE, "--listen", "127.0.0.1:0", "--port-file", port_file.c_str(), "--token", "tok", "--rate", "1000",
              "--no-log", "--throttle-status", "503", "--retry-after-http-date", static_cast<char *>(nullptr));
        _exit(127);
    }
    std::string port;
    for (int i = 0; i < 300 && port.empty(); ++i) {  // up to 30 s on a busy machine
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        std::ifstream f(port_file);
        std::getline(f, port);
    }
    ASSERT_FALSE(port.empty()) << "no port file";
    Client c;
    const std::string base = "http://127.0.0.1:" + port;
    EXPECT_EQ(c.request("GET", base + "/_mock/health").status, 200);
    EXPECT_EQ(c.request("POST", base + "/crm/v3/objects/contacts", contact("a@example.com").dump()).status, 401);
    EXPECT_EQ(c.request("POST", base + "/crm/v3/objects/contacts", contact("a@example.com").dump(), {"Authorization: Bearer tok"}).status, 201);
    const auto stats = c.request("GET", base + "/_mock/stats").j();
    EXPECT_EQ(stats["created"], 1);
    EXPECT_TRUE(c.request("GET", base + "/_mock/requests").j().empty());  // --no-log
    const auto faults = c.request("GET", base + "/_mock/faults").j();
    EXPECT_EQ(faults["throttle_status"], 503);
    EXPECT_EQ(faults["retry_after_format"], "http-date");
    kill(pid, SIGTERM);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    std::filesystem::remove_all(dir);
}
#endif

}  // namespace

// ---- search for pollers: filters, one sort, paging, the 10,000 cap, index lag -----------

namespace {

json search_body(const json &filters, const std::string &sort_by, int64_t limit, const std::string &after = "0") {
    return {{"filterGroups", json::array({{{"filters", filters}}})},
            {"sorts", json::array({{{"propertyName", sort_by}, {"direction", "ASCENDING"}}})},
            {"limit", limit},
            {"after", after}};
}

json filter(const std::string &property, const std::string &op, const std::string &value) {
    return {{"propertyName", property}, {"operator", op}, {"value", value}};
}

}  // namespace

// A bulk import leaves thousands of records with one lastmodifieddate: paging with `after`
// ends at 10,000, paging by (timestamp, id) keys reaches every one of them once.
TEST_F(MockCrmTest, TwentyThousandRecordsSharingOneTimestampArePagedByKeyNotByOffset) {
    constexpr int64_t kAt = 1'700'000'000'000;
    crm_->set_fixed_modified(kAt);
    for (int b = 0; b < 200; ++b) {
        json inputs = json::array();
        for (int i = 0; i < 100; ++i) {
            const std::string email = "seed-" + std::to_string(b * 100 + i) + "@example.com";
            inputs.push_back({{"idProperty", "email"}, {"id", email}, {"properties", {{"email", email}}}});
        }
        ASSERT_EQ(post("/crm/v3/objects/contacts/batch/upsert", json{{"inputs", inputs}}).status, 200);
    }
    crm_->set_fixed_modified(std::nullopt);
    const json same_time = json::array({filter("lastmodifieddate", "EQ", std::to_string(kAt))});
    auto r = post("/crm/v3/objects/contacts/search", search_body(same_time, "hs_object_id", 200, "9800"));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.j()["total"], 20000);
    EXPECT_EQ(r.j()["paging"]["next"]["after"], "10000");
    r = post("/crm/v3/objects/contacts/search", search_body(same_time, "hs_object_id", 200, "10000"));
    EXPECT_EQ(r.status, 400) << "past the 10,000th result";
    EXPECT_NE(r.body.find("10000"), std::string::npos) << r.body;

    std::set<std::string> seen;
    std::string last = "0";
    int pages = 0;
    while (true) {
        json f = same_time;
        f.push_back(filter("hs_object_id", "GT", last));
        r = post("/crm/v3/objects/contacts/search", search_body(f, "hs_object_id", 200));
        ASSERT_EQ(r.status, 200) << r.body;
        const auto results = r.j()["results"];
        if (results.empty()) break;
        ++pages;
        for (const auto &rec : results) {
            EXPECT_TRUE(seen.insert(rec["id"].get<std::string>()).second) << "seen twice: " << rec["id"];
            EXPECT_EQ(rec["updatedAt"], "2023-11-14T22:13:20.000Z");
        }
        last = results.back()["id"].get<std::string>();
    }
    EXPECT_EQ(seen.size(), 20000u);
    EXPECT_EQ(pages, 100);
}

TEST_F(MockCrmTest, SearchComparesDatesAndIdsAsNumbersAndAllowsOneSort) {
    ASSERT_EQ(create("a@example.com").status, 201);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const auto b = create("b@example.com");
    ASSERT_EQ(b.status, 201);
    const auto r = post("/crm/v3/objects/contacts/search",
                        search_body(json::array({filter("lastmodifieddate", "GT", std::to_string(1'700'000'000'000))}), "lastmodifieddate", 10));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.j()["total"], 2);
    EXPECT_EQ(r.j()["results"][0]["properties"]["email"], "a@example.com") << "oldest first";
    json two_sorts = search_body(json::array(), "hs_object_id", 10);
    two_sorts["sorts"].push_back({{"propertyName", "lastmodifieddate"}, {"direction", "ASCENDING"}});
    EXPECT_EQ(post("/crm/v3/objects/contacts/search", two_sorts).status, 400);
    json bad_op = search_body(json::array({filter("email", "CONTAINS", "a")}), "hs_object_id", 10);
    EXPECT_EQ(post("/crm/v3/objects/contacts/search", bad_op).status, 400);
}

TEST_F(MockCrmTest, SearchDoesNotSeeWritesYoungerThanTheIndexLag) {
    crm_->set_search_lag(std::chrono::milliseconds(400));
    ASSERT_EQ(create("late@example.com").status, 201);
    const json by_email = search_body(json::array({filter("email", "EQ", "late@example.com")}), "hs_object_id", 10);
    EXPECT_EQ(post("/crm/v3/objects/contacts/search", by_email).j()["total"], 0) << "not indexed yet";
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    EXPECT_EQ(post("/crm/v3/objects/contacts/search", by_email).j()["total"], 1);
}
