// The REST provider's settings (a connection's `settings:`, handed over as the instance
// config), parsed and checked once at create_instance: every mistake is a ConfigError that
// names the setting's path ("rest settings objects.customers.create.path: ..."). What the
// calls need is kept ready to use: path templates split, JSON pointers parsed.
#pragma once

#include "rest_path.hpp"

#include <recsync/provider_sdk.hpp>

#include <array>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace rest {

using recsync::sdk::json;
using Pointer = json::json_pointer;

// What an HTTP status means for a call (settings `status: { 409: exists }`).
enum class Outcome {
    Ok,      // done
    Retry,   // transient (Retry-After honoured)
    Fail,    // permanent: dead-lettered with the body's message
    Exists,  // create/upsert: the record is there already; adopt the id at exists_id, else fail
    None,    // find: no such record
};

enum class BodyShape { Record, None, Wrapped };

// The six calls an object may configure, in recsync_action's order (create = 1).
enum class Verb { Create = 0, Update, Upsert, Delete, Read, Find };
inline constexpr std::array<std::string_view, 6> kVerbNames = {"create", "update", "upsert", "delete", "read", "find"};
inline constexpr size_t kVerbCount = kVerbNames.size();

struct ActionSpec {
    bool configured = false;
    std::string method;
    PathTemplate path;
    BodyShape body = BodyShape::None;
    std::string wrap;  // BodyShape::Wrapped: the member the record goes under
    // Where the record's id is in a 2xx answer (find: in each result).
    std::optional<Pointer> id;
    std::map<int, Outcome> status;    // overrides the default classification
    std::optional<Pointer> exists_id;  // Outcome::Exists: the existing record's id in the answer
    Pointer record;                    // read: the record in the answer ("" = the whole body)
    Pointer results;                   // find: the results array ("" = the whole body)
};

struct PollSpec {
    bool configured = false;
    PathTemplate path;            // no placeholders; may carry a fixed query
    std::string since_param;      // the cursor's updated-at goes here
    std::string after_id_param;   // optional: the cursor's id (a compound cursor on the server)
    std::string page_size_param;  // optional
    int page_size = 100;
    std::string start;            // optional: the since value of the very first poll
    Pointer items;                // the page's array of records
    Pointer id;                   // in each item
    Pointer updated_at;           // in each item
    std::optional<Pointer> created_at;  // in each item: equal to updated_at -> "created"
    std::optional<Pointer> deleted;     // in each item: true -> a "deleted" event
    bool hydrate = false;  // the listing is a summary: each record is read (the read action) before it is planned
};

struct ObjectSpec {
    std::string name;
    json schema;            // of the outbound payload
    bool flat = true;       // no schema in the settings: a flat object of scalars
    std::string key_field;  // informational (describe's key_property)
    std::array<ActionSpec, kVerbCount> actions;
    std::optional<Pointer> modified;  // the record's modification stamp in write and read answers
    PollSpec poll;

    const ActionSpec &action(Verb v) const { return actions[static_cast<size_t>(v)]; }
};

enum class AuthKind { None, Bearer, Basic, ApiKey, OAuthClientCredentials };

struct AuthSpec {
    AuthKind kind = AuthKind::None;
    std::string header = "X-Api-Key";  // api_key
    std::string api_key;               // credentials.api_key
    std::string username, password;    // basic: credentials.username / credentials.password
    // oauth_client_credentials: POST <base_url><token_path>, form-encoded.
    std::string token_path;
    std::string scope;
    bool client_basic = false;  // client_auth: basic (else the id and secret go in the form)
    std::string client_id, client_secret;  // credentials.client_id / credentials.client_secret
    Pointer token = Pointer("/access_token");
    Pointer expires_in = Pointer("/expires_in");
};

struct RateLimitHeaders {
    std::string limit, remaining, reset;  // header names; empty: not read
    bool reset_is_epoch = false;          // reset_is: epoch_seconds (else seconds from now)
    int64_t window_ms = 0;                // window_s: the window's fixed length, if known
};

struct Settings {
    std::map<std::string, ObjectSpec, std::less<>> objects;
    AuthSpec auth;
    Pointer error_message = Pointer("/error/message");
    RateLimitHeaders rate_headers;
    double per_second = 10, burst = 10;
    std::vector<std::string> secrets;  // every credential, to redact from echoed bodies

    const ObjectSpec &object(std::string_view name) const;
};

// `config`: the instance config (the settings' members, plus the host's base_url,
// connection and credentials). `with_token_refresh`: this build declares
// RECSYNC_CAP_AUTH_REFRESH (rest_oauth), which takes oauth_client_credentials only.
// Throws sdk::ConfigError naming the setting.
Settings parse_settings(const json &config, bool with_token_refresh);

}  // namespace rest
