// How the conformance kit's checks record themselves: each is announced before it runs
// (so an isolated run can name the check that crashed or hung) and ends in a verdict.
#pragma once

#include "plugin/conformance.hpp"
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

    // Runs one check: `body` returns its verdict; an exception escaping it fails the check.
    template <typename Body>
    Verdict run(const std::string &name, Body &&body) {
        if (options_.on_start) options_.on_start(name);
        Verdict v;
        try {
            v = body();
        } catch (const std::exception &e) {
            v = Verdict::bad(std::string("unexpected error: ") + e.what());
        }
        add(name, v);
        return v;
    }
    void add(const std::string &name, const Verdict &v);
    const ConformanceOptions &options() const { return options_; }
    bool full() const { return options_.depth == ConformanceOptions::Depth::full; }

private:
    ConformanceReport &report_;
    const ConformanceOptions &options_;
};

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
