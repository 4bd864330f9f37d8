#include "schema/json_schema.hpp"

#include "schema/fast_check.hpp"

#include <nlohmann/json.hpp>
#include "schema/valijson.hpp"

#include <re2/re2.h>

#include <stdexcept>

namespace recsync::schema {

// `pattern`s on the properties chain (root.properties.a.properties.b...) are checked with
// RE2 here rather than by valijson, which uses std::regex: that recurses once per input
// character, so one long string (a 50 kB "email") overflowed the stack and killed the
// process (fuzz finding F2). RE2 is linear and does not recurse.
struct PatternCheck {
    std::vector<std::string> path;  // property names from the root
    std::string source;
    std::unique_ptr<re2::RE2> regex;
};

struct JsonSchema::Impl {
    valijson::Schema schema;
    std::vector<PatternCheck> patterns;
    std::unique_ptr<const FastCheck> fast;  // null if the schema needs valijson's full coverage
};

namespace {

// Moves the `pattern`s reachable through nested "properties" out of `node` into `out`.
void take_patterns(nlohmann::json &node, std::vector<std::string> &path, std::vector<PatternCheck> &out, const std::string &name) {
    if (!node.is_object()) return;
    if (auto it = node.find("pattern"); it != node.end() && it->is_string()) {
        re2::RE2::Options opts;
        opts.set_log_errors(false);
        auto re = std::make_unique<re2::RE2>(it->get<std::string>(), opts);
        if (!re->ok()) {
            std::string where = "<root>";
            for (const auto &p : path) where += "[" + p + "]";
            throw std::runtime_error(name + ": invalid pattern at " + where + ": " + re->error() +
                                     " (patterns use RE2 syntax: no backreferences or lookaround)");
        }
        out.push_back({path, it->get<std::string>(), std::move(re)});
        node.erase(it);
    }
    if (auto props = node.find("properties"); props != node.end() && props->is_object()) {
        for (auto &[key, sub] : props->items()) {
            path.push_back(key);
            take_patterns(sub, path, out, name);
            path.pop_back();
        }
    }
}

}  // namespace

JsonSchema::JsonSchema() : impl_(std::make_unique<Impl>()) {}
JsonSchema::~JsonSchema() = default;

std::shared_ptr<const JsonSchema> JsonSchema::compile(const nlohmann::json &schema, const std::string &name) {
    if (!schema.is_object() && !schema.is_boolean()) throw std::runtime_error(name + ": a JSON Schema must be an object");
    auto s = std::shared_ptr<JsonSchema>(new JsonSchema());
    s->name_ = name;
    s->impl_->fast = FastCheck::compile(schema, name);
    nlohmann::json rest = schema;
    std::vector<std::string> path;
    take_patterns(rest, path, s->impl_->patterns, name);
    try {
        valijson::SchemaParser parser;
        valijson::adapters::NlohmannJsonAdapter adapter(rest);
        parser.populateSchema(adapter, s->impl_->schema);
    } catch (const std::exception &e) {
        throw std::runtime_error(name + ": invalid JSON Schema: " + e.what());
    }
    return s;
}

std::vector<std::string> JsonSchema::validate_text(const std::string &text) const {
    if (impl_->fast && impl_->fast->check_text(text) == FastCheck::TextVerdict::Valid) return {};
    return validate(nlohmann::json::parse(text));
}

std::vector<std::string> JsonSchema::validate(const nlohmann::json &doc) const {
    // Valid data takes the compiled fast check (fast_check.hpp); the rest, and schemas it
    // does not cover, go through valijson, which also words the messages.
    // One Validator per thread, kept: it caches compiled `pattern` regexes, and building
    // one per call recompiled every pattern for every event (80% of planning time in
    // bench/run rules). Fast path without ValidationResults: valijson stops at the first
    // failure and builds no context strings; only invalid data pays for the messages.
    if (impl_->fast && impl_->fast->valid(doc)) return {};
    thread_local valijson::Validator validator;
    valijson::adapters::NlohmannJsonAdapter target(doc);
    std::vector<std::string> errors;
    for (const auto &p : impl_->patterns) {
        const nlohmann::json *v = &doc;
        for (const auto &key : p.path) {
            if (!v->is_object()) break;
            auto it = v->find(key);
            v = it == v->end() ? nullptr : &*it;
            if (!v) break;
        }
        if (!v || !v->is_string() || re2::RE2::PartialMatch(v->get_ref<const std::string &>(), *p.regex)) continue;
        std::string where = "<root>";
        for (const auto &key : p.path) where += "[" + key + "]";
        errors.push_back(where + ": does not match the pattern '" + p.source + "'");
    }
    if (validator.validate(impl_->schema, target, nullptr)) return errors;
    valijson::ValidationResults results;
    validator.validate(impl_->schema, target, &results);
    valijson::ValidationResults::Error e;
    while (results.popError(e)) {
        std::string path;
        for (const auto &c : e.context) path += c;  // valijson's context reads like "<root>[email]"
        errors.push_back(path + ": " + e.description);
    }
    if (errors.empty()) errors.push_back("<root>: does not match the schema");
    return errors;
}

}  // namespace recsync::schema
