#include "schema/fast_check.hpp"

#include <nlohmann/json.hpp>
#include <re2/re2.h>
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>
#include <vector>

namespace recsync::schema {

using nlohmann::json;
using simdjson::dom::element;
using simdjson::dom::element_type;

namespace {

enum TypeBit : uint8_t {
    kNull = 1, kBoolean = 2, kObject = 4, kArray = 8, kString = 16, kInteger = 32, kFloat = 64,
    kAnyType = 127,
};

uint8_t type_bit_of(const std::string &name) {
    if (name == "null") return kNull;
    if (name == "boolean") return kBoolean;
    if (name == "object") return kObject;
    if (name == "array") return kArray;
    if (name == "string") return kString;
    if (name == "integer") return kInteger;
    if (name == "number") return kInteger | kFloat;
    return 0;
}

uint8_t type_bit(const json &v) {
    switch (v.type()) {
        case json::value_t::null: return kNull;
        case json::value_t::boolean: return kBoolean;
        case json::value_t::object: return kObject;
        case json::value_t::array: return kArray;
        case json::value_t::string: return kString;
        case json::value_t::number_integer:
        case json::value_t::number_unsigned: return kInteger;
        case json::value_t::number_float: return kFloat;
        default: return 0;
    }
}

uint8_t type_bit(element v) {
    switch (v.type()) {
        case element_type::NULL_VALUE: return kNull;
        case element_type::BOOL: return kBoolean;
        case element_type::OBJECT: return kObject;
        case element_type::ARRAY: return kArray;
        case element_type::STRING: return kString;
        case element_type::INT64:
        case element_type::UINT64: return kInteger;
        case element_type::DOUBLE: return kFloat;
    }
    return 0;
}

std::string_view string_of(const json &v) { return v.get_ref<const std::string &>(); }
std::string_view string_of(element v) { return v.get_string().value_unsafe(); }
double double_of(const json &v) { return v.get<double>(); }
double double_of(element v) {
    switch (v.type()) {
        case element_type::INT64: return static_cast<double>(v.get_int64().value_unsafe());
        case element_type::UINT64: return static_cast<double>(v.get_uint64().value_unsafe());
        default: return v.get_double().value_unsafe();
    }
}

// Enum membership with nlohmann's equality (1 == 1.0), whichever side was parsed by whom.
bool equals(const json &expected, const json &v) { return expected == v; }
bool equals(const json &expected, element v) {
    switch (v.type()) {
        case element_type::STRING: return expected.is_string() && expected.get_ref<const std::string &>() == string_of(v);
        case element_type::BOOL: return expected.is_boolean() && expected.get<bool>() == v.get_bool().value_unsafe();
        case element_type::NULL_VALUE: return expected.is_null();
        case element_type::INT64: return expected == json(v.get_int64().value_unsafe());
        case element_type::UINT64: return expected == json(v.get_uint64().value_unsafe());
        case element_type::DOUBLE: return expected == json(v.get_double().value_unsafe());
        default: return expected == json::parse(simdjson::minify(v));  // objects and arrays in an enum: rare
    }
}

// Characters as valijson counts them (utils::u8_strlen): up to the first NUL, one per
// byte that does not continue a UTF-8 sequence.
uint64_t utf8_length(std::string_view s) {
    uint64_t n = 0;
    for (size_t i = 0; i < s.size() && s[i] != 0; ++i)
        if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 || i == 0) ++n;
    return n;
}

// Keywords that only annotate: they never make data invalid.
bool is_annotation(const std::string &k) {
    return k == "$schema" || k == "$id" || k == "id" || k == "$comment" || k == "title" || k == "description" || k == "default" ||
           k == "examples" || k == "readOnly" || k == "writeOnly" || k == "deprecated";
}

std::optional<uint64_t> count_of(const json &v) {
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
    return std::nullopt;
}

}  // namespace

struct FastCheck::Node {
    bool always_false = false;  // the schema `false`
    uint8_t types = kAnyType;
    bool has_enum = false;
    std::vector<json> enum_values;  // `const` is an enum of one
    // numbers (NaN = absent)
    double minimum = NAN, maximum = NAN, exclusive_minimum = NAN, exclusive_maximum = NAN;
    // strings
    uint64_t min_length = 0, max_length = std::numeric_limits<uint64_t>::max();
    std::unique_ptr<re2::RE2> pattern;
    // objects: properties sorted by name, like nlohmann's std::map, for a merge walk
    struct Property {
        std::string name;
        std::unique_ptr<Node> schema;  // null: any value (a name only listed in `required`)
        bool required = false;
    };
    std::vector<Property> properties;
    size_t required_count = 0;
    bool additional_allowed = true;
    std::unique_ptr<Node> additional;  // schema for properties not listed; null = any
    std::unique_ptr<Node> property_names;
    uint64_t min_properties = 0, max_properties = std::numeric_limits<uint64_t>::max();
    // arrays
    std::unique_ptr<Node> items;
    uint64_t min_items = 0, max_items = std::numeric_limits<uint64_t>::max();

    template <typename V>
    bool check(const V &v) const;
    bool check_string(std::string_view s) const;
    bool check_object(const json &v) const;     // nlohmann: keys sorted, a merge walk
    bool check_object(element v) const;         // simdjson: document order, a search per key
    const Property *property(std::string_view name) const;
};

bool FastCheck::Node::check_string(std::string_view s) const {
    if (min_length > 0 || max_length != std::numeric_limits<uint64_t>::max()) {
        const uint64_t n = utf8_length(s);
        if (n < min_length || n > max_length) return false;
    }
    return !pattern || re2::RE2::PartialMatch(re2::StringPiece(s.data(), s.size()), *pattern);
}

const FastCheck::Node::Property *FastCheck::Node::property(std::string_view name) const {
    auto it = std::lower_bound(properties.begin(), properties.end(), name, [](const Property &p, std::string_view n) { return p.name < n; });
    return it != properties.end() && it->name == name ? &*it : nullptr;
}

bool FastCheck::Node::check_object(element v) const {
    simdjson::dom::object obj;
    if (v.get_object().get(obj) != simdjson::SUCCESS) return false;
    const size_t n = obj.size();
    if (n < min_properties || n > max_properties) return false;
    // Which required names were seen: a key may repeat in the text, so count names, not
    // hits. A bit mask while there are at most 64 properties (no allocation).
    const bool small = properties.size() <= 64;
    uint64_t mask = 0;
    std::vector<bool> seen(required_count > 0 && !small ? properties.size() : 0);
    for (const auto field : obj) {
        if (property_names && !property_names->check_string(field.key)) return false;
        if (const Property *p = property(field.key)) {
            if (p->schema && !p->schema->check(field.value)) return false;
            if (p->required) {
                const size_t i = static_cast<size_t>(p - properties.data());
                if (small) mask |= uint64_t{1} << i;
                else seen[i] = true;
            }
        } else if (!additional_allowed || (additional && !additional->check(field.value))) {
            return false;
        }
    }
    const size_t required_seen = small ? static_cast<size_t>(__builtin_popcountll(mask)) : static_cast<size_t>(std::count(seen.begin(), seen.end(), true));
    return required_seen == required_count;
}

bool FastCheck::Node::check_object(const json &v) const {
    const auto &obj = v.get_ref<const json::object_t &>();
    if (obj.size() < min_properties || obj.size() > max_properties) return false;
    if (property_names)
        for (const auto &kv : obj)
            if (!property_names->check_string(kv.first)) return false;
    // Merge walk: both sides are sorted by std::string's order. A member before the next
    // listed property is an additional one.
    auto extra_ok = [&](const json &value) { return additional_allowed && (!additional || additional->check(value)); };
    auto it = obj.begin();
    size_t required_seen = 0;
    for (const auto &p : properties) {
        for (; it != obj.end() && it->first < p.name; ++it)
            if (!extra_ok(it->second)) return false;
        if (it != obj.end() && it->first == p.name) {
            if (p.required) ++required_seen;
            if (p.schema && !p.schema->check(it->second)) return false;
            ++it;
        }
    }
    for (; it != obj.end(); ++it)
        if (!extra_ok(it->second)) return false;
    return required_seen == required_count;
}

template <typename V>
bool FastCheck::Node::check(const V &v) const {
    if (always_false) return false;
    const uint8_t t = type_bit(v);
    if (!(types & t)) return false;
    if (has_enum && std::none_of(enum_values.begin(), enum_values.end(), [&](const json &e) { return equals(e, v); })) return false;
    switch (t) {
        case kString: return check_string(string_of(v));
        case kInteger:
        case kFloat: {
            const double d = double_of(v);
            if (!std::isnan(minimum) && d < minimum) return false;
            if (!std::isnan(maximum) && d > maximum) return false;
            if (!std::isnan(exclusive_minimum) && d <= exclusive_minimum) return false;
            if (!std::isnan(exclusive_maximum) && d >= exclusive_maximum) return false;
            return true;
        }
        case kObject: return check_object(v);
        case kArray: {
            if constexpr (std::is_same_v<V, json>) {
                if (v.size() < min_items || v.size() > max_items) return false;
                if (items)
                    for (const auto &e : v)
                        if (!items->check(e)) return false;
            } else {
                simdjson::dom::array arr;
                if (v.get_array().get(arr) != simdjson::SUCCESS || arr.size() < min_items || arr.size() > max_items) return false;
                if (items)
                    for (const element e : arr)
                        if (!items->check(e)) return false;
            }
            return true;
        }
        default: return true;
    }
}

namespace {

// Compiles `s` into `node`; false if it uses anything the checker does not implement.
bool compile_node(const json &s, FastCheck::Node &node, const std::string &name, const std::string &where);

std::unique_ptr<FastCheck::Node> compile_child(const json &s, const std::string &name, const std::string &where, bool &ok) {
    auto child = std::make_unique<FastCheck::Node>();
    if (!compile_node(s, *child, name, where)) ok = false;
    return child;
}

bool compile_node(const json &s, FastCheck::Node &node, const std::string &name, const std::string &where) {
    if (s.is_boolean()) {
        node.always_false = !s.get<bool>();
        return true;
    }
    if (!s.is_object()) return false;
    bool ok = true;
    const json *required = nullptr;
    for (const auto &[k, v] : s.items()) {
        if (is_annotation(k)) continue;
        if (k == "type") {
            node.types = 0;
            if (v.is_string()) {
                node.types = type_bit_of(v.get<std::string>());
                if (!node.types) return false;
            } else if (v.is_array() && !v.empty()) {
                for (const auto &t : v) {
                    if (!t.is_string() || !type_bit_of(t.get<std::string>())) return false;
                    node.types |= type_bit_of(t.get<std::string>());
                }
            } else {
                return false;
            }
        } else if (k == "enum") {
            if (!v.is_array()) return false;
            node.has_enum = true;
            for (const auto &e : v) node.enum_values.push_back(e);
        } else if (k == "const") {
            node.has_enum = true;
            node.enum_values.push_back(v);
        } else if (k == "minimum" || k == "maximum" || k == "exclusiveMinimum" || k == "exclusiveMaximum") {
            if (!v.is_number()) return false;  // draft-4 boolean exclusives: valijson's job
            const double d = v.get<double>();
            (k == "minimum" ? node.minimum : k == "maximum" ? node.maximum : k == "exclusiveMinimum" ? node.exclusive_minimum : node.exclusive_maximum) = d;
        } else if (k == "minLength" || k == "maxLength" || k == "minItems" || k == "maxItems" || k == "minProperties" || k == "maxProperties") {
            const auto n = count_of(v);
            if (!n) return false;
            (k == "minLength"       ? node.min_length
             : k == "maxLength"     ? node.max_length
             : k == "minItems"      ? node.min_items
             : k == "maxItems"      ? node.max_items
             : k == "minProperties" ? node.min_properties
                                    : node.max_properties) = *n;
        } else if (k == "pattern") {
            if (!v.is_string()) return false;
            re2::RE2::Options opts;
            opts.set_log_errors(false);
            node.pattern = std::make_unique<re2::RE2>(v.get<std::string>(), opts);
            if (!node.pattern->ok())
                throw std::runtime_error(name + ": invalid pattern at " + where + ": " + node.pattern->error() +
                                         " (patterns use RE2 syntax: no backreferences or lookaround)");
        } else if (k == "properties") {
            if (!v.is_object()) return false;
            for (const auto &[pname, psub] : v.items())
                node.properties.push_back({pname, compile_child(psub, name, where + "[" + pname + "]", ok), false});
        } else if (k == "required") {
            if (!v.is_array()) return false;
            required = &v;
        } else if (k == "additionalProperties") {
            if (v.is_boolean()) node.additional_allowed = v.get<bool>();
            else node.additional = compile_child(v, name, where + "[additionalProperties]", ok);
        } else if (k == "propertyNames") {
            // Only the string keywords: a name is always a string.
            if (!v.is_object()) return false;
            for (const auto &[nk, _] : v.items())
                if (!is_annotation(nk) && nk != "minLength" && nk != "maxLength" && nk != "pattern") return false;
            node.property_names = compile_child(v, name, where + "[propertyNames]", ok);
        } else if (k == "items") {
            if (!v.is_object() && !v.is_boolean()) return false;  // tuple form: valijson's job
            node.items = compile_child(v, name, where + "[items]", ok);
        } else {
            return false;  // $ref, allOf, anyOf, oneOf, not, if, format, patternProperties, ...
        }
        if (!ok) return false;
    }
    if (required) {
        for (const auto &r : *required) {
            if (!r.is_string()) return false;
            const std::string &rn = r.get_ref<const std::string &>();
            auto it = std::find_if(node.properties.begin(), node.properties.end(), [&](const auto &p) { return p.name == rn; });
            if (it == node.properties.end()) {
                node.properties.push_back({rn, nullptr, true});
                ++node.required_count;
            } else if (!it->required) {
                it->required = true;
                ++node.required_count;
            }
        }
    }
    // Names not listed in `properties` but required: their value must still pass
    // additionalProperties, so give them that schema (or reject when it is `false`).
    for (auto &p : node.properties) {
        if (p.schema) continue;
        if (!node.additional_allowed) p.schema = std::make_unique<FastCheck::Node>(), p.schema->always_false = true;
        else if (node.additional) return false;  // would need a second copy of the subschema; rare
    }
    std::sort(node.properties.begin(), node.properties.end(), [](const auto &a, const auto &b) { return a.name < b.name; });
    return true;
}

}  // namespace

FastCheck::FastCheck() = default;
FastCheck::~FastCheck() = default;

std::unique_ptr<const FastCheck> FastCheck::compile(const json &schema, const std::string &name) {
    auto fc = std::unique_ptr<FastCheck>(new FastCheck());
    fc->root_ = std::make_unique<Node>();
    if (!compile_node(schema, *fc->root_, name, "<root>")) return nullptr;
    return fc;
}

bool FastCheck::valid(const json &doc) const { return root_->check(doc); }

FastCheck::TextVerdict FastCheck::check_text(std::string_view text) const {
    // One parser per thread: it keeps its buffers, so parsing allocates nothing once warm.
    thread_local simdjson::dom::parser parser;
    element doc;
    if (parser.parse(text.data(), text.size(), true).get(doc) != simdjson::SUCCESS) return TextVerdict::Unparsed;
    return root_->check(doc) ? TextVerdict::Valid : TextVerdict::Invalid;
}

}  // namespace recsync::schema
