// The shared rate limits in Redis (ratelimit.backend: redis): one token bucket per
// connection in a hash, <prefix>:rl:<connection> {tokens, at, paused_until}, changed only
// by one Lua script (atomic, with Redis's own clock, so the instances' clocks do not
// matter), and a sorted set <prefix>:instances of the instances seen in the last 10 s.
// One thread per process asks for leases (SharedTokens), pauses and heartbeats, over one
// hiredis connection with timeouts; when Redis cannot be reached it retries every half
// second and the lanes send at their share meanwhile.
#pragma once

#include "config/config.hpp"
#include "ratelimit/shared_limiter.hpp"

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

struct redisContext;

namespace recsync::ratelimit {

class RedisLimiter final : public SharedLimiter {
public:
    // Starts the thread; does not wait for Redis (an unreachable Redis is a fallback, not
    // an error).
    explicit RedisLimiter(const config::SharedRateLimitConfig &config);
    ~RedisLimiter() override;

    std::shared_ptr<SharedTokens> tokens(const std::string &connection, double rate_per_second, double burst) override;
    void wake() override;
    Status status() const override;

    const std::string &instance_id() const { return instance_id_; }

private:
    void run();
    // Connects if not connected and a retry is due; false if there is no connection.
    bool connected(util::TimePoint now);
    void disconnect(const std::string &why, util::TimePoint now);
    // Counts and records a failure; logs when Redis was reachable until then.
    void failed(const std::string &why);
    // Runs the script for one connection's request (want 0: a heartbeat or a pause).
    // False (and disconnected) if Redis did not answer as the script does.
    bool call_script(const std::string &connection, const SharedTokens::Request &r, int64_t reply[4]);

    const config::SharedRateLimitConfig config_;
    const std::string instance_id_;

    mutable std::mutex mutex_;
    std::condition_variable cv_;
    bool woken_ = false;
    bool stopping_ = false;
    std::map<std::string, std::shared_ptr<SharedTokens>> tokens_;
    std::string last_error_;

    // The thread's own.
    redisContext *redis_ = nullptr;
    util::TimePoint next_connect_{};
    util::TimePoint next_heartbeat_{};

    std::atomic<bool> reachable_{false};
    std::atomic<uint64_t> calls_{0};
    std::atomic<uint64_t> errors_{0};
    std::thread thread_;
};

}  // namespace recsync::ratelimit
