// A salesforce connection's settings (the instance config: `settings:` in recsync.yaml,
// plus base_url and credentials), read and checked once at create_instance.
#pragma once

#include <recsync/provider_sdk.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace salesforce {

// One sObject type the connection syncs (settings `objects.<Type>`).
struct ObjectSettings {
    std::string type;  // the sObject API name: Account, Contact, Invoice__c
    // An External ID field holding our record key: a create whose answer was lost is
    // retried as an upsert on it, and the key is written into it on create.
    std::string external_id_field;
    // Without one: a field whose value identifies the record (Contact.Email), looked up by
    // SOQL before a retried create. Neither: a retried create is sent again as it is.
    std::string lookup_field;
    // What reads and polls ask for (Id and the poll's own fields always come too).
    std::vector<std::string> fields;
};

enum class AuthFlow { ClientCredentials, JwtBearer };

struct PollSettings {
    int64_t overlap_ms = 60'000;  // poll_overlap_s: how far behind now a query's window ends
    int batch_size = 200;         // poll_batch_size: rows per page (Sforce-Query-Options)
    bool since_now = true;        // poll_since: "now" (default), "beginning" or an RFC 3339 time
    int64_t since_ms = 0;
};

struct Settings {
    std::string api_version = "60.0";
    std::string data_path;  // "/services/data/v60.0"
    std::map<std::string, ObjectSettings, std::less<>> objects;
    AuthFlow auth = AuthFlow::ClientCredentials;
    std::string client_id;
    std::string client_secret;    // client_credentials
    std::string username;         // jwt_bearer: the integration user (the assertion's sub)
    std::string audience;         // jwt_bearer: aud (default: the connection's base_url)
    std::string private_key_pem;  // jwt_bearer: credentials private_key (RS256)
    // Sforce-Call-Options: client=<this> on every write, so the org's logs tell our writes.
    std::string call_options_client = "recsync";
    // The integration user's id (005...): polled changes it made last are our own writes
    // coming back, and are not reported. Learned from the token answer when not set.
    std::string echo_user_id;
    // After REQUEST_LIMIT_EXCEEDED (the org's rolling 24-hour API quota is spent): how
    // long the connection waits before it tries again (limit_exceeded_retry_s).
    int64_t limit_exceeded_retry_ms = 15 * 60'000;
    PollSettings poll;

    // Throws sdk::ConfigError naming the setting.
    static Settings from_config(const recsync::sdk::json &config);
    const ObjectSettings &object(std::string_view type) const;  // throws sdk::Unsupported
};

}  // namespace salesforce
