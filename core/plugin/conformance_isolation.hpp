// The conformance kit in a child process, for `recsync plugin check`: a plugin that
// crashes or hangs fails a check naming where, instead of taking the checker with it.
// fork() without exec is only safe in a process with one thread: the CLI calls this
// before it starts any. The engine (many threads) runs run_conformance in-process.
#pragma once

#include "plugin/conformance.hpp"

namespace recsync::plugin {

struct IsolationLimits {
    // The child must announce or finish a check at least this often (each check is a
    // handful of calls), or it is killed as hung.
    int call_timeout_ms = 5000;
};

// run_conformance(so_path, config_json, options) in a forked child that streams every
// check to this process over a pipe. options.on_start/on_check are called here, as the
// child's lines arrive.
ConformanceReport run_conformance_isolated(const std::string &so_path, const std::string &config_json, ConformanceOptions options, IsolationLimits limits = {});

}  // namespace recsync::plugin
