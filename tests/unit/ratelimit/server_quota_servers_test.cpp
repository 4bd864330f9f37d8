// ServerQuota against simulated servers that count in the three ways a window known only
// by its limit and length may count (fixed windows, a rolling window, a token bucket),
// alone and as HubSpot's pair (a ten-second and a one-second window), with calls that
// take random time each way, so answers and their reports overtake each other, and with
// load that stops and starts. Alone on the server, the quota must never be refused once
// it has had a report, and must reach nearly the whole limit. Simulated time only:
// nothing here reads the clock or sleeps.
#include "ratelimit/server_quota.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using recsync::ratelimit::ServerQuota;
using recsync::ratelimit::ServerReport;
using recsync::util::TimePoint;
using Duration = recsync::util::SteadyClock::duration;

const TimePoint t0 = TimePoint{} + 1h;

double seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

// One of a server's limits: whether a request arriving at `t` fits, counting it, and how
// many more fit now (what X-HubSpot-RateLimit-Remaining carries).
class Window {
public:
    Window(int64_t limit, Duration length) : limit_(limit), length_(length) {}
    virtual ~Window() = default;
    virtual bool fits(TimePoint t) = 0;
    virtual void count(TimePoint t) = 0;
    virtual int64_t remaining(TimePoint t) = 0;
    ServerReport report(TimePoint t) { return {limit_, remaining(t), std::chrono::duration_cast<std::chrono::milliseconds>(length_).count(), 0}; }

protected:
    const int64_t limit_;
    const Duration length_;
};

class FixedWindows : public Window {
public:
    using Window::Window;
    bool fits(TimePoint t) override { return remaining(t) > 0; }
    void count(TimePoint t) override {
        roll(t);
        ++count_;
    }
    int64_t remaining(TimePoint t) override {
        roll(t);
        return limit_ - count_;
    }

private:
    void roll(TimePoint t) {
        // Windows start 370 ms into the client's first second: no alignment to rely on.
        const int64_t w = (t - t0 + 630ms) / length_;
        if (w != window_) window_ = w, count_ = 0;
    }
    int64_t window_ = -1, count_ = 0;
};

class RollingWindow : public Window {
public:
    using Window::Window;
    bool fits(TimePoint t) override { return remaining(t) > 0; }
    void count(TimePoint t) override { counted_.push_back(t); }
    int64_t remaining(TimePoint t) override {
        while (!counted_.empty() && counted_.front() <= t - length_) counted_.pop_front();
        return limit_ - static_cast<int64_t>(counted_.size());
    }

private:
    std::deque<TimePoint> counted_;
};

// Capacity `limit`, refilled over `length`.
class TokenBucket : public Window {
public:
    using Window::Window;
    bool fits(TimePoint t) override {
        refill(t);
        return tokens_ >= 1;
    }
    void count(TimePoint t) override {
        refill(t);
        tokens_ -= 1;
    }
    int64_t remaining(TimePoint t) override {
        refill(t);
        return static_cast<int64_t>(tokens_);
    }

private:
    void refill(TimePoint t) {
        tokens_ = std::min<double>(static_cast<double>(limit_), tokens_ + seconds(t - last_) * static_cast<double>(limit_) / seconds(length_));
        last_ = t;
    }
    double tokens_ = static_cast<double>(limit_);
    TimePoint last_ = t0;
};

using Server = std::vector<std::unique_ptr<Window>>;

struct Load {
    int max_in_flight = 8;
    double min_ms = 0.1, max_ms = 1.0;  // each way
    Duration total = 40s, warmup = 10s;  // the rate is measured after the warmup
    Duration on = Duration::zero(), off = Duration::zero();  // sends only in the "on" part of each on+off period
    uint32_t seed = 1;
};

struct Outcome {
    int64_t admitted = 0, admitted_after_warmup = 0;
    int64_t refused = 0;  // of calls let through after the quota had a report
};

// One lane alone on the server; every answer reports every window; the dispatcher's order
// within one poll: every answer ends its call, then every report is applied.
Outcome run(Server &server, const Load &load) {
    std::mt19937 rng(load.seed);
    std::uniform_real_distribution<double> latency(load.min_ms, load.max_ms);
    auto draw = [&] { return std::chrono::duration_cast<Duration>(std::chrono::duration<double, std::milli>(latency(rng))); };
    ServerQuota quota;
    bool reported = false;
    std::multimap<TimePoint, bool> arrivals;                      // at the server: sent after a report?
    std::multimap<TimePoint, std::vector<ServerReport>> answers;  // back at the client
    int in_flight = 0;
    Outcome out;
    constexpr Duration kStep = 100us;  // the dispatcher's poll, roughly
    for (TimePoint now = t0; now < t0 + load.total; now += kStep) {
        for (auto it = arrivals.begin(); it != arrivals.end() && it->first <= now; it = arrivals.erase(it)) {
            const TimePoint t = it->first;
            bool fits = true;
            for (auto &w : server) fits = fits && w->fits(t);
            if (fits) {
                for (auto &w : server) w->count(t);
                ++out.admitted;
                if (t >= t0 + load.warmup) ++out.admitted_after_warmup;
            } else if (it->second) {
                ++out.refused;
            }
            std::vector<ServerReport> reports;
            for (auto &w : server) reports.push_back(w->report(t));
            answers.emplace(t + draw(), std::move(reports));
        }
        std::vector<ServerReport> reports;
        for (auto it = answers.begin(); it != answers.end() && it->first <= now; it = answers.erase(it)) {
            quota.call_ended(now);
            --in_flight;
            reports.insert(reports.end(), it->second.begin(), it->second.end());
        }
        for (const auto &r : reports) quota.report(r, now);
        reported = reported || !reports.empty();
        const bool sending = load.on == Duration::zero() || (now - t0) % (load.on + load.off) < load.on;
        while (sending && in_flight < load.max_in_flight && quota.try_acquire(now)) {
            ++in_flight;
            arrivals.emplace(now + draw(), reported);
        }
    }
    return out;
}

struct Kind {
    const char *name;
    std::unique_ptr<Window> (*make)(int64_t limit, Duration length);
};

template <typename W>
std::unique_ptr<Window> make(int64_t limit, Duration length) {
    return std::make_unique<W>(limit, length);
}

const Kind kKinds[] = {
    {"fixed windows", make<FixedWindows>},
    {"rolling window", make<RollingWindow>},
    {"token bucket", make<TokenBucket>},
};

std::string describe(const Kind &k, const Load &l) {
    return std::string(k.name) + ", " + std::to_string(l.min_ms) + "-" + std::to_string(l.max_ms) + " ms each way, " + std::to_string(l.max_in_flight) +
           " in flight, seed " + std::to_string(l.seed) + (l.on != Duration::zero() ? ", on and off" : "");
}

TEST(ServerQuotaAgainstServers, AloneItIsNeverRefusedAndReachesTheLimit) {
    for (const auto &kind : kKinds)
        for (const auto &[min_ms, max_ms] : {std::pair{0.1, 1.0}, std::pair{0.2, 30.0}})
            for (const int max_in_flight : {8, 64})
                for (const uint32_t seed : {1u, 2u, 3u}) {
                    Load load;
                    load.min_ms = min_ms, load.max_ms = max_ms, load.max_in_flight = max_in_flight, load.seed = seed;
                    Server server;
                    server.push_back(kind.make(100, 1s));
                    const Outcome o = run(server, load);
                    SCOPED_TRACE(describe(kind, load));
                    EXPECT_EQ(o.refused, 0);
                    const double rate = static_cast<double>(o.admitted_after_warmup) / seconds(load.total - load.warmup);
                    // The limit is 100/s; each place is held a round trip longer than the
                    // server holds it (up to 60 ms here), so a slow server costs a little.
                    EXPECT_GE(rate, max_ms > 10 ? 95 : 99);
                    EXPECT_LE(rate, 101);
                }
}

// HubSpot's pair: 190 per ten seconds and 19 per second, more calls in flight than the
// second allows, steady or two seconds on and three off (an idle window must still cap
// the next burst, which starts before any answer brings a report).
TEST(ServerQuotaAgainstServers, TwoWindowsAndIdleGapsAreNeverRefused) {
    for (const auto &kind : kKinds)
        for (const bool bursty : {false, true})
            for (const int max_in_flight : {8, 64})
                for (const uint32_t seed : {1u, 2u}) {
                    Load load;
                    load.max_in_flight = max_in_flight, load.seed = seed, load.max_ms = 5;
                    if (bursty) load.on = 2s, load.off = 3s;
                    Server server;
                    server.push_back(kind.make(190, 10s));
                    server.push_back(kind.make(19, 1s));
                    const Outcome o = run(server, load);
                    SCOPED_TRACE(describe(kind, load));
                    EXPECT_EQ(o.refused, 0);
                    // Steady, both come to 19/s.
                    const double rate = static_cast<double>(o.admitted_after_warmup) / seconds(load.total - load.warmup);
                    if (!bursty) {
                        EXPECT_GE(rate, 0.97 * 19);
                        EXPECT_LE(rate, 19 * 1.02);
                    }
                }
}

}  // namespace
