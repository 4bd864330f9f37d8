// The CLI's client for a running recsync's own HTTP API (dlq, status): the address is the
// config's server.listen (loopback for an all-addresses listen), over HTTPS when
// server.tls is set, trusting the listener's own certificate file (curl accepts a
// certificate in the CA file as a trust anchor itself). RECSYNC_URL overrides the base
// URL, e.g. https://sync.example.com:8443 when the certificate names only the host's name.
#pragma once

#include <string>

namespace recsync::config {
struct EngineConfig;
}

namespace recsync::cli {

struct ApiReply {
    long status = 0;  // 0: nothing answered (not running, or TLS refused)
    std::string body;
    std::string error;  // curl's reason when status is 0
};

// `token`: sent as a bearer token when not empty.
ApiReply api_call(const config::EngineConfig &cfg, const std::string &method, const std::string &path, const std::string &token);

}  // namespace recsync::cli
