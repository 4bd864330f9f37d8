// How the conformance kit's checks record themselves: each is announced before it runs
// (so an isolated run can name the check that crashed or hung) and ends in a verdict.
#pragma once

#include "plugin/conformance.hpp"
#include "plugin/plugin_error.hpp"
#include "plugin/provider_instance.hpp"

#include <string>

namespace recsync::plugin {

struct Verdict {
    enum class Kind { pass, fail, skip };
    Kind kind = Kind::pass;
    std::string detail;
    static Verdict ok(std::string detail = {}) { return {Kind::pass, std::move(detail)}; }
    static Verdict bad(std::string detail) { return {Kind::fail, std::move(detail)}; }
    static Verdict skipped(std::string why) { return {Kind::skip, std::move(why)}; }
};

class CheckRecorder {
public:
    CheckRecorder(ConformanceReport &report, const ConformanceOptions &options) : report_(report), options_(options) {}

    // Runs one check: `body` returns its verdict. A plugin call failing inside it (an error
    // status, or a broken contract: an OK without its output) fails the check with the
    // plugin's message, as does any other exception; a check that accepts an error status
    // says so with when_status.
    template <typename Body>
    Verdict run(const std::string &name, Body &&body) {
        if (options_.on_start) options_.on_start(name);
        Verdict v;
        try {
            v = body();
        } catch (const PluginError &e) {
            v = Verdict::bad(e.what());
        } catch (const std::exception &e) {
            v = Verdict::bad(std::string("unexpected error: ") + e.what());
        }
        add(name, v);
        return v;
    }
    void add(const std::string &name, const Verdict &v);
    bool full() const { return options_.depth == ConformanceOptions::Depth::full; }

private:
    ConformanceReport &report_;
    const ConformanceOptions &options_;
};

// The verdict of `fn` (which calls the plugin), or, when the plugin answers an error
// status, what `on_status(error)` makes of it. A broken contract is never an answer the
// plugin chose: it propagates, and run() fails the check.
template <typename Fn, typename OnStatus>
Verdict when_status(Fn &&fn, OnStatus &&on_status) {
    try {
        return fn();
    } catch (const PluginContractError &) {
        throw;
    } catch (const PluginError &e) {
        return on_status(e);
    }
}

// A call that must refuse: an error status passes (its message the detail), OK fails.
template <typename Fn>
Verdict refuses(Fn &&fn) {
    return when_status([&] { fn(); return Verdict::bad("returned OK"); }, [](const PluginError &e) { return Verdict::ok(e.what()); });
}

// What the kit's calls carry: a token to look for where it must not be, our key, their id.
inline constexpr std::string_view kConformanceToken = "conformance-token-5b1e9c7a";
inline constexpr std::string_view kConformanceKey = "conformance-key-1";
inline constexpr std::string_view kConformanceExternalId = "conformance-id-1";

// One call the kit built successfully: replayed with garbage answers and from two threads.
struct PlannedCall {
    recsync_action action = RECSYNC_ACTION_CREATE;
    std::string action_name;
    std::string object;
    std::string external_id;
    std::string payload;
    CallInput input() const { return {action, object, kConformanceKey, external_id, payload, kConformanceToken}; }
};

// Empty if `req` keeps the token to headers marked secret; else where it leaked.
std::string token_leak(const BuiltRequest &req);

}  // namespace recsync::plugin
