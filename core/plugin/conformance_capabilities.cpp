// Webhooks, polling and auth refresh, for the plugins that declare them: nothing unsigned
// or garbled may come out as events, a poll request builds for every object, and no
// garbage answer becomes a poll page of the wrong shape or a token.
#include "plugin/conformance_checks.hpp"

namespace recsync::plugin {

namespace {

Verdict refuses_delivery(const ProviderInstance &inst, const std::string &body) {
    const std::vector<std::pair<std::string_view, std::string_view>> headers = {{"Content-Type", "application/json"}};
    return when_status(
        [&] {
            const auto events = inst.parse_webhook(WebhookInput{"POST", "/v1/webhooks/conformance", headers, body});
            return events.empty() ? Verdict::ok("OK with no events") : Verdict::bad("OK with " + std::to_string(events.size()) + " event(s) from an unsigned delivery");
        },
        [](const PluginError &e) { return Verdict::ok(status_name(e.status())); });
}

void check_webhooks(const ProviderInstance &inst, CheckRecorder &rec) {
    // Shaped like a real delivery (HubSpot's), but with no signature at all.
    const std::string unsigned_delivery = R"([{"eventId":1,"subscriptionType":"contact.creation","objectId":1,"occurredAt":1700000000000}])";
    rec.run("parse_webhook refuses an unsigned delivery", [&] { return refuses_delivery(inst, unsigned_delivery); });
    for (const auto &g : garbage_bodies(rec.full())) rec.run("parse_webhook refuses " + g.name, [&] { return refuses_delivery(inst, g.body); });
}

void check_polling(const ProviderInstance &inst, CheckRecorder &rec, const std::string &object) {
    rec.run(object + ": build_poll_request from the start", [&] {
        return when_status(
            [&] {
                const auto req = inst.build_poll_request(object, "", kConformanceToken);
                if (const auto leak = token_leak(req); !leak.empty()) return Verdict::bad(leak);
                return Verdict::ok(req.method + " " + req.path.substr(0, 200));
            },
            [](const PluginError &e) {
                // A provider that polls need not poll every object (the REST provider polls
                // the ones its settings give a poll to).
                return e.status() == RECSYNC_ERR_UNSUPPORTED ? Verdict::skipped(e.what()) : Verdict::bad(e.what());
            });
    });
    rec.run(object + ": build_poll_request with a garbage cursor answers", [&] {
        return when_status(
            [&] {
                const auto req = inst.build_poll_request(object, "\x01not-a-cursor\xff{", kConformanceToken);
                return Verdict::ok(req.method + " " + req.path.substr(0, 200));
            },
            [](const PluginError &e) { return Verdict::ok(status_name(e.status())); });
    });
    for (const auto &g : garbage_bodies(rec.full())) {
        rec.run(object + ": parse_poll_response of " + g.name + ", each status", [&] {
            for (const int status : garbage_statuses(rec.full())) {
                // A page of the right shape, or an error: both fine.
                const Verdict v = when_status([&] { inst.parse_poll_response(object, "", ResponseView{status, &json_headers(), g.body}); return Verdict::ok(); },
                                              [](const PluginError &) { return Verdict::ok(); });
                if (v.kind != Verdict::Kind::pass) return v;
            }
            return Verdict::ok();
        });
    }
}

void check_auth(const ProviderInstance &inst, CheckRecorder &rec) {
    rec.run("build_auth_request", [&] {
        return when_status(
            [&] {
                const auto req = inst.build_auth_request();
                return Verdict::ok(req.method + " " + req.path.substr(0, 200));
            },
            [](const PluginError &e) { return Verdict::skipped(std::string("needs credentials? ") + e.what()); });  // e.g. none in --config
    });
    for (const auto &g : garbage_bodies(rec.full())) {
        rec.run("parse_auth_response refuses " + g.name + ", each status", [&] {
            for (const int status : garbage_statuses(rec.full())) {
                const Verdict v = refuses([&] { inst.parse_auth_response(ResponseView{status, &json_headers(), g.body}); });
                if (v.kind != Verdict::Kind::pass) return Verdict::bad("HTTP " + std::to_string(status) + ": a token from a garbage answer");
            }
            return Verdict::ok();
        });
    }
}

}  // namespace

void check_capabilities(const ProviderInstance &inst, CheckRecorder &rec, const std::vector<std::string> &objects) {
    if (inst.has_webhooks()) check_webhooks(inst, rec);
    if (inst.has_polling())
        for (const auto &o : objects) check_polling(inst, rec, o);
    if (inst.has_auth_refresh()) check_auth(inst, rec);
}

}  // namespace recsync::plugin
