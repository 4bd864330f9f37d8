#include "dispatch/verdict.hpp"

#include "dispatch/backoff.hpp"

namespace recsync::dispatch {

Verdict judge(const model::ConnectionRuntime &conn, const plugin::CallInput &in, const HttpOutcome &o) {
    Verdict v;
    v.status = o.status;
    if (o.status == 0) {
        v.kind = RECSYNC_RESULT_RETRY;
        v.reason = "transport error: " + o.transport_error;
        return v;
    }
    try {
        auto r = conn.provider->parse_response(in, plugin::ResponseView{o.status, &o.headers, o.body});
        for (const auto &q : r.rate_limits) v.rate_limits.push_back({q.limit, q.remaining, q.window_ms, q.reset_after_ms});
        v.kind = r.kind;
        v.external_id = std::move(r.external_id);
        v.retry_after_ms = r.retry_after_ms;
        v.record = std::move(r.record);
        v.modified = std::move(r.modified);
        v.reason = r.error.empty() ? ("HTTP " + std::to_string(o.status)) : std::move(r.error);
    } catch (const std::exception &e) {
        v.kind = RECSYNC_RESULT_FAIL;
        v.reason = e.what();
    }
    if (o.status == 401 && conn.provider->has_auth_refresh()) {
        v.kind = RECSYNC_RESULT_RETRY;
        v.reason = "HTTP 401 with a refreshed token; refreshing it again";
        v.token_refused = true;
    }
    if (v.kind == RECSYNC_RESULT_OK && v.external_id.empty()) {
        if (in.action == RECSYNC_ACTION_UPDATE || in.action == RECSYNC_ACTION_DELETE || in.action == RECSYNC_ACTION_READ) v.external_id = std::string(in.external_id);
        if (in.action == RECSYNC_ACTION_CREATE || in.action == RECSYNC_ACTION_UPSERT) {
            v.kind = RECSYNC_RESULT_FAIL;
            v.reason = "the provider reported success but no external id for the " + std::string(model::action_text(in.action));
        }
    }
    return v;
}

Fate decide(const model::Task &task, const Verdict &v, const config::RetryConfig &retry, const std::string &connection, int64_t now, std::mt19937_64 &rng) {
    Fate f;
    if (v.kind == RECSYNC_RESULT_OK) return f;
    if (v.kind != RECSYNC_RESULT_RETRY) {
        f.kind = Fate::Kind::Dead;
        f.reason = v.reason;
        return f;
    }
    const bool throttled = v.throttled();  // does not use up the record's attempts
    f.attempts = task.attempts + (throttled ? 0 : 1);
    if (!throttled && f.attempts >= retry.max_attempts) {
        f.kind = Fate::Kind::Dead;
        f.reason = "gave up after " + std::to_string(f.attempts) + " attempts; last: " + v.reason;
        return f;
    }
    f.delay_ms = std::max(backoff_delay_ms(f.attempts - 1, retry.base_delay_ms, retry.max_delay_ms, rng), v.retry_after_ms);
    // Past its max age a change is stale: dead-letter it rather than send it late
    // (throttled or not).
    if (past_max_age(task.created_ms, now + f.delay_ms, retry.max_age_ms)) {
        f.kind = Fate::Kind::Dead;
        f.reason = "gave up: the next retry would come after the task's retry.max_age (" + retry.max_age_text + ") at connection '" + connection + "'; last: " + v.reason;
        return f;
    }
    f.kind = Fate::Kind::Retry;
    f.reason = v.reason;
    return f;
}

}  // namespace recsync::dispatch
