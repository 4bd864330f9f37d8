#include "salesforce_settings.hpp"

#include "salesforce_text.hpp"

#include <regex>

namespace salesforce {

using recsync::sdk::ConfigError;
using recsync::sdk::json;

namespace {

std::string text_setting(const json &config, const char *name, std::string fallback = {}) {
    const auto it = config.find(name);
    if (it == config.end() || it->is_null()) return fallback;
    if (!it->is_string() || it->get_ref<const std::string &>().empty()) throw ConfigError(std::string("salesforce settings '") + name + "' must be a non-empty string");
    return it->get<std::string>();
}

int64_t whole_number(const json &config, const char *name, int64_t fallback, int64_t min, int64_t max) {
    const auto it = config.find(name);
    if (it == config.end()) return fallback;
    if (!it->is_number_integer() || it->get<int64_t>() < min || it->get<int64_t>() > max)
        throw ConfigError(std::string("salesforce settings '") + name + "' must be a whole number from " + std::to_string(min) + " to " + std::to_string(max));
    return it->get<int64_t>();
}

std::string api_name(const json &v, const std::string &where) {
    if (!v.is_string() || !is_api_name(v.get_ref<const std::string &>()))
        throw ConfigError("salesforce settings '" + where + "' must be an API name (a letter, then letters, digits and '_'), got " + v.dump());
    return v.get<std::string>();
}

ObjectSettings object_settings(const std::string &type, const json &o) {
    const std::string where = "objects." + type;
    if (!is_api_name(type)) throw ConfigError("salesforce settings 'objects': '" + type + "' is not an sObject API name");
    if (!o.is_object()) throw ConfigError("salesforce settings '" + where + "' must be a map (external_id_field, lookup_field, fields)");
    ObjectSettings s;
    s.type = type;
    for (const auto &[key, value] : o.items()) {
        if (key == "external_id_field") s.external_id_field = api_name(value, where + ".external_id_field");
        else if (key == "lookup_field") s.lookup_field = api_name(value, where + ".lookup_field");
        else if (key == "fields") {
            if (!value.is_array()) throw ConfigError("salesforce settings '" + where + ".fields' must be a list of field API names");
            for (const auto &f : value) s.fields.push_back(api_name(f, where + ".fields"));
        } else {
            throw ConfigError("salesforce settings '" + where + "': unknown key '" + key + "' (expected external_id_field, lookup_field, fields)");
        }
    }
    if (!s.external_id_field.empty() && !s.lookup_field.empty())
        throw ConfigError("salesforce settings '" + where + "': set external_id_field (retried creates upsert on it) or lookup_field (looked up before a retried create), not both");
    return s;
}

std::string credential(const json &config, const char *name) {
    const auto c = config.find("credentials");
    if (c == config.end() || !c->is_object()) return {};
    const auto it = c->find(name);
    return it != c->end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

Settings Settings::from_config(const json &config) {
    Settings s;
    s.api_version = text_setting(config, "api_version", s.api_version);
    static const std::regex version_re("([0-9]{2,3})\\.0");
    std::smatch m;
    if (!std::regex_match(s.api_version, m, version_re) || std::stoi(m[1].str()) < 46)
        throw ConfigError("salesforce settings 'api_version' must be like \"60.0\", at least 46.0 (an upsert's answer names the record from 46.0), got \"" + s.api_version + "\"");
    s.data_path = "/services/data/v" + s.api_version;

    const auto objects = config.find("objects");
    if (objects == config.end() || !objects->is_object() || objects->empty())
        throw ConfigError("salesforce settings 'objects' must map sObject types to their settings, e.g. objects: { Account: { external_id_field: Recsync_Key__c } }");
    for (const auto &[type, o] : objects->items()) s.objects.emplace(type, object_settings(type, o));

    const std::string flow = text_setting(config, "auth", "client_credentials");
    s.client_id = credential(config, "client_id");
    if (s.client_id.empty()) throw ConfigError("salesforce: the connected app's consumer key is missing: credentials: { client_id_env: VAR }");
    if (flow == "client_credentials") {
        s.auth = AuthFlow::ClientCredentials;
        s.client_secret = credential(config, "client_secret");
        if (s.client_secret.empty()) throw ConfigError("salesforce auth client_credentials needs the consumer secret: credentials: { client_secret_env: VAR }");
    } else if (flow == "jwt_bearer") {
        s.auth = AuthFlow::JwtBearer;
        s.username = text_setting(config, "username");
        if (s.username.empty()) throw ConfigError("salesforce auth jwt_bearer needs settings 'username' (the integration user the token is issued for)");
        s.private_key_pem = credential(config, "private_key");
        if (s.private_key_pem.empty()) throw ConfigError("salesforce auth jwt_bearer needs the connected app's private key: credentials: { private_key_file: PATH }");
        s.audience = text_setting(config, "audience", config.value("base_url", std::string()));
        if (s.audience.empty()) throw ConfigError("salesforce auth jwt_bearer needs settings 'audience' (https://login.salesforce.com, https://test.salesforce.com or the My Domain URL)");
    } else {
        throw ConfigError("salesforce settings 'auth' must be client_credentials or jwt_bearer, got \"" + flow + "\" (tokens are fetched and refreshed by recsync)");
    }
    s.call_options_client = text_setting(config, "call_options_client", s.call_options_client);
    for (const char c : s.call_options_client)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '/' && c != '.')
            throw ConfigError("salesforce settings 'call_options_client' may hold letters, digits and _ - / . only");
    s.echo_user_id = text_setting(config, "echo_user_id");
    if (!s.echo_user_id.empty() && !is_record_id(s.echo_user_id)) throw ConfigError("salesforce settings 'echo_user_id' must be a user id (15 or 18 letters and digits, 005...)");
    s.limit_exceeded_retry_ms = whole_number(config, "limit_exceeded_retry_s", s.limit_exceeded_retry_ms / 1000, 1, 86'400) * 1000;
    s.poll.overlap_ms = whole_number(config, "poll_overlap_s", s.poll.overlap_ms / 1000, 0, 3600) * 1000;
    s.poll.batch_size = static_cast<int>(whole_number(config, "poll_batch_size", s.poll.batch_size, 200, 2000));
    if (const auto v = config.find("poll_since"); v != config.end()) {
        const std::string text = v->is_string() ? v->get<std::string>() : std::string();
        if (text == "beginning") {
            s.poll.since_now = false;
        } else if (text != "now") {
            const auto t = recsync::sdk::rfc3339_ms(text);
            if (!t) throw ConfigError("salesforce settings 'poll_since' must be \"now\", \"beginning\" or a time like 2026-01-31T00:00:00Z, got " + v->dump());
            s.poll.since_now = false;
            s.poll.since_ms = *t;
        }
    }
    return s;
}

const ObjectSettings &Settings::object(std::string_view type) const {
    const auto it = objects.find(type);
    if (it == objects.end()) throw recsync::sdk::Unsupported("sObject '" + std::string(type) + "' is not in this salesforce connection's settings 'objects'");
    return it->second;
}

}  // namespace salesforce
