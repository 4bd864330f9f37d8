// How the REST provider's calls carry their credential (settings `auth:`), and the
// client-credentials token request the host runs for rest_oauth.
#pragma once

#include "rest_settings.hpp"

namespace rest {

// The credential's headers (marked secret) for a call whose connection's current token
// is `access_token` (bearer: the connection's token_env; oauth: the host's cached token).
// Throws sdk::InvalidInput when the kind needs a token the host did not give.
void add_auth_headers(const AuthSpec &auth, std::string_view access_token, std::vector<recsync::sdk::Header> &headers);

// POST <token_path> with grant_type=client_credentials, form-encoded.
recsync::sdk::Request token_request(const AuthSpec &auth);

// {"access_token", "expires_in"} from the token endpoint's answer; throws
// sdk::InvalidInput with the reason (secrets redacted) for anything else.
json token_from_answer(const AuthSpec &auth, const recsync::sdk::Response &response, const std::vector<std::string> &secrets);

}  // namespace rest
