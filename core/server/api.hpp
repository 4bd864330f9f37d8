// The engine's HTTP API: POST /v1/events, /healthz, /readyz, /metrics, /v1/status and the
// admin endpoints (bearer token from server.admin_token_env). It reaches the engine only
// through ApiBackend, which the engine implements: server/ includes nothing above it.
#pragma once

#include "model/lane_status.hpp"
#include "model/metrics.hpp"
#include "model/poll_status.hpp"
#include "model/runtime.hpp"
#include "server/http_listener.hpp"
#include "sources/intake.hpp"
#include "sources/pg_capture.hpp"
#include "store/dead_letter_replay.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace recsync::server {

struct ReloadResult {
    bool ok = false;
    std::string message;  // what changed, or why nothing did
};

class ApiBackend {
public:
    virtual ~ApiBackend() = default;
    // The current runtime; hold the pointer for as long as one request uses it.
    virtual std::shared_ptr<const model::Runtime> runtime() const = 0;
    virtual sources::Intake &intake() = 0;
    virtual model::Metrics &metrics() = 0;
    virtual bool ready() const = 0;
    virtual std::vector<model::LaneStatus> lanes() const = 0;
    // The pollers (none unless connections poll).
    virtual std::vector<model::PollStatus> polls() const { return {}; }
    virtual std::vector<sources::PgCaptureStatus> captures() const { return {}; }
    // The shared rate limits (ratelimit.backend), for /v1/status; null when local.
    virtual nlohmann::json shared_limits_status() const { return nullptr; }
    // {"generation", "last_ok_ms", "last_error", "last_error_ms"}.
    virtual nlohmann::json reload_status() const = 0;
    virtual store::DeadLetterStore &dead_letters() = 0;
    // Only letters of connections configured now are replayed (the others are `held`).
    virtual store::ReplayReport replay_dead_letters(const store::ReplaySelection &selection) = 0;
    virtual ReloadResult reload() = 0;
    // Runs `job` off the HTTP I/O threads (reloads and replays can take a while). Jobs
    // must not throw.
    virtual void run_admin(std::function<void()> job) = 0;
};

AsyncHttpHandler make_api_handler(ApiBackend &backend);

// /v1/status and /metrics, from one snapshot of the lanes.
nlohmann::json status_json(ApiBackend &backend, const std::vector<model::LaneStatus> &lanes);
std::string metrics_text(const model::Metrics &metrics, const std::vector<model::LaneStatus> &lanes);

}  // namespace recsync::server
