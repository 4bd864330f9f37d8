// ScopedLogContext: set for its scope, the enclosing values back at exit, per thread.
#include "log/log_context.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>

namespace {

using recsync::log::current_context;
using recsync::log::ScopedLogContext;

TEST(LogContext, GuardSetsAndRestores) {
    EXPECT_TRUE(current_context().connection.empty());
    {
        ScopedLogContext outer("crm", "k1", "r1", 2);
        EXPECT_EQ(current_context().connection, "crm");
        EXPECT_EQ(current_context().record_key, "k1");
        EXPECT_EQ(current_context().rule, "r1");
        EXPECT_EQ(current_context().attempt, 2);
        {
            // Empty fields keep the enclosing values; given ones replace them.
            ScopedLogContext inner("erp", {}, "r2");
            EXPECT_EQ(current_context().connection, "erp");
            EXPECT_EQ(current_context().record_key, "k1");
            EXPECT_EQ(current_context().rule, "r2");
            EXPECT_EQ(current_context().attempt, 2);
        }
        EXPECT_EQ(current_context().connection, "crm");
        EXPECT_EQ(current_context().rule, "r1");
    }
    EXPECT_TRUE(current_context().connection.empty());
    EXPECT_TRUE(current_context().record_key.empty());
    EXPECT_TRUE(current_context().rule.empty());
    EXPECT_EQ(current_context().attempt, 0);
}

TEST(LogContext, RestoresWhenLeftByAnException) {
    try {
        ScopedLogContext ctx("crm", "k1");
        throw std::runtime_error("x");
    } catch (const std::runtime_error &) {
    }
    EXPECT_TRUE(current_context().connection.empty());
    EXPECT_TRUE(current_context().record_key.empty());
}

TEST(LogContext, IsPerThread) {
    ScopedLogContext ctx("crm", "k1");
    std::string seen = "unset";
    std::thread([&] { seen = std::string(current_context().connection); }).join();
    EXPECT_EQ(seen, "");
    EXPECT_EQ(current_context().connection, "crm");
}

}  // namespace
