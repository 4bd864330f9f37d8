#include "pipeline/plan.hpp"

#include "pipeline/event_identity.hpp"

#include "log/log_context.hpp"
#include "model/link_state.hpp"

#include "mapping/mapping.hpp"
#include "plugin/plugin_error.hpp"

#include <algorithm>

namespace recsync::pipeline {

using nlohmann::json;

size_t nesting_depth(std::string_view text) {
    size_t depth = 0, max_depth = 0;
    bool in_string = false, escaped = false;
    for (const char c : text) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            max_depth = std::max(max_depth, ++depth);
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return max_depth;
}

std::vector<json> parse_events(const std::string &body) {
    size_t first = body.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) throw EventError(400, "empty request body: expected a JSON event, a JSON array of events, or NDJSON");
    if (nesting_depth(body) > kMaxEventDepth)
        throw EventError(400, "JSON nested deeper than " + std::to_string(kMaxEventDepth) + " levels: not accepted");
    std::vector<json> events;
    json doc = json::parse(body, nullptr, false);
    if (!doc.is_discarded()) {
        if (doc.is_array()) {
            if (doc.empty()) throw EventError(400, "empty array: no events");
            for (auto &e : doc) events.push_back(std::move(e));
        } else {
            events.push_back(std::move(doc));
        }
        return events;
    }
    // Not one JSON document: NDJSON, one event per non-blank line.
    size_t line_no = 0, start = 0;
    while (start <= body.size()) {
        size_t end = body.find('\n', start);
        if (end == std::string::npos) end = body.size();
        ++line_no;
        const std::string line = body.substr(start, end - start);
        if (line.find_first_not_of(" \t\r") != std::string::npos) {
            try {
                events.push_back(json::parse(line));
            } catch (const json::exception &e) {  // parse_error, and out_of_range for 1e999
                throw EventError(400, "malformed JSON" + (line_no > 1 || end < body.size() ? " on line " + std::to_string(line_no) : std::string()) + ": " + e.what());
            }
        }
        start = end + 1;
    }
    return events;
}

namespace {

// Erases the top-level `fields` (sorted) from `record`; how many were there.
size_t withhold(json &record, const std::vector<std::string> &fields) {
    size_t n = 0;
    for (const auto &f : fields) n += record.erase(f);
    return n;
}

std::string key_of(const json &event) {
    const auto it = event.find("key");
    if (it == event.end()) throw EventError(422, "missing 'key' (the record's stable id in System A)");
    if (it->is_string() && !it->get_ref<const std::string &>().empty()) return it->get<std::string>();
    if (it->is_number_integer() || it->is_number_unsigned()) return it->dump();
    throw EventError(422, "'key' must be a non-empty string or an integer");
}

std::string string_field(const json &event, const char *name, const char *what) {
    const auto it = event.find(name);
    if (it == event.end()) throw EventError(422, std::string("missing '") + name + "' (" + what + ")");
    if (!it->is_string() || it->get_ref<const std::string &>().empty()) throw EventError(422, std::string("'") + name + "' must be a non-empty string");
    return it->get<std::string>();
}

model::Change change_of(uint8_t type) {
    return type == rules::kCreated ? model::Change::Created : type == rules::kUpdated ? model::Change::Updated : model::Change::Deleted;
}

}  // namespace

EventPlan plan_event(const model::Runtime &rt, const json &event, const std::string &source) {
    if (!event.is_object()) throw EventError(422, "an event must be a JSON object");
    // From a CRM connection (not System A: POST /v1/events or a database it captures).
    const bool inbound = !rt.from_system_a(source);
    for (const auto &[k, _] : event.items())
        if (k != "entity" && k != "event" && k != "key" && k != "data" && k != "previous" && k != "id" && k != "version" && k != "occurred_at" &&
            !(inbound && (k == "hydrate" || k == "external_id" || k == "modified")))
            throw EventError(422, "unknown field '" + k + "' (expected entity, event, key, data, previous, id, version, occurred_at)");
    EventPlan plan;
    plan.entity = string_field(event, "entity", "the internal entity, e.g. contact");
    plan.event = string_field(event, "event", "created, updated or deleted");
    plan.key = key_of(event);
    const uint8_t type = rules::parse_event_type(plan.event);
    if (!type) throw EventError(422, "unknown event '" + plan.event + "' (expected created, updated or deleted)");
    auto identity = read_identity(event);
    plan.id = std::move(identity.id);
    plan.order = identity.order;

    const model::ConnectionRuntime *src = nullptr;  // the connection an inbound event comes from
    if (inbound) {
        // From a connection (sources/webhook.hpp): the entity is the provider's object.
        if (!(src = rt.connection(source))) throw EventError(422, "connection '" + source + "' is not configured");
        const auto optional_text = [&](const char *name) {
            const auto it = event.find(name);
            if (it == event.end()) return std::string();
            if (!it->is_string() || it->get_ref<const std::string &>().empty()) throw EventError(422, std::string("'") + name + "' must be a non-empty string");
            return it->get<std::string>();
        };
        plan.external_id = optional_text("external_id");
        plan.modified = optional_text("modified");
        if (plan.external_id.empty()) plan.external_id = plan.key;
        // No rule takes this connection's changes of this object: nothing to read or plan.
        const auto by_entity = rt.rules->by_source.find(source);
        if (by_entity == rt.rules->by_source.end() || by_entity->second.find(plan.entity) == by_entity->second.end()) return plan;
        if (const auto h = event.find("hydrate"); h != event.end() && h->is_boolean() && h->get<bool>() && type != rules::kDeleted) {
            // Only "record X changed": read it first, on the connection's own lane; its
            // current state is planned when the read answers (Dispatcher's inbound sink).
            PlannedAction pa;
            pa.rule = "(hydrate)";
            pa.action = "read";
            model::Task &t = pa.task;
            t.connection = source;
            t.object = plan.entity;
            t.record_key = plan.key;
            t.action = RECSYNC_ACTION_READ;
            t.change = change_of(type);
            t.order = plan.order;
            t.payload = model::read_payload(plan.external_id);
            plan.actions.push_back(std::move(pa));
            return plan;
        }
    }
    const auto *schema = rt.rules->entity_schema(plan.entity);
    if (!schema && source == "internal") {  // a captured table's entity may have none
        std::string known;
        for (const auto &[name, _] : rt.rules->entity_schemas) known += (known.empty() ? "" : ", ") + name;
        throw EventError(422, "unknown entity '" + plan.entity + "' (known: " + (known.empty() ? "none" : known) + ")");
    }
    static const json kEmpty = json::object();
    const json *data = &kEmpty;
    if (auto it = event.find("data"); it != event.end() && !it->is_null()) {
        if (!it->is_object()) throw EventError(422, "'data' must be a JSON object");
        data = &*it;
    } else if (type != rules::kDeleted) {
        throw EventError(422, "missing 'data': a " + plan.event + " event carries the record");
    }
    // Fields System A owns never come in from the connection (conflicts.owners).
    json owned_out;
    if (src && !src->config.owned_internal.empty() && data != &kEmpty) {
        owned_out = *data;
        if (const size_t n = withhold(owned_out, src->config.owned_internal)) {
            plan.withheld += n;
            data = &owned_out;
        }
    }
    const json *previous = nullptr;
    if (auto it = event.find("previous"); it != event.end() && !it->is_null()) {
        if (!it->is_object()) throw EventError(422, "'previous' must be a JSON object");
        previous = &*it;
    }
    // A System A event that repeats what recsync last wrote to it is that write coming back
    // (the task log's commit compares): only where recsync writes to System A at all.
    if (!inbound && type != rules::kDeleted && !rt.system_a_connections.empty()) plan.data_hash = model::payload_hash(data->dump());
    if (type != rules::kDeleted && schema) {  // an inbound entity (a CRM object) may have none
        // A null field is "no value" (a cleared field, as in a JSON merge patch): the schema
        // types the values a field may hold, so it is checked as if the field were absent.
        json without_nulls;
        const json *checked = data;
        if (std::any_of(data->begin(), data->end(), [](const json &v) { return v.is_null(); })) {
            without_nulls = *data;
            for (auto it = without_nulls.begin(); it != without_nulls.end();) it = it->is_null() ? without_nulls.erase(it) : std::next(it);
            checked = &without_nulls;
        }
        const auto errors = schema->validate(*checked);
        if (!errors.empty()) {
            std::string msg = "data does not match the schema of entity '" + plan.entity + "': ";
            for (size_t i = 0; i < errors.size() && i < 5; ++i) msg += (i ? "; " : "") + errors[i];
            throw EventError(422, msg);
        }
    }

    for (const rules::Rule *r : rt.rules->evaluate(source, plan.entity, type, *data, previous)) {
        // For what the plugin logs while it transforms: the rule, its target, the record.
        log::ScopedLogContext log_context(r->target, plan.key, r->name);
        PlannedAction pa;
        pa.rule = r->name;
        pa.action = rules::action_name(r->action);
        if (r->action == rules::ActionKind::Skip) {
            plan.actions.push_back(std::move(pa));
            continue;
        }
        const auto *conn = rt.connection(r->target);
        if (!conn) throw EventError(422, "rule '" + r->name + "': target connection '" + r->target + "' is not available");
        model::Task &t = pa.task;
        t.connection = r->target;
        t.object = r->object;
        t.record_key = plan.key;
        t.action = rules::to_abi(r->action);
        t.change = change_of(type);
        t.order = plan.order;
        // A two-way pair (System A and a CRM) resolves concurrent changes by the CRM
        // connection's policy: the source's for its changes, the target's for System A's.
        const bool to_system_a = std::find(rt.system_a_connections.begin(), rt.system_a_connections.end(), r->target) != rt.system_a_connections.end();
        if (src ? to_system_a : !to_system_a) t.conflict = static_cast<uint8_t>((src ? src : conn)->config.conflict_policy);
        if (r->action != rules::ActionKind::Delete) {
            // Built only for an error: most actions never need it.
            const auto ctx = [&] { return "rule '" + r->name + "' -> " + r->target + "/" + r->object + ": "; };
            try {
                thread_local std::string mapped;  // reused across events: no allocation per action
                r->mapping->apply_text(*data, mapped);
                if (!conn->config.owned_external.empty()) {
                    // Fields the CRM owns are never written there from System A.
                    json record = json::parse(mapped);
                    if (const size_t n = withhold(record, conn->config.owned_external)) {
                        plan.withheld += n;
                        mapped = record.dump();
                    }
                }
                t.payload = conn->provider->transform(RECSYNC_OUTBOUND, r->object, mapped);
                if (const auto *out_schema = conn->object_schema(r->object)) {
                    const auto errors = out_schema->validate_text(t.payload);
                    if (!errors.empty()) throw EventError(422, ctx() + "payload does not match the provider's schema: " + errors.front());
                } else if (!json::accept(t.payload)) {
                    throw EventError(422, ctx() + "provider produced invalid JSON");
                }
                conn->provider->validate(r->object, t.payload);
            } catch (const mapping::MappingError &e) {
                throw EventError(422, ctx() + e.what());
            } catch (const plugin::PluginError &e) {
                throw EventError(422, ctx() + e.what());
            } catch (const json::exception &e) {
                throw EventError(422, ctx() + "provider produced invalid JSON: " + e.what());
            }
        }
        plan.actions.push_back(std::move(pa));
    }
    return plan;
}

}  // namespace recsync::pipeline
