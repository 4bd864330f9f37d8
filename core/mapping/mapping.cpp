#include "mapping/mapping.hpp"

#include "config/yaml_source.hpp"
#include "mapping/quote.hpp"

#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string_view>

namespace recsync::mapping {

using nlohmann::json;
using config::fail;
using detail::quote_value;

namespace {

constexpr const char *kConversions = "trim, lower, upper, to_string, to_number, to_bool, date";

std::string to_text(const json &v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_integer() || v.is_number_unsigned()) {
        std::string text;
        json_text::append(text, v);  // what dump() writes, without its serializer
        return text;
    }
    if (v.is_number_float()) {
        const double d = v.get<double>();
        if (std::floor(d) == d && std::fabs(d) < 1e15) return std::to_string(static_cast<long long>(d));
        return v.dump();
    }
    if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
    return v.dump();
}

const char *a_type(const json &v) {
    if (v.is_object()) return "an object";
    if (v.is_array()) return "an array";
    if (v.is_boolean()) return "a boolean";
    if (v.is_number()) return "a number";
    if (v.is_string()) return "a string";
    return "null";
}

// Applies one conversion in place. Errors name the problem; apply() adds mapping and field.
void convert(const Conversion &c, json &v) {
    auto need_string = [&](const char *op) -> std::string & {
        if (!v.is_string()) throw MappingError(std::string(op) + " needs a string, got " + v.type_name());
        return v.get_ref<std::string &>();
    };
    switch (c.kind) {
        case Conversion::Kind::Trim: {
            std::string &s = need_string("trim");
            const auto b = s.find_first_not_of(" \t\r\n");
            if (b == std::string::npos) {
                s.clear();
                return;
            }
            s.erase(s.find_last_not_of(" \t\r\n") + 1);
            s.erase(0, b);
            return;
        }
        case Conversion::Kind::Lower: {
            std::string &s = need_string("lower");
            std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
            return;
        }
        case Conversion::Kind::Upper: {
            std::string &s = need_string("upper");
            std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
            return;
        }
        case Conversion::Kind::ToString:
            if (!v.is_string()) v = to_text(v);
            return;
        case Conversion::Kind::ToNumber: {
            if (v.is_number()) return;
            if (v.is_boolean()) {
                v = v.get<bool>() ? 1 : 0;
                return;
            }
            const std::string &s = need_string("to_number");
            if (auto n = config::parse_number(s)) {
                v = std::move(*n);
                return;
            }
            throw MappingError("to_number: " + quote_value(s) + " is not a number");
        }
        case Conversion::Kind::ToBool: {
            if (v.is_boolean()) return;
            if (v.is_number()) {
                v = v.get<double>() != 0;
                return;
            }
            const std::string &s = need_string("to_bool");
            if (s == "true" || s == "1" || s == "yes") v = true;
            else if (s == "false" || s == "0" || s == "no" || s.empty()) v = false;
            else throw MappingError("to_bool: " + quote_value(s) + " is not a boolean");
            return;
        }
        case Conversion::Kind::Date:
            try {
                v = c.date_to.format(c.date_from.parse(v));
            } catch (const DateError &e) {
                throw MappingError("date: " + std::string(e.what()));
            }
            return;
    }
}

void apply_map(const ValueMap &m, json &v) {
    if (v.is_object() || v.is_array()) throw MappingError(std::string("map: needs a string, number or boolean, got ") + a_type(v));
    auto it = v.is_string() ? m.entries.find(std::string_view(v.get_ref<const std::string &>())) : m.entries.find(to_text(v));
    if (it != m.entries.end()) {
        v = it->second;
        return;
    }
    if (m.fallback) {
        v = *m.fallback;
        return;
    }
    std::string known;
    size_t shown = 0;
    for (const auto &kv : m.entries) {
        if (shown == 20) {
            known += ", ... (" + std::to_string(m.entries.size() - shown) + " more)";
            break;
        }
        known += (shown++ ? ", " : "") + quote_value(kv.first, 40);
    }
    throw MappingError("map: value " + quote_value(to_text(v)) + " is not in the map (known: " + known + ") and there is no map_default");
}

// ---- compiling ---------------------------------------------------------------------------

Conversion::Kind simple_kind(const std::string &name, bool &found) {
    found = true;
    if (name == "trim") return Conversion::Kind::Trim;
    if (name == "lower") return Conversion::Kind::Lower;
    if (name == "upper") return Conversion::Kind::Upper;
    if (name == "to_string") return Conversion::Kind::ToString;
    if (name == "to_number") return Conversion::Kind::ToNumber;
    if (name == "to_bool") return Conversion::Kind::ToBool;
    found = false;
    return Conversion::Kind::Trim;
}

DateFormat date_format(const std::string &file, const YAML::Node &params, const char *key, DateFormat::Role role, const std::string &ctx) {
    const YAML::Node n = params[key];
    if (!n) fail(file, params, ctx + ": date needs '" + key + "' (iso8601, date, epoch_ms, epoch_s or a pattern such as \"%d/%m/%Y\")");
    const std::string spec = config::get_string(file, n, ctx + ": date." + key);
    try {
        return DateFormat::compile(spec, role);
    } catch (const std::invalid_argument &e) {
        fail(file, n, ctx + ": date." + key + ": " + e.what());
    }
}

// `trim` or `{ date: { from: ..., to: ... } }`. `ctx` is "mapping 'm': field 'f'".
Conversion parse_conversion(const std::string &file, const YAML::Node &n, const std::string &ctx) {
    auto unknown = [&](const YAML::Node &at, const std::string &name) {
        fail(file, at, "unknown conversion '" + name + "' in " + ctx + " (expected one of: " + kConversions + ")");
    };
    Conversion c;
    bool found = false;
    if (n.IsScalar()) {
        const std::string &name = n.Scalar();
        c.kind = simple_kind(name, found);
        if (found) return c;
        if (name == "date") fail(file, n, ctx + ": 'date' needs parameters: { date: { from: <format>, to: <format> } }");
        unknown(n, name);
    }
    if (!n.IsMap() || n.size() != 1)
        fail(file, n, ctx + ": a conversion is a name (trim) or a map with one key ({ date: { from: iso8601, to: epoch_ms } })");
    const auto kv = *n.begin();
    const std::string name = kv.first.IsScalar() ? kv.first.Scalar() : std::string("?");
    simple_kind(name, found);
    if (found) fail(file, kv.first, ctx + ": '" + name + "' takes no parameters; write it as a plain name: " + name);
    if (name != "date") unknown(kv.first, name);
    const YAML::Node params = kv.second;
    config::require_map(file, params, ctx + ": date");
    config::check_keys(file, params, {"from", "to"});
    c.kind = Conversion::Kind::Date;
    c.date_from = date_format(file, params, "from", DateFormat::Role::Parse, ctx);
    c.date_to = date_format(file, params, "to", DateFormat::Role::Format, ctx);
    return c;
}

util::JsonPath path_of(const std::string &file, const YAML::Node &n, const char *what) {
    try {
        return util::JsonPath(config::get_string(file, n, what));
    } catch (const std::invalid_argument &e) {
        fail(file, n, e.what());
    }
}

ValueMap parse_value_map(const std::string &file, const YAML::Node &f, const std::string &ctx) {
    const YAML::Node m = f["map"];
    if (!m.IsMap() || m.size() == 0)
        fail(file, m, ctx + ": 'map' must be a non-empty mapping of source values to target values, e.g. { lead: lead, churned: other }");
    ValueMap vm;
    for (const auto &kv : m) {
        if (!kv.first.IsScalar()) fail(file, kv.first, ctx + ": map keys must be plain values (compared as text)");
        if (!vm.entries.emplace(kv.first.Scalar(), config::yaml_value_to_json(kv.second)).second)
            fail(file, kv.first, ctx + ": map key '" + kv.first.Scalar() + "' appears twice");
    }
    if (f["map_default"]) vm.fallback = config::yaml_value_to_json(f["map_default"]);
    return vm;
}

// Characters (not bytes) before `byte` in UTF-8 `s`, plus one.
size_t char_pos(const std::string &s, size_t byte) {
    size_t n = 1;
    for (size_t i = 0; i < byte && i < s.size(); ++i) n += (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80;
    return n;
}

}  // namespace

// ---- templates ---------------------------------------------------------------------------

Template Template::compile(const std::string &text) {
    Template t;
    t.text_ = text;
    std::string lit;
    auto flush = [&] {
        if (lit.empty()) return;
        t.literal_bytes_ += lit.size();
        t.pieces_.push_back(Piece{std::move(lit), {}});
        lit.clear();
    };
    auto at = [&](size_t byte) { return " at character " + std::to_string(char_pos(text, byte)) + " of " + quote_value(text); };
    for (size_t i = 0; i < text.size();) {
        const char c = text[i];
        if (c == '}') {
            if (i + 1 < text.size() && text[i + 1] == '}') {
                lit += '}';
                i += 2;
                continue;
            }
            throw std::invalid_argument("unmatched '}'" + at(i) + " (write }} for a literal brace)");
        }
        if (c != '{') {
            lit += c;
            ++i;
            continue;
        }
        if (i + 1 < text.size() && text[i + 1] == '{') {
            lit += '{';
            i += 2;
            continue;
        }
        const size_t close = text.find_first_of("{}", i + 1);
        if (close == std::string::npos || text[close] == '{')
            throw std::invalid_argument("unclosed '{'" + at(i) + " (write {{ for a literal brace)");
        const std::string field = text.substr(i + 1, close - i - 1);
        if (field.empty()) throw std::invalid_argument("empty placeholder '{}'" + at(i) + " (write {field} or {{}} for literal braces)");
        if (std::isspace(static_cast<unsigned char>(field.front())) || std::isspace(static_cast<unsigned char>(field.back())))
            throw std::invalid_argument("placeholder '{" + field + "}'" + at(i) + " has blanks around the field name");
        util::JsonPath path;
        try {
            path = util::JsonPath(field);
        } catch (const std::invalid_argument &e) {
            throw std::invalid_argument(std::string(e.what()) + at(i));
        }
        flush();
        t.pieces_.push_back(Piece{{}, std::move(path)});
        i = close + 1;
    }
    flush();
    return t;
}

std::string Template::render(const json &record) const {
    // Two passes over the (few) pieces so the result is allocated once.
    size_t size = literal_bytes_;
    for (const auto &p : pieces_) {
        if (p.field.empty()) continue;
        const json *v = p.field.find(record);
        if (!v || v->is_null()) continue;
        if (v->is_string()) size += v->get_ref<const std::string &>().size();
        else if (v->is_number() || v->is_boolean()) size += 24;
        else throw MappingError("template: {" + p.field.text() + "} is " + a_type(*v) + "; only strings, numbers and booleans can be rendered");
    }
    std::string out;
    out.reserve(size);
    for (const auto &p : pieces_) {
        if (p.field.empty()) {
            out += p.literal;
            continue;
        }
        const json *v = p.field.find(record);
        if (!v || v->is_null()) continue;
        if (v->is_string()) out += v->get_ref<const std::string &>();
        else out += to_text(*v);
    }
    return out;
}

// ---- mappings ----------------------------------------------------------------------------

Mapping compile_mapping(const std::string &file, const std::string &name, const YAML::Node &node) {
    Mapping m;
    m.name = name;
    m.where = config::where(file, node);
    config::require_map(file, node, "mapping '" + name + "'");
    config::check_keys(file, node, {"fields"});
    const YAML::Node fields = node["fields"];
    if (!fields || !fields.IsSequence() || fields.size() == 0) fail(file, node, "mapping '" + name + "': 'fields' must be a non-empty list");
    for (const auto &f : fields) {
        config::require_map(file, f, "mapping '" + name + "' field");
        config::check_keys(file, f, {"from", "to", "value", "template", "convert", "map", "map_default", "default", "required"});
        FieldMapping fm;
        fm.where = config::where(file, f);
        if (!f["to"]) fail(file, f, "mapping '" + name + "': field needs 'to'");
        fm.to = path_of(file, f["to"], "to");
        std::vector<const char *> sources;
        for (const char *k : {"from", "value", "template"})
            if (f[k]) sources.push_back(k);
        if (sources.size() > 1)
            fail(file, f, "mapping '" + name + "': field '" + fm.to.text() + "' has both '" + sources[0] + "' and '" + sources[1] + "'; use one");
        if (sources.empty())
            fail(file, f, "mapping '" + name + "': field '" + fm.to.text() + "' needs 'from' (a source field), 'value' (a constant) or 'template'");
        if (f["from"]) fm.from = path_of(file, f["from"], "from");
        else if (f["value"]) fm.constant = config::yaml_value_to_json(f["value"]);
        const std::string ctx = "mapping '" + name + "': field '" + fm.label() + "'";
        if (const YAML::Node t = f["template"]) {
            if (!t.IsScalar())
                fail(file, t, ctx + ": 'template' must be a string; quote it, e.g. template: \"{first_name} {last_name}\"");
            try {
                fm.templ = Template::compile(t.Scalar());
            } catch (const std::invalid_argument &e) {
                fail(file, t, ctx + ": template: " + e.what());
            }
            if (f["default"]) fail(file, f["default"], ctx + ": a template always renders (missing fields as \"\"), so 'default' would never apply");
        }
        if (const auto c = f["convert"]) {
            if (c.IsSequence())
                for (const auto &one : c) fm.conversions.push_back(parse_conversion(file, one, ctx));
            else
                fm.conversions.push_back(parse_conversion(file, c, ctx));
        }
        if (f["map"]) fm.value_map = parse_value_map(file, f, ctx);
        else if (f["map_default"]) fail(file, f["map_default"], ctx + ": 'map_default' needs 'map'");
        if (f["default"]) fm.default_value = config::yaml_value_to_json(f["default"]);
        if (f["required"]) fm.required = config::get_bool(file, f["required"], "required");
        m.fields.push_back(std::move(fm));
    }
    m.compile_layout();
    return m;
}

namespace {
const json kNotLookedUpMarker;
}
const json *const Mapping::kNotLookedUp = &kNotLookedUpMarker;

bool Mapping::field_value(const FieldMapping &f, const json &record, const json *&value, json &scratch, const json *source) const {
    const json *src = nullptr;
    if (!f.templ) {
        src = f.constant ? &*f.constant : source != kNotLookedUp ? source : f.from.find(record);
        if ((!src || src->is_null()) && f.default_value) src = &*f.default_value;
        if (!src || (src->is_null() && f.required)) {
            if (f.required) throw MappingError("mapping '" + name + "': required field '" + f.label() + "' is missing");
            return false;  // absent source: leave the target unset
        }
    }
    if (f.templ || !f.conversions.empty() || f.value_map) {
        try {
            if (f.templ) scratch = f.templ->render(record);
            else scratch = *src;
            if (!scratch.is_null()) {
                for (const auto &c : f.conversions) convert(c, scratch);
                if (f.value_map) apply_map(*f.value_map, scratch);
            }
        } catch (const MappingError &e) {
            throw MappingError("mapping '" + name + "': field '" + f.label() + "': " + e.what());
        }
        value = &scratch;
    } else {
        value = src;  // used as it is: no copy
    }
    if (f.required && (value->is_null() || (value->is_string() && value->get_ref<const std::string &>().empty())))
        throw MappingError("mapping '" + name + "': required field '" + f.label() + "' is " + (value->is_null() ? "null" : "empty"));
    return true;
}

json Mapping::apply(const json &record) const {
    json out = json::object();
    json scratch;
    for (const auto &f : fields) {
        const json *value = nullptr;
        if (!field_value(f, record, value, scratch)) continue;
        f.to.set(out, value == &scratch ? std::move(scratch) : *value);
    }
    return out;
}

void Mapping::compile_layout() {
    has_layout_ = false;
    layout_.clear();
    top_level_sources_.clear();
    struct Node {
        std::map<std::string, Node> children;  // std::string's order: nlohmann's key order
        int field = -1;
    };
    Node root;
    for (size_t i = 0; i < fields.size(); ++i) {
        Node *cur = &root;
        const std::string &to = fields[i].to.text();  // JsonPath's segments: split on '.', none empty
        for (size_t start = 0;;) {
            const size_t dot = to.find('.', start);
            cur = &cur->children[to.substr(start, dot == std::string::npos ? std::string::npos : dot - start)];
            if (dot == std::string::npos) break;
            if (cur->field >= 0) return;  // a value here is replaced by an object: apply() decides
            start = dot + 1;
        }
        if (cur->field >= 0 || !cur->children.empty()) return;  // same target twice, or a parent of one
        cur->field = static_cast<int>(i);
    }
    for (size_t i = 0; i < fields.size(); ++i) {
        const auto &f = fields[i];
        if (!f.templ && !f.constant && !f.from.empty() && f.from.text().find('.') == std::string::npos)
            top_level_sources_.emplace_back(f.from.text(), i);
    }
    std::sort(top_level_sources_.begin(), top_level_sources_.end());
    auto flatten = [&](auto &&self, const Node &n) -> void {
        for (const auto &[key, child] : n.children) {
            const size_t at = layout_.size();
            LayoutNode ln;
            json_text::append_string(ln.key_text, key);
            ln.key_text += ':';
            ln.field = child.field;
            layout_.push_back(std::move(ln));
            self(self, child);
            layout_[at].end = layout_.size();
        }
    };
    flatten(flatten, root);
    has_layout_ = true;
}

void Mapping::write_object(size_t begin, size_t end, const std::vector<const json *> &values, json_text::Writer &out) const {
    out.raw('{');
    bool first = true;
    for (size_t i = begin; i < end;) {
        const LayoutNode &n = layout_[i];
        bool present = false;
        if (n.field >= 0) {
            present = values[n.field] != nullptr;
        } else {  // an object is there when any value under it is (JsonPath::set creates it then)
            for (size_t j = i + 1; j < n.end && !present; ++j) present = layout_[j].field >= 0 && values[layout_[j].field];
        }
        if (present) {
            if (!first) out.raw(',');
            first = false;
            out.raw(n.key_text);
            if (n.field >= 0) out.value(*values[n.field]);
            else write_object(i + 1, n.end, values, out);
        }
        i = n.field >= 0 ? i + 1 : n.end;
    }
    out.raw('}');
}

void Mapping::apply_text(const json &record, std::string &out) const {
    out.clear();
    if (!has_layout_) {
        out = apply(record).dump();
        return;
    }
    // Per thread, reused: planning maps every fired rule of every event.
    thread_local std::vector<const json *> values;
    thread_local std::vector<json> computed;  // the values of fields with templates, conversions or maps
    thread_local std::vector<const json *> sources;
    values.assign(fields.size(), nullptr);
    if (computed.size() < fields.size()) computed.resize(fields.size());
    sources.assign(fields.size(), kNotLookedUp);
    if (record.is_object()) {  // both sides sorted: one merge walk finds every top-level source
        const auto &members = record.get_ref<const json::object_t &>();
        auto it = members.begin();
        for (const auto &[name, i] : top_level_sources_) {
            while (it != members.end() && it->first < name) ++it;
            sources[i] = it != members.end() && it->first == name ? &it->second : nullptr;
        }
    }
    for (size_t i = 0; i < fields.size(); ++i) {
        const json *value = nullptr;
        if (field_value(fields[i], record, value, computed[i], sources[i])) values[i] = value;
    }
    {
        json_text::Writer writer(out);
        write_object(0, layout_.size(), values, writer);
    }
    // json_text copies string bytes as they are; dump() refuses invalid UTF-8 (a YAML
    // constant or map value can hold it), so let it throw its own error as before.
    if (!simdjson::validate_utf8(out.data(), out.size())) out = apply(record).dump();
}

}  // namespace recsync::mapping
