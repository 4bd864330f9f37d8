#include "rest_auth.hpp"

#include "rest_classify.hpp"

namespace rest {

using recsync::sdk::Header;
using recsync::sdk::InvalidInput;
using recsync::sdk::percent_encode;
using recsync::sdk::Request;
using recsync::sdk::Response;

namespace {

std::string base64(std::string_view in) {
    static constexpr char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    for (size_t i = 0; i < in.size(); i += 3) {
        const size_t n = std::min<size_t>(3, in.size() - i);
        uint32_t v = 0;
        for (size_t k = 0; k < 3; ++k) v = v << 8 | (k < n ? static_cast<unsigned char>(in[i + k]) : 0u);
        for (size_t k = 0; k < 4; ++k) out += k <= n ? table[(v >> (18 - 6 * k)) & 0x3F] : '=';
    }
    return out;
}

Header basic_authorization(std::string_view user, std::string_view password) {
    return {"Authorization", "Basic " + base64(std::string(user) + ":" + std::string(password)), true};
}

}  // namespace

void add_auth_headers(const AuthSpec &auth, std::string_view access_token, std::vector<Header> &headers) {
    switch (auth.kind) {
    case AuthKind::None:
        return;
    case AuthKind::Bearer:
    case AuthKind::OAuthClientCredentials:
        if (access_token.empty())
            throw InvalidInput(auth.kind == AuthKind::Bearer ? "auth kind bearer: the connection has no token (credentials: { token_env: VAR })"
                                                             : "auth kind oauth_client_credentials: the host handed no access token");
        headers.push_back(recsync::sdk::bearer_authorization(access_token));
        return;
    case AuthKind::Basic:
        headers.push_back(basic_authorization(auth.username, auth.password));
        return;
    case AuthKind::ApiKey:
        headers.push_back({auth.header, auth.api_key, true});
        return;
    }
}

Request token_request(const AuthSpec &auth) {
    if (auth.kind != AuthKind::OAuthClientCredentials) throw recsync::sdk::ConfigError("rest: this connection's auth takes no token request");
    Request req{"POST", auth.token_path, "grant_type=client_credentials", {}};
    if (auth.client_basic) {
        // RFC 6749 2.3.1: the id and secret form-encoded, then as Basic credentials.
        req.headers.push_back(basic_authorization(percent_encode(auth.client_id), percent_encode(auth.client_secret)));
    } else {
        req.body += "&client_id=" + percent_encode(auth.client_id) + "&client_secret=" + percent_encode(auth.client_secret);
    }
    if (!auth.scope.empty()) req.body += "&scope=" + percent_encode(auth.scope);
    req.headers.push_back({"Content-Type", "application/x-www-form-urlencoded", false});
    req.headers.push_back({"Accept", "application/json", false});
    return req;
}

json token_from_answer(const AuthSpec &auth, const Response &response, const std::vector<std::string> &secrets) {
    const json body = json::parse(response.body.begin(), response.body.end(), nullptr, false);
    if (response.status < 200 || response.status >= 300)
        throw InvalidInput("the token request was answered HTTP " + std::to_string(response.status) + describe_body(body, response.body, Pointer("/error_description"), secrets));
    const json *token = at_pointer(body, auth.token);
    if (!token || !token->is_string() || token->get_ref<const std::string &>().empty())
        throw InvalidInput("the token endpoint's answer has no token at " + auth.token.to_string());
    int64_t expires = 3600;  // RFC 6749 5.1: RECOMMENDED, so it may be absent
    if (const json *e = at_pointer(body, auth.expires_in)) {
        if (e->is_number_integer() && e->get<int64_t>() > 0) expires = e->get<int64_t>();
        else if (e->is_string() && !e->get_ref<const std::string &>().empty()) expires = std::max<int64_t>(1, std::atoll(e->get_ref<const std::string &>().c_str()));
    }
    return {{"access_token", *token}, {"expires_in", expires}};
}

}  // namespace rest
