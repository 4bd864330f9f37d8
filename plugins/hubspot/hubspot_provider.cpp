// HubSpot provider: CRM v3 objects API (contacts, companies, deals).
//
// Pure translation between recsync calls and HubSpot HTTP requests/responses; the host does
// all I/O. See the OpenAPI specs under tests/specs/ for the contract the requests follow.
#include <recsync/provider_sdk.hpp>

#include "hubspot_poll.hpp"
#include "hubspot_schemas.hpp"
#include "hubspot_webhooks.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace {

using recsync::sdk::Action;
using recsync::sdk::bearer_authorization;
using recsync::sdk::percent_encode;
using recsync::sdk::printable_snippet;
using recsync::sdk::truncate_utf8;
using recsync::sdk::RateLimit;
using recsync::sdk::Call;
using recsync::sdk::ConfigError;
using recsync::sdk::Direction;
using recsync::sdk::InvalidInput;
using recsync::sdk::json;
using recsync::sdk::Request;
using recsync::sdk::Response;
using recsync::sdk::Result;
using recsync::sdk::Unsupported;

// HubSpot private apps: 100 requests per rolling 10 seconds.
constexpr int kRequestsPerSecond = 10;
constexpr int kBurst = 10;
// Batch endpoints take at most 100 inputs.
constexpr int kBatchSize = 100;
// A server asking us to wait longer than a day is more likely broken than right.
constexpr int64_t kMaxRetryAfterMs = 24LL * 3600 * 1000;

struct ObjectInfo {
    std::string path_segment;  // what goes after /crm/v3/objects/
    std::string key_property;  // idProperty for upserts
    // Outbound payload schema (schemas/), compiled in: parsed only for describe(), since a
    // parsed copy per instance was most of the memory of 10,000 connections.
    const char *schema;
    // How the host re-sends a create that may already have been made (provider_abi.h,
    // describe): "upsert" when key_property is unique, "find" with a lookup property
    // (searched for the payload's value), "" when neither is known.
    std::string create_retry;
    std::string lookup_property;
};

struct BuiltinObject {
    const char *name;
    // Deals use their object type id: HubSpot accepts "deals" and "0-3" alike, but its
    // published deals spec (the contract we are tested against) only declares 0-3.
    const char *path_segment;
    // Contacts: HubSpot accepts email as idProperty. Companies/deals have no built-in
    // unique property besides the record id; override with config "key_properties"
    // (a property with hasUniqueValue) to upsert them.
    const char *key_property;
    bool key_is_unique;  // usable as idProperty: a create can be retried as an upsert
    const char *schema;
};

constexpr std::array<BuiltinObject, 3> kBuiltinObjects = {{
    {"contacts", "contacts", "email", true, schema_contacts},
    {"companies", "companies", "domain", false, schema_companies},
    {"deals", "0-3", "hs_object_id", false, schema_deals},
}};

// The schemas are compiled in; failing to parse one is a build bug (INTERNAL). Checked
// once per process, not once per connection.
bool embedded_schema_is_json(const BuiltinObject &b) {
    static const auto valid = [] {
        std::array<bool, kBuiltinObjects.size()> v{};
        for (size_t i = 0; i < v.size(); ++i) v[i] = json::accept(kBuiltinObjects[i].schema);
        return v;
    }();
    return valid[static_cast<size_t>(&b - kBuiltinObjects.data())];
}

const BuiltinObject *find_builtin(std::string_view name) {
    for (const auto &b : kBuiltinObjects)
        if (name == b.name) return &b;
    return nullptr;
}

// A number as HubSpot property text, in `buf`: integers as they are; doubles as the
// shortest round-trip text in fixed notation: 3.0 -> "3", 2.5 -> "2.5", and never an
// exponent, which HubSpot number properties reject (1e308 needs ~310 characters). Empty
// if it cannot be formatted.
using NumberBuffer = std::array<char, 400>;
template <typename Number>
std::string_view number_text(Number v, NumberBuffer &buf) {
    if constexpr (std::is_floating_point_v<Number>) {
        if (v == 0) return "0";  // also -0.0
        const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v, std::chars_format::fixed);
        return ec == std::errc() ? std::string_view(buf.data(), static_cast<size_t>(end - buf.data())) : std::string_view();
    } else {
        const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
        return std::string_view(buf.data(), static_cast<size_t>(end - buf.data()));
    }
}

// HubSpot takes every property value as text.
std::string property_text(const std::string &field, const json &v) {
    switch (v.type()) {
    case json::value_t::string:
        return v.get<std::string>();
    case json::value_t::boolean:
        return v.get<bool>() ? "true" : "false";
    case json::value_t::null:
        return "";  // an empty value clears the property in HubSpot
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: {
        NumberBuffer buf;
        const std::string_view text = v.is_number_float() ? number_text(v.get<double>(), buf)
                                      : v.is_number_unsigned() ? number_text(v.get<uint64_t>(), buf)
                                                               : number_text(v.get<int64_t>(), buf);
        if (text.empty()) throw InvalidInput("field '" + field + "': number cannot be formatted");
        return std::string(text);
    }
    case json::value_t::object:
    case json::value_t::array:
        throw InvalidInput("field '" + field + "': nested objects and arrays are not supported; map it to a flat value");
    default:
        throw InvalidInput("field '" + field + "': unsupported JSON value");
    }
}

// The "properties" member of a payload, which must be an object of strings.
const json &payload_properties(const json &payload) {
    if (!payload.is_object()) throw InvalidInput("payload must be a JSON object");
    const auto it = payload.find("properties");
    if (it == payload.end() || !it->is_object()) throw InvalidInput("payload has no 'properties' object");
    for (const auto &[name, value] : it->items()) {
        if (!value.is_string()) throw InvalidInput("property '" + name + "' must be a string");
    }
    return *it;
}

// The non-empty value of `name` in `props` (checked to hold strings), which an upsert or
// find of `object` needs; else InvalidInput naming it ("its key property").
const std::string &required_property(const json &props, const std::string &name, const char *action, std::string_view object, const char *role) {
    const auto it = props.find(name);
    if (it == props.end() || it->get_ref<const std::string &>().empty())
        throw InvalidInput(std::string(action) + " of " + std::string(object) + " needs a non-empty '" + name + "' property (its " + role + " property)");
    return it->get_ref<const std::string &>();
}

// One '@' with text on both sides: enough to catch mapping mistakes (a name in the email
// field), without second-guessing HubSpot's own validation.
bool looks_like_email(std::string_view s) {
    const auto at = s.find('@');
    return at != std::string_view::npos && at > 0 && at + 1 < s.size() && s.find('@', at + 1) == std::string_view::npos;
}

// HubSpot ids are strings; tolerate numbers.
std::optional<std::string> id_of(const json &v) {
    if (v.is_string() && !v.get_ref<const std::string &>().empty()) return v.get<std::string>();
    if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
    if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
    return std::nullopt;
}

#ifdef RECSYNC_SDK_SIMDJSON
// The same for simdjson's view of an answer (the fast path).
std::optional<std::string> id_of(simdjson::dom::element v) {
    std::string_view s;
    int64_t i = 0;
    uint64_t u = 0;
    if (v.get_string().get(s) == simdjson::SUCCESS) return s.empty() ? std::nullopt : std::optional<std::string>(s);
    if (v.get_int64().get(i) == simdjson::SUCCESS) return std::to_string(i);
    if (v.get_uint64().get(u) == simdjson::SUCCESS) return std::to_string(u);
    return std::nullopt;
}
#endif

using recsync::sdk::redact;

std::optional<int64_t> parse_digits(std::string_view s) {
    if (s.empty() || s.size() > 18) return std::nullopt;  // 18 digits cannot overflow int64
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || v < 0) return std::nullopt;
    return v;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Retry-After: delay-seconds or an HTTP-date (the SDK reads both). nullopt when absent or unparsable.
std::optional<int64_t> retry_after_ms(const Response &r) { return recsync::sdk::retry_after_ms(r.header("Retry-After"), kMaxRetryAfterMs); }

// HubSpot's rate-limit headers (developers.hubspot.com, "API usage guidelines"): the
// rolling window of the app (-Max requests per -Interval-Milliseconds, -Remaining left)
// and, on some accounts, the per-second one (-Secondly, -Secondly-Remaining). Each window
// present with a parsable remaining count is reported; the daily headers are not (the
// day ends at midnight in the account's time zone, which a response does not say).
std::vector<RateLimit> reported_rate_limits(const Response &r) {
    std::vector<RateLimit> out;
    const auto number = [&](std::string_view name) { return parse_digits(trim(r.header(name))); };
    const auto remaining = number("X-HubSpot-RateLimit-Remaining");
    const auto interval = number("X-HubSpot-RateLimit-Interval-Milliseconds");
    if (remaining && interval && *interval > 0)
        out.push_back({number("X-HubSpot-RateLimit-Max").value_or(0), *remaining, std::min(*interval, kMaxRetryAfterMs), 0});
    if (const auto secondly = number("X-HubSpot-RateLimit-Secondly-Remaining"))
        out.push_back({number("X-HubSpot-RateLimit-Secondly").value_or(0), *secondly, 1000, 0});
    return out;
}

class HubSpotProvider final : public recsync::sdk::Provider {
public:
    explicit HubSpotProvider(const json &config)
        : objects_(load_objects(config)),
          webhooks_(hubspot::WebhookSettings::from_config(config)),
          read_query_(load_read_query(config)),
          read_names_(load_read_names(config)),
          poll_(hubspot::PollSettings::from_config(config)) {}

    // Changes found by searching the modification date (hubspot_poll.hpp).
    Request build_poll_request(std::string_view object, std::string_view cursor, std::string_view token) override {
        const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
        return hubspot::poll_request(poll_, object, object_info(object).path_segment, cursor, token, now);
    }
    json parse_poll_response(std::string_view object, const Response &response) override {
        object_info(object);
        const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
        return hubspot::poll_page(poll_, object, response, now);
    }

    // Signed deliveries to POST /v1/webhooks/{connection} (hubspot_webhooks.hpp).
    json parse_webhook(const Request &request) override {
        const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
        hubspot::verify_signature(webhooks_, request, now);
        return hubspot::webhook_events(request.body);
    }

    // describe's "sample" (provider_abi.h): a record in transform(OUTBOUND)'s input form,
    // with the configured key and lookup properties, so that every action builds from it.
    static json sample_record(const std::string &object, const ObjectInfo &info) {
        json sample = object == "contacts"    ? json{{"email", "ada@example.com"}, {"firstname", "Ada"}, {"lastname", "Lovelace"}}
                      : object == "companies" ? json{{"domain", "example.com"}, {"name", "Example Ltd"}}
                                              : json{{"dealname", "Conformance deal"}, {"amount", "100"}};
        for (const std::string *p : {&info.key_property, &info.lookup_property})
            if (!p->empty() && *p != "hs_object_id" && !sample.contains(*p)) sample[*p] = "conformance-value";
        return sample;
    }

    json describe() override {
        json objects = json::object();
        for (const auto &[name, info] : objects_) {
            objects[name] = {{"schema", json::parse(info.schema)}, {"key_property", info.key_property}, {"sample", sample_record(name, info)}};
            objects[name]["batch"] = {{"create", kBatchSize}, {"update", kBatchSize}, {"upsert", kBatchSize}, {"delete", kBatchSize}, {"read", kBatchSize}};
            if (!info.create_retry.empty()) objects[name]["create_retry"] = info.create_retry;
        }
        return {{"objects", std::move(objects)},
                {"rate_limit", {{"per_second", kRequestsPerSecond}, {"burst", kBurst}}},
                {"webhooks", webhooks_.enabled()}};
    }

    json transform(Direction direction, std::string_view object, const json &record) override {
        object_info(object);
        if (!record.is_object()) throw InvalidInput("record must be a JSON object");
        if (direction == Direction::Outbound) {
            json payload = {{"properties", json::object()}};
            auto &props = payload.find("properties")->get_ref<json::object_t &>();
            // The record's keys come in order (nlohmann keeps objects sorted): each one goes
            // at the end, without a search.
            for (const auto &[name, value] : record.get_ref<const json::object_t &>()) {
                if (name.empty()) throw InvalidInput("record has a field with an empty name");
                props.emplace_hint(props.end(), name, property_text(name, value));
            }
            return payload;
        }
        if (direction == Direction::Inbound) {
            const auto props = record.find("properties");
            if (props == record.end() || !props->is_object())
                throw InvalidInput("HubSpot object has no 'properties' object");
            const auto id = record.find("id");
            const auto id_text = id == record.end() ? std::nullopt : id_of(*id);
            if (!id_text) throw InvalidInput("HubSpot object has no 'id'");
            json flat = *props;
            flat["id"] = *id_text;  // after the properties: the record id wins over a property named "id"
            return flat;
        }
        throw Unsupported("transform direction " + std::to_string(static_cast<int>(direction)) + " is not supported");
    }

#ifdef RECSYNC_SDK_SIMDJSON
    // The fast paths (provider_sdk.hpp): transform's payload and validate's verdict from
    // simdjson's view of the text, with no document. Anything transform or validate would
    // refuse, or sort, or deduplicate is declined, so they decide it and word the error.
    bool fast_transform_outbound(std::string_view object, simdjson::dom::object record, recsync::json_text::Writer &out) override {
        if (objects_.find(object) == objects_.end()) return false;
        out.raw(R"({"properties":{)");
        recsync::sdk::AscendingKeys keys;  // transform() sorts the properties and keeps the last of a repeated name
        bool comma = false;
        NumberBuffer buf;
        for (const auto field : record) {
            const std::string_view name = field.key;
            if (name.empty() || !keys.next(name)) return false;
            std::string_view text;
            switch (field.value.type()) {
            case simdjson::dom::element_type::STRING: text = field.value.get_string().value_unsafe(); break;
            case simdjson::dom::element_type::BOOL: text = field.value.get_bool().value_unsafe() ? "true" : "false"; break;
            case simdjson::dom::element_type::NULL_VALUE: text = ""; break;  // clears the property
            case simdjson::dom::element_type::INT64: text = number_text(field.value.get_int64().value_unsafe(), buf); break;
            case simdjson::dom::element_type::UINT64: text = number_text(field.value.get_uint64().value_unsafe(), buf); break;
            case simdjson::dom::element_type::DOUBLE:
                text = number_text(field.value.get_double().value_unsafe(), buf);
                if (text.empty()) return false;
                break;
            default: return false;  // objects and arrays
            }
            if (comma) out.raw(',');
            comma = true;
            out.string(name);
            out.raw(':');
            out.string(text);
        }
        out.raw("}}");
        return true;
    }

    bool fast_validate(std::string_view object, simdjson::dom::element payload) override {
        if (objects_.find(object) == objects_.end()) return false;
        simdjson::dom::object top;
        simdjson::dom::object props;
        if (payload.get_object().get(top) != simdjson::SUCCESS) return false;
        // Keys in order, here and below: no repeated key, whose last value alone the
        // document would hold.
        recsync::sdk::AscendingKeys top_keys;
        bool has_props = false;
        for (const auto member : top) {
            if (!top_keys.next(member.key)) return false;
            if (member.key == "properties") {
                if (member.value.get_object().get(props) != simdjson::SUCCESS) return false;
                has_props = true;
            }
        }
        if (!has_props) return false;
        recsync::sdk::AscendingKeys prop_keys;
        for (const auto property : props) {
            std::string_view value;
            if (!prop_keys.next(property.key) || property.value.get_string().get(value) != simdjson::SUCCESS) return false;
            if (property.key == "email" && !value.empty() && !looks_like_email(value)) return false;
        }
        return true;
    }
#endif

    void validate(std::string_view object, const json &payload) override {
        object_info(object);
        const json &props = payload_properties(payload);
        const auto email = props.find("email");
        if (email != props.end()) {
            const auto &value = email->get_ref<const std::string &>();
            if (!value.empty() && !looks_like_email(value))
                throw InvalidInput("property 'email': '" + value + "' is not an email address");
        }
    }

    Request build_request(const Call &call) override {
        const ObjectInfo &info = object_info(call.object);
        const std::string base = object_path(info);
        Request req;
        switch (call.action) {
        case Action::Create: {
            const json payload = json::parse(call.payload);
            // SimplePublicObjectInputForCreate requires "associations"; we create bare records.
            req = {"POST", base, json{{"properties", payload_properties(payload)}, {"associations", json::array()}}.dump(), {}};
            break;
        }
        case Action::Update: {
            const json payload = json::parse(call.payload);
            req = {"PATCH", base + "/" + id_segment(call, "update"), json{{"properties", payload_properties(payload)}}.dump(), {}};
            break;
        }
        case Action::Upsert: {
            const json payload = json::parse(call.payload);
            const json &props = payload_properties(payload);
            const std::string &key = required_property(props, info.key_property, "upsert", call.object, "key");
            // BatchInputSimplePublicObjectBatchInputUpsert with a single input.
            const json body = {{"inputs", json::array({{{"idProperty", info.key_property}, {"id", key}, {"properties", props}}})}};
            req = {"POST", base + "/batch/upsert", body.dump(), {}};
            break;
        }
        case Action::Find: {
            // A create that may already have been made: search for the payload's value of
            // the lookup property (PublicObjectSearchRequest). Two results are enough to
            // know it is ambiguous.
            if (info.lookup_property.empty()) throw Unsupported("find of " + std::string(call.object) + " needs config lookup_properties." + std::string(call.object));
            const json payload = json::parse(call.payload);
            const std::string &value = required_property(payload_properties(payload), info.lookup_property, "find", call.object, "lookup");
            const json filter = {{"propertyName", info.lookup_property}, {"operator", "EQ"}, {"value", value}};
            // The spec requires after and sorts too: the first page, in any order.
            const json body = {{"filterGroups", json::array({{{"filters", json::array({filter})}}})},
                               {"properties", json::array({info.lookup_property})},
                               {"sorts", json::array()},
                               {"after", "0"},
                               {"limit", 2}};
            req = {"POST", base + "/search", body.dump(), {}};
            break;
        }
        case Action::Delete:
            req = {"DELETE", base + "/" + id_segment(call, "delete"), "", {}};
            break;
        case Action::Read: {
            // Without ?properties= HubSpot answers with a few default properties only.
            const auto q = read_query_.find(call.object);
            req = {"GET", base + "/" + id_segment(call, "read") + (q == read_query_.end() ? std::string() : q->second), "", {}};
            break;
        }
        default:
            throw Unsupported("action " + std::to_string(static_cast<int>(call.action)) + " is not supported");
        }
        add_headers(call, req);
        return req;
    }

#ifdef RECSYNC_SDK_SIMDJSON
    // The create, update and upsert of a payload as the host writes it ({"properties":
    // {...}}, string values, names in order): the body written from simdjson's view, byte
    // for byte what build_request's documents dump. Anything else is declined.
    bool fast_build_request(const Call &call, simdjson::dom::element payload, Request &out) override {
        if (call.action != Action::Create && call.action != Action::Update && call.action != Action::Upsert) return false;
        const auto info = objects_.find(call.object);
        if (info == objects_.end() || (call.action == Action::Update && call.external_id.empty())) return false;
        simdjson::dom::object top, props;
        if (payload.get_object().get(top) != simdjson::SUCCESS || top.size() != 1) return false;  // other members: the document path drops them
        const auto only = *top.begin();
        if (only.key != "properties" || only.value.get_object().get(props) != simdjson::SUCCESS) return false;
        const std::string &key_property = info->second.key_property;
        std::string_view key;
        if (call.action == Action::Upsert && (props.at_key(key_property).get_string().get(key) != simdjson::SUCCESS || key.empty())) return false;
        out.method = call.action == Action::Update ? "PATCH" : "POST";
        out.path = object_path(info->second);
        if (call.action == Action::Update) out.path += "/" + id_segment(call, "update");
        if (call.action == Action::Upsert) out.path += "/batch/upsert";
        {
            recsync::json_text::Writer w(out.body);
            // nlohmann's objects are sorted: "associations" before "properties", "id" before
            // "idProperty" before "properties".
            if (call.action == Action::Create) {
                w.raw(R"({"associations":[],"properties":{)");
            } else if (call.action == Action::Update) {
                w.raw(R"({"properties":{)");
            } else {
                w.raw(R"({"inputs":[{"id":)");
                w.string(key);
                w.raw(R"(,"idProperty":)");
                w.string(key_property);
                w.raw(R"(,"properties":{)");
            }
            recsync::sdk::AscendingKeys keys;
            bool comma = false;
            for (const auto field : props) {
                std::string_view value;
                if (!keys.next(field.key) || field.value.get_string().get(value) != simdjson::SUCCESS) return false;
                if (comma) w.raw(',');
                comma = true;
                w.string(field.key);
                w.raw(':');
                w.string(value);
            }
            w.raw(call.action == Action::Upsert ? "}}]}" : "}}");
        }
        add_headers(call, out);
        return true;
    }

    // A create's or an upsert's answer with its id: the verdict without a document.
    // Anything else (other actions, statuses, no usable id) goes to parse_response, which
    // words the errors.
    bool fast_parse_response(const Call &call, const Response &response, simdjson::dom::element body, Result &out) override {
        if ((call.action != Action::Create && call.action != Action::Upsert) || response.status < 200 || response.status >= 300) return false;
        simdjson::dom::element holder = body;  // the object that carries the id
        if (call.action == Action::Upsert) {
            // {"results":[{"id":...},...],...}: the first result's.
            simdjson::dom::array results;
            if (!last_member(body, "results", holder) || holder.get_array().get(results) != simdjson::SUCCESS || results.size() == 0) return false;
            holder = *results.begin();
        }
        simdjson::dom::element id;
        if (!last_member(holder, "id", id)) return false;
        auto text = id_of(id);
        if (!text) return false;
        out = Result::ok(std::move(*text));
        // The stamp of this write there: its own echo will carry it (provider_abi.h).
        simdjson::dom::element updated;
        std::string_view stamp;
        if (last_member(holder, "updatedAt", updated) && updated.get_string().get(stamp) == simdjson::SUCCESS) out.modified = stamp;
        out.rate_limits = reported_rate_limits(response);
        return true;
    }

    // The member `name` of an object, the last one if repeated (as in a parsed document).
    static bool last_member(simdjson::dom::element object, std::string_view name, simdjson::dom::element &value) {
        simdjson::dom::object o;
        if (object.get_object().get(o) != simdjson::SUCCESS) return false;
        bool found = false;
        for (const auto field : o)
            if (field.key == name) {
                value = field.value;
                found = true;
            }
        return found;
    }
#endif

    Result parse_response(const Call &call, const Response &response) override {
        // The body is the server's text and could echo anything back; dead letters must
        // never carry the credential. Redact before any truncation can split the token.
        const std::string body = redact(std::string(response.body), call.access_token);
        Result r = classify(call, response, body);
        r.error = redact(std::move(r.error), call.access_token);
        r.rate_limits = reported_rate_limits(response);
        return r;
    }

    // ---- Batches (ABI 1.6): batch/create|update|upsert|archive|read, 100 inputs ----
    // Each input carries objectWriteTraceId = its index where the endpoint takes one, so a
    // result or an error names its record whatever order HubSpot answers in; otherwise a
    // result is matched by id (update, read) or by the key property (create, upsert), and
    // an error by its context's ids.
    Request build_batch_request(const std::vector<Call> &calls) override {
        const Call &first = calls.front();
        const ObjectInfo &info = object_info(first.object);
        json inputs = json::array();
        const char *endpoint = nullptr;
        for (size_t i = 0; i < calls.size(); ++i) {
            const Call &c = calls[i];
            const std::string trace = std::to_string(i);
            switch (first.action) {
            case Action::Create: {
                const json payload = json::parse(c.payload);
                inputs.push_back({{"properties", payload_properties(payload)}, {"associations", json::array()}, {"objectWriteTraceId", trace}});
                endpoint = "/batch/create";
                break;
            }
            case Action::Update: {
                const json payload = json::parse(c.payload);
                inputs.push_back({{"id", id_segment_raw(c, "update")}, {"properties", payload_properties(payload)}, {"objectWriteTraceId", trace}});
                endpoint = "/batch/update";
                break;
            }
            case Action::Upsert: {
                const json payload = json::parse(c.payload);
                const json &props = payload_properties(payload);
                const std::string &key = required_property(props, info.key_property, "upsert", c.object, "key");
                inputs.push_back({{"idProperty", info.key_property}, {"id", key}, {"properties", props}, {"objectWriteTraceId", trace}});
                endpoint = "/batch/upsert";
                break;
            }
            case Action::Delete:
                inputs.push_back({{"id", id_segment_raw(c, "delete")}});
                endpoint = "/batch/archive";
                break;
            case Action::Read:
                inputs.push_back({{"id", id_segment_raw(c, "read")}});
                endpoint = "/batch/read";
                break;
            default:
                throw Unsupported("batches of action " + std::to_string(static_cast<int>(first.action)) + " are not supported");
            }
        }
        json body = {{"inputs", std::move(inputs)}};
        if (first.action == Action::Read) {
            const auto names = read_names_.find(first.object);
            body["properties"] = names == read_names_.end() ? json::array() : names->second;
            body["propertiesWithHistory"] = json::array();
        }
        Request req{"POST", object_path(info) + endpoint, body.dump(), {}};
        add_headers(first, req);
        return req;
    }

    recsync::sdk::BatchResult parse_batch_response(const std::vector<Call> &calls, const Response &response) override {
        recsync::sdk::BatchResult out;
        out.rate_limits = reported_rate_limits(response);
        const Call &first = calls.front();
        const std::string body_text = redact(std::string(response.body), first.access_token);
        const json body = json::parse(body_text, nullptr, false);
        const int status = response.status;
        if (status < 200 || status >= 300) {
            // The batch as a whole: a 429 or 5xx retries it, a refusal (409 "Existing ID" on
            // a create, a 400 naming one bad input) fails it, and the host then sends each
            // record alone, where a 409 adopts the existing record.
            Result r = judge(first, response, body_text, body);
            if (r.kind == RECSYNC_RESULT_OK) r = Result::fail(reason(response, body_text, body));
            r.error = redact(std::move(r.error), first.access_token);
            out.batch = std::move(r);
            return out;
        }
        out.items.resize(calls.size());
        if (first.action == Action::Delete) {
            // 204 No Content: every id archived (or gone already).
            for (size_t i = 0; i < calls.size(); ++i) out.items[i] = Result::ok(std::string(calls[i].external_id));
            return out;
        }
        if (!body.is_object()) {
            out.batch = Result::fail("HubSpot returned " + std::to_string(status) + " to a batch without a JSON body");
            return out;
        }
        const ObjectInfo &info = object_info(first.object);
        // Which record a result or an error is about: by its id (update, read) or its key
        // property's value (create, upsert; emails compare case-insensitively).
        const bool by_key = first.action != Action::Update && first.action != Action::Read;
        auto normal = [&](std::string id) { return by_key && info.key_property == "email" ? lower(std::move(id)) : id; };
        std::map<std::string, size_t> by_id;
        for (size_t i = 0; i < calls.size(); ++i) {
            const Call &c = calls[i];
            std::string id;
            if (!by_key) id = std::string(c.external_id);
            else {
                const json payload = json::parse(c.payload, nullptr, false);
                const auto props = payload.is_object() ? payload.find("properties") : payload.end();
                if (props != payload.end() && props->is_object())
                    if (const auto k = props->find(info.key_property); k != props->end() && k->is_string()) id = k->get<std::string>();
            }
            if (!id.empty()) by_id.emplace(normal(std::move(id)), i);
        }
        auto index_of = [&](const json &item, bool result) -> std::optional<size_t> {
            if (const auto t = item.find("objectWriteTraceId"); t != item.end() && t->is_string()) {
                size_t n = 0;
                const auto &s = t->get_ref<const std::string &>();
                if (std::from_chars(s.data(), s.data() + s.size(), n).ec == std::errc() && n < calls.size()) return n;
            }
            std::optional<std::string> id;
            if (result && !by_key) id = item.contains("id") ? id_of(item["id"]) : std::nullopt;
            else if (result) {
                const auto props = item.find("properties");
                if (props != item.end() && props->is_object())
                    if (const auto k = props->find(info.key_property); k != props->end() && k->is_string()) id = k->get<std::string>();
            }
            if (!id) return std::nullopt;
            const auto it = by_id.find(normal(*id));
            return it == by_id.end() ? std::nullopt : std::optional<size_t>(it->second);
        };
        if (const auto results = body.find("results"); results != body.end() && results->is_array()) {
            for (const auto &item : *results) {
                if (!item.is_object()) continue;
                const auto i = index_of(item, true);
                const auto id = item.contains("id") ? id_of(item["id"]) : std::nullopt;
                if (!i || !id) continue;
                Result r = Result::ok(*id);
                if (const auto u = item.find("updatedAt"); u != item.end() && u->is_string()) r.modified = u->get<std::string>();
                if (first.action == Action::Read && item.contains("properties") && item["properties"].is_object())
                    r.record = json{{"id", *id}, {"properties", item["properties"]}}.dump();
                out.items[*i] = std::move(r);
            }
        }
        if (const auto errors = body.find("errors"); errors != body.end() && errors->is_array()) {
            for (const auto &e : *errors) {
                if (!e.is_object()) continue;
                const std::string category = e.value("category", "");
                const std::string message = redact(truncate_utf8(e.value("message", std::string("no message"))), first.access_token);
                Result r = category == "RATE_LIMITS" ? Result::retry("HubSpot rate-limited this record in the batch: " + message)
                                                     : Result::fail("HubSpot refused this record in the batch: " + message);
                r.status = category == "OBJECT_NOT_FOUND" ? 404 : category == "CONFLICT" ? 409 : category == "RATE_LIMITS" ? 429 : 400;
                if (first.action == Action::Read && r.status == 404) r.error = "HubSpot has no such record: " + message;
                // The records it names: objectWriteTraceId, else the ids in its context.
                std::vector<size_t> named;
                if (const auto i = index_of(e, false)) named.push_back(*i);
                if (const auto ctx = e.find("context"); named.empty() && ctx != e.end() && ctx->is_object())
                    for (const char *k : {"ids", "id"})
                        if (const auto ids = ctx->find(k); ids != ctx->end() && ids->is_array())
                            for (const auto &v : *ids)
                                if (v.is_string())
                                    if (const auto it = by_id.find(normal(v.get<std::string>())); it != by_id.end()) named.push_back(it->second);
                for (const size_t i : named) out.items[i] = r;
            }
        }
        return out;
    }

private:
    static std::string lower(std::string s) {
        for (auto &ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        return s;
    }
    static std::string id_segment_raw(const Call &call, const char *what) {
        if (call.external_id.empty()) throw InvalidInput(std::string(what) + " needs the record's HubSpot id");
        return std::string(call.external_id);
    }

public:
private:
    using ObjectMap = std::map<std::string, ObjectInfo, std::less<>>;

    static ObjectMap load_objects(const json &config) {
        if (!config.is_object()) throw ConfigError("hubspot config must be a JSON object");
        std::vector<std::string> names;
        if (const auto it = config.find("objects"); it != config.end()) {
            if (!it->is_array() || it->empty())
                throw ConfigError("hubspot config 'objects' must be a non-empty list of object names");
            for (const auto &n : *it) {
                if (!n.is_string()) throw ConfigError("hubspot config 'objects' must contain strings");
                if (!find_builtin(n.get_ref<const std::string &>()))
                    throw ConfigError("hubspot config 'objects': unknown object '" + n.get<std::string>() +
                                      "' (supported: contacts, companies, deals)");
                names.push_back(n.get<std::string>());
            }
        } else {
            for (const auto &b : kBuiltinObjects) names.emplace_back(b.name);
        }
        const json *keys = nullptr;
        if (const auto it = config.find("key_properties"); it != config.end()) {
            if (!it->is_object()) throw ConfigError("hubspot config 'key_properties' must be an object");
            keys = &*it;
            for (const auto &[name, value] : it->items()) {
                if (!find_builtin(name)) throw ConfigError("hubspot config 'key_properties': unknown object '" + name + "'");
                if (!value.is_string() || value.get_ref<const std::string &>().empty())
                    throw ConfigError("hubspot config 'key_properties." + name + "' must be a non-empty string");
            }
        }
        const json *lookups = nullptr;
        if (const auto it = config.find("lookup_properties"); it != config.end()) {
            if (!it->is_object()) throw ConfigError("hubspot config 'lookup_properties' must be an object");
            lookups = &*it;
            for (const auto &[name, value] : it->items()) {
                if (!find_builtin(name)) throw ConfigError("hubspot config 'lookup_properties': unknown object '" + name + "'");
                if (!value.is_string() || value.get_ref<const std::string &>().empty())
                    throw ConfigError("hubspot config 'lookup_properties." + name + "' must be a non-empty string");
                if (keys && keys->contains(name))
                    throw ConfigError("hubspot config: set key_properties." + name + " (a unique property: retried creates upsert) or lookup_properties." +
                                      name + " (searched for before a retried create), not both");
            }
        }
        ObjectMap objects;
        for (const auto &name : names) {
            const BuiltinObject &b = *find_builtin(name);
            std::string key = b.key_property;
            bool unique = b.key_is_unique;
            if (keys && keys->contains(name)) {
                key = (*keys)[name].get<std::string>();
                unique = true;  // the setting's contract: a property with hasUniqueValue
            }
            std::string lookup = lookups && lookups->contains(name) ? (*lookups)[name].get<std::string>() : std::string();
            std::string create_retry = !lookup.empty() ? "find" : unique ? "upsert" : "";
            if (!embedded_schema_is_json(b)) throw std::runtime_error(std::string("embedded schema for ") + b.name + " is not JSON");
            objects.emplace(name, ObjectInfo{b.path_segment, std::move(key), b.schema, std::move(create_retry), std::move(lookup)});
        }
        return objects;
    }

    // The record's updatedAt in a write's or a read's answer (an upsert's: its first
    // result's); empty if the answer has none.
    static std::string updated_at(const Call &call, const json &body) {
        const json *holder = &body;
        if (call.action == Action::Upsert) {
            const auto results = body.is_object() ? body.find("results") : body.end();
            if (!body.is_object() || results == body.end() || !results->is_array() || results->empty()) return {};
            holder = &(*results)[0];
        }
        if (!holder->is_object()) return {};
        const auto it = holder->find("updatedAt");
        return it != holder->end() && it->is_string() ? it->get<std::string>() : std::string();
    }

    // read_properties: {object: [names]} -> "?properties=a,b" for that object's reads.
    static std::map<std::string, std::string, std::less<>> load_read_query(const json &config) {
        std::map<std::string, std::string, std::less<>> out;
        const auto it = config.find("read_properties");
        if (it == config.end()) return out;
        if (!it->is_object()) throw ConfigError("hubspot config 'read_properties' must map objects to lists of property names");
        for (const auto &[name, list] : it->items()) {
            if (!find_builtin(name)) throw ConfigError("hubspot config 'read_properties': unknown object '" + name + "'");
            if (!list.is_array() || list.empty()) throw ConfigError("hubspot config 'read_properties." + name + "' must be a non-empty list of property names");
            std::string q = "?properties=";
            for (size_t i = 0; i < list.size(); ++i) {
                if (!list[i].is_string() || list[i].get_ref<const std::string &>().empty())
                    throw ConfigError("hubspot config 'read_properties." + name + "' must contain property names");
                q += (i ? "," : "") + percent_encode(list[i].get<std::string>());
            }
            out[name] = std::move(q);
        }
        return out;
    }

    // read_properties as batch/read takes them (load_read_query checked them).
    static std::map<std::string, json, std::less<>> load_read_names(const json &config) {
        std::map<std::string, json, std::less<>> out;
        if (const auto it = config.find("read_properties"); it != config.end() && it->is_object())
            for (const auto &[name, list] : it->items()) out[name] = list;
        return out;
    }

    const ObjectInfo &object_info(std::string_view object) const {
        const auto it = objects_.find(object);
        if (it == objects_.end())
            throw Unsupported("object '" + std::string(object) + "' is not supported by this hubspot connection");
        return it->second;
    }

    // What every request carries (build_request and its fast path).
    static void add_headers(const Call &call, Request &req) {
        if (!req.body.empty()) req.headers.push_back({"Content-Type", "application/json", false});
        req.headers.push_back({"Accept", "application/json", false});
        if (!call.access_token.empty()) req.headers.push_back(bearer_authorization(call.access_token));
    }

    static std::string object_path(const ObjectInfo &info) { return "/crm/v3/objects/" + info.path_segment; }

    static std::string id_segment(const Call &call, const char *what) {
        if (call.external_id.empty()) throw InvalidInput(std::string(what) + " needs the record's HubSpot id");
        return percent_encode(call.external_id);
    }

    // "HubSpot returned 400: <message>" from the Error body, or a snippet of a non-JSON body.
    static std::string reason(const Response &response, std::string_view body_text, const json &body) {
        std::string msg = "HubSpot returned " + std::to_string(response.status);
        if (body.is_object()) {
            const auto m = body.find("message");
            if (m != body.end() && m->is_string()) return msg + ": " + truncate_utf8(m->get<std::string>());
            return msg;
        }
        if (body.is_discarded() && !trim(body_text).empty()) return msg + ": " + printable_snippet(body_text);
        return msg;
    }

    Result classify(const Call &call, const Response &response, std::string_view body_text) const {
        // Lenient: error bodies are often not JSON (gateways, proxies); never throw on them.
        const json body = json::parse(body_text.begin(), body_text.end(), nullptr, false);
        Result r = judge(call, response, body_text, body);
        if (r.kind == RECSYNC_RESULT_OK && call.action != Action::Delete && call.action != Action::Find) r.modified = updated_at(call, body);
        return r;
    }

    Result judge(const Call &call, const Response &response, std::string_view body_text, const json &body) const {
        const int status = response.status;
        const std::string external_id(call.external_id);

        if (status >= 200 && status < 300) {
            switch (call.action) {
            case Action::Create: {
                const auto id = body.is_object() && body.contains("id") ? id_of(body["id"]) : std::nullopt;
                return id ? Result::ok(*id) : Result::fail("HubSpot returned " + std::to_string(status) + " but the response has no id");
            }
            case Action::Upsert: {
                if (body.is_object()) {
                    const auto results = body.find("results");
                    if (results != body.end() && results->is_array() && !results->empty() && (*results)[0].is_object() &&
                        (*results)[0].contains("id")) {
                        if (const auto id = id_of((*results)[0]["id"])) return Result::ok(*id);
                    }
                    // 207 Multi-Status: the input failed; the reason is in errors[].
                    const auto errors = body.find("errors");
                    if (errors != body.end() && errors->is_array() && !errors->empty() && (*errors)[0].is_object()) {
                        const auto m = (*errors)[0].find("message");
                        if (m != (*errors)[0].end() && m->is_string())
                            return Result::fail("HubSpot rejected the upsert: " + truncate_utf8(m->get<std::string>()));
                    }
                }
                return Result::fail("HubSpot returned " + std::to_string(status) + " but the response has no id");
            }
            case Action::Find: {
                // CollectionResponseWithTotalSimplePublicObject: none, one (ours) or several.
                const auto results = body.is_object() ? body.find("results") : body.end();
                if (!body.is_object() || results == body.end() || !results->is_array())
                    return Result::fail("HubSpot returned " + std::to_string(status) + " to a search without 'results'");
                if (results->empty()) return Result::ok();
                if (results->size() > 1)
                    return Result::fail("several " + std::string(call.object) + " have the lookup property's value of this record; cannot tell which one recsync created");
                const auto id = (*results)[0].is_object() && (*results)[0].contains("id") ? id_of((*results)[0]["id"]) : std::nullopt;
                return id ? Result::ok(*id) : Result::fail("HubSpot returned a search result without an id");
            }
            case Action::Read: {
                // The record itself (SimplePublicObject), for the host to plan as inbound.
                if (!body.is_object() || !body.contains("properties") || !body["properties"].is_object())
                    return Result::fail("HubSpot returned " + std::to_string(status) + " to a read without the record's 'properties'");
                const auto id = body.contains("id") ? id_of(body["id"]) : std::nullopt;
                Result r = Result::ok(id ? *id : external_id);
                r.record = json{{"id", r.external_id}, {"properties", body["properties"]}}.dump();
                return r;
            }
            default: {
                // Prefer the body's id: after a merge HubSpot answers for the surviving record.
                const auto id = body.is_object() && body.contains("id") ? id_of(body["id"]) : std::nullopt;
                return Result::ok(id ? *id : external_id);
            }
            }
        }
        if (status == 404 && call.action == Action::Delete) return Result::ok(external_id);  // already gone
        if (status == 409 && call.action == Action::Create) {
            // HubSpot's conflict message names the record that already has this unique value,
            // e.g. "Contact already exists. Existing ID: 123": adopting it makes a retried
            // create idempotent.
            if (body.is_object() && body.contains("message") && body["message"].is_string()) {
                const auto &m = body["message"].get_ref<const std::string &>();
                static constexpr std::string_view marker = "Existing ID: ";
                if (const auto pos = m.find(marker); pos != std::string::npos) {
                    const size_t start = pos + marker.size();
                    size_t end = start;
                    while (end < m.size() && m[end] >= '0' && m[end] <= '9') ++end;
                    if (end > start) {
                        const std::string id = m.substr(start, end - start);
                        log(2, "hubspot: create of " + std::string(call.object) + " conflicted; adopting existing id " + id);
                        return Result::ok(id);
                    }
                }
            }
            return Result::fail(reason(response, body_text, body));
        }
        if (status == 429) {
            int64_t after = 0;
            if (const auto ra = retry_after_ms(response)) {
                after = *ra;
            } else if (const auto interval = parse_digits(trim(response.header("X-HubSpot-RateLimit-Interval-Milliseconds")))) {
                after = std::min(*interval, kMaxRetryAfterMs);
            }
            return Result::retry(reason(response, body_text, body), after);
        }
        if (status == 408 || (status >= 500 && status < 600)) return Result::retry(reason(response, body_text, body), retry_after_ms(response).value_or(0));
        if (status >= 400 && status < 500) return Result::fail(reason(response, body_text, body));
        return Result::fail("unexpected HTTP status " + std::to_string(status) + " from HubSpot");
    }

    const ObjectMap objects_;
    const hubspot::WebhookSettings webhooks_;
    const std::map<std::string, std::string, std::less<>> read_query_;
    const std::map<std::string, json, std::less<>> read_names_;  // the same names, for batch/read's "properties"
    const hubspot::PollSettings poll_;
};

}  // namespace

RECSYNC_PROVIDER(HubSpotProvider, "hubspot", "0.3.0", RECSYNC_CAP_NATIVE_UPSERT | RECSYNC_CAP_WEBHOOKS | RECSYNC_CAP_POLLING | RECSYNC_CAP_BATCH)
