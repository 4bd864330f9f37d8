#include "plugin/conformance_checks.hpp"
#include "plugin/conformance_samples.hpp"
#include "schema/json_schema.hpp"

namespace recsync::plugin {

using nlohmann::json;

std::string token_leak(const BuiltRequest &req) {
    if (req.path.find(kConformanceToken) != std::string::npos) return "the access token is in the path: " + req.method + " " + req.path;
    if (req.body.find(kConformanceToken) != std::string::npos) return "the access token is in the body";
    for (const auto &h : req.headers)
        if (!h.secret && h.value.find(kConformanceToken) != std::string::npos) return "the access token is in header '" + h.name + "', not marked secret";
    return {};
}

namespace {

struct ActionPlan {
    recsync_action action;
    const char *name;
    bool needs_payload;
    bool needs_external_id;
};

// Every action the object supports: the four basic ones always, upsert and find when
// describe's create_retry says the host will send them.
std::vector<ActionPlan> actions_of(const json &description) {
    std::vector<ActionPlan> plans = {{RECSYNC_ACTION_CREATE, "create", true, false},
                                     {RECSYNC_ACTION_UPDATE, "update", true, true},
                                     {RECSYNC_ACTION_DELETE, "delete", false, true},
                                     {RECSYNC_ACTION_READ, "read", false, true}};
    const std::string retry = description.value("create_retry", "");
    if (retry == "upsert") plans.push_back({RECSYNC_ACTION_UPSERT, "upsert", true, false});
    if (retry == "find") plans.push_back({RECSYNC_ACTION_FIND, "find", true, false});
    return plans;
}

// The sample's payload, checked: transform(OUTBOUND), validate, the object's schema.
// Empty if there is none (the checks say why).
std::optional<std::string> sample_payload(const ProviderInstance &inst, CheckRecorder &rec, const std::string &object, const json &description) {
    const SampleRecord sample = sample_for(description);
    const std::string prefix = object + ": ";
    if (!sample.record) {
        rec.run(prefix + "sample record", [&] { return sample.malformed ? Verdict::bad(sample.why_none) : Verdict::skipped(sample.why_none); });
        return std::nullopt;
    }
    std::optional<std::string> payload;
    const std::string origin = sample.from_describe ? "describe's sample" : "a sample built from the schema";
    rec.run(prefix + "transform(OUTBOUND) of " + origin, [&] {
        return when_status(
            [&] {
                payload = inst.transform(RECSYNC_OUTBOUND, object, sample.record->dump());
                return Verdict::ok(payload->substr(0, 200));
            },
            [&](const PluginError &e) {
                // A schema-built record is a guess at transform's input form: refusing it is
                // not the plugin's fault (but nothing below can run without a payload); an
                // internal error is.
                const bool refused = e.status() == RECSYNC_ERR_INVALID_INPUT || e.status() == RECSYNC_ERR_UNSUPPORTED;
                return sample.from_describe || !refused
                           ? Verdict::bad(e.what())
                           : Verdict::skipped(std::string(e.what()) + " (no \"sample\" in describe; add one to run the checks that need a payload)");
            });
    });
    if (!payload) return std::nullopt;
    rec.run(prefix + "validate accepts the sample's payload", [&] {
        inst.validate(object, *payload);
        return Verdict::ok();
    });
    rec.run(prefix + "the sample's payload is valid against the object's schema", [&] {
        const auto compiled = schema::JsonSchema::compile(description.value("schema", json()), object);
        const auto errors = compiled->validate_text(*payload);
        std::string all;
        for (const auto &e : errors) all += (all.empty() ? "" : "; ") + e;
        return errors.empty() ? Verdict::ok() : Verdict::bad(all);
    });
    return payload;
}

}  // namespace

std::vector<PlannedCall> check_object_actions(const ProviderInstance &inst, CheckRecorder &rec, const std::string &object, const json &description) {
    const auto payload = sample_payload(inst, rec, object, description);
    std::vector<PlannedCall> built;
    for (const auto &plan : actions_of(description)) {
        PlannedCall call{plan.action, plan.name, object, plan.needs_external_id ? std::string(kConformanceExternalId) : "", ""};
        const std::string name = object + ": build_request(" + plan.name + ")";
        if (plan.needs_payload && !payload) {
            rec.add(name, Verdict::skipped("no sample payload (see the sample checks above)"));
            continue;
        }
        if (plan.needs_payload) call.payload = *payload;
        const Verdict v = rec.run(name, [&] {
            return when_status(
                [&] {
                    const BuiltRequest req = inst.build_request(call.input());
                    if (const auto leak = token_leak(req); !leak.empty()) return Verdict::bad(leak);
                    return Verdict::ok(req.method + " " + req.path);
                },
                [&](const PluginError &e) {
                    // Only create is required of every object.
                    if (e.status() == RECSYNC_ERR_UNSUPPORTED && plan.action != RECSYNC_ACTION_CREATE) return Verdict::skipped(std::string("unsupported: ") + e.what());
                    return Verdict::bad(e.what());
                });
        });
        if (v.kind == Verdict::Kind::pass) built.push_back(std::move(call));
    }
    return built;
}

}  // namespace recsync::plugin
