// lint_schema: every draft-7 keyword is known, misspellings are named with a suggestion,
// keyword values have the right type, and JsonPositions finds a pointer's line:col.
#include "schema/schema_lint.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <set>
#include <string>
#include <vector>

namespace {

using nlohmann::json;
using recsync::schema::lint_schema;
using recsync::schema::JsonPositions;

std::vector<std::string> lint(const char *text) {
    std::vector<std::string> out;
    for (const auto &e : lint_schema(json::parse(text))) out.push_back(e.pointer + " " + e.message);
    return out;
}

TEST(SchemaLint, EveryDraft7KeywordIsAccepted) {
    const char *all = R"({
      "$schema": "http://json-schema.org/draft-07/schema#", "$id": "x", "$comment": "c",
      "title": "t", "description": "d", "default": {}, "examples": [1], "readOnly": false, "writeOnly": false,
      "definitions": {"a": {"type": "string"}}, "$defs": {"b": true},
      "type": ["object", "null"], "enum": [1, "a", null], "const": 3,
      "multipleOf": 0.5, "maximum": 9, "exclusiveMaximum": 10, "minimum": 0, "exclusiveMinimum": -1,
      "maxLength": 5, "minLength": 0, "pattern": "^a", "format": "email",
      "contentMediaType": "text/plain", "contentEncoding": "base64",
      "items": [{"type": "string"}, true], "additionalItems": false, "maxItems": 3, "minItems": 1,
      "uniqueItems": true, "contains": {"const": 1},
      "maxProperties": 9, "minProperties": 1, "required": ["a", "b"],
      "properties": {"a": {"$ref": "#/definitions/a"}, "type": {"type": "string"}},
      "patternProperties": {"^x": {}}, "additionalProperties": {"type": "number"},
      "dependencies": {"a": ["b"], "b": {"required": ["a"]}}, "propertyNames": {"maxLength": 3},
      "if": {"required": ["a"]}, "then": {}, "else": {}, "allOf": [{}], "anyOf": [true], "oneOf": [{}, {}], "not": false,
      "x-owner": "crm team"
    })";
    EXPECT_EQ(lint(all), std::vector<std::string>{});
}

TEST(SchemaLint, MisspeltKeywordsAreNamedWithTheLikelyOne) {
    EXPECT_EQ(lint(R"({"propertes": {}})"), std::vector<std::string>{"/propertes unknown keyword 'propertes' (did you mean 'properties'?)"});
    EXPECT_EQ(lint(R"({"properties": {"a": {"maxLenght": 3}}})"),
              std::vector<std::string>{"/properties/a/maxLenght unknown keyword 'maxLenght' (did you mean 'maxLength'?)"});
    EXPECT_EQ(lint(R"({"colour": "red"})"),
              std::vector<std::string>{"/colour unknown keyword 'colour' checks nothing (draft 7 has no such keyword; name your own annotations x-...)"});
    // A property may be called like a keyword, or anything else: only schemas are checked.
    EXPECT_EQ(lint(R"({"properties": {"requird": {}, "a/b~c": {"typ": "x"}}})"),
              std::vector<std::string>{"/properties/a~1b~0c/typ unknown keyword 'typ' (did you mean 'type'?)"});
}

TEST(SchemaLint, KeywordValuesOfTheWrongKind) {
    const auto errs = lint(R"({
      "type": ["string", "text"], "minLength": -1, "maxItems": 1.5, "multipleOf": 0, "maximum": "9",
      "required": ["a", 3, "a"], "uniqueItems": "yes", "allOf": [], "properties": [], "items": 3,
      "title": 7, "not": "x", "dependencies": {"a": [1]}
    })");
    const std::vector<std::string> expected{
        "/type/1 'type' \"text\" is not a type (expected one of: null, boolean, object, array, number, string, integer)",
        "/minLength 'minLength' expects a whole number of 0 or more, got -1",
        "/maxItems 'maxItems' expects a whole number of 0 or more, got 1.5",
        "/multipleOf 'multipleOf' expects a number above 0, got 0",
        "/maximum 'maximum' expects a number, got \"9\"",
        "/required/1 'required' lists property names (strings), got 3",
        "/required/2 'required' names \"a\" twice",
        "/uniqueItems 'uniqueItems' expects true or false, got \"yes\"",
        "/allOf 'allOf' expects a non-empty list of schemas",
        "/properties 'properties' expects an object of schemas, got array",
        "/items expected a schema (an object, or true/false), got number",
        "/title 'title' expects a string, got number",
        "/not expected a schema (an object, or true/false), got string",
        "/dependencies/a/0 'dependencies' lists property names (strings), got 1",
    };
    // nlohmann keeps object keys sorted; compare as sets of lines.
    EXPECT_EQ(std::multiset<std::string>(errs.begin(), errs.end()), std::multiset<std::string>(expected.begin(), expected.end()));
}

TEST(SchemaLint, DeepNestingIsBounded) {
    std::string deep;
    for (int i = 0; i < 200; ++i) deep += R"({"not": )";
    deep += "{}";
    for (int i = 0; i < 200; ++i) deep += "}";
    const auto errs = lint_schema(json::parse(deep));
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_NE(errs[0].message.find("nested deeper than 64 levels"), std::string::npos);
}

TEST(SchemaLint, PositionsOfPointers) {
    const JsonPositions at("{\n  \"type\": \"object\",\n  \"properties\": {\n    \"a/b\": { \"type\": \"strang\" },\n    \"l\": [1, {\"x\": 2}]\n  }\n}\n");
    EXPECT_EQ(at.of(""), "1:1");
    EXPECT_EQ(at.of("/type"), "2:11");
    EXPECT_EQ(at.of("/properties/a~1b/type"), "4:22");
    EXPECT_EQ(at.of("/properties/l/1/x"), "5:20");
    EXPECT_EQ(at.of("/properties/missing"), "");
    EXPECT_EQ(at.of("/properties/l/9"), "");
    EXPECT_EQ(at.of("/properties/l/x"), "");
    EXPECT_FALSE(JsonPositions("{\"a\":\t1,\n\t\"b\": 2}").of("/b").empty());  // tabs between tokens are JSON whitespace
    EXPECT_EQ(at.structure_error("s.json"), "");
}

TEST(SchemaLint, AKeyWrittenTwiceInTheJsonIsFound) {
    // nlohmann keeps the last "type" without a word; the first would silently not apply.
    const JsonPositions dup("{\"properties\": {\"a\": {\"type\": \"string\", \"type\": \"number\"}}}");
    EXPECT_EQ(dup.structure_error("s.json"), "s.json:1:41: key 'type' is already set at s.json:1:23 (a key may appear once)");
}

TEST(SchemaLint, UnknownKeywordsWithoutANearMissAreWarnings) {
    const auto errs = lint_schema(json::parse(R"({"nullable": true, "example": 3, "unevaluatedProperties": false, "requird": []})"));
    ASSERT_EQ(errs.size(), 4u);
    for (const auto &e : errs) {
        SCOPED_TRACE(e.pointer);
        EXPECT_EQ(e.warning, e.pointer != "/requird") << e.message;
    }
}

TEST(SchemaLint, LongValuesAreCutInMessages) {
    const auto errs = lint_schema(json{{"minLength", std::string(100000, 'x')}});
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_LT(errs[0].message.size(), 200u) << errs[0].message.substr(0, 300);
    EXPECT_NE(errs[0].message.find("..."), std::string::npos);
}

}  // namespace
