#include "cli/api_client.hpp"

#include "config/config.hpp"
#include "server/http_listener.hpp"

#include <curl/curl.h>

#include <cstdlib>

namespace recsync::cli {

namespace {

size_t collect(char *data, size_t size, size_t n, void *user) {
    static_cast<std::string *>(user)->append(data, size * n);
    return size * n;
}

std::string base_url(const config::EngineConfig &cfg) {
    if (const char *url = std::getenv("RECSYNC_URL"); url && *url) return url;
    auto [host, port] = server::parse_host_port(cfg.server.listen);
    if (host == "0.0.0.0") host = "127.0.0.1";
    if (host == "::") host = "::1";
    return std::string(cfg.server.tls() ? "https://" : "http://") + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

ApiReply api_call(const config::EngineConfig &cfg, const std::string &method, const std::string &path, const std::string &token) {
    ApiReply reply;
    const std::string url = base_url(cfg) + path;
    CURL *c = curl_easy_init();
    curl_slist *headers = nullptr;
    const std::string auth = "Authorization: Bearer " + token;
    if (!token.empty()) headers = curl_slist_append(headers, auth.c_str());
    char error[CURL_ERROR_SIZE] = {};
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply.body);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (cfg.server.tls()) curl_easy_setopt(c, CURLOPT_CAINFO, cfg.server.tls_cert_file.c_str());
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply.status);
    else reply.error = error;
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    return reply;
}

}  // namespace recsync::cli
