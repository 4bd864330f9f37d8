#include "config/config.hpp"

#include <algorithm>

#include "config/yaml_source.hpp"
#include "log/redact.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

namespace recsync::config {

namespace fs = std::filesystem;

const ConnectionConfig *EngineConfig::connection(const std::string &name) const {
    for (const auto &c : connections)
        if (c.name == name) return &c;
    return nullptr;
}

namespace {

std::string resolve_path(const fs::path &base, const std::string &p) {
    const fs::path path(p);
    return (path.is_absolute() ? path : base / path).lexically_normal().string();
}

std::string read_file_secret(const std::string &file, const YAML::Node &node, const std::string &what);

void read_credentials(const std::string &file, const YAML::Node &node, ConnectionConfig &c) {
    require_map(file, node, "credentials");
    for (const auto &kv : node) {
        const std::string key = kv.first.Scalar();
        if (key == "token_env" || key == "token_file") continue;
        const bool from_env = key.size() > 4 && key.ends_with("_env");
        const bool from_file = key.size() > 5 && key.ends_with("_file");
        if (!from_env && !from_file)
            fail(file, kv.first, "unknown key '" + key + "' in credentials (expected token_env, token_file, <name>_env naming an environment variable or <name>_file naming a file: secrets never go in this file)");
        const std::string name = key.substr(0, key.size() - (from_env ? 4 : 5));
        if (c.plugin_credentials.contains(name)) fail(file, kv.first, "credentials: " + name + "_env and " + name + "_file both set; keep one");
        if (from_env) {
            const auto var = get_string(file, kv.second, "credentials." + key);
            const char *value = std::getenv(var.c_str());
            if (!value || !*value) fail(file, kv.second, "connection '" + c.name + "': environment variable " + var + " (credentials." + key + ") is not set");
            c.plugin_credentials[name] = value;
        } else {
            // A whole file (a private key's PEM, say), trailing newlines dropped.
            c.plugin_credentials[name] = read_file_secret(file, kv.second, "connection '" + c.name + "': credentials." + key);
        }
    }
    if (node["token_env"]) {
        const auto var = get_string(file, node["token_env"], "credentials.token_env");
        const char *value = std::getenv(var.c_str());
        if (!value || !*value) fail(file, node["token_env"], "connection '" + c.name + "': environment variable " + var + " (credentials.token_env) is not set");
        c.access_token = value;
        c.token_source = "env " + var;
    } else if (node["token_file"]) {
        const auto path = resolve_path(fs::path(file).parent_path(), get_string(file, node["token_file"], "credentials.token_file"));
        std::ifstream in(path);
        if (!in) fail(file, node["token_file"], "connection '" + c.name + "': cannot read token file " + path);
        std::getline(in, c.access_token);
        c.token_source = "file " + path;
    }
}

// "250ms", "30s", "15m", "6h", "7d" -> milliseconds. A unit is required: a bare number
// would leave the reader guessing.
int64_t get_duration_ms(const std::string &file, const YAML::Node &node, const std::string &what) {
    const std::string text = get_string(file, node, what);
    static const std::regex re("([0-9]{1,9})(ms|s|m|h|d)");
    std::smatch m;
    if (!std::regex_match(text, m, re)) fail(file, node, what + ": expected a duration like 30s, 15m, 6h or 7d, got '" + text + "'");
    const int64_t n = std::stoll(m[1].str());
    const std::string unit = m[2].str();
    const int64_t scale = unit == "ms" ? 1 : unit == "s" ? 1000 : unit == "m" ? 60'000 : unit == "h" ? 3'600'000 : 86'400'000;
    const int64_t ms = n * scale;
    if (ms < 1000 || ms > 365LL * 86'400'000) fail(file, node, what + ": must be between 1s and 365d, got '" + text + "'");
    return ms;
}

// Secrets are named by the config, never written in it: the value of the environment
// variable named at `node`...
std::string read_env_secret(const std::string &file, const YAML::Node &node, const std::string &what) {
    const auto var = get_string(file, node, what);
    const char *value = std::getenv(var.c_str());
    if (!value || !*value) fail(file, node, what + ": environment variable " + var + " is not set");
    return value;
}

// ...or the contents of the file named at `node` (trailing newlines and spaces dropped).
std::string read_file_secret(const std::string &file, const YAML::Node &node, const std::string &what) {
    const auto path = resolve_path(fs::path(file).parent_path(), get_string(file, node, what));
    std::ifstream in(path);
    if (!in) fail(file, node, what + ": cannot read " + path);
    std::string value((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r' || value.back() == ' ')) value.pop_back();
    if (value.empty()) fail(file, node, what + ": " + path + " is empty");
    return value;
}

// The host of "host:port" or "[v6]:port" is a loopback address (127.0.0.0/8, ::1, localhost).
bool loopback_listen(const std::string &listen) {
    std::string host = listen.substr(0, listen.rfind(':'));
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host == "localhost") return true;
    in_addr v4{};
    in6_addr v6{};
    if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

// A secret named by `<key>_env` or `<key>_file` in `node` (one of them, not both), or "".
std::string read_named_secret(const std::string &file, const YAML::Node &node, const std::string &key, const std::string &what) {
    const auto env = node[key + "_env"], path = node[key + "_file"];
    if (env && path) fail(file, path, what + ": " + key + "_env and " + key + "_file both set; keep one");
    if (env) return read_env_secret(file, env, what + "." + key + "_env");
    if (path) return read_file_secret(file, path, what + "." + key + "_file");
    return {};
}

void read_server(const std::string &path, const YAML::Node &server, ServerConfig &out) {
    require_map(path, server, "server");
    check_keys(path, server, {"listen", "max_body_bytes", "threads", "admin_token_env", "admin_token_file", "status_token_env", "status_token_file",
                              "ingest_tokens", "ingest_auth", "tls"});
    if (server["listen"]) out.listen = get_string(path, server["listen"], "server.listen");
    if (server["max_body_bytes"]) out.max_body_bytes = static_cast<size_t>(get_int(path, server["max_body_bytes"], "server.max_body_bytes", 1024, 1LL << 30));
    if (server["threads"]) out.threads = static_cast<int>(get_int(path, server["threads"], "server.threads", 1, 256));
    // An unset admin variable leaves the admin endpoints off (they answer 403 saying so)
    // rather than refusing to start: most deployments never use them.
    if (const auto var = server["admin_token_env"]; var && !server["admin_token_file"]) {
        const char *v = std::getenv(get_string(path, var, "server.admin_token_env").c_str());
        if (v) out.admin_token = v;
    } else {
        out.admin_token = read_named_secret(path, server, "admin_token", "server");
    }
    out.status_token = read_named_secret(path, server, "status_token", "server");
    if (const auto auth = server["ingest_auth"]) {
        const auto v = get_string(path, auth, "server.ingest_auth");
        if (v != "token" && v != "none") fail(path, auth, "server.ingest_auth: expected token or none, got '" + v + "'");
        out.ingest_auth = v == "token";
    }
    if (const auto tokens = server["ingest_tokens"]) {
        if (!tokens.IsSequence()) fail(path, tokens, "server.ingest_tokens: expected a list of { name, token_env | token_file }");
        for (size_t i = 0; i < tokens.size(); ++i) {
            const auto t = tokens[i];
            const std::string what = "server.ingest_tokens[" + std::to_string(i) + "]";
            require_map(path, t, what);
            check_keys(path, t, {"name", "token_env", "token_file"});
            if (!t["name"]) fail(path, t, what + ": name is required (the sending system, as logs and metrics say it)");
            ServerConfig::IngestToken token{get_string(path, t["name"], what + ".name"), read_named_secret(path, t, "token", what)};
            if (token.token.empty()) fail(path, t, what + ": token_env or token_file is required");
            for (const auto &other : out.ingest_tokens) {
                if (other.name == token.name) fail(path, t["name"], what + ": the name '" + token.name + "' is used twice");
                if (other.token == token.token) fail(path, t, what + ": the same token as '" + other.name + "': give each sender its own");
            }
            out.ingest_tokens.push_back(std::move(token));
        }
    }
    for (const auto &t : out.ingest_tokens)
        if (t.token == out.admin_token || t.token == out.status_token)
            fail(path, server["ingest_tokens"], "server.ingest_tokens: '" + t.name + "' has the admin or status token: an ingest token must be its own");
    if (!out.admin_token.empty() && out.admin_token == out.status_token) fail(path, server, "server: the status token equals the admin token: give each its own");
    if (const auto tls = server["tls"]) {
        require_map(path, tls, "server.tls");
        check_keys(path, tls, {"cert_file", "key_file", "client_ca_file"});
        const auto readable = [&](const char *key) {
            if (!tls[key]) return std::string();
            const auto file = resolve_path(fs::path(path).parent_path(), get_string(path, tls[key], std::string("server.tls.") + key));
            if (!std::ifstream(file)) fail(path, tls[key], std::string("server.tls.") + key + ": cannot read " + file);
            return file;
        };
        out.tls_cert_file = readable("cert_file");
        out.tls_key_file = readable("key_file");
        out.tls_client_ca_file = readable("client_ca_file");
        if (out.tls_cert_file.empty() || out.tls_key_file.empty()) fail(path, tls, "server.tls: cert_file and key_file are both required");
    }
    if (out.ingest_auth && out.ingest_tokens.empty() && !loopback_listen(out.listen))
        fail(path, server["listen"] ? server["listen"] : server, "server.listen '" + out.listen +
             "' takes events from other hosts and no server.ingest_tokens are set: anyone reaching the port could create or delete CRM records. "
             "Set ingest_tokens (or ingest_auth: none behind a proxy that authenticates)");
}

// SQL names as written in the config: letters, digits and '_' (quoted when used), so a
// name can never carry SQL of its own.
void check_sql_name(const std::string &file, const YAML::Node &node, const std::string &name, const std::string &what) {
    static const std::regex re("[A-Za-z_][A-Za-z0-9_]{0,62}");
    if (!std::regex_match(name, re)) fail(file, node, what + ": '" + name + "' is not a plain SQL name (letters, digits and '_', at most 63)");
}

// "schema.table" as written, or "table" (in public): schema-qualified, each part checked.
std::string qualified_table_name(const std::string &file, const YAML::Node &node, const std::string &what) {
    const auto written = get_string(file, node, what);
    const auto dot = written.find('.');
    const auto schema = dot == std::string::npos ? std::string("public") : written.substr(0, dot);
    const auto table = dot == std::string::npos ? written : written.substr(dot + 1);
    check_sql_name(file, node, schema, what + " (schema)");
    check_sql_name(file, node, table, what);
    return schema + "." + table;
}

void read_postgres(const std::string &file, const YAML::Node &node, ConnectionConfig &c) {
    auto &pg = c.postgres;
    require_map(file, node, "postgres");
    check_keys(file, node, {"dsn_env", "dsn_file", "schema", "batch_size", "poll_interval", "tables"});
    pg.where = where(file, node);
    if (node["dsn_env"] && node["dsn_file"]) fail(file, node, "postgres: set dsn_env or dsn_file, not both");
    if (node["dsn_env"]) {
        pg.dsn = read_env_secret(file, node["dsn_env"], "postgres.dsn_env");
        pg.dsn_source = "env " + node["dsn_env"].Scalar();
    } else if (node["dsn_file"]) {
        pg.dsn = read_file_secret(file, node["dsn_file"], "postgres.dsn_file");
        pg.dsn_source = "file " + node["dsn_file"].Scalar();
    } else {
        fail(file, node, "postgres: needs the database's connection string from the environment or a file (dsn_env: VAR or dsn_file: PATH): it holds a password, never written here");
    }
    if (node["schema"]) {
        pg.schema = get_string(file, node["schema"], "postgres.schema");
        check_sql_name(file, node["schema"], pg.schema, "postgres.schema");
    }
    if (node["batch_size"]) pg.batch_size = static_cast<int>(get_int(file, node["batch_size"], "postgres.batch_size", 1, 100'000));
    if (node["poll_interval"]) pg.poll_interval_ms = get_duration_ms(file, node["poll_interval"], "postgres.poll_interval");
    const auto tables = node["tables"];
    if (!tables || !tables.IsMap() || tables.size() == 0)
        fail(file, tables ? tables : node, "postgres.tables: map each object to its table, e.g. { contacts: { table: public.customers, key: id } }");
    for (const auto &kv : tables) {
        PostgresTableConfig t;
        t.object = kv.first.Scalar();
        t.where = where(file, kv.first);
        const std::string what = "postgres.tables." + t.object;
        require_map(file, kv.second, what);
        check_keys(file, kv.second, {"table", "key", "entity", "columns", "capture"});
        if (!kv.second["table"]) fail(file, kv.second, what + ": missing 'table' (e.g. public.customers)");
        if (!kv.second["key"]) fail(file, kv.second, what + ": missing 'key' (the table's unique key column)");
        t.table = qualified_table_name(file, kv.second["table"], what + ".table");
        t.key = get_string(file, kv.second["key"], what + ".key");
        check_sql_name(file, kv.second["key"], t.key, what + ".key");
        t.entity = kv.second["entity"] ? get_string(file, kv.second["entity"], what + ".entity") : t.object;
        if (kv.second["capture"]) {
            const auto v = get_string(file, kv.second["capture"], what + ".capture");
            if (v != "true" && v != "false") fail(file, kv.second["capture"], what + ".capture: expected true or false");
            t.capture = v == "true";
        }
        if (const auto cols = kv.second["columns"]) {
            require_map(file, cols, what + ".columns");
            for (const auto &col : cols) {
                const std::string name = col.first.Scalar();
                check_sql_name(file, col.first, name, what + ".columns");
                t.columns.emplace_back(name, get_string(file, col.second, what + ".columns." + name));
            }
        }
        for (const auto &other : pg.tables)
            if (other.table == t.table) fail(file, kv.first, what + ": table " + t.table + " is already the table of object '" + other.object + "'");
        pg.tables.push_back(std::move(t));
    }
}

ConnectionConfig read_connection(const std::string &file, const YAML::Node &key, const YAML::Node &node) {
    ConnectionConfig c;
    c.name = key.Scalar();
    c.where = where(file, key);
    static const std::regex name_re("[a-z0-9][a-z0-9_-]*");
    if (!std::regex_match(c.name, name_re)) fail(file, key, "connection name '" + c.name + "': use lowercase letters, digits, '-' and '_'");
    require_map(file, node, "connection '" + c.name + "'");
    check_keys(file, node, {"provider", "base_url", "credentials", "rate_limit", "max_in_flight", "max_in_flight_ceiling", "connect_timeout_ms", "timeout_ms", "tls", "retry", "batch", "conflicts", "polling", "settings", "postgres"});
    if (!node["provider"]) fail(file, node, "connection '" + c.name + "': missing 'provider'");
    c.provider = get_string(file, node["provider"], "provider");
    if (c.provider == "postgres") {
        // Its calls are SQL on the database, not HTTP: the executor knows them by this URL.
        if (node["base_url"]) fail(file, node["base_url"], "connection '" + c.name + "': a postgres connection has no base_url (the database is postgres.dsn_env / dsn_file)");
        if (!node["postgres"]) fail(file, node, "connection '" + c.name + "': provider postgres needs a 'postgres:' section (dsn_env or dsn_file, tables)");
        read_postgres(file, node["postgres"], c);
        c.base_url = "postgres://" + c.name;
    } else {
        if (node["postgres"]) fail(file, node["postgres"], "connection '" + c.name + "': 'postgres' is for provider: postgres only");
        if (!node["base_url"]) fail(file, node, "connection '" + c.name + "': missing 'base_url'");
        c.base_url = get_string(file, node["base_url"], "base_url");
        if (c.base_url.rfind("https://", 0) != 0 && c.base_url.rfind("http://", 0) != 0)
            fail(file, node["base_url"], "base_url must start with https:// (or http:// for a local service)");
    }
    while (!c.base_url.empty() && c.base_url.back() == '/') c.base_url.pop_back();
    if (node["credentials"]) read_credentials(file, node["credentials"], c);
    if (const auto rl = node["rate_limit"]) {
        require_map(file, rl, "rate_limit");
        check_keys(file, rl, {"per_second", "burst"});
        if (rl["per_second"]) c.rate_limit.per_second = get_number(file, rl["per_second"], "rate_limit.per_second");
        if (rl["burst"]) c.rate_limit.burst = get_number(file, rl["burst"], "rate_limit.burst");
        if (c.rate_limit.per_second < 0 || c.rate_limit.burst < 0) fail(file, rl, "rate_limit values must be positive");
    }
    if (node["max_in_flight"]) c.max_in_flight = static_cast<int>(get_int(file, node["max_in_flight"], "max_in_flight", 1, 10'000));
    if (node["max_in_flight_ceiling"]) {
        c.max_in_flight_ceiling = static_cast<int>(get_int(file, node["max_in_flight_ceiling"], "max_in_flight_ceiling", 1, 100'000));
        if (c.max_in_flight_ceiling < c.max_in_flight)
            fail(file, node["max_in_flight_ceiling"],
                 "max_in_flight_ceiling (" + std::to_string(c.max_in_flight_ceiling) + ") is below max_in_flight (" + std::to_string(c.max_in_flight) +
                     "), where calls in flight start");
    } else if (node["max_in_flight"] || c.provider == "postgres") {
        c.max_in_flight_ceiling = c.max_in_flight;
    }
    if (node["connect_timeout_ms"]) c.connect_timeout_ms = static_cast<int>(get_int(file, node["connect_timeout_ms"], "connect_timeout_ms", 1, 600'000));
    if (node["timeout_ms"]) c.timeout_ms = static_cast<int>(get_int(file, node["timeout_ms"], "timeout_ms", 1, 3'600'000));
    if (const auto tls = node["tls"]) {
        require_map(file, tls, "tls");
        check_keys(file, tls, {"ca_file"});
        if (tls["ca_file"]) {
            c.tls_ca_file = resolve_path(fs::path(file).parent_path(), get_string(file, tls["ca_file"], "tls.ca_file"));
            if (!std::ifstream(c.tls_ca_file)) fail(file, tls["ca_file"], "tls.ca_file: cannot read '" + c.tls_ca_file + "'");
        }
    }
    if (const auto r = node["retry"]) {
        require_map(file, r, "retry");
        check_keys(file, r, {"max_attempts", "base_delay_ms", "max_delay_ms", "max_age"});
        if (r["max_attempts"]) c.retry.max_attempts = static_cast<int>(get_int(file, r["max_attempts"], "retry.max_attempts", 1, 1000));
        if (r["base_delay_ms"]) c.retry.base_delay_ms = static_cast<int>(get_int(file, r["base_delay_ms"], "retry.base_delay_ms", 1, 3'600'000));
        if (r["max_delay_ms"]) c.retry.max_delay_ms = static_cast<int>(get_int(file, r["max_delay_ms"], "retry.max_delay_ms", 1, 86'400'000));
        if (r["max_age"]) {
            c.retry.max_age_ms = get_duration_ms(file, r["max_age"], "retry.max_age");
            c.retry.max_age_text = r["max_age"].Scalar();
        }
    }
    if (const auto b = node["batch"]) {
        require_map(file, b, "batch");
        check_keys(file, b, {"max_size", "max_wait_ms"});
        if (b["max_size"]) c.batch.max_size = static_cast<int>(get_int(file, b["max_size"], "batch.max_size", 1, 10'000));
        if (b["max_wait_ms"]) c.batch.max_wait_ms = static_cast<int>(get_int(file, b["max_wait_ms"], "batch.max_wait_ms", 0, 10'000));
    }
    if (const auto conflicts = node["conflicts"]) {
        require_map(file, conflicts, "conflicts");
        check_keys(file, conflicts, {"owners", "policy", "prefer"});
        if (conflicts["policy"] && conflicts["prefer"]) fail(file, conflicts, "conflicts: set 'policy: last_writer_wins' or 'prefer: internal|external', not both");
        if (const auto p = conflicts["policy"]) {
            const std::string v = get_string(file, p, "conflicts.policy");
            if (v != "last_writer_wins") fail(file, p, "conflicts.policy: '" + v + "' is not 'last_writer_wins' (for one side always, use prefer: internal | external)");
            c.conflict_policy = ConflictPolicy::LastWriterWins;
        }
        if (const auto p = conflicts["prefer"]) {
            const std::string v = get_string(file, p, "conflicts.prefer");
            if (v == "internal") c.conflict_policy = ConflictPolicy::PreferInternal;
            else if (v == "external") c.conflict_policy = ConflictPolicy::PreferExternal;
            else fail(file, p, "conflicts.prefer: '" + v + "' is not 'internal' (System A wins) or 'external' (the CRM does)");
        }
        if (const auto owners = conflicts["owners"]) {
            require_map(file, owners, "conflicts.owners");
            for (const auto &kv : owners) {
                const std::string field = kv.first.Scalar();
                const std::string side = get_string(file, kv.second, "conflicts.owners." + field);
                if (side == "internal") c.owned_internal.push_back(field);
                else if (side == "external") c.owned_external.push_back(field);
                else fail(file, kv.second, "conflicts.owners." + field + ": '" + side + "' is not 'internal' (System A owns it) or 'external' (the CRM does)");
            }
            std::sort(c.owned_internal.begin(), c.owned_internal.end());
            std::sort(c.owned_external.begin(), c.owned_external.end());
        }
    }
    if (const auto p = node["polling"]) {
        require_map(file, p, "polling");
        check_keys(file, p, {"objects", "requests_per_second"});
        c.polling.where = where(file, p);
        if (p["requests_per_second"]) {
            c.polling.requests_per_second = get_number(file, p["requests_per_second"], "polling.requests_per_second");
            if (c.polling.requests_per_second <= 0 || c.polling.requests_per_second > 1000)
                fail(file, p["requests_per_second"], "polling.requests_per_second must be above 0 and at most 1000");
        }
        const auto objects = p["objects"];
        if (!objects || !objects.IsMap() || objects.size() == 0)
            fail(file, objects ? objects : p, "polling.objects: map each object to poll to its interval, e.g. { contacts: 30s }");
        for (const auto &kv : objects)
            c.polling.objects.push_back({kv.first.Scalar(), get_duration_ms(file, kv.second, "polling.objects." + kv.first.Scalar()), where(file, kv.first)});
    }
    if (node["settings"]) c.settings = yaml_value_to_json(require_map(file, node["settings"], "settings"));
    return c;
}

}  // namespace

const char *conflict_policy_text(ConflictPolicy p) {
    switch (p) {
        case ConflictPolicy::LastWriterWins: return "last_writer_wins";
        case ConflictPolicy::PreferInternal: return "prefer internal";
        case ConflictPolicy::PreferExternal: return "prefer external";
        case ConflictPolicy::None: break;
    }
    return "none";
}

namespace {

void read_shared_rate_limit(const std::string &file, const YAML::Node &node, SharedRateLimitConfig &rl) {
    require_map(file, node, "ratelimit");
    check_keys(file, node, {"backend", "redis"});
    if (node["backend"]) rl.backend = get_string(file, node["backend"], "ratelimit.backend");
    if (rl.backend != "local" && rl.backend != "redis") fail(file, node["backend"], "ratelimit.backend: expected local or redis");
    if (rl.backend == "local") {
        if (node["redis"]) fail(file, node["redis"], "ratelimit.redis is set but ratelimit.backend is local (set backend: redis to share the limits)");
        return;
    }
#ifndef RECSYNC_WITH_REDIS
    fail(file, node["backend"], "ratelimit.backend: redis, but this build has no Redis backend (configure with -DRECSYNC_WITH_REDIS=ON and libhiredis-dev)");
#endif
    if (!node["redis"]) fail(file, node, "ratelimit: backend redis needs a 'redis:' section with its address");
    const auto r = require_map(file, node["redis"], "ratelimit.redis");
    check_keys(file, r, {"address", "password_env", "password_file", "key_prefix", "timeout_ms", "fallback_instances"});
    if (!r["address"]) fail(file, r, "ratelimit.redis: missing 'address' (host:port or a unix socket path)");
    rl.address = get_string(file, r["address"], "ratelimit.redis.address");
    if (rl.address.empty() || (rl.address.front() != '/' && rl.address.rfind(':') == std::string::npos))
        fail(file, r["address"], "ratelimit.redis.address: expected host:port or a unix socket path, got '" + rl.address + "'");
    rl.host = rl.address;
    if (rl.address.front() != '/') {
        const auto colon = rl.address.rfind(':');
        const auto port = rl.address.substr(colon + 1);
        const bool digits = !port.empty() && port.size() <= 5 && std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (!digits || std::stoi(port) == 0 || std::stoi(port) > 65535)
            fail(file, r["address"], "ratelimit.redis.address: '" + port + "' is not a port (1-65535)");
        rl.host = rl.address.substr(0, colon);
        rl.port = std::stoi(port);
    }
    if (r["password_env"] && r["password_file"]) fail(file, r, "ratelimit.redis: set password_env or password_file, not both");
    if (r["password_env"]) {
        rl.password = read_env_secret(file, r["password_env"], "ratelimit.redis.password_env");
    } else if (r["password_file"]) {
        rl.password = read_file_secret(file, r["password_file"], "ratelimit.redis.password_file");
    }
    if (r["key_prefix"]) {
        rl.key_prefix = get_string(file, r["key_prefix"], "ratelimit.redis.key_prefix");
        if (rl.key_prefix.empty()) fail(file, r["key_prefix"], "ratelimit.redis.key_prefix: must not be empty");
    }
    if (r["timeout_ms"]) rl.timeout_ms = static_cast<int>(get_int(file, r["timeout_ms"], "ratelimit.redis.timeout_ms", 10, 10'000));
    if (r["fallback_instances"]) rl.fallback_instances = static_cast<int>(get_int(file, r["fallback_instances"], "ratelimit.redis.fallback_instances", 1, 10'000));
}

}  // namespace

EngineConfig load_config(const std::string &path) {
    EngineConfig cfg;
    cfg.file = path;
    const YAML::Node root = load_yaml_file(path);
    if (!root.IsMap()) throw ConfigError(path + ":1:1: expected a mapping with plugins_dir, rules_dir, state, server, connections");
    check_keys(path, root, {"plugins_dir", "rules_dir", "watch_rules", "state", "server", "delivery", "ratelimit", "log_level", "log_format", "connections"});
    const fs::path base = fs::absolute(fs::path(path)).parent_path();
    for (const char *key : {"plugins_dir", "rules_dir", "state"})
        if (!root[key]) throw ConfigError(path + ":1:1: missing required key '" + key + "'");
    cfg.plugins_dir = resolve_path(base, get_string(path, root["plugins_dir"], "plugins_dir"));
    cfg.rules_dir = resolve_path(base, get_string(path, root["rules_dir"], "rules_dir"));
    if (root["watch_rules"]) cfg.watch_rules = get_bool(path, root["watch_rules"], "watch_rules");

    const auto state = require_map(path, root["state"], "state");
    check_keys(path, state, {"path", "synchronous", "commit_window_us", "event_id_retention", "cache_mib"});
    if (!state["path"]) fail(path, state, "state: missing 'path' (the SQLite database file)");
    cfg.state.path = resolve_path(base, get_string(path, state["path"], "state.path"));
    if (state["synchronous"]) {
        cfg.state.synchronous = get_string(path, state["synchronous"], "state.synchronous");
        if (cfg.state.synchronous != "full" && cfg.state.synchronous != "normal")
            fail(path, state["synchronous"], "state.synchronous: expected 'full' or 'normal'");
    }
    if (state["commit_window_us"]) cfg.state.commit_window_us = static_cast<int>(get_int(path, state["commit_window_us"], "state.commit_window_us", 0, 100'000));
    if (state["cache_mib"]) cfg.state.cache_mib = static_cast<int>(get_int(path, state["cache_mib"], "state.cache_mib", 0, 65'536));
    if (state["event_id_retention"]) cfg.state.event_id_retention_ms = get_duration_ms(path, state["event_id_retention"], "state.event_id_retention");

    if (const auto server = root["server"]) read_server(path, server, cfg.server);
    if (const auto delivery = root["delivery"]) {
        require_map(path, delivery, "delivery");
        check_keys(path, delivery, {"max_calls_in_flight", "max_calls_in_flight_ceiling", "max_backlog", "tasks_in_memory"});
        if (delivery["max_calls_in_flight"])
            cfg.delivery.max_calls_in_flight = static_cast<int>(get_int(path, delivery["max_calls_in_flight"], "delivery.max_calls_in_flight", 1, 100'000));
        cfg.delivery.max_calls_in_flight_ceiling = std::max(cfg.delivery.max_calls_in_flight_ceiling, cfg.delivery.max_calls_in_flight);
        if (const auto ceiling = delivery["max_calls_in_flight_ceiling"]) {
            cfg.delivery.max_calls_in_flight_ceiling = static_cast<int>(get_int(path, ceiling, "delivery.max_calls_in_flight_ceiling", 1, 100'000));
            if (cfg.delivery.max_calls_in_flight_ceiling < cfg.delivery.max_calls_in_flight)
                fail(path, ceiling, "delivery.max_calls_in_flight_ceiling (" + std::to_string(cfg.delivery.max_calls_in_flight_ceiling) + ") is below delivery.max_calls_in_flight (" +
                                        std::to_string(cfg.delivery.max_calls_in_flight) + ")");
        }
        if (const auto b = delivery["max_backlog"]) {
            require_map(path, b, "delivery.max_backlog");
            check_keys(path, b, {"per_connection", "total"});
            constexpr int64_t kMost = 1'000'000'000'000LL;
            if (b["per_connection"]) cfg.delivery.max_backlog_per_connection = get_int(path, b["per_connection"], "delivery.max_backlog.per_connection", 1, kMost);
            if (b["total"]) cfg.delivery.max_backlog_total = get_int(path, b["total"], "delivery.max_backlog.total", 1, kMost);
        }
        if (delivery["tasks_in_memory"]) cfg.delivery.tasks_in_memory = get_int(path, delivery["tasks_in_memory"], "delivery.tasks_in_memory", 1'000, 100'000'000);
    }
    if (const auto rl = root["ratelimit"]) read_shared_rate_limit(path, rl, cfg.ratelimit);
    if (root["log_level"]) {
        cfg.log_level = get_string(path, root["log_level"], "log_level");
        static const char *levels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
        bool ok = false;
        for (const char *l : levels) ok = ok || cfg.log_level == l;
        if (!ok) fail(path, root["log_level"], "log_level: expected trace, debug, info, warn, error, critical or off");
    }
    if (root["log_format"]) {
        cfg.log_format = get_string(path, root["log_format"], "log_format");
        if (cfg.log_format != "text" && cfg.log_format != "json") fail(path, root["log_format"], "log_format: expected text or json");
    }

    std::vector<std::string> errors;
    if (const auto conns = root["connections"]) {
        require_map(path, conns, "connections");
        for (const auto &kv : conns) {
            try {
                cfg.connections.push_back(read_connection(path, kv.first, kv.second));
            } catch (const ConfigError &e) {
                errors.push_back(e.what());
            }
        }
    }
    // Every secret the config resolved, so no log line can show it (log/redact.hpp).
    log::register_secret(cfg.server.admin_token);
    log::register_secret(cfg.server.status_token);
    for (const auto &t : cfg.server.ingest_tokens) log::register_secret(t.token);
    log::register_secret(cfg.ratelimit.password);
    for (const auto &c : cfg.connections) {
        log::register_secret(c.access_token);
        for (const auto &value : c.plugin_credentials)
            if (value.is_string()) log::register_secret(value.get<std::string>());
        if (!c.postgres.dsn.empty()) log::register_dsn(c.postgres.dsn);
    }
    if (!errors.empty()) throw ConfigErrors(std::move(errors));
    return cfg;
}

}  // namespace recsync::config
