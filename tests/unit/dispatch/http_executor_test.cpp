// HttpExecutor against the mock CRM on loopback: answers come back whole, hundreds of
// calls at once all finish, wakeup() interrupts a poll, timeouts fire, and a server that
// closes kept-alive connections neither makes the executor spin nor breaks the next call
// (libcurl's socket interface over epoll, with registrations kept across calls), and a
// reused handle carries nothing over from its previous call.
#include "dispatch/http_executor.hpp"
#include "mock_crm/mock_crm.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using recsync::dispatch::HttpCall;
using recsync::dispatch::HttpExecutor;
using recsync::dispatch::HttpOutcome;
using recsync::mock::MockCrm;
using recsync::mock::MockCrmOptions;
using Clock = std::chrono::steady_clock;

HttpCall create_call(const std::string &base, uint64_t tag, const std::string &email) {
    HttpCall c;
    c.tag = tag;
    c.method = "POST";
    c.url = base + "/crm/v3/objects/contacts";
    c.body = nlohmann::json{{"properties", {{"email", email}}}, {"associations", nlohmann::json::array()}}.dump();
    c.headers = {{"Content-Type", "application/json", false}};
    c.timeout_ms = 5000;
    return c;
}

// Polls until `n` outcomes arrived or `limit` passed; counts the polls.
std::map<uint64_t, HttpOutcome> collect(HttpExecutor &http, size_t n, std::chrono::milliseconds limit = 10s, int *polls = nullptr) {
    std::map<uint64_t, HttpOutcome> out;
    const auto until = Clock::now() + limit;
    while (out.size() < n && Clock::now() < until) {
        for (auto &o : http.poll(100)) out.emplace(o.tag, std::move(o));
        if (polls) ++*polls;
    }
    return out;
}

class HttpExecutorTest : public ::testing::Test {
protected:
    void SetUp() override {
        MockCrmOptions o;
        o.threads = 2;
        crm_ = std::make_unique<MockCrm>(o);
        crm_->start();
    }
    void TearDown() override { crm_->stop(); }
    std::unique_ptr<MockCrm> crm_;
};

TEST_F(HttpExecutorTest, AnAnswerComesBackWithStatusHeadersBodyAndTheCall) {
    HttpExecutor http;
    http.start(create_call(crm_->base_url(), 7, "a@example.com"));
    auto out = collect(http, 1);
    ASSERT_EQ(out.size(), 1u);
    const auto &o = out.at(7);
    EXPECT_EQ(o.status, 201);
    EXPECT_NE(nlohmann::json::parse(o.body).value("id", ""), "");
    bool has_content_type = false;
    for (const auto &h : o.headers) has_content_type |= h.name == "Content-Type" || h.name == "content-type";
    EXPECT_TRUE(has_content_type);
    EXPECT_EQ(o.call.url, crm_->base_url() + "/crm/v3/objects/contacts");  // handed back
    EXPECT_EQ(http.in_flight(), 0u);
}

// Easy handles are reused without curl_easy_reset: whatever one call set (a body, a
// method, a send-once check) must not leak into the next call on the same handle.
TEST_F(HttpExecutorTest, AReusedHandleCarriesNothingOverFromTheCallBefore) {
    crm_->set_request_log(true);
    HttpExecutor http;
    auto run = [&](HttpCall c) {
        const uint64_t tag = c.tag;
        http.start(std::move(c));
        auto out = collect(http, 1);
        EXPECT_EQ(out.count(tag), 1u);
        return out.count(tag) ? out.at(tag) : HttpOutcome{};
    };
    auto created = run(create_call(crm_->base_url(), 1, "reuse@example.com"));
    ASSERT_EQ(created.status, 201);
    const std::string id = nlohmann::json::parse(created.body).value("id", "");
    HttpCall get;
    get.tag = 2;
    get.method = "GET";
    get.url = crm_->base_url() + "/crm/v3/objects/contacts/" + id;
    get.timeout_ms = 5000;
    EXPECT_EQ(run(get).status, 200);
    HttpCall del = get;
    del.tag = 3;
    del.method = "DELETE";
    EXPECT_EQ(run(del).status, 204);
    auto again = create_call(crm_->base_url(), 4, "reuse-2@example.com");
    again.send_once = true;
    EXPECT_EQ(run(again).status, 201);
    const auto log = crm_->requests();
    ASSERT_EQ(log.size(), 4u);
    EXPECT_EQ(log[0].method, "POST");
    EXPECT_EQ(log[1].method, "GET");
    EXPECT_EQ(log[1].body, "") << "the create's body went out again with the GET";
    EXPECT_EQ(log[2].method, "DELETE");
    EXPECT_EQ(log[2].body, "");
    EXPECT_EQ(log[3].method, "POST");
    EXPECT_NE(log[3].body.find("reuse-2@example.com"), std::string::npos);
}

// A reset on a kept-alive connection before any answer makes libcurl send the call again
// on a new one, silently (unless send_once), and count it per handle: only curl_easy_reset
// clears that count, so a reused handle would fail its sixth such call ("tried 5 times").
TEST_F(HttpExecutorTest, SilentResendsDoNotAddUpOverAHandlesLife) {
    HttpExecutor http;
    uint64_t tag = 1;
    for (int round = 0; round < 8; ++round) {
        http.start(create_call(crm_->base_url(), tag, "warm" + std::to_string(round) + "@example.com"));  // a kept-alive connection
        auto warm = collect(http, 1);
        ASSERT_EQ(warm.count(tag), 1u);
        ASSERT_EQ(warm.at(tag).status, 201);
        ++tag;
        crm_->reset_next(1);
        http.start(create_call(crm_->base_url(), tag, "again" + std::to_string(round) + "@example.com"));
        auto out = collect(http, 1);
        ASSERT_EQ(out.count(tag), 1u);
        EXPECT_EQ(out.at(tag).status, 201) << "round " << round << ": " << out.at(tag).transport_error;
        ++tag;
    }
    EXPECT_EQ(crm_->counters().resets, 8u);
}

TEST_F(HttpExecutorTest, HundredsOfCallsAtOnceAllFinish) {
    crm_->set_latency(20ms);
    HttpExecutor http;
    constexpr int kCalls = 300;
    for (int i = 0; i < kCalls; ++i) http.start(create_call(crm_->base_url(), static_cast<uint64_t>(i + 1), "c" + std::to_string(i) + "@example.com"));
    auto out = collect(http, kCalls, 30s);
    ASSERT_EQ(out.size(), static_cast<size_t>(kCalls));
    for (const auto &[tag, o] : out) EXPECT_EQ(o.status, 201) << tag << ": " << o.transport_error;
    EXPECT_EQ(crm_->record_count("contacts"), static_cast<size_t>(kCalls));
    EXPECT_EQ(crm_->counters().duplicates, 0u);
}

TEST_F(HttpExecutorTest, WakeupInterruptsAPoll) {
    HttpExecutor http;
    std::thread waker([&] {
        std::this_thread::sleep_for(50ms);
        http.wakeup();
    });
    const auto start = Clock::now();
    http.poll(10'000);
    waker.join();
    EXPECT_LT(Clock::now() - start, 5s) << "the poll should have returned on the wakeup, not after 10 s";
}

TEST_F(HttpExecutorTest, TimeBlockedInAPollIsReportedOnce) {
    HttpExecutor http;
    http.poll(0);
    EXPECT_LT(http.take_waited(), 5ms) << "a poll that does not wait is not idle time";
    http.poll(60);  // nothing in flight: blocks the whole 60 ms
    EXPECT_GE(http.take_waited(), 50ms);
    EXPECT_EQ(http.take_waited(), std::chrono::steady_clock::duration::zero()) << "taken: reset";
}

TEST_F(HttpExecutorTest, ACallThatGetsNoAnswerTimesOut) {
    crm_->hang_next(1, 3s);
    HttpExecutor http;
    auto call = create_call(crm_->base_url(), 1, "slow@example.com");
    call.timeout_ms = 200;
    http.start(std::move(call));
    auto out = collect(http, 1, 10s);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out.at(1).status, 0);
    EXPECT_FALSE(out.at(1).transport_error.empty());
}

// A server that never completes the TCP handshake: a listening socket whose accept queue
// (backlog 0) is already full, so the kernel drops further SYNs. The call must end at its
// connect timeout, long before its total timeout.
TEST_F(HttpExecutorTest, AConnectionThatIsNeverEstablishedEndsAtTheConnectTimeout) {
    const int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
    ASSERT_EQ(listen(listener, 0), 0);
    socklen_t len = sizeof a;
    getsockname(listener, reinterpret_cast<sockaddr *>(&a), &len);
    std::vector<int> fillers;  // fill the accept queue; nobody accepts
    for (int i = 0; i < 3; ++i) {
        const int f = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(f, reinterpret_cast<sockaddr *>(&a), sizeof a);
        fillers.push_back(f);
    }
    std::this_thread::sleep_for(100ms);

    HttpExecutor http;
    auto call = create_call("http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)), 1, "never@example.com");
    call.connect_timeout_ms = 300;
    call.timeout_ms = 20000;
    const auto t0 = Clock::now();
    http.start(std::move(call));
    auto out = collect(http, 1, 30s);
    const auto took = Clock::now() - t0;
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out.at(1).status, 0);
    EXPECT_NE(out.at(1).transport_error.find("onnect"), std::string::npos) << out.at(1).transport_error;
    EXPECT_LT(took, 10s) << "ended by the total timeout, not the connect timeout";
    for (int f : fillers) close(f);
    close(listener);
}

// The server closes the idle kept-alive connections (it stops, then comes back on the same
// port): an idle executor must not be woken over and over by those sockets, and the next
// call must go out on a new connection.
TEST_F(HttpExecutorTest, AServerClosingIdleConnectionsNeitherSpinsNorBreaksTheNextCall) {
    HttpExecutor http;
    for (uint64_t i = 1; i <= 4; ++i) http.start(create_call(crm_->base_url(), i, "k" + std::to_string(i) + "@example.com"));
    ASSERT_EQ(collect(http, 4).size(), 4u);
    const uint16_t port = crm_->port();
    crm_->stop();  // closes every connection, the kept-alive ones included
    int polls = 0;
    const auto start = Clock::now();
    while (Clock::now() - start < 500ms) {
        EXPECT_TRUE(http.poll(100).empty());
        ++polls;
    }
    EXPECT_LE(polls, 12) << "poll(100) kept returning early: a closed idle socket is still reported";
    MockCrmOptions o;
    o.port = port;
    crm_ = std::make_unique<MockCrm>(o);
    crm_->start();
    http.start(create_call(crm_->base_url(), 9, "after@example.com"));
    auto out = collect(http, 1);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out.at(9).status, 201) << out.at(9).transport_error;
}

}  // namespace
