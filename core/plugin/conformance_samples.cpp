#include "plugin/conformance_samples.hpp"

namespace recsync::plugin {

using nlohmann::json;

namespace {

constexpr int kMaxDepth = 8;  // schemas nest a few levels; deeper is a cycle or a trap
constexpr size_t kMaxLength = 64 * 1024;

std::optional<json> value_of(const json &schema, const std::string &where, std::string &why, int depth) {
    if (depth > kMaxDepth) {
        why = where + ": nested deeper than " + std::to_string(kMaxDepth) + " levels";
        return std::nullopt;
    }
    if (!schema.is_object()) return json("conformance");  // `true` or a missing schema: anything goes
    if (const auto c = schema.find("const"); c != schema.end()) return *c;
    if (const auto e = schema.find("enum"); e != schema.end() && e->is_array() && !e->empty()) return e->front();
    if (const auto d = schema.find("default"); d != schema.end()) return *d;
    json type = schema.value("type", json());
    if (type.is_array()) type = type.empty() ? json() : type.front();
    const std::string t = type.is_string() ? type.get<std::string>() : (schema.contains("properties") ? "object" : "");
    if (t == "string") {
        const std::string format = schema.value("format", "");
        if (format == "email") return json("conformance@example.com");
        if (format == "date-time") return json("2024-01-01T00:00:00Z");
        if (format == "date") return json("2024-01-01");
        const size_t min = schema.value("minLength", 0u);
        if (min > kMaxLength) {  // a schema's number is no reason to allocate gigabytes at a reload
            why = where + ": minLength " + std::to_string(min) + " is longer than the kit builds (" + std::to_string(kMaxLength) + ")";
            return std::nullopt;
        }
        return json(std::string("conformance").append(min > 11 ? min - 11 : 0, 'x'));
    }
    if (t == "integer" || t == "number") return json(std::max<int64_t>(1, schema.value("minimum", int64_t{1})));
    if (t == "boolean") return json(true);
    if (t == "null") return json(nullptr);
    if (t == "object") {
        json out = json::object();
        const json props = schema.value("properties", json::object());
        for (const auto &name : schema.value("required", json::array())) {
            if (!name.is_string()) continue;
            const std::string n = name.get<std::string>();
            auto v = value_of(props.is_object() && props.contains(n) ? props[n] : json(), where + "." + n, why, depth + 1);
            if (!v) return std::nullopt;
            out[n] = std::move(*v);
        }
        return out;
    }
    why = where + ": cannot guess a value for type '" + (t.empty() ? type.dump() : t) + "'";
    return std::nullopt;
}

}  // namespace

std::optional<json> sample_from_schema(const json &schema, std::string &why) {
    std::optional<json> v;
    try {
        v = value_of(schema, "the schema", why, 0);
    } catch (const json::exception &e) {  // e.g. "minLength": "three"
        why = std::string("the schema: ") + e.what();
        return std::nullopt;
    }
    if (v && !v->is_object()) {
        why = "the schema is not an object's";
        return std::nullopt;
    }
    return v;
}

SampleRecord sample_for(const json &object) {
    SampleRecord s;
    if (const auto it = object.find("sample"); it != object.end()) {
        if (it->is_object()) {
            s.record = *it;
            s.from_describe = true;
        } else {
            s.why_none = "describe's \"sample\" is not a JSON object";
            s.malformed = true;
        }
        return s;
    }
    std::string why;
    s.record = sample_from_schema(object.value("schema", json()), why);
    if (!s.record) s.why_none = "no \"sample\" in describe, and none can be built from the schema (" + why + ")";
    return s;
}

}  // namespace recsync::plugin
