// A connection's rate limit shared by every instance (ratelimit.backend): one bucket per
// connection in a backend all instances reach (Redis: ratelimit/redis/), from which each
// instance leases a few tokens at a time, so the backend is asked once per lease, not
// once per call. The lane takes its calls' tokens from its SharedTokens, next to its own
// token bucket and the server's quota; the backend's thread keeps the stock filled.
//
// A lease's tokens expire after kLeaseLife unused: an instance that stops sending (or
// dies) holds nothing back for long, and a stock gathered while idle cannot burst past
// the shared rate later. While the backend is unreachable an instance sends at its
// share, limit / instances seen (never the full limit), from a local bucket.
//
// What a server says of its own limit (a counted window: `limit` calls per `window_ms`,
// ServerQuota) is shared too: an instance that hears it sends it with its next lease,
// and the bucket then refills at no more than limit / window (burst at most `limit`) for
// every instance, for kServerLimitLife after the last report. Each instance still counts
// the window's remaining places from its own answers (ServerQuota); the shared cap keeps
// the instances together under the server's rate, so one that has not heard a report yet
// cannot spend the others' share of it.
#pragma once

#include "ratelimit/token_bucket.hpp"
#include "util/clock.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace recsync::ratelimit {

// One connection's tokens at this instance. Thread-safe: the lane (the dispatcher
// thread) takes, the backend's thread fills.
class SharedTokens {
public:
    static constexpr auto kLeaseLife = std::chrono::milliseconds(1000);
    // How much of the instance's share one lease asks for: this many seconds of it.
    static constexpr double kLeaseSeconds = 0.2;
    // A server's reported limit caps the shared bucket this long after its last report
    // (then the configured limit holds again: a plan upgraded, a provider that stopped
    // saying); an instance that keeps hearing it sends it again at least this often.
    static constexpr auto kServerLimitLife = std::chrono::seconds(60);
    static constexpr auto kServerLimitResend = std::chrono::seconds(10);
    // Only windows this short are shared as a rate: a longer one (an hourly quota) spread
    // evenly would hold a burst of changes back for minutes that the server would take at
    // once; each instance counts it from the server's own remaining count (ServerQuota).
    static constexpr int64_t kServerLimitMaxWindowMs = 10000;

    // `wake` tells the backend's thread that the lane wants tokens (called without the
    // lock held, at most once per answer).
    SharedTokens(std::string connection, double rate_per_second, double burst, int fallback_instances, std::function<void()> wake);

    const std::string &connection() const { return connection_; }

    // --- the lane (dispatcher thread)
    // True if a token can be taken now (peek: the lane's own bucket is asked next).
    bool available(util::TimePoint now);
    // Takes the token available() promised.
    void take(util::TimePoint now);
    // When available() may be true again: a lease being asked for is looked for soon, a
    // wait the backend named (an empty bucket, a pause) until then.
    util::TimePoint next_try(util::TimePoint now);
    // A 429/503 with Retry-After: every instance pauses (sent with the next lease).
    void pause_all(int64_t ms);
    // A reload changed the connection's rate or burst.
    void set_limit(double rate_per_second, double burst);
    // The server reported a counted window: `limit` calls per `window_ms` (its other
    // windows are reported apart; the strictest of those no longer than
    // kServerLimitMaxWindowMs heard within kServerLimitLife is shared).
    void server_limit(int64_t limit, int64_t window_ms, util::TimePoint now);

    // --- the backend's thread
    struct Request {
        double rate = 0, burst = 0;
        int want = 0;          // tokens to lease (0: only the pause)
        int64_t pause_ms = 0;  // a pause to share first
        // The server's limit to share (0: nothing new to say): caps the bucket's rate and
        // burst for every instance.
        double server_rate = 0, server_burst = 0;
    };
    // What to ask the backend for now, if anything: a lease when the lane wants tokens
    // and its stock is low, a pause it was told of. Marks the request as on its way.
    std::optional<Request> request(util::TimePoint now);
    // The backend's answer: `granted` tokens, and if fewer than wanted, how long until the
    // bucket has more (`wait_ms`); `instances` seen sharing it; the rate the bucket
    // refills at now (`bucket_rate`: below the configured one while a server's reported
    // limit caps it).
    void granted(int granted, int64_t wait_ms, int instances, double bucket_rate, util::TimePoint now);
    // The backend could not be asked: the lane falls back to its share.
    void unreachable(util::TimePoint now);
    // When the backend's thread should look at this connection again.
    util::TimePoint next_request(util::TimePoint now);

    // For /v1/status.
    struct Status {
        double rate = 0;
        double bucket_rate = 0;  // the shared bucket's rate at the last answer (0: no answer yet)
        int instances = 0;      // seen sharing the bucket at the last answer
        bool fallback = false;  // sending at the local share
        int64_t stock = 0;      // leased tokens not used yet
        uint64_t leases = 0, leased = 0;
    };
    Status status(util::TimePoint now);

private:
    int want_locked() const;
    double effective_rate_locked() const;
    // The strictest server window heard within kServerLimitLife, as a rate and a burst;
    // false if none.
    bool server_cap_locked(util::TimePoint now, double &rate, double &burst);
    // That cap is new, changed, or due to be said again.
    bool server_due_locked(util::TimePoint now);
    void expire_locked(util::TimePoint now);
    double share_locked() const;
    // Marks the stock as wanted; true if the backend's thread must be woken.
    bool want_more_locked();

    const std::string connection_;
    const std::function<void()> wake_;
    std::mutex mutex_;
    double rate_;
    double burst_;
    int fallback_instances_;
    int instances_ = 0;  // 0: never answered
    // Leased tokens and when they expire (a new lease extends the whole stock: the older
    // ones are spent first anyway, and at most one lease's worth is left over).
    int64_t stock_ = 0;
    util::TimePoint stock_expires_{};
    bool wanted_ = false;     // the lane found the stock low since the last answer
    bool asking_ = false;     // a request is on its way
    int asked_ = 0;           // tokens it asks for
    util::TimePoint retry_at_{};  // the backend said no tokens before then
    int64_t pause_ms_ = 0;    // to share
    bool fallback_ = false;
    std::optional<TokenBucket> fallback_bucket_;
    // The server's counted windows as last reported (by length), and what was last sent.
    struct ServerWindow {
        int64_t window_ms = 0, limit = 0;
        util::TimePoint at{};
    };
    std::vector<ServerWindow> server_windows_;
    double server_rate_sent_ = 0, server_burst_sent_ = 0;
    util::TimePoint server_sent_at_{};
    double bucket_rate_ = 0;
    uint64_t leases_ = 0, leased_ = 0;
};

// The backend. Thread-safe.
class SharedLimiter {
public:
    virtual ~SharedLimiter() = default;
    // The connection's tokens (the same object for the same name: a reload keeps it).
    virtual std::shared_ptr<SharedTokens> tokens(const std::string &connection, double rate_per_second, double burst) = 0;
    // The lane has work: look at its tokens now.
    virtual void wake() = 0;

    struct Status {
        std::string backend;  // "redis 127.0.0.1:6379"
        bool reachable = false;
        uint64_t calls = 0;   // requests to the backend
        uint64_t errors = 0;
        std::string last_error;
        std::vector<std::pair<std::string, SharedTokens::Status>> connections;
    };
    virtual Status status() const = 0;
};

}  // namespace recsync::ratelimit
