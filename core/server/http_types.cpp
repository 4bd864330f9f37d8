#include "server/http_types.hpp"

#include <nlohmann/json.hpp>
#include <strings.h>

namespace recsync::server {

std::string_view HttpRequest::header(std::string_view name) const {
    for (const auto &[n, v] : headers) {
        if (n.size() == name.size() && strncasecmp(n.data(), name.data(), n.size()) == 0) return v;
    }
    return {};
}

std::string_view HttpRequest::path() const {
    std::string_view t = target;
    return t.substr(0, t.find('?'));
}

std::string_view HttpRequest::query_param(std::string_view name) const {
    std::string_view t = target;
    const auto q = t.find('?');
    if (q == std::string_view::npos) return {};
    std::string_view rest = t.substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        std::string_view pair = rest.substr(0, amp);
        const auto eq = pair.find('=');
        if (pair.substr(0, eq) == name) return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
        if (amp == std::string_view::npos) break;
        rest = rest.substr(amp + 1);
    }
    return {};
}

HttpResponse HttpResponse::json(int status, std::string body) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

HttpResponse HttpResponse::error(int status, std::string_view reason) {
    return json(status, nlohmann::json{{"error", reason}}.dump());
}

}  // namespace recsync::server
