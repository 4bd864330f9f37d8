// Salesforce provider: the sObject REST API (create, update, upsert by an External ID,
// delete, read, a SOQL lookup for retried creates), OAuth through the host's auth refresh
// (salesforce_auth.hpp) and polling on SystemModstamp (salesforce_poll.hpp).
//
// Pure translation between recsync calls and Salesforce HTTP requests/answers; the host
// does all I/O. tests/specs/ holds the request schemas written from Salesforce's REST API
// reference that the tests check every request against.
#include <recsync/provider_sdk.hpp>

#include "salesforce_auth.hpp"
#include "salesforce_errors.hpp"
#include "salesforce_poll.hpp"
#include "salesforce_schemas.hpp"
#include "salesforce_settings.hpp"
#include "salesforce_text.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace {

using recsync::sdk::Action;
using recsync::sdk::bearer_authorization;
using recsync::sdk::Call;
using recsync::sdk::Direction;
using recsync::sdk::InvalidInput;
using recsync::sdk::json;
using recsync::sdk::percent_encode;
using recsync::sdk::RateLimit;
using recsync::sdk::Request;
using recsync::sdk::Response;
using recsync::sdk::Result;
using recsync::sdk::Unsupported;
using salesforce::ObjectSettings;
using salesforce::Settings;

// Salesforce limits API calls per rolling 24 hours per org (Sforce-Limit-Info reports
// them); per-second bursts are not limited, but 25 long-running calls at once are.
constexpr int kRequestsPerSecond = 20;
constexpr int kBurst = 20;
constexpr int64_t kMaxRetryAfterMs = 24LL * 3600 * 1000;
// sObject Collections (composite/sobjects) take at most 200 records per call.
constexpr int kBatchSize = 200;

int64_t now_ms() { return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count(); }

// "api-usage=25/15000" (Sforce-Limit-Info, on every answer): the org's rolling 24-hour
// quota. The host never spends more than what the org has left; since a rolling day frees
// calls gradually and Salesforce never says when, the report "resets" after
// `reset_after_ms` (limit_exceeded_retry_s): a spent quota is probed again then, rather
// than waited out for a whole day.
std::vector<RateLimit> reported_rate_limits(const Response &r, int64_t reset_after_ms) {
    const std::string_view info = r.header("Sforce-Limit-Info");
    const auto pos = info.find("api-usage=");
    if (pos == std::string_view::npos) return {};
    const std::string_view usage = info.substr(pos + 10, info.find_first_of(", ;", pos + 10) - (pos + 10));
    const auto slash = usage.find('/');
    if (slash == std::string_view::npos) return {};
    const auto used = salesforce::parse_digits(usage.substr(0, slash));
    const auto limit = salesforce::parse_digits(usage.substr(slash + 1));
    if (!used || !limit || *limit == 0) return {};
    return {RateLimit{*limit, std::max<int64_t>(0, *limit - *used), 0, reset_after_ms}};
}

// A record in transform(INBOUND)'s input form: its fields, without the "attributes" Salesforce adds.
json without_attributes(json row) {
    if (row.is_object()) row.erase("attributes");
    return row;
}

class SalesforceProvider final : public recsync::sdk::Provider {
public:
    explicit SalesforceProvider(const json &config)
        : settings_(Settings::from_config(config)),
          signer_(settings_.auth == salesforce::AuthFlow::JwtBearer ? std::make_unique<salesforce::Rs256Signer>(settings_.private_key_pem) : nullptr),
          learned_user_id_(settings_.echo_user_id) {}

    // describe's "sample" (provider_abi.h): fields in transform(OUTBOUND)'s input form, with
    // the lookup field, so that a find builds from it too.
    static json sample_record(const ObjectSettings &o) {
        json sample = o.type == "Contact" || o.type == "Lead" ? json{{"FirstName", "Ada"}, {"LastName", "Lovelace"}, {"Email", "ada@example.com"}}
                                                              : json{{"Name", "Conformance " + o.type}};
        if (o.type == "Lead") sample["Company"] = "Example Ltd";
        if (!o.lookup_field.empty() && !sample.contains(o.lookup_field)) sample[o.lookup_field] = "conformance-value";
        return sample;
    }

    json describe() override {
        json objects = json::object();
        for (const auto &[name, o] : settings_.objects) {
            objects[name] = {{"schema", json::parse(schema_sobject)}, {"sample", sample_record(o)}};
            // Batches (composite/sobjects): update and delete always; create and upsert only
            // with an External ID field, so that a batched create whose answer was lost is
            // retried (per record, by the host) as an upsert and never duplicates.
            objects[name]["batch"] = {{"update", kBatchSize}, {"delete", kBatchSize}};
            if (!o.external_id_field.empty()) {
                objects[name]["batch"]["create"] = kBatchSize;
                objects[name]["batch"]["upsert"] = kBatchSize;
                objects[name]["key_property"] = o.external_id_field;
                objects[name]["create_retry"] = "upsert";
            } else if (!o.lookup_field.empty()) {
                objects[name]["key_property"] = o.lookup_field;
                objects[name]["create_retry"] = "find";
            }
        }
        return {{"objects", std::move(objects)}, {"rate_limit", {{"per_second", kRequestsPerSecond}, {"burst", kBurst}}}};
    }

    json transform(Direction direction, std::string_view object, const json &record) override {
        settings_.object(object);
        if (!record.is_object()) throw InvalidInput("record must be a JSON object");
        if (direction == Direction::Inbound) return without_attributes(record);
        if (direction != Direction::Outbound) throw Unsupported("transform direction " + std::to_string(static_cast<int>(direction)) + " is not supported");
        check_fields(record, ": nested objects and arrays are not supported; map it to a flat value");
        return record;
    }

    void validate(std::string_view object, const json &payload) override {
        settings_.object(object);
        if (!payload.is_object()) throw InvalidInput("payload must be a JSON object of fields");
        check_fields(payload, " must be a string, number, boolean or null");
        if (payload.contains("Id") || payload.contains("id")) throw InvalidInput("the payload must not set Id: Salesforce assigns it (recsync keeps the link)");
    }

    Request build_request(const Call &call) override {
        const ObjectSettings &o = settings_.object(call.object);
        const std::string sobjects = settings_.data_path + "/sobjects/" + o.type;
        Request req;
        switch (call.action) {
        case Action::Create: {
            json body = json::parse(call.payload);
            // Our key goes into the External ID field, so a retried create can upsert on it.
            if (!o.external_id_field.empty() && !body.contains(o.external_id_field)) body[o.external_id_field] = std::string(call.record_key);
            req = {"POST", sobjects + "/", body.dump(), {}};
            break;
        }
        case Action::Update:
            req = {"PATCH", sobjects + "/" + id_segment(call, "update"), std::string(call.payload), {}};  // transform's text, as it is
            break;
        case Action::Upsert: {
            if (o.external_id_field.empty()) throw Unsupported("upsert of " + o.type + " needs settings objects." + o.type + ".external_id_field");
            json body = json::parse(call.payload);
            std::string key(call.record_key);
            if (const auto it = body.find(o.external_id_field); it != body.end()) {
                if (it->is_string() && !it->get_ref<const std::string &>().empty()) key = it->get<std::string>();
                body.erase(it);  // the External ID goes in the URL only: Salesforce refuses it in the body too
            }
            req = {"PATCH", sobjects + "/" + o.external_id_field + "/" + percent_encode(key), body.dump(), {}};
            break;
        }
        case Action::Find: {
            if (o.lookup_field.empty()) throw Unsupported("find of " + o.type + " needs settings objects." + o.type + ".lookup_field");
            const json body = json::parse(call.payload);
            const auto it = body.find(o.lookup_field);
            if (it == body.end() || !it->is_string() || it->get_ref<const std::string &>().empty())
                throw InvalidInput("find of " + o.type + " needs a non-empty '" + o.lookup_field + "' field (its lookup field)");
            // Two rows are enough to know it is ambiguous.
            const std::string soql = "SELECT Id FROM " + o.type + " WHERE " + o.lookup_field + " = " + salesforce::soql_string(it->get<std::string>()) + " LIMIT 2";
            req = {"GET", settings_.data_path + "/query/?q=" + percent_encode(soql), "", {}};
            break;
        }
        case Action::Delete:
            req = {"DELETE", sobjects + "/" + id_segment(call, "delete"), "", {}};
            break;
        case Action::Read:
            req = {"GET", sobjects + "/" + id_segment(call, "read") + "?fields=" + percent_encode(salesforce::select_list(o, false)), "", {}};
            break;
        default:
            throw Unsupported("action " + std::to_string(static_cast<int>(call.action)) + " is not supported");
        }
        if (!req.body.empty()) req.headers.push_back({"Content-Type", "application/json", false});
        req.headers.push_back({"Accept", "application/json", false});
        // Our writes say who made them (the org's event logs and API usage show the client).
        if (call.action != Action::Read && call.action != Action::Find) req.headers.push_back({"Sforce-Call-Options", "client=" + settings_.call_options_client, false});
        if (!call.access_token.empty()) req.headers.push_back(bearer_authorization(call.access_token));
        return req;
    }

    Result parse_response(const Call &call, const Response &response) override {
        const std::string text = recsync::sdk::redact(std::string(response.body), call.access_token);
        const json body = json::parse(text.begin(), text.end(), nullptr, false);
        bool spent = false;  // REQUEST_LIMIT_EXCEEDED: the org's quota is used up
        Result r = judge(call, response, text, body, spent);
        r.error = recsync::sdk::redact(std::move(r.error), call.access_token);
        r.rate_limits = reported_rate_limits(response, spent ? r.retry_after_ms : settings_.limit_exceeded_retry_ms);
        if (spent && r.rate_limits.empty()) r.rate_limits.push_back({0, 0, 0, r.retry_after_ms});  // nothing left until then: the connection pauses
        return r;
    }

    // ---- Batches (ABI 1.6): sObject Collections, composite/sobjects, 200 records ----
    // allOrNone false: each record succeeds or fails alone; the answer is an array of
    // SaveResult / UpsertResult / DeleteResult in the request's order, so item i is call i.
    Request build_batch_request(const std::vector<Call> &calls) override {
        const Call &first = calls.front();
        const ObjectSettings &o = settings_.object(first.object);
        const std::string collections = settings_.data_path + "/composite/sobjects";
        Request req;
        switch (first.action) {
        case Action::Create:
        case Action::Update:
        case Action::Upsert: {
            if (first.action != Action::Update && o.external_id_field.empty())
                throw Unsupported("batched " + std::string(first.action == Action::Create ? "create" : "upsert") + " of " + o.type + " needs settings objects." + o.type + ".external_id_field");
            json records = json::array();
            for (const Call &c : calls) {
                json fields = json::parse(c.payload);
                if (!fields.is_object()) throw InvalidInput("payload must be a JSON object of fields");
                json rec = {{"attributes", {{"type", o.type}}}};
                if (first.action == Action::Update) rec["id"] = id_segment_raw(c, "update");
                if (first.action == Action::Create && !fields.contains(o.external_id_field)) fields[o.external_id_field] = std::string(c.record_key);
                if (first.action == Action::Upsert) {
                    // In a collection the External ID travels in each record (the URL names the field).
                    const auto it = fields.find(o.external_id_field);
                    if (it == fields.end() || !it->is_string() || it->get_ref<const std::string &>().empty()) fields[o.external_id_field] = std::string(c.record_key);
                }
                for (auto &[k, v] : fields.items()) rec[k] = v;
                records.push_back(std::move(rec));
            }
            const json body = {{"allOrNone", false}, {"records", std::move(records)}};
            const std::string path = first.action == Action::Upsert ? collections + "/" + o.type + "/" + o.external_id_field : collections;
            req = {first.action == Action::Create ? "POST" : "PATCH", path, body.dump(), {}};
            req.headers.push_back({"Content-Type", "application/json", false});
            break;
        }
        case Action::Delete: {
            std::string ids;
            for (const Call &c : calls) ids += (ids.empty() ? "" : ",") + percent_encode(id_segment_raw(c, "delete"));
            req = {"DELETE", collections + "?ids=" + ids + "&allOrNone=false", "", {}};
            break;
        }
        default:
            throw Unsupported("batches of action " + std::to_string(static_cast<int>(first.action)) + " are not supported");
        }
        req.headers.push_back({"Accept", "application/json", false});
        req.headers.push_back({"Sforce-Call-Options", "client=" + settings_.call_options_client, false});
        if (!first.access_token.empty()) req.headers.push_back(bearer_authorization(first.access_token));
        return req;
    }

    recsync::sdk::BatchResult parse_batch_response(const std::vector<Call> &calls, const Response &response) override {
        recsync::sdk::BatchResult out;
        const Call &first = calls.front();
        const std::string text = recsync::sdk::redact(std::string(response.body), first.access_token);
        const json body = json::parse(text.begin(), text.end(), nullptr, false);
        const int status = response.status;
        if (status < 200 || status >= 300) {
            // The call as a whole (401 INVALID_SESSION_ID, 403 REQUEST_LIMIT_EXCEEDED, 5xx,
            // a 400 for a malformed request): judged as the single call would be.
            bool spent = false;
            Result r = judge(first, response, text, body, spent);
            if (r.kind == RECSYNC_RESULT_OK) r = Result::fail(salesforce::api_error(status, body, text).message);
            r.external_id.clear();
            r.error = recsync::sdk::redact(std::move(r.error), first.access_token);
            out.rate_limits = reported_rate_limits(response, spent ? r.retry_after_ms : settings_.limit_exceeded_retry_ms);
            if (spent && out.rate_limits.empty()) out.rate_limits.push_back({0, 0, 0, r.retry_after_ms});
            out.batch = std::move(r);
            return out;
        }
        out.rate_limits = reported_rate_limits(response, settings_.limit_exceeded_retry_ms);
        if (!body.is_array()) {
            out.batch = Result::retry("Salesforce returned " + std::to_string(status) + " to an sObject Collections call without a list of results: " + recsync::sdk::printable_snippet(text));
            return out;
        }
        out.items.resize(calls.size());
        for (size_t i = 0; i < calls.size() && i < body.size(); ++i) out.items[i] = item_result(calls[i], body[i]);
        // Results missing from a short answer: unknown, retried (a create as an upsert).
        for (size_t i = body.size(); i < calls.size(); ++i) out.items[i] = Result::retry("Salesforce's sObject Collections answer had no result for this record");
        return out;
    }

    // Polling (salesforce_poll.hpp).
    Request build_poll_request(std::string_view object, std::string_view cursor, std::string_view token) override {
        return salesforce::poll_request(settings_, settings_.object(object), cursor, token, now_ms());
    }
    json parse_poll_response(std::string_view object, const Response &response) override {
        return salesforce::poll_page(settings_, settings_.object(object), response, echo_user_id());
    }

    // OAuth (salesforce_auth.hpp).
    Request build_auth_request() override { return salesforce::token_request(settings_, signer_.get(), now_ms() / 1000); }
    json parse_auth_response(const Response &response) override {
        const auto t = salesforce::parse_token_answer(response);
        if (settings_.echo_user_id.empty() && !t.user_id.empty()) {
            std::lock_guard l(user_mutex_);
            learned_user_id_ = t.user_id;
        }
        return {{"access_token", t.access_token}, {"instance_url", t.instance_url}};  // no expires_in: until refused
    }

private:
    std::string echo_user_id() const {
        std::lock_guard l(user_mutex_);
        return learned_user_id_;
    }

    // Fields as the REST API takes them: API names, flat values (`nested_why` says why not).
    static void check_fields(const json &fields, const char *nested_why) {
        for (const auto &[name, value] : fields.items()) {
            if (!salesforce::is_api_name(name)) throw InvalidInput("field '" + name + "' is not a Salesforce field API name");
            if (value.is_structured()) throw InvalidInput("field '" + name + "'" + nested_why);
        }
    }

    static std::string id_segment(const Call &call, const char *what) {
        if (call.external_id.empty()) throw InvalidInput(std::string(what) + " needs the record's Salesforce Id");
        return percent_encode(call.external_id);
    }

    static std::string id_segment_raw(const Call &call, const char *what) {
        if (call.external_id.empty()) throw InvalidInput(std::string(what) + " needs the record's Salesforce Id");
        return std::string(call.external_id);
    }

    // One record's SaveResult / UpsertResult / DeleteResult in a collection's answer:
    // {"id", "success", "errors": [{"statusCode", "message", "fields"}][, "created"]}.
    // Its errors map as the single calls' errorCodes do.
    Result item_result(const Call &call, const json &item) const {
        if (!item.is_object()) return Result::retry("Salesforce's sObject Collections answer had a result that is not an object for this record");
        const auto id = id_in(item);
        if (item.value("success", false) == true) {
            if (id) return Result::ok(*id);
            if (call.action == Action::Update || call.action == Action::Delete) return Result::ok(std::string(call.external_id));
            return Result::fail("Salesforce reported success for this record without its id");
        }
        json errors = json::array();
        std::vector<std::string> codes;
        if (const auto e = item.find("errors"); e != item.end() && e->is_array())
            for (const auto &one : *e) {
                if (!one.is_object()) continue;
                json norm = one;
                if (!norm.contains("errorCode") && one.contains("statusCode")) norm["errorCode"] = one["statusCode"];
                if (norm.contains("errorCode") && norm["errorCode"].is_string()) codes.push_back(norm["errorCode"].get<std::string>());
                errors.push_back(std::move(norm));
            }
        const auto has = [&](std::string_view c) { return std::find(codes.begin(), codes.end(), c) != codes.end(); };
        std::string message = recsync::sdk::redact(salesforce::api_error(400, errors, {}).message, call.access_token);
        const std::string_view prefix = "Salesforce returned 400";
        if (message.starts_with(prefix)) message.erase(0, prefix.size() + (message.size() > prefix.size() ? 1 : 0));
        const std::string why = "Salesforce refused this record in the collection: " + (message.empty() ? std::string("no error given") : message);
        if (call.action == Action::Delete && (has("ENTITY_IS_DELETED") || has("INVALID_CROSS_REFERENCE_KEY") || has("NOT_FOUND")))
            return Result::ok(std::string(call.external_id));  // already gone (or in the Recycle Bin)
        if (has("UNABLE_TO_LOCK_ROW") || has("SERVER_UNAVAILABLE") || has("REQUEST_LIMIT_EXCEEDED")) {
            Result r = Result::retry(why);
            r.status = 503;
            return r;
        }
        Result r = Result::fail(why);
        r.status = has("ENTITY_IS_DELETED") || has("NOT_FOUND") ? 404 : 400;
        return r;
    }

    static std::optional<std::string> id_in(const json &body) {
        if (!body.is_object() || !body.contains("id") || !body["id"].is_string() || body["id"].get_ref<const std::string &>().empty()) return std::nullopt;
        return body["id"].get<std::string>();
    }

    // The verdict on `body` (the answer's `text`, parsed); `spent` when it says the org's
    // API quota is used up.
    Result judge(const Call &call, const Response &response, const std::string &text, const json &body, bool &spent) const {
        const int status = response.status;
        const std::string external_id(call.external_id);
        if (status >= 200 && status < 300) {
            switch (call.action) {
            case Action::Create:
            case Action::Upsert: {
                // SaveResult / UpsertResult: {id, success, errors[, created]}.
                if (body.is_object() && body.value("success", true) == false)
                    return Result::fail(body.contains("errors") ? salesforce::api_error(status, body["errors"], {}).message : salesforce::api_error(status, body, text).message);
                if (const auto id = id_in(body)) return Result::ok(*id);
                if (status == 204 && !external_id.empty()) return Result::ok(external_id);  // an upsert that updated, before API 46.0
                return Result::fail("Salesforce returned " + std::to_string(status) + " to the " + (call.action == Action::Create ? "create" : "upsert") + " without the record's id");
            }
            case Action::Find: {
                const auto records = body.is_object() ? body.find("records") : body.end();
                if (!body.is_object() || records == body.end() || !records->is_array()) return Result::fail("Salesforce answered the lookup query without 'records'");
                if (records->empty()) return Result::ok();
                if (records->size() > 1) return Result::fail("several " + std::string(call.object) + " records have this record's lookup field value; cannot tell which one recsync created");
                const auto &row = (*records)[0];
                if (!row.is_object() || !row.contains("Id") || !row["Id"].is_string()) return Result::fail("Salesforce answered the lookup with a row without an Id");
                return Result::ok(row["Id"].get<std::string>());
            }
            case Action::Read: {
                if (!body.is_object()) return Result::fail("Salesforce answered the read without the record");
                Result r = Result::ok(body.value("Id", external_id));
                r.record = without_attributes(body).dump();
                return r;
            }
            default:
                return Result::ok(external_id);  // update and delete: 204, no body
            }
        }
        const salesforce::ApiError e = salesforce::api_error(status, body, text);
        if (status == 300 && call.action == Action::Upsert) {
            // Several records share the External ID value: the body lists their URLs.
            std::string matches;
            if (body.is_array())
                for (const auto &u : body)
                    if (u.is_string()) matches += (matches.empty() ? "" : ", ") + u.get<std::string>().substr(u.get_ref<const std::string &>().find_last_of('/') + 1);
            return Result::fail("several " + std::string(call.object) + " records have this External ID value (" + (matches.empty() ? "Salesforce did not list them" : matches) +
                                "); fix the duplicates in Salesforce, then replay");
        }
        if (status == 404 && call.action == Action::Delete) return Result::ok(external_id);  // already gone (or in the Recycle Bin)
        if (e.has("REQUEST_LIMIT_EXCEEDED")) {
            spent = true;
            const auto asked = recsync::sdk::retry_after_ms(response.header("Retry-After"), kMaxRetryAfterMs);
            return Result::retry(e.message + " (the org's API quota is spent; waiting)", asked.value_or(settings_.limit_exceeded_retry_ms));
        }
        if (status == 401) return Result::retry(e.message);  // INVALID_SESSION_ID: the host fetches a new token and retries
        if (e.has("UNABLE_TO_LOCK_ROW") || e.has("SERVER_UNAVAILABLE") || status == 408 || status == 429 || (status >= 500 && status < 600))
            return Result::retry(e.message, recsync::sdk::retry_after_ms(response.header("Retry-After"), kMaxRetryAfterMs).value_or(0));
        if (status >= 300 && status < 500) return Result::fail(e.message);
        return Result::fail("unexpected HTTP status " + std::to_string(status) + " from Salesforce");
    }

    const Settings settings_;
    const std::unique_ptr<salesforce::Rs256Signer> signer_;
    mutable std::mutex user_mutex_;  // the learned id changes with each token answer
    std::string learned_user_id_;
};

}  // namespace

RECSYNC_PROVIDER(SalesforceProvider, "salesforce", "0.1.0", RECSYNC_CAP_NATIVE_UPSERT | RECSYNC_CAP_POLLING | RECSYNC_CAP_AUTH_REFRESH | RECSYNC_CAP_BATCH)
