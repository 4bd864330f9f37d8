#include "dispatch/verdict.hpp"

#include "dispatch/backoff.hpp"

namespace recsync::dispatch {

namespace {
// What the host requires of any verdict, whatever the plugin said: a 401 to a provider
// that refreshes tokens means "refresh"; an OK write carries an id.
void check_verdict(const model::ConnectionRuntime &conn, const plugin::CallInput &in, int http_status, Verdict &v) {
    if (http_status == 401 && conn.provider->has_auth_refresh()) {
        v.kind = RECSYNC_RESULT_RETRY;
        v.reason = "HTTP 401 with a refreshed token; refreshing it again";
        v.token_refused = true;
        v.split = false;
    }
    if (v.kind == RECSYNC_RESULT_OK && v.external_id.empty()) {
        if (in.action == RECSYNC_ACTION_UPDATE || in.action == RECSYNC_ACTION_DELETE || in.action == RECSYNC_ACTION_READ) v.external_id = std::string(in.external_id);
        if (in.action == RECSYNC_ACTION_CREATE || in.action == RECSYNC_ACTION_UPSERT) {
            v.kind = RECSYNC_RESULT_FAIL;
            v.reason = "the provider reported success but no external id for the " + std::string(model::action_text(in.action));
        }
    }
}

void take_result(plugin::CallResult &&r, int http_status, Verdict &v) {
    v.kind = r.kind;
    v.external_id = std::move(r.external_id);
    v.retry_after_ms = r.retry_after_ms;
    v.record = std::move(r.record);
    v.modified = std::move(r.modified);
    v.reason = r.error.empty() ? ("HTTP " + std::to_string(http_status)) : std::move(r.error);
}
}  // namespace

std::vector<Verdict> judge_batch(const model::ConnectionRuntime &conn, const std::vector<plugin::CallInput> &in, const HttpOutcome &o) {
    std::vector<Verdict> out(in.size());
    for (auto &v : out) v.status = o.status;
    if (o.status == 0) {
        for (auto &v : out) {
            v.kind = RECSYNC_RESULT_RETRY;
            v.reason = "transport error: " + o.transport_error;
        }
        return out;
    }
    plugin::BatchResult r;
    try {
        r = conn.provider->parse_batch_response(in, plugin::ResponseView{o.status, &o.headers, o.body});
    } catch (const std::exception &e) {
        // An answer the plugin cannot read says nothing of any one record: each goes alone.
        for (auto &v : out) {
            v.kind = RECSYNC_RESULT_FAIL;
            v.reason = std::string("the batch's answer: ") + e.what();
            v.split = out.size() > 1;
        }
        return out;
    }
    for (const auto &q : r.rate_limits) out.front().rate_limits.push_back({q.limit, q.remaining, q.window_ms, q.reset_after_ms});
    for (size_t i = 0; i < out.size(); ++i) {
        auto &v = out[i];
        if (i < r.items.size() && r.items[i]) {
            auto &item = *r.items[i];
            const int status = item.status != 0 ? item.status : o.status;
            take_result(std::move(item), status, v);
            v.status = status;
        } else if (r.batch) {
            take_result(plugin::CallResult(*r.batch), o.status, v);
            v.split = v.kind == RECSYNC_RESULT_FAIL && out.size() > 1;
        } else {
            v.kind = RECSYNC_RESULT_RETRY;
            v.reason = "HTTP " + std::to_string(o.status) + ": the batch's answer said nothing of this record";
        }
        check_verdict(conn, in[i], o.status, v);
    }
    return out;
}

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
        take_result(std::move(r), o.status, v);
    } catch (const std::exception &e) {
        v.kind = RECSYNC_RESULT_FAIL;
        v.reason = e.what();
    }
    check_verdict(conn, in, o.status, v);
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
