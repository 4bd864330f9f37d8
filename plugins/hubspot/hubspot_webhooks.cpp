#include "hubspot_webhooks.hpp"

#include <cstdio>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <cctype>
#include <charconv>
#include <strings.h>
#include <vector>

namespace hubspot {

using recsync::sdk::ConfigError;
using recsync::sdk::InvalidInput;
using recsync::sdk::json;
using recsync::sdk::Request;
using recsync::sdk::Unauthenticated;

namespace {

std::string hex(const unsigned char *p, size_t n) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out(2 * n, '0');
    for (size_t i = 0; i < n; ++i) {
        out[2 * i] = kDigits[p[i] >> 4];
        out[2 * i + 1] = kDigits[p[i] & 15];
    }
    return out;
}

std::string sha256_hex(std::string_view text) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char *>(text.data()), text.size(), digest);
    return hex(digest, sizeof digest);
}

std::string_view header(const Request &r, std::string_view name) {
    for (const auto &h : r.headers)
        if (h.name.size() == name.size() && strncasecmp(h.name.data(), name.data(), name.size()) == 0) return h.value;
    return {};
}

// Constant time in the content (OpenSSL's CRYPTO_memcmp); only the length may show, and
// every signature of one version has the same length.
bool same(std::string_view a, std::string_view b) { return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0; }

// The URI HubSpot signed: the configured URL with the query the request came with.
std::string signed_uri(const WebhookSettings &s, const Request &r) {
    const auto q = r.path.find('?');
    return q == std::string::npos ? s.url : s.url + r.path.substr(q);
}

// HubSpot's object types as subscriptionType prefixes, objectTypeIds and API names.
struct ObjectType {
    std::string_view prefix, type_id, name;
};
constexpr ObjectType kObjectTypes[] = {{"contact", "0-1", "contacts"}, {"company", "0-2", "companies"}, {"deal", "0-3", "deals"},
                                       {"ticket", "0-5", "tickets"},   {"product", "0-7", "products"},  {"line_item", "0-8", "line_items"}};

std::string object_of(std::string_view type_prefix, const json &event) {
    // The generic form ("object.propertyChange") names the type by its id.
    const std::string type_id = type_prefix == "object" ? event.value("objectTypeId", std::string()) : std::string();
    for (const auto &t : kObjectTypes)
        if (type_id.empty() ? t.prefix == type_prefix : t.type_id == type_id) return std::string(t.name);
    return type_id.empty() ? std::string(type_prefix) : type_id;
}

std::string id_text(const json &v) {
    if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
    if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
    if (v.is_string()) return v.get<std::string>();
    return {};
}

}  // namespace

WebhookSettings WebhookSettings::from_config(const json &config) {
    WebhookSettings s;
    s.url = config.value("webhook_url", std::string());
    if (const auto c = config.find("credentials"); c != config.end() && c->is_object())
        s.client_secret = c->value("client_secret", std::string());
    if (const auto v = config.find("webhook_signatures"); v != config.end()) {
        if (!v->is_array() || v->empty()) throw ConfigError("hubspot config 'webhook_signatures' must be a non-empty list of v1, v2, v3");
        s.accept_v3 = false;
        for (const auto &e : *v) {
            const std::string name = e.is_string() ? e.get<std::string>() : std::string();
            if (name == "v1") s.accept_v1 = true;
            else if (name == "v2") s.accept_v2 = true;
            else if (name == "v3") s.accept_v3 = true;
            else throw ConfigError("hubspot config 'webhook_signatures': unknown version " + e.dump() + " (expected v1, v2 or v3)");
        }
    }
    if (const auto a = config.find("webhook_max_age_s"); a != config.end()) {
        if (!a->is_number_integer() || a->get<int64_t>() < 1 || a->get<int64_t>() > 3600)
            throw ConfigError("hubspot config 'webhook_max_age_s' must be a whole number of seconds from 1 to 3600");
        s.max_age_ms = a->get<int64_t>() * 1000;
    }
    if (!s.url.empty()) {
        if (!(s.url.starts_with("https://") || s.url.starts_with("http://")) || s.url.find('?') != std::string::npos)
            throw ConfigError("hubspot config 'webhook_url' must be the http(s) URL HubSpot calls, without a query: '" + s.url + "'");
        if (s.client_secret.empty())
            throw ConfigError("hubspot config: webhooks (webhook_url) need the app's client secret: credentials: { client_secret_env: VAR }");
    }
    return s;
}

std::string decode_v3_uri(std::string_view uri) {
    static constexpr std::string_view kDecoded[][2] = {{"3A", ":"}, {"2F", "/"}, {"3F", "?"}, {"40", "@"}, {"21", "!"}, {"24", "$"},
                                                       {"27", "'"}, {"28", "("}, {"29", ")"}, {"2A", "*"}, {"2C", ","}, {"3B", ";"}};
    std::string out;
    out.reserve(uri.size());
    for (size_t i = 0; i < uri.size(); ++i) {
        if (uri[i] == '%' && i + 2 < uri.size()) {
            const char h[2] = {static_cast<char>(std::toupper(static_cast<unsigned char>(uri[i + 1]))),
                               static_cast<char>(std::toupper(static_cast<unsigned char>(uri[i + 2])))};
            bool done = false;
            for (const auto &d : kDecoded)
                if (d[0][0] == h[0] && d[0][1] == h[1]) {
                    out += d[1];
                    i += 2;
                    done = true;
                    break;
                }
            if (done) continue;
        }
        out += uri[i];
    }
    return out;
}

std::string signature_v1(std::string_view secret, std::string_view body) { return sha256_hex(std::string(secret) + std::string(body)); }

std::string signature_v2(std::string_view secret, std::string_view method, std::string_view uri, std::string_view body) {
    std::string source(secret);
    source.append(method).append(uri).append(body);
    return sha256_hex(source);
}

std::string signature_v3(std::string_view secret, std::string_view method, std::string_view uri, std::string_view body, std::string_view timestamp) {
    std::string source(method);
    source.append(uri).append(body).append(timestamp);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char *>(source.data()), source.size(), mac, &len);
    std::string b64(4 * ((len + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(b64.data()), mac, static_cast<int>(len));
    b64.resize(static_cast<size_t>(n));
    return b64;
}

void verify_signature(const WebhookSettings &s, const Request &r, int64_t now_ms) {
    if (!s.enabled()) throw Unauthenticated("webhooks are not configured for this connection (settings.webhook_url)");
    const auto v3 = header(r, "X-HubSpot-Signature-v3");
    if (s.accept_v3 && !v3.empty()) {
        const auto ts_text = header(r, "X-HubSpot-Request-Timestamp");
        int64_t ts = 0;
        const auto [end, ec] = std::from_chars(ts_text.data(), ts_text.data() + ts_text.size(), ts);
        if (ts_text.empty() || ec != std::errc() || end != ts_text.data() + ts_text.size())
            throw Unauthenticated("X-HubSpot-Request-Timestamp is missing or not epoch milliseconds");
        // Compared without subtracting the sender's number from ours: it could be anything.
        if (ts < now_ms - s.max_age_ms)
            throw Unauthenticated("the v3 signature's timestamp is more than " + std::to_string(s.max_age_ms / 1000) + " s old: refused as a possible replay");
        if (ts > now_ms + s.max_future_ms) throw Unauthenticated("the v3 signature's timestamp is more than " + std::to_string(s.max_future_ms / 1000) + " s in the future");
        const std::string uri = decode_v3_uri(signed_uri(s, r));
        if (!same(signature_v3(s.client_secret, r.method, uri, r.body, ts_text), v3)) throw Unauthenticated("the v3 signature does not match (wrong client secret, or the body or URL changed)");
        return;
    }
    const auto version = header(r, "X-HubSpot-Signature-Version");
    const auto sig = header(r, "X-HubSpot-Signature");
    if (!sig.empty() && ((version == "v2" && s.accept_v2) || (version == "v1" && s.accept_v1))) {
        const std::string expected = version == "v2" ? signature_v2(s.client_secret, r.method, signed_uri(s, r), r.body) : signature_v1(s.client_secret, r.body);
        if (!same(expected, sig)) throw Unauthenticated("the " + std::string(version) + " signature does not match (wrong client secret, or the body or URL changed)");
        return;
    }
    std::string accepted = s.accept_v3 ? "v3" : "";
    if (s.accept_v2) accepted += accepted.empty() ? "v2" : ", v2";
    if (s.accept_v1) accepted += accepted.empty() ? "v1" : ", v1";
    throw Unauthenticated("no HubSpot signature this connection accepts (" + accepted + ")");
}

namespace {

// FNV-1a, 64 bits, as hex: a short stable name for a property's new value in an event id
// (ids are kept across restarts and upgrades: std::hash would not do).
std::string value_digest(std::string_view v) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : v) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    char out[17];
    std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
    return out;
}

}  // namespace

json webhook_events(std::string_view body) {
    const json doc = json::parse(body.begin(), body.end(), nullptr, false);
    if (doc.is_discarded() || !doc.is_array()) throw InvalidInput("a HubSpot webhook body is a JSON array of events");
    json events = json::array();
    for (size_t i = 0; i < doc.size(); ++i) {
        const json &e = doc[i];
        const auto where = [&] { return "event " + std::to_string(i) + ": "; };
        if (!e.is_object()) throw InvalidInput(where() + "not an object");
        const std::string type = e.value("subscriptionType", std::string());
        const auto dot = type.find('.');
        if (dot == std::string::npos) throw InvalidInput(where() + "no subscriptionType like 'contact.propertyChange'");
        const std::string_view kind = std::string_view(type).substr(dot + 1);
        const std::string object = object_of(std::string_view(type).substr(0, dot), e);
        const std::string id = id_text(e.value("objectId", json()));
        if (id.empty()) throw InvalidInput(where() + "no objectId");
        const auto occurred = e.find("occurredAt");
        if (occurred == e.end() || !occurred->is_number_integer()) throw InvalidInput(where() + "no occurredAt (epoch milliseconds)");
        const std::string property = e.value("propertyName", std::string());
        // HubSpot's eventId is not unique: a change is named by what it changed, and when,
        // and (two writers can change one property within a millisecond) to what.
        std::string key = type + ':' + id + ':' + property + ':' + std::to_string(occurred->get<int64_t>());
        if (const auto v = e.find("propertyValue"); v != e.end() && !property.empty()) key += ':' + value_digest(v->is_string() ? v->get<std::string>() : v->dump());
        auto push = [&](const std::string &record_id, const char *event, bool hydrate, const std::string &change_key) {
            json out = {{"object", object}, {"event", event}, {"external_id", record_id}, {"id", change_key}, {"occurred_at", occurred->get<int64_t>()}};
            if (hydrate) {
                json props = json::object();
                if (!property.empty() && e.contains("propertyValue")) props[property] = e["propertyValue"];
                out["data"] = {{"id", record_id}, {"properties", std::move(props)}};
                out["hydrate"] = true;
            }
            events.push_back(std::move(out));
        };
        if (kind == "creation" || kind == "restore") {
            push(id, "created", true, key);
        } else if (kind == "propertyChange") {
            push(id, "updated", true, key);
        } else if (kind == "deletion" || kind == "privacyDeletion") {
            push(id, "deleted", false, key);
        } else if (kind == "merge") {
            // The merged records are gone; the survivor (a new id, or the primary) changed.
            std::string survivor = id_text(e.value("newObjectId", json()));
            if (survivor.empty()) survivor = id_text(e.value("primaryObjectId", json()));
            if (survivor.empty()) survivor = id;
            push(survivor, "updated", true, key);
            for (const auto &m : e.value("mergedObjectIds", json::array()))
                if (const auto gone = id_text(m); !gone.empty() && gone != survivor) push(gone, "deleted", false, key + ":" + gone);
        }
        // associationChange and others say nothing about a record's own fields.
    }
    return {{"events", std::move(events)}};
}

}  // namespace hubspot
