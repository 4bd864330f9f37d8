// check_access: which bearer token opens which endpoints, 401 and 403 with their reasons,
// and the open cases (no ingest tokens on loopback, no status token).
#include "server/access.hpp"

#include <gtest/gtest.h>

namespace {

using recsync::config::ServerConfig;
using recsync::server::Access;
using recsync::server::check_access;
using recsync::server::HttpRequest;

HttpRequest with_token(const std::string &token) {
    HttpRequest r;
    r.method = "POST";
    r.target = "/v1/events";
    if (!token.empty()) r.headers.emplace_back("Authorization", "Bearer " + token);
    return r;
}

ServerConfig secured() {
    ServerConfig s;
    s.admin_token = "admin-secret";
    s.status_token = "status-secret";
    s.ingest_tokens = {{"billing", "billing-secret"}, {"orders", "orders-secret"}};
    return s;
}

TEST(Access, EachIngestTokenSendsEventsUnderItsOwnName) {
    const auto s = secured();
    auto a = check_access(s, with_token("billing-secret"), Access::Ingest);
    EXPECT_TRUE(a.allowed);
    EXPECT_EQ(a.caller, "billing");
    a = check_access(s, with_token("orders-secret"), Access::Ingest);
    EXPECT_TRUE(a.allowed);
    EXPECT_EQ(a.caller, "orders");
}

TEST(Access, NoTokenOrAnUnknownOneIs401WithAChallenge) {
    const auto s = secured();
    for (const std::string token : {"", "billing-secreT", "billing-secret2", "billing"}) {
        const auto a = check_access(s, with_token(token), Access::Ingest);
        EXPECT_FALSE(a.allowed) << token;
        EXPECT_EQ(a.deny.status, 401) << token;
        EXPECT_NE(a.deny.body.find(token.empty() ? "token is required" : "unknown bearer token"), std::string::npos) << a.deny.body;
        ASSERT_EQ(a.deny.headers.size(), 1u);
        EXPECT_EQ(a.deny.headers[0].first, "WWW-Authenticate");
    }
    HttpRequest basic = with_token("");
    basic.headers.emplace_back("Authorization", "Basic YmlsbGluZy1zZWNyZXQ=");
    EXPECT_EQ(check_access(s, basic, Access::Ingest).deny.status, 401);
}

TEST(Access, ATokenForOtherEndpointsIs403) {
    const auto s = secured();
    auto a = check_access(s, with_token("admin-secret"), Access::Ingest);
    EXPECT_FALSE(a.allowed);
    EXPECT_EQ(a.deny.status, 403);
    EXPECT_NE(a.deny.body.find("not for sending events"), std::string::npos) << a.deny.body;
    a = check_access(s, with_token("billing-secret"), Access::Admin);
    EXPECT_EQ(a.deny.status, 403);
    a = check_access(s, with_token("status-secret"), Access::Admin);
    EXPECT_EQ(a.deny.status, 403);
    a = check_access(s, with_token("billing-secret"), Access::Status);
    EXPECT_EQ(a.deny.status, 403);
}

TEST(Access, StatusTakesTheStatusOrTheAdminToken) {
    const auto s = secured();
    EXPECT_TRUE(check_access(s, with_token("status-secret"), Access::Status).allowed);
    EXPECT_TRUE(check_access(s, with_token("admin-secret"), Access::Status).allowed);
    EXPECT_EQ(check_access(s, with_token(""), Access::Status).deny.status, 401);
    ServerConfig open = s;
    open.status_token.clear();
    EXPECT_TRUE(check_access(open, with_token(""), Access::Status).allowed) << "no status token: status is open";
}

TEST(Access, IngestIsOpenOnlyWithoutTokensOrWithIngestAuthNone) {
    ServerConfig s;
    EXPECT_TRUE(check_access(s, with_token(""), Access::Ingest).allowed);  // the config allows this on loopback only
    s = secured();
    s.ingest_auth = false;
    EXPECT_TRUE(check_access(s, with_token(""), Access::Ingest).allowed);
}

TEST(Access, AdminEndpointsAreOffWithoutAnAdminToken) {
    ServerConfig s = secured();
    s.admin_token.clear();
    const auto a = check_access(s, with_token("admin-secret"), Access::Admin);
    EXPECT_EQ(a.deny.status, 403);
    EXPECT_NE(a.deny.body.find("admin endpoints are disabled"), std::string::npos) << a.deny.body;
}

TEST(Access, SameSecretComparesContentsOfAnyLength) {
    EXPECT_TRUE(recsync::server::same_secret("abc", "abc"));
    EXPECT_FALSE(recsync::server::same_secret("abc", "abd"));
    EXPECT_FALSE(recsync::server::same_secret("abc", "abcd"));
    EXPECT_FALSE(recsync::server::same_secret("", "a"));
}

}  // namespace
