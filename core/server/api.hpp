// The engine's HTTP API: POST /v1/events, /healthz, /readyz, /metrics, /v1/status and the
// admin endpoints (bearer token from server.admin_token_env).
#pragma once

#include "server/http_listener.hpp"

namespace recsync::engine {
class Engine;
}

namespace recsync::server {

AsyncHttpHandler make_api_handler(engine::Engine &engine);

}  // namespace recsync::server
