#include "salesforce_auth.hpp"

#include "salesforce_text.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>

namespace salesforce {

using recsync::sdk::ConfigError;
using recsync::sdk::InvalidInput;
using recsync::sdk::json;
using recsync::sdk::percent_encode;
using recsync::sdk::Request;
using recsync::sdk::Response;

struct Rs256Signer::Key {
    EVP_PKEY *pkey = nullptr;
    ~Key() { EVP_PKEY_free(pkey); }
};

Rs256Signer::Rs256Signer(const std::string &pem) : key_(std::make_unique<Key>()) {
    BIO *bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    if (!bio) throw std::runtime_error("out of memory reading the private key");
    key_->pkey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (!key_->pkey || EVP_PKEY_base_id(key_->pkey) != EVP_PKEY_RSA)
        throw ConfigError("salesforce credentials private_key is not a PEM RSA private key (without a passphrase)");
}

Rs256Signer::~Rs256Signer() = default;

std::string Rs256Signer::sign(std::string_view data) const {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t len = 0;
    std::string sig;
    const bool ok = ctx && EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key_->pkey) == 1 &&
                    EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char *>(data.data()), data.size()) == 1 &&
                    (sig.resize(len), EVP_DigestSign(ctx, reinterpret_cast<unsigned char *>(sig.data()), &len, reinterpret_cast<const unsigned char *>(data.data()), data.size()) == 1);
    EVP_MD_CTX_free(ctx);
    if (!ok) throw std::runtime_error("RS256 signing failed");
    sig.resize(len);
    return sig;
}

std::string base64url(std::string_view bytes) {
    static constexpr char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        const uint32_t n = static_cast<uint8_t>(bytes[i]) << 16 | static_cast<uint8_t>(bytes[i + 1]) << 8 | static_cast<uint8_t>(bytes[i + 2]);
        out += {table[n >> 18], table[(n >> 12) & 63], table[(n >> 6) & 63], table[n & 63]};
    }
    if (i + 1 == bytes.size()) {
        const uint32_t n = static_cast<uint8_t>(bytes[i]) << 16;
        out += {table[n >> 18], table[(n >> 12) & 63]};
    } else if (i + 2 == bytes.size()) {
        const uint32_t n = static_cast<uint8_t>(bytes[i]) << 16 | static_cast<uint8_t>(bytes[i + 1]) << 8;
        out += {table[n >> 18], table[(n >> 12) & 63], table[(n >> 6) & 63]};
    }
    return out;  // unpadded, as JWS requires
}

std::string jwt_assertion(const Settings &s, const Rs256Signer &signer, int64_t now_s, int64_t lifetime_s) {
    const std::string header = base64url(R"({"alg":"RS256"})");
    const std::string claims = base64url(json{{"iss", s.client_id}, {"sub", s.username}, {"aud", s.audience}, {"exp", now_s + lifetime_s}}.dump());
    const std::string signing_input = header + "." + claims;
    return signing_input + "." + base64url(signer.sign(signing_input));
}

Request token_request(const Settings &s, const Rs256Signer *signer, int64_t now_s) {
    std::string body;
    if (s.auth == AuthFlow::JwtBearer) {
        body = "grant_type=" + percent_encode("urn:ietf:params:oauth:grant-type:jwt-bearer") + "&assertion=" + jwt_assertion(s, *signer, now_s);
    } else {
        body = "grant_type=client_credentials&client_id=" + percent_encode(s.client_id) + "&client_secret=" + percent_encode(s.client_secret);
    }
    Request req{"POST", "/services/oauth2/token", std::move(body), {}};
    req.headers.push_back({"Content-Type", "application/x-www-form-urlencoded", false});
    req.headers.push_back({"Accept", "application/json", false});
    return req;
}

TokenAnswer parse_token_answer(const Response &response) {
    const auto body = json::parse(response.body.begin(), response.body.end(), nullptr, false);
    if (response.status != 200) {
        // {"error": "invalid_grant", "error_description": "..."}: neither holds a secret.
        std::string why = "Salesforce refused the token request (HTTP " + std::to_string(response.status) + ")";
        if (body.is_object() && body.contains("error") && body["error"].is_string()) why += ": " + body["error"].get<std::string>();
        if (body.is_object() && body.contains("error_description") && body["error_description"].is_string())
            why += ": " + recsync::sdk::truncate_utf8(body["error_description"].get<std::string>());
        throw InvalidInput(why);
    }
    if (!body.is_object() || !body.contains("access_token") || !body["access_token"].is_string() || body["access_token"].get_ref<const std::string &>().empty())
        throw InvalidInput("Salesforce's token answer has no access_token");
    if (!body.contains("instance_url") || !body["instance_url"].is_string() || body["instance_url"].get_ref<const std::string &>().empty())
        throw InvalidInput("Salesforce's token answer has no instance_url (every call must go to the org's instance)");
    TokenAnswer t{body["access_token"].get<std::string>(), body["instance_url"].get<std::string>(), {}};
    if (body.contains("id") && body["id"].is_string()) {
        // https://login.salesforce.com/id/<org id>/<user id>
        const std::string &id = body["id"].get_ref<const std::string &>();
        const std::string user = id.substr(id.find_last_of('/') + 1);
        if (is_record_id(user)) t.user_id = user;
    }
    return t;
}

}  // namespace salesforce
