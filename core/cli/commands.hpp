// The `recsync` subcommands. Each returns the process exit code and writes its report to
// stdout (errors to stderr).
#pragma once

#include <string>
#include <vector>

namespace recsync::cli {

int run_command(const std::vector<std::string> &args);  // dispatches on args[0]

int cmd_version();
int cmd_check(const std::string &config_path);
int cmd_run(const std::string &config_path);
int cmd_plugin_check(const std::string &so_path, const std::string &config_json);
// source: "internal" (System A), or a connection whose changes the events stand for.
int cmd_rules_test(const std::string &config_path, const std::vector<std::string> &event_files, const std::string &source = "internal");
int cmd_dlq_list(const std::string &config_path, long limit);
// show / replay / drop: through the running engine's admin API when it answers (so a
// replay is dispatched at once), else directly on the state database (picked up at start).
int cmd_dlq(const std::string &config_path, const std::string &verb, const std::vector<std::string> &args);

}  // namespace recsync::cli
