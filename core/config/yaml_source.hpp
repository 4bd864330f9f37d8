// Helpers for reading operator-written YAML with errors that point at file:line:col.
// yaml-cpp keeps a Mark (0-based line/column) on every node; every error recsync reports
// about a config, rule or mapping file goes through here so the format is the same.
#pragma once

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace recsync::config {

// An error in an operator-written file. what() is "file:line:col: message".
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Several errors found in one pass (so `recsync check` shows them all at once).
class ConfigErrors : public std::runtime_error {
public:
    explicit ConfigErrors(std::vector<std::string> errors);
    const std::vector<std::string> &errors() const { return errors_; }

private:
    std::vector<std::string> errors_;
};

// "file:line:col" of a node (1-based).
std::string where(const std::string &file, const YAML::Node &node);
std::string where(const std::string &file, const YAML::Mark &mark);

// Throws ConfigError "file:line:col: message" at `node`.
[[noreturn]] void fail(const std::string &file, const YAML::Node &node, const std::string &message);

// Offset of the first byte that is not well-formed UTF-8, or npos. yaml-cpp takes any
// bytes, and a Latin-1 name in a mapping would only fail later, on every event, when the
// payload is written as JSON (fuzz finding F1): load_yaml_file refuses such files.
size_t invalid_utf8_at(std::string_view text);

// Parses a YAML file (UTF-8 only); a syntax error becomes a ConfigError with the parser's
// position. Then check_yaml_structure.
YAML::Node load_yaml_file(const std::string &path);

// Throws ConfigError at the first key written twice in one mapping (yaml-cpp keeps both,
// and node["key"] answers with the first), key that is a list or mapping, alias that
// contains itself, nesting deeper than 64 levels, or alias expansion beyond a million
// values: every later walk of `root` may then assume none of these.
void check_yaml_structure(const std::string &path, const YAML::Node &root);

// Every key of mapping `node` must be one of `allowed`: a typo must never be silently ignored.
void check_keys(const std::string &file, const YAML::Node &node, std::initializer_list<const char *> allowed);

// Typed getters that name the file, line and the expected type on failure.
const YAML::Node &require_map(const std::string &file, const YAML::Node &node, const std::string &what);
std::string get_string(const std::string &file, const YAML::Node &node, const std::string &what);
double get_number(const std::string &file, const YAML::Node &node, const std::string &what);
long long get_int(const std::string &file, const YAML::Node &node, const std::string &what, long long min, long long max);
bool get_bool(const std::string &file, const YAML::Node &node, const std::string &what);

// YAML scalar/sequence/map -> JSON, typing plain scalars the way the YAML 1.2 core
// schema does (true/false, null, integers, floats, else string). Quoted scalars and
// `!!str` stay strings.
nlohmann::json yaml_value_to_json(const YAML::Node &node);

// Strict decimal number: an integer if it is one (exact up to int64), else a finite
// double. No hex, no blanks, no trailing text.
std::optional<nlohmann::json> parse_number(std::string_view text);

}  // namespace recsync::config
