// Table-driven rules tests: every tests/rules_cases/cases/*.yaml is one case (format in
// tests/rules_cases/README.md). Each case's rules, mappings and schemas are written to a
// private rules dir, a runtime is built with the real HubSpot plugin on three connections
// (hubspot-main, hubspot-eu, hubspot-us; nothing is sent), and each check's event goes
// through plan_event. Failures name the case file and the check.
#include "config/config.hpp"
#include "config/yaml_source.hpp"
#include "engine/runtime_builder.hpp"
#include "pipeline/plan.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using nlohmann::json;
using namespace recsync;

namespace {

const fs::path kCasesDir = fs::path(RECSYNC_SOURCE_DIR) / "tests" / "rules_cases" / "cases";
const fs::path kDefaultSchema = fs::path(RECSYNC_SOURCE_DIR) / "tests" / "rules_cases" / "schemas" / "contact.json";
const char *const kConnections[] = {"hubspot-main", "hubspot-eu", "hubspot-us"};

std::vector<std::string> discover_cases() {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto &e : fs::directory_iterator(kCasesDir, ec))
        if (e.is_regular_file() && (e.path().extension() == ".yaml" || e.path().extension() == ".yml")) out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
}

std::string read_file(const fs::path &p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

class TempDir {
public:
    TempDir() {
        const char *base = std::getenv("TMPDIR");
        std::string tmpl = std::string(base && *base ? base : "/tmp") + "/recsync-rules-case-XXXXXX";
        if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    std::string write(const std::string &name, const std::string &content) const {
        const fs::path p = fs::path(path_) / name;
        fs::create_directories(p.parent_path());
        std::ofstream out(p);
        out << content;
        return p.string();
    }
    const std::string &path() const { return path_; }

private:
    std::string path_;
};

// A JSON value in a case: a YAML map/list/scalar (typed like rules YAML), or a string
// holding JSON text when the exact JSON matters (1 vs 1.0, key order is irrelevant).
json value_of(const YAML::Node &n) {
    if (n.IsScalar() && n.Tag() == "!") {
        const json j = json::parse(n.Scalar(), nullptr, false);
        if (!j.is_discarded() && (j.is_object() || j.is_array())) return j;
    }
    return config::yaml_value_to_json(n);
}

void check_keys(const std::string &label, const YAML::Node &node, const std::set<std::string> &allowed) {
    for (const auto &kv : node)
        if (!allowed.count(kv.first.Scalar())) throw std::runtime_error(label + ": unknown key '" + kv.first.Scalar() + "'");
}

std::string action_text(const pipeline::PlannedAction &a) {
    json j = {{"rule", a.rule}, {"action", a.action}};
    if (a.action != "skip") {
        j["target"] = a.task.connection;
        j["object"] = a.task.object;
        j["key"] = a.task.record_key;
        j["payload"] = a.task.payload.empty() ? json(nullptr) : json::parse(a.task.payload, nullptr, false);
    }
    return j.dump();
}

std::string actions_text(const std::vector<pipeline::PlannedAction> &actions) {
    std::string s;
    for (const auto &a : actions) s += "\n    " + action_text(a);
    return s.empty() ? " (none)" : s;
}

class RulesCase : public ::testing::TestWithParam<std::string> {};

TEST_P(RulesCase, PlansExactlyTheExpectedActions) {
    const fs::path file = GetParam();
    const std::string label = "case " + file.filename().string();
    YAML::Node doc;
    ASSERT_NO_THROW(doc = YAML::LoadFile(file.string())) << label << ": not valid YAML";
    ASSERT_TRUE(doc.IsMap()) << label << ": expected a mapping";
    ASSERT_NO_THROW(check_keys(label, doc, {"description", "rules", "schemas", "checks", "load_error"}));
    ASSERT_TRUE(doc["description"] && doc["description"].IsScalar()) << label << ": needs a 'description'";
    ASSERT_TRUE(doc["rules"] && doc["rules"].IsScalar()) << label << ": needs 'rules' (the rules file's text, as a block scalar)";

    TempDir dir;
    // Plugins dir: private, with a copy of the built HubSpot plugin.
    const fs::path plugins = fs::path(dir.path()) / "plugins";
    fs::create_directories(plugins);
    fs::permissions(plugins, fs::perms::owner_all, fs::perm_options::replace);
    fs::copy_file(fs::path(RECSYNC_PLUGIN_DIR) / "hubspot.so", plugins / "hubspot.so");
    fs::permissions(plugins / "hubspot.so", fs::perms::owner_read | fs::perms::owner_write | fs::perms::owner_exec, fs::perm_options::replace);

    dir.write("rules/case.yaml", doc["rules"].Scalar());
    bool contact_schema = false;
    if (const auto schemas = doc["schemas"]) {
        ASSERT_TRUE(schemas.IsMap()) << label << ": 'schemas' maps an entity to its JSON Schema";
        for (const auto &kv : schemas) {
            dir.write("rules/schemas/" + kv.first.Scalar() + ".json", value_of(kv.second).dump(2));
            contact_schema = contact_schema || kv.first.Scalar() == "contact";
        }
    }
    if (!contact_schema) dir.write("rules/schemas/contact.json", read_file(kDefaultSchema));

    std::string cfg = "plugins_dir: plugins\nrules_dir: rules\nstate: { path: state/recsync.db }\nlog_level: warn\nconnections:\n";
    for (const char *c : kConnections) cfg += std::string("  ") + c + ": { provider: hubspot, base_url: \"http://127.0.0.1:9\" }\n";
    const std::string cfg_path = dir.write("recsync.yaml", cfg);

    std::shared_ptr<const model::Runtime> rt;
    std::string load_error;
    try {
        rt = engine::build_runtime(config::load_config(cfg_path));
    } catch (const std::exception &e) {
        load_error = e.what();
    }
    if (const auto want = doc["load_error"]) {
        ASSERT_FALSE(load_error.empty()) << label << ": expected the rules to be refused with '" << want.Scalar() << "', but they loaded";
        EXPECT_NE(load_error.find(want.Scalar()), std::string::npos) << label << ": expected '" << want.Scalar() << "' in the load error:\n" << load_error;
        return;
    }
    ASSERT_TRUE(load_error.empty()) << label << ": the rules did not load:\n" << load_error;

    const auto checks = doc["checks"];
    ASSERT_TRUE(checks && checks.IsSequence() && checks.size() > 0) << label << ": needs 'checks' (a non-empty list)";
    for (size_t i = 0; i < checks.size(); ++i) {
        const YAML::Node c = checks[i];
        const std::string where = label + " check " + std::to_string(i + 1) + (c["name"] ? " '" + c["name"].Scalar() + "'" : std::string());
        ASSERT_NO_THROW(check_keys(where, c, {"name", "event", "expect", "error"}));
        ASSERT_TRUE(c["event"]) << where << ": needs 'event'";
        ASSERT_TRUE(static_cast<bool>(c["expect"]) != static_cast<bool>(c["error"])) << where << ": needs exactly one of 'expect' (a list of actions) or 'error'";
        const json event = value_of(c["event"]);

        pipeline::EventPlan plan;
        std::string error;
        try {
            plan = pipeline::plan_event(*rt, event);
        } catch (const pipeline::EventError &e) {
            error = e.what();
        }
        if (c["error"]) {
            const std::string want = c["error"].Scalar();
            EXPECT_FALSE(error.empty()) << where << ": expected the event to be rejected with '" << want << "', but it planned:" << actions_text(plan.actions);
            EXPECT_NE(error.find(want), std::string::npos) << where << ": expected '" << want << "' in the error:\n  " << error;
            continue;
        }
        if (!error.empty()) {
            ADD_FAILURE() << where << ": the event was rejected: " << error;
            continue;
        }
        const auto expect = c["expect"];
        if (!expect.IsSequence()) {
            ADD_FAILURE() << where << ": 'expect' must be a list of actions ([] for none)";
            continue;
        }
        const std::string got = actions_text(plan.actions);
        EXPECT_EQ(plan.actions.size(), expect.size()) << where << ": expected " << expect.size() << " action(s), planned:" << got;
        for (size_t k = 0; k < std::min<size_t>(expect.size(), plan.actions.size()); ++k) {
            const YAML::Node want = expect[k];
            const auto &a = plan.actions[k];
            const std::string at = where + " action " + std::to_string(k + 1);
            ASSERT_NO_THROW(check_keys(at, want, {"rule", "action", "target", "object", "key", "payload"}));
            ASSERT_TRUE(want["rule"] && want["action"]) << at << ": needs 'rule' and 'action'";
            EXPECT_EQ(a.rule, want["rule"].Scalar()) << at << ": rule; planned:" << got;
            EXPECT_EQ(a.action, want["action"].Scalar()) << at << ": action; planned:" << got;
            if (a.action == "skip") {
                EXPECT_FALSE(want["target"] || want["object"] || want["payload"]) << at << ": a skip has no target, object or payload";
                continue;
            }
            ASSERT_TRUE(want["target"] && want["object"] && want["key"]) << at << ": needs 'target', 'object' and 'key'";
            EXPECT_EQ(a.task.connection, want["target"].Scalar()) << at << ": target; planned:" << got;
            EXPECT_EQ(a.task.object, want["object"].Scalar()) << at << ": object; planned:" << got;
            EXPECT_EQ(a.task.record_key, want["key"].Scalar()) << at << ": key; planned:" << got;
            if (a.action == "delete") {
                EXPECT_TRUE(a.task.payload.empty()) << at << ": a delete carries no payload, got " << a.task.payload;
                EXPECT_FALSE(want["payload"] && !want["payload"].IsNull()) << at << ": a delete has no payload; write none";
                continue;
            }
            ASSERT_TRUE(want["payload"]) << at << ": needs 'payload' (the exact JSON the plugin produced)";
            const json payload = json::parse(a.task.payload, nullptr, false);
            EXPECT_EQ(payload, value_of(want["payload"])) << at << ": payload; got " << a.task.payload;
        }
    }
}

std::string case_name(const ::testing::TestParamInfo<std::string> &info) {
    std::string n = fs::path(info.param).stem().string();
    for (auto &ch : n)
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
    return n;
}

INSTANTIATE_TEST_SUITE_P(Cases, RulesCase, ::testing::ValuesIn(discover_cases()), case_name);

// The table must stay broad: enough cases, and every operator and feature used somewhere.
TEST(RulesCasesTable, CoversEveryOperatorAndFeature) {
    const auto cases = discover_cases();
    EXPECT_GE(cases.size(), 12u) << "expected at least 12 cases in " << kCasesDir;
    std::string rules, all;
    for (const auto &c : cases) {
        const YAML::Node doc = YAML::LoadFile(c);
        if (doc["rules"]) rules += doc["rules"].Scalar() + "\n";
        all += read_file(c);
    }
    for (const char *op : {"eq:", "ne:", " in:", "not_in:", "gt:", "gte:", "lt:", "lte:", "exists:", "matches:", "changed:", "all:", "any:", "not:",
                           "action: skip", "stop: true", "action: create", "action: update", "action: upsert", "action: delete", "trim", "lower",
                           "upper", "to_string", "to_number", "to_bool", "default:", "required: true", "value:", "date:", "map:", "map_default:", "template:"})
        EXPECT_NE(rules.find(op), std::string::npos) << "no case uses '" << op << "'";
    EXPECT_NE(all.find("load_error:"), std::string::npos) << "no case expects rules to be refused";
    EXPECT_NE(all.find("error:"), std::string::npos) << "no case expects an event to be rejected";
}

}  // namespace
