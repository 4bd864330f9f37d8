#include "plugin/provider_instance.hpp"

#include <spdlog/spdlog.h>

// The opaque output object of the C ABI: collects one call's outputs, all copied.
struct recsync_output {
    std::string json;
    std::string error;
    bool has_json = false;
    recsync::plugin::BuiltRequest request;
    bool has_request = false;
    recsync::plugin::CallResult result;
    bool has_result = false;
    // parse_batch_response (ABI 1.6): one slot per call of the batch.
    std::vector<std::optional<recsync::plugin::CallResult>> items;
    std::vector<std::string> item_json;
};

namespace recsync::plugin {

namespace {

std::string_view sv(recsync_str s) { return s.ptr ? std::string_view(s.ptr, s.len) : std::string_view(); }
recsync_str rs(std::string_view s) { return recsync_str{s.data(), s.size()}; }

// A response as the C ABI hands it to a plugin, borrowing `view`'s strings.
struct CResponse {
    std::vector<recsync_header> headers;
    recsync_response r;
    explicit CResponse(const ResponseView &view, std::string_view cursor = {}) {
        if (view.headers) {
            headers.reserve(view.headers->size());
            for (const auto &h : *view.headers) headers.push_back({rs(h.name), rs(h.value)});
        }
        r = recsync_response{sizeof(recsync_response), view.status, headers.data(), headers.size(), rs(view.body), rs(cursor)};
    }
    CResponse(const CResponse &) = delete;  // r points into headers
    CResponse &operator=(const CResponse &) = delete;
};

void host_set_json(recsync_output *o, recsync_str json) {
    o->json.assign(sv(json));
    o->has_json = true;
}
void host_set_error(recsync_output *o, recsync_str msg) { o->error.assign(sv(msg)); }
void host_set_request(recsync_output *o, recsync_str method, recsync_str path, recsync_str body) {
    o->request.method.assign(sv(method));
    o->request.path.assign(sv(path));
    o->request.body.assign(sv(body));
    o->has_request = true;
}
void host_add_header(recsync_output *o, recsync_str name, recsync_str value, uint32_t flags) {
    o->request.headers.push_back({std::string(sv(name)), std::string(sv(value)), (flags & RECSYNC_HEADER_SECRET) != 0});
}
void host_set_result(recsync_output *o, recsync_result_kind kind, recsync_str external_id, int64_t retry_after_ms) {
    o->result.kind = kind;
    o->result.external_id.assign(sv(external_id));
    o->result.retry_after_ms = retry_after_ms;
    o->has_result = true;
}
// Tied to its call's output like every other output (it used to reach the host through a
// thread-local). At most 16 per call: a plugin reports a window or two.
void host_set_rate_limit(recsync_output *o, int64_t limit, int64_t remaining, int64_t window_ms, int64_t reset_after_ms) {
    if (o && o->result.rate_limits.size() < 16) o->result.rate_limits.push_back({limit, remaining, window_ms, reset_after_ms});
}
// Outside parse_batch_response `items` is empty, so every index is past it and ignored.
recsync::plugin::CallResult *item(recsync_output *o, size_t index) {
    if (!o || index >= o->items.size()) return nullptr;
    if (!o->items[index]) o->items[index].emplace();
    return &*o->items[index];
}
void host_set_item_result(recsync_output *o, size_t index, recsync_result_kind kind, recsync_str external_id, int64_t retry_after_ms, int32_t status) {
    auto *r = item(o, index);
    if (!r) return;
    r->kind = kind;
    r->external_id.assign(sv(external_id));
    r->retry_after_ms = retry_after_ms;
    r->status = status;
}
void host_set_item_error(recsync_output *o, size_t index, recsync_str msg) {
    if (auto *r = item(o, index)) r->error.assign(sv(msg));
}
void host_set_item_json(recsync_output *o, size_t index, recsync_str json) {
    if (o && index < o->item_json.size()) o->item_json[index].assign(sv(json));
}
// The plugin's own text, as is: log::Formatter redacts it like every line (a plugin may
// well log a request with its token).
void host_log(const recsync_host_api *, int level, recsync_str msg) {
    spdlog::log(static_cast<spdlog::level::level_enum>(std::clamp(level, 0, 5)), "plugin: {}", sv(msg));
}

const recsync_host_api kHostApi = {
    sizeof(recsync_host_api), RECSYNC_ABI_VERSION, host_set_json, host_set_error, host_set_request, host_add_header, host_set_result, host_log,
    host_set_rate_limit, host_set_item_result, host_set_item_error, host_set_item_json,
};

[[noreturn]] void raise(const ProviderLibrary &lib, const char *fn, recsync_status status, const recsync_output &out) {
    throw PluginError(status, lib.id() + "." + fn + ": " + status_name(status) + (out.error.empty() ? std::string() : ": " + out.error));
}

}  // namespace

const recsync_host_api *host_api() { return &kHostApi; }

const char *status_name(int s) {
    switch (s) {
        case RECSYNC_OK: return "ok";
        case RECSYNC_ERR_INVALID_INPUT: return "invalid input";
        case RECSYNC_ERR_UNSUPPORTED: return "unsupported";
        case RECSYNC_ERR_CONFIG: return "configuration error";
        case RECSYNC_ERR_INTERNAL: return "internal error";
        case RECSYNC_ERR_UNAUTHENTICATED: return "unauthenticated";
        default: break;
    }
    return "unknown status";
}

std::unique_ptr<ProviderInstance> ProviderInstance::create(std::shared_ptr<ProviderLibrary> library, const nlohmann::json &config) {
    auto inst = std::unique_ptr<ProviderInstance>(new ProviderInstance());
    recsync_output out;
    const std::string cfg = config.dump();
    void *handle = nullptr;
    const auto status = library->descriptor().create_instance(&kHostApi, rs(cfg), &out, &handle);
    if (status != RECSYNC_OK) raise(*library, "create_instance", status, out);
    if (!handle) throw PluginContractError(library->id() + ".create_instance returned OK but no instance");
    inst->library_ = std::move(library);
    inst->instance_ = handle;
    return inst;
}

ProviderInstance::~ProviderInstance() {
    if (instance_) library_->descriptor().destroy_instance(instance_);
}

nlohmann::json ProviderInstance::describe() const {
    recsync_output out;
    const auto status = library_->descriptor().describe(instance_, &out);
    if (status != RECSYNC_OK) raise(*library_, "describe", status, out);
    auto j = nlohmann::json::parse(out.json, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw PluginContractError(library_->id() + ".describe: output is not a JSON object");
    return j;
}

std::string ProviderInstance::transform(recsync_direction direction, std::string_view object, std::string_view record_json) const {
    recsync_output out;
    const auto status = library_->descriptor().transform(instance_, direction, rs(object), rs(record_json), &out);
    if (status != RECSYNC_OK) raise(*library_, "transform", status, out);
    if (!out.has_json) throw PluginContractError(library_->id() + ".transform: returned OK without output");
    return std::move(out.json);
}

void ProviderInstance::validate(std::string_view object, std::string_view payload_json) const {
    recsync_output out;
    const auto status = library_->descriptor().validate(instance_, rs(object), rs(payload_json), &out);
    if (status != RECSYNC_OK) raise(*library_, "validate", status, out);
}

namespace {
// {"record": ..., "modified": "..."} (ABI 1.3) into `result`; anything else is the plugin's bug.
void read_record_json(const ProviderLibrary &lib, const char *fn, const std::string &text, CallResult &result) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object()) throw PluginContractError(lib.id() + "." + fn + ": its JSON output is not {\"record\": ..., \"modified\": ...}");
    if (const auto r = j.find("record"); r != j.end() && r->is_object()) result.record = r->dump();
    if (const auto m = j.find("modified"); m != j.end() && m->is_string()) result.modified = m->get<std::string>();
}

recsync_call to_c(const CallInput &c) {
    return recsync_call{sizeof(recsync_call), c.action, rs(c.object), rs(c.record_key), rs(c.external_id), rs(c.payload), rs(c.access_token)};
}
}  // namespace

BuiltRequest ProviderInstance::build_request(const CallInput &call) const {
    recsync_output out;
    const recsync_call c = to_c(call);
    const auto status = library_->descriptor().build_request(instance_, &c, &out);
    if (status != RECSYNC_OK) raise(*library_, "build_request", status, out);
    if (!out.has_request || out.request.method.empty()) throw PluginContractError(library_->id() + ".build_request: returned OK without a request");
    if (out.request.path.empty() || out.request.path.front() != '/')
        throw PluginContractError(library_->id() + ".build_request: path '" + out.request.path + "' must start with '/'");
    return std::move(out.request);
}

CallResult ProviderInstance::parse_response(const CallInput &call, const ResponseView &response) const {
    recsync_output out;
    const recsync_call c = to_c(call);
    const CResponse r(response);
    const auto status = library_->descriptor().parse_response(instance_, &c, &r.r, &out);
    if (status != RECSYNC_OK) raise(*library_, "parse_response", status, out);
    if (!out.has_result) throw PluginContractError(library_->id() + ".parse_response: returned OK without a result");
    out.result.error = std::move(out.error);
    if (out.has_json) read_record_json(*library_, "parse_response", out.json, out.result);
    return std::move(out.result);
}

bool ProviderInstance::has_batches() const {
    const auto &d = library_->descriptor();
    return (d.capabilities & RECSYNC_CAP_BATCH) && d.build_batch_request && d.parse_batch_response && RECSYNC_ABI_MINOR_OF(d.abi_version) >= 6;
}

namespace {
// The calls as the C ABI takes them: an array of pointers (each struct carries its size).
struct CCalls {
    std::vector<recsync_call> calls;
    std::vector<const recsync_call *> pointers;
    explicit CCalls(const std::vector<CallInput> &in) {
        calls.reserve(in.size());
        for (const auto &c : in) calls.push_back(to_c(c));
        for (const auto &c : calls) pointers.push_back(&c);
    }
};
}  // namespace

BuiltRequest ProviderInstance::build_batch_request(const std::vector<CallInput> &calls) const {
    recsync_output out;
    const CCalls c(calls);
    const auto status = library_->descriptor().build_batch_request(instance_, c.pointers.data(), c.pointers.size(), &out);
    if (status != RECSYNC_OK) raise(*library_, "build_batch_request", status, out);
    if (!out.has_request || out.request.method.empty() || out.request.path.empty() || out.request.path.front() != '/')
        throw PluginContractError(library_->id() + ".build_batch_request: no request, or a path that does not start with '/'");
    return std::move(out.request);
}

BatchResult ProviderInstance::parse_batch_response(const std::vector<CallInput> &calls, const ResponseView &response) const {
    recsync_output out;
    out.items.resize(calls.size());
    out.item_json.resize(calls.size());
    const CCalls c(calls);
    const CResponse r(response);
    const auto status = library_->descriptor().parse_batch_response(instance_, c.pointers.data(), c.pointers.size(), &r.r, &out);
    if (status != RECSYNC_OK) raise(*library_, "parse_batch_response", status, out);
    BatchResult result;
    result.rate_limits = std::move(out.result.rate_limits);
    if (out.has_result) {
        out.result.error = std::move(out.error);
        result.batch = std::move(out.result);
    }
    for (size_t i = 0; i < out.items.size(); ++i)
        if (out.items[i] && !out.item_json[i].empty()) read_record_json(*library_, "parse_batch_response", out.item_json[i], *out.items[i]);
    result.items = std::move(out.items);
    return result;
}

bool ProviderInstance::has_webhooks() const {
    const auto &d = library_->descriptor();
    return (d.capabilities & RECSYNC_CAP_WEBHOOKS) && d.parse_webhook;
}

std::vector<nlohmann::json> ProviderInstance::parse_webhook(const WebhookInput &in) const {
    recsync_output out;
    std::vector<recsync_header> headers;
    headers.reserve(in.headers.size());
    for (const auto &[name, value] : in.headers) headers.push_back({rs(name), rs(value)});
    const recsync_webhook w{sizeof(recsync_webhook), rs(in.method), rs(in.path), headers.data(), headers.size(), rs(in.body)};
    const auto status = library_->descriptor().parse_webhook(instance_, &w, &out);
    if (status != RECSYNC_OK) raise(*library_, "parse_webhook", status, out);
    auto j = nlohmann::json::parse(out.json, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("events") || !j["events"].is_array())
        throw PluginContractError(library_->id() + ".parse_webhook: expected {\"events\": [...]}");
    std::vector<nlohmann::json> events;
    events.reserve(j["events"].size());
    for (auto &e : j["events"]) events.push_back(std::move(e));
    return events;
}

bool ProviderInstance::has_polling() const {
    const auto &d = library_->descriptor();
    return (d.capabilities & RECSYNC_CAP_POLLING) && d.build_poll_request && d.parse_poll_response;
}

BuiltRequest ProviderInstance::build_poll_request(std::string_view object, std::string_view cursor, std::string_view access_token) const {
    recsync_output out;
    const auto status = library_->descriptor().build_poll_request(instance_, rs(object), rs(cursor), rs(access_token), &out);
    if (status != RECSYNC_OK) raise(*library_, "build_poll_request", status, out);
    if (!out.has_request || out.request.method.empty() || out.request.path.empty() || out.request.path.front() != '/')
        throw PluginContractError(library_->id() + ".build_poll_request: no request, or a path that does not start with '/'");
    return std::move(out.request);
}

ProviderInstance::PollPage ProviderInstance::parse_poll_response(std::string_view object, std::string_view cursor, const ResponseView &response) const {
    recsync_output out;
    const CResponse r(response, cursor);
    const auto status = library_->descriptor().parse_poll_response(instance_, rs(object), &r.r, &out);
    if (status != RECSYNC_OK) raise(*library_, "parse_poll_response", status, out);
    auto j = nlohmann::json::parse(out.json, nullptr, false);
    const auto events = j.is_object() ? j.find("events") : j.end();
    const auto next = j.is_object() ? j.find("cursor") : j.end();
    if (!j.is_object() || events == j.end() || !events->is_array() || next == j.end() || !next->is_string())
        throw PluginContractError(library_->id() + ".parse_poll_response: expected {\"events\": [...], \"cursor\": \"...\"}");
    PollPage page;
    page.events.reserve(events->size());
    for (auto &e : *events) page.events.push_back(std::move(e));
    page.cursor = next->get<std::string>();
    if (const auto more = j.find("more"); more != j.end() && more->is_boolean()) page.more = more->get<bool>();
    return page;
}

bool ProviderInstance::has_auth_refresh() const {
    const auto &d = library_->descriptor();
    return (d.capabilities & RECSYNC_CAP_AUTH_REFRESH) && d.build_auth_request && d.parse_auth_response;
}

BuiltRequest ProviderInstance::build_auth_request() const {
    recsync_output out;
    const auto status = library_->descriptor().build_auth_request(instance_, &out);
    if (status != RECSYNC_OK) raise(*library_, "build_auth_request", status, out);
    if (!out.has_request || out.request.path.empty() || out.request.path.front() != '/')
        throw PluginContractError(library_->id() + ".build_auth_request: no request, or a path that does not start with '/'");
    return std::move(out.request);
}

namespace {

// A base URL for the connection's calls, as a token answer names it: http(s), a host, no
// credentials, query or fragment (the plugin then only appends paths, as with base_url).
// A trailing '/' is dropped: paths start with one.
std::string checked_instance_url(const std::string &plugin, std::string url) {
    const auto bad = [&](const char *why) { return PluginContractError(plugin + ".parse_auth_response: instance_url '" + url.substr(0, 200) + "' " + why); };
    const size_t scheme_end = url.find("://");
    if (scheme_end == std::string::npos || (url.compare(0, scheme_end, "https") != 0 && url.compare(0, scheme_end, "http") != 0)) throw bad("is not an http(s) URL");
    if (url.size() == scheme_end + 3) throw bad("has no host");
    for (const unsigned char c : url)
        if (c <= 0x20 || c == 0x7F || c == '?' || c == '#' || c == '@' || c == '\\') throw bad("holds a space, control character, '?', '#', '@' or '\\'");
    while (url.size() > scheme_end + 3 && url.back() == '/') url.pop_back();
    return url;
}

}  // namespace

ProviderInstance::AccessToken ProviderInstance::parse_auth_response(const ResponseView &response) const {
    recsync_output out;
    const CResponse r(response);
    const auto status = library_->descriptor().parse_auth_response(instance_, &r.r, &out);
    if (status != RECSYNC_OK) raise(*library_, "parse_auth_response", status, out);
    const auto j = nlohmann::json::parse(out.json, nullptr, false);
    if (!j.is_object() || !j.contains("access_token") || !j["access_token"].is_string() || j["access_token"].get_ref<const std::string &>().empty())
        throw PluginContractError(library_->id() + ".parse_auth_response: expected {\"access_token\": \"...\", \"expires_in\": seconds}");
    AccessToken t{j["access_token"].get<std::string>(), 0, {}};
    // Before 1.5 a missing lifetime meant an hour; from 1.5 it means "until refused".
    const int64_t default_ttl = RECSYNC_ABI_MINOR_OF(library_->abi_version()) >= 5 ? 0 : 3600;
    const auto ttl = j.find("expires_in");
    if (ttl != j.end() && !ttl->is_null() && !ttl->is_number_integer())
        throw PluginContractError(library_->id() + ".parse_auth_response: expires_in must be a whole number of seconds");
    t.expires_in_seconds = ttl == j.end() || ttl->is_null() ? default_ttl : std::max<int64_t>(0, ttl->get<int64_t>());
    if (const auto url = j.find("instance_url"); url != j.end() && !url->is_null()) {
        if (!url->is_string()) throw PluginContractError(library_->id() + ".parse_auth_response: instance_url must be a string");
        t.instance_url = checked_instance_url(library_->id(), url->get<std::string>());
    }
    return t;
}

}  // namespace recsync::plugin
