#include "rest_mock.hpp"

#include "mock_text.hpp"
#include "util/clock.hpp"

#include "server/http_listener.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <ctime>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>

namespace recsync::mock {

using json = nlohmann::json;
using server::HttpRequest;
using server::HttpResponse;

namespace {

constexpr std::string_view kApi = "/v1/";
constexpr std::string_view kByRef = "by-ref";

HttpResponse error_answer(int status, std::string_view code, std::string_view message, json extra = json::object()) {
    json e = {{"code", code}, {"message", message}};
    e.update(extra);
    return HttpResponse::json(status, json{{"error", std::move(e)}}.dump());
}

// The id of the `seq`th record of `collection`: "cus_000042".
std::string make_id(std::string_view collection, uint64_t seq) {
    std::string digits = std::to_string(seq);
    if (digits.size() < 6) digits.insert(0, 6 - digits.size(), '0');
    return std::string(collection.substr(0, 3)) + "_" + digits;
}

std::string base64_decode(std::string_view in) {
    static const std::string table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    uint32_t bits = 0;
    int count = 0;
    for (const char c : in) {
        const auto pos = table.find(c);
        if (pos == std::string::npos) break;  // '=' padding or garbage ends it
        bits = bits << 6 | static_cast<uint32_t>(pos);
        if ((count += 6) >= 8) {
            count -= 8;
            out += static_cast<char>((bits >> count) & 0xFF);
        }
    }
    return out;
}

struct Stored {
    json fields = json::object();
    std::string created_at, updated_at;
    bool deleted = false;
};

json record_json(const std::string &id, const Stored &s) {
    if (s.deleted) return {{"id", id}, {"updated_at", s.updated_at}, {"deleted", true}};
    json j = s.fields;
    j["id"] = id;
    j["created_at"] = s.created_at;
    j["updated_at"] = s.updated_at;
    return j;
}

}  // namespace

struct RestMock::Impl {
    explicit Impl(RestMockOptions o) : opts(std::move(o)) {
        if (opts.threads < 1) throw std::invalid_argument("rest mock threads must be >= 1");
        rng.seed(opts.seed ? opts.seed : std::random_device{}());
        for (const auto &c : opts.collections) collections[c];
        set_rate(opts.rate_per_second, opts.rate_burst);
    }

    const RestMockOptions opts;
    mutable std::mutex mu;  // guards everything below
    std::map<std::string, std::map<std::string, Stored>, std::less<>> collections;  // by id: text order is creation order
    uint64_t next_seq = 1;
    int64_t last_stamp = 0;
    std::optional<int64_t> fixed_time;
    RestCounters counters;
    std::vector<RestRequest> log;
    uint64_t log_seq = 0;
    int fail_count = 0, fail_status = 503, fail_retry_after = -1;
    double fail_share = 0;
    int fail_share_status = 503;
    int lose_count = 0;
    double rate = 0, burst = 0, tokens = 0;
    std::chrono::steady_clock::time_point refilled = std::chrono::steady_clock::now();
    std::map<std::string, std::chrono::steady_clock::time_point> issued;  // OAuth token -> expiry
    std::mt19937_64 rng;
    std::mutex life_mu;
    std::unique_ptr<server::HttpListener> listener;
    std::atomic<uint16_t> port{0};

    void set_rate(double per_second, double b) {
        rate = per_second;
        burst = b > 0 ? b : std::max(1.0, per_second);
        tokens = burst;
        refilled = std::chrono::steady_clock::now();
    }

    // A write's stamp: later than every earlier one, unless the time is fixed.
    std::string stamp() {
        last_stamp = fixed_time ? *fixed_time : std::max(util::epoch_ms(), last_stamp + 1);
        return utc_ms_text(last_stamp);
    }

    std::map<std::string, Stored> *collection(std::string_view name) {
        const auto it = collections.find(name);
        return it == collections.end() ? nullptr : &it->second;
    }

    // The live record whose key field is `key`, if any.
    const std::string *holder_of(const std::map<std::string, Stored> &c, const json &key, const std::string *except = nullptr) const {
        for (const auto &[id, s] : c)
            if (!s.deleted && s.fields.contains(opts.key_field) && s.fields[opts.key_field] == key && (!except || id != *except)) return &id;
        return nullptr;
    }

    std::string insert_locked(std::string_view name, std::map<std::string, Stored> &c, json fields) {
        const std::string id = make_id(name, next_seq++);
        Stored &s = c[id];
        s.fields = std::move(fields);
        s.created_at = s.updated_at = stamp();
        ++counters.created;
        return id;
    }

    void write_locked(Stored &s, json fields, bool merge) {
        if (merge) s.fields.update(fields);
        else s.fields = std::move(fields);
        s.updated_at = stamp();
        ++counters.updated;
    }

    void remove_locked(Stored &s) {
        s.deleted = true;
        s.fields = json::object();
        s.updated_at = stamp();
        ++counters.deleted;
    }

    std::optional<HttpResponse> refuse_unauthenticated(const HttpRequest &req) {
        const std::string_view authorization = req.header("Authorization");
        bool ok = true;
        switch (opts.auth) {
        case RestAuth::None: break;
        case RestAuth::Bearer: ok = authorization == "Bearer " + opts.token; break;
        case RestAuth::Basic: ok = authorization.starts_with("Basic ") && base64_decode(authorization.substr(6)) == opts.username + ":" + opts.password; break;
        case RestAuth::ApiKey: ok = req.header(opts.api_key_header) == opts.api_key; break;
        case RestAuth::OAuth: {
            const auto it = authorization.starts_with("Bearer ") ? issued.find(std::string(authorization.substr(7))) : issued.end();
            if (it != issued.end() && std::chrono::steady_clock::now() >= it->second) {
                ++counters.unauthorized;
                return error_answer(401, "token_expired", "the access token has expired");
            }
            ok = it != issued.end();
            break;
        }
        }
        if (ok) return std::nullopt;
        ++counters.unauthorized;
        return error_answer(401, "unauthorized", "missing or wrong credentials");
    }

    // Rate-limit headers for the bucket, and a 429 when it is empty.
    std::optional<HttpResponse> throttle(std::vector<std::pair<std::string, std::string>> &headers) {
        if (rate <= 0) return std::nullopt;
        const auto now = std::chrono::steady_clock::now();
        tokens = std::min(burst, tokens + std::chrono::duration<double>(now - refilled).count() * rate);
        refilled = now;
        const bool empty = tokens < 1.0;
        if (!empty) tokens -= 1.0;
        headers.emplace_back("X-RateLimit-Limit", std::to_string(static_cast<int64_t>(burst)));
        headers.emplace_back("X-RateLimit-Remaining", std::to_string(static_cast<int64_t>(std::floor(tokens))));
        headers.emplace_back("X-RateLimit-Reset", std::to_string(static_cast<int64_t>(std::ceil((burst - tokens) / rate))));
        if (!empty) return std::nullopt;
        ++counters.throttled;
        auto r = error_answer(429, "rate_limited", "too many requests");
        r.headers.emplace_back("Retry-After", std::to_string(std::max<int64_t>(1, static_cast<int64_t>(std::ceil((1.0 - tokens) / rate)))));
        return r;
    }

    std::optional<HttpResponse> injected_failure() {
        const bool by_count = fail_count > 0;
        if (!by_count && !(fail_share > 0 && std::uniform_real_distribution<double>(0, 1)(rng) < fail_share)) return std::nullopt;
        if (by_count) --fail_count;
        ++counters.injected_failures;
        auto r = error_answer(by_count ? fail_status : fail_share_status, "injected", "injected failure (rest mock)");
        if (by_count && fail_retry_after >= 0) r.headers.emplace_back("Retry-After", std::to_string(fail_retry_after));
        return r;
    }

    // {"data": {...}} from a request body, or the 400 that refuses it.
    static std::optional<json> data_of(const HttpRequest &req, HttpResponse &refusal) {
        const json body = json::parse(req.body, nullptr, false);
        if (!body.is_object() || !body.contains("data") || !body["data"].is_object()) {
            refusal = error_answer(400, "invalid", "the body must be {\"data\": {...}}");
            return std::nullopt;
        }
        json fields = body["data"];
        for (const char *server_set : {"id", "created_at", "updated_at", "deleted"}) fields.erase(server_set);
        return fields;
    }

    HttpResponse create(std::string_view name, std::map<std::string, Stored> &c, const HttpRequest &req) {
        HttpResponse refusal;
        auto fields = data_of(req, refusal);
        if (!fields) return refusal;
        if (fields->contains(opts.key_field)) {
            if (const std::string *existing = holder_of(c, (*fields)[opts.key_field])) {
                ++counters.duplicates;
                return error_answer(409, "duplicate", opts.key_field + " is taken", {{"existing_id", *existing}});
            }
        }
        const std::string id = insert_locked(name, c, std::move(*fields));
        return HttpResponse::json(201, json{{"data", record_json(id, c[id])}}.dump());
    }

    HttpResponse upsert_by_ref(std::string_view name, std::map<std::string, Stored> &c, const std::string &ref, const HttpRequest &req) {
        HttpResponse refusal;
        auto fields = data_of(req, refusal);
        if (!fields) return refusal;
        (*fields)[opts.key_field] = ref;
        if (const std::string *existing = holder_of(c, ref)) {
            const std::string id = *existing;
            write_locked(c[id], std::move(*fields), false);
            return HttpResponse::json(200, json{{"data", record_json(id, c[id])}}.dump());
        }
        const std::string id = insert_locked(name, c, std::move(*fields));
        return HttpResponse::json(201, json{{"data", record_json(id, c[id])}}.dump());
    }

    HttpResponse one(std::map<std::string, Stored> &c, const std::string &id, const HttpRequest &req) {
        const auto it = c.find(id);
        if (it == c.end() || it->second.deleted) return error_answer(404, "not_found", "no record " + id);
        Stored &s = it->second;
        if (req.method == "GET") return HttpResponse::json(200, json{{"data", record_json(id, s)}}.dump());
        if (req.method == "DELETE") {
            remove_locked(s);
            HttpResponse r;
            r.status = 204;
            return r;
        }
        if (req.method != "PUT" && req.method != "PATCH") return error_answer(405, "method", "use GET, PUT, PATCH or DELETE");
        HttpResponse refusal;
        auto fields = data_of(req, refusal);
        if (!fields) return refusal;
        if (fields->contains(opts.key_field) && holder_of(c, (*fields)[opts.key_field], &id)) {
            ++counters.duplicates;
            return error_answer(409, "duplicate", opts.key_field + " is taken");
        }
        write_locked(s, std::move(*fields), req.method == "PATCH");
        return HttpResponse::json(200, json{{"data", record_json(id, s)}}.dump());
    }

    // GET /v1/{c}: by key, or the changes since a cursor.
    HttpResponse list(const std::map<std::string, Stored> &c, const HttpRequest &req) const {
        json data = json::array();
        if (const auto key = req.query_param(opts.key_field); !key.empty()) {
            const std::string wanted = percent_decode(key);
            for (const auto &[id, s] : c)
                if (!s.deleted && s.fields.value(opts.key_field, json()) == wanted) data.push_back(record_json(id, s));
            return HttpResponse::json(200, json{{"data", std::move(data)}}.dump());
        }
        const std::string since = percent_decode(req.query_param("updated_since"));
        const std::string after = percent_decode(req.query_param("after_id"));
        size_t page = 100;
        if (const auto n = req.query_param("page_size"); !n.empty() && (std::from_chars(n.data(), n.data() + n.size(), page).ec != std::errc() || page == 0))
            return error_answer(400, "invalid", "page_size must be a whole number above 0");
        std::vector<std::pair<std::string, const std::pair<const std::string, Stored> *>> changes;  // (updated_at, record)
        for (const auto &entry : c) {
            const std::string &t = entry.second.updated_at;
            const bool later = after.empty() ? t >= since : (t > since || (t == since && entry.first > after));
            if (later) changes.emplace_back(t, &entry);
        }
        std::sort(changes.begin(), changes.end(), [](const auto &a, const auto &b) { return a.first != b.first ? a.first < b.first : a.second->first < b.second->first; });
        for (size_t i = 0; i < changes.size() && i < page; ++i) data.push_back(record_json(changes[i].second->first, changes[i].second->second));
        return HttpResponse::json(200, json{{"data", std::move(data)}, {"has_more", changes.size() > page}}.dump());
    }

    HttpResponse route(const HttpRequest &req) {
        const std::string_view path = req.path();
        if (!path.starts_with(kApi)) return error_answer(404, "no_route", "no route for " + std::string(path));
        std::vector<std::string> segments;
        for (std::string_view rest = path.substr(kApi.size()); !rest.empty();) {
            const auto slash = rest.find('/');
            segments.push_back(percent_decode(rest.substr(0, slash)));
            rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
        }
        auto *c = segments.empty() ? nullptr : collection(segments[0]);
        if (!c) return error_answer(404, "no_route", "no collection in " + std::string(path));
        if (segments.size() == 1 && req.method == "POST") return create(segments[0], *c, req);
        if (segments.size() == 1 && req.method == "GET") return list(*c, req);
        if (segments.size() == 2) return one(*c, segments[1], req);
        if (segments.size() == 3 && segments[1] == kByRef && req.method == "PUT") return upsert_by_ref(segments[0], *c, segments[2], req);
        return error_answer(404, "no_route", "no route for " + req.method + " " + std::string(path));
    }

    HttpResponse token(const HttpRequest &req) {
        auto form = form_fields(req.body);
        if (const auto a = req.header("Authorization"); a.starts_with("Basic ")) {
            const std::string pair = base64_decode(a.substr(6));
            const auto colon = pair.find(':');
            form["client_id"] = percent_decode(pair.substr(0, colon));
            form["client_secret"] = colon == std::string::npos ? "" : percent_decode(pair.substr(colon + 1));
        }
        if (req.method != "POST" || form["grant_type"] != "client_credentials") return HttpResponse::json(400, R"({"error":"unsupported_grant_type"})");
        if (opts.auth != RestAuth::OAuth || form["client_id"] != opts.client_id || form["client_secret"] != opts.client_secret)
            return HttpResponse::json(401, R"({"error":"invalid_client","error_description":"unknown client or wrong secret"})");
        std::lock_guard lock(mu);
        const std::string t = "rest-mock-token-" + std::to_string(++counters.tokens_issued) + "-" + std::to_string(rng() % 1'000'000);
        issued[t] = std::chrono::steady_clock::now() + std::chrono::seconds(opts.token_ttl_seconds);
        return HttpResponse::json(200, json{{"access_token", t}, {"token_type", "Bearer"}, {"expires_in", opts.token_ttl_seconds}}.dump());
    }

    HttpResponse api(const HttpRequest &req) {
        const int64_t at = util::epoch_ms();
        std::lock_guard lock(mu);
        ++counters.requests;
        std::vector<std::pair<std::string, std::string>> rate_headers;
        HttpResponse r;
        if (auto refused = refuse_unauthenticated(req)) r = std::move(*refused);
        else if (auto throttled = throttle(rate_headers)) r = std::move(*throttled);
        else if (auto failed = injected_failure()) r = std::move(*failed);
        else r = route(req);
        if (r.status < 500 && lose_count > 0 && r.status != 429 && r.status != 401) {
            --lose_count;
            ++counters.lost_answers;
            r = HttpResponse{};
            r.status = 0;
            r.drop_connection = true;  // the change above is made; the client never hears of it
        }
        for (auto &h : rate_headers) r.headers.push_back(std::move(h));
        log.push_back({++log_seq, at, req.method, req.target, req.body, r.status, std::string(req.header("Authorization"))});
        if (log.size() > opts.max_log_entries) log.erase(log.begin());
        return r;
    }

    HttpResponse admin(const HttpRequest &req, std::string_view path, RestMock &self) {
        if (path == "/_mock/requests" && req.method == "GET") {
            json out = json::array();
            for (const auto &e : self.requests()) out.push_back({{"seq", e.seq}, {"method", e.method}, {"target", e.target}, {"body", e.body}, {"status", e.status}});
            return HttpResponse::json(200, out.dump());
        }
        if (path.starts_with("/_mock/records/") && req.method == "GET") {
            json out = json::array();
            for (const auto &rec : self.records(path.substr(15))) out.push_back({{"id", rec.id}, {"fields", rec.fields}, {"updated_at", rec.updated_at}});
            return HttpResponse::json(200, out.dump());
        }
        if (path == "/_mock/faults" && req.method == "POST") {
            const json f = json::parse(req.body, nullptr, false);
            if (!f.is_object()) return error_answer(400, "invalid", "faults must be a JSON object");
            try {
                if (f.contains("fail_next")) self.fail_next(f["fail_next"].get<int>(), f.value("status", 503), f.value("retry_after", -1));
                if (f.contains("lose_answer_next")) self.lose_answer_next(f["lose_answer_next"].get<int>());
                if (f.contains("rate_per_second")) self.set_rate_limit(f["rate_per_second"].get<double>(), f.value("rate_burst", 0.0));
                if (f.value("expire_tokens", false)) self.expire_tokens();
            } catch (const std::exception &e) {
                return error_answer(400, "invalid", e.what());
            }
            return HttpResponse::json(200, "{}");
        }
        return error_answer(404, "no_route", "no admin route for " + req.method + " " + std::string(path));
    }
};

RestMock::RestMock(RestMockOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
RestMock::~RestMock() { stop(); }

void RestMock::start() {
    std::lock_guard lock(impl_->life_mu);
    if (impl_->listener) return;
    server::ListenerOptions lo;
    lo.address = impl_->opts.address;
    lo.port = impl_->opts.port;
    lo.threads = impl_->opts.threads;
    auto listener = std::make_unique<server::HttpListener>(lo, [this](const HttpRequest &r) { return handle(r); });
    listener->start();
    impl_->port = listener->port();
    impl_->listener = std::move(listener);
}

void RestMock::stop() {
    std::lock_guard lock(impl_->life_mu);
    if (!impl_->listener) return;
    impl_->listener->stop();
    impl_->listener.reset();  // closes kept-alive connections too
}

uint16_t RestMock::port() const { return impl_->port.load(); }
std::string RestMock::base_url() const { return "http://" + impl_->opts.address + ":" + std::to_string(port()); }

std::vector<RestRecord> RestMock::records(std::string_view collection) const {
    std::lock_guard lock(impl_->mu);
    std::vector<RestRecord> out;
    const auto c = impl_->collections.find(collection);
    if (c == impl_->collections.end()) return out;
    for (const auto &[id, s] : c->second)
        if (!s.deleted) out.push_back({std::string(collection), id, s.fields, s.created_at, s.updated_at, false});
    return out;
}

std::optional<RestRecord> RestMock::record(std::string_view collection, std::string_view id) const {
    for (auto &r : records(collection))
        if (r.id == id) return r;
    return std::nullopt;
}

size_t RestMock::record_count(std::string_view collection) const { return records(collection).size(); }

std::vector<RestRequest> RestMock::requests() const {
    std::lock_guard lock(impl_->mu);
    return impl_->log;
}

RestCounters RestMock::counters() const {
    std::lock_guard lock(impl_->mu);
    return impl_->counters;
}

std::string RestMock::insert(std::string_view collection, const json &fields) {
    std::lock_guard lock(impl_->mu);
    auto *c = impl_->collection(collection);
    if (!c) throw std::invalid_argument("no collection " + std::string(collection));
    return impl_->insert_locked(collection, *c, fields);
}

void RestMock::update(std::string_view collection, std::string_view id, const json &fields) {
    std::lock_guard lock(impl_->mu);
    auto *c = impl_->collection(collection);
    const auto it = c ? c->find(std::string(id)) : decltype(c->end()){};
    if (!c || it == c->end() || it->second.deleted) throw std::invalid_argument("no live record " + std::string(id));
    impl_->write_locked(it->second, fields, true);
}

void RestMock::remove(std::string_view collection, std::string_view id) {
    std::lock_guard lock(impl_->mu);
    auto *c = impl_->collection(collection);
    const auto it = c ? c->find(std::string(id)) : decltype(c->end()){};
    if (!c || it == c->end() || it->second.deleted) throw std::invalid_argument("no live record " + std::string(id));
    impl_->remove_locked(it->second);
}

void RestMock::set_fixed_time(std::optional<int64_t> epoch_ms) {
    std::lock_guard lock(impl_->mu);
    impl_->fixed_time = epoch_ms;
}

void RestMock::fail_next(int count, int status, int retry_after_seconds) {
    if (status < 100 || status > 599) throw std::invalid_argument("status must be 100..599");
    std::lock_guard lock(impl_->mu);
    impl_->fail_count = std::max(0, count);
    impl_->fail_status = status;
    impl_->fail_retry_after = retry_after_seconds;
}

void RestMock::fail_ratio(double ratio, int status) {
    if (!(ratio >= 0 && ratio <= 1)) throw std::invalid_argument("ratio must be in [0, 1]");
    std::lock_guard lock(impl_->mu);
    impl_->fail_share = ratio;
    impl_->fail_share_status = status;
}

void RestMock::lose_answer_next(int count) {
    std::lock_guard lock(impl_->mu);
    impl_->lose_count = std::max(0, count);
}

void RestMock::set_rate_limit(double per_second, double burst) {
    if (per_second < 0 || burst < 0) throw std::invalid_argument("rate limit must be >= 0");
    std::lock_guard lock(impl_->mu);
    impl_->set_rate(per_second, burst);
}

void RestMock::expire_tokens() {
    std::lock_guard lock(impl_->mu);
    for (auto &[t, expiry] : impl_->issued) expiry = std::chrono::steady_clock::now() - std::chrono::seconds(1);
}

HttpResponse RestMock::handle(const HttpRequest &request) {
    const std::string_view path = request.path();
    if (path.starts_with("/_mock/")) return impl_->admin(request, path, *this);
    if (path == "/oauth/token") return impl_->token(request);
    return impl_->api(request);
}

}  // namespace recsync::mock
