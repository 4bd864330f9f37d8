// Mappings: rename fields (dotted paths both ways), join fields with templates, apply small
// conversions (trim, lower, dates, ...) and value maps. Compiled from YAML once; apply()
// parses nothing but the record's own values (dates), and allocates little. The same
// language serves outbound (A -> B) and inbound (B -> A) mappings. Anything
// provider-specific belongs in the plugin's transform, not here.
//
// Per field, apply() does, in order:
//   value  = from (or value:, or the rendered template:); default: when missing or null
//   value  = each convert: in order (never on null)
//   value  = map: lookup (never on null), else map_default:, else an error
//   required: missing, null or "" after all that rejects the record
#pragma once

#include "mapping/date_format.hpp"
#include "util/json_path.hpp"

#include <recsync/json_text.hpp>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace recsync::mapping {

struct Conversion {
    enum class Kind { Trim, Lower, Upper, ToString, ToNumber, ToBool, Date };
    Kind kind = Kind::Trim;
    DateFormat date_from;  // Kind::Date only
    DateFormat date_to;
};

// A record that cannot be mapped (a required field missing, a conversion that cannot apply).
// what() names the mapping, the field and the problem.
class MappingError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// `template: "{first_name} {last_name}"`, compiled into literal runs and field paths.
class Template {
public:
    struct Piece {
        std::string literal;   // when `field` is empty
        util::JsonPath field;  // a placeholder
    };

    Template() = default;
    // `{{` and `}}` are literal braces. Throws std::invalid_argument naming the problem and
    // the character position (1-based, in characters) in `text`.
    static Template compile(const std::string &text);

    // Missing and null fields render as ""; strings as-is; numbers and booleans as
    // to_string does. An object or array throws MappingError (the caller adds the mapping).
    std::string render(const nlohmann::json &record) const;

    const std::string &text() const { return text_; }
    const std::vector<Piece> &pieces() const { return pieces_; }

private:
    std::string text_;
    std::vector<Piece> pieces_;
    size_t literal_bytes_ = 0;
};

// `map: {...}` with an optional `map_default:`. Keys are compared with the value as text
// (the text to_string would give).
struct ValueMap {
    std::map<std::string, nlohmann::json, std::less<>> entries;
    std::optional<nlohmann::json> fallback;  // `map_default:`
};

struct FieldMapping {
    util::JsonPath from;  // empty for a constant or a template
    util::JsonPath to;
    std::optional<Template> templ;                // `template:`
    std::vector<Conversion> conversions;
    std::optional<ValueMap> value_map;            // `map:` / `map_default:`
    std::optional<nlohmann::json> constant;       // `value:`
    std::optional<nlohmann::json> default_value;  // used when the source is missing or null
    bool required = false;
    std::string where;  // file:line:col

    // The name used in errors: the source path, else the target path.
    const std::string &label() const { return from.empty() ? to.text() : from.text(); }
};

class Mapping {
public:
    std::string name;
    std::string where;
    std::vector<FieldMapping> fields;

    // Maps `record` to a new object. Throws MappingError naming the mapping and the field.
    nlohmann::json apply(const nlohmann::json &record) const;

    // Writes apply(record) as JSON text into `out` (replacing its content) without building
    // the object: the same text as apply(record).dump() but for the spelling of
    // floating-point numbers (recsync/json_text.hpp), and the same errors, thrown in the
    // same cases. Planning hands the mapped record to the plugin as text, so the document
    // was only ever built to be dumped.
    void apply_text(const nlohmann::json &record, std::string &out) const;

    // Compiles where each field lands in the output object (compile_mapping does it). Without
    // it, or when a target is also the parent of another target (a.b and a.b.c, or the same
    // target twice: later fields overwrite earlier ones), apply_text builds the document.
    void compile_layout();

private:
    // The output object's tree in key order (nlohmann's objects are sorted), flattened in
    // pre-order: an object node's subtree is [its index + 1, end).
    struct LayoutNode {
        std::string key_text;  // the key as JSON text, with the ':'
        int field = -1;        // index in `fields` for a value; -1 for a nested object
        size_t end = 0;
    };
    std::vector<LayoutNode> layout_;
    bool has_layout_ = false;
    // Fields whose source is a top-level member, by its name: apply_text finds them all in
    // one ordered walk over the record instead of one search each.
    std::vector<std::pair<std::string, size_t>> top_level_sources_;

    // The value of field `f` for `record`, as apply() computes it: false if the target is
    // left unset; else `*value` points into the record or the mapping, or at `scratch`.
    // `source`: where `f.from` is in the record, if already found (null: absent).
    static const nlohmann::json *const kNotLookedUp;
    bool field_value(const FieldMapping &f, const nlohmann::json &record, const nlohmann::json *&value, nlohmann::json &scratch,
                     const nlohmann::json *source = kNotLookedUp) const;
    void write_object(size_t begin, size_t end, const std::vector<const nlohmann::json *> &values, json_text::Writer &out) const;
};

// Compiles one mapping from its YAML node ({fields: [...]}). Throws config::ConfigError.
Mapping compile_mapping(const std::string &file, const std::string &name, const YAML::Node &node);

}  // namespace recsync::mapping
