#include "ratelimit/redis/redis_limiter.hpp"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <random>
#include <vector>

namespace recsync::ratelimit {

using util::SteadyClock;
using util::TimePoint;

namespace {

// Short: until every instance is back, those still on their fallback share send beside
// the first one back, which already leases from the whole bucket (with 500 ms the
// failover bench measured up to 130 calls in the second Redis came back, at 100/s).
constexpr auto kReconnectEvery = std::chrono::milliseconds(100);
constexpr auto kHeartbeatEvery = std::chrono::seconds(2);

// KEYS[1]: the connection's bucket; KEYS[2]: the instances seen.
// ARGV: rate per second, burst, tokens wanted, this instance's id, pause ms (0: none),
// the server's reported rate and burst (0: nothing new), how long that report holds (ms).
// Returns {granted, ms until the bucket has a token (0: now or not asked), instances,
// the bucket's rate now in thousandths per second}. A server's reported limit is kept in
// the bucket and caps its rate and burst for everyone until it lapses.
// The bucket refills at `rate` from Redis's own clock; a pause empties it until then, for
// every instance. A bucket Redis does not hold starts empty, not full: a Redis restarted
// without persistence must not grant a second burst on top of what the CRM's own bucket
// has just seen; the cost is burst / rate seconds after a first start (or an hour idle,
// when the key expires). An EVAL per lease, not EVALSHA: one per fifth of a second of
// each instance's share is too few for the script's bytes to matter, and a Redis
// restarted (its script cache empty) needs no second round trip.
constexpr const char *kScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 10000)
redis.call('PEXPIRE', KEYS[2], 60000)
local instances = redis.call('ZCARD', KEYS[2])
local rate, burst, want, pause = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[5])
local srate, sburst, slife = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
if want == 0 and pause == 0 and srate == 0 then return {0, 0, instances, 0} end
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at', 'paused_until', 'server_rate', 'server_burst', 'server_until')
local tokens, at, paused = tonumber(b[1]) or 0, tonumber(b[2]) or now, tonumber(b[3]) or 0
local server_rate, server_burst, server_until = tonumber(b[4]) or 0, tonumber(b[5]) or 0, tonumber(b[6]) or 0
if srate > 0 then
  server_rate, server_burst, server_until = srate, sburst, now + slife
end
if now < server_until then
  rate = math.min(rate, server_rate)
  burst = math.min(burst, math.max(1, server_burst))
end
tokens = math.min(tokens, burst)
if pause > 0 and now + pause > paused then
  paused = now + pause
  tokens = 0
  at = paused
end
local granted, wait = 0, 0
if now < paused then
  if want > 0 then wait = paused - now end
else
  if now > at then
    tokens = math.min(burst, tokens + (now - at) * rate / 1000)
    at = now
  end
  granted = math.min(want, math.floor(tokens))
  tokens = tokens - granted
  if granted == 0 and want > 0 then wait = math.ceil((1 - tokens) * 1000 / rate) end
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at), 'paused_until', tostring(paused),
           'server_rate', tostring(server_rate), 'server_burst', tostring(server_burst), 'server_until', tostring(server_until))
redis.call('PEXPIRE', KEYS[1], 3600000)
return {granted, wait, instances, math.floor(rate * 1000)}
)lua";

std::string make_instance_id() {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    std::random_device rd;
    return std::string(host) + ":" + std::to_string(getpid()) + ":" + std::to_string(rd() % 1'000'000);
}

std::string format_number(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6f", v);
    return buf;
}

}  // namespace

RedisLimiter::RedisLimiter(const config::SharedRateLimitConfig &config) : config_(config), instance_id_(make_instance_id()) {
    thread_ = std::thread([this] { run(); });
}

RedisLimiter::~RedisLimiter() {
    {
        std::lock_guard l(mutex_);
        stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
    if (redis_) redisFree(redis_);
}

std::shared_ptr<SharedTokens> RedisLimiter::tokens(const std::string &connection, double rate, double burst) {
    std::lock_guard l(mutex_);
    auto &t = tokens_[connection];
    if (!t) t = std::make_shared<SharedTokens>(connection, rate, burst, config_.fallback_instances, [this] { wake(); });
    else t->set_limit(rate, burst);
    return t;
}

void RedisLimiter::wake() {
    {
        std::lock_guard l(mutex_);
        woken_ = true;
    }
    cv_.notify_one();
}

SharedLimiter::Status RedisLimiter::status() const {
    std::lock_guard l(mutex_);
    Status s{"redis " + config_.address, reachable_.load(), calls_.load(), errors_.load(), last_error_, {}};
    const auto now = SteadyClock::now();
    for (const auto &[name, t] : tokens_) s.connections.emplace_back(name, t->status(now));
    return s;
}

bool RedisLimiter::connected(TimePoint now) {
    if (redis_) return true;
    if (now < next_connect_) return false;
    next_connect_ = now + kReconnectEvery;
    const timeval tv{config_.timeout_ms / 1000, (config_.timeout_ms % 1000) * 1000};
    redisContext *c = config_.port ? redisConnectWithTimeout(config_.host.c_str(), config_.port, tv) : redisConnectUnixWithTimeout(config_.host.c_str(), tv);
    std::string error;
    if (!c) error = "out of memory";
    else if (c->err) error = c->errstr;
    else if (redisSetTimeout(c, tv) != REDIS_OK) error = "cannot set the timeout";
    if (error.empty() && !config_.password.empty()) {
        auto *reply = static_cast<redisReply *>(redisCommand(c, "AUTH %s", config_.password.c_str()));
        if (!reply) error = c->err ? c->errstr : "no answer to AUTH";
        else if (reply->type == REDIS_REPLY_ERROR) error = std::string("AUTH refused: ") + reply->str;
        if (reply) freeReplyObject(reply);
    }
    if (!error.empty()) {
        if (c) redisFree(c);
        failed(error);
        return false;
    }
    redis_ = c;
    return true;
}

void RedisLimiter::disconnect(const std::string &why, TimePoint now) {
    if (redis_) redisFree(redis_);
    redis_ = nullptr;
    next_connect_ = now + kReconnectEvery;
    failed(why);
}

void RedisLimiter::failed(const std::string &why) {
    errors_.fetch_add(1);
    const bool was = reachable_.exchange(false);
    std::lock_guard l(mutex_);
    // Logged when it was lost, and the first time if it never answered.
    if (was || last_error_.empty())
        spdlog::warn("ratelimit: Redis at {} unreachable ({}): each connection sends at its share of the limit until it is back", config_.address, why);
    last_error_ = why;
}

bool RedisLimiter::call_script(const std::string &connection, const SharedTokens::Request &r, int64_t out[4]) {
    const std::string bucket = config_.key_prefix + ":rl:" + connection;
    const std::string instances = config_.key_prefix + ":instances";
    const std::string rate = format_number(r.rate), burst = format_number(r.burst), want = std::to_string(r.want), pause = std::to_string(r.pause_ms);
    const std::string server_rate = format_number(r.server_rate), server_burst = format_number(r.server_burst);
    const std::string server_life = std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(SharedTokens::kServerLimitLife).count());
    const char *argv[] = {"EVAL",        kScript,        "2",          bucket.c_str(),          instances.c_str(),   rate.c_str(),       burst.c_str(),
                          want.c_str(),  instance_id_.c_str(), pause.c_str(), server_rate.c_str(), server_burst.c_str(), server_life.c_str()};
    size_t lens[std::size(argv)];
    for (size_t i = 0; i < std::size(argv); ++i) lens[i] = std::strlen(argv[i]);
    calls_.fetch_add(1, std::memory_order_relaxed);
    auto *reply = static_cast<redisReply *>(redisCommandArgv(redis_, static_cast<int>(std::size(argv)), argv, lens));
    const auto now = SteadyClock::now();
    if (!reply) {
        disconnect(redis_->err ? redis_->errstr : "no answer", now);
        return false;
    }
    bool ok = reply->type == REDIS_REPLY_ARRAY && reply->elements == 4;
    for (size_t i = 0; ok && i < 4; ++i) {
        ok = reply->element[i]->type == REDIS_REPLY_INTEGER;
        if (ok) out[i] = reply->element[i]->integer;
    }
    const std::string what = reply->type == REDIS_REPLY_ERROR ? std::string(reply->str, reply->len) : "an unexpected answer to the script";
    freeReplyObject(reply);
    if (!ok) {
        disconnect(what, now);
        return false;
    }
    if (!reachable_.exchange(true)) spdlog::info("ratelimit: Redis at {} reachable: connections' limits are shared", config_.address);
    return true;
}

void RedisLimiter::run() {
    std::vector<std::shared_ptr<SharedTokens>> all;
    while (true) {
        {
            std::lock_guard l(mutex_);
            if (stopping_) return;
            woken_ = false;
            all.clear();
            for (const auto &[_, t] : tokens_) all.push_back(t);
        }
        auto now = SteadyClock::now();
        auto next = now + kHeartbeatEvery;
        for (const auto &t : all) {
            if (t->next_request(now) > now) continue;
            if (!connected(now)) {
                if (auto r = t->request(now)) t->unreachable(now);
                continue;
            }
            auto r = t->request(now);
            if (!r) continue;
            int64_t reply[4];
            if (!call_script(t->connection(), *r, reply)) {
                t->unreachable(now);
                continue;
            }
            now = SteadyClock::now();
            t->granted(static_cast<int>(reply[0]), reply[1], static_cast<int>(reply[2]), static_cast<double>(reply[3]) / 1000.0, now);
            next_heartbeat_ = now + kHeartbeatEvery;
        }
        // Seen by the others even while idle: their fallback share counts this instance.
        if (now >= next_heartbeat_ && connected(now)) {
            int64_t reply[4];
            if (call_script("", SharedTokens::Request{}, reply)) next_heartbeat_ = now + kHeartbeatEvery;
        }
        for (const auto &t : all) next = std::min(next, t->next_request(now));
        if (!redis_) next = std::max(next, next_connect_);
        std::unique_lock l(mutex_);
        cv_.wait_until(l, next, [&] { return woken_ || stopping_; });
    }
}

}  // namespace recsync::ratelimit
