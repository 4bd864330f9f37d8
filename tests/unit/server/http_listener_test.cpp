// HttpListener: asynchronous handlers answer later, from another thread, and never leave
// a client hanging. parse_host_port: "host:port", "[v6]:port", ":port"; nothing else.
#include "server/http_listener.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using recsync::server::AsyncHttpHandler;
using recsync::server::HttpListener;
using recsync::server::HttpRequest;
using recsync::server::HttpResponse;
using recsync::server::ListenerOptions;
using recsync::server::Respond;

// An asynchronous handler: /later is answered 50 ms later by another thread (while the
// single I/O thread serves other requests), /dropped never answers, /throws throws.
class AsyncListener : public ::testing::Test {
protected:
    void SetUp() override {
        ListenerOptions o;
        o.threads = 1;
        listener_ = std::make_unique<HttpListener>(o, AsyncHttpHandler([this](HttpRequest &&req, Respond respond) {
            if (req.path() == "/later") {
                std::lock_guard l(m_);
                later_.emplace_back([body = req.body, respond = std::move(respond)] {
                    std::this_thread::sleep_for(std::chrono::milliseconds(50));
                    respond(HttpResponse::json(202, "{\"echo\":\"" + body + "\"}"));
                });
                return;
            }
            if (req.path() == "/dropped") return;  // `respond` goes out of scope unanswered
            if (req.path() == "/throws") throw std::runtime_error("handler bug");
            respond(HttpResponse::json(200, "{\"now\":true}"));
        }));
        listener_->start();
        base_ = "http://127.0.0.1:" + std::to_string(listener_->port());
    }
    void TearDown() override {
        {
            std::lock_guard l(m_);
            for (auto &t : later_) t.join();
        }
        listener_->stop();
    }
    std::unique_ptr<HttpListener> listener_;
    std::string base_;
    std::mutex m_;
    std::vector<std::thread> later_;
};

TEST_F(AsyncListener, AnswersFromAnotherThreadLaterWhileOthersAreServed) {
    std::thread slow([&] {
        const auto r = recsync::testkit::http_request("POST", base_ + "/later", "abc");
        EXPECT_EQ(r.status, 202);
        EXPECT_EQ(r.body, "{\"echo\":\"abc\"}");
    });
    // The one I/O thread is not held by the waiting request.
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const auto now = recsync::testkit::http_request("GET", base_ + "/now");
    EXPECT_EQ(now.status, 200);
    slow.join();
}

TEST_F(AsyncListener, AnUnansweredRequestGetsA500NotAHang) {
    const auto r = recsync::testkit::http_request("GET", base_ + "/dropped");
    EXPECT_EQ(r.status, 500);
    EXPECT_NE(r.body.find("never answered"), std::string::npos) << r.body;
}

TEST_F(AsyncListener, AThrowingHandlerGetsA500AndTheServerGoesOn) {
    EXPECT_EQ(recsync::testkit::http_request("GET", base_ + "/throws").status, 500);
    EXPECT_EQ(recsync::testkit::http_request("GET", base_ + "/now").status, 200);
}

using recsync::server::parse_host_port;
using HostPort = std::pair<std::string, uint16_t>;

TEST(ParseHostPort, Ipv4) {
    EXPECT_EQ(parse_host_port("127.0.0.1:8080"), (HostPort{"127.0.0.1", 8080}));
    EXPECT_EQ(parse_host_port("0.0.0.0:0"), (HostPort{"0.0.0.0", 0}));
    EXPECT_EQ(parse_host_port("localhost:65535"), (HostPort{"localhost", 65535}));
}

TEST(ParseHostPort, Ipv6InBrackets) {
    EXPECT_EQ(parse_host_port("[::1]:9"), (HostPort{"::1", 9}));
    EXPECT_EQ(parse_host_port("[fe80::1%eth0]:443"), (HostPort{"fe80::1%eth0", 443}));
    EXPECT_EQ(parse_host_port("[::]:8080"), (HostPort{"::", 8080}));
}

TEST(ParseHostPort, EmptyHostMeansLoopback) {
    EXPECT_EQ(parse_host_port(":80"), (HostPort{"127.0.0.1", 80}));
}

TEST(ParseHostPort, BadInputsThrowNamingTheInput) {
    for (const std::string bad : {"", "localhost", "127.0.0.1", "host:", "host:http", "host:80x", "host:65536", "host:-1", "host:99999999999",
                                  "[::1]", "[::1]:", "[::1]8080", "[::1:80", ":"}) {
        SCOPED_TRACE(bad);
        try {
            parse_host_port(bad);
            ADD_FAILURE() << "accepted '" << bad << "'";
        } catch (const std::invalid_argument &e) {
            EXPECT_NE(std::string(e.what()).find("'" + bad + "'"), std::string::npos) << e.what();
        }
    }
}

}  // namespace
