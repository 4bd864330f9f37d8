#include "rest_classify.hpp"

#include <chrono>

namespace rest {

using recsync::sdk::Call;
using recsync::sdk::RateLimit;
using recsync::sdk::Response;
using recsync::sdk::Result;

namespace {

// A Retry-After beyond a day is more likely a broken server than a real request.
constexpr int64_t kMaxWaitMs = 24LL * 3600 * 1000;

std::string redact(std::string text, const std::vector<std::string> &secrets) {
    for (const auto &secret : secrets) text = recsync::sdk::redact(std::move(text), secret);
    return text;
}

std::optional<int64_t> header_number(const Response &r, const std::string &name) {
    if (name.empty()) return std::nullopt;
    std::string_view v = r.header(name);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    int64_t n = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc() || end != v.data() + v.size() || n < 0) return std::nullopt;
    return n;
}

std::string http(int status) { return "HTTP " + std::to_string(status); }

// A 2xx (or a status the settings call ok) to a call of `verb`.
Result done(const ActionSpec &action, const ObjectSpec &object, Verb verb, const Call &call, const Response &response, const json &body) {
    const std::string what = std::string(kVerbNames[static_cast<size_t>(verb)]) + " of " + object.name;
    switch (verb) {
    case Verb::Create:
    case Verb::Upsert: {
        const std::string id = id_text(at_pointer(body, *action.id));
        if (id.empty()) return Result::fail(http(response.status) + " to the " + what + ", but the answer has no id at " + action.id->to_string());
        return Result::ok(id);
    }
    case Verb::Find: {
        const json *results = at_pointer(body, action.results);
        if (!results || !results->is_array()) return Result::fail(http(response.status) + " to the " + what + ", but the answer has no results array at " + action.results.to_string());
        if (results->empty()) return Result::ok();
        if (results->size() > 1) return Result::fail("the " + what + " matched " + std::to_string(results->size()) + " records; cannot tell which one recsync created");
        const std::string id = id_text(at_pointer((*results)[0], *action.id));
        return id.empty() ? Result::fail("the " + what + " found a record without an id at " + action.id->to_string()) : Result::ok(id);
    }
    case Verb::Read: {
        const json *record = at_pointer(body, action.record);
        if (!record || !record->is_object()) return Result::fail(http(response.status) + " to the " + what + ", but the answer has no record at " + action.record.to_string());
        Result r = Result::ok(action.id ? id_text(at_pointer(body, *action.id)) : std::string());
        if (r.external_id.empty()) r.external_id = call.external_id;
        r.record = record->dump();
        return r;
    }
    case Verb::Update:
    case Verb::Delete:
        break;
    }
    const std::string id = action.id ? id_text(at_pointer(body, *action.id)) : std::string();
    return Result::ok(id.empty() ? std::string(call.external_id) : id);  // e.g. 204 No Content
}

}  // namespace

const json *at_pointer(const json &doc, const Pointer &pointer) {
    try {
        return doc.contains(pointer) ? &doc.at(pointer) : nullptr;
    } catch (const json::exception &) {
        return nullptr;  // e.g. "/data/x" where data is an array
    }
}

std::string id_text(const json *value) {
    if (!value) return {};
    if (value->is_string()) return value->get<std::string>();
    if (value->is_number_unsigned()) return std::to_string(value->get<uint64_t>());
    if (value->is_number_integer()) return std::to_string(value->get<int64_t>());
    return {};
}

std::string describe_body(const json &body, std::string_view raw, const Pointer &message, const std::vector<std::string> &secrets) {
    // Redact before shortening, so that no cut can leave part of a secret behind.
    if (const json *m = at_pointer(body, message); m && m->is_string() && !m->get_ref<const std::string &>().empty())
        return ": " + recsync::sdk::truncate_utf8(redact(m->get<std::string>(), secrets));
    if (!body.is_discarded() || raw.find_first_not_of(" \t\r\n") == std::string_view::npos) return {};
    return ": " + recsync::sdk::printable_snippet(redact(std::string(raw), secrets));
}

Outcome outcome_of(const ActionSpec &action, int status) {
    if (const auto it = action.status.find(status); it != action.status.end()) return it->second;
    if (status >= 200 && status < 300) return Outcome::Ok;
    if (status == 408 || status == 429 || (status >= 500 && status < 600)) return Outcome::Retry;
    return Outcome::Fail;
}

std::vector<RateLimit> rate_limits(const RateLimitHeaders &h, const Response &response, int64_t now_ms) {
    const auto remaining = header_number(response, h.remaining);
    if (!remaining) return {};
    RateLimit l;
    l.remaining = *remaining;
    l.limit = header_number(response, h.limit).value_or(0);
    l.window_ms = h.window_ms;
    if (const auto reset = header_number(response, h.reset)) {
        const int64_t after = h.reset_is_epoch ? *reset * 1000 - now_ms : *reset * 1000;
        l.reset_after_ms = std::clamp<int64_t>(after, 0, kMaxWaitMs);
    }
    if (l.window_ms == 0 && l.reset_after_ms == 0) return {};  // the host ignores a report without a time
    return {l};
}

Result judge(const Settings &settings, const ObjectSpec &object, Verb verb, const Call &call, const Response &response) {
    const ActionSpec &action = object.action(verb);
    // Lenient: error bodies are often not JSON (gateways, proxies).
    const json body = json::parse(response.body.begin(), response.body.end(), nullptr, false);
    const auto reason = [&] {  // for a failure only: it copies the secrets
        std::vector<std::string> secrets = settings.secrets;
        if (!call.access_token.empty()) secrets.emplace_back(call.access_token);
        return http(response.status) + describe_body(body, response.body, settings.error_message, secrets);
    };
    Result r;
    switch (outcome_of(action, response.status)) {
    case Outcome::Ok:
        r = done(action, object, verb, call, response, body);
        break;
    case Outcome::None:
        r = Result::ok();
        break;
    case Outcome::Exists: {
        const std::string id = action.exists_id ? id_text(at_pointer(body, *action.exists_id)) : std::string();
        r = id.empty() ? Result::fail(reason() + " (the record exists already" + (action.exists_id ? ", and the answer has no id at " + action.exists_id->to_string() : std::string()) + ")")
                       : Result::ok(id);
        break;
    }
    case Outcome::Retry:
        r = Result::retry(reason(), recsync::sdk::retry_after_ms(response.header("Retry-After"), kMaxWaitMs).value_or(0));
        break;
    case Outcome::Fail:
        r = Result::fail(reason());
        break;
    }
    if (r.kind == RECSYNC_RESULT_OK && object.modified && verb != Verb::Delete && verb != Verb::Find) {
        if (const json *m = at_pointer(body, *object.modified); m && (m->is_string() || m->is_number())) r.modified = m->is_string() ? m->get<std::string>() : m->dump();
    }
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    r.rate_limits = rate_limits(settings.rate_headers, response, now);
    return r;
}

}  // namespace rest
