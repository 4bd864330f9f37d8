// recsync provider SDK: a header-only C++ layer over provider_abi.h.
//
// A provider author writes one class derived from recsync::sdk::Provider and one line:
//     RECSYNC_PROVIDER(MyProvider, "myprovider", "1.0.0", capabilities)
// The SDK makes the entry function and the static descriptor, converts {ptr,len} views and
// JSON, copies outputs through the host, and turns every exception into an error status:
// nothing thrown ever crosses the C ABI.
//
// Depends only on provider_abi.h, the C++ standard library and nlohmann/json; and, when
// RECSYNC_SDK_SIMDJSON is defined (recsync_add_plugin does), on simdjson for parsing and
// for checking the UTF-8 of what recsync/json_text.hpp writes.
#pragma once

#include <recsync/json_text.hpp>
#include <recsync/provider_abi.h>

#include <nlohmann/json.hpp>
#ifdef RECSYNC_SDK_SIMDJSON
#include <simdjson.h>
#endif

#include <strings.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace recsync::sdk {

using json = nlohmann::json;

inline std::string_view view(recsync_str s) { return s.ptr ? std::string_view(s.ptr, s.len) : std::string_view(); }
inline recsync_str str(std::string_view s) { return recsync_str{s.data(), s.size()}; }

// Throw to report a status other than INTERNAL.
class Error : public std::runtime_error {
public:
    Error(recsync_status status, const std::string &message) : std::runtime_error(message), status_(status) {}
    recsync_status status() const { return status_; }

private:
    recsync_status status_;
};
struct InvalidInput : Error { explicit InvalidInput(const std::string &m) : Error(RECSYNC_ERR_INVALID_INPUT, m) {} };
struct Unsupported : Error { explicit Unsupported(const std::string &m) : Error(RECSYNC_ERR_UNSUPPORTED, m) {} };
struct ConfigError : Error { explicit ConfigError(const std::string &m) : Error(RECSYNC_ERR_CONFIG, m) {} };
// parse_webhook: the signature is missing, wrong or stale (ABI 1.3; a 1.2 host is told
// INVALID_INPUT, which it also refuses).
struct Unauthenticated : Error { explicit Unauthenticated(const std::string &m) : Error(RECSYNC_ERR_UNAUTHENTICATED, m) {} };

// Find (ABI 1.2): see RECSYNC_ACTION_FIND; answer Result::ok(id), or Result::ok() if absent.
enum class Action {
    Create = RECSYNC_ACTION_CREATE,
    Update = RECSYNC_ACTION_UPDATE,
    Upsert = RECSYNC_ACTION_UPSERT,
    Delete = RECSYNC_ACTION_DELETE,
    Read = RECSYNC_ACTION_READ,
    Find = RECSYNC_ACTION_FIND
};
enum class Direction { Outbound = RECSYNC_OUTBOUND, Inbound = RECSYNC_INBOUND };

struct Header {
    std::string name;
    std::string value;
    bool secret = false;
};

struct Request {
    std::string method;
    std::string path;  // appended to the connection's base URL; includes the query
    std::string body;
    std::vector<Header> headers;
};

// A borrowed view of one outbound call; valid during the SDK callback only.
struct Call {
    Action action;
    std::string_view object;
    std::string_view record_key;
    std::string_view external_id;
    std::string_view payload;
    std::string_view access_token;
};

// A borrowed view of one HTTP response; valid during the SDK callback only.
struct Response {
    int status = 0;
    std::vector<std::pair<std::string_view, std::string_view>> headers;
    std::string_view body;
    std::string_view cursor;  // parse_poll_response: the cursor the request was built from (ABI 1.4)

    // Case-insensitive header lookup; empty if absent.
    std::string_view header(std::string_view name) const {
        for (const auto &[n, v] : headers) {
            if (n.size() == name.size() && strncasecmp(n.data(), name.data(), n.size()) == 0) return v;
        }
        return {};
    }
};

// What the server said about its own rate limit (ABI 1.1, host_api.set_rate_limit): at
// most `remaining` more requests before the window resets. See provider_abi.h.
struct RateLimit {
    int64_t limit = 0;           // the window's size; 0 if unknown
    int64_t remaining = 0;       // requests still allowed in the current window
    int64_t window_ms = 0;       // the window's length; 0 if unknown
    int64_t reset_after_ms = 0;  // until the window resets; 0 if unknown
};

struct Result {
    recsync_result_kind kind = RECSYNC_RESULT_OK;
    std::string external_id;
    int64_t retry_after_ms = 0;
    std::string error;
    // Reported to the host with the verdict, whatever it is. The SDK drops them on a 1.0
    // host (which has no set_rate_limit): the host then relies on 429s alone.
    std::vector<RateLimit> rate_limits;
    // ABI 1.3, on OK: a READ's record (JSON text in transform(INBOUND)'s input form), and
    // the record's modification stamp there after the call (provider_abi.h, parse_response).
    std::string record;
    std::string modified;
    // ABI 1.6, a batch's record: its own HTTP status inside the answer (404 for an id the
    // batch did not find, ...); 0: the batch's.
    int status = 0;

    static Result ok(std::string id = {}) { return {RECSYNC_RESULT_OK, std::move(id), 0, {}, {}, {}, {}}; }
    static Result retry(std::string why, int64_t after_ms = 0) { return {RECSYNC_RESULT_RETRY, {}, after_ms, std::move(why), {}, {}, {}}; }
    static Result fail(std::string why) { return {RECSYNC_RESULT_FAIL, {}, 0, std::move(why), {}, {}, {}}; }
};

// The answer to one batch (ABI 1.6, Provider::parse_batch_response): a verdict per call, in
// the batch's order (nullopt: the batch's verdict applies), and/or one for the whole
// batch (a 429, a 5xx, a refusal of the batch as such). Rate limits as in Result.
struct BatchResult {
    std::optional<Result> batch;
    std::vector<std::optional<Result>> items;
    std::vector<RateLimit> rate_limits;
};

// Object keys seen one at a time: next() is false unless each is after the last, in
// std::string's order, which is how nlohmann keeps an object (sorted, no repeats). Text
// whose keys are not in that order would be sorted or deduplicated by the document, so
// the paths that skip the document (update_from_simdjson, the Provider fast paths) give up
// on it.
class AscendingKeys {
public:
    bool next(std::string_view key) {
        const bool in_order = first_ || previous_ < key;
        first_ = false;
        previous_ = key;
        return in_order;
    }

private:
    std::string_view previous_;
    bool first_ = true;
};

// Text for an error message (they end up in dead letters and logs): `text` cut to
// `max_bytes` without splitting a UTF-8 sequence (the host requires valid UTF-8), "..."
// marking the cut.
inline std::string truncate_utf8(std::string text, size_t max_bytes = 300) {
    if (text.size() <= max_bytes) return text;
    size_t n = max_bytes;
    while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
    text.resize(n);
    return text + "...";
}

// The same for a body that is not JSON (HTML from a proxy, binary): printable ASCII only,
// anything else as '?'.
inline std::string printable_snippet(std::string_view body, size_t max_bytes = 300) {
    std::string out;
    for (unsigned char c : body.substr(0, max_bytes)) out += (c >= 0x20 && c < 0x7F) ? static_cast<char>(c) : '?';
    if (body.size() > max_bytes) out += "...";
    return out;
}

// Escapes everything but RFC 3986 unreserved characters, so an id put in a path can never
// add a segment or a query ("a/b?x" -> "a%2Fb%3Fx").
inline std::string percent_encode(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 0xF];
        }
    }
    return out;
}

// Retry-After (RFC 9110 10.2.3) in milliseconds from now: delay-seconds ("120") or an
// HTTP-date in IMF-fixdate form ("Sun, 06 Nov 1994 08:49:37 GMT", the only form senders
// may generate), capped at `max_ms` (a date in the past is 0). nullopt when absent or
// unreadable. The date is read by hand: strptime's %b depends on the host's locale.
inline std::optional<int64_t> retry_after_ms(std::string_view value, int64_t max_ms = 24LL * 3600 * 1000) {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (value.empty()) return std::nullopt;
    if (value.find_first_not_of("0123456789") == std::string_view::npos) {
        int64_t secs = 0;
        const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), secs);
        return ec != std::errc() || secs >= max_ms / 1000 ? max_ms : secs * 1000;  // too many digits: "a very long time"
    }
    static constexpr const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const std::string text(value);
    int day = 0, year = 0, hh = 0, mm = 0, ss = 0, consumed = 0;
    char mon[4] = {};
    if (std::sscanf(text.c_str(), "%*3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d GMT%n", &day, mon, &year, &hh, &mm, &ss, &consumed) != 6 ||
        consumed != static_cast<int>(text.size()))
        return std::nullopt;
    unsigned month = 0;
    for (unsigned i = 0; i < 12; ++i)
        if (std::string_view(mon) == months[i]) month = i + 1;
    using namespace std::chrono;
    const year_month_day ymd{std::chrono::year{year}, std::chrono::month{month}, std::chrono::day{static_cast<unsigned>(day)}};
    if (!ymd.ok() || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60) return std::nullopt;
    const auto when = sys_days{ymd} + hours{hh} + minutes{mm} + seconds{ss};
    return std::clamp<int64_t>(duration_cast<milliseconds>(when - system_clock::now()).count(), 0, max_ms);
}

// Every occurrence of `secret` replaced by "[redacted]": a server may echo the credential
// back, and dead letters must never carry it. Redact before truncating (a cut could split it).
inline std::string redact(std::string msg, std::string_view secret) {
    if (secret.empty()) return msg;
    for (size_t pos = msg.find(secret); pos != std::string::npos; pos = msg.find(secret, pos)) {
        msg.replace(pos, secret.size(), "[redacted]");
        pos += 10;
    }
    return msg;
}

// An RFC 3339 time in epoch milliseconds: "2026-12-02T03:04:05Z", with an optional
// fraction (milliseconds kept), "T", "t" or " " between date and time, and "Z", "+hh:mm"
// or "+hhmm" (Salesforce writes "+0000"). nullopt for anything else. Read by hand:
// strptime depends on the locale and knows no fractions or offsets.
inline std::optional<int64_t> rfc3339_ms(std::string_view t) {
    const auto num = [&](size_t pos, size_t len, int &out) {
        if (pos + len > t.size()) return false;
        const auto r = std::from_chars(t.data() + pos, t.data() + pos + len, out);
        return r.ec == std::errc() && r.ptr == t.data() + pos + len;
    };
    int y, mo, d, h, mi, s;
    if (t.size() < 20 || t[4] != '-' || t[7] != '-' || (t[10] != 'T' && t[10] != 't' && t[10] != ' ') || t[13] != ':' || t[16] != ':') return std::nullopt;
    if (!num(0, 4, y) || !num(5, 2, mo) || !num(8, 2, d) || !num(11, 2, h) || !num(14, 2, mi) || !num(17, 2, s)) return std::nullopt;
    using namespace std::chrono;
    const year_month_day date{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
    if (!date.ok() || h > 23 || mi > 59 || s > 60) return std::nullopt;
    size_t pos = 19;
    int64_t ms = 0;
    if (t[pos] == '.') {
        int64_t scale = 100;
        const size_t first = ++pos;
        for (; pos < t.size() && t[pos] >= '0' && t[pos] <= '9'; ++pos, scale /= 10) ms += (t[pos] - '0') * scale;
        if (pos == first) return std::nullopt;
    }
    int64_t offset_min = 0;
    if (pos < t.size() && (t[pos] == 'Z' || t[pos] == 'z')) {
        ++pos;
    } else if (pos < t.size() && (t[pos] == '+' || t[pos] == '-')) {
        int oh, om;
        const bool colon = pos + 3 < t.size() && t[pos + 3] == ':';
        if (!num(pos + 1, 2, oh) || !num(pos + (colon ? 4 : 3), 2, om)) return std::nullopt;
        offset_min = (t[pos] == '+' ? 1 : -1) * (oh * 60 + om);
        pos += colon ? 6 : 5;
    } else {
        return std::nullopt;
    }
    if (pos != t.size()) return std::nullopt;
    const auto at = sys_days{date} + hours{h} + minutes{mi - offset_min} + seconds{s};
    return duration_cast<milliseconds>(at.time_since_epoch()).count() + ms;
}

// "Authorization: Bearer <token>", marked secret (the host never logs it and redacts it in
// dead letters). Throws InvalidInput if the token holds control characters: a CR/LF would
// let the credential inject headers. The message never echoes the token.
inline Header bearer_authorization(std::string_view token) {
    for (unsigned char c : token)
        if (c < 0x20 || c == 0x7F) throw InvalidInput("access token contains control characters");
    return {"Authorization", "Bearer " + std::string(token), true};
}

// Base class of every SDK provider. One instance per configured connection; the host may
// call every method except the constructor and destructor from several threads at once,
// so keep instances immutable after construction.
class Provider {
public:
    virtual ~Provider() = default;
    virtual json describe() = 0;
    virtual json transform(Direction direction, std::string_view object, const json &record) = 0;
    // Throw InvalidInput with the reason if the payload must not be sent.
    virtual void validate(std::string_view object, const json &payload) = 0;
    virtual Request build_request(const Call &call) = 0;
    virtual Result parse_response(const Call &call, const Response &response) = 0;

    // Optional capabilities: override and declare the capability flag in RECSYNC_PROVIDER.
    // parse_webhook: the delivery as received (path with its query; body as sent). Return
    // {"events": [...]} (provider_abi.h); throw Unauthenticated for a bad signature.
    virtual json parse_webhook(const Request & /*request*/) { throw Unsupported("webhooks not supported"); }
    // Polling: the request for `object`'s changes after `cursor` (empty: the start), and
    // {"events": [...], "cursor": "...", "more": bool} from its answer (provider_abi.h);
    // response.cursor is the request's cursor. Throw for an answer with no page.
    virtual Request build_poll_request(std::string_view /*object*/, std::string_view /*cursor*/, std::string_view /*token*/) { throw Unsupported("polling not supported"); }
    virtual json parse_poll_response(std::string_view /*object*/, const Response &) { throw Unsupported("polling not supported"); }
    virtual Request build_auth_request() { throw Unsupported("auth refresh not supported"); }
    virtual json parse_auth_response(const Response &) { throw Unsupported("auth refresh not supported"); }
    // Batches (RECSYNC_CAP_BATCH, ABI 1.6; describe's per-object "batch" gives the sizes):
    // one request for 2..N calls of one object and action, and their verdicts from its
    // answer (BatchResult: items sized like `calls`, or shorter).
    virtual Request build_batch_request(const std::vector<Call> & /*calls*/) { throw Unsupported("batches not supported"); }
    virtual BatchResult parse_batch_response(const std::vector<Call> & /*calls*/, const Response &) { throw Unsupported("batches not supported"); }

#ifdef RECSYNC_SDK_SIMDJSON
    // Optional fast paths for the two calls made for every planned action (transform
    // outbound, then validate), working on simdjson's read-only view of the host's text
    // instead of nlohmann documents. Building, updating and freeing those documents was
    // most of what a transform cost (bench/README.md "rules"); a provider whose payload is
    // a simple function of the record can skip all of it.
    //
    // Each may decline by returning false: the SDK then discards whatever was written and
    // calls the document method (transform / validate), which also words every error. So a
    // fast path only has to recognise the common case and must decline the rest (keys out
    // of order or repeated, value types it does not expect, unknown objects). When it does
    // not decline it must do exactly what the document method would: write the same text
    // (as write_json of transform's result would), or pass the same payloads.
    // plugins/hubspot/tests checks its fast paths against its document paths this way.
    //
    // Outbound transform: write the payload's JSON text into `out`; true when written.
    virtual bool fast_transform_outbound(std::string_view /*object*/, simdjson::dom::object /*record*/, json_text::Writer & /*out*/) { return false; }
    // validate: true when the payload is valid; false to decline (then validate() decides).
    virtual bool fast_validate(std::string_view /*object*/, simdjson::dom::element /*payload*/) { return false; }
    //
    // And for the two calls made for every HTTP call (the dispatcher's thread runs them;
    // nlohmann's parse and dump were most of a plugin's share of it), same rules:
    // build_request from the call's payload as simdjson read it: true when `out` is filled.
    virtual bool fast_build_request(const Call & /*call*/, simdjson::dom::element /*payload*/, Request & /*out*/) { return false; }
    // parse_response from the body as simdjson read it: true when `out` is the verdict
    // (rate-limit reports included). Only called for a 2xx answer whose body is valid JSON
    // of at most kFastBodyBytes: errors are rare and worded by parse_response, and a huge
    // body would grow the thread's parser for good.
    virtual bool fast_parse_response(const Call & /*call*/, const Response & /*response*/, simdjson::dom::element /*body*/, Result & /*out*/) { return false; }
#endif

    // Logging through the host; set by the SDK before any call.
    void log(int level, std::string_view message) const {
        if (host_ && host_->log) host_->log(host_, level, str(message));
    }
    const recsync_host_api *host_ = nullptr;
};

namespace detail {

// Copy the host's api table into a zeroed one of our size (append-only rule).
inline recsync_host_api copy_host(const recsync_host_api *host) {
    recsync_host_api h;
    std::memset(&h, 0, sizeof h);
    if (host) std::memcpy(&h, host, std::min<size_t>(host->struct_size, sizeof h));
    return h;
}

// JSON text to a document. With RECSYNC_SDK_SIMDJSON (recsync_add_plugin defines it and
// links simdjson), simdjson tokenizes and the nlohmann document is built from its tape:
// about three times cheaper than nlohmann's own parser, whose lexer dominated planning
// (bench/run rules). The result is the same document (a repeated key: the last wins);
// text simdjson refuses (numbers beyond 64 bits, malformed input) goes to nlohmann, which
// accepts the former and words the error for the latter.
#ifdef RECSYNC_SDK_SIMDJSON
inline json from_simdjson(simdjson::dom::element e) {
    using T = simdjson::dom::element_type;
    switch (e.type()) {
        case T::ARRAY: {
            json a = json::array();
            for (const simdjson::dom::element x : simdjson::dom::array(e)) a.push_back(from_simdjson(x));
            return a;
        }
        case T::OBJECT: {
            json o = json::object();
            auto &members = o.get_ref<json::object_t &>();
            for (const auto field : simdjson::dom::object(e)) {
                // Hosts send keys sorted (nlohmann dumps them so): inserting at the end is then
                // O(1). A repeated key keeps the last value, as nlohmann's parser does.
                auto it = members.emplace_hint(members.end(), std::string(field.key), nullptr);
                it->second = from_simdjson(field.value);
            }
            return o;
        }
        case T::INT64: return int64_t(e);
        case T::UINT64: return uint64_t(e);
        case T::DOUBLE: return double(e);
        case T::STRING: return std::string(std::string_view(e));
        case T::BOOL: return bool(e);
        case T::NULL_VALUE: break;
    }
    return nullptr;
}

// Makes `doc` the document from_simdjson(e) would build, reusing what `doc` already holds:
// members with the same key are updated in place (a string is assigned into the string
// already there), others added or erased. False when an object's keys do not arrive in
// strictly increasing order (a host that does not sort them, or a repeated key): `doc` is
// then partly updated and the caller rebuilds it.
inline bool update_from_simdjson(json &doc, simdjson::dom::element e) {
    using T = simdjson::dom::element_type;
    if (e.type() == T::STRING && doc.is_string()) {
        doc.get_ref<std::string &>().assign(std::string_view(e));
        return true;
    }
    if (e.type() != T::OBJECT || !doc.is_object()) {
        doc = from_simdjson(e);
        return true;
    }
    auto &members = doc.get_ref<json::object_t &>();
    auto it = members.begin();
    AscendingKeys keys;
    for (const auto field : simdjson::dom::object(e)) {
        const std::string_view key = field.key;
        if (!keys.next(key)) return false;
        while (it != members.end() && std::string_view(it->first) < key) it = members.erase(it);
        if (it != members.end() && std::string_view(it->first) == key) {
            if (!update_from_simdjson(it->second, field.value)) return false;
        } else {
            it = members.emplace_hint(it, std::string(key), from_simdjson(field.value));
        }
        ++it;
    }
    members.erase(it, members.end());
    return true;
}
#endif

// Frees a document's members bottom-up, leaving `j` an empty object or array. nlohmann's
// destructor first moves every member of every object and array into a heap-allocated
// stack (so that deep nesting cannot overflow the C++ stack): a fifth of what a transform
// cost. Below `max_depth` levels the rest is left to that destructor.
inline void dispose(json &j, int max_depth = 32) {
    if (max_depth == 0) return;
    if (j.is_object()) {
        auto &members = j.get_ref<json::object_t &>();
        for (auto &m : members)
            if (m.second.is_structured()) dispose(m.second, max_depth - 1);
        members.clear();
    } else if (j.is_array()) {
        auto &items = j.get_ref<json::array_t &>();
        for (auto &e : items)
            if (e.is_structured()) dispose(e, max_depth - 1);
        items.clear();
    }
}

// What one host thread keeps between calls, for every instance of the plugin
// (thread_scratch below).
struct ThreadScratch {
    // The host validates what transform has just produced (planning an event: transform,
    // then validate that text). Parsing it again cost as much as the transform itself, so
    // the last outbound output is kept parsed, and validate uses it when object and text
    // are byte-identical (the text parses back to an equal document; non-finite numbers,
    // which are written as null, are not kept).
    bool has_last = false;
    std::string last_object;
    std::string last_text;  // also the buffer every transform writes into: it keeps its capacity
    json last_doc;
#ifdef RECSYNC_SDK_SIMDJSON
    simdjson::dom::parser parser;  // keeps its buffers between calls
#endif
    json parse(std::string_view text) {
#ifdef RECSYNC_SDK_SIMDJSON
        simdjson::dom::element doc;
        if (parser.parse(text.data(), text.size(), true).get(doc) == simdjson::SUCCESS) return from_simdjson(doc);
#endif
        return json::parse(text);
    }

    // The last record transform was given, kept parsed. The next one mostly has the same
    // fields (the host maps with the same few mappings), so it is updated in place rather
    // than built and freed: building and freeing ~30 nodes and strings per record was a
    // third of a transform. The result is the document parse(text) would give.
    json last_record;
    const json &parse_record(std::string_view text) {
#ifdef RECSYNC_SDK_SIMDJSON
        simdjson::dom::element doc;
        if (parser.parse(text.data(), text.size(), true).get(doc) == simdjson::SUCCESS) {
            if (!update_from_simdjson(last_record, doc)) last_record = from_simdjson(doc);
            return last_record;
        }
#endif
        last_record = json::parse(text);
        return last_record;
    }
};

// This thread's scratch, shared by every instance of the plugin on this thread: nothing in
// it belongs to an instance (a parser, buffers, and the last transform's output, reused
// only for the same object and text). One per instance made 10,000 connections keep
// 10,000 parsers and take a lock on every call, each call finding another instance's
// scratch out of cache (bench/run lanes). The thread_local is a plain pointer: a
// thread_local with a destructor pins the plugin in memory (glibc defers dlclose until
// every such thread exits), and a hot reload must be able to unload the old build. The
// registry that owns the scratch is destroyed when the plugin is unloaded.
// Hidden: a plugin built without recsync_add_plugin (default visibility, GNU unique
// symbols) must still keep its own registry, unloadable with it.
[[gnu::visibility("hidden")]] inline ThreadScratch &thread_scratch() {
    static thread_local ThreadScratch *cached = nullptr;
    if (cached) return *cached;
    struct Registry {
        std::mutex mutex;
        std::unordered_map<std::thread::id, std::unique_ptr<ThreadScratch>> scratch;
    };
    static Registry registry;
    std::lock_guard<std::mutex> lock(registry.mutex);
    auto &slot = registry.scratch[std::this_thread::get_id()];
    if (!slot) slot = std::make_unique<ThreadScratch>();
    cached = slot.get();
    return *slot;
}

struct Instance {
    recsync_host_api host;
    std::unique_ptr<Provider> provider;
};

inline const recsync_host_api &host_of(void *instance) { return static_cast<Instance *>(instance)->host; }
inline Provider &provider_of(void *instance) { return *static_cast<Instance *>(instance)->provider; }

// Run `fn`, converting every exception into a status and an error message.
template <typename Fn>
recsync_status guarded(const recsync_host_api &host, recsync_output *out, Fn &&fn) noexcept {
    auto fail = [&](recsync_status s, const char *msg) {
        if (host.set_error) host.set_error(out, str(msg));
        return s;
    };
    try {
        fn();
        return RECSYNC_OK;
    } catch (const Error &e) {
        // A host older than 1.3 does not know UNAUTHENTICATED: it refuses INVALID_INPUT too.
        if (e.status() == RECSYNC_ERR_UNAUTHENTICATED && RECSYNC_ABI_MINOR_OF(host.abi_version) < 3) return fail(RECSYNC_ERR_INVALID_INPUT, e.what());
        return fail(e.status(), e.what());
    } catch (const json::exception &e) {
        return fail(RECSYNC_ERR_INVALID_INPUT, e.what());
    } catch (const std::exception &e) {
        return fail(RECSYNC_ERR_INTERNAL, e.what());
    } catch (...) {
        return fail(RECSYNC_ERR_INTERNAL, "unknown exception in provider");
    }
}

inline bool has_non_finite(const json &j) {
    if (j.is_number_float()) return !std::isfinite(j.get<double>());
    if (j.is_structured())
        for (const auto &e : j)
            if (has_non_finite(e)) return true;
    return false;
}

// `j` as JSON text in `out` (replaced); false if that text does not read back as `j`
// (NaN and infinities are written as null). With simdjson: recsync/json_text.hpp, several
// times cheaper than dump(), whose per-byte UTF-8 decoding was the largest cost of a
// transform; its copied bytes are then checked, and invalid UTF-8 goes to dump(), which
// refuses it with its own error as before. Without simdjson: dump().
inline bool write_json(std::string &out, const json &j) {
#ifdef RECSYNC_SDK_SIMDJSON
    out.clear();
    json_text::Writer writer(out);
    writer.value(j);
    writer.finish();
    if (simdjson::validate_utf8(out.data(), out.size())) return !writer.wrote_non_finite();
#endif
    out = j.dump();
    return !has_non_finite(j);
}

// parse_response's JSON output {"record": ..., "modified": "..."} (ABI 1.3). The record is
// JSON text already: framed, not parsed again.
inline std::string record_output(const Result &r) {
    std::string text = "{";
    if (!r.record.empty()) text += "\"record\":" + r.record;
    if (!r.modified.empty()) text += std::string(r.record.empty() ? "" : ",") + "\"modified\":" + json(r.modified).dump();
    return text + "}";
}

inline void emit_json(const recsync_host_api &host, recsync_output *out, const json &j) {
    const std::string text = j.dump();
    host.set_json(out, str(text));
}

inline void emit_request(const recsync_host_api &host, recsync_output *out, const Request &r) {
    host.set_request(out, str(r.method), str(r.path), str(r.body));
    for (const auto &h : r.headers) host.add_header(out, str(h.name), str(h.value), h.secret ? RECSYNC_HEADER_SECRET : 0u);
}

// Append-only rule on the reading side: a host built against an older header passes a
// shorter struct; copy what it has into a zeroed struct of ours.
template <typename T>
T sized_copy(const T *in) {
    T out;
    std::memset(&out, 0, sizeof out);
    if (in) std::memcpy(&out, in, std::min<size_t>(in->struct_size, sizeof out));
    return out;
}

inline Call to_call(const recsync_call *in) {
    const recsync_call c = sized_copy(in);
    return Call{static_cast<Action>(c.action), view(c.object), view(c.record_key), view(c.external_id), view(c.payload), view(c.access_token)};
}

inline Response to_response(const recsync_response *in) {
    const recsync_response copy = sized_copy(in);
    const recsync_response *r = &copy;
    Response resp;
    resp.status = r->status;
    resp.body = view(r->body);
    resp.cursor = view(r->cursor);  // zero (empty) from a 1.3 host: sized_copy
    for (size_t i = 0; i < r->header_count; ++i) resp.headers.emplace_back(view(r->headers[i].name), view(r->headers[i].value));
    return resp;
}

#ifdef RECSYNC_SDK_SIMDJSON
// Provider::fast_transform_outbound into scratch.last_text; false (nothing kept) when the
// text is not a JSON object simdjson reads or the provider declines.
inline bool fast_transform(Provider &provider, ThreadScratch &scratch, std::string_view object, std::string_view record) {
    simdjson::dom::element doc;
    simdjson::dom::object fields;
    if (scratch.parser.parse(record.data(), record.size(), true).get(doc) != simdjson::SUCCESS || doc.get_object().get(fields) != simdjson::SUCCESS)
        return false;
    scratch.last_text.clear();
    json_text::Writer writer(scratch.last_text);
    const bool written = provider.fast_transform_outbound(object, fields, writer);
    writer.finish();
    return written;
}
#endif

template <typename P>
struct Trampolines {
#ifdef RECSYNC_SDK_SIMDJSON
    // Whether P overrides the fast paths (the name then belongs to P, not Provider): a
    // provider without them pays no extra parse for trying.
    static constexpr bool kFastTransform = !std::is_same_v<decltype(&P::fast_transform_outbound), decltype(&Provider::fast_transform_outbound)>;
    static constexpr bool kFastValidate = !std::is_same_v<decltype(&P::fast_validate), decltype(&Provider::fast_validate)>;
    static constexpr bool kFastBuild = !std::is_same_v<decltype(&P::fast_build_request), decltype(&Provider::fast_build_request)>;
    static constexpr bool kFastParse = !std::is_same_v<decltype(&P::fast_parse_response), decltype(&Provider::fast_parse_response)>;
    static constexpr size_t kFastBodyBytes = 64 * 1024;
#endif
    static recsync_status create_instance(const recsync_host_api *host, recsync_str config, recsync_output *out, void **instance) noexcept {
        // A table too short for the outputs we call would crash us later: refuse now.
        if (!host || host->struct_size < RECSYNC_HOST_API_MIN_SIZE) return RECSYNC_ERR_INTERNAL;
        const recsync_host_api h = copy_host(host);
        return guarded(h, out, [&] {
            auto inst = std::make_unique<Instance>();
            inst->host = h;
            json cfg = json::object();
            if (config.len) {
                cfg = json::parse(view(config), nullptr, false);
                if (cfg.is_discarded() || !cfg.is_object()) throw ConfigError("the instance configuration is not a JSON object");
            }
            inst->provider = std::make_unique<P>(cfg);
            inst->provider->host_ = &inst->host;
            *instance = inst.release();
        });
    }
    static void destroy_instance(void *instance) noexcept {
        try {
            delete static_cast<Instance *>(instance);
        } catch (...) {
        }
    }
    static recsync_status describe(void *i, recsync_output *out) noexcept {
        return guarded(host_of(i), out, [&] { emit_json(host_of(i), out, provider_of(i).describe()); });
    }
    static recsync_status transform(void *i, recsync_direction d, recsync_str object, recsync_str record, recsync_output *out) noexcept {
        return guarded(host_of(i), out, [&] {
            ThreadScratch &scratch = thread_scratch();
            scratch.has_last = false;
#ifdef RECSYNC_SDK_SIMDJSON
            if (kFastTransform && d == RECSYNC_OUTBOUND && fast_transform(provider_of(i), scratch, view(object), view(record))) {
                host_of(i).set_json(out, str(scratch.last_text));
                return;
            }
#endif
            json result = provider_of(i).transform(static_cast<Direction>(d), view(object), scratch.parse_record(view(record)));
            const bool reads_back = write_json(scratch.last_text, result);
            host_of(i).set_json(out, str(scratch.last_text));
            dispose(scratch.last_doc);
            if (d != RECSYNC_OUTBOUND || !reads_back) return;
            scratch.has_last = true;
            scratch.last_object.assign(view(object));
            scratch.last_doc = std::move(result);
        });
    }
    static recsync_status validate(void *i, recsync_str object, recsync_str payload, recsync_output *out) noexcept {
        return guarded(host_of(i), out, [&] {
            ThreadScratch &scratch = thread_scratch();
            if (scratch.has_last && view(object) == scratch.last_object && view(payload) == scratch.last_text)
                return provider_of(i).validate(view(object), scratch.last_doc);
#ifdef RECSYNC_SDK_SIMDJSON
            simdjson::dom::element doc;
            if (kFastValidate && scratch.parser.parse(payload.ptr, payload.len, true).get(doc) == simdjson::SUCCESS && provider_of(i).fast_validate(view(object), doc))
                return;
#endif
            provider_of(i).validate(view(object), scratch.parse(view(payload)));
        });
    }
    static recsync_status build_request(void *i, const recsync_call *call, recsync_output *out) noexcept {
        return guarded(host_of(i), out, [&] {
            const Call c = to_call(call);
#ifdef RECSYNC_SDK_SIMDJSON
            if constexpr (kFastBuild) {
                ThreadScratch &scratch = thread_scratch();
                simdjson::dom::element doc;
                Request req;
                if (!c.payload.empty() && scratch.parser.parse(c.payload.data(), c.payload.size(), true).get(doc) == simdjson::SUCCESS &&
                    provider_of(i).fast_build_request(c, doc, req))
                    return emit_request(host_of(i), out, req);
            }
#endif
            emit_request(host_of(i), out, provider_of(i).build_request(c));
        });
    }
    static std::vector<Call> to_calls(const recsync_call *const *calls, size_t count) {
        std::vector<Call> out;
        out.reserve(count);
        for (size_t k = 0; k < count; ++k) out.push_back(to_call(calls[k]));
        return out;
    }
    static recsync_status build_batch_request(void *i, const recsync_call *const *calls, size_t count, recsync_output *out) noexcept {
        return guarded(host_of(i), out, [&] { emit_request(host_of(i), out, provider_of(i).build_batch_request(to_calls(calls, count))); });
    }
    static recsync_status parse_batch_response(void *i, const recsync_call *const *calls, size_t count, const recsync_response *resp, recsync_output *out) noexcept {
        return guarded(host_of(i), out, [&] {
            const recsync_host_api &host = host_of(i);
            // A host calls this only at 1.6 or later; one that lacks the item outputs anyway
            // gets the batch's verdict alone (its records then retry singly or together).
            const bool items = host.set_item_result && host.set_item_error && host.set_item_json;
            const BatchResult r = provider_of(i).parse_batch_response(to_calls(calls, count), to_response(resp));
            if (r.batch) {
                if (!r.batch->error.empty()) host.set_error(out, str(r.batch->error));
                host.set_result(out, r.batch->kind, str(r.batch->external_id), r.batch->retry_after_ms);
            }
            for (size_t k = 0; items && k < r.items.size() && k < count; ++k) {
                if (!r.items[k]) continue;
                const Result &item = *r.items[k];
                if (!item.error.empty()) host.set_item_error(out, k, str(item.error));
                if (!item.record.empty() || !item.modified.empty()) host.set_item_json(out, k, str(record_output(item)));
                host.set_item_result(out, k, item.kind, str(item.external_id), item.retry_after_ms, item.status);
            }
            if (host.set_rate_limit)
                for (const auto &l : r.rate_limits) host.set_rate_limit(out, l.limit, l.remaining, l.window_ms, l.reset_after_ms);
        });
    }
    static recsync_status parse_response(void *i, const recsync_call *call, const recsync_response *resp, recsync_output *out) noexcept {
        return guarded(host_of(i), out, [&] {
            const Call c = to_call(call);
            const Response response = to_response(resp);
            Result r;
            bool judged = false;
#ifdef RECSYNC_SDK_SIMDJSON
            if constexpr (kFastParse) {
                ThreadScratch &scratch = thread_scratch();
                simdjson::dom::element doc;
                judged = response.status >= 200 && response.status < 300 && !response.body.empty() && response.body.size() <= kFastBodyBytes &&
                         scratch.parser.parse(response.body.data(), response.body.size(), true).get(doc) == simdjson::SUCCESS &&
                         provider_of(i).fast_parse_response(c, response, doc, r);
            }
#endif
            if (!judged) r = provider_of(i).parse_response(c, response);
            const recsync_host_api &host = host_of(i);
            if (!r.error.empty()) host.set_error(out, str(r.error));
            if ((!r.record.empty() || !r.modified.empty()) && RECSYNC_ABI_MINOR_OF(host.abi_version) >= 3) host.set_json(out, str(record_output(r)));
            host.set_result(out, r.kind, str(r.external_id), r.retry_after_ms);
            // copy_host zeroed what a 1.0 host's shorter table lacks; a host may also leave
            // the member NULL. Either way the reports are dropped, never called through NULL.
            if (host.set_rate_limit)
                for (const auto &l : r.rate_limits) host.set_rate_limit(out, l.limit, l.remaining, l.window_ms, l.reset_after_ms);
        });
    }
    static recsync_status parse_webhook(void *i, const recsync_webhook *in, recsync_output *out) noexcept {
        return guarded(host_of(i), out, [&] {
            const recsync_webhook copy = sized_copy(in);
            const recsync_webhook *w = &copy;
            Request req{std::string(view(w->method)), std::string(view(w->path)), std::string(view(w->body)), {}};
            for (size_t k = 0; k < w->header_count; ++k) req.headers.push_back({std::string(view(w->headers[k].name)), std::string(view(w->headers[k].value)), false});
            emit_json(host_of(i), out, provider_of(i).parse_webhook(req));
        });
    }
    static recsync_status build_poll_request(void *i, recsync_str object, recsync_str cursor, recsync_str token, recsync_output *out) noexcept {
        return guarded(host_of(i), out, [&] { emit_request(host_of(i), out, provider_of(i).build_poll_request(view(object), view(cursor), view(token))); });
    }
    static recsync_status parse_poll_response(void *i, recsync_str object, const recsync_response *resp, recsync_output *out) noexcept {
        return guarded(host_of(i), out, [&] { emit_json(host_of(i), out, provider_of(i).parse_poll_response(view(object), to_response(resp))); });
    }
    static recsync_status build_auth_request(void *i, recsync_output *out) noexcept {
        return guarded(host_of(i), out, [&] { emit_request(host_of(i), out, provider_of(i).build_auth_request()); });
    }
    static recsync_status parse_auth_response(void *i, const recsync_response *resp, recsync_output *out) noexcept {
        return guarded(host_of(i), out, [&] { emit_json(host_of(i), out, provider_of(i).parse_auth_response(to_response(resp))); });
    }
};

template <typename P>
const recsync_provider *entry(const char *id, const char *version, uint64_t caps, uint32_t host_min, uint32_t host_max) noexcept {
    // Pick the highest version both sides speak: our own, or an older minor of our major
    // (every SDK call checks struct_size before reading members a host may lack).
    const uint32_t abi = std::min<uint32_t>(RECSYNC_ABI_VERSION, host_max);
    if (RECSYNC_ABI_MAJOR_OF(abi) != RECSYNC_ABI_MAJOR || abi < host_min) return nullptr;
    using T = Trampolines<P>;
    static recsync_provider descriptor = {
        sizeof(recsync_provider),
        RECSYNC_ABI_VERSION,
        id,
        version,
        caps,
        &T::create_instance,
        &T::destroy_instance,
        &T::describe,
        &T::transform,
        &T::validate,
        &T::build_request,
        &T::parse_response,
        (caps & RECSYNC_CAP_WEBHOOKS) ? &T::parse_webhook : nullptr,
        (caps & RECSYNC_CAP_POLLING) ? &T::build_poll_request : nullptr,
        (caps & RECSYNC_CAP_POLLING) ? &T::parse_poll_response : nullptr,
        (caps & RECSYNC_CAP_AUTH_REFRESH) ? &T::build_auth_request : nullptr,
        (caps & RECSYNC_CAP_AUTH_REFRESH) ? &T::parse_auth_response : nullptr,
        (caps & RECSYNC_CAP_BATCH) ? &T::build_batch_request : nullptr,
        (caps & RECSYNC_CAP_BATCH) ? &T::parse_batch_response : nullptr,
    };
    descriptor.abi_version = abi;
    return &descriptor;
}

}  // namespace detail
}  // namespace recsync::sdk

// Define the plugin's one exported symbol for provider class CLASS.
#define RECSYNC_PROVIDER(CLASS, ID, VERSION, CAPS)                                                         \
    extern "C" __attribute__((visibility("default"))) const recsync_provider *recsync_provider_entry(       \
        uint32_t host_min_abi, uint32_t host_max_abi) {                                                     \
        return ::recsync::sdk::detail::entry<CLASS>(ID, VERSION, CAPS, host_min_abi, host_max_abi);          \
    }
