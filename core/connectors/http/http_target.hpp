// The built-in `http` connector: System A's own service as a target (B -> A). A
// connection with `provider: http` delivers each inbound change to
//   PUT    <base_url>/<object>/<record key>   body: the mapped record (JSON)
//   DELETE <base_url>/<object>/<record key>
// on a lane like any CRM's (rate, retries, dead letters), signed so that System A can
// tell recsync's calls from anyone else's:
//   X-Recsync-Timestamp: <epoch ms>
//   X-Recsync-Signature: v1=<hex HMAC-SHA256(secret, timestamp "." method "." path "." body)>
// (path: as sent, from the first '/' after the host, with the query). A PUT by our key is
// idempotent, so a create whose answer was lost is simply sent again.
//
// It is a provider like the plugins (the same descriptor and calls, see provider_abi.h),
// compiled in rather than loaded: System A's side must not depend on a drop-in file.
#pragma once

#include <recsync/provider_abi.h>

#include <string>
#include <string_view>

namespace recsync::connectors::http {

inline constexpr const char *kProviderId = "http";

// The descriptor (static, lives for the process).
const recsync_provider &descriptor();

// The signature header's value for one request (exposed for tests and System A's side).
std::string signature(std::string_view secret, std::string_view timestamp, std::string_view method, std::string_view path, std::string_view body);

}  // namespace recsync::connectors::http
