// The conformance kit: loads one provider alone and checks that it behaves. The descriptor
// is sane, an instance can be made, describe's schemas compile, every declared action
// builds from the object's sample record with the token only in secret headers, every
// answer (garbage included) gets a consistent verdict, and webhooks, polling and auth
// refresh refuse what they must. `recsync plugin check` runs the full kit in a child process
// (conformance_isolation.hpp); the engine runs the light kit in-process at every reload.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace recsync::plugin {

struct ConformanceCheck {
    std::string name;
    bool passed = false;
    std::string detail;
    // Could not be run (no sample, an unsupported action, missing credentials): not a
    // failure, but reported with its reason so that nothing passes silently.
    bool skipped = false;
};

struct ConformanceReport {
    std::vector<ConformanceCheck> checks;
    bool passed() const {
        for (const auto &c : checks)
            if (!c.passed) return false;
        return !checks.empty();
    }
};

struct ConformanceOptions {
    // light: what the engine can afford at every reload (small garbage, one thread).
    // full: adds 1 MB and deeply nested bodies, every status, and two threads at once.
    enum class Depth { light, full };
    Depth depth = Depth::light;
    // Told before each check starts and once it has ended: the isolated run streams both to
    // its parent, which then knows where a crash or a hang happened.
    std::function<void(const std::string &name)> on_start;
    std::function<void(const ConformanceCheck &check)> on_check;
};

ConformanceReport run_conformance(const std::string &so_path, const std::string &config_json, const ConformanceOptions &options = {});

}  // namespace recsync::plugin
