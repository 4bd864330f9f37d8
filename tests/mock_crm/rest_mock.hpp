// An in-memory imitation of a plain REST system of the core-banking kind (customers,
// accounts), served over HTTP by recsync_http: what plugins/rest is tested against, in
// process by tests and as `recsync-mock-crm --personality rest` by scripts.
//
//   POST   /v1/{c}                 {"data": {...}} -> 201 {"data": record}; a live record with the
//                                  same external_ref -> 409 {"error": {"code": "duplicate", "message", "existing_id"}}
//   GET    /v1/{c}/{id}            200 {"data": record} | 404
//   PUT    /v1/{c}/{id}            {"data": {...}} replaces the fields; PATCH merges them -> 200 {"data": record}
//   DELETE /v1/{c}/{id}            204 | 404
//   PUT    /v1/{c}/by-ref/{ref}    upsert by external_ref: 201 (made) or 200 (replaced) {"data": record}
//   GET    /v1/{c}?external_ref=K  200 {"data": [live records with that key]}
//   GET    /v1/{c}?updated_since=T[&after_id=I][&page_size=N]
//                                  changes sorted by (updated_at, id): updated_at >= T, or with after_id
//                                  (updated_at, id) > (T, I); deleted records as {"id", "updated_at", "deleted": true};
//                                  -> 200 {"data": [...], "has_more": bool}. Without updated_since: from the start.
//   POST   /oauth/token            grant_type=client_credentials (client in the form or Basic) -> {"access_token", "expires_in"}
//   GET    /_mock/requests, GET /_mock/records/{c}, POST /_mock/faults {"fail_next", "status", "retry_after",
//                                  "lose_answer_next", "expire_tokens", "rate_per_second", "rate_burst"}
// Records carry "id" ("cus_000001": the collection's first three letters and a zero-padded
// sequence, so text order is creation order), "created_at" and "updated_at" (RFC 3339, ms,
// UTC; never the same twice unless set_fixed_time says so). Errors are
// {"error": {"code", "message"}}. Every answer carries X-RateLimit-Limit / -Remaining /
// -Reset (seconds until the bucket is full) while a rate limit is on; a throttled request
// gets 429 with Retry-After.
//
// Thread-safety: every public method may be called from any thread while it serves.
#pragma once

#include "server/http_types.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace recsync::mock {

enum class RestAuth { None, Bearer, Basic, ApiKey, OAuth };

struct RestMockOptions {
    std::string address = "127.0.0.1";
    uint16_t port = 0;  // 0: any free port
    int threads = 2;
    RestAuth auth = RestAuth::None;
    std::string token;                // Bearer
    std::string username, password;   // Basic
    std::string api_key_header = "X-Api-Key";
    std::string api_key;              // ApiKey
    std::string client_id, client_secret;  // OAuth: POST /oauth/token issues bearer tokens
    int token_ttl_seconds = 3600;
    double rate_per_second = 0;  // 0: unlimited
    double rate_burst = 0;       // 0: max(1, rate_per_second)
    std::vector<std::string> collections = {"customers", "accounts"};
    std::string key_field = "external_ref";  // unique among a collection's live records
    size_t max_log_entries = 100'000;
    uint64_t seed = 0;  // fail_ratio's; 0: random
};

struct RestRecord {
    std::string collection;
    std::string id;
    nlohmann::json fields;  // as the client sent them (the server's id and stamps apart)
    std::string created_at, updated_at;
    bool deleted = false;
};

struct RestRequest {
    uint64_t seq = 0;
    int64_t at_ms = 0;  // arrival, epoch ms
    std::string method;
    std::string target;  // path and query, as sent
    std::string body;
    int status = 0;  // 0: the connection was reset unanswered
    std::string authorization;  // the Authorization header as sent: which token a call carried
};

struct RestCounters {
    uint64_t requests = 0;  // API requests (not /_mock/ nor /oauth/token)
    uint64_t created = 0, updated = 0, deleted = 0;
    uint64_t duplicates = 0;  // 409s for a taken external_ref
    uint64_t unauthorized = 0;
    uint64_t throttled = 0;  // 429s from the rate limit
    uint64_t injected_failures = 0;
    uint64_t lost_answers = 0;
    uint64_t tokens_issued = 0;
};

class RestMock {
public:
    explicit RestMock(RestMockOptions options = {});
    ~RestMock();
    RestMock(const RestMock &) = delete;
    RestMock &operator=(const RestMock &) = delete;

    void start();  // throws std::runtime_error naming the address
    void stop();   // idempotent; the records stay
    uint16_t port() const;
    std::string base_url() const;

    // Live records of `collection`, by id.
    std::vector<RestRecord> records(std::string_view collection) const;
    std::optional<RestRecord> record(std::string_view collection, std::string_view id) const;
    size_t record_count(std::string_view collection) const;
    std::vector<RestRequest> requests() const;
    RestCounters counters() const;

    // Changes made in the system itself (not through the API): a new record's id.
    std::string insert(std::string_view collection, const nlohmann::json &fields);
    void update(std::string_view collection, std::string_view id, const nlohmann::json &fields);  // merged
    void remove(std::string_view collection, std::string_view id);
    // Every write from now on is stamped `epoch_ms` (many records sharing one updated_at);
    // nullopt: the clock again.
    void set_fixed_time(std::optional<int64_t> epoch_ms);

    // Faults: the next `count` API requests answered `status` (with Retry-After if >= 0);
    // each with probability `ratio`; the next `count` handled (the change made) and then
    // the connection reset unanswered.
    void fail_next(int count, int status = 503, int retry_after_seconds = -1);
    void fail_ratio(double ratio, int status = 503);
    void lose_answer_next(int count);
    void set_rate_limit(double per_second, double burst = 0);
    // Every token issued so far expires now: the next call with one is answered 401.
    void expire_tokens();

    server::HttpResponse handle(const server::HttpRequest &request);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};


}  // namespace recsync::mock
