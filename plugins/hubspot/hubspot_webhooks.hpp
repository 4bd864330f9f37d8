// HubSpot webhooks: the request signature (v3, and v1/v2 where configured) and the
// translation of a delivery's events into recsync's (provider_abi.h, parse_webhook).
// developers.hubspot.com, "Validating requests" and "Webhooks API".
#pragma once

#include <recsync/provider_sdk.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace hubspot {

struct WebhookSettings {
    // The URL HubSpot was told to call (what it signs), as configured: a TLS proxy in
    // front of recsync rewrites scheme, host and path, so the request cannot tell it.
    std::string url;
    std::string client_secret;  // the app's client secret; never logged
    bool accept_v1 = false, accept_v2 = false, accept_v3 = true;
    int64_t max_age_ms = 300'000;  // v3: older timestamps are refused (HubSpot: 5 minutes)
    int64_t max_future_ms = 60'000;  // v3: and ones this far ahead (clock skew, or a forgery)

    // From the instance config: settings webhook_url, webhook_signatures (["v3"]),
    // webhook_max_age_s, and credentials.client_secret. Throws sdk::ConfigError.
    static WebhookSettings from_config(const recsync::sdk::json &config);
    bool enabled() const { return !url.empty(); }
};

// Throws sdk::Unauthenticated naming what failed (never the secret or the signature).
// `now_ms`: the current time, epoch milliseconds.
void verify_signature(const WebhookSettings &s, const recsync::sdk::Request &request, int64_t now_ms);

// The v3 URI rule: only %3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B are decoded.
std::string decode_v3_uri(std::string_view uri);

// The signature HubSpot sends for each version (exposed for tests).
std::string signature_v1(std::string_view secret, std::string_view body);
std::string signature_v2(std::string_view secret, std::string_view method, std::string_view uri, std::string_view body);
std::string signature_v3(std::string_view secret, std::string_view method, std::string_view uri, std::string_view body, std::string_view timestamp);

// A delivery's body (a JSON array of HubSpot events) as {"events": [...]} (provider_abi.h).
// Throws sdk::InvalidInput for a body that is not such an array.
recsync::sdk::json webhook_events(std::string_view body);

}  // namespace hubspot
