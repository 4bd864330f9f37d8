#include "sources/webhook.hpp"

#include "pipeline/plan.hpp"
#include "plugin/plugin_error.hpp"

#include <cstdio>
#include <ctime>

namespace recsync::sources {

using nlohmann::json;
using pipeline::EventError;

std::string rfc3339_ms(int64_t epoch_ms) {
    const std::time_t secs = static_cast<std::time_t>(epoch_ms >= 0 ? epoch_ms / 1000 : (epoch_ms - 999) / 1000);
    const int ms = static_cast<int>(epoch_ms - static_cast<int64_t>(secs) * 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[40];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    return buf;
}

namespace {

// The record (JSON text, in the plugin's inbound form) as the plugin turns it inbound.
// `where` names it in an error.
template <typename Where>
json inbound_data(const model::ConnectionRuntime &conn, const std::string &object, std::string_view record, const Where &where) {
    try {
        auto out = json::parse(conn.provider->transform(RECSYNC_INBOUND, object, record), nullptr, false);
        if (!out.is_object()) throw EventError(422, where() + conn.config.provider + ".transform (inbound) did not produce a JSON object");
        return out;
    } catch (const plugin::PluginError &e) {
        throw EventError(422, where() + e.what());
    }
}

}  // namespace

std::vector<json> inbound_events(const model::ConnectionRuntime &conn, std::vector<json> &&plugin_events) {
    std::vector<json> out;
    out.reserve(plugin_events.size());
    for (size_t i = 0; i < plugin_events.size(); ++i) {
        json &e = plugin_events[i];
        const auto where = [&] { return "event " + std::to_string(i) + " from " + conn.config.provider + " (parse_webhook or parse_poll_response): "; };  // built only for an error
        if (!e.is_object()) throw EventError(422, where() + "not a JSON object");
        auto text = [&](const char *name, bool required) {
            const auto it = e.find(name);
            if (it == e.end() || it->is_null()) {
                if (required) throw EventError(422, where() + "missing '" + name + "'");
                return std::string();
            }
            if (!it->is_string() || (required && it->get_ref<const std::string &>().empty())) throw EventError(422, where() + "'" + name + "' must be a non-empty string");
            return it->get<std::string>();
        };
        const std::string object = text("object", true), event = text("event", true), external_id = text("external_id", true), id = text("id", false),
                          modified = text("modified", false);
        if (event != "created" && event != "updated" && event != "deleted") throw EventError(422, where() + "'event' must be created, updated or deleted, not '" + event + "'");
        json env = {{"entity", object}, {"event", event}, {"key", external_id}, {"external_id", external_id}};
        if (!id.empty()) env["id"] = id;
        if (!modified.empty()) env["modified"] = modified;
        if (const auto at = e.find("occurred_at"); at != e.end() && !at->is_null()) {
            if (!at->is_number_integer()) throw EventError(422, where() + "'occurred_at' must be epoch milliseconds");
            env["occurred_at"] = rfc3339_ms(at->get<int64_t>());
        }
        const bool hydrate = e.value("hydrate", false);
        if (hydrate && event != "deleted") {
            env["hydrate"] = true;
        } else if (const auto d = e.find("data"); d != e.end() && !d->is_null() && event != "deleted") {
            if (!d->is_object()) throw EventError(422, where() + "'data' must be a JSON object");
            env["data"] = inbound_data(conn, object, d->dump(), where);
        } else if (event != "deleted") {
            throw EventError(422, where() + "a " + event + " event needs 'data' or 'hydrate': true");
        }
        out.push_back(std::move(env));
    }
    return out;
}

json hydrated_event(const model::ConnectionRuntime &conn, const model::Task &read, const std::string &external_id, const std::string &record,
                    const std::string &modified) {
    const char *event = read.change == model::Change::Created ? "created" : "updated";
    json env = {{"entity", read.object},
                {"event", event},
                // Keyed by its id there, like the webhook's own events, so that their order
                // applies to it (a deletion announced meanwhile makes it stale); the commit
                // keys its tasks by the record it is linked to.
                {"key", external_id.empty() ? read.record_key : external_id},
                {"external_id", external_id.empty() ? read.record_key : external_id},
                {"id", "hydrated:" + std::to_string(read.change_seq())},
                // The record as the plugin answered (the host checked it is a JSON object).
                {"data", inbound_data(conn, read.object, record, [&] { return "the read of " + read.object + " '" + read.record_key + "': "; })}};
    if (!modified.empty()) env["modified"] = modified;
    if (read.order.kind == model::Order::Time) env["occurred_at"] = rfc3339_ms(read.order.value);
    return env;
}

}  // namespace recsync::sources
