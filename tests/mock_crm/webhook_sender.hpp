// The mock CRM's webhooks: every change made through its API (recsync's own included, as a
// real CRM sends them) goes to one subscriber as HubSpot v3-signed deliveries of up to 100
// events, in order; a delivery that fails (no answer, or not 2xx) is sent again after a
// backoff (50 ms, doubling to 2 s), the events behind it waiting.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace recsync::mock {

struct WebhookTarget {
    std::string post_url;    // where deliveries go
    std::string signed_url;  // the URL the signature covers (a TLS proxy in front may differ)
    std::string secret;      // the app's client secret
};

struct WebhookStats {
    uint64_t events_sent = 0;      // events in deliveries answered 2xx
    uint64_t deliveries = 0;       // deliveries answered 2xx
    uint64_t failed_attempts = 0;  // deliveries sent again
    size_t queued = 0;             // events not yet delivered
};

class WebhookSender {
public:
    WebhookSender();
    ~WebhookSender();
    WebhookSender(const WebhookSender &) = delete;
    WebhookSender &operator=(const WebhookSender &) = delete;

    // nullopt: no subscriber (events are dropped, as a CRM without one would).
    void set_target(std::optional<WebhookTarget> target);
    // Queues one HubSpot event object (eventId, occurredAt, subscriptionType, objectId, ...).
    void emit(nlohmann::json event);
    WebhookStats stats() const;

private:
    void run();

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::optional<WebhookTarget> target_;
    std::deque<nlohmann::json> queue_;
    WebhookStats stats_;
    bool stopping_ = false;
    std::atomic<bool> abort_{false};  // stopping_, read by a transfer in flight
    std::thread thread_;
};

// HubSpot's v3 signature: base64(HMAC-SHA256(secret, method + url + body + timestamp)).
std::string hubspot_v3_signature(const std::string &secret, const std::string &method, const std::string &url, const std::string &body,
                                 const std::string &timestamp);

}  // namespace recsync::mock
