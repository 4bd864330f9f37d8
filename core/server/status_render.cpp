#include "server/api.hpp"

#include <fmt/format.h>

#include <cmath>

namespace recsync::server {

using nlohmann::json;

namespace {

// The bucket bound under which `q` of the observations fall, in ms (an upper estimate, as
// Prometheus's histogram_quantile gives from the same buckets); 0 with none observed.
double percentile_ms(const model::LatencyHistogram::Snapshot &h, double q) {
    const uint64_t n = h.count();
    if (n == 0) return 0;
    const auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(n)));
    uint64_t seen = 0;
    for (size_t i = 0; i < model::LatencyHistogram::kBounds.size(); ++i) {
        seen += h.counts[i];
        if (seen >= rank) return model::LatencyHistogram::kBounds[i] * 1000;
    }
    return model::LatencyHistogram::kBounds.back() * 1000;  // past the last bound: at least that
}

}  // namespace

json status_json(ApiBackend &backend, const std::vector<model::LaneStatus> &lanes) {
    const auto runtime = backend.runtime();
    json plugins = json::object();
    for (const auto &[id, lib] : runtime->libraries) plugins[id] = {{"version", lib->version()}, {"path", lib->path()}};
    json connections = json::object();
    for (const auto &s : lanes) {
        json j = {
            {"provider", s.provider},
            {"queued", s.queued},
            {"in_memory", s.in_memory},
            {"in_flight", s.in_flight},
            {"in_flight_target", s.in_flight_target},
            {"answer_ms", std::round(s.answer_ms * 10) / 10},
            {"paused_until_ms", s.paused_until_ms},
            {"server_remaining", s.server_remaining},
            {"rate_per_second", s.rate_per_second},
            {"current_rate_per_second", s.current_rate_per_second},
            {"succeeded", s.succeeded},
            {"retried", s.retried},
            {"dead_lettered", s.dead_lettered},
            {"unchanged", s.unchanged},
            {"skipped", s.skipped},
            {"throttled", s.throttled},
            {"throttled_ms", s.throttled_ms},
            {"oldest_age_ms", s.oldest_age_ms},
            {"delivery_p50_ms", percentile_ms(s.delivery, 0.5)},
            {"delivery_p99_ms", percentile_ms(s.delivery, 0.99)},
        };
        if (!s.auth_error.empty()) j["auth_error"] = s.auth_error;
        if (!s.last_error.empty()) {
            j["last_error"] = s.last_error;
            j["last_error_ms"] = s.last_error_ms;
        }
        if (s.removed) j["removed"] = true;
        connections[s.connection] = std::move(j);
    }
    json polling = json::array();
    for (const auto &p : backend.polls()) {
        json j = {{"connection", p.connection}, {"object", p.object},          {"interval_ms", p.interval_ms}, {"cursor", p.cursor},
                  {"last_page_ms", p.last_page_ms}, {"next_poll_ms", p.next_poll_ms}, {"pages", p.pages},             {"events", p.events},
                  {"failures", p.failures},    {"refused", p.refused}};
        if (!p.last_error.empty()) j["last_error"] = p.last_error;
        polling.push_back(std::move(j));
    }
    json capture = json::array();
    for (const auto &c : backend.captures()) {
        json j = {{"connection", c.connection}, {"connected", c.connected},       {"captured", c.captured},
                  {"own_skipped", c.own_skipped}, {"refused", c.refused}, {"last_batch_ms", c.last_batch_ms}};
        if (!c.last_error.empty()) j["last_error"] = c.last_error;
        capture.push_back(std::move(j));
    }
    json out = {{"connections", std::move(connections)},
                {"polling", std::move(polling)},
                {"capture", std::move(capture)},
                {"plugins", plugins},
                {"rules", runtime->rules->rules.size()},
                {"reload", backend.reload_status()},
                {"refused_plugins", runtime->refused_plugins},
                {"dead_letters", backend.dead_letters().count()}};
    if (auto limits = backend.shared_limits_status(); !limits.is_null()) out["ratelimit"] = std::move(limits);
    return out;
}

std::string metrics_text(const model::Metrics &m, const std::vector<model::LaneStatus> &lanes) {
    std::string out;
    auto counter = [&](const char *name, const char *help, uint64_t v) {
        out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name + " " + std::to_string(v) + "\n";
    };
    auto gauge = [&](const char *name, const char *help, int64_t v) {
        out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + name + " " + std::to_string(v) + "\n";
    };
    counter("recsync_events_accepted_total", "Events acknowledged with a 2xx (repeats and stale ones included).", m.events_accepted);
    counter("recsync_events_rejected_total", "Events rejected with a 4xx.", m.events_rejected);
    counter("recsync_fields_withheld_total", "Fields left out of a change because the other side owns them (conflicts.owners).", m.fields_withheld);
    counter("recsync_echoes_suppressed_total", "Changes from a connection that were recsync's own write coming back (dropped).", m.echoes_suppressed);
    counter("recsync_webhook_deliveries_total", "Webhook requests whose signature held.", m.webhook_deliveries);
    counter("recsync_webhooks_unauthenticated_total", "Webhook requests refused with a 401 (signature missing, wrong or stale).", m.webhooks_unauthenticated);
    counter("recsync_requests_unauthorized_total", "Requests refused with a 401 or 403: no, an unknown or the wrong kind of bearer token.", m.requests_unauthorized);
    counter("recsync_polls_total", "Poll requests sent to connections (polling:).", m.polls);
    counter("recsync_poll_failures_total", "Poll requests that brought no durable page (errors, a full backlog).", m.poll_failures);
    counter("recsync_poll_events_total", "Events in the poll pages made durable.", m.poll_events);
    counter("recsync_pg_rows_captured_total", "PostgreSQL change-log rows captured as durable events.", m.pg_rows_captured);
    counter("recsync_pg_own_rows_skipped_total", "PostgreSQL change-log rows written by recsync's own apply: not captured again (no echo).", m.pg_own_rows_skipped);
    counter("recsync_pg_rows_refused_total", "PostgreSQL change-log rows the rules or schemas refused: logged and skipped.", m.pg_rows_refused);
    counter("recsync_pg_capture_failures_total", "PostgreSQL capture reads or commits that failed (retried from the same rows).", m.pg_capture_failures);
    counter("recsync_poll_events_refused_total", "Polled changes the rules or the provider refused: logged and skipped, so the cursor moves on.", m.poll_events_refused);
    counter("recsync_events_duplicate_total", "Events whose id was seen within the retention: acknowledged and ignored.", m.events_duplicate);
    counter("recsync_events_stale_total", "Events older than their record's last accepted change: acknowledged and dropped.", m.events_stale);
    counter("recsync_requests_throttled_total", "Requests refused with a 429 because a backlog was full.", m.requests_throttled);
    counter("recsync_tasks_enqueued_total", "Tasks made durable.", m.tasks_enqueued);
    counter("recsync_tasks_succeeded_total", "Tasks delivered.", m.tasks_succeeded);
    counter("recsync_tasks_retried_total", "Delivery attempts that will be retried.", m.tasks_retried);
    counter("recsync_tasks_dead_lettered_total", "Tasks moved to the dead-letter queue.", m.tasks_dead_lettered);
    counter("recsync_http_calls_total", "HTTP calls started to external systems.", m.http_calls);
    counter("recsync_batch_calls_total", "HTTP calls that carried several records (batch endpoints).", m.batch_calls);
    counter("recsync_batched_records_total", "Records carried by batch calls (per call: this over recsync_batch_calls_total).", m.batched_records);
    counter("recsync_batch_record_failures_total", "Records whose own result inside a batch call was a retry or a failure.", m.batch_record_failures);
    counter("recsync_tasks_coalesced_total", "Tasks folded into a waiting task of the same record, never sent.", m.tasks_coalesced);
    out += "# HELP recsync_tasks_skipped_total Tasks finished without a call, by why the sync state made it needless.\n"
           "# TYPE recsync_tasks_skipped_total counter\n";
    out += "recsync_tasks_skipped_total{reason=\"unchanged\"} " + std::to_string(m.tasks_unchanged.load()) + "\n";
    out += "recsync_tasks_skipped_total{reason=\"stale\"} " + std::to_string(m.tasks_stale.load()) + "\n";
    out += "recsync_tasks_skipped_total{reason=\"after_delete\"} " + std::to_string(m.tasks_after_delete.load()) + "\n";
    out += "recsync_tasks_skipped_total{reason=\"not_synced\"} " + std::to_string(m.tasks_not_synced.load()) + "\n";
    out += "recsync_tasks_skipped_total{reason=\"conflict\"} " + std::to_string(m.tasks_conflict.load()) + "\n";
    counter("recsync_conflicts_total", "Concurrent changes of a record on both sides resolved by the conflict policy (the loser dropped at ingest or not written).", m.conflicts);
    gauge("recsync_calls_in_flight_limit", "Calls allowed in flight across all connections now (delivery.max_calls_in_flight, raised by lanes grown for slow CRMs up to delivery.max_calls_in_flight_ceiling).",
          static_cast<int64_t>(m.calls_in_flight_limit.load()));
    int64_t in_memory = 0;
    for (const auto &s : lanes) in_memory += s.in_memory;
    gauge("recsync_tasks_in_memory", "Tasks the lanes hold in memory (each a window of its backlog; delivery.tasks_in_memory).", in_memory);
    auto per_lane = [&](const char *name, const char *help, auto field) {
        out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n";
        for (const auto &s : lanes) out += std::string(name) + "{connection=\"" + s.connection + "\"} " + std::to_string(field(s)) + "\n";
    };
    per_lane("recsync_lane_queued", "Tasks accepted and not finished per connection (in the task log).", [](const model::LaneStatus &s) { return s.queued; });
    per_lane("recsync_lane_in_flight", "Calls in flight per connection.", [](const model::LaneStatus &s) { return s.in_flight; });
    per_lane("recsync_lane_in_flight_target", "Calls a connection may have in flight now, from its CRM's answer times (max_in_flight .. max_in_flight_ceiling).",
             [](const model::LaneStatus &s) { return s.in_flight_target; });
    per_lane("recsync_lane_answer_time_ms", "The CRM's recent mean answer time per connection, in ms.", [](const model::LaneStatus &s) { return s.answer_ms; });
    per_lane("recsync_lane_oldest_task_age_seconds", "How long the oldest task still waiting per connection has waited since it was accepted (0: none waiting): the one to alert on.",
             [](const model::LaneStatus &s) { return static_cast<double>(s.oldest_age_ms) / 1000.0; });
    auto per_lane_counter = [&](const char *name, const char *help, auto field) {
        out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n";
        for (const auto &s : lanes) out += std::string(name) + "{connection=\"" + s.connection + "\"} " + std::to_string(field(s)) + "\n";
    };
    per_lane_counter("recsync_lane_throttled_total", "Answers per connection that said too many (a 429, or a 503 with Retry-After).",
                     [](const model::LaneStatus &s) { return s.throttled; });
    per_lane_counter("recsync_lane_throttled_seconds_total", "Time per connection paused by those answers' Retry-After.",
                     [](const model::LaneStatus &s) { return static_cast<double>(s.throttled_ms) / 1000.0; });
    auto histogram = [&](const char *name, const char *help, auto field) {
        out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " histogram\n";
        for (const auto &s : lanes) {
            const model::LatencyHistogram::Snapshot &h = field(s);
            const std::string conn = "connection=\"" + s.connection + "\"";
            uint64_t cumulative = 0;
            for (size_t i = 0; i < h.counts.size(); ++i) {
                cumulative += h.counts[i];
                const std::string le = i < model::LatencyHistogram::kBounds.size() ? fmt::format("{}", model::LatencyHistogram::kBounds[i]) : "+Inf";
                out += std::string(name) + "_bucket{" + conn + ",le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
            }
            out += std::string(name) + "_sum{" + conn + "} " + fmt::format("{}", static_cast<double>(h.sum_ms) / 1000.0) + "\n";
            out += std::string(name) + "_count{" + conn + "} " + std::to_string(cumulative) + "\n";
        }
    };
    histogram("recsync_delivery_latency_seconds", "Per connection, from an event's acceptance (its 2xx) to its task delivered there.",
              [](const model::LaneStatus &s) -> const model::LatencyHistogram::Snapshot & { return s.delivery; });
    histogram("recsync_crm_answer_seconds", "Per connection, the time each call took to be answered.",
              [](const model::LaneStatus &s) -> const model::LatencyHistogram::Snapshot & { return s.answer; });
    return out;
}

}  // namespace recsync::server
