// The conformance kit's sample records: describe's own, else one built from the schema,
// else a reason (never a silent pass); and where a token may appear in a request.
#include "plugin/conformance_recorder.hpp"
#include "plugin/conformance_samples.hpp"

#include <gtest/gtest.h>

using namespace recsync::plugin;
using nlohmann::json;

TEST(ConformanceSamples, DescribesOwnSampleWins) {
    const auto s = sample_for({{"schema", {{"type", "object"}, {"required", {"a"}}}}, {"sample", {{"name", "Ada"}}}});
    ASSERT_TRUE(s.record);
    EXPECT_TRUE(s.from_describe);
    EXPECT_EQ(*s.record, json({{"name", "Ada"}}));
}

TEST(ConformanceSamples, ASampleThatIsNotAnObjectIsThePluginsBug) {
    const auto s = sample_for({{"schema", {{"type", "object"}}}, {"sample", "Ada"}});
    EXPECT_FALSE(s.record);
    EXPECT_TRUE(s.malformed);
    EXPECT_NE(s.why_none.find("not a JSON object"), std::string::npos) << s.why_none;
}

TEST(ConformanceSamples, BuiltFromTheSchemasRequiredProperties) {
    const json schema = {{"type", "object"},
                         {"required", {"email", "count", "stage", "nested", "flag"}},
                         {"properties",
                          {{"email", {{"type", "string"}, {"format", "email"}}},
                           {"count", {{"type", "integer"}, {"minimum", 3}}},
                           {"stage", {{"enum", {"lead", "customer"}}}},
                           {"flag", {{"type", {"boolean", "null"}}}},
                           {"nested", {{"type", "object"}, {"required", {"id"}}, {"properties", {{"id", {{"type", "string"}}}}}}},
                           {"optional", {{"type", "string"}}}}}};
    const auto s = sample_for({{"schema", schema}});
    ASSERT_TRUE(s.record) << s.why_none;
    EXPECT_FALSE(s.from_describe);
    EXPECT_EQ(*s.record, json({{"email", "conformance@example.com"}, {"count", 3}, {"stage", "lead"}, {"flag", true}, {"nested", {{"id", "conformance"}}}}));
}

TEST(ConformanceSamples, NoSampleWhenARequiredPropertysTypeCannotBeGuessed) {
    const json schema = {{"type", "object"}, {"required", {"tags"}}, {"properties", {{"tags", {{"type", "array"}}}}}};
    const auto s = sample_for({{"schema", schema}});
    EXPECT_FALSE(s.record);
    EXPECT_FALSE(s.malformed);
    EXPECT_NE(s.why_none.find("the schema.tags: cannot guess a value for type 'array'"), std::string::npos) << s.why_none;
}

TEST(ConformanceSamples, ASchemaOfAScalarGivesNoRecord) {
    std::string why;
    EXPECT_FALSE(sample_from_schema({{"type", "string"}}, why));
    EXPECT_EQ(why, "the schema is not an object's");
}

TEST(ConformanceTokenLeak, OnlySecretHeadersMayCarryTheToken) {
    const std::string token(kConformanceToken);
    BuiltRequest ok{"POST", "/records", "{}", {{"Authorization", "Bearer " + token, true}}};
    EXPECT_EQ(token_leak(ok), "");
    BuiltRequest in_path{"GET", "/records?access_token=" + token, "", {}};
    EXPECT_NE(token_leak(in_path).find("in the path"), std::string::npos);
    BuiltRequest in_body{"POST", "/records", "{\"t\":\"" + token + "\"}", {}};
    EXPECT_NE(token_leak(in_body).find("in the body"), std::string::npos);
    BuiltRequest plain_header{"POST", "/records", "", {{"X-Token", token, false}}};
    EXPECT_NE(token_leak(plain_header).find("header 'X-Token', not marked secret"), std::string::npos);
}

TEST(ConformanceSamples, AMistypedKeywordGivesAReasonNotAnException) {
    std::string why;
    EXPECT_FALSE(sample_from_schema({{"type", "object"}, {"required", {"a"}}, {"properties", {{"a", {{"type", "string"}, {"minLength", "three"}}}}}}, why));
    EXPECT_NE(why.find("the schema: "), std::string::npos) << why;
}
