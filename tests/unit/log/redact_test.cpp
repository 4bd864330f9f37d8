// log::redact: registered secrets and the well-known secret shapes become [redacted];
// anything else passes untouched (and unallocated).
#include "log/redact.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace {

using recsync::log::redacted;

struct LogRedact : ::testing::Test {
    void SetUp() override { recsync::log::clear_secrets(); }
    void TearDown() override { recsync::log::clear_secrets(); }
};

TEST_F(LogRedact, NothingToRedactLeavesTheTextAndOut) {
    std::string out = "untouched";
    EXPECT_FALSE(recsync::log::redact("connection 'crm': 3 task(s) waiting; see https://api.example.com/v3/x", out));
    EXPECT_EQ(out, "untouched");
    // A keyword without a value is no secret.
    EXPECT_FALSE(recsync::log::redact("password authentication failed for user \"app\"; the bearer", out));
    EXPECT_FALSE(recsync::log::redact("grant_type=refresh_token", out));
    EXPECT_EQ(out, "untouched");
}

TEST_F(LogRedact, RegisteredSecretEverywhere) {
    recsync::log::register_secret("s3cr3t-value-9");
    EXPECT_EQ(redacted("a s3cr3t-value-9 b s3cr3t-value-9s3cr3t-value-9"), "a [redacted] b [redacted][redacted]");
    // The longer of two overlapping secrets goes whole.
    recsync::log::register_secret("s3cr3t-value-9-and-more");
    EXPECT_EQ(redacted("x s3cr3t-value-9-and-more y"), "x [redacted] y");
    // Too short to be told from ordinary text: not registered.
    recsync::log::register_secret("abc");
    EXPECT_EQ(redacted("abc"), "abc");
}

TEST_F(LogRedact, Bearer) {
    EXPECT_EQ(redacted("sent with Bearer eyJhbGciOi.J9-x_y/z+= to crm"), "sent with Bearer [redacted] to crm");
    EXPECT_EQ(redacted("bearer abc def"), "bearer [redacted] def");
}

TEST_F(LogRedact, AuthorizationHeader) {
    EXPECT_EQ(redacted("POST https://x/y\nAuthorization: Basic dXNlcjpwdw==\nContent-Type: application/json\n\n{}"),
              "POST https://x/y\nAuthorization: [redacted]\nContent-Type: application/json\n\n{}");
    EXPECT_EQ(redacted(R"({"headers":{"authorization":"Token abc 123","x":"y"}})"), R"({"headers":{"authorization":"[redacted]","x":"y"}})");
}

TEST_F(LogRedact, PasswordInDsns) {
    EXPECT_EQ(redacted("cannot connect (host=db port=5432 user=app password=pa55word dbname=x)"), "cannot connect (host=db port=5432 user=app password=[redacted] dbname=x)");
    EXPECT_EQ(redacted("host=db password='pa ss' user=u"), "host=db password='[redacted]' user=u");
    EXPECT_EQ(redacted("postgresql://app:pa55word@db:5432/x?sslmode=require"), "postgresql://app:[redacted]@db:5432/x?sslmode=require");
    EXPECT_EQ(redacted("postgresql://db/x?user=app&password=pa55word&sslmode=require"), "postgresql://db/x?user=app&password=[redacted]&sslmode=require");
    // A URL without a password keeps its user.
    EXPECT_EQ(redacted("postgresql://app@db/x"), "postgresql://app@db/x");
}

TEST_F(LogRedact, TokenFieldsInJsonAndForms) {
    EXPECT_EQ(redacted(R"(token answer: {"access_token":"at-1","refresh_token": "rt-2","expires_in":3600})"),
              R"(token answer: {"access_token":"[redacted]","refresh_token": "[redacted]","expires_in":3600})");
    EXPECT_EQ(redacted("grant_type=refresh_token&refresh_token=rt-2&client_id=c&client_secret=cs-3"),
              "grant_type=refresh_token&refresh_token=[redacted]&client_id=c&client_secret=[redacted]");
    // JSON inside a JSON string (escaped quotes).
    EXPECT_EQ(redacted(R"({"body":"{\"client_secret\":\"cs-3\"}"})"), R"({"body":"{\"client_secret\":\"[redacted]\"}"})");
}

TEST_F(LogRedact, RedactedTextIsLeftAsIs) {
    std::string out;
    EXPECT_FALSE(recsync::log::redact("Authorization: [redacted]\nBearer [redacted] password=[redacted]", out));
}

TEST_F(LogRedact, RegisterWhileOthersRedact) {
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([t] {
            for (int i = 0; i < 200; ++i) {
                recsync::log::register_secret("secret-" + std::to_string(t) + "-" + std::to_string(i));
                (void)redacted("nothing here secret-0-0");
            }
        });
    for (auto &th : threads) th.join();
    EXPECT_EQ(redacted("x secret-3-199 y secret-0-0"), "x [redacted] y [redacted]");
}

}  // namespace
