// Who may call which endpoint: bearer tokens from server.* (config/config.hpp), compared
// in constant time. Webhooks are not here: their signature, checked by the connection's
// plugin, is their credential.
#pragma once

#include "config/config.hpp"
#include "server/http_types.hpp"

#include <array>
#include <string>
#include <vector>

namespace recsync::server {

enum class Access {
    Ingest,  // POST /v1/events: an ingest token (or open, see ServerConfig::open_ingest)
    Status,  // /metrics, /v1/status, the status page: the status or admin token, if a status token is set
    Admin,   // /v1/admin/*: the admin token
};

struct AccessCheck {
    bool allowed = false;
    std::string caller;  // allowed: the ingest token's name, "admin", "status" or "" (open)
    HttpResponse deny;   // refused: 401 (no or unknown token) or 403 (a token for other endpoints), with the reason
    std::string reason;  // refused: the reason, for the log
};

// The SHA-256 digests of a ServerConfig's tokens, made once (per runtime) so that a
// request hashes only the token it presents. The config must outlive it.
class AccessTokens {
public:
    using Digest = std::array<unsigned char, 32>;
    explicit AccessTokens(const config::ServerConfig &server);
    const config::ServerConfig &server() const { return *server_; }

private:
    friend AccessCheck check_access(const AccessTokens &tokens, const HttpRequest &request, Access access);
    const config::ServerConfig *server_;
    std::vector<Digest> ingest_;  // in ingest_tokens' order
    Digest admin_{}, status_{};
};

AccessCheck check_access(const AccessTokens &tokens, const HttpRequest &request, Access access);
// The same with the digests made for this call (tests, one-off checks).
AccessCheck check_access(const config::ServerConfig &server, const HttpRequest &request, Access access);

// Constant time in the contents (both are hashed first, so not even the length shows).
bool same_secret(std::string_view a, std::string_view b);

}  // namespace recsync::server
