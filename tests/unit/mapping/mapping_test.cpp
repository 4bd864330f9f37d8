// Mappings: compile from YAML, apply to records; conversions, constants, defaults, required
// fields; and yaml_value_to_json's scalar typing.
#include "config/yaml_source.hpp"
#include "mapping/mapping.hpp"
#include "unit/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <string>

namespace {

using nlohmann::json;
using recsync::config::ConfigError;
using recsync::mapping::compile_mapping;
using recsync::mapping::Mapping;
using recsync::mapping::MappingError;
using recsync::config::yaml_value_to_json;

constexpr const char *kFile = "map.yaml";

// `fields` is the YAML list of field mappings (flow or block).
Mapping compile(const std::string &fields) { return compile_mapping(kFile, "m", YAML::Load("fields: " + fields)); }

json run(const std::string &fields, const json &record) { return compile(fields).apply(record); }

// Applies one field `{from: v, to: out, convert: <conv>}` to {"v": in} and returns out.
json convert(const std::string &conv, const json &in) {
    const json out = run("[ { from: v, to: out, convert: " + conv + " } ]", {{"v", in}});
    EXPECT_TRUE(out.contains("out")) << out.dump();
    return out.value("out", json());
}

std::string mapping_error(const std::string &fields, const json &record) {
    try {
        run(fields, record);
    } catch (const MappingError &e) {
        return e.what();
    }
    ADD_FAILURE() << "expected MappingError";
    return {};
}

std::string compile_error(const std::string &yaml) {
    try {
        compile_mapping(kFile, "m", YAML::Load(yaml));
    } catch (const ConfigError &e) {
        return e.what();
    }
    ADD_FAILURE() << "expected ConfigError compiling: " << yaml;
    return {};
}

// ---- renames and paths ------------------------------------------------------------------

TEST(Mapping, RenamesAndDropsUnmappedFields) {
    const json out = run("[ { from: first_name, to: firstname }, { from: email, to: email } ]",
                           {{"first_name", "Ada"}, {"email", "ada@x"}, {"secret", "s"}});
    EXPECT_EQ(out, json({{"firstname", "Ada"}, {"email", "ada@x"}}));
}

TEST(Mapping, NestedFromAndToPaths) {
    const json rec = json::parse(R"({"company": {"name": "ACME", "address": {"city": "Berlin", "zip": "10115"}}, "id": 7})");
    const json out = run(
        "[ { from: company.name, to: company },"
        "  { from: company.address.city, to: address.city },"
        "  { from: company.address.zip, to: address.zip },"
        "  { from: id, to: meta.ids.internal } ]",
        rec);
    EXPECT_EQ(out, json::parse(R"({"company": "ACME", "address": {"city": "Berlin", "zip": "10115"}, "meta": {"ids": {"internal": 7}}})"));
}

TEST(Mapping, WholeObjectsAndArraysAreCopied) {
    const json rec = json::parse(R"({"tags": ["a", "b"], "addr": {"x": 1}})");
    const json out = run("[ { from: tags, to: labels }, { from: addr, to: location } ]", rec);
    EXPECT_EQ(out, json::parse(R"({"labels": ["a", "b"], "location": {"x": 1}})"));
}

TEST(Mapping, MissingSourceLeavesTargetUnset) {
    const json out = run("[ { from: phone, to: phone }, { from: a.b, to: c }, { from: email, to: email } ]", {{"email", "e"}, {"a", 5}});
    EXPECT_EQ(out, json({{"email", "e"}}));
}

TEST(Mapping, NullSourceIsCopiedAsNullAndNotConverted) {
    const json out = run("[ { from: phone, to: phone, convert: [trim, to_number] } ]", {{"phone", nullptr}});
    ASSERT_TRUE(out.contains("phone"));
    EXPECT_TRUE(out["phone"].is_null());
}

// ---- conversions ------------------------------------------------------------------------

TEST(MappingConversion, Trim) {
    EXPECT_EQ(convert("trim", "  Ada \t\r\n"), "Ada");
    EXPECT_EQ(convert("trim", "Ada Lovelace"), "Ada Lovelace");  // inner space kept
    EXPECT_EQ(convert("trim", " \t "), "");
    EXPECT_EQ(convert("trim", ""), "");
    EXPECT_EQ(convert("trim", "  Zoë  "), "Zoë");
}

TEST(MappingConversion, LowerAndUpper) {
    EXPECT_EQ(convert("lower", "Ada@X.COM"), "ada@x.com");
    EXPECT_EQ(convert("upper", "de-123x"), "DE-123X");
    EXPECT_EQ(convert("lower", "ÄBC"), "Äbc");  // ASCII only; UTF-8 bytes untouched
    EXPECT_EQ(convert("upper", "zoë"), "ZOë");
}

TEST(MappingConversion, StringConversionsRejectNonStrings) {
    const std::string msg = mapping_error("[ { from: age, to: age, convert: trim } ]", {{"age", 42}});
    EXPECT_NE(msg.find("field 'age'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("trim needs a string"), std::string::npos) << msg;
    EXPECT_THROW(run("[ { from: v, to: v, convert: lower } ]", {{"v", true}}), MappingError);
    EXPECT_THROW(run("[ { from: v, to: v, convert: upper } ]", {{"v", json::array()}}), MappingError);
}

TEST(MappingConversion, ToString) {
    EXPECT_EQ(convert("to_string", 1200), "1200");
    EXPECT_EQ(convert("to_string", 3.0), "3");
    EXPECT_EQ(convert("to_string", -7.0), "-7");
    EXPECT_EQ(convert("to_string", 2.5), "2.5");
    EXPECT_EQ(convert("to_string", 0.1), "0.1");
    EXPECT_EQ(convert("to_string", -12), "-12");
    EXPECT_EQ(convert("to_string", 18446744073709551615ULL), "18446744073709551615");
    EXPECT_EQ(convert("to_string", true), "true");
    EXPECT_EQ(convert("to_string", false), "false");
    EXPECT_EQ(convert("to_string", "already"), "already");
    EXPECT_EQ(convert("to_string", json::array({1, 2})), "[1,2]");
}

TEST(MappingConversion, ToNumber) {
    const json i = convert("to_number", "42");
    EXPECT_EQ(i, 42);
    EXPECT_TRUE(i.is_number_integer());
    const json d = convert("to_number", "4.5");
    EXPECT_TRUE(d.is_number_float());
    EXPECT_DOUBLE_EQ(d.get<double>(), 4.5);
    EXPECT_EQ(convert("to_number", "-3"), -3);
    EXPECT_DOUBLE_EQ(convert("to_number", "1e3").get<double>(), 1000.0);
    EXPECT_EQ(convert("to_number", 17), 17);  // numbers pass through
    EXPECT_DOUBLE_EQ(convert("to_number", 1.25).get<double>(), 1.25);
    EXPECT_EQ(convert("to_number", true), 1);
    EXPECT_EQ(convert("to_number", false), 0);
}

TEST(MappingConversion, ToNumberRejectsNonNumbers) {
    for (const char *bad : {"bad", "", "12abc", "4.5.6", "nan", "inf", "1e400", "42 "}) {
        SCOPED_TRACE(bad);
        const std::string msg = mapping_error("[ { from: v, to: v, convert: to_number } ]", {{"v", bad}});
        EXPECT_NE(msg.find("field 'v': to_number: '" + std::string(bad) + "' is not a number"), std::string::npos) << msg;
    }
    EXPECT_THROW(run("[ { from: v, to: v, convert: to_number } ]", {{"v", json::object()}}), MappingError);
}

// rules/README.md: to_number takes "42" -> 42, "4.5" -> 4.5, "anything else rejects the event".
// std::stod also parses hexadecimal, so an id like "0x1A" silently becomes 26.
TEST(MappingConversion, ToNumberRejectsHexadecimal) {
    for (const char *hex : {"0x1A", "0x1p3"}) {
        SCOPED_TRACE(hex);
        json out;
        EXPECT_THROW(out = run("[ { from: v, to: v, convert: to_number } ]", {{"v", hex}}), MappingError)
            << "regression: core/mapping/mapping.cpp to_number accepted '" << hex << "' as " << out.dump();
    }
}

TEST(MappingConversion, ToBool) {
    for (const char *t : {"true", "1", "yes"}) EXPECT_EQ(convert("to_bool", t), true) << t;
    for (const char *f : {"false", "0", "no", ""}) EXPECT_EQ(convert("to_bool", f), false) << f;
    EXPECT_EQ(convert("to_bool", true), true);
    EXPECT_EQ(convert("to_bool", false), false);
    EXPECT_EQ(convert("to_bool", 0), false);
    EXPECT_EQ(convert("to_bool", 2), true);
    EXPECT_EQ(convert("to_bool", 0.0), false);
    EXPECT_EQ(convert("to_bool", -0.5), true);
    const std::string msg = mapping_error("[ { from: v, to: v, convert: to_bool } ]", {{"v", "maybe"}});
    EXPECT_NE(msg.find("field 'v': to_bool: 'maybe' is not a boolean"), std::string::npos) << msg;
    EXPECT_THROW(run("[ { from: v, to: v, convert: to_bool } ]", {{"v", "TRUE"}}), MappingError);  // case-sensitive
}

TEST(MappingConversion, ChainsApplyInOrder) {
    EXPECT_EQ(convert("[trim, lower]", "  Ada@X.COM "), "ada@x.com");
    EXPECT_EQ(convert("[trim, to_number]", " 12 "), 12);
    EXPECT_EQ(convert("[to_number, to_string]", "3.0"), "3");
    EXPECT_EQ(convert("[to_string, upper]", true), "TRUE");
    // to_number before trim fails on the trailing space: order matters.
    EXPECT_THROW(run("[ { from: v, to: v, convert: [to_number, trim] } ]", {{"v", "12 "}}), MappingError);
}

// ---- constants, defaults, required ------------------------------------------------------

TEST(Mapping, Constants) {
    const json out = run(
        "[ { to: source, value: recsync }, { to: n, value: 5 }, { to: s, value: '5' }, { to: f, value: 1.5 },"
        "  { to: b, value: true }, { to: obj, value: { a: 1, b: [x, 2] } }, { to: nested.c, value: c }, { to: u, value: null } ]",
        {{"source", "ignored"}});
    EXPECT_EQ(out["source"], "recsync");
    EXPECT_EQ(out["n"], 5);
    EXPECT_TRUE(out["n"].is_number_integer());
    EXPECT_EQ(out["s"], "5");
    EXPECT_DOUBLE_EQ(out["f"].get<double>(), 1.5);
    EXPECT_EQ(out["b"], true);
    EXPECT_EQ(out["obj"], json::parse(R"({"a": 1, "b": ["x", 2]})"));
    EXPECT_EQ(out["nested"]["c"], "c");
    ASSERT_TRUE(out.contains("u"));
    EXPECT_TRUE(out["u"].is_null());
}

TEST(Mapping, ConstantsAreConverted) {
    EXPECT_EQ(run("[ { to: x, value: '  Hi ', convert: [trim, upper] } ]", json::object()), json({{"x", "HI"}}));
}

TEST(Mapping, DefaultsForMissingAndNull) {
    const std::string fields = "[ { from: status, to: stage, default: lead }, { from: score, to: score, default: 0 } ]";
    EXPECT_EQ(run(fields, json::object()), json({{"stage", "lead"}, {"score", 0}}));
    EXPECT_EQ(run(fields, {{"status", nullptr}, {"score", nullptr}}), json({{"stage", "lead"}, {"score", 0}}));
    EXPECT_EQ(run(fields, {{"status", "customer"}, {"score", 9}}), json({{"stage", "customer"}, {"score", 9}}));
    EXPECT_EQ(run(fields, {{"status", ""}, {"score", false}}), json({{"stage", ""}, {"score", false}}));  // present: no default
    const json out = run(fields, json::object());
    EXPECT_TRUE(out["score"].is_number_integer());
}

TEST(Mapping, RequiredMissingNamesTheField) {
    const std::string fields = "[ { from: email, to: email, required: true }, { from: name, to: name } ]";
    const std::string msg = mapping_error(fields, {{"name", "Ada"}});
    EXPECT_EQ(msg, "mapping 'm': required field 'email' is missing");
    EXPECT_EQ(mapping_error(fields, {{"email", nullptr}}), "mapping 'm': required field 'email' is missing");
    EXPECT_EQ(mapping_error("[ { from: contact.email, to: email, required: yes } ]", {{"contact", json::object()}}),
              "mapping 'm': required field 'contact.email' is missing");
    EXPECT_EQ(run(fields, {{"email", "a@x"}}), json({{"email", "a@x"}}));
}

TEST(Mapping, RequiredEmptyAfterConversion) {
    const std::string fields = "[ { from: email, to: email, convert: trim, required: true } ]";
    EXPECT_EQ(mapping_error(fields, {{"email", "   "}}), "mapping 'm': required field 'email' is empty");
    EXPECT_EQ(run(fields, {{"email", " a@x "}}), json({{"email", "a@x"}}));
}

TEST(Mapping, RequiredSatisfiedByDefault) {
    EXPECT_EQ(run("[ { from: stage, to: stage, default: lead, required: true } ]", json::object()), json({{"stage", "lead"}}));
}

TEST(Mapping, RequiredFalseIsOptional) {
    EXPECT_EQ(run("[ { from: a, to: a, required: false } ]", json::object()), json::object());
}

// ---- compile errors ---------------------------------------------------------------------

TEST(MappingCompile, WhereAndFieldPositions) {
    const Mapping m = compile_mapping(kFile, "m", YAML::Load("fields:\n  - { from: a, to: b }\n  - { to: c, value: 1 }\n"));
    EXPECT_EQ(m.name, "m");
    EXPECT_EQ(m.where, "map.yaml:1:1");
    ASSERT_EQ(m.fields.size(), 2u);
    EXPECT_EQ(m.fields[0].where, "map.yaml:2:5");
    EXPECT_EQ(m.fields[1].where, "map.yaml:3:5");
    EXPECT_EQ(m.fields[0].from.text(), "a");
    EXPECT_TRUE(m.fields[1].from.empty());
    ASSERT_TRUE(m.fields[1].constant.has_value());
    EXPECT_EQ(*m.fields[1].constant, 1);
}

TEST(MappingCompile, UnknownConversionWithLine) {
    const std::string msg = compile_error(
        "fields:\n"
        "  - { from: a, to: b }\n"
        "  - { from: c, to: d, convert: [trim, titlecase] }\n");  // 'titlecase' at 3:39
    EXPECT_EQ(msg.rfind("map.yaml:3:39: unknown conversion 'titlecase'", 0), 0u) << msg;
    EXPECT_NE(msg.find("to_number"), std::string::npos) << "lists the known ones: " << msg;

    const std::string single = compile_error("fields:\n  - from: a\n    to: b\n    convert: Trim\n");  // 4:14
    EXPECT_EQ(single.rfind("map.yaml:4:14: unknown conversion 'Trim'", 0), 0u) << single;
}

TEST(MappingCompile, StructuralErrors) {
    EXPECT_EQ(compile_error("fields: []\n").rfind("map.yaml:1:1: mapping 'm': 'fields' must be a non-empty list", 0), 0u);
    EXPECT_EQ(compile_error("other: 1\n").rfind("map.yaml:1:1: unknown key 'other'", 0), 0u);
    EXPECT_EQ(compile_error("fields:\n  - { from: a }\n").rfind("map.yaml:2:5: mapping 'm': field needs 'to'", 0), 0u);
    EXPECT_EQ(compile_error("fields:\n  - { to: a }\n").rfind("map.yaml:2:5: mapping 'm': field 'a' needs 'from'", 0), 0u);
    EXPECT_EQ(compile_error("fields:\n  - { from: a, to: b, value: 1 }\n").rfind("map.yaml:2:5: mapping 'm': field 'b' has both 'from' and 'value'", 0), 0u);
    EXPECT_EQ(compile_error("fields:\n  - { from: a, to: b, rename: c }\n").rfind("map.yaml:2:23: unknown key 'rename'", 0), 0u);
    EXPECT_EQ(compile_error("fields:\n  - { from: a, to: b, required: sure }\n").rfind("map.yaml:2:33: required: expected true or false", 0), 0u);
    EXPECT_EQ(compile_error("fields:\n  - { from: a, to: b.. }\n").rfind("map.yaml:2:20: invalid field path 'b..': empty segment", 0), 0u);
    EXPECT_EQ(compile_error("fields:\n  - { from: .a, to: b }\n").rfind("map.yaml:2:13: invalid field path '.a'", 0), 0u);
    EXPECT_EQ(compile_error("fields:\n  - just-a-string\n").rfind("map.yaml:2:5: mapping 'm' field: expected a mapping", 0), 0u);
}

// ---- yaml_value_to_json -----------------------------------------------------------------

json y(const std::string &yaml) { return yaml_value_to_json(YAML::Load(yaml)["v"]); }

TEST(YamlValueToJson, ScalarTyping) {
    EXPECT_EQ(y("v: \"123\""), json("123"));
    EXPECT_EQ(y("v: '123'"), json("123"));
    const json i = y("v: 123");
    EXPECT_TRUE(i.is_number_integer());
    EXPECT_EQ(i, 123);
    EXPECT_EQ(y("v: -5"), -5);
    EXPECT_EQ(y("v: 0"), 0);
    const json d = y("v: 1.5");
    EXPECT_TRUE(d.is_number_float());
    EXPECT_DOUBLE_EQ(d.get<double>(), 1.5);
    EXPECT_DOUBLE_EQ(y("v: 1e3").get<double>(), 1000.0);
    EXPECT_TRUE(y("v: 1e3").is_number_float());
    EXPECT_EQ(y("v: true"), true);
    EXPECT_EQ(y("v: True"), true);
    EXPECT_EQ(y("v: FALSE"), false);
    EXPECT_EQ(y("v: \"true\""), json("true"));
    EXPECT_TRUE(y("v: null").is_null());
    EXPECT_TRUE(y("v: ~").is_null());
    EXPECT_TRUE(y("v:").is_null());
    EXPECT_EQ(y("v: \"null\""), json("null"));
    EXPECT_EQ(y("v: hello"), json("hello"));
    EXPECT_EQ(y("v: 2024-01-01"), json("2024-01-01"));
    EXPECT_EQ(y("v: 12abc"), json("12abc"));
    EXPECT_EQ(y("v: 1.5.6"), json("1.5.6"));
    EXPECT_EQ(y("v: yes"), json("yes"));  // YAML 1.2: not a boolean
    EXPECT_EQ(y("v: 0x1F"), json("0x1F"));
}

TEST(YamlValueToJson, Collections) {
    EXPECT_EQ(y("v: [1, '2', 3.5, x, true, ~]"), json::parse(R"([1, "2", 3.5, "x", true, null])"));
    EXPECT_EQ(y("v: { a: 1, b: { c: [d] } }"), json::parse(R"({"a": 1, "b": {"c": ["d"]}})"));
    EXPECT_EQ(y("v: []"), json::array());
    EXPECT_EQ(y("v: {}"), json::object());
}

// The header promises YAML 1.2 core-schema typing; an explicit !!str tag makes a string.
TEST(YamlValueToJson, ExplicitStrTagStaysString) {
    EXPECT_EQ(y("v: !!str 123"), json("123")) << "regression: core/mapping/mapping.cpp yaml_value_to_json ignores the !!str tag";
    EXPECT_EQ(y("v: !!str true"), json("true")) << "regression: core/mapping/mapping.cpp yaml_value_to_json ignores the !!str tag";
}

}  // namespace
