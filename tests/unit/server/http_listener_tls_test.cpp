// HttpListener with TLS (ListenerOptions::tls): HTTPS only, a plain HTTP request answered
// 400 saying so without reaching the handler, client certificates required when a client
// CA is set, and certificates rotated by reload_tls() for new connections.
#include "server/http_listener.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

namespace {

using recsync::server::HttpListener;
using recsync::server::HttpRequest;
using recsync::server::HttpResponse;
using recsync::server::ListenerOptions;
using recsync::server::TlsFiles;
namespace testkit = recsync::testkit;

class TlsListener : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_EQ(testkit::make_test_certificates(dir_.path()), ""); }

    void start(bool client_certificates) {
        ListenerOptions o;
        o.threads = 1;
        o.tls = TlsFiles{dir_.file("server.pem"), dir_.file("server.key"), client_certificates ? dir_.file("ca.pem") : ""};
        listener_ = std::make_unique<HttpListener>(o, [this](const HttpRequest &req) {
            ++handled_;
            return HttpResponse::json(200, "{\"path\":\"" + std::string(req.path()) + "\"}");
        });
        listener_->start();
    }
    std::string url(const std::string &scheme) const { return scheme + "://127.0.0.1:" + std::to_string(listener_->port()) + "/hello"; }
    testkit::TlsClient trusting() const { return {dir_.file("ca.pem"), "", ""}; }

    testkit::TempDir dir_;
    std::unique_ptr<HttpListener> listener_;
    std::atomic<int> handled_{0};
};

TEST_F(TlsListener, AnswersOverHttpsWithVerificationOn) {
    start(false);
    const auto r = testkit::http_request("GET", url("https"), "", {}, trusting());
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, R"({"path":"/hello"})");
    // A client that does not trust the certificate's CA gets nothing (its TLS refuses).
    EXPECT_EQ(testkit::http_request("GET", url("https")).status, 0);
    // Keep-alive over TLS: two requests, one connection's worth of answers.
    EXPECT_EQ(testkit::http_request("GET", url("https"), "", {}, trusting()).status, 200);
    EXPECT_EQ(handled_, 2);
}

TEST_F(TlsListener, APlainHttpRequestIsToldToUseHttpsAndNeverHandled) {
    start(false);
    const auto r = testkit::http_request("POST", url("http"), R"({"id":"e1"})");
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.body.find("HTTPS only"), std::string::npos) << r.body;
    EXPECT_EQ(handled_, 0);
}

TEST_F(TlsListener, ClientCertificatesAreRequiredWhenAClientCaIsSet) {
    start(true);
    EXPECT_EQ(testkit::http_request("GET", url("https"), "", {}, trusting()).status, 0) << "no client certificate: the handshake fails";
    EXPECT_EQ(handled_, 0);
    const auto r = testkit::http_request("GET", url("https"), "", {}, {dir_.file("ca.pem"), dir_.file("client.pem"), dir_.file("client.key")});
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(handled_, 1);
    // A certificate the CA did not sign (the server's own key pair is signed by it, so make
    // a self-signed one) is refused too.
    const auto [rc, out] = testkit::run_command("cd '" + dir_.path() +
                                                "' && openssl req -x509 -newkey rsa:2048 -nodes -keyout rogue.key -out rogue.pem -days 2 -subj /CN=rogue");
    ASSERT_EQ(rc, 0) << out;
    EXPECT_EQ(testkit::http_request("GET", url("https"), "", {}, {dir_.file("ca.pem"), dir_.file("rogue.pem"), dir_.file("rogue.key")}).status, 0);
    EXPECT_EQ(handled_, 1);
}

TEST_F(TlsListener, ReloadTlsServesTheRotatedCertificateAndKeepsTheOldOneOnABadFile) {
    start(false);
    ASSERT_EQ(testkit::http_request("GET", url("https"), "", {}, trusting()).status, 200);
    // Rotate: a new CA and certificate written over the same files.
    testkit::TempDir next;
    ASSERT_EQ(testkit::make_test_certificates(next.path()), "");
    const auto opts = std::filesystem::copy_options::overwrite_existing;
    std::filesystem::copy_file(next.file("server.pem"), dir_.file("server.pem"), opts);
    std::filesystem::copy_file(next.file("server.key"), dir_.file("server.key"), opts);
    listener_->reload_tls();
    EXPECT_EQ(testkit::http_request("GET", url("https"), "", {}, {next.file("ca.pem"), "", ""}).status, 200);
    EXPECT_EQ(testkit::http_request("GET", url("https"), "", {}, trusting()).status, 0) << "the old CA no longer vouches";
    // A broken key file: the reload throws naming it, and the rotated certificate still serves.
    dir_.write("server.key", "not a key\n");
    try {
        listener_->reload_tls();
        FAIL() << "a broken key file was accepted";
    } catch (const std::runtime_error &e) {
        EXPECT_NE(std::string(e.what()).find("server.key"), std::string::npos) << e.what();
    }
    EXPECT_EQ(testkit::http_request("GET", url("https"), "", {}, {next.file("ca.pem"), "", ""}).status, 200);
}

TEST(TlsListenerStart, AMissingCertificateFailsTheStartNamingTheFile) {
    ListenerOptions o;
    o.tls = TlsFiles{"/nonexistent/cert.pem", "/nonexistent/key.pem", ""};
    HttpListener listener(o, [](const HttpRequest &) { return HttpResponse::json(200, "{}"); });
    try {
        listener.start();
        FAIL() << "started without a certificate";
    } catch (const std::runtime_error &e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/cert.pem"), std::string::npos) << e.what();
    }
}

}  // namespace
