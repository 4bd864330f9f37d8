#include "server/access.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <array>

namespace recsync::server {

namespace {

using Digest = AccessTokens::Digest;
static_assert(std::tuple_size_v<Digest> == SHA256_DIGEST_LENGTH);

Digest digest_of(std::string_view s) {
    Digest d{};
    SHA256(reinterpret_cast<const unsigned char *>(s.data()), s.size(), d.data());
    return d;
}

bool same_digest(const Digest &a, const Digest &b) { return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0; }

AccessCheck refused(int status, std::string reason) {
    AccessCheck out;
    out.deny = HttpResponse::error(status, reason);
    if (status == 401) out.deny.headers.emplace_back("WWW-Authenticate", "Bearer");
    out.reason = std::move(reason);
    return out;
}

const char *endpoints(Access access) { return access == Access::Ingest ? "events" : access == Access::Admin ? "admin endpoint" : "status endpoint"; }

}  // namespace

bool same_secret(std::string_view a, std::string_view b) { return same_digest(digest_of(a), digest_of(b)); }

AccessTokens::AccessTokens(const config::ServerConfig &server) : server_(&server) {
    ingest_.reserve(server.ingest_tokens.size());
    for (const auto &t : server.ingest_tokens) ingest_.push_back(digest_of(t.token));
    if (!server.admin_token.empty()) admin_ = digest_of(server.admin_token);
    if (!server.status_token.empty()) status_ = digest_of(server.status_token);
}

AccessCheck check_access(const config::ServerConfig &server, const HttpRequest &request, Access access) {
    return check_access(AccessTokens(server), request, access);
}

AccessCheck check_access(const AccessTokens &tokens, const HttpRequest &request, Access access) {
    const config::ServerConfig &server = tokens.server();
    if (access == Access::Ingest && server.open_ingest()) return {true, "", {}, {}};
    if (access == Access::Status && server.status_token.empty()) return {true, "", {}, {}};
    if (access == Access::Admin && server.admin_token.empty())
        return refused(403, "admin endpoints are disabled: set server.admin_token_env (or admin_token_file) to a token");
    const auto auth = request.header("authorization");
    constexpr std::string_view prefix = "Bearer ";
    if (auth.size() <= prefix.size() || auth.substr(0, prefix.size()) != prefix)
        return refused(401, std::string(endpoints(access)) + ": an Authorization: Bearer token is required");
    const auto given = digest_of(auth.substr(prefix.size()));
    // Every configured token is compared, whichever matches: the time taken does not say
    // which one, or how many there are before it.
    const config::ServerConfig::IngestToken *ingest = nullptr;
    for (size_t i = 0; i < tokens.ingest_.size(); ++i)
        if (same_digest(given, tokens.ingest_[i])) ingest = &server.ingest_tokens[i];
    const bool admin = !server.admin_token.empty() && same_digest(given, tokens.admin_);
    const bool status = !server.status_token.empty() && same_digest(given, tokens.status_);
    const bool fits = access == Access::Ingest ? ingest != nullptr : access == Access::Admin ? admin : admin || status;
    if (fits) return {true, ingest ? ingest->name : admin ? "admin" : "status", {}, {}};
    if (ingest || admin || status)
        return refused(403, std::string("this token is not for ") +
                                (access == Access::Ingest ? "sending events" : access == Access::Admin ? "admin endpoints" : "status endpoints"));
    return refused(401, std::string(endpoints(access)) + ": unknown bearer token");
}

}  // namespace recsync::server
