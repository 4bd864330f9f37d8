// Rule conditions: compile from YAML, evaluate against records (and previous versions).
#include "config/yaml_source.hpp"
#include "rules/condition.hpp"
#include "unit/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <string>

namespace {

using nlohmann::json;
using recsync::config::ConfigError;
using recsync::rules::compile_condition;
using recsync::rules::Condition;

constexpr const char *kFile = "when.yaml";

Condition compile(const std::string &yaml) { return compile_condition(kFile, YAML::Load(yaml)); }

bool eval(const std::string &yaml, const json &data, const json *previous = nullptr) { return compile(yaml).eval(data, previous); }

std::string compile_error(const std::string &yaml) {
    try {
        compile(yaml);
    } catch (const ConfigError &e) {
        return e.what();
    }
    ADD_FAILURE() << "expected a ConfigError compiling: " << yaml;
    return {};
}

// ---- eq / ne ----------------------------------------------------------------------------

TEST(Condition, EqComparesStringsNumbersAndBooleans) {
    EXPECT_TRUE(eval("{ field: status, eq: customer }", {{"status", "customer"}}));
    EXPECT_FALSE(eval("{ field: status, eq: customer }", {{"status", "lead"}}));
    EXPECT_FALSE(eval("{ field: status, eq: customer }", {{"status", "Customer"}}));  // case matters
    EXPECT_TRUE(eval("{ field: n, eq: 5 }", {{"n", 5}}));
    EXPECT_TRUE(eval("{ field: n, eq: 5 }", {{"n", 5.0}}));  // 1 equals 1.0
    EXPECT_TRUE(eval("{ field: n, eq: 2.5 }", {{"n", 2.5}}));
    EXPECT_FALSE(eval("{ field: n, eq: 2.5 }", {{"n", 2}}));
    EXPECT_TRUE(eval("{ field: n, eq: -3 }", {{"n", -3}}));
    EXPECT_TRUE(eval("{ field: ok, eq: true }", {{"ok", true}}));
    EXPECT_FALSE(eval("{ field: ok, eq: true }", {{"ok", false}}));
    EXPECT_TRUE(eval("{ field: a.b.c, eq: deep }", json::parse(R"({"a": {"b": {"c": "deep"}}})")));
}

TEST(Condition, EqNeverCoercesTypes) {
    EXPECT_FALSE(eval("{ field: n, eq: 5 }", {{"n", "5"}}));           // number vs string
    EXPECT_FALSE(eval("{ field: n, eq: '5' }", {{"n", 5}}));           // quoted: a string
    EXPECT_TRUE(eval("{ field: n, eq: '5' }", {{"n", "5"}}));
    EXPECT_FALSE(eval("{ field: ok, eq: true }", {{"ok", "true"}}));   // bool vs string
    EXPECT_FALSE(eval("{ field: ok, eq: 1 }", {{"ok", true}}));        // bool vs number
    EXPECT_FALSE(eval("{ field: n, eq: 0 }", {{"n", nullptr}}));
    EXPECT_FALSE(eval("{ field: n, eq: 0 }", {{"n", json::array({0})}}));
}

TEST(Condition, EqOnMissingFieldIsFalse) {
    EXPECT_FALSE(eval("{ field: status, eq: customer }", json::object()));
    EXPECT_FALSE(eval("{ field: a.b, eq: x }", {{"a", "not-an-object"}}));
    EXPECT_FALSE(eval("{ field: a.b, eq: x }", json::parse(R"({"a": {"c": "x"}})")));
    EXPECT_FALSE(eval("{ field: a, eq: x }", json::array({"x"})));  // the record itself not an object
}

TEST(Condition, NullFieldValues) {
    // A null field equals nothing written as a plain operand; a quoted 'null' is a string.
    EXPECT_FALSE(eval("{ field: phone, eq: 0 }", {{"phone", nullptr}}));
    EXPECT_FALSE(eval("{ field: phone, eq: '' }", {{"phone", nullptr}}));
    EXPECT_FALSE(eval("{ field: phone, eq: 'null' }", {{"phone", nullptr}}));
    EXPECT_TRUE(eval("{ field: phone, eq: 'null' }", {{"phone", "null"}}));
    EXPECT_TRUE(eval("{ field: phone, ne: 'null' }", {{"phone", nullptr}}));
    EXPECT_FALSE(eval("{ field: phone.area, eq: '030' }", {{"phone", nullptr}}));  // null is not an object
}

TEST(Condition, NeIsTrueWhenDifferentOrMissing) {
    EXPECT_TRUE(eval("{ field: status, ne: test }", {{"status", "lead"}}));
    EXPECT_FALSE(eval("{ field: status, ne: test }", {{"status", "test"}}));
    EXPECT_TRUE(eval("{ field: status, ne: test }", json::object()));
    EXPECT_TRUE(eval("{ field: status, ne: test }", {{"status", nullptr}}));
    EXPECT_TRUE(eval("{ field: n, ne: 5 }", {{"n", "5"}}));  // different types: not equal
    EXPECT_FALSE(eval("{ field: n, ne: 5 }", {{"n", 5.0}}));
}

// ---- in / not_in ------------------------------------------------------------------------

TEST(Condition, InAndNotIn) {
    const std::string in = "{ field: country, in: [DE, FR, 49] }";
    EXPECT_TRUE(eval(in, {{"country", "DE"}}));
    EXPECT_TRUE(eval(in, {{"country", "FR"}}));
    EXPECT_TRUE(eval(in, {{"country", 49}}));
    EXPECT_TRUE(eval(in, {{"country", 49.0}}));
    EXPECT_FALSE(eval(in, {{"country", "49"}}));
    EXPECT_FALSE(eval(in, {{"country", "de"}}));
    EXPECT_FALSE(eval(in, json::object()));
    EXPECT_FALSE(eval(in, {{"country", nullptr}}));

    const std::string not_in = "{ field: country, not_in: [XX, YY] }";
    EXPECT_TRUE(eval(not_in, {{"country", "DE"}}));
    EXPECT_FALSE(eval(not_in, {{"country", "XX"}}));
    EXPECT_FALSE(eval(not_in, {{"country", "YY"}}));
    EXPECT_TRUE(eval(not_in, json::object()));  // missing: in none of the list
    EXPECT_TRUE(eval(not_in, {{"country", nullptr}}));

    EXPECT_TRUE(eval("{ field: c, in: [null, x] }", {{"c", nullptr}}));
    EXPECT_TRUE(eval("{ field: c, in: ['1', 2] }", {{"c", "1"}}));
    EXPECT_FALSE(eval("{ field: c, in: ['1', 2] }", {{"c", 1}}));
}

// ---- ordering ---------------------------------------------------------------------------

TEST(Condition, OrderingOnNumbers) {
    const json v1000 = {{"v", 1000}};
    EXPECT_TRUE(eval("{ field: v, gte: 1000 }", v1000));
    EXPECT_FALSE(eval("{ field: v, gt: 1000 }", v1000));
    EXPECT_TRUE(eval("{ field: v, lte: 1000 }", v1000));
    EXPECT_FALSE(eval("{ field: v, lt: 1000 }", v1000));
    EXPECT_TRUE(eval("{ field: v, gt: 999.5 }", v1000));
    EXPECT_TRUE(eval("{ field: v, lt: 1000.5 }", v1000));
    EXPECT_TRUE(eval("{ field: v, gt: -1 }", {{"v", 0}}));
    EXPECT_TRUE(eval("{ field: v, lt: 0 }", {{"v", -0.001}}));
    EXPECT_TRUE(eval("{ field: v, gte: 2 }", {{"v", 2.0}}));
    EXPECT_TRUE(eval("{ field: v, gt: 1.5e3 }", {{"v", 1501}}));
    EXPECT_FALSE(eval("{ field: v, gt: 1.5e3 }", {{"v", 1500}}));
    EXPECT_TRUE(eval("{ field: v, lt: 10 }", {{"v", 9u}}));  // unsigned
}

TEST(Condition, OrderingOnIsoDates) {
    EXPECT_TRUE(eval("{ field: signed_up, lt: \"2026-01-01\" }", {{"signed_up", "2025-12-31"}}));
    EXPECT_FALSE(eval("{ field: signed_up, lt: \"2026-01-01\" }", {{"signed_up", "2026-01-01"}}));
    EXPECT_TRUE(eval("{ field: signed_up, lte: \"2026-01-01\" }", {{"signed_up", "2026-01-01"}}));
    EXPECT_TRUE(eval("{ field: signed_up, gt: 2024-02-28 }", {{"signed_up", "2024-02-29"}}));  // unquoted date is a string
    EXPECT_FALSE(eval("{ field: signed_up, gt: 2024-02-28 }", {{"signed_up", "2023-12-31"}}));
    const std::string ts = "{ field: at, gte: '2024-05-01T10:00:00Z' }";
    EXPECT_TRUE(eval(ts, {{"at", "2024-05-01T10:00:00Z"}}));
    EXPECT_TRUE(eval(ts, {{"at", "2024-05-01T10:00:01Z"}}));
    EXPECT_FALSE(eval(ts, {{"at", "2024-05-01T09:59:59Z"}}));
    // Compared as instants, not as text: a date alone is midnight UTC, offsets apply, and
    // fractions order with whole seconds.
    EXPECT_FALSE(eval("{ field: at, gt: '2024-05-01' }", {{"at", "2024-05-01T00:00:00Z"}}));
    EXPECT_TRUE(eval("{ field: at, gte: '2024-05-01' }", {{"at", "2024-05-01T00:00:00Z"}}));
    EXPECT_TRUE(eval("{ field: at, lt: '2024-05-01T00:00:00.5Z' }", {{"at", "2024-05-01T00:00:00Z"}}));
    EXPECT_TRUE(eval("{ field: at, gt: '2024-05-01T00:00:00Z' }", {{"at", "2024-05-01T00:00:00.250Z"}}));
    EXPECT_TRUE(eval("{ field: at, lt: '2024-05-01T10:00:00Z' }", {{"at", "2024-05-01T11:00:00+02:00"}}));  // 09:00 UTC
    EXPECT_TRUE(eval("{ field: at, gte: '2024-05-01T09:00:00Z' }", {{"at", "2024-05-01T11:00:00+02:00"}}));
    EXPECT_TRUE(eval("{ field: at, lte: '2024-05-01T09:00:00Z' }", {{"at", "2024-05-01T11:00:00+02:00"}}));
    EXPECT_TRUE(eval("{ field: at, gt: '2024-04-30T23:30:00-01:00' }", {{"at", "2024-05-01"}}) == false);  // 00:30 UTC on May 1st
    // Against a date operand, a value that is not a date does not compare.
    for (const char *v : {"soon", "2024-13-01", "2024-05-01 at noon", "", "9999"}) {
        SCOPED_TRACE(v);
        EXPECT_FALSE(eval("{ field: at, lt: '2030-01-01' }", {{"at", v}}));
        EXPECT_FALSE(eval("{ field: at, gte: '2000-01-01' }", {{"at", v}}));
    }
    // A string operand that is not a date still orders as text.
    EXPECT_TRUE(eval("{ field: code, lt: 'B' }", {{"code", "A9"}}));
}

TEST(Condition, OrderingAcrossTypesIsFalse) {
    // number field vs string operand and the other way round: false for every operator
    for (const char *op : {"gt", "gte", "lt", "lte"}) {
        SCOPED_TRACE(op);
        const std::string o = op;
        EXPECT_FALSE(eval("{ field: v, " + o + ": '5' }", {{"v", 5}}));
        EXPECT_FALSE(eval("{ field: v, " + o + ": 5 }", {{"v", "5"}}));
        EXPECT_FALSE(eval("{ field: v, " + o + ": 5 }", {{"v", true}}));
        EXPECT_FALSE(eval("{ field: v, " + o + ": 5 }", {{"v", nullptr}}));
        EXPECT_FALSE(eval("{ field: v, " + o + ": 5 }", {{"v", json::array({5})}}));
        EXPECT_FALSE(eval("{ field: v, " + o + ": 5 }", {{"v", {{"x", 5}}}}));
        EXPECT_FALSE(eval("{ field: v, " + o + ": 5 }", json::object()));
        EXPECT_FALSE(eval("{ field: v, " + o + ": 2024-01-01 }", {{"v", 20240101}}));
    }
}

// Integers beyond 2^53 are distinct as JSON values; comparing them through double makes
// 9007199254740993 "equal" to 9007199254740992 (e.g. large CRM ids).
TEST(Condition, LargeIntegersCompareExactly) {
    const json big = {{"id", 9007199254740993LL}};
    EXPECT_TRUE(eval("{ field: id, eq: 9007199254740993 }", big));
    EXPECT_FALSE(eval("{ field: id, eq: 9007199254740992 }", big))
        << "regression: core/rules/condition.cpp same() compares integers as double";
    EXPECT_TRUE(eval("{ field: id, gt: 9007199254740992 }", big))
        << "regression: core/rules/condition.cpp ordered() compares integers as double";
    EXPECT_TRUE(eval("{ field: id, ne: 9007199254740992 }", big));
}

// ---- exists -----------------------------------------------------------------------------

TEST(Condition, ExistsTreatsNullAsAbsent) {
    const std::string yes = "{ field: phone, exists: true }";
    const std::string no = "{ field: phone, exists: false }";
    EXPECT_TRUE(eval(yes, {{"phone", "+49"}}));
    EXPECT_TRUE(eval(yes, {{"phone", ""}}));     // empty string is present
    EXPECT_TRUE(eval(yes, {{"phone", false}}));  // so is false
    EXPECT_TRUE(eval(yes, {{"phone", 0}}));
    EXPECT_FALSE(eval(yes, {{"phone", nullptr}}));
    EXPECT_FALSE(eval(yes, json::object()));
    EXPECT_FALSE(eval(no, {{"phone", "+49"}}));
    EXPECT_TRUE(eval(no, {{"phone", nullptr}}));
    EXPECT_TRUE(eval(no, json::object()));
    EXPECT_TRUE(eval("{ field: a.b, exists: true }", json::parse(R"({"a": {"b": {}}})")));
    EXPECT_FALSE(eval("{ field: a.b, exists: true }", json::parse(R"({"a": 3})")));
    EXPECT_TRUE(eval("{ field: phone, exists: no }", json::object()));  // YAML yes/no
}

// ---- matches ----------------------------------------------------------------------------

TEST(Condition, MatchesSearchesWithEcmaScriptRegex) {
    const std::string c = R"({ field: email, matches: "@example\\.com$" })";
    EXPECT_TRUE(eval(c, {{"email", "ada@example.com"}}));
    EXPECT_FALSE(eval(c, {{"email", "ada@example.com.evil"}}));
    EXPECT_FALSE(eval(c, {{"email", "ada@exampleXcom"}}));  // the dot is escaped
    EXPECT_FALSE(eval(c, json::object()));
    EXPECT_FALSE(eval(c, {{"email", nullptr}}));
    EXPECT_FALSE(eval(c, {{"email", 42}}));  // only strings match
    EXPECT_TRUE(eval("{ field: code, matches: '^[A-Z]{2}-\\d+$' }", {{"code", "DE-123"}}));
    EXPECT_FALSE(eval("{ field: code, matches: '^[A-Z]{2}-\\d+$' }", {{"code", "de-123"}}));
    EXPECT_TRUE(eval("{ field: code, matches: 'ell' }", {{"code", "hello"}}));  // search, not full match
}

// ---- changed ----------------------------------------------------------------------------

TEST(Condition, ChangedWithoutPreviousIsTrue) {
    const auto c = compile("{ changed: [email] }");
    const json data = {{"email", "a@x"}};
    EXPECT_TRUE(c.eval(data, nullptr));
    const json null_prev = nullptr;
    EXPECT_TRUE(c.eval(data, &null_prev));
}

TEST(Condition, ChangedComparesWithPrevious) {
    const auto c = compile("{ changed: [email, company.name] }");
    const json now = json::parse(R"({"email": "a@x", "company": {"name": "ACME", "size": 5}})");
    json prev = now;
    EXPECT_FALSE(c.eval(now, &prev));
    prev["company"]["size"] = 6;  // unlisted field
    EXPECT_FALSE(c.eval(now, &prev));
    prev["company"]["name"] = "Acme";  // nested listed field
    EXPECT_TRUE(c.eval(now, &prev));
    prev = now;
    prev["email"] = "b@x";
    EXPECT_TRUE(c.eval(now, &prev));
    prev = now;
    prev.erase("company");  // appeared
    EXPECT_TRUE(c.eval(now, &prev));
    json now2 = now;
    now2.erase("email");  // disappeared
    prev = now;
    EXPECT_TRUE(c.eval(now2, &prev));
    // absent in both: unchanged
    const json a = {{"other", 1}}, b = {{"other", 2}};
    EXPECT_FALSE(c.eval(a, &b));
}

TEST(Condition, ChangedScalarFormAndNumericEquality) {
    const auto c = compile("{ changed: amount }");
    const json now = {{"amount", 3}}, prev_same = {{"amount", 3.0}}, prev_diff = {{"amount", 4}};
    EXPECT_FALSE(c.eval(now, &prev_same));
    EXPECT_TRUE(c.eval(now, &prev_diff));
    const json prev_null = {{"amount", nullptr}};
    EXPECT_TRUE(c.eval(now, &prev_null));  // null -> 3 is a change
    const json prev_str = {{"amount", "3"}};
    EXPECT_TRUE(c.eval(now, &prev_str));  // type change is a change
}

// ---- all / any / not --------------------------------------------------------------------

TEST(Condition, AllAnyNotCombine) {
    const std::string c = R"(
all:
  - { field: status, ne: test }
  - any:
      - { field: country, in: [DE, AT] }
      - { field: vip, eq: true }
  - not: { field: email, matches: "@internal\\." }
)";
    EXPECT_TRUE(eval(c, {{"status", "lead"}, {"country", "DE"}, {"email", "a@x.com"}}));
    EXPECT_TRUE(eval(c, {{"status", "lead"}, {"country", "US"}, {"vip", true}, {"email", "a@x.com"}}));
    EXPECT_FALSE(eval(c, {{"status", "lead"}, {"country", "US"}, {"email", "a@x.com"}}));
    EXPECT_FALSE(eval(c, {{"status", "test"}, {"country", "DE"}, {"email", "a@x.com"}}));
    EXPECT_FALSE(eval(c, {{"status", "lead"}, {"country", "DE"}, {"email", "a@internal.net"}}));
    EXPECT_TRUE(eval(c, {{"country", "AT"}}));  // status missing: ne holds; email missing: matches false, not -> true
}

TEST(Condition, NotOfMissingFieldComparison) {
    EXPECT_TRUE(eval("{ not: { field: x, eq: 1 } }", json::object()));
    EXPECT_FALSE(eval("{ not: { field: x, exists: false } }", json::object()));
    EXPECT_TRUE(eval("{ not: { not: { field: x, eq: 1 } } }", {{"x", 1}}));
}

TEST(Condition, AnyAndAllWithSingleChild) {
    EXPECT_TRUE(eval("{ any: [ { field: a, eq: 1 } ] }", {{"a", 1}}));
    EXPECT_FALSE(eval("{ any: [ { field: a, eq: 1 } ] }", {{"a", 2}}));
    EXPECT_TRUE(eval("{ all: [ { field: a, eq: 1 } ] }", {{"a", 1}}));
    EXPECT_FALSE(eval("{ all: [ { field: a, eq: 1 }, { field: b, exists: true } ] }", {{"a", 1}}));
}

TEST(Condition, ChangedInsideCombination) {
    const auto c = compile("{ all: [ { field: status, eq: customer }, { changed: status } ] }");
    const json now = {{"status", "customer"}}, prev_lead = {{"status", "lead"}};
    EXPECT_TRUE(c.eval(now, &prev_lead));
    EXPECT_FALSE(c.eval(now, &now));
    EXPECT_TRUE(c.eval(now, nullptr));
}

TEST(Condition, DeepNestingOfNotAndAll) {
    // 50 levels: not: { all: [ not: { all: [ ... { field: x, eq: 1 } ... ] } ] }
    constexpr int kDepth = 50;
    std::string yaml;
    for (int i = 0; i < kDepth; ++i) yaml += (i % 2 == 0) ? "{ not: " : "{ all: [ ";
    yaml += "{ field: a.b.c, eq: 1 }";
    for (int i = kDepth - 1; i >= 0; --i) yaml += (i % 2 == 0) ? " }" : " ] }";
    const auto c = compile(yaml);
    // 25 nots: odd count, so the result is the negation of the leaf.
    EXPECT_FALSE(c.eval(json::parse(R"({"a": {"b": {"c": 1}}})"), nullptr));
    EXPECT_TRUE(c.eval(json::parse(R"({"a": {"b": {"c": 2}}})"), nullptr));
    EXPECT_TRUE(c.eval(json::object(), nullptr));

    // 50 nested nots: even count, the leaf itself.
    std::string nots;
    for (int i = 0; i < kDepth; ++i) nots += "{ not: ";
    nots += "{ field: x, exists: true }";
    for (int i = 0; i < kDepth; ++i) nots += " }";
    const auto n = compile(nots);
    EXPECT_TRUE(n.eval({{"x", 0}}, nullptr));
    EXPECT_FALSE(n.eval({{"x", nullptr}}, nullptr));
}

// ---- unicode and long strings ----------------------------------------------------------

TEST(Condition, UnicodeStrings) {
    const json d = {{"name", "Zoë Łukasiewicz 東京 🚀"}};
    EXPECT_TRUE(eval("{ field: name, eq: \"Zoë Łukasiewicz 東京 🚀\" }", d));
    EXPECT_FALSE(eval("{ field: name, eq: \"Zoe Łukasiewicz 東京 🚀\" }", d));
    EXPECT_TRUE(eval("{ field: name, matches: \"東京\" }", d));
    EXPECT_TRUE(eval("{ field: name, matches: \"^Zoë\" }", d));
    EXPECT_TRUE(eval("{ field: name, in: [\"x\", \"Zoë Łukasiewicz 東京 🚀\"] }", d));
    EXPECT_TRUE(eval("{ field: ü, eq: ä }", {{"ü", "ä"}}));  // unicode field names
    EXPECT_TRUE(eval("{ field: s, gt: \"z\" }", {{"s", "é"}}));  // UTF-8 bytes sort after ASCII
}

TEST(Condition, VeryLongStrings) {
    const std::string long_a(100'000, 'a');
    const json d = {{"s", long_a + "needle"}};
    EXPECT_TRUE(eval("{ field: s, eq: " + long_a + "needle }", d));
    EXPECT_FALSE(eval("{ field: s, eq: " + long_a + "needlf }", d));
    EXPECT_TRUE(eval("{ field: s, matches: 'needle$' }", d));
    EXPECT_FALSE(eval("{ field: s, matches: '^needle' }", d));
    EXPECT_TRUE(eval("{ field: s, lt: " + long_a + "z }", d));
    EXPECT_TRUE(eval("{ field: s, exists: true }", d));
    const json prev = {{"s", long_a + "needlE"}};
    EXPECT_TRUE(compile("{ changed: s }").eval(d, &prev));
}

// libstdc++'s std::regex matches recursively, one stack frame per character for patterns
// like `^.*@example\.com$`: on a long field value the process dies (SIGSEGV) instead of
// the rule simply not matching. Run in a child so the crash fails only this test.
TEST(ConditionDeathTest, MatchesOnLongStringDoesNotCrash) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    const auto c = compile(R"({ field: email, matches: "^.*@example\\.com$" })");
    const json d = {{"email", std::string(100'000, 'a') + "@example.com"}};
    EXPECT_EXIT(
        {
            const bool r = c.eval(d, nullptr);
            std::exit(r ? 0 : 3);
        },
        ::testing::ExitedWithCode(0), "")
        << "regression: core/rules/condition.cpp Op::Matches uses std::regex_search, which overflows the stack on long input";
}

// ---- compile errors ---------------------------------------------------------------------

TEST(ConditionCompile, UnknownOperatorKey) {
    const std::string msg = compile_error("field: status\nequals: customer\n");
    EXPECT_EQ(msg.rfind("when.yaml:2:1: unknown key 'equals'", 0), 0u) << msg;
    const std::string flow = compile_error("{ field: status, equals: customer }");
    EXPECT_EQ(flow.rfind("when.yaml:1:18: unknown key 'equals'", 0), 0u) << flow;
}

TEST(ConditionCompile, TwoOperators) {
    const std::string msg = compile_error("{ field: n, gt: 1, lt: 5 }");
    EXPECT_EQ(msg.rfind("when.yaml:1:1: condition on 'n' needs exactly one operator", 0), 0u) << msg;
}

TEST(ConditionCompile, FieldWithoutOperatorAndOperatorWithoutField) {
    std::string msg = compile_error("{ field: n }");
    EXPECT_EQ(msg.rfind("when.yaml:1:1: condition on 'n' needs exactly one operator", 0), 0u) << msg;
    msg = compile_error("{ eq: 1 }");
    EXPECT_EQ(msg.rfind("when.yaml:1:1: condition needs 'field'", 0), 0u) << msg;
}

TEST(ConditionCompile, InvalidRegex) {
    const std::string msg = compile_error("field: email\nmatches: '[unclosed'\n");
    EXPECT_EQ(msg.rfind("when.yaml:2:10: matches: invalid regular expression", 0), 0u) << msg;
}

TEST(ConditionCompile, EmptyAllAndAnyLists) {
    std::string msg = compile_error("all: []\n");
    EXPECT_EQ(msg.rfind("when.yaml:1:6: all: expected a non-empty list of conditions", 0), 0u) << msg;
    msg = compile_error("any: []\n");
    EXPECT_EQ(msg.rfind("when.yaml:1:6: any: expected a non-empty list of conditions", 0), 0u) << msg;
    msg = compile_error("any: { field: a, eq: 1 }\n");  // not a list
    EXPECT_EQ(msg.rfind("when.yaml:1:6: any:", 0), 0u) << msg;
}

TEST(ConditionCompile, OrderingNeedsANumberOrAString) {
    for (const char *operand : {"true", "false"}) {
        const std::string msg = compile_error(std::string("{ field: v, gte: ") + operand + " }");
        EXPECT_EQ(msg, "when.yaml:1:18: gte: expected a number or a string (an ISO-8601 date orders as a date)") << operand;
    }
}

TEST(ConditionCompile, CombinatorWithOtherKeys) {
    const std::string msg = compile_error("{ all: [ { field: a, eq: 1 } ], field: b }");
    EXPECT_EQ(msg.rfind("when.yaml:1:1: a condition with all/any/not/changed must have no other keys", 0), 0u) << msg;
}

TEST(ConditionCompile, ErrorsInsideNestedConditionsPointAtTheChild) {
    const std::string msg = compile_error(
        "all:\n"
        "  - { field: a, eq: 1 }\n"
        "  - { field: b, gt: [1] }\n");
    EXPECT_EQ(msg.rfind("when.yaml:3:21: gt: expected a single value", 0), 0u) << msg;
    const std::string deep = compile_error(
        "not:\n"
        "  any:\n"
        "    - { field: a, exists: maybe }\n");
    EXPECT_EQ(deep.rfind("when.yaml:3:27: exists: expected true or false", 0), 0u) << deep;
}

TEST(ConditionCompile, OperandTypeErrors) {
    std::string msg = compile_error("{ field: c, in: DE }");
    EXPECT_EQ(msg.rfind("when.yaml:1:17: in: expected a list of values", 0), 0u) << msg;
    msg = compile_error("{ field: c, not_in: { a: 1 } }");
    EXPECT_EQ(msg.rfind("when.yaml:1:21: not_in: expected a list of values", 0), 0u) << msg;
    msg = compile_error("{ field: c, eq: { a: 1 } }");
    EXPECT_EQ(msg.rfind("when.yaml:1:17: eq: expected a single value", 0), 0u) << msg;
    msg = compile_error("{ changed: [] }");
    EXPECT_EQ(msg.rfind("when.yaml:1:12: changed:", 0), 0u) << msg;
    msg = compile_error("- { field: a, eq: 1 }\n");  // a list, not a condition
    EXPECT_EQ(msg.rfind("when.yaml:1:1: condition: expected a mapping", 0), 0u) << msg;
}

TEST(ConditionCompile, EmptyPathSegment) {
    const std::string msg = compile_error("{ field: a..b, eq: 1 }");
    EXPECT_EQ(msg.rfind("when.yaml:1:10: invalid field path 'a..b': empty segment", 0), 0u) << msg;
}

// A bad path in `changed` must be a positioned ConfigError like one in `field`; RuleSet::load
// collects only ConfigErrors, so anything else escapes it without file:line:col.
TEST(ConditionCompile, EmptyPathSegmentInChanged) {
    for (const char *yaml : {"{ changed: [a., b] }", "{ changed: .a }"}) {
        SCOPED_TRACE(yaml);
        std::string msg;
        try {
            compile(yaml);
            ADD_FAILURE() << "expected an error";
        } catch (const ConfigError &e) {
            msg = e.what();
        } catch (const std::exception &e) {
            ADD_FAILURE() << "regression: core/rules/condition.cpp (changed:) lets " << e.what()
                          << " escape as a plain std::invalid_argument instead of a ConfigError with file:line:col";
            continue;
        }
        EXPECT_EQ(msg.rfind("when.yaml:1:", 0), 0u) << msg;
        EXPECT_NE(msg.find("empty segment"), std::string::npos) << msg;
    }
}

}  // namespace
