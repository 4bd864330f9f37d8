#include "rest_path.hpp"

namespace rest {

using recsync::sdk::ConfigError;
using recsync::sdk::InvalidInput;
using recsync::sdk::json;
using recsync::sdk::percent_encode;

bool PathTemplate::uses(Kind kind) const {
    for (const auto &p : parts)
        if (p.kind == kind) return true;
    return false;
}

PathTemplate parse_path(std::string_view text, const std::string &where) {
    if (text.empty() || text.front() != '/') throw ConfigError(where + ": must start with '/' (it is appended to the connection's base_url)");
    PathTemplate t;
    t.source = text;
    std::string literal;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '}') throw ConfigError(where + ": '}' without a '{' in " + std::string(text));
        if (c < 0x21 || c == 0x7F) throw ConfigError(where + ": spaces and control characters are not allowed in a path (percent-encode them)");
        if (c != '{') {
            literal += c;
            continue;
        }
        const size_t close = text.find('}', i);
        if (close == std::string_view::npos) throw ConfigError(where + ": '{' without a '}' in " + std::string(text));
        const std::string_view name = text.substr(i + 1, close - i - 1);
        PathTemplate::Part part;
        if (name == "record_key") {
            part.kind = PathTemplate::Kind::RecordKey;
        } else if (name == "external_id") {
            part.kind = PathTemplate::Kind::ExternalId;
        } else if (name.starts_with("field:") && name.size() > 6) {
            part.kind = PathTemplate::Kind::Field;
            part.text = name.substr(6);
        } else {
            throw ConfigError(where + ": unknown placeholder {" + std::string(name) + "} (known: {external_id}, {record_key}, {field:NAME})");
        }
        if (!literal.empty()) t.parts.push_back({PathTemplate::Kind::Text, std::move(literal)});
        literal.clear();
        t.parts.push_back(std::move(part));
        i = close;
    }
    if (!literal.empty()) t.parts.push_back({PathTemplate::Kind::Text, std::move(literal)});
    return t;
}

namespace {

// A payload field as path text: strings as they are, numbers and booleans as JSON writes
// them; empty when absent, null, empty or structured.
std::string field_text(const json *payload, const std::string &name) {
    if (!payload || !payload->is_object()) return {};
    const auto it = payload->find(name);
    if (it == payload->end()) return {};
    if (it->is_string()) return it->get<std::string>();
    if (it->is_number() || it->is_boolean()) return it->dump();
    return {};
}

}  // namespace

std::string expand_path(const PathTemplate &path, const PathValues &v) {
    std::string out;
    for (const auto &p : path.parts) {
        switch (p.kind) {
        case PathTemplate::Kind::Text:
            out += p.text;
            break;
        case PathTemplate::Kind::RecordKey:
            if (v.record_key.empty()) throw InvalidInput(std::string(v.what) + ": the call has no record key for {record_key}");
            out += percent_encode(v.record_key);
            break;
        case PathTemplate::Kind::ExternalId:
            if (v.external_id.empty()) throw InvalidInput(std::string(v.what) + " needs the record's id there ({external_id}), and recsync has none");
            out += percent_encode(v.external_id);
            break;
        case PathTemplate::Kind::Field: {
            const std::string value = field_text(v.payload, p.text);
            if (value.empty()) throw InvalidInput(std::string(v.what) + " needs a non-empty field '" + p.text + "' in the payload (its path has {field:" + p.text + "})");
            out += percent_encode(value);
            break;
        }
        }
    }
    return out;
}

}  // namespace rest
