#include "rules/rule_set.hpp"

#include "config/yaml_source.hpp"
#include "schema/schema_lint.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <stdexcept>

namespace recsync::rules {

namespace fs = std::filesystem;
using config::ConfigError;
using config::fail;

uint8_t parse_event_type(std::string_view n) {
    if (n == "created") return kCreated;
    if (n == "updated") return kUpdated;
    if (n == "deleted") return kDeleted;
    return 0;
}

const char *event_type_name(uint8_t e) {
    switch (e) {
        case kCreated: return "created";
        case kUpdated: return "updated";
        case kDeleted: return "deleted";
        default: return "?";
    }
}

const char *action_name(ActionKind a) {
    switch (a) {
        case ActionKind::Create: return "create";
        case ActionKind::Update: return "update";
        case ActionKind::Upsert: return "upsert";
        case ActionKind::Delete: return "delete";
        case ActionKind::Skip: return "skip";
    }
    return "?";
}

recsync_action to_abi(ActionKind a) {
    switch (a) {
        case ActionKind::Create: return RECSYNC_ACTION_CREATE;
        case ActionKind::Update: return RECSYNC_ACTION_UPDATE;
        case ActionKind::Upsert: return RECSYNC_ACTION_UPSERT;
        case ActionKind::Delete: return RECSYNC_ACTION_DELETE;
        case ActionKind::Skip: break;
    }
    // A skip sends nothing: it has no action at a provider, and no caller asks for one.
    throw std::logic_error("rules::to_abi: skip has no provider action");
}

namespace {

Rule compile_rule(const std::string &file, const YAML::Node &node) {
    config::require_map(file, node, "rule");
    config::check_keys(file, node, {"name", "on", "when", "do"});
    Rule r;
    r.where = config::where(file, node);
    if (!node["name"]) fail(file, node, "rule needs a 'name'");
    r.name = config::get_string(file, node["name"], "name");
    const std::string ctx = "rule '" + r.name + "'";

    const YAML::Node on = node["on"];
    if (!on) fail(file, node, ctx + ": missing 'on' (source, entity, event)");
    config::require_map(file, on, ctx + ": on");
    config::check_keys(file, on, {"source", "entity", "event", "events"});
    r.source = on["source"] ? config::get_string(file, on["source"], "on.source") : "internal";
    if (!on["entity"]) fail(file, on, ctx + ": on needs 'entity'");
    r.entity = config::get_string(file, on["entity"], "on.entity");
    const YAML::Node ev = on["event"] ? on["event"] : on["events"];
    if (!ev) fail(file, on, ctx + ": on needs 'event' (created, updated, deleted or a list of them)");
    auto add_event = [&](const YAML::Node &n) {
        const uint8_t e = parse_event_type(config::get_string(file, n, "event"));
        if (!e) fail(file, n, ctx + ": unknown event '" + n.Scalar() + "' (expected created, updated or deleted)");
        r.events |= e;
    };
    if (ev.IsSequence())
        for (const auto &e : ev) add_event(e);
    else
        add_event(ev);

    if (node["when"]) r.when = compile_condition(file, node["when"]);

    const YAML::Node d = node["do"];
    if (!d) fail(file, node, ctx + ": missing 'do' (action, target, object, mapping)");
    config::require_map(file, d, ctx + ": do");
    config::check_keys(file, d, {"action", "target", "object", "mapping", "stop"});
    if (!d["action"]) fail(file, d, ctx + ": do needs 'action' (create, update, upsert, delete or skip)");
    const std::string action = config::get_string(file, d["action"], "action");
    if (action == "create") r.action = ActionKind::Create;
    else if (action == "update") r.action = ActionKind::Update;
    else if (action == "upsert") r.action = ActionKind::Upsert;
    else if (action == "delete") r.action = ActionKind::Delete;
    else if (action == "skip") r.action = ActionKind::Skip;
    else fail(file, d["action"], ctx + ": unknown action '" + action + "' (expected create, update, upsert, delete or skip)");
    if (d["stop"]) r.stop = config::get_bool(file, d["stop"], "stop");
    if (r.action == ActionKind::Skip) {
        for (const char *k : {"target", "object", "mapping"})
            if (d[k]) fail(file, d[k], ctx + ": a skip rule takes no '" + k + "'");
        return r;
    }
    if (!d["target"]) fail(file, d, ctx + ": do needs 'target' (a connection name)");
    if (!d["object"]) fail(file, d, ctx + ": do needs 'object' (the provider's object, e.g. contacts)");
    r.target = config::get_string(file, d["target"], "target");
    r.target_where = config::where(file, d["target"]);
    r.object = config::get_string(file, d["object"], "object");
    if (d["mapping"]) r.mapping_name = config::get_string(file, d["mapping"], "mapping");
    if (r.action != ActionKind::Delete && r.mapping_name.empty()) fail(file, d, ctx + ": a " + action + " rule needs a 'mapping'");
    return r;
}

// One entity schema file: parsed, checked (misspellings, wrong kinds, repeated keys:
// errors with file:line:col; other unknown words: warnings) and compiled. Null, with its
// errors added to `errors`, if any of that fails.
std::shared_ptr<const schema::JsonSchema> load_entity_schema(const std::string &file, std::vector<std::string> &errors) {
    std::ifstream in(file);
    std::stringstream text;
    text << in.rdbuf();
    const std::string content = text.str();
    try {
        const auto j = nlohmann::json::parse(content);
        const schema::JsonPositions positions(content);
        size_t found = 0;
        if (auto dup = positions.structure_error(file); !dup.empty()) errors.push_back(std::move(dup)), ++found;
        constexpr size_t kShown = 50;  // per file: a broken generator may write thousands
        for (const auto &l : schema::lint_schema(j)) {
            const std::string pos = positions.of(l.pointer);
            std::string line = file + (pos.empty() ? "" : ":" + pos) + ": at '" + (l.pointer.empty() ? "/" : l.pointer) + "': " + l.message;
            if (l.warning) spdlog::warn("{}", line);
            else if (++found <= kShown) errors.push_back(std::move(line));
        }
        if (found > kShown) errors.push_back(file + ": " + std::to_string(found - kShown) + " more error(s) not shown");
        if (found) return nullptr;
        return schema::JsonSchema::compile(j, file);
    } catch (const nlohmann::json::parse_error &pe) {
        // nlohmann reports a byte offset; turn it into line:col for the operator.
        size_t line = 1, col = 1;
        for (size_t i = 0; i < std::min(pe.byte, content.size()) && i + 1 < pe.byte; ++i) {
            if (content[i] == '\n') ++line, col = 1;
            else ++col;
        }
        errors.push_back(file + ":" + std::to_string(line) + ":" + std::to_string(col) + ": invalid JSON: " + pe.what());
    } catch (const std::exception &ex) {
        errors.push_back(std::string(ex.what()));
    }
    return nullptr;
}

}  // namespace

std::shared_ptr<const RuleSet> RuleSet::load(const std::string &dir) {
    auto set = std::make_shared<RuleSet>();
    std::vector<std::string> errors;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw config::ConfigErrors({dir + ": rules directory does not exist"});
    std::vector<fs::path> files;
    for (const auto &e : fs::directory_iterator(dir, ec))
        if (e.is_regular_file() && (e.path().extension() == ".yaml" || e.path().extension() == ".yml")) files.push_back(e.path());
    std::sort(files.begin(), files.end());

    std::map<std::string, std::string> rule_names;  // name -> where, for duplicates
    std::map<std::string, std::string> mapping_where;
    for (const auto &path : files) {
        const std::string file = path.string();
        set->files.push_back(file);
        try {
            const YAML::Node root = config::load_yaml_file(file);
            if (root.IsNull()) continue;
            config::require_map(file, root, "rules file");
            config::check_keys(file, root, {"rules", "mappings"});
            if (const auto ms = root["mappings"]) {
                config::require_map(file, ms, "mappings");
                for (const auto &kv : ms) {
                    const std::string name = kv.first.Scalar();
                    try {
                        if (mapping_where.count(name)) fail(file, kv.first, "mapping '" + name + "' is already defined at " + mapping_where[name]);
                        mapping_where[name] = config::where(file, kv.first);
                        set->mappings.emplace(name, mapping::compile_mapping(file, name, kv.second));
                    } catch (const ConfigError &e) {
                        errors.push_back(e.what());
                    }
                }
            }
            if (const auto rs = root["rules"]) {
                if (!rs.IsSequence()) fail(file, rs, "rules: expected a list of rules");
                for (const auto &rn : rs) {
                    try {
                        Rule r = compile_rule(file, rn);
                        if (rule_names.count(r.name)) fail(file, rn["name"], "rule '" + r.name + "' is already defined at " + rule_names[r.name]);
                        rule_names[r.name] = r.where;
                        set->rules.push_back(std::move(r));
                    } catch (const ConfigError &e) {
                        errors.push_back(e.what());
                    }
                }
            }
        } catch (const ConfigError &e) {
            errors.push_back(e.what());
        }
    }

    // Resolve mapping references now that every file is read.
    for (auto &r : set->rules) {
        if (r.mapping_name.empty()) continue;
        auto it = set->mappings.find(r.mapping_name);
        if (it == set->mappings.end()) errors.push_back(r.where + ": rule '" + r.name + "': unknown mapping '" + r.mapping_name + "'");
        else r.mapping = &it->second;
    }

    const fs::path schemas = fs::path(dir) / "schemas";
    std::set<std::string> schema_files;  // entities with a schema file, loaded or not
    if (fs::is_directory(schemas, ec)) {
        for (const auto &e : fs::directory_iterator(schemas, ec)) {
            if (e.path().extension() != ".json") continue;
            const std::string entity = e.path().stem().string();
            schema_files.insert(entity);
            if (auto compiled = load_entity_schema(e.path().string(), errors)) set->entity_schemas[entity] = std::move(compiled);
        }
    }
    for (const auto &r : set->rules)
        if (r.source == "internal" && !schema_files.count(r.entity))
            errors.push_back(r.where + ": rule '" + r.name + "': entity '" + r.entity + "' has no schema (expected " + (schemas / (r.entity + ".json")).string() + ")");

    if (!errors.empty()) throw config::ConfigErrors(std::move(errors));
    for (const auto &r : set->rules) set->by_source[r.source][r.entity].push_back(&r);
    std::map<std::string, int> slots;
    std::map<std::vector<std::string>, int> in_slots;  // field, then the sorted strings
    std::function<void(Condition &)> number = [&](Condition &c) {
        if (!c.field.empty()) c.slot = slots.emplace(c.field.text(), static_cast<int>(slots.size())).first->second;
        if (c.strings) {
            std::vector<std::string> key(c.strings->begin(), c.strings->end());
            std::sort(key.begin(), key.end());
            key.insert(key.begin(), c.field.text());
            c.in_slot = in_slots.emplace(std::move(key), static_cast<int>(in_slots.size())).first->second;
        }
        c.changed_slots.clear();
        for (const auto &p : c.changed) c.changed_slots.push_back(slots.emplace(p.text(), static_cast<int>(slots.size())).first->second);
        for (auto &child : c.children) number(child);
    };
    for (auto &r : set->rules)
        if (r.when) number(*r.when);
    set->field_slots = slots.size();
    set->in_slots = in_slots.size();
    return set;
}

std::vector<const Rule *> RuleSet::evaluate(std::string_view source, std::string_view entity, uint8_t event, const nlohmann::json &data,
                                            const nlohmann::json *previous) const {
    std::vector<const Rule *> fired;
    const auto by_entity = by_source.find(source);
    if (by_entity == by_source.end()) return fired;
    const auto it = by_entity->second.find(entity);
    if (it == by_entity->second.end()) return fired;
    // Each field looked up once per event in data, and once in previous (the second half);
    // each distinct in/not_in list once. Kept per thread: no allocation once warm.
    thread_local std::vector<const nlohmann::json *> fields;
    thread_local std::vector<int8_t> in_tests;
    fields.assign(2 * field_slots, Condition::kUnresolved);
    in_tests.assign(in_slots, -1);
    const EvalMemo memo{fields.data(), fields.data() + field_slots, in_tests.data()};
    for (const Rule *r : it->second) {
        if (!(r->events & event)) continue;
        if (r->when && !r->when->eval(data, previous, &memo)) continue;
        fired.push_back(r);
        if (r->action == ActionKind::Skip || r->stop) break;
    }
    return fired;
}

const schema::JsonSchema *RuleSet::entity_schema(std::string_view entity) const {
    auto it = entity_schemas.find(std::string(entity));
    return it == entity_schemas.end() ? nullptr : it->second.get();
}

}  // namespace recsync::rules
