// One provider instance (one per connection) and typed, exception-safe calls into it.
// Every call copies its outputs out of the plugin (through the host api callbacks) and
// turns a non-OK status into PluginError carrying the plugin's message.
#pragma once

#include "plugin/provider_library.hpp"

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace recsync::plugin {

struct Header {
    std::string name;
    std::string value;
    bool secret = false;
};

struct BuiltRequest {
    std::string method;
    std::string path;
    std::string body;
    std::vector<Header> headers;
};

struct CallInput {
    recsync_action action = RECSYNC_ACTION_CREATE;
    std::string_view object;
    std::string_view record_key;
    std::string_view external_id;
    std::string_view payload;
    std::string_view access_token;
};

struct ResponseView {
    int status = 0;
    const std::vector<Header> *headers = nullptr;
    std::string_view body;
};

// What the server said about its own rate limit in one response (host_api.set_rate_limit,
// ABI 1.1), one per window it reported.
struct RateLimitReport {
    int64_t limit = 0;
    int64_t remaining = 0;
    int64_t window_ms = 0;
    int64_t reset_after_ms = 0;
};

struct CallResult {
    recsync_result_kind kind = RECSYNC_RESULT_FAIL;
    std::string external_id;
    int64_t retry_after_ms = 0;
    std::string error;
    std::vector<RateLimitReport> rate_limits;  // in the order reported
    std::string record;    // a READ's record (ABI 1.3), in transform(INBOUND)'s input form
    std::string modified;  // the record's modification stamp there after the call (ABI 1.3)
    int status = 0;        // a batch's record: its own HTTP status inside the answer (0: the call's)
};

// The answer to one batch call (ABI 1.6): a verdict per record and/or one for the batch.
struct BatchResult {
    std::optional<CallResult> batch;               // set_result: for records without their own
    std::vector<std::optional<CallResult>> items;  // per call, in the batch's order
    std::vector<RateLimitReport> rate_limits;
};

// One webhook delivery as received (borrowed for the call).
struct WebhookInput {
    std::string_view method;
    std::string_view path;  // with the query
    const std::vector<std::pair<std::string_view, std::string_view>> &headers;
    std::string_view body;
};

class ProviderInstance {
public:
    // Creates an instance from a connection's config. Throws PluginError with the
    // plugin's reason if creation fails.
    static std::unique_ptr<ProviderInstance> create(std::shared_ptr<ProviderLibrary> library, const nlohmann::json &config);
    ~ProviderInstance();

    const ProviderLibrary &library() const { return *library_; }
    const std::shared_ptr<ProviderLibrary> &library_ptr() const { return library_; }

    nlohmann::json describe() const;
    // Returns the transformed JSON text.
    std::string transform(recsync_direction direction, std::string_view object, std::string_view record_json) const;
    void validate(std::string_view object, std::string_view payload_json) const;
    BuiltRequest build_request(const CallInput &call) const;
    CallResult parse_response(const CallInput &call, const ResponseView &response) const;

    // Batches (RECSYNC_CAP_BATCH, ABI 1.6): one request for several calls of one object and
    // action, and a result per call from its answer.
    bool has_batches() const;
    BuiltRequest build_batch_request(const std::vector<CallInput> &calls) const;
    BatchResult parse_batch_response(const std::vector<CallInput> &calls, const ResponseView &response) const;

    // Webhooks (RECSYNC_CAP_WEBHOOKS): the events of one delivery (provider_abi.h). Throws
    // PluginError with status RECSYNC_ERR_UNAUTHENTICATED for a bad signature.
    bool has_webhooks() const;
    std::vector<nlohmann::json> parse_webhook(const WebhookInput &in) const;

    // Polling (RECSYNC_CAP_POLLING): the request for `object`'s changes after `cursor`,
    // and the page its answer holds. Throws PluginError for an answer with no page.
    bool has_polling() const;
    BuiltRequest build_poll_request(std::string_view object, std::string_view cursor, std::string_view access_token) const;
    struct PollPage {
        std::vector<nlohmann::json> events;  // parse_webhook's event form
        std::string cursor;                  // where the next request starts
        bool more = false;                   // ask for the next page now
    };
    PollPage parse_poll_response(std::string_view object, std::string_view cursor, const ResponseView &response) const;

    // Auth refresh (RECSYNC_CAP_AUTH_REFRESH): the token request the host runs, and the
    // token read from its answer.
    bool has_auth_refresh() const;
    BuiltRequest build_auth_request() const;
    struct AccessToken {
        std::string token;
        int64_t expires_in_seconds = 0;  // 0: valid until the server refuses it (ABI 1.5)
        std::string instance_url;        // where calls with it go; empty: the connection's base_url (ABI 1.5)
    };
    AccessToken parse_auth_response(const ResponseView &response) const;

private:
    ProviderInstance() = default;
    std::shared_ptr<ProviderLibrary> library_;
    void *instance_ = nullptr;
};

// The host api table handed to every plugin (static, lives for the process).
const recsync_host_api *host_api();

}  // namespace recsync::plugin
