// OAuth 2.0 for a salesforce connection, run by the host (RECSYNC_CAP_AUTH_REFRESH): the
// client credentials flow, or the JWT bearer flow with an RS256 assertion signed by the
// connected app's private key. Neither answer states a lifetime or brings a refresh token:
// the token is used until a call is refused with 401 (ABI 1.5), then fetched again. Calls
// go to the answer's instance_url, never to the login host.
#pragma once

#include "salesforce_settings.hpp"

#include <memory>
#include <string>

namespace salesforce {

// The private key, parsed once at create_instance. Signing is thread-safe (a context per call).
class Rs256Signer {
public:
    // Throws sdk::ConfigError when the PEM is not an RSA private key.
    explicit Rs256Signer(const std::string &pem);
    ~Rs256Signer();
    Rs256Signer(const Rs256Signer &) = delete;
    Rs256Signer &operator=(const Rs256Signer &) = delete;
    std::string sign(std::string_view data) const;  // the raw signature bytes

private:
    struct Key;
    std::unique_ptr<Key> key_;
};

std::string base64url(std::string_view bytes);

// The JWT bearer assertion: {"alg":"RS256"} . {iss, sub, aud, exp} . signature, exp
// `lifetime_s` after `now_s` (Salesforce takes at most 3 minutes).
std::string jwt_assertion(const Settings &s, const Rs256Signer &signer, int64_t now_s, int64_t lifetime_s = 180);

// POST /services/oauth2/token, form-encoded; the body carries secrets (marked, never logged).
recsync::sdk::Request token_request(const Settings &s, const Rs256Signer *signer, int64_t now_s);

struct TokenAnswer {
    std::string access_token;
    std::string instance_url;
    std::string user_id;  // the last segment of the answer's identity URL ("id"), if any
};
// Throws sdk::InvalidInput with Salesforce's error and description (never a secret).
TokenAnswer parse_token_answer(const recsync::sdk::Response &response);

}  // namespace salesforce
