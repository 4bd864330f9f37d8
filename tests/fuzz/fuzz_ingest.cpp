// libFuzzer target: bytes as the body of POST /v1/events, through the engine's own ingest
// path with the shipped rules (rules/) and the HubSpot plugin on connection hubspot-main
// (base_url http://127.0.0.1:9; nothing is sent).
//
// pipeline::parse_events (one JSON event, an array or NDJSON) -> pipeline::plan_event for
// each event (envelope, entity schema, rules, mapping, plugin transform, provider schema,
// plugin validate). Expected: pipeline::EventError (400/422). Anything else escaping, a
// crash, a sanitizer report, a leak or a hang is a finding. See tests/fuzz/README.md.
#include "config/config.hpp"
#include "config/yaml_source.hpp"
#include "engine/runtime_builder.hpp"
#include "pipeline/plan.hpp"

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

namespace fs = std::filesystem;
using namespace recsync;

namespace {
std::shared_ptr<const model::Runtime> g_rt;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    std::string base = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
    std::string tmpl = base + "/recsync-fuzz-ingest-XXXXXX";
    if (!mkdtemp(tmpl.data())) std::abort();
    const std::string dir = tmpl;
    try {
        fs::create_directories(dir + "/plugins");
        fs::permissions(dir + "/plugins", fs::perms::owner_all, fs::perm_options::replace);
        fs::copy_file(fs::path(RECSYNC_PLUGIN_DIR) / "hubspot.so", dir + "/plugins/hubspot.so");
        fs::permissions(dir + "/plugins/hubspot.so", fs::perms::owner_read | fs::perms::owner_write | fs::perms::owner_exec, fs::perm_options::replace);
        std::ofstream(dir + "/recsync.yaml") << "plugins_dir: plugins\n"
                                                "rules_dir: " RECSYNC_SOURCE_DIR "/rules\n"
                                                "state: { path: state/recsync.db }\n"
                                                "log_level: off\n"
                                                "connections:\n"
                                                "  hubspot-main: { provider: hubspot, base_url: \"http://127.0.0.1:9\" }\n";
        g_rt = engine::build_runtime(config::load_config(dir + "/recsync.yaml"));
    } catch (const std::exception &e) {
        std::cerr << "fuzz_ingest: cannot build the runtime: " << e.what() << "\n";
        std::abort();
    }
    // The runtime holds the plugin copy open; the dir itself can go.
    std::error_code ec;
    fs::remove_all(dir, ec);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string body(reinterpret_cast<const char *>(data), size);
    std::vector<nlohmann::json> events;
    try {
        events = pipeline::parse_events(body);
    } catch (const pipeline::EventError &) {  // F4 (a number overflow) lands here now, as a 400
        return 0;
    }
    size_t n = 0;
    for (const auto &e : events) {
        try {
            const auto plan = pipeline::plan_event(*g_rt, e);
            for (const auto &a : plan.actions) n += a.task.payload.size() + a.rule.size();
        } catch (const pipeline::EventError &) {
        }
    }
    static volatile size_t sink;
    sink = sink + n;
    return 0;
}
