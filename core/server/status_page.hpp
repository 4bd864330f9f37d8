// The status page at `/` and its script at `/ui/status.js`: static text compiled into
// the binary (no external assets). The page reads /v1/status and the admin dead-letter
// endpoints like any client, with a token typed into it and kept in the page's memory only
// (no cookie, no storage), so it shares the one status snapshot those routes render.
#pragma once

#include "server/http_types.hpp"

#include <string_view>

namespace recsync::server {

// The page (path "/") or its script (path "/ui/status.js"), with headers that keep it to
// its own origin (Content-Security-Policy without inline script, no framing, no referrer).
// Null for any other path.
bool status_page(std::string_view path, HttpResponse &out);

}  // namespace recsync::server
