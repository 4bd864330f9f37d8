#include "webhook_sender.hpp"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>

namespace recsync::mock {

namespace {

constexpr size_t kMaxEventsPerDelivery = 100;  // HubSpot's batches are at most 100 events

int64_t now_ms() { return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count(); }

size_t discard(char *, size_t size, size_t n, void *) { return size * n; }

// Aborts a transfer in flight once the sender stops (a receiver that hangs must not hold
// up the mock's destruction for the whole timeout).
int abort_if_stopping(void *stopping, curl_off_t, curl_off_t, curl_off_t, curl_off_t) { return static_cast<std::atomic<bool> *>(stopping)->load() ? 1 : 0; }

// One POST; true if answered 2xx.
bool post(const WebhookTarget &t, const std::string &body, std::atomic<bool> &stopping) {
    CURL *curl = curl_easy_init();
    if (!curl) return false;
    const std::string ts = std::to_string(now_ms());
    curl_slist *headers = nullptr;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, ("X-HubSpot-Signature-v3: " + hubspot_v3_signature(t.secret, "POST", t.signed_url, body, ts)).c_str());
    headers = curl_slist_append(headers, ("X-HubSpot-Request-Timestamp: " + ts).c_str());
    curl_easy_setopt(curl, CURLOPT_URL, t.post_url.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10'000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, abort_if_stopping);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &stopping);
    long status = 0;
    const bool sent = curl_easy_perform(curl) == CURLE_OK && curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK;
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return sent && status >= 200 && status < 300;
}

}  // namespace

std::string hubspot_v3_signature(const std::string &secret, const std::string &method, const std::string &url, const std::string &body, const std::string &timestamp) {
    const std::string source = method + url + body + timestamp;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char *>(source.data()), source.size(), mac, &len);
    std::string b64(4 * ((len + 2) / 3) + 1, '\0');
    b64.resize(static_cast<size_t>(EVP_EncodeBlock(reinterpret_cast<unsigned char *>(b64.data()), mac, static_cast<int>(len))));
    return b64;
}

WebhookSender::WebhookSender() : thread_([this] { run(); }) {}

WebhookSender::~WebhookSender() {
    {
        std::lock_guard l(mu_);
        stopping_ = true;
        abort_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void WebhookSender::set_target(std::optional<WebhookTarget> target) {
    {
        std::lock_guard l(mu_);
        target_ = std::move(target);
    }
    cv_.notify_all();
}

void WebhookSender::emit(nlohmann::json event) {
    {
        std::lock_guard l(mu_);
        if (!target_) return;
        queue_.push_back(std::move(event));
    }
    cv_.notify_all();
}

WebhookStats WebhookSender::stats() const {
    std::lock_guard l(mu_);
    WebhookStats s = stats_;
    s.queued = queue_.size();
    return s;
}

void WebhookSender::run() {
    auto backoff = std::chrono::milliseconds(50);
    int attempt = 0;  // of the delivery at the head of the queue
    std::unique_lock l(mu_);
    while (true) {
        cv_.wait(l, [&] { return stopping_ || (target_ && !queue_.empty()); });
        if (stopping_) return;
        const WebhookTarget target = *target_;
        const size_t n = std::min(queue_.size(), kMaxEventsPerDelivery);
        nlohmann::json batch = nlohmann::json::array();
        for (size_t i = 0; i < n; ++i) {
            nlohmann::json e = queue_[i];
            e["attemptNumber"] = attempt;
            batch.push_back(std::move(e));
        }
        l.unlock();
        const bool ok = post(target, batch.dump(), abort_);
        l.lock();
        if (ok) {
            queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(std::min(n, queue_.size())));
            stats_.events_sent += n;
            ++stats_.deliveries;
            backoff = std::chrono::milliseconds(50);
            attempt = 0;
        } else {
            ++stats_.failed_attempts;
            ++attempt;
            cv_.wait_for(l, backoff, [&] { return stopping_; });
            backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
        }
    }
}

}  // namespace recsync::mock
