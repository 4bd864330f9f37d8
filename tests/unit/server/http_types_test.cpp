// HttpRequest helpers (header lookup, path, query parameters) and HttpResponse builders.
#include "server/http_types.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

using recsync::server::HttpRequest;
using recsync::server::HttpResponse;

HttpRequest request(std::string target) {
    HttpRequest r;
    r.method = "GET";
    r.target = std::move(target);
    return r;
}

TEST(HttpRequest, HeaderLookupIsCaseInsensitive) {
    HttpRequest r = request("/");
    r.headers = {{"Content-Type", "application/json"}, {"X-Recsync-Token", "abc"}, {"Authorization", "Bearer t"}};
    EXPECT_EQ(r.header("content-type"), "application/json");
    EXPECT_EQ(r.header("CONTENT-TYPE"), "application/json");
    EXPECT_EQ(r.header("x-recsync-token"), "abc");
    EXPECT_EQ(r.header("Authorization"), "Bearer t");
    EXPECT_EQ(r.header("Content"), "");  // prefix is not a match
    EXPECT_EQ(r.header("Content-Type-X"), "");
    EXPECT_EQ(r.header("missing"), "");
    EXPECT_TRUE(r.header("").empty());
}

TEST(HttpRequest, FirstOfRepeatedHeadersWins) {
    HttpRequest r = request("/");
    r.headers = {{"X-A", "1"}, {"x-a", "2"}};
    EXPECT_EQ(r.header("X-A"), "1");
}

TEST(HttpRequest, PathStripsTheQuery) {
    EXPECT_EQ(request("/v1/events").path(), "/v1/events");
    EXPECT_EQ(request("/v1/dead-letters?limit=10&after=5").path(), "/v1/dead-letters");
    EXPECT_EQ(request("/x?").path(), "/x");
    EXPECT_EQ(request("/").path(), "/");
    EXPECT_EQ(request("?a=1").path(), "");
    EXPECT_EQ(request("/a?b?c").path(), "/a");
}

TEST(HttpRequest, QueryParam) {
    const HttpRequest r = request("/v1/dead-letters?limit=10&after=5&flag&empty=&x=a=b");
    EXPECT_EQ(r.query_param("limit"), "10");
    EXPECT_EQ(r.query_param("after"), "5");
    EXPECT_EQ(r.query_param("flag"), "");
    EXPECT_EQ(r.query_param("empty"), "");
    EXPECT_EQ(r.query_param("x"), "a=b");  // only the first '=' splits
    EXPECT_EQ(r.query_param("missing"), "");
    EXPECT_EQ(r.query_param("lim"), "");     // no prefix matches
    EXPECT_EQ(r.query_param("limit=1"), "");
    EXPECT_EQ(r.query_param("LIMIT"), "");   // names are case-sensitive
}

TEST(HttpRequest, QueryParamEdgeCases) {
    EXPECT_EQ(request("/no-query").query_param("a"), "");
    EXPECT_EQ(request("/x?").query_param("a"), "");
    EXPECT_EQ(request("/x?a=1&a=2").query_param("a"), "1");  // first wins
    EXPECT_EQ(request("/x?&&a=3&").query_param("a"), "3");
    EXPECT_EQ(request("/x?b=%20y").query_param("b"), "%20y");  // not percent-decoded
    EXPECT_EQ(request("/x?ab=1&b=2").query_param("b"), "2");
}

TEST(HttpResponse, Builders) {
    const auto ok = HttpResponse::json(201, R"({"id":1})");
    EXPECT_EQ(ok.status, 201);
    EXPECT_EQ(ok.content_type, "application/json");
    EXPECT_EQ(ok.body, R"({"id":1})");

    const auto err = HttpResponse::error(422, "field 'email': \"quoted\" \n newline");
    EXPECT_EQ(err.status, 422);
    const auto body = nlohmann::json::parse(err.body);  // properly escaped JSON
    EXPECT_EQ(body, nlohmann::json({{"error", "field 'email': \"quoted\" \n newline"}}));
}

}  // namespace
