// Mappings: compile from YAML, apply to records; conversions (incl. dates), value maps,
// templates, constants, defaults, required fields; and yaml_value_to_json's scalar typing.
#include "config/yaml_source.hpp"
#include "mapping/mapping.hpp"
#include "unit/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <initializer_list>
#include <sstream>
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

bool has_double(const json &j) {
    if (j.is_number_float()) return true;
    if (j.is_structured())
        for (const auto &e : j)
            if (has_double(e)) return true;
    return false;
}

// apply_text must give apply()'s object as text, or throw the same error: every test that
// maps through run() checks both.
void expect_same_text(const Mapping &m, const json &record, const json *expected, const std::string &expected_error) {
    std::string text, error;
    try {
        m.apply_text(record, text);
    } catch (const MappingError &e) {
        error = e.what();
    }
    EXPECT_EQ(error, expected_error);
    if (!expected) return;
    ASSERT_TRUE(error.empty());
    EXPECT_EQ(json::parse(text), *expected) << text;
    if (!has_double(*expected)) {
        EXPECT_EQ(text, expected->dump());  // the same bytes but for doubles' spelling
    }
}

json run(const std::string &fields, const json &record) {
    const Mapping m = compile(fields);
    json out;
    try {
        out = m.apply(record);
    } catch (const MappingError &e) {
        expect_same_text(m, record, nullptr, e.what());
        throw;
    }
    expect_same_text(m, record, &out, "");
    return out;
}

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

// ---- value maps --------------------------------------------------------------------------

constexpr const char *kStage =
    "[ { from: status, to: lifecyclestage, map: { lead: lead, customer: customer, churned: other }, map_default: other } ]";

TEST(MappingValueMap, MapsAndFallsBackToMapDefault) {
    EXPECT_EQ(run(kStage, {{"status", "lead"}}), json({{"lifecyclestage", "lead"}}));
    EXPECT_EQ(run(kStage, {{"status", "customer"}}), json({{"lifecyclestage", "customer"}}));
    EXPECT_EQ(run(kStage, {{"status", "churned"}}), json({{"lifecyclestage", "other"}}));
    EXPECT_EQ(run(kStage, {{"status", "prospect"}}), json({{"lifecyclestage", "other"}}));  // not in the map
    EXPECT_EQ(run(kStage, {{"status", "Lead"}}), json({{"lifecyclestage", "other"}}));      // case-sensitive
    EXPECT_EQ(run(kStage, {{"status", ""}}), json({{"lifecyclestage", "other"}}));
}

TEST(MappingValueMap, NoEntryAndNoMapDefaultNamesValueAndKnownKeys) {
    const std::string fields = "[ { from: status, to: lifecyclestage, map: { lead: lead, customer: customer, churned: other } } ]";
    EXPECT_EQ(mapping_error(fields, {{"status", "prospect"}}),
              "mapping 'm': field 'status': map: value 'prospect' is not in the map (known: 'churned', 'customer', 'lead') and there is no map_default");
    // Numbers are named as text too.
    EXPECT_NE(mapping_error(fields, {{"status", 7}}).find("value '7' is not in the map"), std::string::npos);
}

TEST(MappingValueMap, ManyKnownKeysAreCut) {
    std::string map = "{";
    for (int i = 0; i < 30; ++i) map += (i ? ", k" : "k") + std::to_string(100 + i) + ": v";
    map += "}";
    const std::string msg = mapping_error("[ { from: s, to: s, map: " + map + " } ]", {{"s", "nope"}});
    EXPECT_NE(msg.find("'k100', 'k101'"), std::string::npos) << msg;
    EXPECT_NE(msg.find(", ... (10 more)"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("k129"), std::string::npos) << msg;
}

TEST(MappingValueMap, KeysAreComparedAsTextOfTheValue) {
    const std::string fields = "[ { from: v, to: out, map: { 1: one, 2.5: two-and-a-half, true: yes-bool, '3': three } } ]";
    EXPECT_EQ(run(fields, {{"v", 1}})["out"], "one");
    EXPECT_EQ(run(fields, {{"v", "1"}})["out"], "one");
    EXPECT_EQ(run(fields, {{"v", 1.0}})["out"], "one");  // 1.0 reads as "1", like to_string
    EXPECT_EQ(run(fields, {{"v", 2.5}})["out"], "two-and-a-half");
    EXPECT_EQ(run(fields, {{"v", true}})["out"], "yes-bool");
    EXPECT_EQ(run(fields, {{"v", 3}})["out"], "three");
}

TEST(MappingValueMap, AppliesAfterConversions) {
    EXPECT_EQ(run("[ { from: s, to: s, convert: [trim, lower], map: { lead: L }, map_default: X } ]", {{"s", "  LEAD "}}), json({{"s", "L"}}));
    // to_number then map: the key is the number's text.
    EXPECT_EQ(run("[ { from: s, to: s, convert: to_number, map: { 42: answer } } ]", {{"s", "42"}}), json({{"s", "answer"}}));
}

TEST(MappingValueMap, TargetValuesAreTypedLikeConstants) {
    const std::string fields = "[ { from: v, to: out, map: { y: true, n: false, one: 1, half: 0.5, s: '1', none: null, obj: { a: [1] } } } ]";
    EXPECT_EQ(run(fields, {{"v", "y"}})["out"], true);
    EXPECT_EQ(run(fields, {{"v", "n"}})["out"], false);
    EXPECT_TRUE(run(fields, {{"v", "one"}})["out"].is_number_integer());
    EXPECT_DOUBLE_EQ(run(fields, {{"v", "half"}})["out"].get<double>(), 0.5);
    EXPECT_EQ(run(fields, {{"v", "s"}})["out"], "1");
    EXPECT_TRUE(run(fields, {{"v", "none"}})["out"].is_null());
    EXPECT_EQ(run(fields, {{"v", "obj"}})["out"], json::parse(R"({"a": [1]})"));
    EXPECT_EQ(run("[ { from: v, to: out, map: { a: b }, map_default: 0 } ]", {{"v", "z"}})["out"], 0);
}

TEST(MappingValueMap, MissingNullAndDefault) {
    EXPECT_EQ(run(kStage, json::object()), json::object());  // missing: unset, no map_default
    const json n = run(kStage, {{"status", nullptr}});      // null: copied, never mapped
    ASSERT_TRUE(n.contains("lifecyclestage"));
    EXPECT_TRUE(n["lifecyclestage"].is_null());
    // `default` stands in for the source value, so it goes through the map like one.
    const std::string with_default = "[ { from: status, to: stage, default: churned, map: { churned: other, lead: lead } } ]";
    EXPECT_EQ(run(with_default, json::object()), json({{"stage", "other"}}));
    EXPECT_EQ(run(with_default, {{"status", nullptr}}), json({{"stage", "other"}}));
    // required: a map value of "" or null rejects the record.
    EXPECT_EQ(mapping_error("[ { from: s, to: s, map: { x: '' }, required: true } ]", {{"s", "x"}}), "mapping 'm': required field 's' is empty");
    EXPECT_EQ(mapping_error("[ { from: s, to: s, map: { x: null }, required: true } ]", {{"s", "x"}}), "mapping 'm': required field 's' is null");
}

TEST(MappingValueMap, WrongTypes) {
    EXPECT_EQ(mapping_error(kStage, {{"status", json::object({{"a", 1}})}}),
              "mapping 'm': field 'status': map: needs a string, number or boolean, got an object");
    EXPECT_NE(mapping_error(kStage, {{"status", json::array({"lead"})}}).find("got an array"), std::string::npos);
}

TEST(MappingValueMap, UnicodePassesThrough) {
    const std::string fields = "[ { from: city, to: city, map: { 'Zoë': '東京', '東京': 'Zoë', 'Ünïcödé ✓': '🙂' } } ]";
    EXPECT_EQ(run(fields, {{"city", "Zoë"}})["city"], "東京");
    EXPECT_EQ(run(fields, {{"city", "東京"}})["city"], "Zoë");
    EXPECT_EQ(run(fields, {{"city", "Ünïcödé ✓"}})["city"], "🙂");
    EXPECT_NE(mapping_error(fields, {{"city", "Zoe"}}).find("known: 'Zoë', 'Ünïcödé ✓', '東京'"), std::string::npos)
        << mapping_error(fields, {{"city", "Zoe"}});
}

TEST(MappingValueMap, LongValuesAreCutInErrors) {
    const std::string big(100000, 'x');
    const std::string msg = mapping_error("[ { from: s, to: s, map: { a: b } } ]", {{"s", big}});
    EXPECT_LT(msg.size(), 300u);
    EXPECT_NE(msg.find("...' (100000 bytes)"), std::string::npos) << msg;
    // The cut never splits a UTF-8 character.
    std::string wide;
    for (int i = 0; i < 100; ++i) wide += "東";
    const std::string m2 = mapping_error("[ { from: s, to: s, map: { a: b } } ]", {{"s", wide}});
    EXPECT_NE(m2.find("東東...'"), std::string::npos) << m2;
    EXPECT_NO_THROW((void)json(m2).dump());  // dump() throws on invalid UTF-8
}

TEST(MappingValueMap, CompileErrors) {
    EXPECT_EQ(compile_error("fields:\n  - { from: s, to: t, map: {} }\n").rfind("map.yaml:2:28: mapping 'm': field 's': 'map' must be a non-empty mapping", 0), 0u);
    EXPECT_EQ(compile_error("fields:\n  - { from: s, to: t, map: [a, b] }\n").rfind("map.yaml:2:28: mapping 'm': field 's': 'map' must be a non-empty mapping", 0), 0u);
    EXPECT_EQ(compile_error("fields:\n  - { from: s, to: t, map_default: x }\n"), "map.yaml:2:36: mapping 'm': field 's': 'map_default' needs 'map'");
    EXPECT_EQ(compile_error("fields:\n  - { from: s, to: t, map: { a: 1, a: 2 } }\n"), "map.yaml:2:36: mapping 'm': field 's': map key 'a' appears twice");
    EXPECT_EQ(compile_error("fields:\n  - { from: s, to: t, map: { [a]: 1 } }\n"), "map.yaml:2:30: mapping 'm': field 's': map keys must be plain values (compared as text)");
    EXPECT_EQ(compile_error("fields:\n  - { from: s, to: t, map: { a: 1 }, map_defualt: 2 }\n").rfind("map.yaml:2:38: unknown key 'map_defualt'", 0), 0u);
}

// ---- templates ---------------------------------------------------------------------------

TEST(MappingTemplate, JoinsFields) {
    const std::string fields = "[ { to: fullname, template: '{first_name} {last_name}' } ]";
    EXPECT_EQ(run(fields, {{"first_name", "Ada"}, {"last_name", "Lovelace"}}), json({{"fullname", "Ada Lovelace"}}));
}

TEST(MappingTemplate, DottedPathsEscapesAndLiterals) {
    const json rec = json::parse(R"({"company": {"name": "ACME", "address": {"city": "Berlin"}}, "id": 7})");
    EXPECT_EQ(run("[ { to: label, template: '{company.name} ({company.address.city}) #{id}' } ]", rec)["label"], "ACME (Berlin) #7");
    EXPECT_EQ(run("[ { to: t, template: '{{literal}} {id} }} {{{id}}}' } ]", rec)["t"], "{literal} 7 } {7}");
    EXPECT_EQ(run("[ { to: t, template: 'no placeholders' } ]", rec)["t"], "no placeholders");
    EXPECT_EQ(run("[ { to: t, template: '' } ]", rec)["t"], "");
    EXPECT_EQ(run("[ { to: nested.t, template: '{id}' } ]", rec), json::parse(R"({"nested": {"t": "7"}})"));
    // A placeholder may name any key without blanks at the ends, e.g. with dashes.
    EXPECT_EQ(run("[ { to: t, template: '{x-y}/{a b}' } ]", {{"x-y", 1}, {"a b", 2}})["t"], "1/2");
}

TEST(MappingTemplate, MissingAndNullRenderEmptyAndNothingCollapses) {
    const std::string fields = "[ { to: fullname, template: '{first_name} {last_name}' } ]";
    EXPECT_EQ(run(fields, {{"last_name", "Lovelace"}})["fullname"], " Lovelace");
    EXPECT_EQ(run(fields, {{"first_name", "Ada"}, {"last_name", nullptr}})["fullname"], "Ada ");
    EXPECT_EQ(run(fields, json::object())["fullname"], " ");
    EXPECT_EQ(run("[ { to: t, template: '{a.b.c}' } ]", {{"a", "not-an-object"}})["t"], "");
    // convert runs after rendering.
    const std::string trimmed = "[ { to: fullname, template: '{first_name} {last_name}', convert: trim } ]";
    EXPECT_EQ(run(trimmed, {{"last_name", "Lovelace"}})["fullname"], "Lovelace");
    EXPECT_EQ(run(trimmed, {{"first_name", "Ada"}, {"last_name", "Lovelace"}})["fullname"], "Ada Lovelace");
    EXPECT_EQ(run("[ { to: t, template: '{a}-{b}', convert: [upper] } ]", {{"a", "x"}, {"b", "y"}})["t"], "X-Y");
}

TEST(MappingTemplate, NumbersAndBooleansRenderAsToString) {
    const std::string fields = "[ { to: t, template: '{i}|{f}|{g}|{n}|{b}|{u}|{z}' } ]";
    const json rec = {{"i", -12}, {"f", 3.0}, {"g", 2.5}, {"n", 0.1}, {"b", true}, {"u", 18446744073709551615ULL}, {"z", false}};
    EXPECT_EQ(run(fields, rec)["t"], "-12|3|2.5|0.1|true|18446744073709551615|false");
    // Then to_number turns a rendered number back.
    EXPECT_EQ(run("[ { to: t, template: '{a}{b}', convert: to_number } ]", {{"a", 4}, {"b", 2}})["t"], 42);
}

TEST(MappingTemplate, ObjectsAndArraysAreErrors) {
    const std::string fields = "[ { to: label, template: 'at {address}' } ]";
    EXPECT_EQ(mapping_error(fields, {{"address", {{"city", "Berlin"}}}}),
              "mapping 'm': field 'label': template: {address} is an object; only strings, numbers and booleans can be rendered");
    EXPECT_NE(mapping_error(fields, {{"address", json::array()}}).find("{address} is an array"), std::string::npos);
}

TEST(MappingTemplate, UnicodePassesThrough) {
    const std::string fields = "[ { to: t, template: '👋 {name} – {city}!', convert: [trim, upper] } ]";
    EXPECT_EQ(run(fields, {{"name", "Zoë"}, {"city", "東京"}})["t"], "👋 ZOë – 東京!");  // upper is ASCII-only
    EXPECT_EQ(run("[ { to: t, template: '{名前}' } ]", {{"名前", "東京"}})["t"], "東京");
}

TEST(MappingTemplate, VeryLongStrings) {
    const std::string big(100000, 'a');
    std::string wide;
    for (int i = 0; i < 10000; ++i) wide += "東京Zoë";  // multi-byte
    const json out = run("[ { to: t, template: '<{a}|{b}>' } ]", {{"a", big}, {"b", wide}});
    const std::string &t = out["t"].get_ref<const std::string &>();
    ASSERT_EQ(t.size(), big.size() + wide.size() + 3);
    EXPECT_EQ(t, "<" + big + "|" + wide + ">");
    // A 100k-character literal in the template itself.
    const std::string lit(100000, 'L');
    EXPECT_EQ(run("[ { to: t, template: '" + lit + "{x}" + lit + "' } ]", {{"x", "-"}})["t"], lit + "-" + lit);
}

TEST(MappingTemplate, RequiredAndMap) {
    const std::string fields = "[ { to: fullname, template: '{first_name}{last_name}', required: true } ]";
    EXPECT_EQ(mapping_error(fields, json::object()), "mapping 'm': required field 'fullname' is empty");
    EXPECT_EQ(run(fields, {{"last_name", "K"}}), json({{"fullname", "K"}}));
    EXPECT_EQ(run("[ { to: k, template: '{a}/{b}', map: { 'x/y': both }, map_default: other } ]", {{"a", "x"}, {"b", "y"}})["k"], "both");
}

TEST(MappingTemplate, CompileErrorsWithPositions) {
    auto err = [](const std::string &tmpl) { return compile_error("fields:\n  - { to: x, template: \"" + tmpl + "\" }\n"); };
    // The node is at 2:24 (its opening quote); the character is counted within the template.
    EXPECT_EQ(err("{a} {b"), "map.yaml:2:24: mapping 'm': field 'x': template: unclosed '{' at character 5 of '{a} {b' (write {{ for a literal brace)");
    EXPECT_EQ(err("a } b"), "map.yaml:2:24: mapping 'm': field 'x': template: unmatched '}' at character 3 of 'a } b' (write }} for a literal brace)");
    EXPECT_EQ(err("{a{b}}").rfind("map.yaml:2:24: mapping 'm': field 'x': template: unclosed '{' at character 1", 0), 0u);
    EXPECT_EQ(err("x{}"), "map.yaml:2:24: mapping 'm': field 'x': template: empty placeholder '{}' at character 2 of 'x{}' (write {field} or {{}} for literal braces)");
    EXPECT_EQ(err("{ a }"), "map.yaml:2:24: mapping 'm': field 'x': template: placeholder '{ a }' at character 1 of '{ a }' has blanks around the field name");
    EXPECT_EQ(err("{a..b}"), "map.yaml:2:24: mapping 'm': field 'x': template: invalid field path 'a..b': empty segment at character 1 of '{a..b}'");
    EXPECT_EQ(err("{a}}"), "map.yaml:2:24: mapping 'm': field 'x': template: unmatched '}' at character 4 of '{a}}' (write }} for a literal brace)");
    // Positions count characters, not bytes.
    EXPECT_NE(err("Zoë 東京 {x").find("unclosed '{' at character 8 of"), std::string::npos) << err("Zoë 東京 {x");
    // Block style: line and column of the value.
    EXPECT_EQ(compile_error("fields:\n  - to: x\n    template: '{oops'\n").rfind("map.yaml:3:15: mapping 'm': field 'x': template: unclosed '{' at character 1", 0), 0u);
}

TEST(MappingTemplate, CompileErrorsStructure) {
    // Unquoted braces are a YAML mapping, not a string.
    EXPECT_EQ(compile_error("fields:\n  - to: x\n    template: {first_name}\n"),
              "map.yaml:3:15: mapping 'm': field 'x': 'template' must be a string; quote it, e.g. template: \"{first_name} {last_name}\"");
    EXPECT_EQ(compile_error("fields:\n  - { from: a, to: x, template: '{a}' }\n").rfind("map.yaml:2:5: mapping 'm': field 'x' has both 'from' and 'template'; use one", 0), 0u);
    EXPECT_EQ(compile_error("fields:\n  - { value: 1, to: x, template: '{a}' }\n").rfind("map.yaml:2:5: mapping 'm': field 'x' has both 'value' and 'template'; use one", 0), 0u);
    EXPECT_EQ(compile_error("fields:\n  - { to: x, template: '{a}', default: z }\n"),
              "map.yaml:2:40: mapping 'm': field 'x': a template always renders (missing fields as \"\"), so 'default' would never apply");
    EXPECT_EQ(compile_error("fields:\n  - { to: x }\n"), "map.yaml:2:5: mapping 'm': field 'x' needs 'from' (a source field), 'value' (a constant) or 'template'");
}

TEST(MappingTemplate, CompiledIntoPieces) {
    const Mapping m = compile("[ { to: t, template: 'Hi {a.b}, {{x}}!' } ]");
    ASSERT_TRUE(m.fields[0].templ.has_value());
    const auto &p = m.fields[0].templ->pieces();
    ASSERT_EQ(p.size(), 3u);
    EXPECT_EQ(p[0].literal, "Hi ");
    EXPECT_EQ(p[1].field.text(), "a.b");
    EXPECT_EQ(p[2].literal, ", {x}!");
}

// ---- dates -------------------------------------------------------------------------------

// {from: v, to: out, convert: {date: {from: F, to: T}}}
json date(const std::string &from, const std::string &to, const json &in) {
    return convert("[ { date: { from: '" + from + "', to: '" + to + "' } } ]", in);
}

std::string date_error(const std::string &from, const std::string &to, const json &in) {
    return mapping_error("[ { from: v, to: out, convert: [ { date: { from: '" + from + "', to: '" + to + "' } } ] } ]", {{"v", in}});
}

constexpr long long kNov24 = 1795478400000LL;  // 2026-11-24T00:00:00Z in ms (date -u -d 2026-11-24 +%s = 1795478400)

TEST(MappingDate, HubSpotMidnightUtcEpochMs) {
    const json out = date("date", "epoch_ms", "2026-11-24");
    EXPECT_EQ(out, kNov24);
    EXPECT_TRUE(out.is_number_integer());
    EXPECT_EQ(date("iso8601", "epoch_ms", "2026-11-24"), kNov24);
    EXPECT_EQ(date("%Y-%m-%d", "epoch_ms", "2026-11-24"), kNov24);
    EXPECT_EQ(date("date", "epoch_ms", "1970-01-01"), 0);
    EXPECT_EQ(date("date", "epoch_ms", "1969-12-31"), -86400000LL);
    // A timestamp to a HubSpot date property: keep the UTC day, then midnight.
    EXPECT_EQ(convert("[ { date: { from: iso8601, to: date } }, { date: { from: date, to: epoch_ms } } ]", "2026-11-24T15:45:10.5Z"), kNov24);
}

TEST(MappingDate, Iso8601Inputs) {
    EXPECT_EQ(date("iso8601", "epoch_ms", "2026-11-24T00:00:00Z"), kNov24);
    EXPECT_EQ(date("iso8601", "epoch_ms", "2026-11-24T00:00Z"), kNov24);
    EXPECT_EQ(date("iso8601", "epoch_ms", "2026-11-24T00:00:00"), kNov24);  // no offset: UTC
    EXPECT_EQ(date("iso8601", "epoch_ms", "2026-11-24t00:00:00z"), kNov24);
    EXPECT_EQ(date("iso8601", "epoch_ms", "2026-11-24 00:00:00Z"), kNov24);
    EXPECT_EQ(date("iso8601", "epoch_ms", "2026-11-24T01:30:00+01:30"), kNov24);
    EXPECT_EQ(date("iso8601", "epoch_ms", "2026-11-24T01:30:00+0130"), kNov24);
    EXPECT_EQ(date("iso8601", "epoch_ms", "2026-11-24T02:00:00+02"), kNov24);
    EXPECT_EQ(date("iso8601", "epoch_ms", "2026-11-23T19:00:00-05:00"), kNov24);
    EXPECT_EQ(date("iso8601", "epoch_ms", "2026-11-24T00:00:00-00:00"), kNov24);
    EXPECT_EQ(date("iso8601", "epoch_ms", "2026-11-24T00:00:00.250Z"), kNov24 + 250);
    EXPECT_EQ(date("iso8601", "epoch_ms", "2026-11-24T00:00:00,5Z"), kNov24 + 500);
    EXPECT_EQ(date("iso8601", "epoch_ms", "2026-11-24T00:00:00.123456789Z"), kNov24 + 123);  // truncated to ms
    EXPECT_EQ(date("iso8601", "epoch_ms", "2024-02-29T12:00:00Z"), 1709208000000LL);        // leap day
    EXPECT_EQ(date("iso8601", "epoch_s", "2019-10-30T03:30:17.883Z"), 1572406217);
}

TEST(MappingDate, Iso8601Outputs) {
    EXPECT_EQ(date("epoch_ms", "iso8601", kNov24), "2026-11-24T00:00:00Z");
    EXPECT_EQ(date("epoch_ms", "iso8601", kNov24 + 250), "2026-11-24T00:00:00.250Z");
    EXPECT_EQ(date("epoch_ms", "iso8601", -1), "1969-12-31T23:59:59.999Z");
    EXPECT_EQ(date("iso8601", "iso8601", "2026-11-24T10:00:00+02:00"), "2026-11-24T08:00:00Z");  // normalised to UTC
    // Date outputs are the UTC calendar day of the instant.
    EXPECT_EQ(date("iso8601", "date", "2026-11-24T23:30:00-05:00"), "2026-11-25");
    EXPECT_EQ(date("iso8601", "date", "2026-11-24T00:30:00+01:00"), "2026-11-23");
    EXPECT_EQ(date("date", "date", "0000-01-01"), "0000-01-01");
    EXPECT_EQ(date("iso8601", "iso8601", "9999-12-31T23:59:59.999Z"), "9999-12-31T23:59:59.999Z");
}

TEST(MappingDate, EpochInputsAndOutputs) {
    EXPECT_EQ(date("epoch_ms", "date", kNov24), "2026-11-24");
    EXPECT_EQ(date("epoch_ms", "date", std::to_string(kNov24)), "2026-11-24");  // numeric strings too
    EXPECT_EQ(date("epoch_ms", "date", static_cast<double>(kNov24)), "2026-11-24");
    EXPECT_EQ(date("epoch_ms", "date", static_cast<unsigned long long>(kNov24)), "2026-11-24");
    EXPECT_EQ(date("epoch_s", "epoch_ms", 1795478400), kNov24);
    EXPECT_EQ(date("epoch_s", "epoch_ms", "1795478400"), kNov24);
    EXPECT_EQ(date("epoch_s", "epoch_ms", 1795478400.25), kNov24 + 250);  // fractional seconds: to the ms
    EXPECT_EQ(date("epoch_ms", "epoch_s", kNov24 + 999), 1795478400);      // floor
    EXPECT_EQ(date("epoch_ms", "epoch_s", -1), -1);                       // floor, not truncation
    EXPECT_TRUE(date("epoch_ms", "epoch_s", 0).is_number_integer());
    EXPECT_EQ(date("epoch_s", "iso8601", 0), "1970-01-01T00:00:00Z");
}

TEST(MappingDate, StrftimePatterns) {
    EXPECT_EQ(date("%Y-%m-%d", "%d/%m/%Y", "2026-11-24"), "24/11/2026");
    EXPECT_EQ(date("%d/%m/%Y", "date", "24/11/2026"), "2026-11-24");
    EXPECT_EQ(date("%d/%m/%Y", "date", "1/2/2026"), "2026-02-01");  // 1 or 2 digits when reading
    EXPECT_EQ(date("%m/%d/%Y %H:%M", "iso8601", "11/24/2026 09:05"), "2026-11-24T09:05:00Z");
    EXPECT_EQ(date("%Y%m%d", "date", "20261124"), "2026-11-24");
    EXPECT_EQ(date("%d %B %Y", "date", "24 November 2026"), "2026-11-24");
    EXPECT_EQ(date("%d %b %Y", "date", "24 nov 2026"), "2026-11-24");  // month names: English, any case
    EXPECT_EQ(date("%F %T %z", "iso8601", "2026-11-24 10:00:00 +0200"), "2026-11-24T08:00:00Z");
    EXPECT_EQ(date("%F %T%z", "iso8601", "2026-11-24 10:00:00Z"), "2026-11-24T10:00:00Z");
    EXPECT_EQ(date("%Y-%m-%d", "%b %d, %Y (%B) %H:%M:%S %z %%", "2026-01-05"), "Jan 05, 2026 (January) 00:00:00 +0000 %");
    EXPECT_EQ(date("iso8601", "%Y%m%dT%H%M%S", "2026-11-24T07:08:09Z"), "20261124T070809");
    EXPECT_EQ(date("%d.%m.%Y", "epoch_ms", "24.11.2026"), kNov24);
}

TEST(MappingDate, InvalidDatesNameValueAndFormat) {
    EXPECT_EQ(date_error("date", "epoch_ms", "2026-02-30"),
              "mapping 'm': field 'v': date: '2026-02-30' is not a valid date in format 'date' (no day 30 in 2026-02; expected YYYY-MM-DD)");
    EXPECT_EQ(date_error("date", "epoch_ms", "2026-02-29"),
              "mapping 'm': field 'v': date: '2026-02-29' is not a valid date in format 'date' (no day 29 in 2026-02; expected YYYY-MM-DD)");
    EXPECT_EQ(date_error("date", "epoch_ms", "24/11/2026"),
              "mapping 'm': field 'v': date: '24/11/2026' is not a valid date in format 'date' (expected a 4-digit year at character 1; expected YYYY-MM-DD)");
    EXPECT_EQ(date_error("%d/%m/%Y", "date", "2026-11-24"),
              "mapping 'm': field 'v': date: '2026-11-24' is not a valid date in format '%d/%m/%Y' (expected '/' at character 3; expected pattern '%d/%m/%Y')");
    struct Bad {
        const char *format, *value, *why;
    };
    for (const Bad &b : std::initializer_list<Bad>{
             {"date", "2026-13-01", "month 13 out of range"},
             {"date", "2026-00-10", "month 0 out of range"},
             {"date", "2026-11-00", "no day 0 in 2026-11"},
             {"date", "2026-11-24T10:00:00Z", "unexpected text at character 11"},
             {"date", "2026-11-24 ", "unexpected text at character 11"},
             {"date", " 2026-11-24", "expected a 4-digit year at character 1"},
             {"date", "", "expected a 4-digit year at character 1"},
             {"date", "26-11-24", "expected a 4-digit year at character 1"},
             {"date", "2026-1-24", "expected a 2-digit month at character 6"},
             {"iso8601", "2026-11-24T24:00:00Z", "hour 24 out of range"},
             {"iso8601", "2026-11-24T10:60Z", "minute 60 out of range"},
             {"iso8601", "2026-11-24T10:00:60Z", "second 60 out of range"},
             {"iso8601", "2026-11-24T10", "expected ':' at character 14"},
             {"iso8601", "2026-11-24X10:00", "expected 'T' before the time at character 11"},
             {"iso8601", "2026-11-24T10:00:00+25:00", "offset out of range"},
             {"iso8601", "2026-11-24T10:00:00+2", "expected offset hours at character 21"},
             {"iso8601", "2026-11-24T10:00:00 Z", "expected a UTC offset (Z or +hh:mm) at character 20"},
             {"iso8601", "2026-11-24T10:00:00.Z", "expected 1 to 9 digits of fractional seconds"},
             {"iso8601", "2026-11-24T10:00:00Zjunk", "unexpected text at character 21"},
             {"iso8601", "2026-11-24T10:00:00+01:00:00", "unexpected text at character 26"},
             {"iso8601", "2026-11-24Z", "expected 'T' before the time at character 11"},
             {"%d %b %Y", "24 Nvember 2026", "expected a month name (Jan) at character 4"},
             {"%d/%m/%Y", "24/11/26", "expected a 4-digit year (%Y) at character 7"},
             {"%d/%m/%Y", "24/11/2026 ", "unexpected text at character 11"},
         }) {
        SCOPED_TRACE(std::string(b.format) + " " + b.value);
        const std::string msg = date_error(b.format, "epoch_ms", b.value);
        EXPECT_EQ(msg.rfind("mapping 'm': field 'v': date: '" + std::string(b.value) + "' is not a valid date in format '" + b.format + "' (", 0), 0u) << msg;
        EXPECT_NE(msg.find("(" + std::string(b.why) + "; expected "), std::string::npos) << msg;
    }
}

TEST(MappingDate, WrongTypes) {
    EXPECT_EQ(date_error("iso8601", "epoch_ms", 20261124),
              "mapping 'm': field 'v': date: expected a string in format 'iso8601' (ISO 8601, e.g. 2026-11-24, 2026-11-24T09:30:00Z or "
              "2026-11-24T09:30:00.250+01:00), got number");
    EXPECT_NE(date_error("date", "epoch_ms", true).find("expected a string in format 'date' (YYYY-MM-DD), got boolean"), std::string::npos);
    EXPECT_NE(date_error("%d/%m/%Y", "epoch_ms", json::object()).find("got object"), std::string::npos);
    EXPECT_EQ(date_error("epoch_ms", "date", true),
              "mapping 'm': field 'v': date: expected a number or a numeric string (format 'epoch_ms': whole milliseconds since "
              "1970-01-01T00:00:00Z), got boolean");
    EXPECT_EQ(date_error("epoch_ms", "date", "2026-11-24"),
              "mapping 'm': field 'v': date: '2026-11-24' is not a number (format 'epoch_ms' expects whole milliseconds since 1970-01-01T00:00:00Z)");
    EXPECT_NE(date_error("epoch_s", "date", " 17 ").find("' 17 ' is not a number"), std::string::npos);
    EXPECT_EQ(date_error("epoch_ms", "date", 1.5), "mapping 'm': field 'v': date: 1.5 is not a whole number of milliseconds (format 'epoch_ms')");
    EXPECT_EQ(date_error("epoch_ms", "date", 253402300800000LL),
              "mapping 'm': field 'v': date: 253402300800000 is out of range for format 'epoch_ms' (years 0000-9999 UTC)");
    EXPECT_NE(date_error("epoch_s", "date", 1e300).find("out of range"), std::string::npos);
    EXPECT_NE(date_error("epoch_s", "date", 18446744073709551615ULL).find("out of range"), std::string::npos);
    EXPECT_NE(date_error("epoch_ms", "date", -62167219200001LL).find("out of range"), std::string::npos);
    EXPECT_EQ(date("epoch_ms", "date", -62167219200000LL), "0000-01-01");
    EXPECT_NE(date_error("iso8601", "date", "0000-01-01T00:00:00+01:00").find("out of range (years 0000-9999 UTC)"), std::string::npos);
    // A string conversion before a date still needs a string: order matters.
    EXPECT_NE(mapping_error("[ { from: v, to: v, convert: [ { date: { from: date, to: epoch_ms } }, trim ] } ]", {{"v", "2026-11-24"}})
                  .find("trim needs a string, got number"),
              std::string::npos);
}

TEST(MappingDate, MissingNullDefaultAndChains) {
    const std::string fields = "[ { from: signup, to: signup, convert: [trim, { date: { from: date, to: epoch_ms } }] } ]";
    EXPECT_EQ(run(fields, json::object()), json::object());
    const json n = run(fields, {{"signup", nullptr}});
    ASSERT_TRUE(n.contains("signup"));
    EXPECT_TRUE(n["signup"].is_null());
    EXPECT_EQ(run(fields, {{"signup", " 2026-11-24\n"}})["signup"], kNov24);
    // A default stands in for the source value: written in the source format.
    EXPECT_EQ(run("[ { from: d, to: d, default: '1970-01-02', convert: { date: { from: date, to: epoch_s } } } ]", json::object())["d"], 86400);
    // Date then to_string for systems that want the number as text.
    EXPECT_EQ(run("[ { from: d, to: d, convert: [ { date: { from: date, to: epoch_ms } }, to_string ] } ]", {{"d", "2026-11-24"}})["d"],
              "1795478400000");
    EXPECT_EQ(mapping_error("[ { from: d, to: d, convert: { date: { from: date, to: epoch_ms } }, required: true } ]", json::object()),
              "mapping 'm': required field 'd' is missing");
}

TEST(MappingDate, CompileErrors) {
    EXPECT_EQ(compile_error("fields:\n  - { from: d, to: d, convert: date }\n"),
              "map.yaml:2:32: mapping 'm': field 'd': 'date' needs parameters: { date: { from: <format>, to: <format> } }");
    EXPECT_EQ(compile_error("fields:\n  - { from: d, to: d, convert: [ { date: { from: iso8601 } } ] }\n"),
              "map.yaml:2:42: mapping 'm': field 'd': date needs 'to' (iso8601, date, epoch_ms, epoch_s or a pattern such as \"%d/%m/%Y\")");
    EXPECT_EQ(compile_error("fields:\n  - { from: d, to: d, convert: [ { date: { to: iso8601 } } ] }\n").rfind("map.yaml:2:42: mapping 'm': field 'd': date needs 'from'", 0), 0u);
    EXPECT_EQ(compile_error("fields:\n  - { from: d, to: d, convert: [ { date: { from: date, to: date, tz: UTC } } ] }\n").rfind("map.yaml:2:66: unknown key 'tz' (expected one of: from, to)", 0), 0u);
    EXPECT_EQ(compile_error("fields:\n  - { from: d, to: d, convert: [ { date: { from: isoo8601, to: date } } ] }\n"),
              "map.yaml:2:50: mapping 'm': field 'd': date.from: unknown date format 'isoo8601' (expected iso8601, date, epoch_ms, epoch_s or a pattern such as \"%d/%m/%Y\")");
    EXPECT_EQ(compile_error("fields:\n  - { from: d, to: d, convert: [ { date: { from: date, to: '%d/%Q/%Y' } } ] }\n"),
              "map.yaml:2:60: mapping 'm': field 'd': date.to: unknown directive '%Q' at character 4 of pattern '%d/%Q/%Y' (supported: %Y %m %d %H %M %S %F %T %b %B %z %%)");
    EXPECT_EQ(compile_error("fields:\n  - { from: d, to: d, convert: [ { date: { from: '%Y-%m-%d %', to: date } } ] }\n"),
              "map.yaml:2:50: mapping 'm': field 'd': date.from: pattern '%Y-%m-%d %' ends with a lone '%' (write %% for a percent sign)");
    EXPECT_EQ(compile_error("fields:\n  - { from: d, to: d, convert: [ { date: { from: '%Y-%m', to: date } } ] }\n"),
              "map.yaml:2:50: mapping 'm': field 'd': date.from: pattern '%Y-%m' must read exactly one year (%Y), one month (%m, %b or %B) and one day (%d) to parse dates");
    EXPECT_NE(compile_error("fields:\n  - { from: d, to: d, convert: [ { date: { from: '%F %Y', to: date } } ] }\n").find("exactly one year"), std::string::npos);
    EXPECT_EQ(compile_error("fields:\n  - { from: d, to: d, convert: [ { date: { from: '%F %H %H', to: date } } ] }\n"),
              "map.yaml:2:50: mapping 'm': field 'd': date.from: pattern '%F %H %H' reads '%H' twice");
    EXPECT_EQ(compile_error("fields:\n  - { from: d, to: d, convert: [ { date: { from: date, to: [x] } } ] }\n"),
              "map.yaml:2:60: mapping 'm': field 'd': date.to: expected a string, got a list");
    EXPECT_EQ(compile_error("fields:\n  - { from: d, to: d, convert: [ { date: iso8601 } ] }\n"),
              "map.yaml:2:42: mapping 'm': field 'd': date: expected a mapping, got a scalar");
    // A format-only pattern may omit parts (it only writes them).
    EXPECT_NO_THROW(compile("[ { from: d, to: d, convert: { date: { from: date, to: '%H:%M' } } } ]"));
}

// ---- conversion list syntax --------------------------------------------------------------

TEST(MappingConversionSyntax, PlainNamesAndOneKeyMaps) {
    const Mapping m = compile("[ { from: d, to: d, convert: [trim, { date: { from: '%d/%m/%Y', to: epoch_ms } }, to_string] } ]");
    ASSERT_EQ(m.fields[0].conversions.size(), 3u);
    EXPECT_EQ(m.fields[0].conversions[0].kind, recsync::mapping::Conversion::Kind::Trim);
    EXPECT_EQ(m.fields[0].conversions[1].kind, recsync::mapping::Conversion::Kind::Date);
    EXPECT_EQ(m.fields[0].conversions[1].date_from.kind(), recsync::mapping::DateFormat::Kind::Pattern);
    EXPECT_EQ(m.fields[0].conversions[1].date_to.kind(), recsync::mapping::DateFormat::Kind::EpochMs);
    EXPECT_EQ(m.apply({{"d", " 24/11/2026 "}}), json({{"d", "1795478400000"}}));
    // Block style.
    const Mapping b = compile_mapping(kFile, "m", YAML::Load("fields:\n"
                                                             "  - from: d\n"
                                                             "    to: d\n"
                                                             "    convert:\n"
                                                             "      - trim\n"
                                                             "      - date:\n"
                                                             "          from: iso8601\n"
                                                             "          to: epoch_ms\n"));
    EXPECT_EQ(b.apply({{"d", "2026-11-24"}}), json({{"d", kNov24}}));
}

TEST(MappingConversionSyntax, Errors) {
    EXPECT_EQ(compile_error("fields:\n  - { from: d, to: d, convert: [ { trim: yes } ] }\n"),
              "map.yaml:2:36: mapping 'm': field 'd': 'trim' takes no parameters; write it as a plain name: trim");
    EXPECT_EQ(compile_error("fields:\n  - { from: d, to: d, convert: [ { dates: {} } ] }\n"),
              "map.yaml:2:36: unknown conversion 'dates' in mapping 'm': field 'd' (expected one of: trim, lower, upper, to_string, to_number, to_bool, date)");
    EXPECT_EQ(compile_error("fields:\n  - { from: d, to: d, convert: [ { date: { from: date, to: date }, trim: x } ] }\n"),
              "map.yaml:2:34: mapping 'm': field 'd': a conversion is a name (trim) or a map with one key ({ date: { from: iso8601, to: epoch_ms } })");
    EXPECT_EQ(compile_error("fields:\n  - { from: d, to: d, convert: [ [trim] ] }\n").rfind("map.yaml:2:34: mapping 'm': field 'd': a conversion is a name", 0), 0u);
    EXPECT_EQ(compile_error("fields:\n  - { value: x, to: t, convert: [ shout ] }\n").rfind("map.yaml:2:35: unknown conversion 'shout' in mapping 'm': field 't'", 0), 0u);
}

// ---- DateFormat on its own ---------------------------------------------------------------

TEST(DateFormat, CompileAndRoundTrip) {
    using recsync::mapping::DateFormat;
    const auto iso = DateFormat::compile("iso8601", DateFormat::Role::Parse);
    const auto pat = DateFormat::compile("%d/%m/%Y %H:%M:%S", DateFormat::Role::Parse);
    EXPECT_EQ(iso.kind(), DateFormat::Kind::Iso8601);
    EXPECT_EQ(pat.text(), "%d/%m/%Y %H:%M:%S");
    const auto t = iso.parse("2026-11-24T07:08:09Z");
    EXPECT_EQ(pat.format(t), "24/11/2026 07:08:09");
    EXPECT_EQ(pat.parse(pat.format(t)), t);
    EXPECT_THROW(iso.parse("nope"), recsync::mapping::DateError);
    EXPECT_THROW(DateFormat::compile("%d/%m", DateFormat::Role::Parse), std::invalid_argument);
    EXPECT_NO_THROW(DateFormat::compile("%d/%m", DateFormat::Role::Format));
    EXPECT_THROW(DateFormat::compile("", DateFormat::Role::Format), std::invalid_argument);
}

// ---- inbound (B -> A) mappings use the same language -------------------------------------

TEST(Mapping, InboundFlatToNestedAndBack) {
    // What a plugin's inbound transform hands over (HubSpot contacts, flattened).
    const json inbound = json::parse(R"({"id": "512", "email": "ada@example.com", "firstname": "Ada", "lastname": "King",
                                         "lifecyclestage": "other", "createdate": "2019-10-30T03:30:17.883Z", "phone": null})");
    const json out = run(
        "[ { from: id, to: external.hubspot_id, required: true },"
        "  { from: email, to: contact.email, convert: lower },"
        "  { to: contact.name, template: '{firstname} {lastname}', convert: trim },"
        "  { from: lifecyclestage, to: status, map: { lead: lead, customer: customer, other: churned } },"
        "  { from: createdate, to: signed_up, convert: [ { date: { from: iso8601, to: date } } ] },"
        "  { from: phone, to: contact.phone } ]",
        inbound);
    EXPECT_EQ(out, json::parse(R"({"external": {"hubspot_id": "512"}, "contact": {"email": "ada@example.com", "name": "Ada King", "phone": null},
                                   "status": "churned", "signed_up": "2019-10-30"})"));
    // And nested back to flat.
    const json flat = run("[ { from: contact.email, to: email }, { from: contact.name, to: name }, { from: external.hubspot_id, to: id } ]", out);
    EXPECT_EQ(flat, json({{"email", "ada@example.com"}, {"name", "Ada King"}, {"id", "512"}}));
}

// ---- a realistic 30-field mapping --------------------------------------------------------

TEST(Mapping, ThirtyFieldMappingAppliesRepeatedly) {
    const std::string fields =
        "[ { from: email, to: email, convert: [trim, lower], required: true },"
        "  { from: first_name, to: firstname, convert: trim },"
        "  { from: last_name, to: lastname, convert: trim },"
        "  { to: fullname, template: '{first_name} {last_name}', convert: trim },"
        "  { from: phone, to: phone },"
        "  { from: mobile, to: mobilephone, default: '' },"
        "  { from: company.name, to: company },"
        "  { from: company.domain, to: domain, convert: lower },"
        "  { from: company.size, to: numemployees, convert: to_string },"
        "  { from: address.street, to: address },"
        "  { from: address.city, to: city },"
        "  { from: address.zip, to: zip, convert: to_string },"
        "  { from: address.country, to: country, map: { DE: Germany, FR: France, JP: Japan }, map_default: Other },"
        "  { from: status, to: lifecyclestage, map: { lead: lead, customer: customer, churned: other }, map_default: other },"
        "  { from: lifetime_value, to: total_revenue, convert: to_string },"
        "  { from: score, to: hs_score, convert: to_number },"
        "  { from: newsletter, to: newsletter_opt_in, convert: to_bool },"
        "  { from: signed_up, to: signup_date, convert: [ { date: { from: date, to: epoch_ms } } ] },"
        "  { from: last_login, to: last_login_at, convert: [ { date: { from: iso8601, to: epoch_ms } } ] },"
        "  { from: birthday, to: date_of_birth, convert: [ { date: { from: '%d/%m/%Y', to: date } } ] },"
        "  { from: renewal, to: renewal_date, convert: [ { date: { from: epoch_s, to: iso8601 } } ] },"
        "  { from: owner.email, to: owner_email, convert: lower },"
        "  { from: owner.id, to: hubspot_owner_id, convert: to_string },"
        "  { from: language, to: hs_language, convert: lower, default: en },"
        "  { from: tags, to: tags },"
        "  { to: source, value: recsync },"
        "  { to: meta.synced_by, value: recsync },"
        "  { to: label, template: '{company.name} / {address.city} ({id})' },"
        "  { from: id, to: external_id, convert: to_string, required: true },"
        "  { from: notes, to: notes, default: none } ]";
    const Mapping m = compile(fields);
    ASSERT_EQ(m.fields.size(), 30u);
    const json rec = json::parse(R"json({
        "id": 1001, "email": "  Zoë@Example.COM ", "first_name": " Zoë ", "last_name": "Tanaka", "phone": "+81 3 1234 5678",
        "company": {"name": "東京 Trading", "domain": "Example.JP", "size": 250},
        "address": {"street": "1-1 Chiyoda", "city": "東京", "zip": 1000001, "country": "JP"},
        "status": "customer", "lifetime_value": 1200.0, "score": "87", "newsletter": "yes",
        "signed_up": "2026-11-24", "last_login": "2026-11-24T09:00:00+09:00", "birthday": "5/3/1990", "renewal": 1795478400,
        "owner": {"email": "Sales@Example.com", "id": 42}, "tags": ["vip", "apac"], "notes": null})json");
    const json expected = json::parse(R"json({
        "email": "zoë@example.com", "firstname": "Zoë", "lastname": "Tanaka", "fullname": "Zoë  Tanaka", "phone": "+81 3 1234 5678",
        "mobilephone": "", "company": "東京 Trading", "domain": "example.jp", "numemployees": "250", "address": "1-1 Chiyoda",
        "city": "東京", "zip": "1000001", "country": "Japan", "lifecyclestage": "customer", "total_revenue": "1200",
        "hs_score": 87, "newsletter_opt_in": true, "signup_date": 1795478400000, "last_login_at": 1795478400000,
        "date_of_birth": "1990-03-05", "renewal_date": "2026-11-24T00:00:00Z", "owner_email": "sales@example.com",
        "hubspot_owner_id": "42", "hs_language": "en", "tags": ["vip", "apac"], "source": "recsync",
        "meta": {"synced_by": "recsync"}, "label": "東京 Trading / 東京 (1001)", "external_id": "1001", "notes": "none"})json");
    for (int i = 0; i < 1000; ++i) {
        json out;
        ASSERT_NO_THROW(out = m.apply(rec)) << "iteration " << i;
        if (i == 0 || i == 999) {
            EXPECT_EQ(out, expected) << out.dump(2);
        }
    }
    std::string text;
    m.apply_text(rec, text);
    EXPECT_EQ(text, expected.dump());
}

// ---- apply_text: the mapped object as text, without the document -------------------------

std::string text_of(const Mapping &m, const json &record) {
    std::string out = "stale";  // replaced, not appended to
    m.apply_text(record, out);
    return out;
}

TEST(MappingText, NestedTargetsInKeyOrderAndObjectsOnlyWhenSomethingIsUnderThem) {
    const std::string fields = "[ { from: z, to: b.z }, { from: a, to: b.a }, { from: m, to: a }, { from: q, to: c.d.e }, { from: r, to: c.f } ]";
    const Mapping m = compile(fields);
    EXPECT_EQ(text_of(m, {{"z", 1}, {"a", 2}, {"m", 3}}), R"({"a":3,"b":{"a":2,"z":1}})");
    EXPECT_EQ(text_of(m, {{"q", "deep"}}), R"({"c":{"d":{"e":"deep"}}})");
    EXPECT_EQ(text_of(m, {{"r", nullptr}}), R"({"c":{"f":null}})");  // a null source is set, a missing one is not
    EXPECT_EQ(text_of(m, json::object()), "{}");
    EXPECT_EQ(run(fields, {{"q", 1}, {"r", 2}, {"m", 3}}), json::parse(R"({"a":3,"c":{"d":{"e":1},"f":2}})"));
}

TEST(MappingText, KeysAndValuesEscapedAsDumpEscapesThem) {
    const Mapping m = compile(R"([ { from: v, to: "quo\"te" }, { from: v, to: "ключ.tab\t" }, { from: w, to: "a/b" } ])");
    const json record = {{"v", "line\nbreak \"q\" \\ Zoë 東京 \U0001F600"}, {"w", std::string("c\0\x01\x1f\x7f", 5)}};
    EXPECT_EQ(text_of(m, record), m.apply(record).dump());
    const std::string start = "{\"a/b\":\"c\\u0000\\u0001\\u001f\x7f\",\"quo\\\"te\":";  // sorted keys, escaped
    EXPECT_EQ(text_of(m, record).substr(0, start.size()), start);
    std::string long_value;
    for (int i = 0; i < 100000; ++i) long_value += i % 101 ? "ab" : "\n\x02\"";
    EXPECT_EQ(text_of(m, {{"v", long_value}, {"w", long_value}}), m.apply({{"v", long_value}, {"w", long_value}}).dump());
}

TEST(MappingText, ConvertedTemplatedAndMappedValues) {
    const std::string fields =
        "[ { from: e, to: email, convert: [trim, lower] }, { to: name, template: '{f} {l}' }, { from: s, to: stage, map: { a: A }, map_default: Z },"
        "  { from: n, to: n, convert: to_string }, { from: b, to: b, convert: to_bool }, { to: k, value: 7 }, { from: d, to: d, default: [1, 2] } ]";
    const json record = {{"e", "  X@Y.COM "}, {"f", "Zoë"}, {"l", "T"}, {"s", "a"}, {"n", 12}, {"b", "yes"}};
    EXPECT_EQ(text_of(compile(fields), record), R"({"b":true,"d":[1,2],"email":"x@y.com","k":7,"n":"12","name":"Zoë T","stage":"A"})");
    run(fields, record);  // and the same object as apply()
    run(fields, {{"e", "a@b"}, {"s", "q"}, {"n", 2.5}, {"d", {{"x", nullptr}}}});
}

TEST(MappingText, OverlappingTargetsGiveWhatApplyGives) {
    // Later fields overwrite earlier ones (JsonPath::set); apply_text builds the document then.
    const std::string parent_then_child = "[ { from: a, to: x }, { from: b, to: x.y } ]";
    EXPECT_EQ(text_of(compile(parent_then_child), {{"a", 1}, {"b", 2}}), R"({"x":{"y":2}})");
    EXPECT_EQ(text_of(compile(parent_then_child), {{"a", 1}}), R"({"x":1})");
    const std::string child_then_parent = "[ { from: b, to: x.y }, { from: a, to: x } ]";
    EXPECT_EQ(text_of(compile(child_then_parent), {{"a", 1}, {"b", 2}}), R"({"x":1})");
    const std::string twice = "[ { from: a, to: x }, { from: b, to: x } ]";
    EXPECT_EQ(text_of(compile(twice), {{"a", 1}}), R"({"x":1})");
    EXPECT_EQ(text_of(compile(twice), {{"a", 1}, {"b", 2}}), R"({"x":2})");
    run(parent_then_child, {{"b", 2}});
    run(child_then_parent, {{"b", 2}});
}

TEST(MappingText, MappingBuiltByHandWithoutLayoutStillWritesText) {
    Mapping m;
    m.name = "by-hand";
    recsync::mapping::FieldMapping f;
    f.from = recsync::util::JsonPath("a.b");
    f.to = recsync::util::JsonPath("c");
    m.fields.push_back(f);
    EXPECT_EQ(text_of(m, {{"a", {{"b", "v"}}}}), R"({"c":"v"})");
    m.compile_layout();
    EXPECT_EQ(text_of(m, {{"a", {{"b", "v"}}}}), R"({"c":"v"})");
}

TEST(MappingText, InvalidUtf8ThrowsAsDumpDid) {
    // A YAML constant can hold bytes that are not UTF-8; dump() refused them and so must the text.
    Mapping m = compile("[ { to: x, value: placeholder }, { from: v, to: y } ]");
    m.fields[0].constant = json(std::string("caf\xC3"));
    EXPECT_THROW((void)m.apply({{"v", 1}}).dump(), json::type_error);
    std::string out;
    EXPECT_THROW(m.apply_text({{"v", 1}}, out), json::type_error);
}

TEST(MappingText, RequiredAndMappingErrorsAsApply) {
    const std::string fields = "[ { from: a, to: a }, { from: id, to: id, required: true }, { from: t, to: t, convert: trim } ]";
    EXPECT_EQ(mapping_error(fields, {{"a", 1}}), "mapping 'm': required field 'id' is missing");
    EXPECT_EQ(mapping_error(fields, {{"id", ""}}), "mapping 'm': required field 'id' is empty");
    EXPECT_EQ(mapping_error(fields, {{"id", 1}, {"t", 5}}), "mapping 'm': field 't': trim needs a string, got number");
}

// ---- the documentation's examples compile -------------------------------------------------

// Every ```yaml block in rules/README.md's "Mappings" section: whole `mappings:` documents,
// or bare field lists (indented "- ..." lines).
TEST(MappingDocs, ReadmeExamplesCompile) {
    std::ifstream in(std::string(RECSYNC_SOURCE_DIR) + "/rules/README.md");
    ASSERT_TRUE(in) << "rules/README.md not found";
    std::stringstream text;
    text << in.rdbuf();
    const std::string doc = text.str();
    const size_t begin = doc.find("\n## Mappings\n"), end = doc.find("\n## ", begin + 1);
    ASSERT_NE(begin, std::string::npos);
    const std::string section = doc.substr(begin, end - begin);
    int blocks = 0;
    for (size_t at = section.find("```yaml\n"); at != std::string::npos; at = section.find("```yaml\n", at + 1)) {
        const size_t body = at + 8, close = section.find("```", body);
        const std::string yaml = section.substr(body, close - body);
        SCOPED_TRACE(yaml);
        ++blocks;
        if (yaml.find("mappings:") != std::string::npos) {
            const YAML::Node root = YAML::Load(yaml);
            for (const auto &kv : root["mappings"]) EXPECT_NO_THROW(compile_mapping("README.md", kv.first.Scalar(), kv.second));
        } else {
            EXPECT_NO_THROW(compile_mapping("README.md", "doc", YAML::Load("fields:\n" + yaml)));
        }
    }
    EXPECT_GE(blocks, 5);
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

namespace {

// ---- extremes: deep paths and very long values, per conversion -----------------------------

TEST(MappingExtremes, DeepPathsBothWays) {
    std::string deep;  // a.b.c... 60 levels
    json record = "bottom";
    for (int i = 59; i >= 0; --i) {
        const std::string key = "k" + std::to_string(i);
        deep = key + (deep.empty() ? "" : "." + deep);
        record = json{{key, record}};
    }
    // Nested source to a flat target, and a flat source to the same nested target.
    const json flat = run("[ { from: " + deep + ", to: out, convert: upper } ]", record);
    EXPECT_EQ(flat, json({{"out", "BOTTOM"}}));
    const json nested = run("[ { from: v, to: " + deep + " } ]", {{"v", "bottom"}});
    EXPECT_EQ(nested, record);
    // A path through a non-object is missing, not an error.
    EXPECT_EQ(run("[ { from: " + deep + ", to: out, default: none } ]", {{"k0", 5}}), json({{"out", "none"}}));
}

TEST(MappingExtremes, VeryLongStringsThroughEveryConversion) {
    const std::string big(1 << 20, 'a');  // 1 MiB
    EXPECT_EQ(convert("trim", "  " + big + "\n"), big);
    EXPECT_EQ(convert("upper", big), std::string(1 << 20, 'A'));
    EXPECT_EQ(convert("lower", std::string(1 << 20, 'Q')), std::string(1 << 20, 'q'));
    EXPECT_EQ(convert("to_string", big), big);
    const std::string digits(400, '9');  // a number too large for a double
    EXPECT_NE(mapping_error("[ { from: v, to: v, convert: to_number } ]", {{"v", digits}}).find("is not a number"), std::string::npos);
    const std::string long_number = "1" + std::string(300, '0');  // 1e300: fits
    EXPECT_DOUBLE_EQ(convert("to_number", long_number).get<double>(), 1e300);
    const std::string bad_bool = mapping_error("[ { from: v, to: v, convert: to_bool } ]", {{"v", big}});
    EXPECT_NE(bad_bool.find("is not a boolean"), std::string::npos);
    EXPECT_LT(bad_bool.size(), 1000u) << "the value is cut in the message";
    const std::string bad_date = mapping_error("[ { from: v, to: v, convert: [{ date: { from: date, to: epoch_ms } }] } ]", {{"v", big}});
    EXPECT_NE(bad_date.find("is not a valid date"), std::string::npos);
    EXPECT_LT(bad_date.size(), 1000u) << "the value is cut in the message";
}

}  // namespace
