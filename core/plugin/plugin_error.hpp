#pragma once

#include <stdexcept>
#include <string>

namespace recsync::plugin {

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

}  // namespace recsync::plugin
