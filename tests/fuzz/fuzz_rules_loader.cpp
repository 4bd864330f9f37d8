// libFuzzer target: bytes as an operator-written rules file.
//
// Each input goes two ways:
//  1. YAML::Load, then the compilers directly on every node that could be a condition or a
//     mapping (rules[*].when, mappings.*, and the root itself), evaluating / applying what
//     compiles against a few fixed records;
//  2. written as the only rules file of a rules dir (beside a fixed schemas/contact.json)
//     and loaded with RuleSet::load, the way `recsync check` and a reload read it; what
//     loads is evaluated and its mappings applied;
//  3. written as schemas/contact.json beside a fixed rules file and loaded the same way
//     (schema lint, positions, valijson's compiler); what loads validates the records.
// Expected outcomes are a compiled result or config::ConfigError / ConfigErrors /
// YAML::Exception (and mapping::MappingError from apply). Anything else escaping, a crash,
// a sanitizer report, a leak or a hang is a finding. See tests/fuzz/README.md.
#include "config/yaml_source.hpp"
#include "mapping/mapping.hpp"
#include "rules/condition.hpp"
#include "rules/rule_set.hpp"

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using nlohmann::json;
using namespace recsync;

namespace {

std::string g_dir;     // the rules dir
std::string g_file;    // the rules file inside it
std::string g_schema;  // its schemas/contact.json

constexpr const char *kFixedSchema = R"({"type":"object","properties":{"email":{"type":"string"}}})";
constexpr const char *kFixedRules = "rules:\n  - name: r\n    on: { entity: contact, event: [created, updated] }\n    do: { action: skip }\n";

void write_file(const std::string &path, const std::string &text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

const std::vector<json> &samples() {
    static const std::vector<json> s = {
        json::object(),
        json::parse(R"({"email":"  Ada@Example.COM ","first_name":" Ada ","last_name":"Lovelace","status":"customer","country":"DE",
                       "company":{"name":"Engines","domain":"engines.io","size":1200},"lifetime_value":1200.5,"score":1,"vip":true,
                       "newsletter":"yes","employees":"42","signed_up":"2019-12-31","tags":["a","b"],"phone":null})"),
        json::parse(R"({"email":"x","status":"test","country":5,"company":"flat","lifetime_value":"12","score":1.0,"vip":"true",
                       "newsletter":0,"employees":[1],"signed_up":20190101,"a":{"b":{"c":{"d":null}}}})"),
    };
    return s;
}

void exercise_condition(const rules::Condition &c) {
    const auto &s = samples();
    for (const auto &d : s) {
        (void)c.eval(d, nullptr);
        for (const auto &p : s) (void)c.eval(d, &p);
    }
}

void exercise_mapping(const mapping::Mapping &m) {
    for (const auto &d : samples()) {
        try {
            (void)m.apply(d).dump();
        } catch (const mapping::MappingError &) {
        }
    }
}

// Runs `f`, swallowing only the exceptions a bad rules file is documented to raise.
template <class F>
void expected_failures_ok(F &&f) {
    try {
        f();
    } catch (const config::ConfigError &) {
    } catch (const config::ConfigErrors &) {
    } catch (const YAML::Exception &) {
    }
}

void compile_nodes(const YAML::Node &root) {
    const std::string file = "fuzz.yaml";
    // The root itself as a condition and as a mapping.
    expected_failures_ok([&] { exercise_condition(rules::compile_condition(file, root)); });
    expected_failures_ok([&] { exercise_mapping(mapping::compile_mapping(file, "root", root)); });
    if (!root.IsMap()) return;
    expected_failures_ok([&] {
        const YAML::Node ms = root["mappings"];
        if (!ms || !ms.IsMap()) return;
        for (const auto &kv : ms)
            expected_failures_ok([&] { exercise_mapping(mapping::compile_mapping(file, kv.first.Scalar(), kv.second)); });
    });
    expected_failures_ok([&] {
        const YAML::Node rs = root["rules"];
        if (!rs || !rs.IsSequence()) return;
        for (const auto &r : rs)
            expected_failures_ok([&] {
                if (r.IsMap() && r["when"]) exercise_condition(rules::compile_condition(file, r["when"]));
            });
    });
}

void load_dir(const std::string &text) {
    write_file(g_file, text);
    std::shared_ptr<const rules::RuleSet> set;
    expected_failures_ok([&] { set = rules::RuleSet::load(g_dir); });
    if (!set) return;
    const auto &s = samples();
    for (uint8_t ev : {rules::kCreated, rules::kUpdated, rules::kDeleted})
        for (const auto &d : s)
            for (const auto *r : set->evaluate("internal", "contact", ev, d, &s[1]))
                if (r->mapping) exercise_mapping(*r->mapping);
    for (const auto &[name, m] : set->mappings) exercise_mapping(m);
}

void load_schema(const std::string &text) {
    write_file(g_schema, text);
    write_file(g_file, kFixedRules);
    std::shared_ptr<const rules::RuleSet> set;
    expected_failures_ok([&] { set = rules::RuleSet::load(g_dir); });
    if (set)
        if (const auto *schema = set->entity_schema("contact"))
            for (const auto &d : samples()) (void)schema->validate(d), (void)schema->validate_text(d.dump());
    write_file(g_schema, kFixedSchema);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    // /dev/shm keeps the per-input file write off the disk when it exists.
    std::string base = fs::is_directory("/dev/shm") ? "/dev/shm" : (std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp");
    std::string tmpl = base + "/recsync-fuzz-rules-XXXXXX";
    if (!mkdtemp(tmpl.data())) std::abort();
    g_dir = tmpl;
    g_file = g_dir + "/rules.yaml";
    g_schema = g_dir + "/schemas/contact.json";
    fs::create_directories(g_dir + "/schemas");
    write_file(g_schema, kFixedSchema);
    // Remove the dir when the fuzzer exits normally.
    std::atexit([] {
        std::error_code ec;
        fs::remove_all(g_dir, ec);
    });
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string text(reinterpret_cast<const char *>(data), size);
    // As in production, only UTF-8 reaches the compilers (load_yaml_file refuses the rest).
    // And, as load_yaml_file does, with cycles, duplicate keys and alias bombs refused first.
    if (config::invalid_utf8_at(text) == std::string_view::npos)
        expected_failures_ok([&] {
            const YAML::Node root = YAML::Load(text);
            config::check_yaml_structure("fuzz.yaml", root);
            compile_nodes(root);
        });
    load_dir(text);
    load_schema(text);
    return 0;
}
