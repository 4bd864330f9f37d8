#include "plugin/provider_library.hpp"

#define BOOST_DLL_USE_STD_FS
#include <boost/dll/shared_library.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace recsync::plugin {

namespace fs = std::filesystem;

struct ProviderLibrary::Handle {
    boost::dll::shared_library lib;
};

ProviderLibrary::~ProviderLibrary() = default;

void check_trusted_path(const std::string &path, const char *what) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw PluginError(std::string(what) + " " + path + ": " + std::strerror(errno));
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        throw PluginError(std::string(what) + " " + path + " is writable by group or others (mode " + mode + "); refusing to load code that others can change");
    }
    if (st.st_uid != 0 && st.st_uid != ::geteuid())
        throw PluginError(std::string(what) + " " + path + " is owned by uid " + std::to_string(st.st_uid) + ", neither root nor us; refusing to load it");
}

std::map<std::string, std::string> find_provider_files(const std::string &dir) {
    std::map<std::string, std::string> out;
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) throw PluginError("plugins directory " + dir + ": " + ec.message());
    for (const auto &entry : it) {
        if (entry.path().extension() == ".so" && entry.is_regular_file()) out[entry.path().stem().string()] = entry.path().string();
    }
    return out;
}

namespace {

// Copies `src` into a fresh 0700 directory of our own; the caller removes the directory.
fs::path private_copy(const fs::path &src) {
    const char *base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/recsync-plugin-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw PluginError(std::string("cannot create a private plugin directory: ") + std::strerror(errno));
    const fs::path dst = fs::path(tmpl) / src.filename();
    std::error_code ec;
    fs::copy_file(src, dst, ec);
    if (ec) {
        fs::remove_all(tmpl, ec);
        throw PluginError("plugin " + src.string() + ": cannot copy for loading: " + ec.message());
    }
    fs::permissions(dst, fs::perms::owner_read | fs::perms::owner_exec, fs::perm_options::replace, ec);
    return dst;
}

}  // namespace

std::shared_ptr<ProviderLibrary> ProviderLibrary::load(const std::string &path) {
    const fs::path p = fs::absolute(path);
    const std::string file = p.string();
    check_trusted_path(p.parent_path().string(), "plugin directory");
    check_trusted_path(file, "plugin file");

    auto lib = std::shared_ptr<ProviderLibrary>(new ProviderLibrary());
    lib->path_ = file;
    lib->handle_ = std::make_unique<Handle>();
    try {
        // RTLD_NOW: unresolved symbols fail here, not mid-sync. RTLD_LOCAL: plugins cannot
        // see or interpose each other's symbols.
        // Load a private copy, not the file itself: glibc's dlopen returns the already
        // loaded library for a path it has seen, so a new build renamed over the old one
        // would never load side by side for a hot reload; and a private copy cannot be
        // changed under our feet while mapped.
        const fs::path copy = private_copy(p);
        struct RemoveCopy {
            fs::path dir;
            ~RemoveCopy() {
                std::error_code ec;
                fs::remove_all(dir, ec);  // the mapping outlives the directory entry
            }
        } remove_copy{copy.parent_path()};
        lib->handle_->lib.load(copy, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
    } catch (const PluginError &) {
        throw;
    } catch (const std::exception &e) {
        throw PluginError("plugin " + file + ": cannot load: " + e.what());
    }
    if (!lib->handle_->lib.has(RECSYNC_ENTRY_SYMBOL))
        throw PluginError("plugin " + file + ": no entry function '" RECSYNC_ENTRY_SYMBOL "' (is it a recsync provider built with visibility default on the entry?)");
    auto entry = lib->handle_->lib.get<const recsync_provider *(uint32_t, uint32_t)>(RECSYNC_ENTRY_SYMBOL);

    // We speak every minor of our major up to our own.
    const recsync_provider *d = entry(RECSYNC_ABI_MAKE(RECSYNC_ABI_MAJOR, 0), RECSYNC_ABI_VERSION);
    if (!d)
        throw PluginError("plugin " + file + ": supports no ABI version in " + std::to_string(RECSYNC_ABI_MAJOR) + ".0.." + std::to_string(RECSYNC_ABI_MAJOR) + "." +
                          std::to_string(RECSYNC_ABI_MINOR) + " (built for another ABI major?)");
    if (d->struct_size < offsetof(recsync_provider, abi_version) + sizeof(uint32_t))
        throw PluginError("plugin " + file + ": descriptor too short (" + std::to_string(d->struct_size) + " bytes)");
    const uint32_t major = RECSYNC_ABI_MAJOR_OF(d->abi_version);
    if (major != RECSYNC_ABI_MAJOR)
        throw PluginError("plugin " + file + ": ABI major " + std::to_string(major) + ", this recsync speaks major " + std::to_string(RECSYNC_ABI_MAJOR));
    if (d->struct_size < RECSYNC_PROVIDER_MIN_SIZE)
        throw PluginError("plugin " + file + ": descriptor is " + std::to_string(d->struct_size) + " bytes, shorter than the " + std::to_string(RECSYNC_PROVIDER_MIN_SIZE) +
                          " bytes that hold the required functions");
    // Append-only rule: copy what the plugin has, zero what it does not know about.
    std::memcpy(&lib->descriptor_, d, std::min<size_t>(d->struct_size, sizeof(recsync_provider)));
    const auto &desc = lib->descriptor_;
    const char *missing = !desc.id                ? "id"
                          : !desc.version         ? "version"
                          : !desc.create_instance ? "create_instance"
                          : !desc.destroy_instance ? "destroy_instance"
                          : !desc.describe        ? "describe"
                          : !desc.transform       ? "transform"
                          : !desc.validate        ? "validate"
                          : !desc.build_request   ? "build_request"
                          : !desc.parse_response  ? "parse_response"
                                                  : nullptr;
    if (missing) throw PluginError("plugin " + file + ": descriptor lacks required member '" + missing + "'");
    lib->id_ = desc.id;
    lib->version_ = desc.version;
    const std::string stem = p.stem().string();
    if (lib->id_ != stem) throw PluginError("plugin " + file + ": provider id '" + lib->id_ + "' does not match its file name '" + stem + ".so'");
    auto cap_mismatch = [&](uint64_t cap, bool present, const char *name) {
        if (((desc.capabilities & cap) != 0) != present)
            throw PluginError("plugin " + file + ": capability flags and functions disagree on " + name);
    };
    cap_mismatch(RECSYNC_CAP_WEBHOOKS, desc.parse_webhook != nullptr, "webhooks");
    cap_mismatch(RECSYNC_CAP_POLLING, desc.build_poll_request && desc.parse_poll_response, "polling");
    cap_mismatch(RECSYNC_CAP_AUTH_REFRESH, desc.build_auth_request && desc.parse_auth_response, "auth refresh");
    cap_mismatch(RECSYNC_CAP_BATCH, desc.build_batch_request && desc.parse_batch_response, "batches");
    return lib;
}

std::shared_ptr<ProviderLibrary> ProviderLibrary::builtin(const recsync_provider &descriptor) {
    auto lib = std::shared_ptr<ProviderLibrary>(new ProviderLibrary());
    lib->descriptor_ = descriptor;
    lib->id_ = descriptor.id;
    lib->version_ = descriptor.version;
    lib->path_ = "(built in)";
    return lib;
}

}  // namespace recsync::plugin
