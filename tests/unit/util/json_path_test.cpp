// JsonPath: dotted paths, find (no allocation, nullptr when absent) and set (creates parents).
#include "util/json_path.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <stdexcept>

namespace {

using nlohmann::json;
using recsync::util::JsonPath;

TEST(JsonPath, FindTopLevelAndNested) {
    const json doc = json::parse(R"({"a": 1, "b": {"c": {"d": "deep"}, "n": null}, "arr": [1, 2]})");
    ASSERT_NE(JsonPath("a").find(doc), nullptr);
    EXPECT_EQ(*JsonPath("a").find(doc), 1);
    ASSERT_NE(JsonPath("b.c.d").find(doc), nullptr);
    EXPECT_EQ(*JsonPath("b.c.d").find(doc), "deep");
    EXPECT_EQ(*JsonPath("b.c").find(doc), json({{"d", "deep"}}));
    // Returns a pointer into the document, not a copy.
    EXPECT_EQ(JsonPath("b.c.d").find(doc), &doc["b"]["c"]["d"]);
    // A present null is found (callers decide what null means).
    ASSERT_NE(JsonPath("b.n").find(doc), nullptr);
    EXPECT_TRUE(JsonPath("b.n").find(doc)->is_null());
}

TEST(JsonPath, FindMissing) {
    const json doc = json::parse(R"({"a": 1, "b": {"c": {}}, "arr": [{"x": 1}], "n": null})");
    EXPECT_EQ(JsonPath("z").find(doc), nullptr);
    EXPECT_EQ(JsonPath("b.c.d").find(doc), nullptr);
    EXPECT_EQ(JsonPath("a.b").find(doc), nullptr);     // through a number
    EXPECT_EQ(JsonPath("arr.0").find(doc), nullptr);   // arrays are not indexed
    EXPECT_EQ(JsonPath("arr.x").find(doc), nullptr);
    EXPECT_EQ(JsonPath("n.x").find(doc), nullptr);     // through null
    EXPECT_EQ(JsonPath("a").find(json::array({1})), nullptr);
    EXPECT_EQ(JsonPath("a").find(json("a")), nullptr);
    EXPECT_EQ(JsonPath("A").find(doc), nullptr);       // case-sensitive
}

TEST(JsonPath, KeysWithSpacesAndUnicode) {
    const json doc = json::parse(R"({"first name": {"größe": 3}})");
    ASSERT_NE(JsonPath("first name.größe").find(doc), nullptr);
    EXPECT_EQ(*JsonPath("first name.größe").find(doc), 3);
}

TEST(JsonPath, SetCreatesIntermediateObjects) {
    json doc = json::object();
    JsonPath("a.b.c").set(doc, 5);
    EXPECT_EQ(doc, json::parse(R"({"a": {"b": {"c": 5}}})"));
    JsonPath("a.b.d").set(doc, "x");  // sibling kept
    JsonPath("a.e").set(doc, json::array({1}));
    EXPECT_EQ(doc, json::parse(R"({"a": {"b": {"c": 5, "d": "x"}, "e": [1]}})"));
    JsonPath("a.b.c").set(doc, nullptr);  // overwrite
    EXPECT_TRUE(doc["a"]["b"]["c"].is_null());
    JsonPath("top").set(doc, true);
    EXPECT_EQ(doc["top"], true);
}

TEST(JsonPath, SetReplacesNonObjectsOnTheWay) {
    json doc = json::parse(R"({"a": 1, "b": [1, 2]})");
    JsonPath("a.x").set(doc, "y");
    JsonPath("b.z").set(doc, 2);
    EXPECT_EQ(doc, json::parse(R"({"a": {"x": "y"}, "b": {"z": 2}})"));
    json scalar = 7;  // the document itself not an object
    JsonPath("k").set(scalar, 1);
    EXPECT_EQ(scalar, json({{"k", 1}}));
    json null_doc;  // null
    JsonPath("p.q").set(null_doc, "v");
    EXPECT_EQ(null_doc, json::parse(R"({"p": {"q": "v"}})"));
}

TEST(JsonPath, SetThenFindRoundTrip) {
    json doc;
    const JsonPath p("x.y.z");
    p.set(doc, 42);
    ASSERT_NE(p.find(doc), nullptr);
    EXPECT_EQ(*p.find(doc), 42);
}

TEST(JsonPath, TextAndEmpty) {
    EXPECT_EQ(JsonPath("a.b").text(), "a.b");
    EXPECT_FALSE(JsonPath("a").empty());
    EXPECT_TRUE(JsonPath().empty());
    EXPECT_EQ(JsonPath().text(), "");
    // The default (empty) path finds the document itself.
    const json doc = {{"a", 1}};
    EXPECT_EQ(JsonPath().find(doc), &doc);
}

TEST(JsonPath, EmptySegmentRejected) {
    for (const char *bad : {"", ".", "a.", ".a", "a..b", "a.b.", ".."}) {
        SCOPED_TRACE(bad);
        try {
            JsonPath p(bad);
            ADD_FAILURE() << "accepted '" << bad << "'";
        } catch (const std::invalid_argument &e) {
            EXPECT_EQ(std::string(e.what()), "invalid field path '" + std::string(bad) + "': empty segment");
        }
    }
    EXPECT_NO_THROW(JsonPath(" "));  // a space is a valid (odd) key
}

}  // namespace
