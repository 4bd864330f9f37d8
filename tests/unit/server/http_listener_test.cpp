// parse_host_port: "host:port", "[v6]:port", ":port"; everything else is rejected.
#include "server/http_listener.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace {

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
