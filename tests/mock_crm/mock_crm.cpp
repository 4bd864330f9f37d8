#include "mock_crm.hpp"
#include "mock_text.hpp"
#include "util/clock.hpp"

#include "server/http_listener.hpp"
#include "webhook_sender.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace recsync::mock {

using json = nlohmann::json;
using server::HttpRequest;
using server::HttpResponse;

namespace {

constexpr std::string_view kObjectsPrefix = "/crm/v3/objects/";
constexpr std::string_view kAdminPrefix = "/_mock/";
// Server-maintained properties: set on every create/update, never taken from the client.
constexpr std::string_view kCreateDate = "createdate";
constexpr std::string_view kModifiedDate = "lastmodifieddate";     // contacts'
constexpr std::string_view kHsModifiedDate = "hs_lastmodifieddate";  // every other object's
constexpr std::string_view kObjectId = "hs_object_id";
// HubSpot's search pages end at the 10,000th result of a query.
constexpr int64_t kMaxSearchResults = 10'000;

// HubSpot treats emails case-insensitively, so the duplicate index does too.
std::string lower_ascii(std::string_view s) {
    std::string out(s);
    for (auto &c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

std::optional<uint64_t> parse_id(std::string_view s) {
    uint64_t v = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

std::string_view category_for(int status) {
    switch (status) {
        case 400: return "VALIDATION_ERROR";
        case 401: return "INVALID_AUTHENTICATION";
        case 403: return "MISSING_SCOPES";
        case 404: return "OBJECT_NOT_FOUND";
        case 405: return "METHOD_NOT_ALLOWED";
        case 409: return "CONFLICT";
        case 429: return "RATE_LIMITS";
        default: return status >= 500 ? "INTERNAL_ERROR" : "ERROR";
    }
}

// HubSpot's error shape (components/schemas/Error); correlationId is a UUID there.
std::string correlation_id() {
    static std::atomic<uint64_t> seq{0};
    char buf[48];
    std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012llx", static_cast<unsigned long long>(++seq & 0xffffffffffffULL));
    return buf;
}

HttpResponse hs_error(int status, std::string_view message, std::string_view category = {}) {
    json j = {{"status", "error"},
              {"message", message},
              {"correlationId", correlation_id()},
              {"category", category.empty() ? category_for(status) : category}};
    return HttpResponse::json(status, j.dump());
}

// Retry-After as delay-seconds, or as the IMF-fixdate (RFC 7231 7.1.1.1) that many seconds
// from now, rounded up to a whole second so that the wait it asks for is never shorter.
// Written by hand: strftime's %a and %b follow the locale.
std::string retry_after_value(int seconds, bool http_date) {
    if (!http_date) return std::to_string(seconds);
    static constexpr const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const time_t at = static_cast<time_t>((util::epoch_ms() + 999) / 1000 + seconds);
    tm t{};
    gmtime_r(&at, &t);
    char buf[40];
    std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[t.tm_wday], t.tm_mday, months[t.tm_mon], t.tm_year + 1900, t.tm_hour, t.tm_min,
                  t.tm_sec);
    return buf;
}

void add_retry_after(HttpResponse &r, int seconds, bool http_date) {
    if (seconds >= 0) r.headers.emplace_back("Retry-After", retry_after_value(seconds, http_date));
}

// A refusal for the rate: HubSpot's 429, or a 503 as an overloaded server or gateway sends.
HttpResponse rate_limited(int status, int retry_after_seconds, bool http_date) {
    auto r = status == 429 ? hs_error(429, "You have reached your secondly limit.", "RATE_LIMITS")
                           : hs_error(status, "The service is temporarily overloaded; retry later.");
    add_retry_after(r, retry_after_seconds, http_date);
    return r;
}

void check_throttle_status(int status) {
    if (status != 429 && status != 503) throw std::invalid_argument("throttle status must be 429 or 503, got " + std::to_string(status));
}

HttpResponse not_found() { return hs_error(404, "resource not found", "OBJECT_NOT_FOUND"); }

HttpResponse conflict(uint64_t existing) {
    return hs_error(409, "Contact already exists. Existing ID: " + std::to_string(existing), "CONFLICT");
}

// Reads body["properties"] as a string->string map; returns the problem, or "" when valid.
std::string read_properties(const json &body, std::map<std::string, std::string> &out, const std::string &where = {}) {
    const auto it = body.find("properties");
    if (it == body.end()) return "Missing required field \"" + where + "properties\"";
    if (!it->is_object()) return "Field \"" + where + "properties\" must be an object of strings, got " + it->type_name();
    for (const auto &[k, v] : it->items()) {
        if (!v.is_string())
            return "Property \"" + k + "\" in \"" + where + "properties\" must be a string, got " + std::string(v.type_name());
        out.emplace(k, v.get<std::string>());
    }
    return {};
}

void check_status(int status) {
    if (status < 100 || status > 599) throw std::invalid_argument("fault status must be 100..599, got " + std::to_string(status));
}

struct StoredRecord {
    std::map<std::string, std::string> props;
    std::string created_at;
    std::string updated_at;
    int64_t created_ms = 0;   // the same, for search filters and sorts
    int64_t modified_ms = 0;
};

struct ObjectStore {
    std::string name;                                     // "contacts": what its webhooks name
    // The property that holds the modification date: HubSpot names it lastmodifieddate
    // on contacts and hs_lastmodifieddate on the other objects.
    std::string_view modified_property() const { return name == "contacts" ? kModifiedDate : kHsModifiedDate; }
    std::map<uint64_t, StoredRecord> live;                // ordered: listings come out by id
    // Deleted records, as HubSpot keeps them for 90 days: listed with ?archived=true.
    struct Archived {
        StoredRecord rec;
        std::string archived_at;
    };
    std::map<uint64_t, Archived> archived;
    std::unordered_map<std::string, uint64_t> by_email;  // lower-cased email -> id
};

json record_json(uint64_t id, const StoredRecord &r) {
    return json{{"id", std::to_string(id)},
                {"properties", r.props},
                {"createdAt", r.created_at},
                {"updatedAt", r.updated_at},
                {"archived", false}};
}

// What the limiter and fault injection decided for one request.
struct GateVerdict {
    enum Kind { pass, limited, injected } kind = pass;
    int status = 0;
    int retry_after = -1;
    bool retry_after_http_date = false;
    // The bucket as HubSpot-style headers (set when a rate limit is on).
    bool has_bucket = false;
    int64_t bucket_max = 0, bucket_remaining = 0, bucket_interval_ms = 0;
};

// X-HubSpot-RateLimit-Max / -Remaining / -Interval-Milliseconds for a token bucket: its
// capacity, the whole tokens left after this request, and how long an empty bucket takes
// to fill (after that long without requests every token is back).
void add_rate_headers(HttpResponse &r, const GateVerdict &v) {
    if (!v.has_bucket) return;
    r.headers.emplace_back("X-HubSpot-RateLimit-Max", std::to_string(v.bucket_max));
    r.headers.emplace_back("X-HubSpot-RateLimit-Remaining", std::to_string(v.bucket_remaining));
    r.headers.emplace_back("X-HubSpot-RateLimit-Interval-Milliseconds", std::to_string(v.bucket_interval_ms));
}

// Answers held for a fixed delay by one thread, so a thousand calls waiting hold no I/O
// thread each. The delay is the same for all, so the answers are due in arrival order.
class DelayedAnswers {
public:
    explicit DelayedAnswers(std::chrono::milliseconds delay) : delay_(delay), thread_([this] { run(); }) {}
    ~DelayedAnswers() { stop(); }
    void add(server::Respond respond, HttpResponse response) {
        std::lock_guard lock(mu_);
        due_.push_back({std::chrono::steady_clock::now() + delay_, std::move(respond), std::move(response)});
        if (due_.size() == 1) cv_.notify_one();
    }
    // Drops what is still waiting (the listener has stopped: it would not be sent).
    void stop() {
        {
            std::lock_guard lock(mu_);
            if (stopping_) return;
            stopping_ = true;
            due_.clear();
        }
        cv_.notify_one();
        thread_.join();
    }

private:
    struct Due {
        std::chrono::steady_clock::time_point at;
        server::Respond respond;
        HttpResponse response;
    };
    void run() {
        std::unique_lock lock(mu_);
        while (!stopping_) {
            if (due_.empty()) {
                cv_.wait(lock);
                continue;
            }
            if (std::chrono::steady_clock::now() < due_.front().at) {
                cv_.wait_until(lock, due_.front().at);
                continue;
            }
            Due d = std::move(due_.front());
            due_.pop_front();
            lock.unlock();
            d.respond(std::move(d.response));
            lock.lock();
        }
    }
    const std::chrono::milliseconds delay_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Due> due_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace

struct MockCrm::Impl {
    explicit Impl(MockCrmOptions o) : opts(std::move(o)) {
        if (opts.threads < 1) throw std::invalid_argument("mock CRM threads must be >= 1");
        if (opts.rate_per_second < 0 || opts.rate_burst < 0) throw std::invalid_argument("mock CRM rate limit must be >= 0");
        if (opts.latency_ms < 0) throw std::invalid_argument("mock CRM latency must be >= 0");
        if (opts.delay_ms < 0) throw std::invalid_argument("mock CRM delay must be >= 0");
        check_throttle_status(opts.throttle_status);
        rng.seed(opts.seed ? opts.seed : std::random_device{}());
        reset_locked();
    }

    const MockCrmOptions opts;

    mutable std::mutex mu;  // guards everything below up to the atomics
    std::map<std::string, ObjectStore, std::less<>> objects;
    uint64_t next_id = 1;
    Counters counters;
    std::deque<LoggedRequest> log;
    uint64_t log_seq = 0;
    FaultState faults;
    double tokens = 0;
    std::chrono::steady_clock::time_point refilled_at;
    std::map<std::string, std::chrono::steady_clock::time_point> issued;  // OAuth token -> expiry
    std::mt19937_64 rng;

    // Read on every request without the lock.
    std::atomic<int> latency_ms{0};
    std::atomic<bool> log_enabled{true};

    WebhookSender webhooks;  // every change made through the API, to the subscriber
    std::optional<int64_t> fixed_modified_ms;  // under mu: every write is stamped this (set_fixed_modified)
    int64_t search_lag_ms = 0;                 // under mu: search does not see writes younger than this
    std::map<std::pair<std::string, uint64_t>, int64_t, std::less<>> hidden_until_ms;  // under mu: hide_from_search
    int64_t stamp_locked() const { return fixed_modified_ms ? *fixed_modified_ms : util::epoch_ms(); }
    // A write's stamp for a record last stamped `previous`: never the same twice (two
    // writes within a millisecond would look alike to a client comparing stamps), unless
    // set_fixed_modified says so.
    int64_t next_stamp_locked(int64_t previous) const { return fixed_modified_ms ? *fixed_modified_ms : std::max(util::epoch_ms(), previous + 1); }
    uint64_t next_event_id = 1;  // under mu

    // HubSpot's webhook event for a change of record `id` (caller holds mu).
    void emit_locked(const ObjectStore &store, uint64_t id, const char *kind, const std::string &property = {}, const std::string &value = {}) {
        const std::string &o = store.name;
        const std::string singular = o == "contacts" ? "contact" : o == "companies" ? "company" : o == "deals" ? "deal" : o;
        json e = {{"eventId", next_event_id++}, {"subscriptionId", 1}, {"portalId", 1}, {"appId", 1}, {"occurredAt", util::epoch_ms()},
                  {"subscriptionType", singular + "." + kind}, {"attemptNumber", 0}, {"objectId", id}, {"changeSource", "API"}};
        if (!property.empty()) {
            e["propertyName"] = property;
            e["propertyValue"] = value;
        }
        webhooks.emit(std::move(e));
    }

    std::mutex life_mu;  // start/stop
    std::unique_ptr<server::HttpListener> listener;
    std::unique_ptr<DelayedAnswers> delayed;  // with opts.delay_ms
    std::atomic<uint16_t> port{0};

    static double effective_burst(double per_second, double burst) { return burst > 0 ? std::max(1.0, burst) : std::max(1.0, per_second); }

    // Caller holds mu (or is the constructor).
    void reset_locked() {
        objects.clear();
        counters = {};
        log.clear();
        faults = {};
        faults.latency_ms = opts.latency_ms;
        faults.rate_per_second = opts.rate_per_second;
        faults.rate_burst = effective_burst(opts.rate_per_second, opts.rate_burst);
        faults.throttle_status = opts.throttle_status;
        faults.retry_after_http_date = opts.retry_after_http_date;
        tokens = faults.rate_burst;
        refilled_at = std::chrono::steady_clock::now();
        latency_ms = opts.latency_ms;
        log_enabled = opts.log_requests;
    }

    void set_rate_locked(double per_second, double burst) {
        faults.rate_per_second = per_second;
        faults.rate_burst = effective_burst(per_second, burst);
        tokens = faults.rate_burst;
        refilled_at = std::chrono::steady_clock::now();
    }

    // A connection fault for this request: 0 none, -1 reset now, else hang that many ms.
    int connection_fault() {
        std::lock_guard lock(mu);
        const auto roll = [&](double ratio) { return ratio > 0 && std::uniform_real_distribution<double>(0.0, 1.0)(rng) < ratio; };
        if (faults.reset_next > 0 || roll(faults.reset_ratio)) {
            if (faults.reset_next > 0) --faults.reset_next;
            ++counters.resets;
            return -1;
        }
        if (faults.hang_next > 0 || roll(faults.hang_ratio)) {
            if (faults.hang_next > 0) --faults.hang_next;
            ++counters.hangs;
            return std::max(1, faults.hang_ms);
        }
        return 0;
    }

    GateVerdict gate() {
        std::lock_guard lock(mu);
        GateVerdict bucket;
        if (faults.rate_per_second > 0) {
            const auto now = std::chrono::steady_clock::now();
            const double elapsed = std::chrono::duration<double>(now - refilled_at).count();
            tokens = std::min(faults.rate_burst, tokens + elapsed * faults.rate_per_second);
            refilled_at = now;
            bucket.has_bucket = true;
            bucket.bucket_max = static_cast<int64_t>(faults.rate_burst);
            bucket.bucket_interval_ms = static_cast<int64_t>(std::ceil(faults.rate_burst / faults.rate_per_second * 1000));
            if (tokens < 1.0) {
                ++counters.rejected_429;
                const double wait = (1.0 - tokens) / faults.rate_per_second;
                GateVerdict v = bucket;
                v.kind = GateVerdict::limited;
                v.status = faults.throttle_status;
                v.retry_after = std::max(1, static_cast<int>(std::ceil(wait)));
                v.retry_after_http_date = faults.retry_after_http_date;
                return v;
            }
            tokens -= 1.0;
            bucket.bucket_remaining = static_cast<int64_t>(std::floor(tokens));
        }
        const auto injected = [&](int status, int retry_after) {
            ++counters.injected_failures;
            GateVerdict v = bucket;
            v.kind = GateVerdict::injected;
            v.status = status;
            v.retry_after = retry_after;
            v.retry_after_http_date = faults.retry_after_http_date;
            return v;
        };
        if (faults.fail_next > 0) {
            --faults.fail_next;
            return injected(faults.fail_next_status, faults.fail_next_retry_after);
        }
        if (faults.fail_ratio > 0 && std::uniform_real_distribution<double>(0.0, 1.0)(rng) < faults.fail_ratio)
            return injected(faults.fail_ratio_status, faults.fail_ratio_retry_after);
        return bucket;
    }

    static HttpResponse injected_response(const GateVerdict &v) {
        if (v.status == 429) return rate_limited(429, v.retry_after, v.retry_after_http_date);
        auto r = hs_error(v.status, "Injected failure (mock CRM)");
        add_retry_after(r, v.retry_after, v.retry_after_http_date);
        return r;
    }

    // Counters by status and the request log, once the answer is known.
    void finish(const HttpRequest &req, int status, bool injected, int64_t at) {
        const bool keep = log_enabled.load(std::memory_order_relaxed);
        LoggedRequest entry;
        if (keep) entry = LoggedRequest{0, at, req.method, req.target, req.body, status};
        std::lock_guard lock(mu);
        ++counters.requests;
        if (!injected) {
            switch (status) {
                case 400: ++counters.bad_requests; break;
                case 401: ++counters.unauthorized; break;
                case 404: ++counters.not_found; break;
                case 409: ++counters.conflicts; break;
                default: break;
            }
        }
        if (keep) {
            entry.seq = ++log_seq;
            log.push_back(std::move(entry));
            while (log.size() > opts.max_log_entries) {
                log.pop_front();
                ++counters.log_dropped;
            }
        }
    }

    std::optional<HttpResponse> check_auth(const HttpRequest &req) {
        if (opts.token.empty() && opts.oauth_client_id.empty()) return std::nullopt;
        const auto h = req.header("Authorization");
        if (h.empty()) return hs_error(401, "Authentication credentials not found.", "INVALID_AUTHENTICATION");
        constexpr std::string_view scheme = "Bearer ";
        if (h.size() < scheme.size() || lower_ascii(h.substr(0, scheme.size())) != "bearer ")
            return hs_error(401, "The access token provided is invalid.", "INVALID_AUTHENTICATION");
        const auto presented = h.substr(scheme.size());
        if (!opts.token.empty() && presented == opts.token) return std::nullopt;
        if (!opts.oauth_client_id.empty()) {
            std::lock_guard lock(mu);
            auto it = issued.find(std::string(presented));
            if (it != issued.end()) {
                if (std::chrono::steady_clock::now() < it->second) return std::nullopt;
                return hs_error(401, "The OAuth token used to make this call expired.", "EXPIRED_AUTHENTICATION");
            }
        }
        return hs_error(401, "The access token provided is invalid.", "INVALID_AUTHENTICATION");
    }

    // POST /oauth/v1/token (client credentials). Never rate-limited.
    HttpResponse oauth_token(const HttpRequest &req) {
        if (req.method != "POST") return hs_error(405, "use POST");
        std::map<std::string, std::string> form;
        if (const auto j = nlohmann::json::parse(req.body, nullptr, false); j.is_object()) {
            for (const auto &[k, v] : j.items())
                if (v.is_string()) form[k] = v.get<std::string>();
        } else {
            std::string_view rest = req.body;
            while (!rest.empty()) {
                const auto amp = rest.find('&');
                const auto pair = rest.substr(0, amp);
                const auto eq = pair.find('=');
                if (eq != std::string_view::npos) form[std::string(pair.substr(0, eq))] = std::string(pair.substr(eq + 1));
                if (amp == std::string_view::npos) break;
                rest = rest.substr(amp + 1);
            }
        }
        if (form["grant_type"] != "client_credentials") return hs_error(400, "grant_type must be client_credentials", "BAD_GRANT_TYPE");
        if (opts.oauth_client_id.empty() || form["client_id"] != opts.oauth_client_id || form["client_secret"] != opts.oauth_client_secret)
            return hs_error(401, "invalid client credentials", "BAD_CLIENT_ID");
        std::lock_guard lock(mu);
        const std::string token = "mock-oauth-" + std::to_string(++counters.tokens_issued) + "-" + std::to_string(rng());
        issued[token] = std::chrono::steady_clock::now() + std::chrono::seconds(opts.oauth_token_ttl_seconds);
        HttpResponse r;
        r.status = 200;
        r.body = nlohmann::json{{"access_token", token}, {"token_type", "bearer"}, {"expires_in", opts.oauth_token_ttl_seconds}}.dump();
        return r;
    }

    HttpResponse api(const HttpRequest &req, std::string_view path, bool &injected) {
        if (const int lat = latency_ms.load(std::memory_order_relaxed); lat > 0) std::this_thread::sleep_for(std::chrono::milliseconds(lat));
        if (const int fault = connection_fault(); fault != 0) {
            injected = true;
            HttpResponse r;
            r.status = 0;  // logged as "no answer"
            r.drop_connection = true;
            r.drop_after_ms = fault > 0 ? fault : 0;
            return r;
        }
        if (auto denied = check_auth(req)) return std::move(*denied);
        const auto v = gate();
        if (v.kind != GateVerdict::pass) {
            injected = v.kind == GateVerdict::injected;
            auto r = v.kind == GateVerdict::limited ? rate_limited(v.status, v.retry_after, v.retry_after_http_date) : injected_response(v);
            add_rate_headers(r, v);
            return r;
        }
        auto r = route(req, path);
        if (answer_lost()) {
            injected = true;
            r = HttpResponse{};
            r.status = 0;  // logged as "no answer"; the change above was made
            r.drop_connection = true;
            return r;
        }
        add_rate_headers(r, v);
        return r;
    }

    bool answer_lost() {
        std::lock_guard lock(mu);
        if (faults.lose_answer_next > 0 || (faults.lose_answer_ratio > 0 && std::uniform_real_distribution<double>(0.0, 1.0)(rng) < faults.lose_answer_ratio)) {
            if (faults.lose_answer_next > 0) --faults.lose_answer_next;
            ++counters.lost_answers;
            return true;
        }
        return false;
    }

    HttpResponse route(const HttpRequest &req, std::string_view path) {
        if (!path.starts_with(kObjectsPrefix)) return hs_error(404, "No route for " + req.method + " " + std::string(path));
        // Split "{object}[/{id}|/batch/upsert]" without allocating.
        std::string_view segs[4];
        size_t n = 0;
        std::string_view rest = path.substr(kObjectsPrefix.size());
        while (n < 4) {
            const auto slash = rest.find('/');
            segs[n++] = rest.substr(0, slash);
            if (slash == std::string_view::npos) break;
            rest = rest.substr(slash + 1);
            if (n == 4) return hs_error(404, "No route for " + req.method + " " + std::string(path));
        }
        for (size_t i = 0; i < n; ++i)
            if (segs[i].empty()) return hs_error(404, "No route for " + req.method + " " + std::string(path));
        const std::string_view object = segs[0];
        const std::string &m = req.method;
        if (n == 1) {
            if (m == "POST") return create(object, req.body);
            if (m == "GET" && req.query_param("archived") == "true") return list_archived(object, req);
            if (m == "GET") return hs_error(404, "Listing live records is not implemented by the mock CRM (only ?archived=true); use GET /_mock/records");
        } else if (n == 2 && segs[1] == "search") {
            if (m == "POST") return search(object, req.body);
        } else if (n == 2) {
            if (m == "GET") return get(object, segs[1], req);
            if (m == "PATCH") return patch(object, segs[1], req);
            if (m == "DELETE") return remove(object, segs[1]);
        } else if (n == 3 && segs[1] == "batch") {
            if (m != "POST") return hs_error(405, "Method " + m + " not allowed on " + std::string(path));
            if (segs[2] == "upsert") return upsert(object, req.body);
            if (segs[2] == "create") return batch_create(object, req.body);
            if (segs[2] == "update") return batch_update(object, req.body);
            if (segs[2] == "archive") return batch_archive(object, req.body);
            if (segs[2] == "read") return batch_read(object, req.body);
            return hs_error(404, "No route for " + m + " " + std::string(path) + " (not implemented by the mock CRM)");
        } else {
            return hs_error(404, "No route for " + m + " " + std::string(path) + " (not implemented by the mock CRM)");
        }
        return hs_error(405, "Method " + m + " not allowed on " + std::string(path));
    }

    static std::optional<json> parse_object(const std::string &body, std::string &problem) {
        json j = json::parse(body, nullptr, false);
        if (j.is_discarded()) {
            problem = "Invalid input JSON: the request body is not valid JSON";
            return std::nullopt;
        }
        if (!j.is_object()) {
            problem = std::string("Invalid input JSON: expected an object, got ") + j.type_name();
            return std::nullopt;
        }
        return j;
    }

    // Finds a live record by id, or by a unique property when idProperty is given. Caller holds mu.
    static std::optional<uint64_t> find_locked(const ObjectStore &store, std::string_view id_property, const std::string &id) {
        if (id_property.empty() || id_property == kObjectId) {
            const auto v = parse_id(id);
            if (v && store.live.count(*v)) return v;
            return std::nullopt;
        }
        if (id_property == "email") {
            const auto it = store.by_email.find(lower_ascii(id));
            if (it == store.by_email.end()) return std::nullopt;
            return it->second;
        }
        for (const auto &[rid, rec] : store.live) {  // unindexed property: rare, a scan is fine
            const auto p = rec.props.find(std::string(id_property));
            if (p != rec.props.end() && p->second == id) return rid;
        }
        return std::nullopt;
    }

    // The live record holding `email` (case-insensitive) other than `self`, if any. Caller holds mu.
    static std::optional<uint64_t> email_owner_locked(const ObjectStore &store, const std::string &email, uint64_t self = 0) {
        if (email.empty()) return std::nullopt;
        const auto it = store.by_email.find(lower_ascii(email));
        if (it == store.by_email.end() || it->second == self) return std::nullopt;
        return it->second;
    }

    // Inserts a new record whose email is known to be free. Caller holds mu.
    std::pair<uint64_t, StoredRecord *> insert_locked(ObjectStore &store, std::map<std::string, std::string> props) {
        const uint64_t id = next_id++;
        const int64_t at = stamp_locked();
        const auto ts = utc_ms_text(at);
        props[std::string(kCreateDate)] = ts;
        props[std::string(store.modified_property())] = ts;
        props[std::string(kObjectId)] = std::to_string(id);
        auto &rec = store.live[id];
        rec.props = std::move(props);
        rec.created_at = ts;
        rec.updated_at = ts;
        rec.created_ms = rec.modified_ms = at;
        if (const auto e = rec.props.find("email"); e != rec.props.end() && !e->second.empty()) store.by_email[lower_ascii(e->second)] = id;
        ++counters.created;
        emit_locked(store, id, "creation");
        return {id, &rec};
    }

    // Merges `props` into record `id` (email already checked free). Caller holds mu.
    void update_locked(ObjectStore &store, uint64_t id, StoredRecord &rec, const std::map<std::string, std::string> &props) {
        for (const auto &[k, v] : props) {
            if (k == kCreateDate || k == kModifiedDate || k == kHsModifiedDate || k == kObjectId) continue;  // read-only
            if (const auto old = rec.props.find(k); old == rec.props.end() ? !v.empty() : old->second != v) emit_locked(store, id, "propertyChange", k, v);
            if (k == "email") {
                const auto old = rec.props.find("email");
                if (old != rec.props.end() && !old->second.empty()) store.by_email.erase(lower_ascii(old->second));
                if (!v.empty()) store.by_email[lower_ascii(v)] = id;
            }
            rec.props[k] = v;  // "" clears, as in HubSpot
        }
        rec.modified_ms = next_stamp_locked(rec.modified_ms);
        rec.updated_at = utc_ms_text(rec.modified_ms);
        rec.props[std::string(store.modified_property())] = rec.updated_at;
        ++counters.updated;
    }

    static std::string email_of(const std::map<std::string, std::string> &props) {
        const auto it = props.find("email");
        return it == props.end() ? std::string() : it->second;
    }

    HttpResponse create(std::string_view object, const std::string &body) {
        std::string problem;
        const auto j = parse_object(body, problem);
        if (!j) return hs_error(400, problem);
        std::map<std::string, std::string> props;
        if (problem = read_properties(*j, props); !problem.empty()) return hs_error(400, problem);
        const auto assoc = j->find("associations");
        if (assoc == j->end()) return hs_error(400, "Missing required field \"associations\"");
        if (!assoc->is_array()) return hs_error(400, std::string("Field \"associations\" must be an array, got ") + assoc->type_name());
        const std::string email = email_of(props);
        uint64_t id = 0;
        StoredRecord copy;
        {
            std::lock_guard lock(mu);
            auto &store = objects.try_emplace(std::string(object)).first->second;
            store.name = object;
            if (const auto owner = email_owner_locked(store, email)) {
                ++counters.duplicates;
                return conflict(*owner);
            }
            const auto [new_id, rec] = insert_locked(store, std::move(props));
            id = new_id;
            copy = *rec;
        }
        return HttpResponse::json(201, record_json(id, copy).dump());
    }

    // PublicObjectSearchRequest as HubSpot answers it, the parts a client pages with:
    // filterGroups (OR) of filters (AND) with EQ, NEQ, GT, GTE, LT, LTE (createdate,
    // (hs_)lastmodifieddate and hs_object_id compare as numbers, dates in epoch ms, as HubSpot
    // takes them; other properties as text), one sort (HubSpot allows one; ties by id),
    // limit (at most 200) and after (an offset; a page past the 10,000th result is a 400).
    // Unlike HubSpot's index it sees every write at once, unless set_search_lag says
    // otherwise.
    HttpResponse search(std::string_view object, const std::string &body) {
        std::string problem;
        const auto j = parse_object(body, problem);
        if (!j) return hs_error(400, problem);
        struct Filter {
            std::string property, op, value;
        };
        std::vector<std::vector<Filter>> groups;
        if (const auto fg = j->find("filterGroups"); fg != j->end()) {
            if (!fg->is_array()) return hs_error(400, "Field \"filterGroups\" must be an array");
            for (const auto &g : *fg) {
                const auto filters = g.is_object() ? g.find("filters") : g.end();
                if (!g.is_object() || filters == g.end() || !filters->is_array()) return hs_error(400, "Each filter group needs a \"filters\" array");
                auto &group = groups.emplace_back();
                for (const auto &f : *filters) {
                    if (!f.is_object() || !f.contains("propertyName") || !f["propertyName"].is_string())
                        return hs_error(400, "Each filter needs a string \"propertyName\"");
                    const std::string op = f.value("operator", "");
                    if (op != "EQ" && op != "NEQ" && op != "GT" && op != "GTE" && op != "LT" && op != "LTE")
                        return hs_error(400, "Filter operator \"" + op + "\" is not implemented by the mock CRM (EQ, NEQ, GT, GTE, LT, LTE)");
                    const auto v = f.find("value");
                    if (v == f.end() || !(v->is_string() || v->is_number_integer())) return hs_error(400, "A filter needs a \"value\" (a string or an integer)");
                    group.push_back({f["propertyName"].get<std::string>(), op, v->is_string() ? v->get<std::string>() : v->dump()});
                }
            }
        }
        std::string sort_by;
        bool descending = false;
        if (const auto sorts = j->find("sorts"); sorts != j->end()) {
            if (!sorts->is_array()) return hs_error(400, "Field \"sorts\" must be an array");
            if (sorts->size() > 1) return hs_error(400, "Only one sort is allowed");
            if (sorts->size() == 1) {
                const auto &s = (*sorts)[0];
                if (!s.is_object() || !s.contains("propertyName") || !s["propertyName"].is_string()) return hs_error(400, "A sort needs a string \"propertyName\"");
                sort_by = s["propertyName"].get<std::string>();
                const std::string dir = s.value("direction", "ASCENDING");
                if (dir != "ASCENDING" && dir != "DESCENDING") return hs_error(400, "Sort direction must be ASCENDING or DESCENDING");
                descending = dir == "DESCENDING";
            }
        }
        const auto limit_it = j->find("limit");
        const int64_t limit = limit_it != j->end() && limit_it->is_number_integer() ? limit_it->get<int64_t>() : 10;
        if (limit < 0 || limit > 200) return hs_error(400, "Field \"limit\" must be between 0 and 200");
        int64_t after = 0;
        if (const auto a = j->find("after"); a != j->end() && !a->is_null()) {
            const std::string text = a->is_string() ? a->get<std::string>() : a->dump();
            if (!text.empty() && (std::from_chars(text.data(), text.data() + text.size(), after).ec != std::errc() || after < 0))
                return hs_error(400, "Field \"after\" is not a paging token this search gave");
        }
        if (after + limit > kMaxSearchResults)
            return hs_error(400, "Search results are limited to " + std::to_string(kMaxSearchResults) + ": page from a narrower filter instead");
        struct Hit {
            uint64_t id;
            const StoredRecord *rec;
        };
        json results = json::array();
        size_t total = 0;
        {
            std::lock_guard lock(mu);
            const int64_t visible_before = util::epoch_ms() - search_lag_ms;
            std::vector<Hit> hits;
            const auto store = objects.find(object);
            if (store != objects.end()) {
                for (const auto &[rid, rec] : store->second.live) {
                    if (search_lag_ms > 0 && rec.modified_ms > visible_before) continue;  // not indexed yet
                    if (!hidden_until_ms.empty()) {
                        const auto h = hidden_until_ms.find(std::make_pair(std::string(object), rid));
                        if (h != hidden_until_ms.end() && h->second > util::epoch_ms()) continue;
                    }
                    const auto matches = [&](const std::vector<Filter> &g) {
                        return std::all_of(g.begin(), g.end(), [&](const Filter &f) { return filter_matches(rid, rec, f.property, f.op, f.value); });
                    };
                    if (!groups.empty() && std::none_of(groups.begin(), groups.end(), matches)) continue;
                    hits.push_back({rid, &rec});
                }
            }
            if (!sort_by.empty())
                std::stable_sort(hits.begin(), hits.end(), [&](const Hit &a, const Hit &b) {
                    const int c = compare_property(a.id, *a.rec, b.id, *b.rec, sort_by);
                    return descending ? c > 0 : c < 0;
                });
            total = hits.size();
            for (size_t k = static_cast<size_t>(after); k < hits.size() && k < static_cast<size_t>(after + limit); ++k)
                results.push_back(record_json(hits[k].id, *hits[k].rec));
        }
        json out = {{"total", total}, {"results", std::move(results)}};
        if (static_cast<size_t>(after + limit) < total && limit > 0) out["paging"] = {{"next", {{"after", std::to_string(after + limit)}}}};
        return HttpResponse::json(200, out.dump());
    }

    // GET /crm/v3/objects/{object}?archived=true&limit=N&after=ID: the deleted records by
    // id, HubSpot's form ("archived": true, "archivedAt"), `after` the last id of a page.
    HttpResponse list_archived(std::string_view object, const HttpRequest &req) {
        int64_t limit = 10;
        uint64_t after = 0;
        const std::string limit_text = percent_decode(req.query_param("limit")), after_text = percent_decode(req.query_param("after"));
        if (!limit_text.empty() && (std::from_chars(limit_text.data(), limit_text.data() + limit_text.size(), limit).ec != std::errc() || limit < 1 || limit > 100))
            return hs_error(400, "limit must be between 1 and 100");
        if (!after_text.empty() && std::from_chars(after_text.data(), after_text.data() + after_text.size(), after).ec != std::errc())
            return hs_error(400, "Field \"after\" is not a paging token this listing gave");
        json results = json::array();
        bool more = false;
        uint64_t last = 0;
        {
            std::lock_guard lock(mu);
            const auto store = objects.find(object);
            if (store != objects.end())
                for (auto it = store->second.archived.upper_bound(after); it != store->second.archived.end(); ++it) {
                    if (static_cast<int64_t>(results.size()) == limit) {
                        more = true;
                        break;
                    }
                    json r = record_json(it->first, it->second.rec);
                    r["archived"] = true;
                    r["archivedAt"] = it->second.archived_at;
                    results.push_back(std::move(r));
                    last = it->first;
                }
        }
        json out = {{"results", std::move(results)}};
        if (more) out["paging"] = {{"next", {{"after", std::to_string(last)}}}};
        return HttpResponse::json(200, out.dump());
    }

    // createdate, lastmodifieddate, hs_object_id: as numbers (dates in epoch ms); nullopt otherwise.
    static std::optional<int64_t> numeric_of(uint64_t id, const StoredRecord &rec, std::string_view property) {
        if (property == kCreateDate) return rec.created_ms;
        if (property == kModifiedDate || property == kHsModifiedDate) return rec.modified_ms;
        if (property == kObjectId) return static_cast<int64_t>(id);
        return std::nullopt;
    }

    static int compare_property(uint64_t a_id, const StoredRecord &a, uint64_t b_id, const StoredRecord &b, const std::string &property) {
        if (const auto x = numeric_of(a_id, a, property)) {
            const int64_t y = *numeric_of(b_id, b, property);
            return *x < y ? -1 : *x > y ? 1 : 0;
        }
        const auto pa = a.props.find(property), pb = b.props.find(property);
        const std::string sa = pa == a.props.end() ? "" : pa->second, sb = pb == b.props.end() ? "" : pb->second;
        return sa.compare(sb) < 0 ? -1 : sa.compare(sb) > 0 ? 1 : 0;
    }

    static bool filter_matches(uint64_t id, const StoredRecord &rec, const std::string &property, const std::string &op, const std::string &value) {
        int c = 0;
        if (const auto n = numeric_of(id, rec, property)) {
            int64_t v = 0;
            if (std::from_chars(value.data(), value.data() + value.size(), v).ec != std::errc()) return false;
            c = *n < v ? -1 : *n > v ? 1 : 0;
        } else {
            const auto p = rec.props.find(property);
            if (p == rec.props.end()) return op == "NEQ";
            c = p->second.compare(value) < 0 ? -1 : p->second.compare(value) > 0 ? 1 : 0;
        }
        if (op == "EQ") return c == 0;
        if (op == "NEQ") return c != 0;
        if (op == "GT") return c > 0;
        if (op == "GTE") return c >= 0;
        if (op == "LT") return c < 0;
        return c <= 0;  // LTE
    }

    HttpResponse get(std::string_view object, std::string_view id_segment, const HttpRequest &req) {
        const std::string id_property = percent_decode(req.query_param("idProperty"));
        const std::string id = percent_decode(id_segment);
        StoredRecord copy;
        uint64_t rid = 0;
        {
            std::lock_guard lock(mu);
            const auto store = objects.find(object);
            if (store == objects.end()) return not_found();
            const auto found = find_locked(store->second, id_property, id);
            if (!found) return not_found();
            rid = *found;
            copy = store->second.live.at(rid);
        }
        return HttpResponse::json(200, record_json(rid, copy).dump());
    }

    HttpResponse patch(std::string_view object, std::string_view id_segment, const HttpRequest &req) {
        std::string problem;
        const auto j = parse_object(req.body, problem);
        if (!j) return hs_error(400, problem);
        std::map<std::string, std::string> props;
        if (problem = read_properties(*j, props); !problem.empty()) return hs_error(400, problem);
        const std::string id_property = percent_decode(req.query_param("idProperty"));
        const std::string id = percent_decode(id_segment);
        const auto new_email = props.find("email");
        StoredRecord copy;
        uint64_t rid = 0;
        {
            std::lock_guard lock(mu);
            const auto store = objects.find(object);
            if (store == objects.end()) return not_found();
            const auto found = find_locked(store->second, id_property, id);
            if (!found) return not_found();
            rid = *found;
            if (new_email != props.end())
                if (const auto owner = email_owner_locked(store->second, new_email->second, rid)) return conflict(*owner);
            auto &rec = store->second.live.at(rid);
            update_locked(store->second, rid, rec, props);
            copy = rec;
        }
        return HttpResponse::json(200, record_json(rid, copy).dump());
    }

    HttpResponse remove(std::string_view object, std::string_view id_segment) {
        const auto id = parse_id(id_segment);
        if (!id) return not_found();
        std::lock_guard lock(mu);
        const auto store = objects.find(object);
        if (store == objects.end()) return not_found();
        const auto it = store->second.live.find(*id);
        if (it == store->second.live.end()) return not_found();
        const std::string email = email_of(it->second.props);
        if (!email.empty()) {
            const auto e = store->second.by_email.find(lower_ascii(email));
            if (e != store->second.by_email.end() && e->second == *id) store->second.by_email.erase(e);
        }
        store->second.archived[*id] = {std::move(it->second), utc_ms_text(util::epoch_ms())};
        store->second.live.erase(it);
        ++counters.deleted;
        emit_locked(store->second, *id, "deletion");
        HttpResponse r;
        r.status = 204;
        r.content_type.clear();
        return r;
    }

    // The batch inputs of a request body, or the 400 HubSpot answers: a JSON object with an
    // "inputs" array of objects, at most max_batch_inputs.
    std::optional<HttpResponse> batch_inputs(const std::string &body, json &out) const {
        std::string problem;
        auto j = parse_object(body, problem);
        if (!j) return hs_error(400, problem);
        const auto inputs = j->find("inputs");
        if (inputs == j->end()) return hs_error(400, "Missing required field \"inputs\"");
        if (!inputs->is_array()) return hs_error(400, std::string("Field \"inputs\" must be an array, got ") + inputs->type_name());
        if (inputs->size() > opts.max_batch_inputs)
            return hs_error(400, "Batch input limit exceeded: " + std::to_string(inputs->size()) + " inputs, at most " + std::to_string(opts.max_batch_inputs));
        for (size_t i = 0; i < inputs->size(); ++i)
            if (!(*inputs)[i].is_object()) return hs_error(400, "Field \"inputs[" + std::to_string(i) + "]\" must be an object, got " + (*inputs)[i].type_name());
        out = std::move(*inputs);
        return std::nullopt;
    }

    static json batch_answer(const std::string &started, json results, json errors) {
        json out = {{"status", "COMPLETE"}, {"results", std::move(results)}, {"startedAt", started}, {"completedAt", utc_ms_text(util::epoch_ms())}};
        if (!errors.empty()) {
            out["numErrors"] = errors.size();
            out["errors"] = std::move(errors);
        }
        return out;
    }

    // A batch result carries its input's objectWriteTraceId, as HubSpot echoes it.
    static json traced(json result, const json &input) {
        if (const auto t = input.find("objectWriteTraceId"); t != input.end()) result["objectWriteTraceId"] = *t;
        return result;
    }

    static json batch_error(int status, const std::string &message, const std::string &id) {
        return {{"status", "error"}, {"category", category_for(status)}, {"message", message}, {"context", {{"ids", {id}}}}};
    }

    // POST batch/create: all or nothing, as HubSpot: one email a live record (or another
    // input) already has refuses the whole batch with 409 "Existing ID", nothing created.
    // Results in reverse input order (HubSpot promises none), each with its input's
    // objectWriteTraceId.
    HttpResponse batch_create(std::string_view object, const std::string &body) {
        const std::string started = utc_ms_text(util::epoch_ms());
        json inputs;
        if (auto refused = batch_inputs(body, inputs)) return *refused;
        std::vector<std::map<std::string, std::string>> props(inputs.size());
        for (size_t i = 0; i < inputs.size(); ++i) {
            const std::string where = "inputs[" + std::to_string(i) + "].";
            if (const auto problem = read_properties(inputs[i], props[i], where); !problem.empty()) return hs_error(400, problem);
            const auto assoc = inputs[i].find("associations");
            if (assoc == inputs[i].end()) return hs_error(400, "Missing required field \"" + where + "associations\"");
        }
        json results = json::array();
        {
            std::lock_guard lock(mu);
            auto &store = objects.try_emplace(std::string(object)).first->second;
            store.name = object;
            std::unordered_set<std::string> emails;
            for (const auto &p : props) {
                const std::string email = lower_ascii(email_of(p));
                if (email.empty()) continue;
                if (const auto owner = email_owner_locked(store, email)) {
                    ++counters.duplicates;
                    ++counters.conflicts;
                    return conflict(*owner);
                }
                if (!emails.insert(email).second) return hs_error(400, "Duplicate email in batch input: " + email);
            }
            for (size_t i = inputs.size(); i-- > 0;) {
                const auto [id, rec] = insert_locked(store, std::move(props[i]));
                results.push_back(traced(record_json(id, *rec), inputs[i]));
            }
        }
        return HttpResponse::json(201, batch_answer(started, std::move(results), json::array()).dump());
    }

    // POST batch/update: by id; an id the store lacks is that input's 404 (207).
    HttpResponse batch_update(std::string_view object, const std::string &body) {
        const std::string started = utc_ms_text(util::epoch_ms());
        json inputs;
        if (auto refused = batch_inputs(body, inputs)) return *refused;
        std::vector<std::map<std::string, std::string>> props(inputs.size());
        for (size_t i = 0; i < inputs.size(); ++i) {
            const std::string where = "inputs[" + std::to_string(i) + "].";
            if (!inputs[i].contains("id") || !inputs[i]["id"].is_string()) return hs_error(400, "Missing required field \"" + where + "id\"");
            if (const auto problem = read_properties(inputs[i], props[i], where); !problem.empty()) return hs_error(400, problem);
        }
        json results = json::array(), errors = json::array();
        {
            std::lock_guard lock(mu);
            auto &store = objects.try_emplace(std::string(object)).first->second;
            store.name = object;
            for (size_t i = 0; i < inputs.size(); ++i) {
                const std::string id = inputs[i]["id"].get<std::string>();
                const auto found = find_locked(store, "", id);
                if (!found) {
                    ++counters.not_found;
                    errors.push_back(batch_error(404, "Object not found. objectId are usually numeric.", id));
                    continue;
                }
                const auto e = props[i].find("email");
                if (e != props[i].end())
                    if (const auto owner = email_owner_locked(store, e->second, *found)) {
                        ++counters.conflicts;
                        errors.push_back(batch_error(409, "Contact already exists. Existing ID: " + std::to_string(*owner), id));
                        continue;
                    }
                auto &rec = store.live.at(*found);
                update_locked(store, *found, rec, props[i]);
                results.push_back(traced(record_json(*found, rec), inputs[i]));
            }
        }
        const bool partial = !errors.empty();
        return HttpResponse::json(partial ? 207 : 200, batch_answer(started, std::move(results), std::move(errors)).dump());
    }

    // POST batch/archive: 204 for the whole batch, ids already gone included (as HubSpot).
    HttpResponse batch_archive(std::string_view object, const std::string &body) {
        json inputs;
        if (auto refused = batch_inputs(body, inputs)) return *refused;
        for (size_t i = 0; i < inputs.size(); ++i)
            if (!inputs[i].contains("id") || !inputs[i]["id"].is_string()) return hs_error(400, "Missing required field \"inputs[" + std::to_string(i) + "].id\"");
        for (const auto &in : inputs) remove(object, in["id"].get_ref<const std::string &>());
        HttpResponse r;
        r.status = 204;
        r.content_type.clear();
        return r;
    }

    // POST batch/read: the records by id with the properties asked for (all when none);
    // ids the store lacks are 404 errors (207).
    HttpResponse batch_read(std::string_view object, const std::string &body) {
        const std::string started = utc_ms_text(util::epoch_ms());
        json inputs;
        if (auto refused = batch_inputs(body, inputs)) return *refused;
        json results = json::array(), errors = json::array();
        std::lock_guard lock(mu);
        const auto store = objects.find(object);
        for (size_t i = 0; i < inputs.size(); ++i) {
            if (!inputs[i].contains("id") || !inputs[i]["id"].is_string()) return hs_error(400, "Missing required field \"inputs[" + std::to_string(i) + "].id\"");
            const std::string id = inputs[i]["id"].get<std::string>();
            const auto found = store == objects.end() ? std::nullopt : find_locked(store->second, "", id);
            if (!found) {
                ++counters.not_found;
                errors.push_back(batch_error(404, "Object not found. objectId are usually numeric.", id));
                continue;
            }
            results.push_back(record_json(*found, store->second.live.at(*found)));
        }
        const bool partial = !errors.empty();
        return HttpResponse::json(partial ? 207 : 200, batch_answer(started, std::move(results), std::move(errors)).dump());
    }

    struct UpsertInput {
        std::string id_property;
        std::string id;
        std::map<std::string, std::string> props;
    };

    HttpResponse upsert(std::string_view object, const std::string &body) {
        const std::string started = utc_ms_text(util::epoch_ms());
        std::string problem;
        const auto j = parse_object(body, problem);
        if (!j) return hs_error(400, problem);
        const auto inputs = j->find("inputs");
        if (inputs == j->end()) return hs_error(400, "Missing required field \"inputs\"");
        if (!inputs->is_array()) return hs_error(400, std::string("Field \"inputs\" must be an array, got ") + inputs->type_name());
        if (inputs->size() > opts.max_batch_inputs)
            return hs_error(400, "Batch input limit exceeded: " + std::to_string(inputs->size()) + " inputs, at most " +
                                     std::to_string(opts.max_batch_inputs));
        // Validate the whole batch before touching state, as HubSpot does.
        std::vector<UpsertInput> parsed;
        parsed.reserve(inputs->size());
        std::unordered_set<std::string> seen;
        for (size_t i = 0; i < inputs->size(); ++i) {
            const auto &in = (*inputs)[i];
            const std::string where = "inputs[" + std::to_string(i) + "].";
            if (!in.is_object()) return hs_error(400, "Field \"inputs[" + std::to_string(i) + "]\" must be an object, got " + in.type_name());
            UpsertInput u;
            const auto id = in.find("id");
            if (id == in.end()) return hs_error(400, "Missing required field \"" + where + "id\"");
            if (!id->is_string() || id->get_ref<const std::string &>().empty())
                return hs_error(400, "Field \"" + where + "id\" must be a non-empty string");
            u.id = id->get<std::string>();
            if (const auto idp = in.find("idProperty"); idp != in.end()) {
                if (!idp->is_string()) return hs_error(400, "Field \"" + where + "idProperty\" must be a string, got " + idp->type_name());
                u.id_property = idp->get<std::string>();
            }
            if (problem = read_properties(in, u.props, where); !problem.empty()) return hs_error(400, problem);
            const std::string key = u.id_property + '\n' + (u.id_property == "email" ? lower_ascii(u.id) : u.id);
            if (!seen.insert(key).second) return hs_error(400, "Duplicate IDs found in batch input: [" + u.id + "]");
            parsed.push_back(std::move(u));
        }

        struct Outcome {
            uint64_t id;
            StoredRecord rec;
            bool is_new;
        };
        std::vector<Outcome> done;
        json errors = json::array();
        auto add_error = [&errors](int status, const std::string &message, const std::string &id) {
            errors.push_back({{"status", "error"}, {"category", category_for(status)}, {"message", message}, {"context", {{"id", {id}}}}});
        };
        {
            std::lock_guard lock(mu);
            auto &store = objects.try_emplace(std::string(object)).first->second;
            store.name = object;
            for (auto &u : parsed) {
                if (const auto found = find_locked(store, u.id_property, u.id)) {
                    const auto e = u.props.find("email");
                    if (e != u.props.end())
                        if (const auto owner = email_owner_locked(store, e->second, *found)) {
                            ++counters.conflicts;
                            add_error(409, "Contact already exists. Existing ID: " + std::to_string(*owner), u.id);
                            continue;
                        }
                    auto &rec = store.live.at(*found);
                    update_locked(store, *found, rec, u.props);
                    done.push_back({*found, rec, false});
                    continue;
                }
                if (u.id_property.empty() || u.id_property == kObjectId) {
                    ++counters.not_found;
                    add_error(404, "No " + std::string(object) + " with id " + u.id, u.id);
                    continue;
                }
                u.props[u.id_property] = u.id;  // the new record carries its unique value
                if (const auto owner = email_owner_locked(store, email_of(u.props))) {
                    ++counters.duplicates;
                    ++counters.conflicts;
                    add_error(409, "Contact already exists. Existing ID: " + std::to_string(*owner), u.id);
                    continue;
                }
                const auto [id, rec] = insert_locked(store, std::move(u.props));
                done.push_back({id, *rec, true});
            }
        }
        json results = json::array();
        for (const auto &o : done) {
            auto r = record_json(o.id, o.rec);
            r["new"] = o.is_new;
            results.push_back(std::move(r));
        }
        json out = {{"status", "COMPLETE"}, {"results", std::move(results)}, {"startedAt", started}, {"completedAt", utc_ms_text(util::epoch_ms())}};
        if (errors.empty()) return HttpResponse::json(200, out.dump());
        out["numErrors"] = errors.size();
        out["errors"] = std::move(errors);
        return HttpResponse::json(207, out.dump());
    }

    // ---- /_mock/ ----

    static json request_json(const LoggedRequest &r) {
        const std::string_view t = r.target;
        return json{{"seq", r.seq},       {"at_ms", r.at_ms}, {"method", r.method}, {"path", t.substr(0, t.find('?'))},
                    {"target", r.target}, {"body", r.body},   {"status", r.status}};
    }

    static json counters_json(const Counters &c) {
        return json{{"requests", c.requests},
                    {"created", c.created},
                    {"updated", c.updated},
                    {"deleted", c.deleted},
                    {"rejected_429", c.rejected_429},
                    {"injected_failures", c.injected_failures},
                    {"duplicates", c.duplicates},
                    {"unauthorized", c.unauthorized},
                    {"tokens_issued", c.tokens_issued},
                    {"bad_requests", c.bad_requests},
                    {"not_found", c.not_found},
                    {"conflicts", c.conflicts},
                    {"log_dropped", c.log_dropped},
                    {"resets", c.resets},
                    {"hangs", c.hangs},
                    {"lost_answers", c.lost_answers},
                    {"connections", c.connections}};
    }

    static json faults_json(const FaultState &f) {
        return json{{"fail_next", f.fail_next},
                    {"fail_next_status", f.fail_next_status},
                    {"fail_next_retry_after", f.fail_next_retry_after},
                    {"fail_ratio", f.fail_ratio},
                    {"fail_ratio_status", f.fail_ratio_status},
                    {"fail_ratio_retry_after", f.fail_ratio_retry_after},
                    {"latency_ms", f.latency_ms},
                    {"rate_per_second", f.rate_per_second},
                    {"rate_burst", f.rate_burst},
                    {"throttle_status", f.throttle_status},
                    {"retry_after_format", f.retry_after_http_date ? "http-date" : "seconds"},
                    {"reset_next", f.reset_next},
                    {"reset_ratio", f.reset_ratio},
                    {"hang_next", f.hang_next},
                    {"hang_ratio", f.hang_ratio},
                    {"hang_ms", f.hang_ms},
                    {"lose_answer_next", f.lose_answer_next},
                    {"lose_answer_ratio", f.lose_answer_ratio}};
    }

    FaultState faults_snapshot() const {
        std::lock_guard lock(mu);
        FaultState f = faults;
        f.latency_ms = latency_ms.load();
        return f;
    }

    std::vector<Record> records(std::string_view object) const {
        std::vector<Record> out;
        std::lock_guard lock(mu);
        for (const auto &[name, store] : objects) {
            if (!object.empty() && name != object) continue;
            for (const auto &[id, rec] : store.live) out.push_back(Record{name, std::to_string(id), rec.props, rec.created_at, rec.updated_at});
        }
        return out;
    }

    // Applies a POST /_mock/faults body; returns the problem or "".
    std::string apply_faults(const json &j, MockCrm &self) {
        auto int_field = [&j](const char *name, int lo, int hi, std::optional<int> &out) -> std::string {
            const auto it = j.find(name);
            if (it == j.end() || (it->is_null() && std::string_view(name) == "retry_after")) return {};
            if (!it->is_number_integer() || it->get<int64_t>() < lo || it->get<int64_t>() > hi)
                return "Field \"" + std::string(name) + "\" must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
            out = it->get<int>();
            return {};
        };
        auto num_field = [&j](const char *name, double lo, double hi, std::optional<double> &out) -> std::string {
            const auto it = j.find(name);
            if (it == j.end()) return {};
            if (!it->is_number() || it->get<double>() < lo || it->get<double>() > hi)
                return "Field \"" + std::string(name) + "\" must be a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
            out = it->get<double>();
            return {};
        };
        static const std::unordered_set<std::string> known = {"fail_next",  "status",     "retry_after", "fail_ratio", "latency_ms", "rate_per_second",
                                                              "rate_burst", "reset_next", "reset_ratio", "hang_next",  "hang_ratio", "hang_ms",
                                                              "lose_answer_next", "lose_answer_ratio", "throttle_status", "retry_after_format"};
        for (const auto &[k, v] : j.items())
            if (!known.count(k)) return "Unknown field \"" + k + "\"";
        std::optional<int> fail_next, status, retry_after, latency, reset_next, hang_next, hang_ms, lose_next;
        std::optional<double> ratio, rate, burst, reset_ratio, hang_ratio, lose_ratio;
        std::string p;
        if (!(p = int_field("fail_next", 0, 1 << 30, fail_next)).empty()) return p;
        if (!(p = int_field("status", 100, 599, status)).empty()) return p;
        if (!(p = int_field("retry_after", -1, 86400, retry_after)).empty()) return p;
        if (!(p = int_field("latency_ms", 0, 600000, latency)).empty()) return p;
        if (!(p = num_field("fail_ratio", 0, 1, ratio)).empty()) return p;
        if (!(p = num_field("rate_per_second", 0, 1e9, rate)).empty()) return p;
        if (!(p = num_field("rate_burst", 0, 1e9, burst)).empty()) return p;
        if ((status || retry_after) && !fail_next && !ratio) return "\"status\" and \"retry_after\" apply to \"fail_next\" or \"fail_ratio\"; give one";
        if (!(p = int_field("reset_next", 0, 1 << 30, reset_next)).empty()) return p;
        if (!(p = int_field("hang_next", 0, 1 << 30, hang_next)).empty()) return p;
        if (!(p = int_field("hang_ms", 1, 600000, hang_ms)).empty()) return p;
        if (!(p = num_field("reset_ratio", 0, 1, reset_ratio)).empty()) return p;
        if (!(p = num_field("hang_ratio", 0, 1, hang_ratio)).empty()) return p;
        if (!(p = int_field("lose_answer_next", 0, 1 << 30, lose_next)).empty()) return p;
        if (!(p = num_field("lose_answer_ratio", 0, 1, lose_ratio)).empty()) return p;
        if (burst && !rate) return "\"rate_burst\" needs \"rate_per_second\"";
        if (hang_ms && !hang_next && !hang_ratio) return "\"hang_ms\" applies to \"hang_next\" or \"hang_ratio\"; give one";
        std::optional<int> throttle_status;
        if (!(p = int_field("throttle_status", 0, 999, throttle_status)).empty()) return p;
        if (throttle_status && *throttle_status != 429 && *throttle_status != 503) return "Field \"throttle_status\" must be 429 or 503";
        std::optional<bool> http_date;
        if (const auto it = j.find("retry_after_format"); it != j.end()) {
            if (*it == "http-date") http_date = true;
            else if (*it == "seconds") http_date = false;
            else return "Field \"retry_after_format\" must be \"seconds\" or \"http-date\"";
        }
        if (throttle_status) self.set_throttle_status(*throttle_status);
        if (http_date) self.set_retry_after_http_date(*http_date);
        if (fail_next) self.fail_next(*fail_next, status.value_or(503), retry_after.value_or(-1));
        if (ratio) self.fail_ratio(*ratio, status.value_or(503), retry_after.value_or(-1));
        if (latency) self.set_latency(std::chrono::milliseconds(*latency));
        if (rate) self.set_rate_limit(*rate, burst.value_or(0));
        if (reset_next) self.reset_next(*reset_next);
        if (reset_ratio) self.reset_ratio(*reset_ratio);
        const auto hang = std::chrono::milliseconds(hang_ms.value_or(faults_snapshot().hang_ms));
        if (hang_next) self.hang_next(*hang_next, hang);
        if (hang_ratio) self.hang_ratio(*hang_ratio, hang);
        if (lose_next) self.lose_answer_next(*lose_next);
        if (lose_ratio) self.lose_answer_ratio(*lose_ratio);
        return {};
    }

    HttpResponse admin(const HttpRequest &req, std::string_view path, MockCrm &self) {
        const std::string_view what = path.substr(kAdminPrefix.size());
        const std::string &m = req.method;
        if (what == "health" && m == "GET") return HttpResponse::json(200, R"({"status":"ok"})");
        if (what == "records" && m == "GET") {
            const auto recs = records(percent_decode(req.query_param("object")));
            json arr = json::array();
            for (const auto &r : recs) {
                auto j = json{{"id", r.id}, {"object", r.object}, {"properties", r.properties}, {"createdAt", r.created_at}, {"updatedAt", r.updated_at}, {"archived", false}};
                arr.push_back(std::move(j));
            }
            return HttpResponse::json(200, arr.dump());
        }
        if (what == "requests" && m == "GET") {
            std::vector<LoggedRequest> copy;
            {
                std::lock_guard lock(mu);
                copy.assign(log.begin(), log.end());
            }
            json arr = json::array();
            for (const auto &r : copy) arr.push_back(request_json(r));
            return HttpResponse::json(200, arr.dump());
        }
        if (what == "stats" && m == "GET") {
            json j;
            json per_object = json::object();
            {
                std::lock_guard lock(mu);
                j = counters_json(counters);
                for (const auto &[name, store] : objects) per_object[name] = store.live.size();
                j["log_entries"] = log.size();
            }
            j["records"] = std::move(per_object);
            return HttpResponse::json(200, j.dump());
        }
        if (what == "reset" && m == "POST") {
            self.reset();
            return HttpResponse::json(200, R"({"status":"ok"})");
        }
        if (what == "faults" && (m == "GET" || m == "POST")) {
            if (m == "POST") {
                std::string problem;
                const auto j = parse_object(req.body.empty() ? std::string("{}") : req.body, problem);
                if (!j) return hs_error(400, problem);
                if (problem = apply_faults(*j, self); !problem.empty()) return hs_error(400, problem);
            }
            return HttpResponse::json(200, faults_json(faults_snapshot()).dump());
        }
        return hs_error(404, "No admin route for " + m + " " + std::string(path));
    }
};

MockCrm::MockCrm(MockCrmOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

MockCrm::~MockCrm() { stop(); }

void MockCrm::start() {
    std::lock_guard lock(impl_->life_mu);
    if (impl_->listener) return;
    server::ListenerOptions lo;
    lo.address = impl_->opts.address;
    lo.port = impl_->opts.port;
    lo.threads = impl_->opts.threads;
    lo.max_body_bytes = impl_->opts.max_body_bytes;
    lo.on_accept = [impl = impl_.get()] {
        std::lock_guard lock(impl->mu);
        ++impl->counters.connections;
    };
    std::unique_ptr<server::HttpListener> listener;
    if (impl_->opts.delay_ms > 0) {
        impl_->delayed = std::make_unique<DelayedAnswers>(std::chrono::milliseconds(impl_->opts.delay_ms));
        listener = std::make_unique<server::HttpListener>(lo, [this](HttpRequest &&r, server::Respond respond) { impl_->delayed->add(std::move(respond), handle(r)); });
    } else {
        listener = std::make_unique<server::HttpListener>(lo, [this](const HttpRequest &r) { return handle(r); });
    }
    listener->start();
    impl_->port = listener->port();
    impl_->listener = std::move(listener);
}

void MockCrm::stop() {
    std::lock_guard lock(impl_->life_mu);
    if (!impl_->listener) return;
    impl_->listener->stop();
    if (impl_->delayed) impl_->delayed->stop();  // before the listener goes: answers use it
    impl_->delayed.reset();
    // Destroying the listener (its io_context) is what closes kept-alive connections and the
    // acceptor; HttpListener::stop alone leaves them open until destruction.
    impl_->listener.reset();
}

uint16_t MockCrm::port() const { return impl_->port.load(); }

void MockCrm::set_webhooks(std::optional<WebhookTarget> target) { impl_->webhooks.set_target(std::move(target)); }

void MockCrm::set_fixed_modified(std::optional<int64_t> epoch_ms) {
    std::lock_guard lock(impl_->mu);
    impl_->fixed_modified_ms = epoch_ms;
}

void MockCrm::set_search_lag(std::chrono::milliseconds lag) {
    std::lock_guard lock(impl_->mu);
    impl_->search_lag_ms = lag.count();
}

void MockCrm::hide_from_search(std::string_view object, std::string_view id, std::chrono::milliseconds how_long) {
    std::lock_guard lock(impl_->mu);
    impl_->hidden_until_ms[std::make_pair(std::string(object), std::stoull(std::string(id)))] = util::epoch_ms() + how_long.count();
}

WebhookStats MockCrm::webhook_stats() const { return impl_->webhooks.stats(); }

std::string MockCrm::base_url() const {
    const auto &a = impl_->opts.address;
    const bool v6 = a.find(':') != std::string::npos;
    return "http://" + (v6 ? "[" + a + "]" : a) + ":" + std::to_string(port());
}

std::vector<Record> MockCrm::records(std::string_view object) const { return impl_->records(object); }

std::optional<Record> MockCrm::record(std::string_view object, std::string_view id) const {
    const auto v = parse_id(id);
    if (!v) return std::nullopt;
    std::lock_guard lock(impl_->mu);
    const auto store = impl_->objects.find(object);
    if (store == impl_->objects.end()) return std::nullopt;
    const auto it = store->second.live.find(*v);
    if (it == store->second.live.end()) return std::nullopt;
    return Record{store->first, std::string(id), it->second.props, it->second.created_at, it->second.updated_at};
}

size_t MockCrm::record_count(std::string_view object) const {
    std::lock_guard lock(impl_->mu);
    size_t n = 0;
    for (const auto &[name, store] : impl_->objects)
        if (object.empty() || name == object) n += store.live.size();
    return n;
}

std::vector<LoggedRequest> MockCrm::requests() const {
    std::lock_guard lock(impl_->mu);
    return {impl_->log.begin(), impl_->log.end()};
}

Counters MockCrm::counters() const {
    std::lock_guard lock(impl_->mu);
    return impl_->counters;
}

FaultState MockCrm::faults() const { return impl_->faults_snapshot(); }

void MockCrm::reset() {
    std::lock_guard lock(impl_->mu);
    impl_->reset_locked();
}

void MockCrm::fail_next(int count, int status, int retry_after_seconds) {
    check_status(status);
    std::lock_guard lock(impl_->mu);
    impl_->faults.fail_next = std::max(0, count);
    impl_->faults.fail_next_status = status;
    impl_->faults.fail_next_retry_after = retry_after_seconds;
}

void MockCrm::fail_ratio(double ratio, int status, int retry_after_seconds) {
    check_status(status);
    if (!(ratio >= 0 && ratio <= 1)) throw std::invalid_argument("fail ratio must be in [0, 1]");
    std::lock_guard lock(impl_->mu);
    impl_->faults.fail_ratio = ratio;
    impl_->faults.fail_ratio_status = status;
    impl_->faults.fail_ratio_retry_after = retry_after_seconds;
}

void MockCrm::clear_faults() {
    std::lock_guard lock(impl_->mu);
    impl_->faults.fail_next = 0;
    impl_->faults.fail_ratio = 0;
    impl_->faults.reset_next = 0;
    impl_->faults.reset_ratio = 0;
    impl_->faults.hang_next = 0;
    impl_->faults.hang_ratio = 0;
    impl_->faults.lose_answer_next = 0;
    impl_->faults.lose_answer_ratio = 0;
}

namespace {
void check_ratio(double ratio) {
    if (!(ratio >= 0 && ratio <= 1)) throw std::invalid_argument("fault ratio must be in [0, 1]");
}
}  // namespace

void MockCrm::reset_next(int count) {
    std::lock_guard lock(impl_->mu);
    impl_->faults.reset_next = std::max(0, count);
}

void MockCrm::reset_ratio(double ratio) {
    check_ratio(ratio);
    std::lock_guard lock(impl_->mu);
    impl_->faults.reset_ratio = ratio;
}

void MockCrm::lose_answer_next(int count) {
    std::lock_guard lock(impl_->mu);
    impl_->faults.lose_answer_next = std::max(0, count);
}

void MockCrm::lose_answer_ratio(double ratio) {
    check_ratio(ratio);
    std::lock_guard lock(impl_->mu);
    impl_->faults.lose_answer_ratio = ratio;
}

void MockCrm::hang_next(int count, std::chrono::milliseconds hang) {
    std::lock_guard lock(impl_->mu);
    impl_->faults.hang_next = std::max(0, count);
    impl_->faults.hang_ms = static_cast<int>(std::clamp<int64_t>(hang.count(), 1, 600'000));
}

void MockCrm::hang_ratio(double ratio, std::chrono::milliseconds hang) {
    check_ratio(ratio);
    std::lock_guard lock(impl_->mu);
    impl_->faults.hang_ratio = ratio;
    impl_->faults.hang_ms = static_cast<int>(std::clamp<int64_t>(hang.count(), 1, 600'000));
}

void MockCrm::set_latency(std::chrono::milliseconds latency) {
    impl_->latency_ms = static_cast<int>(std::max<int64_t>(0, latency.count()));
}

void MockCrm::set_rate_limit(double per_second, double burst) {
    if (per_second < 0 || burst < 0) throw std::invalid_argument("rate limit must be >= 0");
    std::lock_guard lock(impl_->mu);
    impl_->set_rate_locked(per_second, burst);
}

void MockCrm::set_throttle_status(int status) {
    check_throttle_status(status);
    std::lock_guard lock(impl_->mu);
    impl_->faults.throttle_status = status;
}

void MockCrm::set_retry_after_http_date(bool http_date) {
    std::lock_guard lock(impl_->mu);
    impl_->faults.retry_after_http_date = http_date;
}

void MockCrm::set_request_log(bool enabled) { impl_->log_enabled = enabled; }

void MockCrm::expire_tokens() {
    std::lock_guard lock(impl_->mu);
    for (auto &[token, expiry] : impl_->issued) expiry = std::chrono::steady_clock::now() - std::chrono::seconds(1);
}

HttpResponse MockCrm::handle(const HttpRequest &request) {
    const std::string_view path = request.path();
    if (path.starts_with(kAdminPrefix)) return impl_->admin(request, path, *this);
    if (path == "/oauth/v1/token") return impl_->oauth_token(request);
    const int64_t at = util::epoch_ms();
    bool injected = false;
    HttpResponse resp = impl_->api(request, path, injected);
    impl_->finish(request, resp.status, injected, at);
    if (spdlog::should_log(spdlog::level::debug)) spdlog::debug("mock-crm {} {} -> {}", request.method, request.target, resp.status);
    return resp;
}

}  // namespace recsync::mock
