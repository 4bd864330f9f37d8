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
int cmd_rules_test(const std::string &config_path, const std::vector<std::string> &event_files);
int cmd_dlq_list(const std::string &config_path, long limit);

}  // namespace recsync::cli
