// An in-memory imitation of HubSpot's CRM v3 objects API, served over HTTP by recsync_http.
// Used in-process by integration tests, and as the `recsync-mock-crm` executable by the
// quickstart script and the benchmarks. See README.md in this folder for the HTTP surface.
//
// Thread-safety: every public method may be called from any thread while the server runs.
#pragma once

#include "server/http_types.hpp"
#include "webhook_sender.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace recsync::mock {

struct MockCrmOptions {
    std::string address = "127.0.0.1";
    uint16_t port = 0;  // 0: pick a free port (see MockCrm::port)
    int threads = 2;
    size_t max_body_bytes = 4 << 20;
    // Required "Authorization: Bearer <token>"; empty disables the check (unless OAuth is on).
    std::string token;
    // OAuth client credentials: when client_id is set, POST /oauth/v1/token with
    // grant_type=client_credentials, client_id and client_secret (form or JSON body) issues
    // a bearer token valid for oauth_token_ttl_seconds, and API calls need a live one (or
    // `token`). An expired token is answered 401.
    std::string oauth_client_id;
    std::string oauth_client_secret;
    int oauth_token_ttl_seconds = 1800;
    // Token bucket over all API requests. rate_per_second 0 = unlimited;
    // rate_burst 0 = max(1, rate_per_second). The bucket starts full.
    double rate_per_second = 0;
    double rate_burst = 0;
    // What the rate limiter answers when the bucket is empty: 429 (HubSpot's "secondly
    // limit"), or 503 (an overloaded server or gateway), either with Retry-After.
    int throttle_status = 429;
    // Every Retry-After the mock sends (rate limiter and injected failures) as an HTTP-date
    // (RFC 7231 IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT") instead of delay-seconds: the
    // same wait, rounded up to a whole second so it is never shorter.
    bool retry_after_http_date = false;
    // Fixed delay before answering each API request. It blocks an I/O thread (the listener's
    // handlers are synchronous), so raise `threads` to keep throughput with high latency.
    int latency_ms = 0;
    // Answers every request `delay_ms` after it came, holding no thread meanwhile (the
    // request takes effect at once; its answer waits): a slow CRM that scales, where
    // latency_ms would make the mock's threads the limit.
    int delay_ms = 0;
    // Keep the log of API requests (GET /_mock/requests). Benchmarks turn it off.
    bool log_requests = true;
    size_t max_log_entries = 100000;  // oldest entries are dropped beyond this
    size_t max_batch_inputs = 100;    // HubSpot's batch limit
    uint64_t seed = 0;                // for fail_ratio; 0 = random
};

struct Record {
    std::string object;  // "contacts", "companies", ...
    std::string id;
    // Includes the server-set createdate, lastmodifieddate and hs_object_id.
    std::map<std::string, std::string> properties;
    std::string created_at;  // ISO 8601, millisecond precision, UTC
    std::string updated_at;
};

struct LoggedRequest {
    uint64_t seq = 0;    // 1-based, increasing; survives dropping of old entries
    int64_t at_ms = 0;   // arrival, milliseconds since the Unix epoch
    std::string method;
    std::string target;  // path and query, as sent
    std::string body;
    int status = 0;      // status answered
};

struct Counters {
    uint64_t requests = 0;           // API requests (not /_mock/)
    uint64_t created = 0;            // records created (single create and upsert)
    uint64_t updated = 0;            // records updated (PATCH and upsert)
    uint64_t deleted = 0;
    uint64_t rejected_429 = 0;       // by the rate limiter, with throttle_status 503 too (not injected failures)
    uint64_t injected_failures = 0;  // fail_next + fail_ratio
    uint64_t duplicates = 0;         // creates whose email matched a live record (answered 409)
    uint64_t unauthorized = 0;       // 401s
    uint64_t bad_requests = 0;       // 400s
    uint64_t not_found = 0;          // 404s
    uint64_t conflicts = 0;          // all 409s, duplicates included
    uint64_t log_dropped = 0;        // request log entries dropped by the cap
    uint64_t tokens_issued = 0;      // OAuth tokens issued
    uint64_t resets = 0;             // requests answered by resetting the connection
    uint64_t hangs = 0;              // requests left unanswered for hang_ms, then reset
    uint64_t lost_answers = 0;       // requests handled (the change made), then reset unanswered
    uint64_t connections = 0;        // TCP connections accepted (API and /_mock/ alike)
};

// Current fault settings, as set by the fault methods or POST /_mock/faults.
struct FaultState {
    int fail_next = 0;  // remaining
    int fail_next_status = 503;
    int fail_next_retry_after = -1;  // seconds; -1 = no Retry-After header
    double fail_ratio = 0;
    int fail_ratio_status = 503;
    int fail_ratio_retry_after = -1;
    int latency_ms = 0;
    double rate_per_second = 0;
    double rate_burst = 0;
    int throttle_status = 429;           // the rate limiter's answer
    bool retry_after_http_date = false;  // Retry-After as an HTTP-date, not seconds
    // Connection faults, decided before auth and the rate limiter (the request never
    // reaches the application): the connection is reset without an answer, at once or
    // after hang_ms (longer than the client's timeout, so it gives up first).
    int reset_next = 0;  // remaining
    double reset_ratio = 0;
    int hang_next = 0;  // remaining
    double hang_ratio = 0;
    int hang_ms = 5000;
    // The request IS handled (a create makes its record), then the connection is reset
    // without the answer: what a client sees when the network or its own process fails
    // between the server's commit and the answer.
    int lose_answer_next = 0;  // remaining
    double lose_answer_ratio = 0;
};

class MockCrm {
public:
    explicit MockCrm(MockCrmOptions options = {});
    ~MockCrm();
    MockCrm(const MockCrm &) = delete;
    MockCrm &operator=(const MockCrm &) = delete;

    // Binds and serves; a no-op while serving. Throws std::runtime_error naming the address on failure.
    void start();
    // Stops serving and closes every connection. Idempotent; start() may be called again
    // (with port 0 the new port may differ). State is kept.
    void stop();
    uint16_t port() const;
    // "http://<address>:<port>" (after start).
    std::string base_url() const;

    // Webhooks: from now on every change made through the API (creation, each property
    // whose value changed, deletion) goes to `target`, v3-signed (webhook_sender.hpp);
    // nullopt stops them.
    void set_webhooks(std::optional<WebhookTarget> target);
    WebhookStats webhook_stats() const;
    // Every write from now on is stamped `epoch_ms` (createdate, lastmodifieddate,
    // updatedAt): the test mode where thousands of records share one timestamp, as a bulk
    // import leaves them. nullopt: the clock again.
    void set_fixed_modified(std::optional<int64_t> epoch_ms);
    // Search does not see writes younger than `lag` (HubSpot's index lags by seconds).
    void set_search_lag(std::chrono::milliseconds lag);
    // Search does not see record `id` of `object` for `how_long` from now, whatever its
    // timestamp: a record the index shows late while younger ones already show.
    void hide_from_search(std::string_view object, std::string_view id, std::chrono::milliseconds how_long);

    // Live records of `object` (all objects if empty), ordered by object then numeric id.
    std::vector<Record> records(std::string_view object = {}) const;
    std::optional<Record> record(std::string_view object, std::string_view id) const;
    size_t record_count(std::string_view object = {}) const;
    std::vector<LoggedRequest> requests() const;
    Counters counters() const;
    FaultState faults() const;

    // Back to the freshly constructed state: no records, empty log, zero counters, no faults,
    // the configured latency, rate limit, throttle status and Retry-After form, a full bucket. Ids keep increasing (never reused)
    // so that an id captured before a reset cannot silently address a new record.
    void reset();

    // Fail the next `count` API requests with `status` (Retry-After: `retry_after_seconds`
    // if >= 0). They are counted as they pass auth and the rate limiter.
    void fail_next(int count, int status = 503, int retry_after_seconds = -1);
    // Fail each API request with probability `ratio` (0 disables).
    void fail_ratio(double ratio, int status = 503, int retry_after_seconds = -1);
    // Reset the connection (no answer) for the next `count` API requests / for each with
    // probability `ratio`.
    void reset_next(int count);
    void reset_ratio(double ratio);
    // Leave the next `count` API requests / each with probability `ratio` unanswered for
    // `hang`, then reset the connection. The wait does not hold an I/O thread.
    void hang_next(int count, std::chrono::milliseconds hang = std::chrono::seconds(5));
    void hang_ratio(double ratio, std::chrono::milliseconds hang = std::chrono::seconds(5));
    // Handle the next `count` API requests / each with probability `ratio`, then reset the
    // connection instead of answering (the change is made, the client never hears of it).
    void lose_answer_next(int count);
    void lose_answer_ratio(double ratio);
    // Clears fail_*, reset_*, hang_* and lose_answer_* (not latency, the rate limit or the
    // form of its answers).
    void clear_faults();
    void set_latency(std::chrono::milliseconds latency);
    // Replaces the limiter (and refills the bucket); per_second 0 = unlimited.
    void set_rate_limit(double per_second, double burst = 0);
    // What the limiter answers with when the bucket is empty: 429 or 503 (else invalid_argument).
    void set_throttle_status(int status);
    // Retry-After as an HTTP-date (true) or delay-seconds (false); see MockCrmOptions.
    void set_retry_after_http_date(bool http_date);
    void set_request_log(bool enabled);

    // Makes every issued OAuth token expire now (the next API call with one gets 401).
    void expire_tokens();

    // The request handler itself, usable without sockets (e.g. in-process benchmarks).
    server::HttpResponse handle(const server::HttpRequest &request);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace recsync::mock
