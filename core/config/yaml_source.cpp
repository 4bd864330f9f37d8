#include "config/yaml_source.hpp"

#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

namespace recsync::config {

namespace {
std::string join(const std::vector<std::string> &lines) {
    std::string out;
    for (const auto &l : lines) out += (out.empty() ? "" : "\n") + l;
    return out;
}

const char *type_name(const YAML::Node &n) {
    switch (n.Type()) {
        case YAML::NodeType::Map: return "a mapping";
        case YAML::NodeType::Sequence: return "a list";
        case YAML::NodeType::Scalar: return "a scalar";
        case YAML::NodeType::Null: return "nothing (null)";
        default: return "nothing";
    }
}

constexpr int kMaxYamlDepth = 64;
constexpr size_t kMaxYamlNodes = 1'000'000;  // aliases can expand exponentially ("billion laughs")

// yaml-cpp keeps every pair of a mapping, and node["key"] answers with the first: a key
// written twice would silently drop the second value. An alias may also point at one of
// its own ancestors (`&a [*a]`), which every later walk would follow forever. Both are
// refused here, once per file, so no reader has to think about them.
void check_structure(const std::string &path, const YAML::Node &node, std::vector<YAML::Node> &ancestors, size_t &visited) {
    if (++visited > kMaxYamlNodes) fail(path, node, "more than " + std::to_string(kMaxYamlNodes) + " values once aliases are expanded");
    if (!node.IsMap() && !node.IsSequence()) return;
    for (const auto &a : ancestors)
        if (a.is(node)) fail(path, node, "an alias refers to a node that contains it (a cycle)");
    if (ancestors.size() >= kMaxYamlDepth) fail(path, node, "nested deeper than " + std::to_string(kMaxYamlDepth) + " levels");
    ancestors.push_back(node);
    if (node.IsMap()) {
        std::map<std::string, YAML::Mark> seen;
        for (const auto &kv : node) {
            // `~:` and `null:` are one key (null); a list or a mapping is no key a reader uses.
            if (!kv.first.IsScalar() && !kv.first.IsNull()) fail(path, kv.first, "a key must be a plain value, not a list or a mapping");
            const std::string key = kv.first.IsNull() ? "~" : kv.first.Scalar();
            const auto [it, fresh] = seen.emplace(key, kv.first.Mark());
            if (!fresh) fail(path, kv.first, "key '" + key + "' is already set at " + where(path, it->second) + " (a key may appear once)");
            check_structure(path, kv.second, ancestors, visited);
        }
    } else {
        for (const auto &item : node) check_structure(path, item, ancestors, visited);
    }
    ancestors.pop_back();
}
}  // namespace

ConfigErrors::ConfigErrors(std::vector<std::string> errors) : std::runtime_error(join(errors)), errors_(std::move(errors)) {}

std::string where(const std::string &file, const YAML::Mark &mark) {
    if (mark.is_null()) return file;
    return file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

std::string where(const std::string &file, const YAML::Node &node) { return where(file, node.Mark()); }

void fail(const std::string &file, const YAML::Node &node, const std::string &message) {
    throw ConfigError(where(file, node) + ": " + message);
}

size_t invalid_utf8_at(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        size_t n = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : 4;
        if (n == 4 || (n == 1 && c < 0xC2) || i + n >= s.size() + (n ? 0 : 1)) return i;
        for (size_t k = 1; k <= n; ++k)
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return i;
        const auto c1 = n ? static_cast<unsigned char>(s[i + 1]) : 0;
        if ((n == 2 && c == 0xE0 && c1 < 0xA0) || (n == 2 && c == 0xED && c1 >= 0xA0) || (n == 3 && c == 0xF0 && c1 < 0x90) || (n == 3 && c > 0xF4) ||
            (n == 3 && c == 0xF4 && c1 >= 0x90))
            return i;  // overlong, surrogate, or beyond U+10FFFF
        i += n + 1;
    }
    return std::string_view::npos;
}

YAML::Node load_yaml_file(const std::string &path) {
    std::ifstream in(path);
    if (!in) throw ConfigError(path + ": cannot open file");
    std::stringstream text;
    text << in.rdbuf();
    const std::string content = text.str();
    if (const size_t bad = invalid_utf8_at(content); bad != std::string_view::npos) {
        size_t line = 1, col = 1;
        for (size_t i = 0; i < bad; ++i) {
            if (content[i] == '\n') ++line, col = 1;
            else ++col;
        }
        throw ConfigError(path + ":" + std::to_string(line) + ":" + std::to_string(col) + ": not valid UTF-8 (save the file as UTF-8)");
    }
    YAML::Node root;
    try {
        root = YAML::Load(content);
    } catch (const YAML::Exception &e) {
        throw ConfigError(where(path, e.mark) + ": invalid YAML: " + e.msg);
    }
    check_yaml_structure(path, root);
    return root;
}

void check_yaml_structure(const std::string &path, const YAML::Node &root) {
    std::vector<YAML::Node> ancestors;
    size_t visited = 0;
    check_structure(path, root, ancestors, visited);
}

void check_keys(const std::string &file, const YAML::Node &node, std::initializer_list<const char *> allowed) {
    for (const auto &kv : node) {
        const std::string key = kv.first.Scalar();
        bool ok = false;
        for (const char *a : allowed) ok = ok || key == a;
        if (!ok) {
            std::string list;
            for (const char *a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
            fail(file, kv.first, "unknown key '" + key + "' (expected one of: " + list + ")");
        }
    }
}

const YAML::Node &require_map(const std::string &file, const YAML::Node &node, const std::string &what) {
    if (!node.IsMap()) fail(file, node, what + ": expected a mapping, got " + type_name(node));
    return node;
}

std::string get_string(const std::string &file, const YAML::Node &node, const std::string &what) {
    if (!node.IsScalar()) fail(file, node, what + ": expected a string, got " + type_name(node));
    return node.Scalar();
}

double get_number(const std::string &file, const YAML::Node &node, const std::string &what) {
    if (!node.IsScalar()) fail(file, node, what + ": expected a number, got " + type_name(node));
    try {
        size_t used = 0;
        const double v = std::stod(node.Scalar(), &used);
        if (used != node.Scalar().size() || !std::isfinite(v)) throw std::invalid_argument("x");
        return v;
    } catch (const std::exception &) {
        fail(file, node, what + ": expected a number, got '" + node.Scalar() + "'");
    }
}

long long get_int(const std::string &file, const YAML::Node &node, const std::string &what, long long min, long long max) {
    const double v = get_number(file, node, what);
    if (v != std::floor(v) || v < static_cast<double>(min) || v > static_cast<double>(max))
        fail(file, node, what + ": expected a whole number from " + std::to_string(min) + " to " + std::to_string(max) + ", got '" + node.Scalar() + "'");
    return static_cast<long long>(v);
}

bool get_bool(const std::string &file, const YAML::Node &node, const std::string &what) {
    if (node.IsScalar()) {
        const auto &s = node.Scalar();
        if (s == "true" || s == "yes" || s == "on") return true;
        if (s == "false" || s == "no" || s == "off") return false;
    }
    fail(file, node, what + ": expected true or false");
}

std::optional<nlohmann::json> parse_number(std::string_view s) {
    if (s.empty()) return std::nullopt;
    const char *b = s.data(), *e = s.data() + s.size();
    if (*b == '+') return std::nullopt;
    int64_t i = 0;
    auto r = std::from_chars(b, e, i);
    if (r.ec == std::errc() && r.ptr == e) return nlohmann::json(i);
    double d = 0;
    r = std::from_chars(b, e, d, std::chars_format::general);  // general: no hex
    if (r.ec == std::errc() && r.ptr == e && std::isfinite(d)) return nlohmann::json(d);
    return std::nullopt;
}

nlohmann::json yaml_value_to_json(const YAML::Node &node) {
    switch (node.Type()) {
        case YAML::NodeType::Map: {
            nlohmann::json o = nlohmann::json::object();
            for (const auto &kv : node) o[kv.first.Scalar()] = yaml_value_to_json(kv.second);
            return o;
        }
        case YAML::NodeType::Sequence: {
            nlohmann::json a = nlohmann::json::array();
            for (const auto &v : node) a.push_back(yaml_value_to_json(v));
            return a;
        }
        case YAML::NodeType::Scalar: {
            const std::string &s = node.Scalar();
            if (node.Tag() == "!" || node.Tag() == "tag:yaml.org,2002:str") return s;  // quoted or !!str
            if (s == "true" || s == "True" || s == "TRUE") return true;
            if (s == "false" || s == "False" || s == "FALSE") return false;
            if (s == "null" || s == "~" || s == "Null" || s == "NULL") return nullptr;
            if (auto n = parse_number(s)) return *n;
            return s;
        }
        default: return nullptr;
    }
}

}  // namespace recsync::config
