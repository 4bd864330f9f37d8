#include "plugin/conformance.hpp"

#include "plugin/conformance_checks.hpp"
#include "plugin/provider_instance.hpp"
#include "schema/json_schema.hpp"

#include <nlohmann/json.hpp>

namespace recsync::plugin {

using nlohmann::json;

void CheckRecorder::add(const std::string &name, const Verdict &v) {
    ConformanceCheck c{name, v.kind != Verdict::Kind::fail, v.detail, v.kind == Verdict::Kind::skip};
    if (options_.on_check) options_.on_check(c);
    report_.checks.push_back(std::move(c));
}

namespace {

// Garbage where a record or payload belongs: an error status, never OK, never a crash.
void check_garbage_input(const ProviderInstance &inst, CheckRecorder &rec, const std::string &object) {
    const auto expect_error = [&](const std::string &what, auto &&fn) { rec.run(what + " rejects garbage input", [&] { return refuses(fn); }); };
    expect_error("transform", [&] { inst.transform(RECSYNC_OUTBOUND, object, "{not json"); });
    expect_error("validate", [&] { inst.validate(object, "\x01\x02garbage"); });
    expect_error("transform of an unknown object", [&] { inst.transform(RECSYNC_OUTBOUND, "no-such-object-xyz", "{}"); });
    rec.run("transform inbound answers", [&] {
        return when_status([&] { inst.transform(RECSYNC_INBOUND, object, R"({"id":"1","properties":{}})"); return Verdict::ok(); },
                           [](const PluginError &e) { return Verdict::ok(std::string("error status: ") + e.what()); });
    });
}

}  // namespace

ConformanceReport run_conformance(const std::string &so_path, const std::string &config_json, const ConformanceOptions &options) {
    ConformanceReport rep;
    CheckRecorder rec(rep, options);

    std::shared_ptr<ProviderLibrary> lib;
    rec.run("loads (trusted path, entry, ABI, descriptor, id matches file name)", [&] {
        lib = ProviderLibrary::load(so_path);
        return Verdict::ok(lib->id() + " " + lib->version() + ", ABI " + std::to_string(RECSYNC_ABI_MAJOR_OF(lib->abi_version())) + "." +
                           std::to_string(RECSYNC_ABI_MINOR_OF(lib->abi_version())));
    });
    if (!lib) return rep;
    const json cfg = json::parse(config_json, nullptr, false);
    if (rec.run("--config is a JSON object", [&] { return cfg.is_object() ? Verdict::ok() : Verdict::bad("got: " + config_json); }).kind != Verdict::Kind::pass)
        return rep;

    std::unique_ptr<ProviderInstance> inst;
    rec.run("create_instance", [&] {
        inst = ProviderInstance::create(lib, cfg);
        return Verdict::ok();
    });
    if (!inst) return rep;

    json desc;
    if (rec.run("describe returns a JSON object", [&] {
               desc = inst->describe();
               return Verdict::ok();
           }).kind != Verdict::Kind::pass)
        return rep;
    const auto objects = desc.value("objects", json());
    const bool listed = objects.is_object() && !objects.empty();
    rec.add("describe lists objects", listed ? Verdict::ok() : Verdict::bad("'objects' must be a non-empty object"));
    if (!listed) return rep;

    std::vector<std::string> usable;  // objects whose schema compiles
    for (const auto &item : objects.items()) {
        // Named copies: clang (before C++20's P1091 in its front end) lets no lambda capture
        // a structured binding.
        const std::string name = item.key();
        const json &obj = item.value();
        const auto v = rec.run("object '" + name + "' schema compiles", [&] {
            if (!obj.is_object() || !obj.contains("schema")) return Verdict::bad("describe().objects." + name + ".schema is missing");
            schema::JsonSchema::compile(obj["schema"], name);
            return Verdict::ok();
        });
        if (v.kind == Verdict::Kind::pass) usable.push_back(name);
    }
    check_garbage_input(*inst, rec, objects.begin().key());
    for (const auto &name : usable) {
        const auto calls = check_object_actions(*inst, rec, name, objects[name]);
        check_garbage_answers(*inst, rec, calls);
        if (rec.full()) check_two_threads(*inst, rec, name, calls);
    }
    check_capabilities(*inst, rec, usable);
    return rep;
}

}  // namespace recsync::plugin
