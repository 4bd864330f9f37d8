// An in-memory imitation of Salesforce's REST API for one org, served over HTTP by
// recsync_http: the OAuth token endpoint (client credentials and the JWT bearer flow,
// whose RS256 assertion it verifies), sObject create / update / upsert by an External ID
// (300 on duplicates) / delete / read, the same as sObject Collections (composite/sobjects:
// up to 200 records per call, allOrNone false, a result per record in order), the SOQL subset recsync sends (lookups and the
// SystemModstamp poll, through query and queryAll, paged by nextRecordsUrl), the org's
// daily API quota (Sforce-Limit-Info, 403 REQUEST_LIMIT_EXCEEDED) and faults. Used by the
// plugin's end-to-end tests and `recsync-mock-crm --personality salesforce`.
//
// The API lives under the instance URL the token answer names (base_url() + "/instance"),
// not under the login URL: a client that ignores instance_url gets 404s.
//
// Thread-safety: every public method may be called from any thread while the server runs.
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

struct SalesforceMockOptions {
    std::string address = "127.0.0.1";
    uint16_t port = 0;
    int threads = 2;
    std::string api_version = "60.0";
    std::string client_id = "mock-consumer-key";
    std::string client_secret = "mock-consumer-secret";
    // JWT bearer: the connected app's certificate (public key PEM) and the user the
    // assertion's sub must name; empty public key: the flow is refused.
    std::string jwt_public_key_pem;
    std::string jwt_username = "integration@example.com";
    // External ID fields per sObject type ("Account" -> "Recsync_Key__c"); upserts on
    // any other field are 404 NOT_FOUND, as for a field that is not an External ID.
    std::vector<std::pair<std::string, std::string>> external_id_fields = {{"Account", "Recsync_Key__c"}, {"Contact", "Recsync_Key__c"}};
    // Whether an External ID field is also Unique: then a create with a value a live
    // record has is 400 DUPLICATE_VALUE. Not unique: duplicates can be made (and an
    // upsert on the value answers 300).
    bool external_ids_unique = true;
    int64_t daily_api_limit = 15000;  // Sforce-Limit-Info api-usage=N/limit; 0 = unlimited
    bool log_requests = true;
};

struct SalesforceRecord {
    std::string type;
    std::string id;
    nlohmann::json fields = nlohmann::json::object();  // without Id and the system fields
    int64_t created_ms = 0;
    int64_t modstamp_ms = 0;
    std::string last_modified_by;
    bool deleted = false;
};

struct SalesforceRequest {
    std::string method;
    std::string target;
    std::string body;
    std::string call_options;  // the Sforce-Call-Options header
    int status = 0;            // 0: the answer was dropped
};

struct SalesforceCounters {
    uint64_t api_requests = 0;
    uint64_t created = 0;
    uint64_t updated = 0;
    uint64_t deleted = 0;
    uint64_t tokens_issued = 0;
    uint64_t token_refusals = 0;  // token requests refused (bad secret, bad assertion)
    uint64_t unauthorized = 0;    // API calls with no live token
    uint64_t limit_exceeded = 0;  // 403 REQUEST_LIMIT_EXCEEDED
    uint64_t multiple_choices = 0;  // 300 on upsert
    uint64_t lost_answers = 0;
    uint64_t collection_calls = 0;  // sObject Collections (composite/sobjects) calls
};

class SalesforceMock {
public:
    explicit SalesforceMock(SalesforceMockOptions options = {});
    ~SalesforceMock();
    SalesforceMock(const SalesforceMock &) = delete;
    SalesforceMock &operator=(const SalesforceMock &) = delete;

    void start();
    void stop();
    uint16_t port() const;
    std::string base_url() const;      // the login URL: a connection's base_url
    std::string instance_url() const;  // where the API is (the token answer's instance_url)
    std::string user_id() const;       // the integration user the tokens belong to

    // Live records of `type` (all types if empty), in creation order; deleted ones too if asked.
    std::vector<SalesforceRecord> records(std::string_view type = {}, bool with_deleted = false) const;
    std::optional<SalesforceRecord> record(std::string_view type, std::string_view id) const;
    size_t record_count(std::string_view type = {}) const;
    std::vector<SalesforceRequest> requests() const;
    SalesforceCounters counters() const;

    // A change made in Salesforce by someone else (a user in its UI): what polling finds.
    std::string create_as_user(std::string_view type, const nlohmann::json &fields);
    void update_as_user(std::string_view type, std::string_view id, const nlohmann::json &fields);
    void delete_as_user(std::string_view type, std::string_view id);
    // Every write from now on gets SystemModstamp `epoch_ms` (nullopt: the clock again).
    void set_fixed_modstamp(std::optional<int64_t> epoch_ms);

    // Faults. The next `count` API calls fail with `status` and one error of `error_code`.
    void fail_next(int count, int status, std::string error_code, std::string message = "injected failure");
    // The next `count` API calls are handled (a create makes its record), then the
    // connection is reset unanswered; or each with probability `ratio`.
    void lose_answer_next(int count);
    void lose_answer_ratio(double ratio);
    // Every issued token is invalid from now on (401 INVALID_SESSION_ID).
    void expire_tokens();
    // Open query locators are forgotten (400 INVALID_QUERY_LOCATOR).
    void expire_query_locators();
    // The org's API usage so far today (Sforce-Limit-Info's N), and its limit.
    void set_api_usage(int64_t used, int64_t limit);
    int64_t api_usage() const;

    server::HttpResponse handle(const server::HttpRequest &request);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace recsync::mock
