// The `recsync` subcommands. Each returns the process exit code and writes its report to
// stdout (errors to stderr).
#pragma once

#include <exception>
#include <optional>
#include <string>
#include <vector>

namespace recsync::config {
struct EngineConfig;
}

namespace recsync::cli {

int run_command(const std::vector<std::string> &args);  // dispatches on args[0]

int cmd_version();
int cmd_check(const std::string &config_path);
int cmd_run(const std::string &config_path);
int cmd_plugin_check(const std::string &so_path, const std::string &config_json, int call_timeout_ms);
// source: "internal" (System A), or a connection whose changes the events stand for.
int cmd_rules_test(const std::string &config_path, const std::vector<std::string> &event_files, const std::string &source = "internal");
int cmd_dlq_list(const std::string &config_path, long limit);
// show / replay / drop: through the running engine's admin API when it answers (so a
// replay is dispatched at once), else directly on the state database (picked up at start).
int cmd_dlq(const std::string &config_path, const std::string &verb, const std::vector<std::string> &args);

// The running instance's lanes as a table on stdout, from its /v1/status (status_command.cpp).
int cmd_status(const std::string &config_path, bool as_json);

// Shared by the commands' files: every error of `e` on stderr (a config's, one a line).
void print_errors(const std::exception &e);
// The config at `path`, or nullopt with its errors printed (print_errors).
std::optional<config::EngineConfig> load_config_or_print(const std::string &path);
// The postgres connections' databases against their config (pg_commands.cpp); each
// problem names file:line. Empty: all good, or no postgres connection.
std::vector<std::string> check_postgres(const config::EngineConfig &cfg);
// `recsync pg install|uninstall`: the change log and triggers of the postgres connections
// (only: one of them; dry_run: print the SQL instead).
int cmd_pg(const std::string &config_path, const std::string &verb, bool dry_run, const std::string &only);

}  // namespace recsync::cli
