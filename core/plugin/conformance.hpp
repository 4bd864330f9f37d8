// `recsync plugin check`: loads one provider alone and checks that it behaves: the
// descriptor is sane, an instance can be made, describe's schemas compile, and every
// function answers sample and garbage input with a result or an error status, never a crash.
#pragma once

#include <string>
#include <vector>

namespace recsync::plugin {

struct ConformanceCheck {
    std::string name;
    bool passed = false;
    std::string detail;
};

struct ConformanceReport {
    std::vector<ConformanceCheck> checks;
    bool passed() const {
        for (const auto &c : checks)
            if (!c.passed) return false;
        return !checks.empty();
    }
};

ConformanceReport run_conformance(const std::string &so_path, const std::string &config_json);

}  // namespace recsync::plugin
