// read_identity: an event's id and its place among its record's changes.
#include "pipeline/event_identity.hpp"
#include "pipeline/plan.hpp"

#include <gtest/gtest.h>

namespace {

using nlohmann::json;
using recsync::model::Order;
using recsync::pipeline::EventError;
using recsync::pipeline::read_identity;

std::string refusal(const json &event) {
    try {
        read_identity(event);
    } catch (const EventError &e) {
        EXPECT_EQ(e.status(), 422);
        return e.what();
    }
    return "";
}

TEST(EventIdentity, NoneIsAllowed) {
    const auto id = read_identity(json{{"key", "k"}});
    EXPECT_TRUE(id.id.empty());
    EXPECT_EQ(id.order.kind, Order::None);
}

TEST(EventIdentity, AnIdIsAStringOrAnInteger) {
    EXPECT_EQ(read_identity(json{{"id", "evt-1"}}).id, "evt-1");
    EXPECT_EQ(read_identity(json{{"id", 1234}}).id, "1234");
    EXPECT_NE(refusal(json{{"id", ""}}).find("'id' must not be empty"), std::string::npos);
    EXPECT_NE(refusal(json{{"id", json::array()}}).find("'id' must be a string or an integer"), std::string::npos);
    EXPECT_NE(refusal(json{{"id", std::string(300, 'x')}}).find("longer than 256 bytes"), std::string::npos);
}

TEST(EventIdentity, AVersionIsANonNegativeInteger) {
    const auto id = read_identity(json{{"version", 17}});
    EXPECT_EQ(id.order, (Order{Order::Version, 17}));
    EXPECT_NE(refusal(json{{"version", "17"}}).find("'version' must be an integer"), std::string::npos);
    EXPECT_NE(refusal(json{{"version", 1.5}}).find("'version' must be an integer"), std::string::npos);
    EXPECT_NE(refusal(json{{"version", -1}}).find("must not be negative"), std::string::npos);
    EXPECT_NE(refusal(json::parse(R"({"version":18446744073709551615})")).find("larger than"), std::string::npos);
}

TEST(EventIdentity, OccurredAtIsAnRfc3339DateTimeInMilliseconds) {
    const auto z = read_identity(json{{"occurred_at", "2026-12-01T09:30:00.250Z"}});
    EXPECT_EQ(z.order.kind, Order::Time);
    EXPECT_EQ(z.order.value, 1796117400250);
    const auto offset = read_identity(json{{"occurred_at", "2026-12-01T10:30:00.250+01:00"}});
    EXPECT_EQ(offset.order, z.order) << "the same instant";
    EXPECT_EQ(read_identity(json{{"occurred_at", "2026-12-01T09:30:00.250123Z"}}).order, z.order) << "microseconds are cut to milliseconds";
    for (const char *bad : {"2026-12-01", "2026-12-01T09:30:00", "yesterday", "2026-13-01T09:30:00Z"})
        EXPECT_NE(refusal(json{{"occurred_at", bad}}).find("occurred_at"), std::string::npos) << bad;
    EXPECT_NE(refusal(json{{"occurred_at", 12}}).find("RFC 3339"), std::string::npos);
}

TEST(EventIdentity, AVersionOrdersEvenWithOccurredAt) {
    const auto id = read_identity(json{{"version", 3}, {"occurred_at", "2026-12-01T09:30:00Z"}});
    EXPECT_EQ(id.order, (Order{Order::Version, 3}));
}

}  // namespace
