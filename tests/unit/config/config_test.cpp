// load_config: a valid file (paths, defaults, connections) and every kind of error, each of
// which must name file:line:col so an operator can jump straight to it.
#include "config/config.hpp"
#include "config/yaml_source.hpp"
#include "log/redact.hpp"
#include "unit/test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace {

namespace fs = std::filesystem;
using recsync::config::ConfigError;
using recsync::config::ConfigErrors;
using recsync::config::load_config;
using recsync::testing::any_contains;
using recsync::testing::at;
using recsync::testing::TempDir;

// The three required keys, on lines 1-3; connections (if any) start on line 4.
const std::string kHead =
    "plugins_dir: plugins\n"  // 1
    "rules_dir: rules\n"      // 2
    "state: { path: s.db }\n";  // 3

// Env vars the tests own; names are unlikely to exist in any environment.
constexpr const char *kTokenVar = "RECSYNC_UNIT_TEST_TOKEN_7f3a";
constexpr const char *kUnsetVar = "RECSYNC_UNIT_TEST_UNSET_VAR_4711";

std::string config_error(const std::string &path) {
    try {
        load_config(path);
    } catch (const ConfigError &e) {
        return e.what();
    }
    ADD_FAILURE() << "expected ConfigError from " << path;
    return {};
}

std::vector<std::string> config_errors(const std::string &path) {
    try {
        load_config(path);
    } catch (const ConfigErrors &e) {
        EXPECT_FALSE(e.errors().empty());
        return e.errors();
    } catch (const std::exception &e) {
        ADD_FAILURE() << "expected ConfigErrors, got: " << e.what();
        return {};
    }
    ADD_FAILURE() << "expected ConfigErrors from " << path;
    return {};
}

TEST(LoadConfig, ValidFileResolvesPathsAndAppliesDefaults) {
    TempDir dir;
    ASSERT_EQ(::setenv(kTokenVar, "secret-token-1", 1), 0);
    dir.write("conf/token.txt", "file-token-2\nsecond line ignored\n");
    const std::string path = dir.write("conf/recsync.yaml",
                                       "plugins_dir: plugins\n"
                                       "rules_dir: ../rules\n"
                                       "state:\n"
                                       "  path: ./state/recsync.db\n"
                                       "connections:\n"
                                       "  hubspot-main:\n"  // line 6
                                       "    provider: hubspot\n"
                                       "    base_url: https://api.hubapi.com//\n"
                                       "    credentials:\n"
                                       "      token_env: " + std::string(kTokenVar) + "\n"
                                       "    rate_limit: { per_second: 9.5, burst: 20 }\n"
                                       "    max_in_flight: 4\n"
                                       "    retry: { max_attempts: 3, base_delay_ms: 100 }\n"
                                       "    settings: { portal: abc, nested: { list: [x, y] } }\n"
                                       "  local_mock:\n"  // line 15
                                       "    provider: mock\n"
                                       "    base_url: http://127.0.0.1:9999\n"
                                       "    credentials: { token_file: token.txt }\n");
    const auto cfg = load_config(path);
    ::unsetenv(kTokenVar);

    const fs::path conf = fs::absolute(dir.path() / "conf");
    EXPECT_EQ(cfg.file, path);
    EXPECT_EQ(cfg.plugins_dir, (conf / "plugins").lexically_normal().string());
    EXPECT_EQ(cfg.rules_dir, (dir.path() / "rules").lexically_normal().string());
    EXPECT_EQ(cfg.state.path, (conf / "state" / "recsync.db").lexically_normal().string());
    EXPECT_TRUE(fs::path(cfg.state.path).is_absolute());

    // Defaults.
    EXPECT_EQ(cfg.state.synchronous, "full");
    EXPECT_EQ(cfg.state.commit_window_us, 1000);
    EXPECT_EQ(cfg.state.cache_mib, 64);
    EXPECT_EQ(cfg.delivery.max_calls_in_flight, 256);
    EXPECT_EQ(cfg.delivery.max_backlog_per_connection, 10'000'000);
    EXPECT_EQ(cfg.delivery.max_backlog_total, 50'000'000);
    EXPECT_EQ(cfg.delivery.tasks_in_memory, 200'000);
    EXPECT_EQ(cfg.state.event_id_retention_ms, 7LL * 86'400'000);
    EXPECT_EQ(cfg.server.listen, "127.0.0.1:8080");
    EXPECT_EQ(cfg.server.max_body_bytes, size_t{1} << 20);
    EXPECT_EQ(cfg.server.threads, 2);
    EXPECT_TRUE(cfg.server.admin_token.empty());
    EXPECT_EQ(cfg.log_level, "info");
    EXPECT_EQ(cfg.log_format, "text");

    ASSERT_EQ(cfg.connections.size(), 2u);
    const auto *hs = cfg.connection("hubspot-main");
    ASSERT_NE(hs, nullptr);
    EXPECT_EQ(hs->name, "hubspot-main");
    EXPECT_EQ(hs->provider, "hubspot");
    EXPECT_EQ(hs->base_url, "https://api.hubapi.com");  // trailing slashes dropped
    EXPECT_EQ(hs->access_token, "secret-token-1");
    EXPECT_EQ(hs->token_source, std::string("env ") + kTokenVar);
    EXPECT_DOUBLE_EQ(hs->rate_limit.per_second, 9.5);
    EXPECT_DOUBLE_EQ(hs->rate_limit.burst, 20);
    EXPECT_EQ(hs->max_in_flight, 4);
    EXPECT_EQ(hs->connect_timeout_ms, 3000);
    EXPECT_EQ(hs->timeout_ms, 15000);
    EXPECT_EQ(hs->retry.max_attempts, 3);
    EXPECT_EQ(hs->retry.base_delay_ms, 100);
    EXPECT_EQ(hs->retry.max_delay_ms, 60000);
    EXPECT_EQ(hs->where, at(path, 6, 3));
    EXPECT_EQ(hs->settings.at("portal"), "abc");
    EXPECT_EQ(hs->settings.at("nested").at("list"), nlohmann::json::array({"x", "y"}));

    const auto *mock = cfg.connection("local_mock");
    ASSERT_NE(mock, nullptr);
    EXPECT_EQ(mock->base_url, "http://127.0.0.1:9999");
    EXPECT_EQ(mock->access_token, "file-token-2");  // first line only, token file relative to the config
    EXPECT_EQ(mock->token_source, "file " + (conf / "token.txt").lexically_normal().string());
    EXPECT_EQ(mock->max_in_flight, 8);
    EXPECT_EQ(mock->retry.max_attempts, 8);
    EXPECT_EQ(mock->retry.base_delay_ms, 200);
    EXPECT_DOUBLE_EQ(mock->rate_limit.per_second, 0);
    EXPECT_DOUBLE_EQ(mock->rate_limit.burst, 0);
    EXPECT_TRUE(mock->settings.is_object());
    EXPECT_TRUE(mock->settings.empty());
    EXPECT_EQ(mock->where, at(path, 15, 3));

    EXPECT_EQ(cfg.connection("nope"), nullptr);
}

TEST(LoadConfig, AbsolutePathsAreKeptAndServerSettingsRead) {
    TempDir dir;
    const std::string abs_plugins = (dir.path() / "elsewhere" / "plugins").string();
    const std::string path = dir.write("c.yaml",
                                       "plugins_dir: " + abs_plugins + "\n"
                                       "rules_dir: ./rules/sub/../r2\n"
                                       "state: { path: s.db, synchronous: normal, commit_window_us: 0 }\n"
                                       "server: { listen: '0.0.0.0:9000', max_body_bytes: 4096, threads: 3, ingest_tokens: [{ name: feed, token_env: " +
                                           std::string(kTokenVar) + " }] }\n"
                                       "log_level: debug\n"
                                       "log_format: json\n");
    ASSERT_EQ(::setenv(kTokenVar, "secret-token-1", 1), 0);
    const auto cfg = load_config(path);
    EXPECT_EQ(cfg.plugins_dir, abs_plugins);
    EXPECT_EQ(cfg.rules_dir, (fs::absolute(dir.path()) / "rules" / "r2").lexically_normal().string());
    EXPECT_EQ(cfg.state.synchronous, "normal");
    EXPECT_EQ(cfg.state.commit_window_us, 0);
    EXPECT_EQ(cfg.server.listen, "0.0.0.0:9000");
    EXPECT_EQ(cfg.server.max_body_bytes, 4096u);
    EXPECT_EQ(cfg.server.threads, 3);
    EXPECT_EQ(cfg.log_level, "debug");
    EXPECT_EQ(cfg.log_format, "json");
    EXPECT_TRUE(cfg.connections.empty());
}

// Calls in flight start at max_in_flight and may grow to max_in_flight_ceiling: by
// default far, but a max_in_flight an operator names is a fixed cap, and a PostgreSQL
// connection's is its applier's database connections.
TEST(LoadConfig, InFlightCeilingsDefaultSensiblyAndMustNotBeBelowTheStart) {
    TempDir dir;
    const std::string path = dir.write("c.yaml", kHead +
                                                     "connections:\n"
                                                     "  grows: { provider: hubspot, base_url: 'http://127.0.0.1:1' }\n"
                                                     "  fixed: { provider: hubspot, base_url: 'http://127.0.0.1:1', max_in_flight: 4 }\n"
                                                     "  both: { provider: hubspot, base_url: 'http://127.0.0.1:1', max_in_flight: 4, max_in_flight_ceiling: 64 }\n"
                                                     "  db: { provider: postgres, postgres: { dsn_env: PATH, tables: { c: { table: t, key: id, entity: c } } } }\n"
                                                     "delivery: { max_calls_in_flight: 5000 }\n");
    const auto cfg = load_config(path);
    EXPECT_EQ(cfg.connection("grows")->max_in_flight, 8);
    EXPECT_EQ(cfg.connection("grows")->max_in_flight_ceiling, 4096);
    EXPECT_EQ(cfg.connection("fixed")->max_in_flight_ceiling, 4);
    EXPECT_EQ(cfg.connection("both")->max_in_flight_ceiling, 64);
    EXPECT_EQ(cfg.connection("db")->max_in_flight_ceiling, cfg.connection("db")->max_in_flight);
    EXPECT_EQ(cfg.delivery.max_calls_in_flight_ceiling, 5000) << "never below max_calls_in_flight";

    const std::string low = dir.write("low.yaml", kHead +
                                                      "connections:\n"
                                                      "  c: { provider: hubspot, base_url: 'http://127.0.0.1:1', max_in_flight: 16, max_in_flight_ceiling: 8 }\n");
    EXPECT_TRUE(any_contains(config_errors(low), at(low, 5, 101) + ": max_in_flight_ceiling (8) is below max_in_flight (16)"));
    const std::string global = dir.write("global.yaml", kHead + "delivery: { max_calls_in_flight: 300, max_calls_in_flight_ceiling: 200 }\n");
    const std::string msg = config_error(global);
    EXPECT_NE(msg.find("delivery.max_calls_in_flight_ceiling (200) is below delivery.max_calls_in_flight (300)"), std::string::npos) << msg;
    EXPECT_EQ(msg.rfind(at(global, 4, 68), 0), 0u) << msg;
}

TEST(LoadConfig, MissingFileIsAConfigErrorNamingTheFile) {
    TempDir dir;
    const std::string path = (dir.path() / "absent.yaml").string();
    const std::string msg = config_error(path);
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("cannot open"), std::string::npos) << msg;
}

TEST(LoadConfig, UnknownTopLevelKeyNamesFileLineCol) {
    TempDir dir;
    const std::string path = dir.write("c.yaml", kHead + "colour: blue\n");
    const std::string msg = config_error(path);
    EXPECT_EQ(msg.rfind(at(path, 4, 1) + ": unknown key 'colour'", 0), 0u) << msg;
    EXPECT_NE(msg.find("plugins_dir"), std::string::npos) << "lists the allowed keys: " << msg;
}

TEST(LoadConfig, MissingRequiredTopLevelKey) {
    TempDir dir;
    const std::string path = dir.write("c.yaml", "plugins_dir: plugins\nstate: { path: s.db }\n");
    const std::string msg = config_error(path);
    EXPECT_EQ(msg.rfind(path + ":1:1:", 0), 0u) << msg;
    EXPECT_NE(msg.find("rules_dir"), std::string::npos) << msg;
}

TEST(LoadConfig, RootMustBeAMapping) {
    TempDir dir;
    const std::string path = dir.write("c.yaml", "- a\n- b\n");
    const std::string msg = config_error(path);
    EXPECT_EQ(msg.rfind(path + ":1:1:", 0), 0u) << msg;
}

TEST(LoadConfig, UnknownKeyInConnection) {
    TempDir dir;
    const std::string path = dir.write("c.yaml", kHead +
                                                     "connections:\n"                   // 4
                                                     "  crm:\n"                          // 5
                                                     "    provider: hubspot\n"           // 6
                                                     "    base_url: https://x.example\n"  // 7
                                                     "    timeout: 5\n");                // 8
    const auto errs = config_errors(path);
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_EQ(errs[0].rfind(at(path, 8, 5) + ": unknown key 'timeout'", 0), 0u) << errs[0];
}

TEST(LoadConfig, MissingProvider) {
    TempDir dir;
    const std::string path = dir.write("c.yaml", kHead +
                                                     "connections:\n"
                                                     "  crm:\n"
                                                     "    base_url: https://x.example\n");  // 6
    const auto errs = config_errors(path);
    ASSERT_EQ(errs.size(), 1u);
    // Points at the connection's mapping (its first key).
    EXPECT_EQ(errs[0].rfind(at(path, 6, 5) + ": connection 'crm': missing 'provider'", 0), 0u) << errs[0];
}

TEST(LoadConfig, BadBaseUrlScheme) {
    TempDir dir;
    const std::string path = dir.write("c.yaml", kHead +
                                                     "connections:\n"
                                                     "  crm:\n"
                                                     "    provider: hubspot\n"
                                                     "    base_url: ftp://x.example\n");  // 7, value at col 15
    const auto errs = config_errors(path);
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_EQ(errs[0].rfind(at(path, 7, 15) + ": base_url must start with https://", 0), 0u) << errs[0];
}

TEST(LoadConfig, TokenEnvNamingAnUnsetVariable) {
    TempDir dir;
    ::unsetenv(kUnsetVar);
    const std::string path = dir.write("c.yaml", kHead +
                                                     "connections:\n"
                                                     "  crm:\n"
                                                     "    provider: hubspot\n"
                                                     "    base_url: https://x.example\n"
                                                     "    credentials:\n"
                                                     "      token_env: " + std::string(kUnsetVar) + "\n");  // 9, value at col 18
    const auto errs = config_errors(path);
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_EQ(errs[0].rfind(at(path, 9, 18) + ":", 0), 0u) << errs[0];
    EXPECT_NE(errs[0].find(kUnsetVar), std::string::npos) << errs[0];
    EXPECT_NE(errs[0].find("not set"), std::string::npos) << errs[0];
    EXPECT_NE(errs[0].find("'crm'"), std::string::npos) << errs[0];
}

TEST(LoadConfig, TokenEnvSetButEmptyCountsAsUnset) {
    TempDir dir;
    ASSERT_EQ(::setenv(kTokenVar, "", 1), 0);
    const std::string path = dir.write("c.yaml", kHead +
                                                     "connections:\n"
                                                     "  crm:\n"
                                                     "    provider: hubspot\n"
                                                     "    base_url: https://x.example\n"
                                                     "    credentials: { token_env: " + std::string(kTokenVar) + " }\n");
    const auto errs = config_errors(path);
    ::unsetenv(kTokenVar);
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_NE(errs[0].find(kTokenVar), std::string::npos) << errs[0];
}

TEST(LoadConfig, UnreadableTokenFile) {
    TempDir dir;
    const std::string path = dir.write("c.yaml", kHead +
                                                     "connections:\n"
                                                     "  crm:\n"
                                                     "    provider: hubspot\n"
                                                     "    base_url: https://x.example\n"
                                                     "    credentials:\n"
                                                     "      token_file: missing.txt\n");  // 9, value col 19
    const auto errs = config_errors(path);
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_EQ(errs[0].rfind(at(path, 9, 19) + ":", 0), 0u) << errs[0];
    EXPECT_NE(errs[0].find("missing.txt"), std::string::npos) << errs[0];
}

TEST(LoadConfig, NegativeRateLimit) {
    TempDir dir;
    const std::string path = dir.write("c.yaml", kHead +
                                                     "connections:\n"
                                                     "  crm:\n"
                                                     "    provider: hubspot\n"
                                                     "    base_url: https://x.example\n"
                                                     "    rate_limit:\n"
                                                     "      per_second: -1\n");  // 9
    const auto errs = config_errors(path);
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_EQ(errs[0].rfind(at(path, 9, 7) + ":", 0), 0u) << errs[0];
    EXPECT_NE(errs[0].find("rate_limit"), std::string::npos) << errs[0];
}

TEST(LoadConfig, NegativeBurst) {
    TempDir dir;
    const std::string path = dir.write("c.yaml", kHead +
                                                     "connections:\n"
                                                     "  crm:\n"
                                                     "    provider: hubspot\n"
                                                     "    base_url: https://x.example\n"
                                                     "    rate_limit: { per_second: 5, burst: -0.5 }\n");  // 8, '{' at col 17
    const auto errs = config_errors(path);
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_EQ(errs[0].rfind(at(path, 8, 17) + ":", 0), 0u) << errs[0];
}

TEST(LoadConfig, NonNumericAndOutOfRangeValues) {
    TempDir dir;
    const std::string path = dir.write("c.yaml", kHead +
                                                     "connections:\n"
                                                     "  a:\n"                              // 5
                                                     "    provider: p\n"
                                                     "    base_url: https://x.example\n"
                                                     "    rate_limit: { per_second: fast }\n"  // 8: value col 31
                                                     "  b:\n"                              // 9
                                                     "    provider: p\n"
                                                     "    base_url: https://x.example\n"
                                                     "    max_in_flight: 0\n"                 // 12: value col 20
                                                     "  c:\n"
                                                     "    provider: p\n"
                                                     "    base_url: https://x.example\n"
                                                     "    retry: { max_attempts: 2.5 }\n");  // 16: value col 28
    const auto errs = config_errors(path);
    ASSERT_EQ(errs.size(), 3u);
    EXPECT_EQ(errs[0].rfind(at(path, 8, 31) + ": rate_limit.per_second: expected a number", 0), 0u) << errs[0];
    EXPECT_EQ(errs[1].rfind(at(path, 12, 20) + ": max_in_flight: expected a whole number", 0), 0u) << errs[1];
    EXPECT_EQ(errs[2].rfind(at(path, 16, 28) + ": retry.max_attempts: expected a whole number", 0), 0u) << errs[2];
}

TEST(LoadConfig, InvalidConnectionName) {
    TempDir dir;
    const std::string path = dir.write("c.yaml", kHead +
                                                     "connections:\n"
                                                     "  HubSpot Main:\n"  // 5:3
                                                     "    provider: p\n"
                                                     "    base_url: https://x.example\n");
    const auto errs = config_errors(path);
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_EQ(errs[0].rfind(at(path, 5, 3) + ": connection name 'HubSpot Main'", 0), 0u) << errs[0];
}

// A config whose state block holds `setting` on line 5 (after "  path: s.db" on line 4).
std::string with_state_setting(const TempDir &dir, const std::string &setting) {
    return dir.write("c.yaml",
                     "plugins_dir: plugins\n"
                     "rules_dir: rules\n"
                     "state:\n"
                     "  path: s.db\n"
                     "  " + setting + "\n");
}

TEST(LoadConfig, InvalidSynchronous) {
    TempDir dir;
    const std::string path = with_state_setting(dir, "synchronous: sometimes");  // value col 16
    const std::string msg = config_error(path);
    EXPECT_EQ(msg.rfind(at(path, 5, 16) + ": state.synchronous: expected 'full' or 'normal'", 0), 0u) << msg;
}

TEST(LoadConfig, DeliverySettings) {
    TempDir dir;
    const std::string ok = dir.write("ok.yaml", kHead + "delivery: { max_calls_in_flight: 4096 }\n");
    EXPECT_EQ(load_config(ok).delivery.max_calls_in_flight, 4096);
    const std::string bad = dir.write("bad.yaml", kHead + "delivery:\n  max_calls_in_flight: 0\n");  // 5, value col 24
    std::string msg = config_error(bad);
    EXPECT_EQ(msg.rfind(at(bad, 5, 24) + ": delivery.max_calls_in_flight", 0), 0u) << msg;
    const std::string typo = dir.write("typo.yaml", kHead + "delivery: { max_calls: 9 }\n");
    msg = config_error(typo);
    EXPECT_NE(msg.find("max_calls"), std::string::npos) << msg;
}

TEST(LoadConfig, BacklogLimitsAndTheTasksHeldInMemory) {
    TempDir dir;
    const std::string ok = dir.write("ok.yaml", kHead + "delivery: { max_backlog: { per_connection: 5, total: 9 }, tasks_in_memory: 5000 }\n");
    const auto cfg = load_config(ok);
    EXPECT_EQ(cfg.delivery.max_backlog_per_connection, 5);
    EXPECT_EQ(cfg.delivery.max_backlog_total, 9);
    EXPECT_EQ(cfg.delivery.tasks_in_memory, 5000);
    const std::string zero = dir.write("zero.yaml", kHead + "delivery:\n  max_backlog: { per_connection: 0 }\n");  // 5, value col 34
    std::string msg = config_error(zero);
    EXPECT_EQ(msg.rfind(at(zero, 5, 34) + ": delivery.max_backlog.per_connection", 0), 0u) << msg;
    const std::string typo = dir.write("typo.yaml", kHead + "delivery:\n  max_backlog: { per_lane: 3 }\n");
    msg = config_error(typo);
    EXPECT_NE(msg.find("per_lane"), std::string::npos) << msg;
    const std::string few = dir.write("few.yaml", kHead + "delivery:\n  tasks_in_memory: 10\n");  // 5, value col 20
    msg = config_error(few);
    EXPECT_EQ(msg.rfind(at(few, 5, 20) + ": delivery.tasks_in_memory", 0), 0u) << msg;
}

TEST(LoadConfig, EventIdRetentionIsADuration) {
    TempDir dir;
    EXPECT_EQ(load_config(with_state_setting(dir, "event_id_retention: 36h")).state.event_id_retention_ms, 36LL * 3'600'000);
    const std::string path = with_state_setting(dir, "event_id_retention: 7");  // value col 23
    const std::string msg = config_error(path);
    EXPECT_EQ(msg.rfind(at(path, 5, 23) + ": state.event_id_retention: expected a duration", 0), 0u) << msg;
}

TEST(LoadConfig, CommitWindowOutOfRange) {
    TempDir dir;
    const std::string path = with_state_setting(dir, "commit_window_us: 500000");  // value col 21
    const std::string msg = config_error(path);
    EXPECT_EQ(msg.rfind(at(path, 5, 21) + ": state.commit_window_us", 0), 0u) << msg;
    EXPECT_NE(msg.find("100000"), std::string::npos) << msg;
}

TEST(LoadConfig, CacheSizeIsReadAndBounded) {
    TempDir dir;
    EXPECT_EQ(load_config(with_state_setting(dir, "cache_mib: 0")).state.cache_mib, 0);
    EXPECT_EQ(load_config(with_state_setting(dir, "cache_mib: 256")).state.cache_mib, 256);
    const std::string path = with_state_setting(dir, "cache_mib: 70000");  // value col 14
    const std::string msg = config_error(path);
    EXPECT_EQ(msg.rfind(at(path, 5, 14) + ": state.cache_mib", 0), 0u) << msg;
    EXPECT_NE(msg.find("65536"), std::string::npos) << msg;
}

TEST(LoadConfig, InvalidLogLevelAndServerThreads) {
    TempDir dir;
    const std::string p1 = dir.write("a.yaml", kHead + "log_level: loud\n");  // 4:12
    std::string msg = config_error(p1);
    EXPECT_EQ(msg.rfind(at(p1, 4, 12) + ": log_level:", 0), 0u) << msg;

    const std::string p2 = dir.write("b.yaml", kHead + "server:\n  threads: 0\n");  // 5:12
    msg = config_error(p2);
    EXPECT_EQ(msg.rfind(at(p2, 5, 12) + ": server.threads:", 0), 0u) << msg;
}

// Credentials of the listener: ingest tokens per sender, status and admin tokens, each
// from a variable or a file, never the same twice; events from other hosts need tokens.
TEST(LoadConfig, ServerTokensAreReadFromVariablesAndFiles) {
    TempDir dir;
    ASSERT_EQ(::setenv(kTokenVar, "ingest-from-env", 1), 0);
    dir.write("orders.token", "ingest-from-file\n");
    dir.write("status.token", "status-from-file\n");
    const std::string path = dir.write("c.yaml", kHead +
                                                     "server:\n"
                                                     "  listen: '0.0.0.0:9000'\n"
                                                     "  status_token_file: status.token\n"
                                                     "  ingest_tokens:\n"
                                                     "    - { name: billing, token_env: " + std::string(kTokenVar) + " }\n"
                                                     "    - { name: orders, token_file: orders.token }\n");
    const auto cfg = load_config(path);
    ASSERT_EQ(cfg.server.ingest_tokens.size(), 2u);
    EXPECT_EQ(cfg.server.ingest_tokens[0].name, "billing");
    EXPECT_EQ(cfg.server.ingest_tokens[0].token, "ingest-from-env");
    EXPECT_EQ(cfg.server.ingest_tokens[1].token, "ingest-from-file");
    EXPECT_EQ(cfg.server.status_token, "status-from-file");
    EXPECT_FALSE(cfg.server.open_ingest());
    EXPECT_FALSE(cfg.server.tls());
}

TEST(LoadConfig, ServerCredentialErrorsNameTheLine) {
    TempDir dir;
    ASSERT_EQ(::setenv(kTokenVar, "same-token", 1), 0);
    // Other hosts, no tokens: refused at server.listen (5:11).
    std::string p = dir.write("a.yaml", kHead + "server:\n  listen: '0.0.0.0:8080'\n");
    std::string msg = config_error(p);
    EXPECT_EQ(msg.rfind(at(p, 5, 11) + ": server.listen '0.0.0.0:8080' takes events from other hosts", 0), 0u) << msg;
    // ...unless ingest_auth: none says a proxy authenticates.
    p = dir.write("b.yaml", kHead + "server:\n  listen: '0.0.0.0:8080'\n  ingest_auth: none\n");
    EXPECT_TRUE(load_config(p).server.open_ingest());
    p = dir.write("c.yaml", kHead + "server:\n  ingest_auth: maybe\n");  // 5:16
    msg = config_error(p);
    EXPECT_EQ(msg.rfind(at(p, 5, 16) + ": server.ingest_auth: expected token or none", 0), 0u) << msg;
    // Two senders with one token.
    p = dir.write("d.yaml", kHead + "server:\n  ingest_tokens:\n    - { name: a, token_env: " + kTokenVar + " }\n    - { name: b, token_env: " + kTokenVar + " }\n");
    msg = config_error(p);
    EXPECT_EQ(msg.rfind(at(p, 7, 7) + ": server.ingest_tokens[1]: the same token as 'a'", 0), 0u) << msg;
    // An ingest token equal to the admin token.
    p = dir.write("e.yaml", kHead + "server:\n  admin_token_env: " + kTokenVar + "\n  ingest_tokens: [{ name: a, token_env: " + kTokenVar + " }]\n");
    msg = config_error(p);
    EXPECT_NE(msg.find("server.ingest_tokens: 'a' has the admin or status token"), std::string::npos) << msg;
    // A token variable that is not set, a missing name.
    p = dir.write("f.yaml", kHead + "server:\n  ingest_tokens: [{ name: a, token_env: " + kUnsetVar + " }]\n");  // value at 5:41
    msg = config_error(p);
    EXPECT_EQ(msg.rfind(at(p, 5, 41) + ": server.ingest_tokens[0].token_env: environment variable " + kUnsetVar + " is not set", 0), 0u) << msg;
    p = dir.write("g.yaml", kHead + "server:\n  ingest_tokens: [{ token_env: " + kTokenVar + " }]\n");
    msg = config_error(p);
    EXPECT_NE(msg.find("server.ingest_tokens[0]: name is required"), std::string::npos) << msg;
}

TEST(LoadConfig, ServerTlsNeedsReadableCertificateAndKey) {
    TempDir dir;
    dir.write("cert.pem", "x");
    dir.write("key.pem", "x");
    std::string p = dir.write("a.yaml", kHead + "server:\n  tls: { cert_file: cert.pem, key_file: key.pem }\n");
    const auto cfg = load_config(p);
    EXPECT_TRUE(cfg.server.tls());
    EXPECT_EQ(cfg.server.tls_key_file, (fs::absolute(dir.path()) / "key.pem").lexically_normal().string());
    p = dir.write("b.yaml", kHead + "server:\n  tls: { cert_file: cert.pem }\n");  // 5:8
    std::string msg = config_error(p);
    EXPECT_EQ(msg.rfind(at(p, 5, 8) + ": server.tls: cert_file and key_file are both required", 0), 0u) << msg;
    p = dir.write("c.yaml", kHead + "server:\n  tls: { cert_file: cert.pem, key_file: nope.pem, client_ca_file: ca.pem }\n");  // key at 5:41
    msg = config_error(p);
    EXPECT_EQ(msg.rfind(at(p, 5, 41) + ": server.tls.key_file: cannot read ", 0), 0u) << msg;
}

TEST(LoadConfig, InvalidLogFormatNamesFileAndLine) {
    TempDir dir;
    const std::string p1 = dir.write("a.yaml", kHead + "log_format: yaml\n");  // 4:13
    std::string msg = config_error(p1);
    EXPECT_EQ(msg.rfind(at(p1, 4, 13) + ": log_format: expected text or json", 0), 0u) << msg;
    // As for log_level: the words, not a near miss.
    const std::string p2 = dir.write("b.yaml", kHead + "log_level: info\nlog_format: JSON\n");  // 5:13
    msg = config_error(p2);
    EXPECT_EQ(msg.rfind(at(p2, 5, 13) + ": log_format: expected text or json", 0), 0u) << msg;
}

// The secrets a config resolves are registered for the logs' redaction as it loads.
TEST(LoadConfig, ResolvedSecretsAreRedactedFromLogs) {
    TempDir dir;
    recsync::log::clear_secrets();
    ASSERT_EQ(::setenv(kTokenVar, "unit-access-token-91", 1), 0);
    ASSERT_EQ(::setenv("RECSYNC_UNIT_TEST_ADMIN_5c1e", "unit-admin-token-33", 1), 0);
    ASSERT_EQ(::setenv("RECSYNC_UNIT_TEST_CLIENT_5c1e", "unit-client-secret-77", 1), 0);
    ASSERT_EQ(::setenv("RECSYNC_UNIT_TEST_DSN_5c1e", "host=db user=app password=unit-pg-pw-55", 1), 0);
    const std::string path = dir.write("c.yaml", kHead +
                                                     "server: { admin_token_env: RECSYNC_UNIT_TEST_ADMIN_5c1e }\n"
                                                     "connections:\n"
                                                     "  crm: { provider: hubspot, base_url: 'http://127.0.0.1:1', credentials: { token_env: " + std::string(kTokenVar) +
                                                     ", client_secret_env: RECSYNC_UNIT_TEST_CLIENT_5c1e } }\n"
                                                     "  db: { provider: postgres, postgres: { dsn_env: RECSYNC_UNIT_TEST_DSN_5c1e, tables: { contacts: { table: customers, key: id } } } }\n");
    EXPECT_EQ(recsync::log::redacted("unit-access-token-91"), "unit-access-token-91");  // not yet registered
    load_config(path);
    ::unsetenv(kTokenVar);
    ::unsetenv("RECSYNC_UNIT_TEST_ADMIN_5c1e");
    ::unsetenv("RECSYNC_UNIT_TEST_CLIENT_5c1e");
    ::unsetenv("RECSYNC_UNIT_TEST_DSN_5c1e");
    EXPECT_EQ(recsync::log::redacted("token unit-access-token-91 refused"), "token [redacted] refused");
    EXPECT_EQ(recsync::log::redacted("admin unit-admin-token-33"), "admin [redacted]");
    EXPECT_EQ(recsync::log::redacted("client unit-client-secret-77."), "client [redacted].");
    // The DSN's password alone too (a driver's message may quote it without its key).
    EXPECT_EQ(recsync::log::redacted("'unit-pg-pw-55' rejected"), "'[redacted]' rejected");
    recsync::log::clear_secrets();
}

TEST(LoadConfig, YamlSyntaxErrorReportsParserPosition) {
    TempDir dir;
    const std::string path = dir.write("c.yaml",
                                       "plugins_dir: plugins\n"
                                       "rules_dir: : rules\n"  // the second ':' (col 12) is illegal
                                       "state: { path: s.db }\n");
    const std::string msg = config_error(path);
    EXPECT_EQ(msg.rfind(at(path, 2, 12) + ": invalid YAML:", 0), 0u) << msg;
}

TEST(LoadConfig, UnclosedFlowSequenceReportsALineAfterTheOpening) {
    TempDir dir;
    const std::string path = dir.write("c.yaml",
                                       "plugins_dir: plugins\n"
                                       "rules_dir: [a, b\n"
                                       "state: { path: s.db }\n");
    const std::string msg = config_error(path);
    EXPECT_EQ(msg.rfind(path + ":", 0), 0u) << msg;
    EXPECT_NE(msg.find("invalid YAML"), std::string::npos) << msg;
    // The parser notices only on a later line; whatever it reports is a real position.
    const std::string pos = msg.substr(path.size() + 1, msg.find(": ", path.size()) - path.size() - 1);
    const auto colon = pos.find(':');
    ASSERT_NE(colon, std::string::npos) << msg;
    EXPECT_GE(std::stoi(pos.substr(0, colon)), 2) << msg;
    EXPECT_GE(std::stoi(pos.substr(colon + 1)), 1) << msg;
}

TEST(LoadConfig, SeveralConnectionErrorsAreCollectedTogether) {
    TempDir dir;
    ::unsetenv(kUnsetVar);
    const std::string path = dir.write("c.yaml", kHead +
                                                     "connections:\n"                           // 4
                                                     "  good:\n"                                 // 5
                                                     "    provider: p\n"
                                                     "    base_url: https://ok.example\n"
                                                     "  no-provider:\n"                          // 8
                                                     "    base_url: https://x.example\n"         // 9
                                                     "  bad-url:\n"                              // 10
                                                     "    provider: p\n"
                                                     "    base_url: x.example\n"                 // 12: col 15
                                                     "  typo:\n"
                                                     "    provider: p\n"
                                                     "    base_url: https://x.example\n"
                                                     "    max_inflight: 3\n"                     // 16: col 5
                                                     "  no-token:\n"
                                                     "    provider: p\n"
                                                     "    base_url: https://x.example\n"
                                                     "    credentials: { token_env: " + std::string(kUnsetVar) + " }\n");  // 20: col 31
    try {
        load_config(path);
        FAIL() << "expected ConfigErrors";
    } catch (const ConfigErrors &e) {
        const auto &errs = e.errors();
        ASSERT_EQ(errs.size(), 4u) << e.what();
        EXPECT_EQ(errs[0].rfind(at(path, 9, 5) + ": connection 'no-provider': missing 'provider'", 0), 0u) << errs[0];
        EXPECT_EQ(errs[1].rfind(at(path, 12, 15) + ":", 0), 0u) << errs[1];
        EXPECT_EQ(errs[2].rfind(at(path, 16, 5) + ": unknown key 'max_inflight'", 0), 0u) << errs[2];
        EXPECT_EQ(errs[3].rfind(at(path, 20, 31) + ":", 0), 0u) << errs[3];
        EXPECT_NE(errs[3].find(kUnsetVar), std::string::npos) << errs[3];
        // what() joins them one per line.
        const std::string all = e.what();
        for (const auto &one : errs) EXPECT_NE(all.find(one), std::string::npos);
        EXPECT_EQ(std::count(all.begin(), all.end(), '\n'), 3);
    }
}

}  // namespace

namespace {

TEST(LoadConfig, RetryMaxAgeIsADurationWithAUnit) {
    TempDir dir;
    const std::string path = dir.write("c.yaml", kHead +
                                                     "connections:\n"
                                                     "  a: { provider: p, base_url: https://x.example, retry: { max_age: 6h } }\n"
                                                     "  b: { provider: p, base_url: https://x.example, retry: { max_age: 90s } }\n"
                                                     "  c: { provider: p, base_url: https://x.example }\n");
    const auto cfg = load_config(path);
    ASSERT_EQ(cfg.connections.size(), 3u);
    EXPECT_EQ(cfg.connections[0].retry.max_age_ms, 6LL * 3600 * 1000);
    EXPECT_EQ(cfg.connections[0].retry.max_age_text, "6h");
    EXPECT_EQ(cfg.connections[1].retry.max_age_ms, 90'000);
    EXPECT_EQ(cfg.connections[2].retry.max_age_ms, 0) << "no limit unless configured";
}

TEST(LoadConfig, BadRetryMaxAgeNamesFileLineCol) {
    TempDir dir;
    const std::string path = dir.write("c.yaml", kHead +
                                                     "connections:\n"
                                                     "  a:\n"                                // 5
                                                     "    provider: p\n"
                                                     "    base_url: https://x.example\n"
                                                     "    retry: { max_age: 6 }\n"           // 8: value col 23
                                                     "  b:\n"
                                                     "    provider: p\n"
                                                     "    base_url: https://x.example\n"
                                                     "    retry: { max_age: 500ms }\n"       // 12: value col 23
                                                     "  c:\n"
                                                     "    provider: p\n"
                                                     "    base_url: https://x.example\n"
                                                     "    retry: { max_age: 6 hours }\n");  // 16: value col 23
    const auto errs = config_errors(path);
    ASSERT_EQ(errs.size(), 3u);
    EXPECT_EQ(errs[0].rfind(at(path, 8, 23) + ": retry.max_age: expected a duration like 30s", 0), 0u) << errs[0];
    EXPECT_EQ(errs[1].rfind(at(path, 12, 23) + ": retry.max_age: must be between 1s and 365d", 0), 0u) << errs[1];
    EXPECT_EQ(errs[2].rfind(at(path, 16, 23) + ": retry.max_age: expected a duration", 0), 0u) << errs[2];
}

}  // namespace

namespace {

TEST(LoadConfig, TlsCaFileIsResolvedAndMustBeReadable) {
    TempDir dir;
    dir.write("certs/private-ca.pem", "-----BEGIN CERTIFICATE-----\n");
    const std::string path = dir.write("c.yaml", kHead +
                                                     "connections:\n"
                                                     "  a: { provider: p, base_url: https://crm.internal, tls: { ca_file: certs/private-ca.pem } }\n"
                                                     "  b: { provider: p, base_url: https://x.example }\n");
    const auto cfg = load_config(path);
    EXPECT_EQ(cfg.connections[0].tls_ca_file, (dir.path() / "certs/private-ca.pem").string());
    EXPECT_EQ(cfg.connections[1].tls_ca_file, "") << "the system's CAs unless configured";

    const std::string bad = dir.write("bad.yaml", kHead +
                                                      "connections:\n"
                                                      "  a:\n"
                                                      "    provider: p\n"
                                                      "    base_url: https://x.example\n"
                                                      "    tls: { ca_file: nope.pem }\n"             // 8: value col 21
                                                      "  b:\n"
                                                      "    provider: p\n"
                                                      "    base_url: https://x.example\n"
                                                      "    tls: { ca_file: certs/private-ca.pem, verify: false }\n");  // 12: key col 43
    const auto errs = config_errors(bad);
    ASSERT_EQ(errs.size(), 2u);
    EXPECT_EQ(errs[0], at(bad, 8, 21) + ": tls.ca_file: cannot read '" + (dir.path() / "nope.pem").string() + "'");
    EXPECT_EQ(errs[1], at(bad, 12, 43) + ": unknown key 'verify' (expected one of: ca_file)") << "verification cannot be turned off";
}

}  // namespace

namespace {

std::string first_error(const std::string &path) {
    const auto errors = config_errors(path);
    return errors.empty() ? std::string() : errors.front();
}

// One connection "crm" on line 5 (after kHead and "connections:") with `extra` keys.
std::string with_connection(const TempDir &dir, const std::string &extra) {
    return dir.write("c.yaml", kHead + "connections:\n  crm: { provider: hubspot, base_url: 'https://api.example.com', " + extra + " }\n");
}

TEST(LoadConfig, ConflictPoliciesAndTheirErrors) {
    TempDir dir;
    using recsync::config::ConflictPolicy;
    EXPECT_EQ(load_config(with_connection(dir, "conflicts: { policy: last_writer_wins }")).connections.at(0).conflict_policy, ConflictPolicy::LastWriterWins);
    EXPECT_EQ(load_config(with_connection(dir, "conflicts: { prefer: internal }")).connections.at(0).conflict_policy, ConflictPolicy::PreferInternal);
    const auto both = load_config(with_connection(dir, "conflicts: { prefer: external, owners: { email: internal } }")).connections.at(0);
    EXPECT_EQ(both.conflict_policy, ConflictPolicy::PreferExternal);
    EXPECT_EQ(both.owned_internal, std::vector<std::string>{"email"});
    EXPECT_EQ(load_config(with_connection(dir, "")).connections.at(0).conflict_policy, ConflictPolicy::None);
    std::string path = with_connection(dir, "conflicts: { policy: first_writer }");
    std::string msg = first_error(path);
    EXPECT_EQ(msg.rfind(path + ":5:", 0), 0u) << msg;
    EXPECT_NE(msg.find("conflicts.policy: 'first_writer' is not 'last_writer_wins'"), std::string::npos) << msg;
    msg = first_error(with_connection(dir, "conflicts: { prefer: crm }"));
    EXPECT_NE(msg.find("conflicts.prefer: 'crm' is not 'internal'"), std::string::npos) << msg;
    msg = first_error(with_connection(dir, "conflicts: { prefer: internal, policy: last_writer_wins }"));
    EXPECT_NE(msg.find("not both"), std::string::npos) << msg;
}

TEST(LoadConfig, PollingObjectsIntervalsAndRate) {
    TempDir dir;
    const auto c = load_config(with_connection(dir, "polling: { objects: { contacts: 30s, deals: 5m }, requests_per_second: 2.5 }")).connections.at(0);
    ASSERT_EQ(c.polling.objects.size(), 2u);
    EXPECT_EQ(c.polling.objects[0].object, "contacts");
    EXPECT_EQ(c.polling.objects[0].interval_ms, 30'000);
    EXPECT_EQ(c.polling.objects[1].interval_ms, 300'000);
    EXPECT_DOUBLE_EQ(c.polling.requests_per_second, 2.5);
    EXPECT_EQ(load_config(with_connection(dir, "polling: { objects: { contacts: 1m } }")).connections.at(0).polling.requests_per_second, 5.0);
    const std::string path = with_connection(dir, "polling: { objects: { contacts: 500ms } }");
    const std::string msg = first_error(path);
    EXPECT_EQ(msg.rfind(path + ":5:", 0), 0u) << msg;
    EXPECT_NE(msg.find("polling.objects.contacts: must be between 1s and 365d"), std::string::npos) << msg;
}

}  // namespace

TEST(LoadConfig, BatchSettingsAndTheirErrors) {
    TempDir dir;
    const std::string good = dir.write("good.yaml", kHead +
                                                        "connections:\n"
                                                        "  a:\n"
                                                        "    provider: p\n"
                                                        "    base_url: https://x.example\n"
                                                        "    batch: { max_size: 10, max_wait_ms: 2 }\n"
                                                        "  b:\n"
                                                        "    provider: p\n"
                                                        "    base_url: https://x.example\n");
    const auto cfg = load_config(good);
    ASSERT_EQ(cfg.connections.size(), 2u);
    EXPECT_EQ(cfg.connections[0].batch.max_size, 10);
    EXPECT_EQ(cfg.connections[0].batch.max_wait_ms, 2);
    EXPECT_EQ(cfg.connections[1].batch.max_size, 0) << "default: the provider's sizes";
    EXPECT_EQ(cfg.connections[1].batch.max_wait_ms, 5);

    const std::string path = dir.write("c.yaml", kHead +
                                                     "connections:\n"
                                                     "  a:\n"
                                                     "    provider: p\n"
                                                     "    base_url: https://x.example\n"
                                                     "    batch: { max_size: 0 }\n"  // 8: value col 24
                                                     "  b:\n"
                                                     "    provider: p\n"
                                                     "    base_url: https://x.example\n"
                                                     "    batch: { size: 5 }\n");  // 12: key col 14
    const auto errs = config_errors(path);
    ASSERT_EQ(errs.size(), 2u);
    EXPECT_EQ(errs[0].rfind(at(path, 8, 24) + ": batch.max_size: expected a whole number from 1 to 10000", 0), 0u) << errs[0];
    EXPECT_EQ(errs[1].rfind(at(path, 12, 14) + ": unknown key 'size'", 0), 0u) << errs[1];
}

TEST(LoadConfig, SharedRateLimitsAreLocalByDefaultAndRedisIsChecked) {
    TempDir dir;
    EXPECT_FALSE(load_config(dir.write("a.yaml", kHead)).ratelimit.shared());
#ifdef RECSYNC_WITH_REDIS
    const auto redis = load_config(dir.write("b.yaml", kHead + "ratelimit: { backend: redis, redis: { address: '127.0.0.1:6379', key_prefix: prod, fallback_instances: 3 } }\n"));
    EXPECT_TRUE(redis.ratelimit.shared());
    EXPECT_EQ(redis.ratelimit.address, "127.0.0.1:6379");
    EXPECT_EQ(redis.ratelimit.key_prefix, "prod");
    EXPECT_EQ(redis.ratelimit.fallback_instances, 3);
    const std::string bad_port = dir.write("c.yaml", kHead + "ratelimit:\n  backend: redis\n  redis:\n    address: 'localhost:99999'\n");
    EXPECT_EQ(config_error(bad_port).rfind(at(bad_port, 7, 14) + ": ratelimit.redis.address: '99999' is not a port", 0), 0u) << config_error(bad_port);
    const std::string no_section = dir.write("d.yaml", kHead + "ratelimit: { backend: redis }\n");
    EXPECT_NE(config_error(no_section).find("needs a 'redis:' section"), std::string::npos) << config_error(no_section);
    const std::string unset = dir.write("e.yaml", kHead + "ratelimit: { backend: redis, redis: { address: '/run/redis.sock', password_env: " + kUnsetVar + " } }\n");
    EXPECT_NE(config_error(unset).find(std::string("environment variable ") + kUnsetVar + " is not set"), std::string::npos) << config_error(unset);
#endif
    const std::string unknown = dir.write("f.yaml", kHead + "ratelimit: { backend: memcached }\n");
    EXPECT_NE(config_error(unknown).find("ratelimit.backend: expected local or redis"), std::string::npos) << config_error(unknown);
}
