// One loaded provider .so: file checks, Boost.DLL loading, entry negotiation and the
// validated copy of its descriptor. Shared by every instance created from it; the .so
// stays mapped while any holder of the shared_ptr lives (that is what makes hot reload's
// drain-then-retire safe).
#pragma once

#include "plugin/plugin_error.hpp"

#include <recsync/provider_abi.h>

#include <map>
#include <memory>
#include <string>

namespace recsync::plugin {

class ProviderLibrary {
public:
    // Loads `path` (…/<id>.so). Throws PluginError naming the file and the reason if:
    // the file or its directory is writable by group/others or owned by another user, the
    // entry symbol is missing, no ABI version fits, the descriptor is too short or lacks a
    // required function, or its id differs from the file name.
    static std::shared_ptr<ProviderLibrary> load(const std::string &path);
    // A provider compiled into recsync (a built-in connector, e.g. connectors/http): the
    // same descriptor and calls, no file. path() is "(built in)".
    static std::shared_ptr<ProviderLibrary> builtin(const recsync_provider &descriptor);
    ~ProviderLibrary();

    const recsync_provider &descriptor() const { return descriptor_; }
    const std::string &id() const { return id_; }
    const std::string &version() const { return version_; }
    const std::string &path() const { return path_; }
    uint32_t abi_version() const { return descriptor_.abi_version; }
    bool builtin() const { return !handle_; }

private:
    ProviderLibrary() = default;
    struct Handle;
    std::unique_ptr<Handle> handle_;
    recsync_provider descriptor_{};
    std::string id_, version_, path_;
};

// "<id>.so" files in `dir`: id -> path. Throws PluginError if the directory is unreadable.
std::map<std::string, std::string> find_provider_files(const std::string &dir);

// Refuses (PluginError) a path that others could change: writable by group or others, or
// owned by a user other than root or us. Loading a .so runs its code.
void check_trusted_path(const std::string &path, const char *what);

}  // namespace recsync::plugin
