#include "schema/schema_lint.hpp"

#include "config/yaml_source.hpp"

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace recsync::schema {

namespace {

using nlohmann::json;

// What a keyword's value must be. Hand-written because valijson only reports the first
// problem, without a position, and says nothing of unknown keywords at all.
enum class Kind {
    Any,               // default, const
    Schema,            // not, if, then, else, additionalProperties, contains, ...
    SchemaMap,         // properties, patternProperties, definitions, $defs
    SchemaList,        // allOf, anyOf, oneOf: a non-empty list of schemas
    SchemaOrList,      // items
    Dependencies,      // a schema or a list of property names, per property
    String,            // $id, $ref, title, pattern, format, ...
    Count,             // minLength, maxItems, ...: a whole number >= 0
    Number,            // minimum, maximum, exclusive*, multipleOf (> 0)
    Bool,              // uniqueItems, readOnly, writeOnly
    Names,             // required: a list of distinct strings
    Type,              // a type name or a list of them
    List,              // enum, examples
};

const std::unordered_map<std::string_view, Kind> &keywords() {
    static const std::unordered_map<std::string_view, Kind> k{
        {"$schema", Kind::String},     {"$id", Kind::String},
        {"$ref", Kind::String},        {"$comment", Kind::String},
        {"title", Kind::String},       {"description", Kind::String},
        {"default", Kind::Any},        {"examples", Kind::List},
        {"readOnly", Kind::Bool},      {"writeOnly", Kind::Bool},
        {"definitions", Kind::SchemaMap}, {"$defs", Kind::SchemaMap},
        {"type", Kind::Type},          {"enum", Kind::List},
        {"const", Kind::Any},          {"multipleOf", Kind::Number},
        {"maximum", Kind::Number},     {"exclusiveMaximum", Kind::Number},
        {"minimum", Kind::Number},     {"exclusiveMinimum", Kind::Number},
        {"maxLength", Kind::Count},    {"minLength", Kind::Count},
        {"pattern", Kind::String},     {"format", Kind::String},
        {"contentMediaType", Kind::String}, {"contentEncoding", Kind::String},
        {"items", Kind::SchemaOrList}, {"additionalItems", Kind::Schema},
        {"maxItems", Kind::Count},     {"minItems", Kind::Count},
        {"uniqueItems", Kind::Bool},   {"contains", Kind::Schema},
        {"maxProperties", Kind::Count}, {"minProperties", Kind::Count},
        {"required", Kind::Names},     {"properties", Kind::SchemaMap},
        {"patternProperties", Kind::SchemaMap}, {"additionalProperties", Kind::Schema},
        {"dependencies", Kind::Dependencies}, {"propertyNames", Kind::Schema},
        {"if", Kind::Schema},          {"then", Kind::Schema},
        {"else", Kind::Schema},        {"allOf", Kind::SchemaList},
        {"anyOf", Kind::SchemaList},   {"oneOf", Kind::SchemaList},
        {"not", Kind::Schema},
    };
    return k;
}

constexpr std::string_view kTypes[] = {"null", "boolean", "object", "array", "number", "string", "integer"};
constexpr int kMaxDepth = 64;

// A value as it appears in a message: its JSON, cut after 60 characters.
std::string shown(const json &v) {
    std::string text = v.dump();
    if (text.size() > 60) text = text.substr(0, 57) + "...";
    return text;
}

// JSON Pointer escaping (RFC 6901): '~' -> "~0", '/' -> "~1".
std::string escape(std::string_view key) {
    std::string out;
    for (char c : key) out += c == '~' ? "~0" : c == '/' ? "~1" : std::string(1, c);
    return out;
}

class Linter {
public:
    std::vector<LintError> errors;

    void schema(const json &s, const std::string &at, int depth) {
        if (s.is_boolean()) return;
        if (!s.is_object()) return error(at, "expected a schema (an object, or true/false), got " + std::string(s.type_name()));
        if (depth > kMaxDepth) return error(at, "schemas nested deeper than " + std::to_string(kMaxDepth) + " levels");
        for (const auto &[key, value] : s.items()) {
            const std::string here = at + "/" + escape(key);
            const auto kw = keywords().find(key);
            if (kw == keywords().end()) {
                if (key.rfind("x-", 0) == 0) continue;
                // Words of OpenAPI and later drafts, common in schemas written for them: they
                // check nothing here, but are no misspelling ("example" is not "examples").
                static const std::unordered_set<std::string_view> foreign{"example", "nullable", "deprecated", "id", "$anchor"};
                if (foreign.count(key)) warn(here, "'" + key + "' is not a draft-7 keyword (OpenAPI or a later draft): it checks nothing here");
                else if (const auto likely = near_miss(key); !likely.empty()) error(here, "unknown keyword '" + key + "' (did you mean '" + likely + "'?)");
                else warn(here, "unknown keyword '" + key + "' checks nothing (draft 7 has no such keyword; name your own annotations x-...)");
                continue;
            }
            keyword(key, kw->second, value, here, depth);
        }
    }

private:
    void error(const std::string &at, std::string message) { errors.push_back({at, std::move(message), false}); }
    void warn(const std::string &at, std::string message) { errors.push_back({at, std::move(message), true}); }

    // The keyword `key` likely misspells (the known one with the most letters in place), or "".
    static std::string near_miss(const std::string &key) {
        std::string_view best;
        size_t best_score = 0;
        for (const auto &[kw, _] : keywords()) {
            size_t i = 0, j = 0, same = 0;
            while (i < key.size() && j < kw.size()) {  // greedy common subsequence
                if (key[i] == kw[j]) ++same, ++i, ++j;
                else if (key.size() - i > kw.size() - j) ++i;
                else ++j;
            }
            const size_t longer = std::max(key.size(), kw.size());
            if (same * 4 >= longer * 3 && same > best_score) best = kw, best_score = same;
        }
        return std::string(best);
    }

    void keyword(const std::string &key, Kind kind, const json &v, const std::string &at, int depth) {
        switch (kind) {
            case Kind::Any: return;
            case Kind::Schema: return schema(v, at, depth + 1);
            case Kind::SchemaMap:
                if (!v.is_object()) return error(at, "'" + key + "' expects an object of schemas, got " + v.type_name());
                for (const auto &[name, sub] : v.items()) schema(sub, at + "/" + escape(name), depth + 1);
                return;
            case Kind::SchemaList:
                if (!v.is_array() || v.empty()) return error(at, "'" + key + "' expects a non-empty list of schemas");
                for (size_t i = 0; i < v.size(); ++i) schema(v[i], at + "/" + std::to_string(i), depth + 1);
                return;
            case Kind::SchemaOrList:
                if (!v.is_array()) return schema(v, at, depth + 1);
                for (size_t i = 0; i < v.size(); ++i) schema(v[i], at + "/" + std::to_string(i), depth + 1);
                return;
            case Kind::Dependencies:
                if (!v.is_object()) return error(at, "'dependencies' expects an object");
                for (const auto &[name, dep] : v.items()) {
                    if (dep.is_array()) names("dependencies", dep, at + "/" + escape(name));
                    else schema(dep, at + "/" + escape(name), depth + 1);
                }
                return;
            case Kind::String:
                if (!v.is_string()) error(at, "'" + key + "' expects a string, got " + v.type_name());
                return;
            case Kind::Count:
                if (!v.is_number_integer() || v.get<long long>() < 0)
                    error(at, "'" + key + "' expects a whole number of 0 or more, got " + shown(v));
                return;
            case Kind::Number:
                if (!v.is_number()) return error(at, "'" + key + "' expects a number, got " + shown(v));
                if (key == "multipleOf" && v.get<double>() <= 0) error(at, "'multipleOf' expects a number above 0, got " + shown(v));
                return;
            case Kind::Bool:
                if (!v.is_boolean()) error(at, "'" + key + "' expects true or false, got " + shown(v));
                return;
            case Kind::Names: return names(key, v, at);
            case Kind::Type:
                if (v.is_string()) return type_name(v, at);
                if (!v.is_array() || v.empty()) return error(at, "'type' expects a type name or a non-empty list of them");
                for (size_t i = 0; i < v.size(); ++i) type_name(v[i], at + "/" + std::to_string(i));
                return;
            case Kind::List:
                if (!v.is_array()) error(at, "'" + key + "' expects a list, got " + v.type_name());
                return;
        }
    }

    void type_name(const json &v, const std::string &at) {
        if (v.is_string())
            for (auto t : kTypes)
                if (v.get_ref<const std::string &>() == t) return;
        error(at, "'type' " + shown(v) + " is not a type (expected one of: null, boolean, object, array, number, string, integer)");
    }

    void names(const std::string &key, const json &v, const std::string &at) {
        if (!v.is_array()) return error(at, "'" + key + "' expects a list of property names, got " + shown(v));
        for (size_t i = 0; i < v.size(); ++i) {
            if (!v[i].is_string()) error(at + "/" + std::to_string(i), "'" + key + "' lists property names (strings), got " + shown(v[i]));
            else
                for (size_t k = 0; k < i; ++k)
                    if (v[k] == v[i]) error(at + "/" + std::to_string(i), "'" + key + "' names " + shown(v[i]) + " twice");
        }
    }
};

}  // namespace

std::vector<LintError> lint_schema(const nlohmann::json &schema) {
    Linter l;
    l.schema(schema, "", 0);
    return std::move(l.errors);
}

struct JsonPositions::Impl {
    YAML::Node root;
    bool readable = false;
};

JsonPositions::JsonPositions(const std::string &text) : impl_(std::make_unique<Impl>()) {
    try {
        impl_->root = YAML::Load(text);
        impl_->readable = true;
    } catch (const std::exception &) {
        // Not YAML-readable (a tab inside a flow, say): errors then name the pointer alone.
    }
}

JsonPositions::~JsonPositions() = default;

std::string JsonPositions::structure_error(const std::string &file) const {
    if (!impl_->readable) return "";
    try {
        config::check_yaml_structure(file, impl_->root);
    } catch (const config::ConfigError &e) {
        return e.what();
    }
    return "";
}

std::string JsonPositions::of(const std::string &pointer) const {
    if (!impl_->readable) return "";
    try {
        YAML::Node node;
        node.reset(impl_->root);
        size_t start = 1;  // past the leading '/'
        while (!pointer.empty() && start <= pointer.size()) {
            size_t end = pointer.find('/', start);
            if (end == std::string::npos) end = pointer.size();
            std::string token;
            for (size_t i = start; i < end; ++i) {
                if (pointer[i] == '~' && i + 1 < end) token += pointer[++i] == '0' ? '~' : '/';
                else token += pointer[i];
            }
            // Const lookups and reset(): yaml-cpp's operator= would write through the node.
            const YAML::Node &current = node;
            YAML::Node next;
            if (current.IsSequence()) next.reset(current[std::stoul(token)]);
            else if (current.IsMap()) next.reset(current[token]);
            else return "";
            if (!next.IsDefined()) return "";
            node.reset(next);
            start = end + 1;
        }
        const auto m = node.Mark();
        if (m.is_null()) return "";
        return std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
    } catch (const std::exception &) {
        return "";
    }
}

}  // namespace recsync::schema
