// The declarative REST provider: a plain REST system synced with no code. What each call
// looks like (method, path template, body shape, where the id is, what each status means,
// the credential, the rate-limit headers, the poll) comes from the connection's settings
// (rest_settings.hpp, README.md), checked once at create_instance. Built twice: rest.so
// (static credentials) and rest_oauth.so (the host refreshes client-credentials tokens),
// since a plugin's capabilities are fixed and the host treats the two apart. Both poll,
// through the same code: the poll request carries whichever token the host hands over.
#include <recsync/provider_sdk.hpp>

#include "rest_auth.hpp"
#include "rest_classify.hpp"
#include "rest_poll.hpp"
#include "rest_settings.hpp"

#include <string>
#include <string_view>

namespace {

using recsync::sdk::Call;
using recsync::sdk::Direction;
using recsync::sdk::InvalidInput;
using recsync::sdk::json;
using recsync::sdk::Request;
using recsync::sdk::Response;
using recsync::sdk::Result;
using recsync::sdk::Unsupported;
using rest::Verb;

#ifdef REST_TOKEN_REFRESH
constexpr bool kTokenRefresh = true;
#else
constexpr bool kTokenRefresh = false;
#endif

Verb verb_of(recsync_action action) {
    if (action < RECSYNC_ACTION_CREATE || action > RECSYNC_ACTION_FIND) throw Unsupported("action " + std::to_string(static_cast<int>(action)) + " is not supported");
    return static_cast<Verb>(action - RECSYNC_ACTION_CREATE);
}

std::string verb_name(Verb v) { return std::string(rest::kVerbNames[static_cast<size_t>(v)]); }

// Without a schema from the settings the payload is a flat object of scalars.
void check_flat(const json &record) {
    for (const auto &[name, value] : record.items())
        if (value.is_structured()) throw InvalidInput("field '" + name + "': nested objects and arrays need the object's schema in the settings; map it to a flat value");
}

class RestProvider final : public recsync::sdk::Provider {
public:
    explicit RestProvider(const json &config) : s_(rest::parse_settings(config, kTokenRefresh)) {}

    json describe() override {
        json objects = json::object();
        for (const auto &[name, o] : s_.objects) {
            json d = {{"schema", o.schema}};
            if (!o.key_field.empty()) d["key_property"] = o.key_field;
            // A record the conformance kit can send: every field a path names ({field:NAME})
            // and the key field, each a text value.
            json sample = json::object();
            if (!o.key_field.empty()) sample[o.key_field] = "sample-1";
            for (const auto &a : o.actions)
                for (const auto &part : a.path.parts)
                    if (part.kind == rest::PathTemplate::Kind::Field) sample[part.text] = "sample-1";
            if (o.flat) d["sample"] = std::move(sample);  // a schema of the settings' own may need more
            // A create whose answer was lost goes again as an upsert, or after a find.
            if (o.action(Verb::Upsert).configured) d["create_retry"] = "upsert";
            else if (o.action(Verb::Find).configured) d["create_retry"] = "find";
            objects[name] = std::move(d);
        }
        return {{"objects", std::move(objects)}, {"rate_limit", {{"per_second", s_.per_second}, {"burst", s_.burst}}}};
    }

    json transform(Direction direction, std::string_view object, const json &record) override {
        const rest::ObjectSpec &o = s_.object(object);
        if (direction != Direction::Outbound && direction != Direction::Inbound)
            throw Unsupported("transform direction " + std::to_string(static_cast<int>(direction)) + " is not supported");
        if (!record.is_object()) throw InvalidInput("record must be a JSON object");
        if (direction == Direction::Outbound && o.flat) check_flat(record);
        return record;  // the mapping shapes it; the body shape wraps it
    }

    void validate(std::string_view object, const json &payload) override {
        const rest::ObjectSpec &o = s_.object(object);
        if (!payload.is_object()) throw InvalidInput("payload must be a JSON object");
        if (o.flat) check_flat(payload);
    }

    Request build_request(const Call &call) override {
        const rest::ObjectSpec &o = s_.object(call.object);
        const Verb verb = verb_of(static_cast<recsync_action>(call.action));
        const rest::ActionSpec &a = o.action(verb);
        const std::string what = verb_name(verb) + " of " + o.name;
        if (!a.configured) throw Unsupported("objects." + o.name + " has no " + verb_name(verb) + " action in this connection's settings");
        // A find carries the create's payload: its query names the record by it.
        const bool has_payload = verb != Verb::Delete && verb != Verb::Read;
        // The payload is transform's JSON text, which validate has passed: it goes into the
        // body as it is, and is parsed only when the path names one of its fields.
        const std::string_view text = call.payload;
        const size_t first = text.find_first_not_of(" \t\r\n");
        if (has_payload && (first == std::string_view::npos || text[first] != '{')) throw InvalidInput(what + ": payload must be a JSON object");
        json payload;
        if (has_payload && a.path.uses(rest::PathTemplate::Kind::Field)) {
            payload = json::parse(text);  // throws -> INVALID_INPUT
            if (!payload.is_object()) throw InvalidInput(what + ": payload must be a JSON object");
        }
        Request req;
        req.method = a.method;
        req.path = rest::expand_path(a.path, {call.record_key, call.external_id, payload.is_object() ? &payload : nullptr, what});
        if (a.body == rest::BodyShape::Record) req.body = text;
        if (a.body == rest::BodyShape::Wrapped) req.body = "{" + json(a.wrap).dump() + ":" + std::string(text) + "}";
        if (!req.body.empty()) req.headers.push_back({"Content-Type", "application/json", false});
        req.headers.push_back({"Accept", "application/json", false});
        rest::add_auth_headers(s_.auth, call.access_token, req.headers);
        return req;
    }

    Result parse_response(const Call &call, const Response &response) override {
        const rest::ObjectSpec &o = s_.object(call.object);
        const Verb verb = verb_of(static_cast<recsync_action>(call.action));
        if (!o.action(verb).configured) throw Unsupported("objects." + o.name + " has no " + verb_name(verb) + " action in this connection's settings");
        return rest::judge(s_, o, verb, call, response);
    }

    Request build_poll_request(std::string_view object, std::string_view cursor, std::string_view token) override {
        Request req = rest::poll_request(poll_of(object), cursor);
        rest::add_auth_headers(s_.auth, token, req.headers);
        return req;
    }

    json parse_poll_response(std::string_view object, const Response &response) override {
        return rest::poll_page(poll_of(object), object, response, s_.error_message, s_.secrets);
    }

    // rest_oauth only (RECSYNC_CAP_AUTH_REFRESH): its settings take no other auth kind.
    Request build_auth_request() override { return rest::token_request(s_.auth); }
    json parse_auth_response(const Response &response) override { return rest::token_from_answer(s_.auth, response, s_.secrets); }

private:
    const rest::PollSpec &poll_of(std::string_view object) const {
        const rest::ObjectSpec &o = s_.object(object);
        if (!o.poll.configured) throw Unsupported("objects." + o.name + " has no poll in this connection's settings");
        return o.poll;
    }

    const rest::Settings s_;
};

}  // namespace

#ifdef REST_TOKEN_REFRESH
RECSYNC_PROVIDER(RestProvider, "rest_oauth", "0.1.0", RECSYNC_CAP_POLLING | RECSYNC_CAP_AUTH_REFRESH)
#else
RECSYNC_PROVIDER(RestProvider, "rest", "0.1.0", RECSYNC_CAP_POLLING)
#endif
