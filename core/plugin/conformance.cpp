#include "plugin/conformance.hpp"

#include "plugin/provider_instance.hpp"
#include "schema/json_schema.hpp"

#include <nlohmann/json.hpp>

namespace recsync::plugin {

using nlohmann::json;

ConformanceReport run_conformance(const std::string &so_path, const std::string &config_json) {
    ConformanceReport rep;
    auto check = [&](std::string name, bool ok, std::string detail = {}) {
        rep.checks.push_back({std::move(name), ok, std::move(detail)});
        return ok;
    };

    std::shared_ptr<ProviderLibrary> lib;
    try {
        lib = ProviderLibrary::load(so_path);
        check("loads (trusted path, entry, ABI, descriptor, id matches file name)", true,
              lib->id() + " " + lib->version() + ", ABI " + std::to_string(RECSYNC_ABI_MAJOR_OF(lib->abi_version())) + "." + std::to_string(RECSYNC_ABI_MINOR_OF(lib->abi_version())));
    } catch (const std::exception &e) {
        check("loads", false, e.what());
        return rep;
    }
    const json cfg = json::parse(config_json, nullptr, false);
    if (!check("--config is a JSON object", cfg.is_object(), cfg.is_object() ? "" : "got: " + config_json)) return rep;

    std::unique_ptr<ProviderInstance> inst;
    try {
        inst = ProviderInstance::create(lib, cfg);
        check("create_instance", true);
    } catch (const std::exception &e) {
        check("create_instance", false, e.what());
        return rep;
    }

    json desc;
    try {
        desc = inst->describe();
        check("describe returns a JSON object", true);
    } catch (const std::exception &e) {
        check("describe returns a JSON object", false, e.what());
        return rep;
    }
    const auto objects = desc.value("objects", json());
    if (!check("describe lists objects", objects.is_object() && !objects.empty(), objects.is_object() ? "" : "'objects' must be a non-empty object")) return rep;
    for (const auto &[name, obj] : objects.items()) {
        if (!obj.is_object() || !obj.contains("schema")) {
            check("object '" + name + "' has a schema", false, "describe().objects." + name + ".schema is missing");
            continue;
        }
        try {
            schema::JsonSchema::compile(obj["schema"], name);
            check("object '" + name + "' schema compiles", true);
        } catch (const std::exception &e) {
            check("object '" + name + "' schema compiles", false, e.what());
        }
    }
    const std::string object = objects.begin().key();

    // Every function must answer garbage with an error status (not a crash, not an OK).
    auto expect_error = [&](const std::string &what, auto &&fn) {
        try {
            fn();
            check(what + " rejects garbage input", false, "returned OK");
        } catch (const PluginError &e) {
            check(what + " rejects garbage input", true, e.what());
        } catch (const std::exception &e) {
            check(what + " rejects garbage input", false, e.what());
        }
    };
    expect_error("transform", [&] { inst->transform(RECSYNC_OUTBOUND, object, "{not json"); });
    expect_error("validate", [&] { inst->validate(object, "\x01\x02garbage"); });
    expect_error("transform of an unknown object", [&] { inst->transform(RECSYNC_OUTBOUND, "no-such-object-xyz", "{}"); });

    // Sample data must go through build_request, and every kind of response must be judged.
    std::string payload;
    try {
        payload = inst->transform(RECSYNC_OUTBOUND, object, "{}");
        check("transform of an empty record", !json::parse(payload, nullptr, false).is_discarded(), payload);
    } catch (const PluginError &e) {
        check("transform of an empty record answers", true, std::string("error status: ") + e.what());
    }
    try {
        const std::string body = payload.empty() ? "{}" : payload;  // CallInput only views it
        const CallInput call{RECSYNC_ACTION_CREATE, object, "conformance-key-1", "", body, "token"};
        const auto req = inst->build_request(call);
        bool leaked = false;
        for (const auto &h : req.headers) leaked = leaked || (!h.secret && h.value.find("token") != std::string::npos && h.name != "Content-Type");
        check("build_request (create)", true, req.method + " " + req.path);
        check("access token only in headers marked secret", !leaked && req.path.find("token") == std::string::npos && req.body.find("\"token\"") == std::string::npos);
    } catch (const std::exception &e) {
        check("build_request (create)", false, e.what());
    }
    // Inbound transform answers (a result or an error status), never crashes.
    try {
        inst->transform(RECSYNC_INBOUND, object, R"({"id":"1","properties":{}})");
        check("transform inbound answers", true);
    } catch (const PluginError &e) {
        check("transform inbound answers", true, std::string("error status: ") + e.what());
    }
    const std::vector<Header> no_headers;
    if (inst->has_auth_refresh()) {
        try {
            const auto req = inst->build_auth_request();
            check("build_auth_request", true, req.method + " " + req.path);
        } catch (const PluginError &e) {
            check("build_auth_request answers", true, std::string("error status (needs credentials?): ") + e.what());
        }
        expect_error("parse_auth_response", [&] { inst->parse_auth_response(ResponseView{200, &no_headers, "<html>not a token</html>"}); });
    }
    for (const auto &[status, body] : std::vector<std::pair<int, std::string>>{{200, "{}"}, {201, "{\"id\":\"1\"}"}, {429, ""}, {500, "<html>"}, {400, "\xff\xfe"}, {0, ""}}) {
        try {
            const CallInput call{RECSYNC_ACTION_CREATE, object, "conformance-key-1", "", payload, ""};
            const auto r = inst->parse_response(call, ResponseView{status, &no_headers, body});
            const bool sane = status >= 500 || status == 429 ? r.kind == RECSYNC_RESULT_RETRY : true;
            check("parse_response of HTTP " + std::to_string(status), sane, sane ? "" : "a " + std::to_string(status) + " must be retried");
        } catch (const PluginError &e) {
            check("parse_response of HTTP " + std::to_string(status) + " answers", true, std::string("error status: ") + e.what());
        }
    }
    return rep;
}

}  // namespace recsync::plugin
