// ratelimit.backend: redis against a real redis-server: instances that share one
// connection's limit stay within it together, while Redis answers and while it does not
// (each then sends its share), and three engines delivering to one mock CRM that enforces
// the limit are never refused.
#include "ratelimit/redis/redis_limiter.hpp"
#include "support/engine_harness.hpp"
#include "support/redis_server.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

using namespace recsync;
using testkit::shared_redis;
using testkit::wait_until;
using Clock = std::chrono::steady_clock;

namespace {

config::SharedRateLimitConfig redis_config(const std::string &prefix) {
    config::SharedRateLimitConfig c;
    c.backend = "redis";
    c.address = shared_redis()->address();
    c.host = "127.0.0.1";
    c.port = shared_redis()->port();
    c.key_prefix = prefix;
    return c;
}

// Three instances, each taking tokens of connection "crm" (100/s, burst 10) as fast as it
// gets them, for `seconds`; `during` runs meanwhile. Returns the tokens each took.
struct ThreeInstances {
    std::vector<std::unique_ptr<ratelimit::RedisLimiter>> limiters;
    std::vector<std::shared_ptr<ratelimit::SharedTokens>> tokens;
    std::vector<std::atomic<int64_t>> taken = std::vector<std::atomic<int64_t>>(3);
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;

    explicit ThreeInstances(const std::string &prefix) {
        for (int i = 0; i < 3; ++i) {
            limiters.push_back(std::make_unique<ratelimit::RedisLimiter>(redis_config(prefix)));
            tokens.push_back(limiters.back()->tokens("crm", 100, 10));
        }
        for (int i = 0; i < 3; ++i)
            threads.emplace_back([this, i] {
                while (!stop) {
                    const auto now = Clock::now();
                    if (tokens[i]->available(now)) {
                        tokens[i]->take(now);
                        taken[i].fetch_add(1);
                    } else {
                        std::this_thread::sleep_until(std::min(tokens[i]->next_try(now), now + std::chrono::milliseconds(5)));
                    }
                }
            });
    }
    int64_t total() const { return taken[0] + taken[1] + taken[2]; }
    uint64_t redis_calls() const {
        uint64_t n = 0;
        for (const auto &l : limiters) n += l->status().calls;
        return n;
    }
    ~ThreeInstances() {
        stop = true;
        for (auto &t : threads) t.join();
    }
};

TEST(RedisRateLimit, ThreeInstancesTogetherStayWithinTheSharedRate) {
    ASSERT_NE(shared_redis(), nullptr);
    ThreeInstances run("t1");
    std::this_thread::sleep_for(std::chrono::seconds(3));
    const int64_t total = run.total();
    const uint64_t calls = run.redis_calls();
    std::printf("3 instances, 3 s at 100/s: %lld tokens, %llu Redis calls\n", static_cast<long long>(total), static_cast<unsigned long long>(calls));
    // Three local buckets would give 900 (+30): one shared bucket gives 100/s and its burst.
    EXPECT_LE(total, 100 * 3 + 10 + 1);
    EXPECT_GE(total, 250) << "the instances did not get the shared rate";
    for (int i = 0; i < 3; ++i) EXPECT_GE(run.taken[i].load(), 40) << "instance " << i << " was starved";
    // Leases (0.2 s of a third of the rate: 7 tokens, fewer when the others took some
    // first), not a Redis call per token: about one call per three tokens here.
    EXPECT_LE(calls * 2, static_cast<uint64_t>(total)) << calls << " Redis calls for " << total << " tokens";
    for (const auto &l : run.limiters) EXPECT_TRUE(l->status().reachable);
    EXPECT_EQ(run.tokens[0]->status(Clock::now()).instances, 3);
}

// A bucket Redis does not hold (a first start, a Redis restarted without persistence)
// starts empty: at 10/s with a burst of 100, a full one would hand out 100 tokens at once.
TEST(RedisRateLimit, ABucketRedisDoesNotHoldStartsEmpty) {
    ASSERT_NE(shared_redis(), nullptr);
    ratelimit::RedisLimiter limiter(redis_config("t5"));
    const auto tokens = limiter.tokens("crm", 10, 100);
    const auto start = Clock::now();
    int64_t taken = 0;
    while (Clock::now() - start < std::chrono::milliseconds(800)) {
        const auto now = Clock::now();
        if (tokens->available(now)) {
            tokens->take(now);
            ++taken;
        } else {
            std::this_thread::sleep_until(std::min(tokens->next_try(now), now + std::chrono::milliseconds(5)));
        }
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    // The rate over the time it ran, a lease (0.2 s of 10/s) and one more.
    EXPECT_LE(static_cast<double>(taken), 10.0 * elapsed + 2 + 1) << taken << " tokens in " << elapsed << " s: the bucket started full";
    EXPECT_GE(taken, 1) << "no token at all in " << elapsed << " s";
    EXPECT_TRUE(limiter.status().reachable);
}

// A server's limit one instance heard (30 per second, below the configured 100/s) caps
// the shared bucket for all three: the two that never heard it send their share of 30/s.
TEST(RedisRateLimit, AServersLimitOneInstanceHeardCapsThemAll) {
    ASSERT_NE(shared_redis(), nullptr);
    ThreeInstances run("t6");
    run.tokens[0]->server_limit(30, 1000, Clock::now());
    ASSERT_TRUE(wait_until([&] {
        const auto now = Clock::now();
        return run.tokens[1]->status(now).bucket_rate == 30.0 && run.tokens[2]->status(now).bucket_rate == 30.0;
    })) << "the others never saw the capped rate";
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));  // what was leased at 100/s is spent or expired
    const int64_t before = run.total();
    std::this_thread::sleep_for(std::chrono::seconds(3));
    const int64_t during = run.total() - before;
    // 3 s at 30/s, the burst (10) and the leases in hand (0.2 s of 10/s each).
    EXPECT_LE(during, 30 * 3 + 10 + 3 * 2 + 1) << "the instances sent past the server's limit";
    EXPECT_GE(during, 60) << "the instances did not get the capped rate";
    EXPECT_GT(run.taken[1].load() + run.taken[2].load(), 0);
}

// CLIENT PAUSE makes Redis stop answering (commands time out): each instance falls back
// to a third of the rate, then shares again once Redis answers.
TEST(RedisRateLimit, AnUnansweringRedisLeavesEachInstanceItsShare) {
    ASSERT_NE(shared_redis(), nullptr);
    ThreeInstances run("t2");
    ASSERT_TRUE(wait_until([&] { return run.tokens[0]->status(Clock::now()).instances == 3 && run.tokens[2]->status(Clock::now()).instances == 3; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const int64_t before = run.total();
    ASSERT_EQ(shared_redis()->command("CLIENT PAUSE 3000"), "OK");
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    bool fell_back = true;
    for (const auto &t : run.tokens) fell_back = fell_back && t->status(Clock::now()).fallback;
    EXPECT_TRUE(fell_back) << "the instances did not notice that Redis stopped answering";
    for (const auto &l : run.limiters) EXPECT_FALSE(l->status().reachable);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    const int64_t during = run.total() - before;
    // 3 s at 100/s, what was leased before, the fallback buckets' first tokens.
    EXPECT_LE(during, 300 + 3 * 10 + 3) << "an instance sent more than its share while Redis was away";
    EXPECT_GE(during, 150) << "the instances stopped sending instead of sending their share";
    // Back: shared again.
    EXPECT_TRUE(wait_until([&] { return run.limiters[0]->status().reachable && !run.tokens[0]->status(Clock::now()).fallback; }, std::chrono::seconds(5)));
}

// One instance's 429 with Retry-After pauses them all.
TEST(RedisRateLimit, APauseOneInstanceIsToldStopsTheOthers) {
    ASSERT_NE(shared_redis(), nullptr);
    ThreeInstances run("t3");
    ASSERT_TRUE(wait_until([&] { return run.total() > 20; }));
    run.tokens[0]->pause_all(1500);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the pause reached Redis; leases in hand are spent
    const int64_t at = run.total();
    std::this_thread::sleep_for(std::chrono::milliseconds(900));
    EXPECT_LE(run.total() - at, 3 * 10) << "instances kept sending through a shared pause";
    EXPECT_TRUE(wait_until([&] { return run.total() - at > 50; }, std::chrono::seconds(5))) << "the pause did not end";
}

// Three engines, one connection limited to 100/s by the mock CRM that enforces it (429
// past it): 900 contacts posted round-robin to all three, one call each, Redis down for
// two seconds in the middle. Every contact is made once, none refused, at most 102/s
// beyond a burst (a bucket Redis does not hold starts empty, also after its restart).
TEST(RedisRateLimit, ThreeEnginesShareOneConnectionsLimitWithoutA429) {
    ASSERT_NE(shared_redis(), nullptr);
    mock::MockCrmOptions options;
    options.threads = 4;
    options.rate_per_second = 100;
    mock::MockCrm crm(options);
    crm.start();
    constexpr int kBurst = 20;
    std::vector<std::unique_ptr<testkit::TempDir>> dirs;
    std::vector<std::unique_ptr<engine::Engine>> engines;
    const std::string top = "ratelimit: { backend: redis, redis: { address: '" + shared_redis()->address() + "', key_prefix: t4 } }\n";
    for (int i = 0; i < 3; ++i) {
        dirs.push_back(std::make_unique<testkit::TempDir>());
        testkit::stage_hubspot(*dirs.back());
        dirs.back()->write("rules/crm.yaml",
                           "mappings:\n  m: { fields: [ { from: email, to: email } ] }\n"
                           "rules:\n  - { name: new, on: { entity: contact, event: created }, do: { action: create, target: crm, object: contacts, mapping: m } }\n");
        engines.push_back(testkit::start_engine(*dirs.back(),
                                                "  crm: { provider: hubspot, base_url: '" + crm.base_url() + "', rate_limit: { per_second: 100, burst: " + std::to_string(kBurst) + " }, batch: { max_size: 1 } }\n", top));
    }
    constexpr int kRecords = 900;
    for (int chunk = 0; chunk < kRecords / 100; ++chunk) {
        std::string body;
        for (int i = chunk * 100; i < chunk * 100 + 100; ++i)
            body += R"({"entity":"contact","event":"created","key":"k)" + std::to_string(i) + R"(","data":{"email":"r)" + std::to_string(i) + "@example.com\"}}\n";
        testkit::post_events(testkit::base_url(*engines[chunk % 3]), body);
    }
    std::this_thread::sleep_for(std::chrono::seconds(3));
    shared_redis()->stop();
    const auto stopped = std::chrono::steady_clock::now();
    // Still ready (its state is its own), and says what it lacks.
    const std::string ready_url = testkit::base_url(*engines[0]) + "/readyz";
    testkit::HttpReply ready;
    EXPECT_TRUE(wait_until([&] { return (ready = testkit::http_request("GET", ready_url)).body.find("ratelimit") != std::string::npos; }, std::chrono::seconds(5))) << ready.body;
    EXPECT_EQ(ready.status, 200) << ready.body;
    EXPECT_NE(ready.body.find(R"("status":"degraded")"), std::string::npos) << ready.body;
    std::this_thread::sleep_until(stopped + std::chrono::seconds(2));
    shared_redis()->start();
    EXPECT_TRUE(wait_until([&] { return (ready = testkit::http_request("GET", ready_url)).body == R"({"status":"ready"})"; }, std::chrono::seconds(10))) << ready.body;
    ASSERT_TRUE(wait_until([&] { return crm.counters().created >= kRecords; }, std::chrono::seconds(60))) << crm.counters().created;
    for (auto &e : engines) EXPECT_TRUE(wait_until([&] { return e->state().tasks().count() == 0; }));
    EXPECT_EQ(crm.counters().created, static_cast<uint64_t>(kRecords));
    EXPECT_EQ(crm.counters().rejected_429, 0u);
    std::vector<int64_t> at;
    for (const auto &r : crm.requests())
        if (r.method == "POST") at.push_back(r.at_ms);
    ASSERT_GE(at.size(), static_cast<size_t>(kRecords));
    std::sort(at.begin(), at.end());
    const double seconds = static_cast<double>(at.back() - at.front()) / 1000.0;
    const double rate = static_cast<double>(at.size() - 1) / seconds;
    // The bucket starts empty, also after the restart (Redis kept nothing); a burst is
    // allowed for what the fallback buckets and leases in hand add while Redis is away.
    EXPECT_LE(static_cast<double>(at.size() - 1 - kBurst) / seconds, 102.0) << at.size() << " calls in " << seconds << " s";
    // In any one second: the rate, a burst, what leases and the fallback's first tokens add.
    size_t most = 0;
    for (size_t i = 0, j = 0; j < at.size(); ++j) {
        while (at[j] - at[i] >= 1000) ++i;
        most = std::max(most, j - i + 1);
    }
    EXPECT_LE(most, static_cast<size_t>(100 + 2 * kBurst + 10));
    uint64_t redis_calls = 0;
    for (auto &e : engines) redis_calls += e->shared_limits_status().at("calls").get<uint64_t>();
    std::printf("3 engines: %zu calls in %.1f s (%.1f/s, Redis down 2 s of it; at most %zu in one second), %llu Redis calls (%.0f per 1,000 calls)\n", at.size(), seconds, rate, most,
                static_cast<unsigned long long>(redis_calls), 1000.0 * static_cast<double>(redis_calls) / static_cast<double>(at.size()));
    for (auto &e : engines) e->stop(std::chrono::seconds(2));
    crm.stop();
}

// Through a lane: the HubSpot plugin reads the mock's X-HubSpot-RateLimit-* headers (a
// bucket of 10 refilling in 500 ms: 20/s), the lane shares them, and the connection's
// shared bucket (configured at 1,000/s) refills at 20/s.
TEST(RedisRateLimit, ALanesServerReportsCapTheSharedBucket) {
    ASSERT_NE(shared_redis(), nullptr);
    mock::MockCrmOptions options;
    mock::MockCrm crm(options);
    crm.start();
    crm.set_rate_limit(20, 10);
    testkit::TempDir dir;
    testkit::stage_hubspot(dir);
    dir.write("rules/crm.yaml",
              "mappings:\n  m: { fields: [ { from: email, to: email } ] }\n"
              "rules:\n  - { name: new, on: { entity: contact, event: created }, do: { action: create, target: crm, object: contacts, mapping: m } }\n");
    auto engine = testkit::start_engine(dir, "  crm: { provider: hubspot, base_url: '" + crm.base_url() + "', rate_limit: { per_second: 1000, burst: 100 }, batch: { max_size: 1 } }\n",
                                        "ratelimit: { backend: redis, redis: { address: '" + shared_redis()->address() + "', key_prefix: t7 } }\n");
    std::string body;
    for (int i = 0; i < 40; ++i) body += R"({"entity":"contact","event":"created","key":"k)" + std::to_string(i) + R"(","data":{"email":"s)" + std::to_string(i) + "@example.com\"}}\n";
    testkit::post_events(testkit::base_url(*engine), body);
    ASSERT_TRUE(wait_until([&] { return crm.counters().created >= 40; }, std::chrono::seconds(30))) << crm.counters().created;
    const auto status = engine->shared_limits_status();
    EXPECT_EQ(status["connections"]["crm"]["bucket_rate_per_second"], 20.0) << status.dump();
    EXPECT_EQ(status["connections"]["crm"]["rate_per_second"], 1000.0) << status.dump();
    EXPECT_EQ(crm.counters().rejected_429, 0u);
    engine->stop(std::chrono::seconds(2));
    crm.stop();
}

}  // namespace
