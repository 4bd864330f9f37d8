#include "rest_settings.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <initializer_list>

namespace rest {

using recsync::sdk::ConfigError;
using recsync::sdk::Unsupported;

namespace {

[[noreturn]] void fail(const std::string &path, const std::string &message) {
    throw ConfigError("rest settings" + (path.empty() ? std::string() : " " + path) + ": " + message);
}

std::string join(const std::string &path, std::string_view key) { return path.empty() ? std::string(key) : path + "." + std::string(key); }

void check_keys(const json &object, const std::string &path, std::initializer_list<std::string_view> known) {
    for (const auto &[key, value] : object.items()) {
        if (std::find(known.begin(), known.end(), key) != known.end()) continue;
        std::string list;
        for (const auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
        fail(path, "unknown key '" + key + "' (known: " + list + ")");
    }
}

const json &require_object(const json &value, const std::string &path) {
    if (!value.is_object()) fail(path, "must be a map, got " + value.dump());
    return value;
}

std::optional<std::string> optional_string(const json &object, std::string_view key, const std::string &path) {
    const auto it = object.find(key);
    if (it == object.end()) return std::nullopt;
    if (!it->is_string() || it->get_ref<const std::string &>().empty()) fail(join(path, key), "must be a non-empty string, got " + it->dump());
    return it->get<std::string>();
}

std::string required_string(const json &object, std::string_view key, const std::string &path) {
    auto s = optional_string(object, key, path);
    if (!s) fail(join(path, key), "is required");
    return *s;
}

// A JSON pointer (RFC 6901): "" (the whole body) or "/data/id".
std::optional<Pointer> optional_pointer(const json &object, std::string_view key, const std::string &path) {
    const auto it = object.find(key);
    if (it == object.end()) return std::nullopt;
    if (!it->is_string()) fail(join(path, key), "must be a JSON pointer like \"/data/id\", got " + it->dump());
    try {
        return Pointer(it->get<std::string>());
    } catch (const json::exception &) {
        fail(join(path, key), "'" + it->get<std::string>() + "' is not a JSON pointer (\"\" for the whole body, or \"/member/member\")");
    }
}

// An HTTP header name (RFC 9110 token characters).
void check_header_name(const std::string &name, const std::string &path) {
    const bool ok = !name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char c) {
        return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
    });
    if (!ok) fail(path, "'" + name + "' is not an HTTP header name");
}

// A query parameter name: unreserved characters only, so it needs no encoding.
void check_param_name(const std::string &name, const std::string &path) {
    if (recsync::sdk::percent_encode(name) != name) fail(path, "'" + name + "' is not a plain query parameter name (letters, digits, - . _ ~)");
}

int whole_number(const json &object, std::string_view key, const std::string &path, int min, int max, int fallback) {
    const auto it = object.find(key);
    if (it == object.end()) return fallback;
    if (!it->is_number_integer() || it->get<int64_t>() < min || it->get<int64_t>() > max)
        fail(join(path, key), "must be a whole number from " + std::to_string(min) + " to " + std::to_string(max) + ", got " + it->dump());
    return static_cast<int>(it->get<int64_t>());
}

double positive_number(const json &object, std::string_view key, const std::string &path, double fallback) {
    const auto it = object.find(key);
    if (it == object.end()) return fallback;
    if (!it->is_number() || it->get<double>() <= 0) fail(join(path, key), "must be a number above 0, got " + it->dump());
    return it->get<double>();
}

bool boolean(const json &object, std::string_view key, const std::string &path) {
    const auto it = object.find(key);
    if (it == object.end()) return false;
    if (!it->is_boolean()) fail(join(path, key), "must be true or false, got " + it->dump());
    return it->get<bool>();
}

// `body:` record | none | { wrap: NAME }.
void read_body(const json &value, const std::string &path, ActionSpec &a) {
    if (value == "record") {
        a.body = BodyShape::Record;
    } else if (value == "none") {
        a.body = BodyShape::None;
    } else if (value.is_object() && value.size() == 1 && value.contains("wrap") && value["wrap"].is_string() && !value["wrap"].get_ref<const std::string &>().empty()) {
        a.body = BodyShape::Wrapped;
        a.wrap = value["wrap"].get<std::string>();
    } else {
        fail(path, "must be record, none or { wrap: MEMBER }, got " + value.dump());
    }
}

Outcome outcome_named(const json &value, const std::string &path, Verb verb) {
    const std::string text = value.is_string() ? value.get<std::string>() : value.dump();
    if (text == "ok") return Outcome::Ok;
    if (text == "retry") return Outcome::Retry;
    if (text == "fail") return Outcome::Fail;
    if (text == "exists") {
        if (verb != Verb::Create && verb != Verb::Upsert) fail(path, "exists is for create and upsert only");
        return Outcome::Exists;
    }
    if (text == "none") {
        if (verb != Verb::Find) fail(path, "none is for find only");
        return Outcome::None;
    }
    fail(path, "'" + text + "' is not one of ok, retry, fail, exists (create, upsert), none (find)");
}

void read_status(const json &value, const std::string &path, Verb verb, ActionSpec &a) {
    require_object(value, path);
    for (const auto &[key, outcome] : value.items()) {
        int code = 0;
        const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), code);
        if (ec != std::errc() || end != key.data() + key.size() || code < 100 || code > 599) fail(join(path, key), "'" + key + "' is not an HTTP status (100 to 599)");
        a.status[code] = outcome_named(outcome, join(path, key), verb);
    }
}

// Which placeholders a call of `verb` can fill: a delete or read carries no payload, and
// a create, upsert or find has no id there yet.
void check_placeholders(const PathTemplate &t, Verb verb, const std::string &path) {
    const bool payload = verb != Verb::Delete && verb != Verb::Read;
    const bool id = verb == Verb::Update || verb == Verb::Delete || verb == Verb::Read;
    if (!payload && t.uses(PathTemplate::Kind::Field))
        fail(path, "{field:...} takes a value from the payload, and a " + std::string(kVerbNames[static_cast<size_t>(verb)]) + " has none (use {external_id} or {record_key})");
    if (!id && t.uses(PathTemplate::Kind::ExternalId))
        fail(path, "{external_id} is unknown for a " + std::string(kVerbNames[static_cast<size_t>(verb)]) + " (the record has no id there yet)");
    if (verb == Verb::Find && !t.uses(PathTemplate::Kind::Field) && !t.uses(PathTemplate::Kind::RecordKey))
        fail(path, "a find must name the record ({field:NAME} or {record_key}), or it finds every record");
}

struct ObjectDefaults {
    std::optional<Pointer> id;
    std::optional<json> body;
};

ActionSpec read_action(const json &value, const std::string &path, Verb verb, const ObjectDefaults &defaults) {
    require_object(value, path);
    check_keys(value, path, verb == Verb::Read ? std::initializer_list<std::string_view>{"method", "path", "id", "status", "record"}
                            : verb == Verb::Find ? std::initializer_list<std::string_view>{"method", "path", "id", "status", "results"}
                            : verb == Verb::Delete ? std::initializer_list<std::string_view>{"method", "path", "status", "body"}
                                                   : std::initializer_list<std::string_view>{"method", "path", "body", "id", "status", "exists_id"});
    ActionSpec a;
    a.configured = true;
    static constexpr std::array<const char *, kVerbCount> kDefaultMethods = {"POST", "PATCH", "PUT", "DELETE", "GET", "GET"};
    a.method = optional_string(value, "method", path).value_or(kDefaultMethods[static_cast<size_t>(verb)]);
    static constexpr std::array<std::string_view, 5> kMethods = {"GET", "POST", "PUT", "PATCH", "DELETE"};
    if (std::find(kMethods.begin(), kMethods.end(), a.method) == kMethods.end()) fail(join(path, "method"), "'" + a.method + "' is not GET, POST, PUT, PATCH or DELETE");
    a.path = parse_path(required_string(value, "path", path), "rest settings " + join(path, "path"));
    check_placeholders(a.path, verb, "rest settings " + join(path, "path"));
    const bool writes = verb == Verb::Create || verb == Verb::Update || verb == Verb::Upsert;
    if (writes) {
        a.body = BodyShape::Record;
        if (defaults.body) read_body(*defaults.body, path + " (the object's body)", a);
    }
    if (const auto b = value.find("body"); b != value.end()) read_body(*b, join(path, "body"), a);
    if (verb == Verb::Find) {
        a.id = optional_pointer(value, "id", path).value_or(Pointer("/id"));
        a.results = optional_pointer(value, "results", path).value_or(Pointer(""));
    } else if (verb != Verb::Delete) {
        a.id = optional_pointer(value, "id", path);
        if (!a.id) a.id = defaults.id;
        if (!a.id && (verb == Verb::Create || verb == Verb::Upsert)) a.id = Pointer("/id");
    }
    if (verb == Verb::Read) a.record = optional_pointer(value, "record", path).value_or(Pointer(""));
    if (verb == Verb::Delete) a.status[404] = Outcome::Ok;  // already gone
    if (const auto s = value.find("status"); s != value.end()) read_status(*s, join(path, "status"), verb, a);
    a.exists_id = optional_pointer(value, "exists_id", path);
    const bool has_exists = std::any_of(a.status.begin(), a.status.end(), [](const auto &s) { return s.second == Outcome::Exists; });
    if (a.exists_id && !has_exists) fail(join(path, "exists_id"), "is read only for a status marked exists (e.g. status: { 409: exists })");
    return a;
}

PollSpec read_poll(const json &value, const std::string &path, const ObjectSpec &object) {
    require_object(value, path);
    check_keys(value, path, {"path", "since_param", "after_id_param", "page_size_param", "page_size", "start", "items", "id", "updated_at", "created_at", "deleted", "hydrate"});
    PollSpec p;
    p.configured = true;
    p.path = parse_path(required_string(value, "path", path), "rest settings " + join(path, "path"));
    if (p.path.parts.size() != 1 || p.path.parts[0].kind != PathTemplate::Kind::Text) fail(join(path, "path"), "takes no placeholders (the cursor goes in since_param)");
    p.since_param = required_string(value, "since_param", path);
    check_param_name(p.since_param, join(path, "since_param"));
    p.after_id_param = optional_string(value, "after_id_param", path).value_or("");
    if (!p.after_id_param.empty()) check_param_name(p.after_id_param, join(path, "after_id_param"));
    p.page_size_param = optional_string(value, "page_size_param", path).value_or("");
    if (!p.page_size_param.empty()) check_param_name(p.page_size_param, join(path, "page_size_param"));
    p.page_size = whole_number(value, "page_size", path, 1, 10'000, 100);
    p.start = optional_string(value, "start", path).value_or("");
    p.items = optional_pointer(value, "items", path).value_or(Pointer(""));
    p.id = optional_pointer(value, "id", path).value_or(Pointer("/id"));
    p.updated_at = optional_pointer(value, "updated_at", path).value_or(Pointer("/updated_at"));
    p.created_at = optional_pointer(value, "created_at", path);
    p.deleted = optional_pointer(value, "deleted", path);
    p.hydrate = boolean(value, "hydrate", path);
    if (p.hydrate && !object.action(Verb::Read).configured) fail(join(path, "hydrate"), "reads each record, and " + object.name + " has no read action");
    return p;
}

// A flat object of scalars: what the mapped record is unless the settings give a schema.
json flat_record_schema() {
    return {{"type", "object"}, {"additionalProperties", {{"type", json::array({"string", "number", "integer", "boolean", "null"})}}}};
}

ObjectSpec read_object(const std::string &name, const json &value, const std::string &path) {
    require_object(value, path);
    check_keys(value, path, {"schema", "key_field", "id", "body", "modified", "create", "update", "upsert", "delete", "read", "find", "poll"});
    ObjectSpec o;
    o.name = name;
    if (const auto s = value.find("schema"); s != value.end()) {
        if (!s->is_object()) fail(join(path, "schema"), "must be a JSON Schema (a map)");
        o.schema = *s;
        o.flat = false;
    } else {
        o.schema = flat_record_schema();
    }
    o.key_field = optional_string(value, "key_field", path).value_or("");
    ObjectDefaults defaults;
    defaults.id = optional_pointer(value, "id", path);
    if (const auto b = value.find("body"); b != value.end()) defaults.body = *b;
    o.modified = optional_pointer(value, "modified", path);
    bool any = false;
    for (size_t i = 0; i < kVerbCount; ++i) {
        const auto it = value.find(kVerbNames[i]);
        if (it == value.end()) continue;
        o.actions[i] = read_action(*it, join(path, kVerbNames[i]), static_cast<Verb>(i), defaults);
        any = true;
    }
    if (!any) fail(path, "configures no action (create, update, upsert, delete, read, find)");
    if (const auto p = value.find("poll"); p != value.end()) o.poll = read_poll(*p, join(path, "poll"), o);
    return o;
}

std::string credential(const json &config, const char *name, const std::string &why) {
    const auto creds = config.find("credentials");
    if (creds != config.end() && creds->is_object()) {
        const auto it = creds->find(name);
        if (it != creds->end() && it->is_string() && !it->get_ref<const std::string &>().empty()) return it->get<std::string>();
    }
    fail("auth", why + " needs credentials: { " + std::string(name) + "_env: VAR } on the connection");
}

void check_header_value(const std::string &value, const std::string &path) {
    for (const unsigned char c : value)
        if (c < 0x20 || c == 0x7F) fail(path, "the credential contains control characters");  // a CR/LF would inject headers
}

AuthSpec read_auth(const json &config, bool with_token_refresh) {
    const auto it = config.find("auth");
    if (it == config.end()) fail("auth", "is required: { kind: bearer | basic | api_key | oauth_client_credentials | none }");
    const json &a = require_object(*it, "auth");
    const std::string kind = required_string(a, "kind", "auth");
    AuthSpec s;
    if (kind == "none") {
        check_keys(a, "auth", {"kind"});
    } else if (kind == "bearer") {
        check_keys(a, "auth", {"kind"});
        s.kind = AuthKind::Bearer;
    } else if (kind == "basic") {
        check_keys(a, "auth", {"kind"});
        s.kind = AuthKind::Basic;
        s.username = credential(config, "username", "auth kind basic");
        s.password = credential(config, "password", "auth kind basic");
        if (s.username.find(':') != std::string::npos) fail("auth", "a basic username cannot contain ':' (RFC 7617)");
    } else if (kind == "api_key") {
        check_keys(a, "auth", {"kind", "header"});
        s.kind = AuthKind::ApiKey;
        s.header = optional_string(a, "header", "auth").value_or(s.header);
        check_header_name(s.header, "auth.header");
        s.api_key = credential(config, "api_key", "auth kind api_key");
        check_header_value(s.api_key, "auth");
    } else if (kind == "oauth_client_credentials") {
        check_keys(a, "auth", {"kind", "token_path", "scope", "client_auth", "token", "expires_in"});
        s.kind = AuthKind::OAuthClientCredentials;
        const std::string token_path = required_string(a, "token_path", "auth");
        if (token_path.front() != '/') fail("auth.token_path", "must start with '/' (it is appended to the connection's base_url)");
        if (token_path.find_first_of(" \r\n\t{}") != std::string::npos) fail("auth.token_path", "must be a plain path");
        s.token_path = token_path;
        s.scope = optional_string(a, "scope", "auth").value_or("");
        const std::string client_auth = optional_string(a, "client_auth", "auth").value_or("body");
        if (client_auth != "body" && client_auth != "basic") fail("auth.client_auth", "'" + client_auth + "' is not body (the form carries the client id and secret) or basic");
        s.client_basic = client_auth == "basic";
        s.token = optional_pointer(a, "token", "auth").value_or(s.token);
        s.expires_in = optional_pointer(a, "expires_in", "auth").value_or(s.expires_in);
        s.client_id = credential(config, "client_id", "auth kind oauth_client_credentials");
        s.client_secret = credential(config, "client_secret", "auth kind oauth_client_credentials");
    } else {
        fail("auth.kind", "'" + kind + "' is not bearer, basic, api_key, oauth_client_credentials or none");
    }
    // Capabilities are fixed per plugin file, and the host treats a plugin that refreshes
    // tokens differently (every call waits for its token): hence one build for each.
    if (with_token_refresh && s.kind != AuthKind::OAuthClientCredentials)
        fail("auth.kind", "provider rest_oauth takes oauth_client_credentials only; use provider: rest for " + kind);
    if (!with_token_refresh && s.kind == AuthKind::OAuthClientCredentials)
        fail("auth.kind", "oauth_client_credentials needs provider: rest_oauth (the same plugin built with the host's token refresh)");
    return s;
}

RateLimitHeaders read_rate_headers(const json &config) {
    RateLimitHeaders h;
    const auto it = config.find("rate_limit_headers");
    if (it == config.end()) return h;
    const std::string path = "rate_limit_headers";
    require_object(*it, path);
    check_keys(*it, path, {"limit", "remaining", "reset", "reset_is", "window_s"});
    h.limit = optional_string(*it, "limit", path).value_or("");
    h.remaining = required_string(*it, "remaining", path);
    h.reset = optional_string(*it, "reset", path).value_or("");
    for (const auto *name : {&h.limit, &h.remaining, &h.reset})
        if (!name->empty()) check_header_name(*name, path);
    const std::string reset_is = optional_string(*it, "reset_is", path).value_or("seconds");
    if (reset_is != "seconds" && reset_is != "epoch_seconds") fail(join(path, "reset_is"), "'" + reset_is + "' is not seconds (from now) or epoch_seconds");
    h.reset_is_epoch = reset_is == "epoch_seconds";
    h.window_ms = int64_t{whole_number(*it, "window_s", path, 1, 86'400, 0)} * 1000;
    if (h.reset.empty() && h.window_ms == 0) fail(path, "needs reset (a header) or window_s: without either the remaining count has no time");
    return h;
}

}  // namespace

const ObjectSpec &Settings::object(std::string_view name) const {
    const auto it = objects.find(name);
    if (it == objects.end()) throw Unsupported("object '" + std::string(name) + "' is not configured on this rest connection");
    return it->second;
}

Settings parse_settings(const json &config, bool with_token_refresh) {
    if (!config.is_object()) throw ConfigError("rest settings: must be a map");
    // base_url, connection and credentials are the host's.
    check_keys(config, "", {"objects", "auth", "error_message", "rate_limit_headers", "rate_limit", "base_url", "connection", "credentials"});
    Settings s;
    const auto objects = config.find("objects");
    if (objects == config.end() || !objects->is_object() || objects->empty()) fail("objects", "map each object to its calls, e.g. { customers: { create: { path: /v1/customers } } }");
    for (const auto &[name, value] : objects->items()) s.objects.emplace(name, read_object(name, value, "objects." + name));
    s.auth = read_auth(config, with_token_refresh);
    s.error_message = optional_pointer(config, "error_message", "").value_or(s.error_message);
    s.rate_headers = read_rate_headers(config);
    if (const auto rl = config.find("rate_limit"); rl != config.end()) {
        require_object(*rl, "rate_limit");
        check_keys(*rl, "rate_limit", {"per_second", "burst"});
        s.per_second = positive_number(*rl, "per_second", "rate_limit", s.per_second);
        s.burst = positive_number(*rl, "burst", "rate_limit", s.per_second);
    }
    for (const auto *secret : {&s.auth.api_key, &s.auth.password, &s.auth.client_secret})
        if (!secret->empty()) s.secrets.push_back(*secret);
    return s;
}

}  // namespace rest
