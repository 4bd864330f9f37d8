// Judging a call's answer, as functions without side effects on the lane: what the plugin
// (or the transport) says of it, and what becomes of the task (done, retried when, or
// dead-lettered why) under the connection's retry policy.
#pragma once

#include "dispatch/http_executor.hpp"
#include "model/runtime.hpp"
#include "model/task.hpp"
#include "ratelimit/server_quota.hpp"

#include <random>
#include <string>
#include <vector>

namespace recsync::dispatch {

struct Verdict {
    recsync_result_kind kind = RECSYNC_RESULT_FAIL;
    std::string external_id;
    int64_t retry_after_ms = 0;
    std::string reason;
    int status = 0;  // HTTP status; 0: transport error
    std::vector<ratelimit::ServerReport> rate_limits;  // what the server said about its limit
    // A 401 for a provider that refreshes its tokens: the token was revoked or expired
    // early; the caller drops it (if it is still the one the call used) and retries.
    bool token_refused = false;
    std::string record;    // a READ's record (ABI 1.3), in transform(INBOUND)'s input form
    std::string modified;  // the record's modification stamp there after the call (ABI 1.3)
    // A batch's record whose batch was refused as a whole (a FAIL of a batch of several):
    // not this record's failure; it goes again alone, no attempt used.
    bool split = false;

    // The server said "slow down": a 429, or a 503 with a Retry-After (an overloaded server
    // or gateway saying when to come back). Flow control, not a failure of this record:
    // the lane pauses and halves its rate, and the record's attempts are not used up. A
    // 503 without Retry-After is a plain transient error (backoff, counted). So is a retry
    // whose answer said the server's quota is spent until a reset it named (Salesforce's
    // 403 REQUEST_LIMIT_EXCEEDED): waiting out a quota must never dead-letter a record.
    bool throttled() const {
        if (kind != RECSYNC_RESULT_RETRY) return false;
        if (status == 429 || (status == 503 && retry_after_ms > 0)) return true;
        for (const auto &r : rate_limits)
            if (r.remaining == 0 && r.reset_after_ms > 0) return true;
        return false;
    }
};

// The plugin's parse_response on `outcome` of the call `in` (a transport error is a
// retry), with what the host requires of any answer: an OK create or upsert carries an id.
Verdict judge(const model::ConnectionRuntime &conn, const plugin::CallInput &in, const HttpOutcome &outcome);

// The same for a batch of calls made as one (ABI 1.6): a verdict per call, in order. A
// record the answer names gets its own; the others take the batch's; a record given
// neither is retried. A batch-wide FAIL of several records splits them (Verdict::split).
// Rate reports ride on the first verdict only: the batch was one call.
std::vector<Verdict> judge_batch(const model::ConnectionRuntime &conn, const std::vector<plugin::CallInput> &in, const HttpOutcome &outcome);

struct Fate {
    enum class Kind : uint8_t { Done, Retry, Dead };
    Kind kind = Kind::Done;
    int attempts = 0;        // Retry: the attempts counted so far (a throttle counts none)
    int64_t delay_ms = 0;    // Retry: from now
    std::string reason;      // Retry and Dead
};

// What becomes of `task` after `v`: a retry while attempts and max_age allow (backoff
// with full jitter, at least the server's Retry-After), else a dead letter saying why.
Fate decide(const model::Task &task, const Verdict &v, const config::RetryConfig &retry, const std::string &connection, int64_t now_epoch_ms,
            std::mt19937_64 &rng);

}  // namespace recsync::dispatch
