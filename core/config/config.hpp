// The engine's configuration (one YAML file): where plugins, rules and state live, what
// to listen on, and the connections (one configured use of a provider each).
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace recsync::config {

struct RateLimitConfig {
    double per_second = 0;  // 0: the provider's default from describe()
    double burst = 0;       // 0: the provider's default (or per_second)
};

// Records per call (`batch:`), for providers with batch endpoints (provider_abi.h 1.6).
struct BatchConfig {
    int max_size = 0;       // most records per call; 0: the provider's sizes; 1: no batches
    int max_wait_ms = 5;    // a batch that is not full waits this long for more ready records
};

struct RetryConfig {
    int max_attempts = 8;        // then the dead-letter queue
    int base_delay_ms = 200;     // exponential backoff with full jitter from here
    int max_delay_ms = 60'000;
    // A task whose next retry would come later than its acceptance + max_age goes to the
    // dead-letter queue instead (a change that old is stale). 0: no limit.
    int64_t max_age_ms = 0;
    std::string max_age_text;  // as written ("6h"), for the dead letter's reason
};

// Polling (`polling:` on a connection): which of the CRM's objects are searched for
// changes, how often, and at what rate (its own: HubSpot's search allows 5 requests/s per
// account, apart from the calls' limit).
struct PollObjectConfig {
    std::string object;
    int64_t interval_ms = 0;
    std::string where;  // file:line:col
};
struct PollingConfig {
    std::vector<PollObjectConfig> objects;  // empty: no polling
    double requests_per_second = 5;
    std::string where;
};

// How a record changed on both sides at once (concurrently: neither change had reached the
// other side) resolves (`conflicts:` on a connection, for the pair it and System A make):
// each later change wins by arrival (None), the later by each side's modification time
// (`policy: last_writer_wins`), or one side always (`prefer: internal | external`).
enum class ConflictPolicy : uint8_t { None = 0, LastWriterWins = 1, PreferInternal = 2, PreferExternal = 3 };
const char *conflict_policy_text(ConflictPolicy p);

// A PostgreSQL database as System A (`provider: postgres`, `postgres:` on the connection;
// connectors/postgres/): its tables' changes are captured from a trigger-written change
// log, and inbound changes are applied to them.
struct PostgresTableConfig {
    std::string object;  // the name rules use (`object:` of a rule targeting the connection)
    std::string table;   // schema-qualified: "public.customers" ("customers" -> public)
    std::string key;     // the key column (unique): the record key
    std::string entity;  // captured rows are events of this entity (default: object)
    // column -> field, in the order written; empty: every column under its own name.
    std::vector<std::pair<std::string, std::string>> columns;
    bool capture = true;  // false: apply only
    std::string where;
};
struct PostgresConfig {
    std::string dsn;         // libpq connection string, from dsn_env or dsn_file; never logged
    std::string dsn_source;  // "env PG_DSN", for messages
    std::string schema = "recsync";  // where the change log, trigger function and origin live
    int batch_size = 1000;           // change-log rows read per capture commit
    int64_t poll_interval_ms = 1000;  // a look at the log without a NOTIFY (a late commit's rows)
    std::vector<PostgresTableConfig> tables;
    std::string where;
    const PostgresTableConfig *table(std::string_view object) const {
        for (const auto &t : tables)
            if (t.object == object) return &t;
        return nullptr;
    }
};

struct ConnectionConfig {
    std::string name;      // e.g. "hubspot-eu"
    std::string provider;  // plugin id, e.g. "hubspot"
    std::string base_url;  // the provider's API root; plugins append paths to it
    std::string access_token;  // resolved from token_env / token_file; never logged
    std::string token_source;  // "env HUBSPOT_TOKEN", for messages
    // Other secrets from `credentials: { <name>_env: VAR }`, handed to the plugin's
    // instance config as "credentials": {"<name>": value} (e.g. OAuth client_id/secret
    // for a plugin that refreshes its own tokens). Never logged.
    nlohmann::json plugin_credentials = nlohmann::json::object();
    RateLimitConfig rate_limit;
    // Calls in flight: they start at max_in_flight and follow the CRM's answer times
    // (dispatch/inflight_target.hpp) up to max_in_flight_ceiling. Without the ceiling set,
    // it is kDefaultInFlightCeiling, or max_in_flight when that is set (a fixed cap, as an
    // operator who names a number for a fragile CRM means it), or max_in_flight for a
    // PostgreSQL connection (its applier has that many database connections).
    int max_in_flight = 8;
    int max_in_flight_ceiling = kDefaultInFlightCeiling;
    static constexpr int kDefaultInFlightCeiling = 4096;
    int connect_timeout_ms = 3'000;
    int timeout_ms = 15'000;
    // PEM file of the CAs that sign the CRM's certificate (`tls: { ca_file }`), for a
    // private CA (on-premises Dynamics, a bank's gateway); empty: the system's CAs.
    // Verification itself is never turned off.
    std::string tls_ca_file;
    RetryConfig retry;
    BatchConfig batch;
    // Field ownership (`conflicts: { owners: { <field>: internal | external } }`), by the
    // field's name on this connection's side (the outbound mapping's targets, the inbound
    // record's fields): System A's changes never write a field the CRM owns here, and the
    // CRM's changes never bring one System A owns into System A.
    std::vector<std::string> owned_internal, owned_external;  // sorted
    ConflictPolicy conflict_policy = ConflictPolicy::None;   // for the fields nobody owns
    PollingConfig polling;
    PostgresConfig postgres;  // provider: postgres only
    nlohmann::json settings = nlohmann::json::object();  // passed to the plugin
    std::string where;  // file:line:col of the definition
};

struct ServerConfig {
    std::string listen = "127.0.0.1:8080";
    size_t max_body_bytes = 1 << 20;
    // I/O threads: they read, parse and plan requests; none waits for a commit (the task
    // queue's commit thread answers), so about one per core.
    int threads = 2;
    // Bearer tokens, resolved from <name>_env / <name>_file; never logged. admin: the
    // admin endpoints and the status ones (empty: admin endpoints off). status: /metrics,
    // /v1/status and the status page need it or the admin token (empty: they are open).
    std::string admin_token, status_token;
    // POST /v1/events needs one of these (`ingest_tokens: [{ name, token_env | token_file }]`),
    // one per sending system; the name is what logs and metrics say, never the token.
    struct IngestToken {
        std::string name, token;
    };
    std::vector<IngestToken> ingest_tokens;
    // `ingest_auth: none`: events without a token, for a proxy in front that authenticates.
    // Otherwise a listener with no ingest_tokens is accepted on loopback only (the way
    // Redis's protected mode treats a server without a password).
    bool ingest_auth = true;
    // TLS on the listener (`tls: { cert_file, key_file, client_ca_file }`); the files are
    // read again on SIGHUP. client_ca_file: clients must show a certificate it signed.
    std::string tls_cert_file, tls_key_file, tls_client_ca_file;
    bool tls() const { return !tls_cert_file.empty(); }
    // True when no ingest token is needed (ingest_auth: none, or none set on loopback).
    bool open_ingest() const { return !ingest_auth || ingest_tokens.empty(); }
};

struct StateConfig {
    std::string path;                 // SQLite database file
    std::string synchronous = "full";  // "full" (survives power loss) or "normal" (survives crashes)
    // How long an accepted request may wait for others to share its commit: fewer fsyncs
    // and thread wakeups per event, for up to that much more time until the 2xx. 0:
    // commit at once (requests arriving during a commit still share the next one).
    int commit_window_us = 1000;
    // How long an event id is remembered: a repeat within it is acknowledged and ignored
    // (state.event_id_retention, a duration).
    int64_t event_id_retention_ms = 7LL * 86'400'000;
    // SQLite's page cache for the writer's and for the dispatcher's connection, each
    // (state.cache_mib; 0: SQLite's own 2 MiB). A big backlog's window pages and the
    // pages the results commits come back to stay in it instead of being read again
    // through the file system (bench/run backlog: half the read calls with 64).
    int cache_mib = 64;
};

struct DeliveryConfig {
    // Calls in flight across all connections, shared round-robin, while lanes run at their
    // max_in_flight. 256 serves CRMs that answer in a few ms. Lanes that grow for slow
    // CRMs (max_in_flight_ceiling) add their growth, up to max_calls_in_flight_ceiling
    // (default: the larger of 4,096 and max_calls_in_flight).
    int max_calls_in_flight = 256;
    int max_calls_in_flight_ceiling = 4096;
    // Tasks accepted and not yet finished: past either limit ingest answers 429 with
    // Retry-After instead of accepting more (delivery.max_backlog). Disk, not memory: lanes
    // hold only a window of their backlog.
    int64_t max_backlog_per_connection = 10'000'000;
    int64_t max_backlog_total = 50'000'000;
    // Tasks the lanes hold in memory across all connections (delivery.tasks_in_memory):
    // each lane's window is this divided by the lanes, between 32 and 4,096.
    int64_t tasks_in_memory = 200'000;
};

// Where connections' rate limits live (`ratelimit:`): each instance's own token buckets
// (`local`, the default), or one bucket per connection in Redis that every instance
// leases its tokens from (`redis`; ratelimit/redis/).
struct SharedRateLimitConfig {
    std::string backend = "local";  // "local" or "redis"
    std::string address;            // host:port, or a unix socket path (starts with '/')
    std::string host;               // the address's host, or the socket path
    int port = 0;                   // 0: a unix socket
    std::string password;           // from password_env / password_file; empty: no AUTH
    std::string key_prefix = "recsync";  // keys are <prefix>:rl:<connection> and <prefix>:instances
    int timeout_ms = 200;           // connect and command timeout; past it Redis counts as unreachable
    // The instances assumed while Redis is unreachable before any was seen: each then
    // sends limit / max(instances last seen, this).
    int fallback_instances = 2;
    bool shared() const { return backend != "local"; }
    bool operator==(const SharedRateLimitConfig &) const = default;
};

struct EngineConfig {
    std::string file;  // the config file itself
    std::string plugins_dir;
    std::string rules_dir;
    StateConfig state;
    ServerConfig server;
    DeliveryConfig delivery;
    SharedRateLimitConfig ratelimit;
    std::string log_level = "info";
    std::string log_format = "text";  // "text" (spdlog's default pattern) or "json" (one object per line)
    bool watch_rules = true;  // reload when a file in rules_dir changes
    std::vector<ConnectionConfig> connections;

    const ConnectionConfig *connection(const std::string &name) const;
};

// Loads and checks the config file. Relative paths are relative to the file's directory.
// Throws ConfigError / ConfigErrors whose messages start with file:line:col.
EngineConfig load_config(const std::string &path);

}  // namespace recsync::config
