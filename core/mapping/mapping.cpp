#include "mapping/mapping.hpp"

#include "config/yaml_source.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace recsync::mapping {

using nlohmann::json;
using config::fail;

namespace {

std::string to_text(const json &v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_integer() || v.is_number_unsigned()) return v.dump();
    if (v.is_number_float()) {
        const double d = v.get<double>();
        if (std::floor(d) == d && std::fabs(d) < 1e15) return std::to_string(static_cast<long long>(d));
        return v.dump();
    }
    if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
    return v.dump();
}

json convert(Conversion c, const json &v, const std::string &field) {
    auto need_string = [&](const char *op) {
        if (!v.is_string()) throw MappingError("field '" + field + "': " + op + " needs a string, got " + v.type_name());
        return v.get<std::string>();
    };
    switch (c) {
        case Conversion::Trim: {
            std::string s = need_string("trim");
            const auto b = s.find_first_not_of(" \t\r\n");
            const auto e = s.find_last_not_of(" \t\r\n");
            return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
        }
        case Conversion::Lower: {
            std::string s = need_string("lower");
            std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
            return s;
        }
        case Conversion::Upper: {
            std::string s = need_string("upper");
            std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
            return s;
        }
        case Conversion::ToString: return to_text(v);
        case Conversion::ToNumber: {
            if (v.is_number()) return v;
            if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
            const std::string s = need_string("to_number");
            if (auto n = config::parse_number(s)) return *n;
            throw MappingError("field '" + field + "': to_number: '" + s + "' is not a number");
        }
        case Conversion::ToBool: {
            if (v.is_boolean()) return v;
            if (v.is_number()) return v.get<double>() != 0;
            const std::string s = need_string("to_bool");
            if (s == "true" || s == "1" || s == "yes") return true;
            if (s == "false" || s == "0" || s == "no" || s.empty()) return false;
            throw MappingError("field '" + field + "': to_bool: '" + s + "' is not a boolean");
        }
    }
    return v;
}

Conversion parse_conversion(const std::string &file, const YAML::Node &n) {
    const std::string name = config::get_string(file, n, "convert");
    if (name == "trim") return Conversion::Trim;
    if (name == "lower") return Conversion::Lower;
    if (name == "upper") return Conversion::Upper;
    if (name == "to_string") return Conversion::ToString;
    if (name == "to_number") return Conversion::ToNumber;
    if (name == "to_bool") return Conversion::ToBool;
    fail(file, n, "unknown conversion '" + name + "' (expected one of: trim, lower, upper, to_string, to_number, to_bool)");
}

util::JsonPath path_of(const std::string &file, const YAML::Node &n, const char *what) {
    try {
        return util::JsonPath(config::get_string(file, n, what));
    } catch (const std::invalid_argument &e) {
        fail(file, n, e.what());
    }
}

}  // namespace

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
        config::check_keys(file, f, {"from", "to", "value", "convert", "default", "required"});
        FieldMapping fm;
        fm.where = config::where(file, f);
        if (!f["to"]) fail(file, f, "mapping '" + name + "': field needs 'to'");
        fm.to = path_of(file, f["to"], "to");
        if (f["from"] && f["value"]) fail(file, f, "mapping '" + name + "': field '" + fm.to.text() + "' has both 'from' and 'value'; use one");
        if (f["from"]) fm.from = path_of(file, f["from"], "from");
        else if (f["value"]) fm.constant = config::yaml_value_to_json(f["value"]);
        else fail(file, f, "mapping '" + name + "': field '" + fm.to.text() + "' needs 'from' (a source field) or 'value' (a constant)");
        if (const auto c = f["convert"]) {
            if (c.IsSequence())
                for (const auto &one : c) fm.conversions.push_back(parse_conversion(file, one));
            else
                fm.conversions.push_back(parse_conversion(file, c));
        }
        if (f["default"]) fm.default_value = config::yaml_value_to_json(f["default"]);
        if (f["required"]) fm.required = config::get_bool(file, f["required"], "required");
        m.fields.push_back(std::move(fm));
    }
    return m;
}

json Mapping::apply(const json &record) const {
    json out = json::object();
    for (const auto &f : fields) {
        const json *src = nullptr;
        if (f.constant) src = &*f.constant;
        else src = f.from.find(record);
        if ((!src || src->is_null()) && f.default_value) src = &*f.default_value;
        if (!src || (src->is_null() && f.required)) {
            if (f.required) throw MappingError("mapping '" + name + "': required field '" + f.from.text() + "' is missing");
            continue;  // absent source: leave the target unset
        }
        json value = *src;
        if (!value.is_null()) {
            for (const auto c : f.conversions) value = convert(c, value, f.from.empty() ? f.to.text() : f.from.text());
        }
        if (f.required && value.is_string() && value.get_ref<const std::string &>().empty())
            throw MappingError("mapping '" + name + "': required field '" + f.from.text() + "' is empty");
        f.to.set(out, std::move(value));
    }
    return out;
}

}  // namespace recsync::mapping
