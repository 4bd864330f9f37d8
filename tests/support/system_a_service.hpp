// System A's service as recsync's built-in http connector calls it (connectors/http/):
// a real HTTP listener on loopback that checks each call's signature, for integration
// tests of System B -> A. Header-only; link recsync_core.
#pragma once

#include "connectors/http/http_target.hpp"
#include "server/http_listener.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace recsync::testkit {

// System A's service: keeps what recsync PUTs, forgets what it DELETEs, and refuses
// (401) any call whose signature does not hold.
class SystemA {
public:
    explicit SystemA(std::string signing_secret)
        : secret_(std::move(signing_secret)), listener_({"127.0.0.1", 0, 1 << 20, 2}, [this](const server::HttpRequest &r) { return handle(r); }) {
        listener_.start();
    }
    ~SystemA() { listener_.stop(); }
    std::string base_url() const { return "http://127.0.0.1:" + std::to_string(listener_.port()); }
    std::optional<nlohmann::json> record(const std::string &path) {
        std::lock_guard l(mutex_);
        const auto it = records_.find(path);
        return it == records_.end() ? std::nullopt : std::optional<nlohmann::json>(it->second);
    }
    int calls() {
        std::lock_guard l(mutex_);
        return calls_;
    }
    // PUTs per path since start.
    std::map<std::string, int> puts() {
        std::lock_guard l(mutex_);
        return puts_;
    }
    size_t size() {
        std::lock_guard l(mutex_);
        return records_.size();
    }
    // System A's own users: a record changed or deleted there, not through recsync.
    void set(const std::string &path, nlohmann::json record) {
        std::lock_guard l(mutex_);
        records_[path] = std::move(record);
    }
    bool erase(const std::string &path) {
        std::lock_guard l(mutex_);
        return records_.erase(path) > 0;
    }
    // Called (under the service's lock: keep it short) with every PUT recsync makes.
    void on_put(std::function<void(const std::string &path, const nlohmann::json &record)> f) {
        std::lock_guard l(mutex_);
        on_put_ = std::move(f);
    }
    int bad_signatures() {
        std::lock_guard l(mutex_);
        return bad_signatures_;
    }

private:
    server::HttpResponse handle(const server::HttpRequest &r) {
        std::lock_guard l(mutex_);
        ++calls_;
        const auto ts = std::string(r.header("x-recsync-timestamp"));
        if (ts.empty() || std::string(r.header("x-recsync-signature")) != connectors::http::signature(secret_, ts, r.method, r.target, r.body)) {
            ++bad_signatures_;
            return server::HttpResponse::error(401, "bad signature");
        }
        if (r.method == "PUT") {
            records_[r.target] = nlohmann::json::parse(r.body);
            ++puts_[r.target];
            if (on_put_) on_put_(r.target, records_[r.target]);
            return server::HttpResponse::json(200, "{}");
        }
        if (r.method == "DELETE") return records_.erase(r.target) ? server::HttpResponse::json(204, "") : server::HttpResponse::error(404, "none");
        return server::HttpResponse::error(405, "no");
    }

    std::string secret_;
    server::HttpListener listener_;
    std::mutex mutex_;
    std::map<std::string, nlohmann::json> records_;
    std::map<std::string, int> puts_;
    std::function<void(const std::string &, const nlohmann::json &)> on_put_;
    int calls_ = 0, bad_signatures_ = 0;
};

}  // namespace recsync::testkit
