#pragma once

#include <recsync/provider_abi.h>

#include <stdexcept>
#include <string>

namespace recsync::plugin {

// "invalid input", "unsupported", ... as what() of a failed call says it.
const char *status_name(int status);

// A provider refused to load, or a call into one failed. what() names the plugin.
class PluginError : public std::runtime_error {
public:
    PluginError(int status, const std::string &message) : std::runtime_error(message), status_(status) {}
    explicit PluginError(const std::string &message) : PluginError(-1, message) {}
    // The recsync_status of the failed call; -1 for a load failure.
    int status() const { return status_; }

private:
    int status_;
};

// A call returned OK with outputs that break the ABI's contract (no result, a path without
// its '/', JSON of the wrong shape): the plugin's bug, never an answer it chose.
class PluginContractError : public PluginError {
public:
    explicit PluginContractError(const std::string &message) : PluginError(RECSYNC_ERR_INTERNAL, message) {}
};

}  // namespace recsync::plugin
