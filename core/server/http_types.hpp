// Plain request/response values shared by the HTTP listener and its handlers, so that
// handlers never include Beast.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace recsync::server {

struct HttpRequest {
    std::string method;  // "GET", "POST", ...
    std::string target;  // path and query, as sent
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::string remote;  // peer address, for logs

    // Case-insensitive lookup; empty if absent.
    std::string_view header(std::string_view name) const;
    // The path without the query string.
    std::string_view path() const;
    // The value of query parameter `name` (not percent-decoded); empty if absent.
    std::string_view query_param(std::string_view name) const;
};

struct HttpResponse {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    // Fault injection (the mock CRM): answer nothing, reset the connection instead (TCP RST),
    // after `drop_after_ms` (0: at once; the wait does not hold an I/O thread).
    bool drop_connection = false;
    int drop_after_ms = 0;

    static HttpResponse json(int status, std::string body);
    // {"error": reason} with the given status.
    static HttpResponse error(int status, std::string_view reason);
};

}  // namespace recsync::server
