// ServerQuota against simulated servers that count in the three ways a window known only
// by its limit and length may count (fixed windows, a rolling window, a token bucket),
// with calls that take random time each way, so answers and their reports overtake each
// other. Alone on the server, the quota must never be refused and must reach nearly the
// whole limit. Simulated time only: nothing here reads the clock or sleeps.
#include "ratelimit/server_quota.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <random>

namespace {

using namespace std::chrono_literals;
using recsync::ratelimit::ServerQuota;
using recsync::util::TimePoint;
using Duration = recsync::util::SteadyClock::duration;

constexpr int64_t kLimit = 100;
constexpr Duration kLength = 1s;
const TimePoint t0 = TimePoint{} + 1h;

// A server's rate limiter: admits or refuses a request arriving at `t`, and says how many
// more it would admit now (what X-HubSpot-RateLimit-Remaining carries).
class Limiter {
public:
    virtual ~Limiter() = default;
    virtual bool admit(TimePoint t) = 0;
    virtual int64_t remaining(TimePoint t) = 0;
};

class FixedWindows : public Limiter {
public:
    bool admit(TimePoint t) override {
        roll(t);
        if (count_ >= kLimit) return false;
        ++count_;
        return true;
    }
    int64_t remaining(TimePoint t) override {
        roll(t);
        return kLimit - count_;
    }

private:
    void roll(TimePoint t) {
        // Windows start 370 ms into the client's first second: no alignment to rely on.
        const int64_t w = (t - t0 + 630ms) / kLength;
        if (w != window_) window_ = w, count_ = 0;
    }
    int64_t window_ = -1, count_ = 0;
};

class RollingWindow : public Limiter {
public:
    bool admit(TimePoint t) override {
        roll(t);
        if (static_cast<int64_t>(admitted_.size()) >= kLimit) return false;
        admitted_.push_back(t);
        return true;
    }
    int64_t remaining(TimePoint t) override {
        roll(t);
        return kLimit - static_cast<int64_t>(admitted_.size());
    }

private:
    void roll(TimePoint t) {
        while (!admitted_.empty() && admitted_.front() <= t - kLength) admitted_.pop_front();
    }
    std::deque<TimePoint> admitted_;
};

class TokenBucket : public Limiter {
public:
    bool admit(TimePoint t) override {
        refill(t);
        if (tokens_ < 1) return false;
        tokens_ -= 1;
        return true;
    }
    int64_t remaining(TimePoint t) override {
        refill(t);
        return static_cast<int64_t>(tokens_);
    }

private:
    void refill(TimePoint t) {
        const double rate = static_cast<double>(kLimit) / std::chrono::duration<double>(kLength).count();
        tokens_ = std::min<double>(kLimit, tokens_ + std::chrono::duration<double>(t - last_).count() * rate);
        last_ = t;
    }
    double tokens_ = kLimit;
    TimePoint last_ = t0;
};

struct Outcome {
    int64_t admitted = 0, refused = 0, admitted_after_warmup = 0;
};

// One lane alone on the server: at most `max_in_flight` calls, each `up` to reach the
// server and `down` to come back (uniform in [min_ms, max_ms]), every answer reporting the
// server's remaining; the dispatcher's order within one poll: every answer ends its call,
// then every report is applied.
Outcome run(Limiter &server, double min_ms, double max_ms, int max_in_flight, Duration total, Duration warmup, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> latency(min_ms, max_ms);
    auto draw = [&] { return std::chrono::duration_cast<Duration>(std::chrono::duration<double, std::milli>(latency(rng))); };
    ServerQuota quota;
    std::multimap<TimePoint, int> arrivals;  // at the server; value unused
    std::multimap<TimePoint, int64_t> answers;  // back at the client, with the remaining it reports
    int in_flight = 0;
    Outcome out;
    constexpr Duration kStep = 100us;  // the dispatcher's poll, roughly
    for (TimePoint now = t0; now < t0 + total; now += kStep) {
        for (auto it = arrivals.begin(); it != arrivals.end() && it->first <= now; it = arrivals.erase(it)) {
            const bool ok = server.admit(it->first);
            ok ? ++out.admitted : ++out.refused;
            if (ok && it->first >= t0 + warmup) ++out.admitted_after_warmup;
            answers.emplace(it->first + draw(), server.remaining(it->first));
        }
        std::vector<int64_t> reports;
        for (auto it = answers.begin(); it != answers.end() && it->first <= now; it = answers.erase(it)) {
            quota.call_ended(now);
            --in_flight;
            reports.push_back(it->second);
        }
        for (const int64_t remaining : reports) quota.report({kLimit, remaining, std::chrono::duration_cast<std::chrono::milliseconds>(kLength).count(), 0}, now);
        while (in_flight < max_in_flight && quota.try_acquire(now)) {
            ++in_flight;
            arrivals.emplace(now + draw(), 0);
        }
    }
    return out;
}

struct Case {
    const char *name;
    std::unique_ptr<Limiter> (*make)();
};

const Case kServers[] = {
    {"fixed windows", [] { return std::unique_ptr<Limiter>(new FixedWindows); }},
    {"rolling window", [] { return std::unique_ptr<Limiter>(new RollingWindow); }},
    {"token bucket", [] { return std::unique_ptr<Limiter>(new TokenBucket); }},
};

TEST(ServerQuotaAgainstServers, AloneItIsNeverRefusedAndReachesTheLimit) {
    constexpr Duration kTotal = 40s, kWarmup = 10s;
    const double steady_seconds = std::chrono::duration<double>(kTotal - kWarmup).count();
    for (const auto &c : kServers)
        for (const auto &[min_ms, max_ms] : {std::pair{0.1, 1.0}, std::pair{0.2, 30.0}})
            for (const int max_in_flight : {8, 64})
                for (const uint32_t seed : {1u, 2u, 3u}) {
                    auto server = c.make();
                    const Outcome o = run(*server, min_ms, max_ms, max_in_flight, kTotal, kWarmup, seed);
                    SCOPED_TRACE(std::string(c.name) + ", " + std::to_string(min_ms) + "-" + std::to_string(max_ms) + " ms each way, " +
                                 std::to_string(max_in_flight) + " in flight, seed " + std::to_string(seed));
                    EXPECT_EQ(o.refused, 0);
                    const double rate = static_cast<double>(o.admitted_after_warmup) / steady_seconds;
                    // The limit is 100/s; each place is held a round trip longer than the
                    // server holds it (up to 60 ms here), so a slow server costs a little.
                    EXPECT_GE(rate, max_ms > 10 ? 0.95 * kLimit : 0.99 * kLimit);
                    EXPECT_LE(rate, 1.01 * kLimit);
                }
}

}  // namespace
