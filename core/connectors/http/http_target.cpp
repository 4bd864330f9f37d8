#include "connectors/http/http_target.hpp"

#include "connectors/keyed_target.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <set>

namespace recsync::connectors::http {

namespace {

using sdk::Action;
using sdk::Call;
using sdk::ConfigError;
using sdk::json;
using sdk::Request;
using sdk::Response;
using sdk::Result;

constexpr size_t kMaxReasonBytes = 300;

std::string printable(std::string_view body) {
    std::string out;
    for (unsigned char c : body.substr(0, kMaxReasonBytes)) out += (c >= 0x20 && c < 0x7F) ? static_cast<char>(c) : '?';
    if (body.size() > kMaxReasonBytes) out += "...";
    return out;
}

// settings.objects: path segments.
std::set<std::string> configured_objects(const json &config) {
    const auto objects = config.find("objects");
    if (objects == config.end() || !objects->is_array() || objects->empty())
        throw ConfigError("http connection: settings.objects must list the objects System A takes (e.g. [contacts])");
    std::set<std::string> names;
    for (const auto &o : *objects) {
        const std::string name = o.is_string() ? o.get<std::string>() : std::string();
        if (name.empty() || name.find_first_of("/?#%") != std::string::npos)
            throw ConfigError("http connection: settings.objects: " + o.dump() + " is not an object name (a path segment)");
        names.insert(name);
    }
    return names;
}

class HttpTarget final : public KeyedTarget {
public:
    explicit HttpTarget(const json &config)
        : KeyedTarget(configured_objects(config), {"http", "this http connection's settings.objects", "System A's record"}) {
        if (const auto c = config.find("credentials"); c != config.end() && c->is_object()) secret_ = c->value("signing_secret", std::string());
        if (secret_.empty())
            throw ConfigError("http connection: needs a signing secret for System A to check its calls: credentials: { signing_secret_env: VAR }");
        // The path as System A sees it starts with the base URL's own path, if any.
        const std::string base = config.value("base_url", std::string());
        const auto scheme = base.find("://");
        const auto slash = scheme == std::string::npos ? std::string::npos : base.find('/', scheme + 3);
        if (slash != std::string::npos) base_path_ = base.substr(slash);
        while (!base_path_.empty() && base_path_.back() == '/') base_path_.pop_back();
    }

    // A PUT by our key is idempotent: an in-doubt create is simply sent again.
    Request build_request(const Call &call) override {
        Request req = keyed_request(call);
        const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
        const std::string ts = std::to_string(now);
        if (!req.body.empty()) req.headers.push_back({"Content-Type", "application/json", false});
        req.headers.push_back({"X-Recsync-Timestamp", ts, false});
        // Not a secret itself (it proves one call), but it names no one either.
        req.headers.push_back({"X-Recsync-Signature", signature(secret_, ts, req.method, base_path_ + req.path, req.body), false});
        if (!call.access_token.empty()) req.headers.push_back(sdk::bearer_authorization(call.access_token));
        return req;
    }

    Result parse_response(const Call &call, const Response &response) override {
        const int s = response.status;
        const std::string key(call.record_key);
        if (s >= 200 && s < 300) {
            Result r = Result::ok(key);  // System A keeps the record under our key
            if (call.action == Action::Read) {
                const json body = json::parse(response.body, nullptr, false);
                if (!body.is_object()) return Result::fail("System A answered the read with a body that is not a JSON object");
                r.record = body.dump();
            }
            return r;
        }
        if (s == 404 && call.action == Action::Delete) return Result::ok(key);  // already gone
        const std::string why = "System A returned " + std::to_string(s) + (response.body.empty() ? "" : ": " + printable(response.body));
        if (s == 429 || s == 408 || (s >= 500 && s < 600)) return Result::retry(why, sdk::retry_after_ms(response.header("Retry-After")).value_or(0));
        return Result::fail(why);
    }

private:
    std::string secret_;
    std::string base_path_;
};

}  // namespace

std::string signature(std::string_view secret, std::string_view timestamp, std::string_view method, std::string_view path, std::string_view body) {
    std::string source(timestamp);
    source.append(".").append(method).append(".").append(path).append(".").append(body);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char *>(source.data()), source.size(), mac, &len);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out = "v1=";
    for (unsigned i = 0; i < len; ++i) {
        out += kHex[mac[i] >> 4];
        out += kHex[mac[i] & 15];
    }
    return out;
}

const recsync_provider &descriptor() {
    static const recsync_provider *d = sdk::detail::entry<HttpTarget>(kProviderId, "1.0.0", 0, RECSYNC_ABI_VERSION, RECSYNC_ABI_VERSION);
    return *d;
}

}  // namespace recsync::connectors::http
