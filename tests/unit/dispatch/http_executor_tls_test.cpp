// HttpExecutor over TLS, against real TLS servers on loopback with a certificate made for
// the test: verification is on (a certificate nobody vouches for is refused), a
// connection's own CA file (`tls: { ca_file }`) is trusted for its calls only, and HTTP/2
// is negotiated where the server offers it (ALPN). Servers: `openssl s_server` (HTTP/1)
// and `nghttpd` (HTTP/2), both installed by scripts/deps.
#include "dispatch/http_executor.hpp"
#include "support/test_support.hpp"

#include <curl/curl.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using recsync::dispatch::HttpCall;
using recsync::dispatch::HttpExecutor;
using recsync::dispatch::HttpOutcome;
namespace testkit = recsync::testkit;

bool accepts(uint16_t port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0;
    close(fd);
    return ok;
}

// A server process on a loopback port, stopped (SIGKILL) when the test ends.
class Server {
public:
    Server(const std::vector<std::string> &argv, uint16_t port) : port(port), process_(argv, /*quiet=*/true) {}
    bool up() const { return process_.started() && testkit::wait_until([&] { return accepts(port); }, 10s); }
    const uint16_t port;

private:
    testkit::ChildProcess process_;
};

class HttpExecutorTls : public ::testing::Test {
protected:
    void SetUp() override {
        // A self-signed certificate for 127.0.0.1: its own CA, trusted only where a call says so.
        const auto [rc, out] = testkit::run_command("cd " + dir_.path() +
                                                    " && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 2"
                                                    " -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>&1");
        ASSERT_EQ(rc, 0) << out;
        dir_.write("www/index.html", "hello over tls\n");
    }

    HttpOutcome get(const std::string &url, const std::string &ca_file) {
        HttpCall c;
        c.tag = ++tag_;
        c.method = "GET";
        c.url = url;
        c.ca_file = ca_file;
        c.timeout_ms = 10000;
        http_.start(std::move(c));
        const auto until = std::chrono::steady_clock::now() + 15s;
        while (std::chrono::steady_clock::now() < until)
            for (auto &o : http_.poll(100))
                if (o.tag == tag_) return o;
        ADD_FAILURE() << "no answer from " << url;
        return {};
    }

    testkit::TempDir dir_;
    HttpExecutor http_;
    uint64_t tag_ = 0;
};

TEST_F(HttpExecutorTls, AnUnknownCertificateIsRefusedAndAConnectionsOwnCaIsTrusted) {
    const uint16_t port = testkit::free_port();
    Server server({"openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(port), "-cert", dir_.file("cert.pem"), "-key", dir_.file("key.pem"),
                   "-www", "-quiet"},
                  port);
    ASSERT_TRUE(server.up()) << "openssl s_server did not start";
    const std::string url = "https://127.0.0.1:" + std::to_string(port) + "/";

    // The system's CAs do not vouch for it: refused, never answered.
    const auto refused = get(url, "");
    EXPECT_EQ(refused.status, 0);
    EXPECT_NE(refused.transport_error.find("certificate"), std::string::npos) << refused.transport_error;

    // With the connection's CA file the same server is trusted, and the call is answered.
    const auto trusted = get(url, dir_.file("cert.pem"));
    EXPECT_EQ(trusted.status, 200) << trusted.transport_error;

    // A reused handle does not keep the last call's CA: refused again.
    const auto again = get(url, "");
    EXPECT_EQ(again.status, 0) << "a handle kept the previous call's CA file";
    EXPECT_NE(again.transport_error.find("certificate"), std::string::npos) << again.transport_error;
}

TEST_F(HttpExecutorTls, Http2IsNegotiatedWhereTheServerOffersIt) {
    const uint16_t port = testkit::free_port();
    // Debian puts it in /usr/sbin, which a non-root PATH may lack.
    const std::string nghttpd = access("/usr/sbin/nghttpd", X_OK) == 0 ? "/usr/sbin/nghttpd" : "nghttpd";
    Server server({nghttpd, "-a", "127.0.0.1", "-d", dir_.file("www"), std::to_string(port), dir_.file("key.pem"), dir_.file("cert.pem")}, port);
    ASSERT_TRUE(server.up()) << "nghttpd did not start (scripts/deps installs nghttp2-server)";
    const auto o = get("https://127.0.0.1:" + std::to_string(port) + "/index.html", dir_.file("cert.pem"));
    ASSERT_EQ(o.status, 200) << o.transport_error;
    EXPECT_EQ(o.body, "hello over tls\n");
    EXPECT_EQ(o.http_version, CURL_HTTP_VERSION_2_0);

    // And HTTP/1.1 where it is not offered (s_server speaks no h2).
    const uint16_t p1 = testkit::free_port();
    Server h1({"openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(p1), "-cert", dir_.file("cert.pem"), "-key", dir_.file("key.pem"), "-www", "-quiet"},
              p1);
    ASSERT_TRUE(h1.up());
    const auto o1 = get("https://127.0.0.1:" + std::to_string(p1) + "/", dir_.file("cert.pem"));
    ASSERT_EQ(o1.status, 200) << o1.transport_error;
    EXPECT_NE(o1.http_version, CURL_HTTP_VERSION_2_0);
}

}  // namespace
