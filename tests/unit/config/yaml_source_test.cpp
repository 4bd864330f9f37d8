// The shared YAML helpers: positions, key checks and typed getters.
#include "config/yaml_source.hpp"
#include "unit/test_support.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <string>

namespace {

using recsync::config::ConfigError;
using recsync::config::ConfigErrors;
namespace cfg = recsync::config;
using recsync::testing::TempDir;

std::string error_of(const std::function<void()> &fn) {
    try {
        fn();
    } catch (const ConfigError &e) {
        return e.what();
    }
    ADD_FAILURE() << "expected ConfigError";
    return {};
}

TEST(YamlSource, WhereIsOneBased) {
    const YAML::Node n = YAML::Load("a: 1\nb:\n  c: xyz\n");
    EXPECT_EQ(cfg::where("f.yaml", n["a"]), "f.yaml:1:4");
    EXPECT_EQ(cfg::where("f.yaml", n["b"]["c"]), "f.yaml:3:6");
    EXPECT_EQ(cfg::where("f.yaml", YAML::Mark::null_mark()), "f.yaml");
}

TEST(YamlSource, CheckKeysRejectsUnknownKeyAtItsPosition) {
    const YAML::Node n = YAML::Load("alpha: 1\nbeta: 2\ngamma: 3\n");
    EXPECT_NO_THROW(cfg::check_keys("f", n, {"alpha", "beta", "gamma"}));
    const std::string msg = error_of([&] { cfg::check_keys("f", n, {"alpha", "gamma"}); });
    EXPECT_EQ(msg, "f:2:1: unknown key 'beta' (expected one of: alpha, gamma)");
}

TEST(YamlSource, TypedGetters) {
    const YAML::Node n = YAML::Load("s: text\nnum: 1.5e2\nint: 42\nfrac: 4.2\nbig: 99\nyes: yes\noff: off\nlist: [1]\nmap: {a: 1}\nbad: 12abc\n");
    EXPECT_EQ(cfg::get_string("f", n["s"], "s"), "text");
    EXPECT_DOUBLE_EQ(cfg::get_number("f", n["num"], "num"), 150.0);
    EXPECT_EQ(cfg::get_int("f", n["int"], "int", 0, 100), 42);
    EXPECT_TRUE(cfg::get_bool("f", n["yes"], "yes"));
    EXPECT_FALSE(cfg::get_bool("f", n["off"], "off"));

    EXPECT_EQ(error_of([&] { cfg::get_string("f", n["list"], "what"); }), "f:8:7: what: expected a string, got a list");
    EXPECT_EQ(error_of([&] { cfg::get_number("f", n["bad"], "what"); }), "f:10:6: what: expected a number, got '12abc'");
    EXPECT_NE(error_of([&] { cfg::get_int("f", n["frac"], "what", 0, 100); }).find("expected a whole number from 0 to 100"), std::string::npos);
    EXPECT_NE(error_of([&] { cfg::get_int("f", n["big"], "what", 0, 10); }).find("got '99'"), std::string::npos);
    EXPECT_EQ(error_of([&] { cfg::get_bool("f", n["s"], "what"); }), "f:1:4: what: expected true or false");
    EXPECT_EQ(error_of([&] { cfg::require_map("f", n["list"], "what"); }), "f:8:7: what: expected a mapping, got a list");
    EXPECT_NO_THROW(cfg::require_map("f", n["map"], "what"));
}

TEST(YamlSource, NonFiniteNumbersAreRejected) {
    const YAML::Node n = YAML::Load("a: nan\nb: inf\nc: 1e999\n");
    for (const char *k : {"a", "b", "c"}) EXPECT_THROW(cfg::get_number("f", n[k], k), ConfigError) << k;
}

TEST(YamlSource, LoadYamlFileReportsSyntaxErrorPosition) {
    TempDir dir;
    const std::string good = dir.write("good.yaml", "a: [1, 2]\n");
    EXPECT_EQ(cfg::load_yaml_file(good)["a"].size(), 2u);

    const std::string bad = dir.write("bad.yaml", "a: 1\nb: : 2\n");
    const std::string msg = error_of([&] { cfg::load_yaml_file(bad); });
    EXPECT_EQ(msg.rfind(bad + ":2:4: invalid YAML:", 0), 0u) << msg;

    const std::string missing = (dir.path() / "nope.yaml").string();
    EXPECT_EQ(error_of([&] { cfg::load_yaml_file(missing); }), missing + ": cannot open file");
}

TEST(YamlSource, AKeyWrittenTwiceIsRefusedWithBothPositions) {
    TempDir dir;
    // The second `action` would be ignored by node["action"]: a typo-class mistake.
    const std::string f = dir.write("dup.yaml", "rules:\n  - name: r\n    do:\n      action: create\n      target: crm\n      action: delete\n");
    EXPECT_EQ(error_of([&] { cfg::load_yaml_file(f); }), f + ":6:7: key 'action' is already set at " + f + ":4:7 (a key may appear once)");
    const std::string flow = dir.write("flow.yaml", "m: { convert: lower, convert: upper }\n");
    EXPECT_EQ(error_of([&] { cfg::load_yaml_file(flow); }), flow + ":1:22: key 'convert' is already set at " + flow + ":1:6 (a key may appear once)");
    const std::string nulls = dir.write("nulls.yaml", "m:\n  ~: 1\n  null: 2\n");
    EXPECT_EQ(error_of([&] { cfg::load_yaml_file(nulls); }), nulls + ":3:3: key '~' is already set at " + nulls + ":2:3 (a key may appear once)");
    const std::string complex = dir.write("complex.yaml", "m:\n  ? [a, b]\n  : 1\n");
    EXPECT_EQ(error_of([&] { cfg::load_yaml_file(complex); }), complex + ":2:5: a key must be a plain value, not a list or a mapping");
    // The same key in different mappings, and repeated list items, are fine.
    const std::string ok = dir.write("ok.yaml", "a: { x: 1 }\nb: { x: 1 }\nc: [x, x]\n");
    EXPECT_EQ(cfg::load_yaml_file(ok)["b"]["x"].as<int>(), 1);
}

TEST(YamlSource, CyclesDeepNestingAndAliasBombsAreRefused) {
    TempDir dir;
    const std::string cycle = dir.write("cycle.yaml", "a: &x [1, *x]\n");
    EXPECT_NE(error_of([&] { cfg::load_yaml_file(cycle); }).find("an alias refers to a node that contains it"), std::string::npos);
    std::string deep;
    for (int i = 0; i < 70; ++i) deep += "[";
    for (int i = 0; i < 70; ++i) deep += "]";
    const std::string nested = dir.write("deep.yaml", "a: " + deep + "\n");
    EXPECT_NE(error_of([&] { cfg::load_yaml_file(nested); }).find("nested deeper than 64 levels"), std::string::npos);
    // Nine levels of ten aliases each expand to 10^9 values.
    std::string bomb = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
    for (int i = 1; i < 9; ++i) {
        const std::string p = "*l" + std::to_string(i - 1);
        bomb += "l" + std::to_string(i) + ": &l" + std::to_string(i) + " [" + p;
        for (int k = 1; k < 10; ++k) bomb += ", " + p;
        bomb += "]\n";
    }
    const std::string laughs = dir.write("bomb.yaml", bomb);
    EXPECT_NE(error_of([&] { cfg::load_yaml_file(laughs); }).find("values once aliases are expanded"), std::string::npos);
    // A shared (non-cyclic) alias is fine.
    const std::string shared = dir.write("shared.yaml", "a: &m { k: 1 }\nb: *m\n");
    EXPECT_EQ(cfg::load_yaml_file(shared)["b"]["k"].as<int>(), 1);
}

TEST(YamlSource, ConfigErrorsJoinsMessages) {
    const ConfigErrors e({"a:1:1: one", "b:2:2: two"});
    EXPECT_STREQ(e.what(), "a:1:1: one\nb:2:2: two");
    ASSERT_EQ(e.errors().size(), 2u);
    EXPECT_EQ(e.errors()[1], "b:2:2: two");
}

}  // namespace
