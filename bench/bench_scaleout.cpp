// bench_scaleout: several recsync processes sharing one connection's rate limit through
// Redis (`ratelimit.backend: redis`), each on its own SQLite state (queue.backend kafka
// and state.backend postgres are not built yet: each instance delivers what it accepted).
//
// 1. Throughput: the same events end to end (POST /v1/events -> mock creates) through 1
//    and then 3 instances against an unlimited mock, the connection's limit out of the
//    way but shared through Redis. On a 2-core machine three instances share the cores
//    the one had: the figure shows the overhead of running three, not scaling.
// 2. Failover: 3 instances, one connection limited to --rate (100/s) by a mock enforcing
//    the same limit, --events (20,000) sent round-robin at --send-rate: one instance is
//    killed (SIGKILL) a third of the way through the sending and restarted at two
//    thirds, then Redis is stopped for --redis-down seconds. The sender moves a batch an
//    instance did not answer to the next one (an at-least-once sender). Reported: lost
//    records, creates the mock saw twice, 429s, the aggregate rate (mean, the busiest
//    ten seconds, the busiest one second: the bursts on top of the rate), Redis calls per 1,000 HTTP calls.
//
// Lines (stdout):
//   {"bench":"scaleout.throughput", ...}  records_per_sec_1, records_per_sec_3, ratio_3_to_1
//   {"bench":"scaleout.failover", ...}    lost, duplicates, rejected_429, max_calls_in_one_second, redis_calls_per_1000_http_calls
#include "delivery_common.hpp"

using namespace bench;

namespace {

const char *kUsage =
    "usage: bench_scaleout [--throughput-events 40000] [--events 20000] [--rate 100] [--lane-burst 20] [--mock-burst 100]\n"
    "                      [--send-rate 150] [--redis-down 10] [--instances 3] [--skip-throughput] [--skip-failover]\n";

struct RedisServer {
    Child proc;
    uint16_t port = 0;
};

RedisServer start_redis(const TempDir &dir, uint16_t port) {
    if (!have_program("redis-server")) throw std::runtime_error("redis-server is not installed (scripts/deps installs it)");
    RedisServer r;
    r.port = port;
    r.proc = Child({"redis-server", "--port", std::to_string(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir.path()},
                   dir.file("redis.log"));
    if (!wait_until([&] { return !r.proc.alive() || port_in_use(port); }, std::chrono::seconds(10)) || !r.proc.alive())
        throw std::runtime_error("redis-server did not start: " + tail_file(dir.file("redis.log"), 600));
    return r;
}

struct Instance {
    std::string config, log;
    uint16_t port = 0;
    Engine engine;
};

// N instances at one mock, each with its own state database and port, sharing the
// connection's limit through the Redis at `redis_port`.
std::vector<Instance> start_instances(const TempDir &dir, const std::string &tag, int n, const Mock &mock, uint16_t redis_port, const ConnSpec &conn) {
    const std::string plugins = prepare_plugins(dir);
    const std::string rules = prepare_rules(dir, conn.name);
    std::vector<Instance> out(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
        auto &in = out[static_cast<size_t>(i)];
        EngineSpec spec = engine_spec(dir, plugins, rules, mock);
        spec.state_path = dir.file(tag + "-" + std::to_string(i) + "/recsync.db");
        spec.synchronous = "normal";
        spec.retry_base_ms = 200;
        spec.retry_max_ms = 5000;
        in.port = spec.port;
        in.log = dir.file(tag + "-" + std::to_string(i) + ".log");
        in.config = dir.write(tag + "-" + std::to_string(i) + ".yaml",
                              config_yaml(spec, {conn}) + "ratelimit: { backend: redis, redis: { address: '127.0.0.1:" + std::to_string(redis_port) +
                                  "', fallback_instances: " + std::to_string(n) + " } }\n");
    }
    for (auto &in : out) in.engine = start_recsync(in.config, in.port, in.log);
    return out;
}

// Sends events prefix-0 .. prefix-(n-1) as NDJSON batches of `batch` to the instances in
// turn, `senders` threads, at most `per_second` events/s in all (0: as fast as they are
// taken). A batch an instance does not answer 202 goes to the next instance.
struct RoundRobinStats {
    double seconds = 0;
    int64_t moved = 0;  // batches sent again to another instance
};
RoundRobinStats send_round_robin(const std::vector<uint16_t> &ports, const std::string &prefix, int64_t n, int batch, int senders, double per_second) {
    std::atomic<int64_t> next{0}, moved{0};
    const auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (int s = 0; s < senders; ++s)
        threads.emplace_back([&, s] {
            std::vector<std::unique_ptr<HttpClient>> clients;
            for (auto p : ports) clients.push_back(std::make_unique<HttpClient>("127.0.0.1", p));
            size_t turn = static_cast<size_t>(s);
            std::string body;
            for (;;) {
                const int64_t b = next.fetch_add(batch);
                if (b >= n) break;
                if (per_second > 0) std::this_thread::sleep_until(t0 + std::chrono::microseconds(static_cast<int64_t>(1e6 * static_cast<double>(b) / per_second)));
                body.clear();
                for (int64_t i = b; i < std::min(n, b + batch); ++i) (body += contact_event(prefix, i)) += '\n';
                for (int tries = 0;; ++tries) {
                    const auto r = clients[turn++ % clients.size()]->request("POST", "/v1/events", body, "application/x-ndjson");
                    if (r.status == 202) break;
                    ++moved;
                    if (tries % clients.size() == clients.size() - 1) std::this_thread::sleep_for(std::chrono::milliseconds(50));
                }
            }
        });
    for (auto &t : threads) t.join();
    return {seconds_since(t0), moved.load()};
}

int64_t mock_count(HttpClient &admin, const char *field) { return admin.get_json("/_mock/stats")[field].get<int64_t>(); }

// Records/s end to end: `n` events through `instances` instances, from the first send
// to the mock's n-th create.
json throughput_run(const TempDir &dir, int instances, int64_t n, uint16_t redis_port) {
    Mock mock = start_mock(dir, {"--no-log", "--threads", "2"}, "mock-t" + std::to_string(instances));
    HttpClient admin("127.0.0.1", mock.port);
    ConnSpec conn{"hubspot-main", 1e6, 1e4, 16};
    auto fleet = start_instances(dir, "t" + std::to_string(instances), instances, mock, redis_port, conn);
    std::vector<uint16_t> ports;
    for (const auto &in : fleet) ports.push_back(in.port);
    progress(std::to_string(n) + " events through " + std::to_string(instances) + " instance(s)");
    const auto t0 = Clock::now();
    const auto sent = send_round_robin(ports, "t" + std::to_string(instances), n, 100, 4, 0);
    const bool all = wait_until([&] { return mock_count(admin, "created") >= n; }, std::chrono::seconds(300), std::chrono::milliseconds(10));
    const double seconds = seconds_since(t0);
    int64_t redis_calls = 0;
    for (auto &in : fleet) {
        HttpClient c("127.0.0.1", in.port);
        redis_calls += c.get_json("/v1/status")["ratelimit"]["calls"].get<int64_t>();
    }
    const int64_t requests = mock_count(admin, "requests");
    for (auto &in : fleet) in.engine.proc.stop();
    if (!all) throw std::runtime_error(std::to_string(instances) + " instance(s) did not deliver " + std::to_string(n) + " events within 300 s");
    return {{"instances", instances},
            {"records_per_sec", round_to(static_cast<double>(n) / seconds, 1)},
            {"seconds", round_to(seconds, 2)},
            {"accepted_in_s", round_to(sent.seconds, 2)},
            {"redis_calls_per_1000_http_calls", requests ? round_to(1000.0 * static_cast<double>(redis_calls) / static_cast<double>(requests), 2) : 0.0}};
}

struct Sample {
    double t;
    int64_t requests, created, rejected_429, duplicates, contacts;
};

// The busiest `window` seconds within [from, to] of the mock's request counter.
struct Peak {
    double per_sec = 0, at = 0;
};
Peak busiest_window(const std::vector<Sample> &samples, double window, double from, double to) {
    Peak p;
    for (size_t i = 0; i < samples.size(); ++i) {
        if (samples[i].t < from) continue;
        for (size_t k = i + 1; k < samples.size() && samples[k].t <= to; ++k)
            if (samples[k].t >= samples[i].t + window) {
                const double r = static_cast<double>(samples[k].requests - samples[i].requests) / (samples[k].t - samples[i].t);
                if (r > p.per_sec) p = {r, samples[i].t};
                break;
            }
    }
    return p;
}

}  // namespace

int main(int argc, char **argv) try {
    Args args(argc, argv);
    const int64_t throughput_events = static_cast<int64_t>(args.num("throughput-events", 40000));
    const int64_t events = static_cast<int64_t>(args.num("events", 20000));
    const double rate = args.num("rate", 100);
    const double lane_burst = args.num("lane-burst", 20);
    const double mock_burst = args.num("mock-burst", 100);
    const double send_rate = args.num("send-rate", 150);
    const double redis_down = args.num("redis-down", 10);
    const int instances = static_cast<int>(args.num("instances", 3));
    const bool skip_throughput = args.flag("skip-throughput"), skip_failover = args.flag("skip-failover");
    args.done(kUsage);
    const double send_span = static_cast<double>(events) / send_rate;
    install_guard(static_cast<unsigned>(1200 + 2 * static_cast<double>(events) / rate));
    const json load_start = load_average();
    TempDir dir;
    RedisServer redis = start_redis(dir, free_port());
    progress("redis-server on 127.0.0.1:" + std::to_string(redis.port));

    if (!skip_throughput) {
        const json one = throughput_run(dir, 1, throughput_events, redis.port);
        const json many = throughput_run(dir, instances, throughput_events, redis.port);
        const double r1 = one["records_per_sec"].get<double>(), rn = many["records_per_sec"].get<double>();
        emit({{"bench", "scaleout.throughput"},
              {"events", throughput_events},
              {"cores", std::thread::hardware_concurrency()},
              {"records_per_sec_1", r1},
              {"records_per_sec_" + std::to_string(instances), rn},
              {"ratio_" + std::to_string(instances) + "_to_1", round_to(rn / r1, 3)},
              {"runs", json::array({one, many})},
              {"queue_backend", "sqlite per instance (queue.backend kafka is not built)"},
              {"kafka_produce_to_deliver_ms", nullptr},
              {"load_avg_start", load_start},
              {"load_avg_end", load_average()}});
    }
    if (skip_failover) return 0;

    char num[32];
    std::snprintf(num, sizeof num, "%g", rate);
    const std::string rate_s = num;
    std::snprintf(num, sizeof num, "%g", mock_burst);
    Mock mock = start_mock(dir, {"--no-log", "--threads", "2", "--rate", rate_s, "--burst", num}, "mock-failover");
    HttpClient admin("127.0.0.1", mock.port);
    auto fleet = start_instances(dir, "f", instances, mock, redis.port, ConnSpec{"hubspot-main", rate, lane_burst, 8});
    std::vector<uint16_t> ports;
    for (const auto &in : fleet) ports.push_back(in.port);
    progress(std::to_string(events) + " events round-robin over " + std::to_string(instances) + " instances at " + std::to_string(send_rate) +
             "/s; the mock and the connection at " + rate_s + "/s");

    // The mock's counters every 100 ms; each instance's Redis calls every 500 ms (what an
    // instance counted before it was killed is kept).
    std::vector<Sample> samples;
    std::vector<int64_t> redis_calls_now(fleet.size(), 0), redis_calls_before(fleet.size(), 0);
    std::mutex mu;
    std::atomic<bool> stop{false};
    const auto t0 = Clock::now();
    std::thread sampler([&] {
        HttpClient c("127.0.0.1", mock.port);
        int tick = 0;
        while (!stop) {
            try {
                const json st = c.get_json("/_mock/stats");
                std::lock_guard l(mu);
                samples.push_back({seconds_since(t0), st["requests"], st["created"], st["rejected_429"], st["duplicates"], st["records"].value("contacts", int64_t{0})});
            } catch (const std::exception &e) {
                progress(std::string("sampler: ") + e.what());
            }
            if (++tick % 5 == 0)
                for (size_t i = 0; i < fleet.size(); ++i) {
                    HttpClient s("127.0.0.1", ports[i]);
                    const auto r = s.get("/v1/status");
                    if (r.status != 200) continue;  // down
                    const auto calls = json::parse(r.body)["ratelimit"]["calls"].get<int64_t>();
                    std::lock_guard l(mu);
                    redis_calls_now[i] = calls;
                }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    });
    RoundRobinStats sent;
    std::thread sender([&] { sent = send_round_robin(ports, "f", events, 10, 2, send_rate); });

    const auto at = [&](double s) { return t0 + std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); };
    auto &victim = fleet[1];
    std::this_thread::sleep_until(at(send_span / 3));
    progress("kill -9 instance 1");
    kill(victim.engine.proc.pid(), SIGKILL);
    victim.engine.proc.stop();
    const double killed_at = seconds_since(t0);
    {
        std::lock_guard l(mu);
        redis_calls_before[1] += redis_calls_now[1];
        redis_calls_now[1] = 0;
    }
    std::this_thread::sleep_until(at(2 * send_span / 3));
    progress("restarting instance 1");
    victim.engine = start_recsync(victim.config, victim.port, victim.log);
    const double restarted_at = seconds_since(t0);
    // Redis down for a while, once the restarted instance has been seen by the others.
    std::this_thread::sleep_for(std::chrono::seconds(5));
    double redis_down_from = -1, redis_down_to = -1;
    if (redis_down > 0) {
        {
            std::lock_guard l(mu);
            for (size_t i = 0; i < fleet.size(); ++i) redis_calls_before[i] += redis_calls_now[i], redis_calls_now[i] = 0;
        }
        progress("stopping redis-server for " + std::to_string(redis_down) + " s");
        redis_down_from = seconds_since(t0);
        redis.proc.stop();
        std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(redis_down * 1000)));
        redis = start_redis(dir, redis.port);
        redis_down_to = seconds_since(t0);
        progress("redis-server back");
    }
    sender.join();
    progress("all accepted at t=" + std::to_string(sent.seconds) + " s; waiting for the mock to hold every record");
    const bool all = wait_until(
        [&] {
            std::lock_guard l(mu);
            return !samples.empty() && samples.back().contacts >= events;
        },
        std::chrono::seconds(static_cast<int64_t>(static_cast<double>(events) / rate) + 120), std::chrono::milliseconds(100));
    std::this_thread::sleep_for(std::chrono::seconds(2));  // anything sent twice lands too
    int64_t dead_letters = 0, queued = 0;
    for (size_t i = 0; i < fleet.size(); ++i) {
        HttpClient c("127.0.0.1", ports[i]);
        const json st = c.get_json("/v1/status");
        dead_letters += st["dead_letters"].get<int64_t>();
        queued += st["connections"]["hubspot-main"]["queued"].get<int64_t>();
        std::lock_guard l(mu);
        redis_calls_now[i] = st["ratelimit"]["calls"].get<int64_t>();
    }
    stop = true;
    sampler.join();
    for (auto &in : fleet) in.engine.proc.stop();

    // The most calls the mock saw in any one second (what the buckets' bursts allow on top
    // of the rate) and in any ten (the sustained rate), and in one second of Redis's outage.
    const Peak peak_1s = busiest_window(samples, 1.0, 0, 1e18);
    const Peak peak_10s = busiest_window(samples, 10.0, 0, 1e18);
    const Peak peak_redis_down = redis_down > 0 ? busiest_window(samples, 1.0, redis_down_from, redis_down_to) : Peak{};
    double first_t = -1, last_t = 0;
    for (size_t i = 0; i < samples.size(); ++i) {
        if (first_t < 0 && samples[i].requests > 0) first_t = samples[i].t;
        if (i > 0 && samples[i].requests > samples[i - 1].requests) last_t = samples[i].t;
    }
    const Sample &last = samples.back();
    int64_t redis_calls = 0;
    for (size_t i = 0; i < fleet.size(); ++i) redis_calls += redis_calls_before[i] + redis_calls_now[i];
    emit({{"bench", "scaleout.failover"},
          {"instances", instances},
          {"events", events},
          {"limit_per_sec", rate},
          {"lane_burst", lane_burst},
          {"mock_burst", mock_burst},
          {"lost", std::max<int64_t>(0, events - last.contacts)},
          {"records_in_crm", last.contacts},
          {"duplicates", last.duplicates},
          {"rejected_429", last.rejected_429},
          {"http_calls", last.requests},
          {"mean_calls_per_sec", first_t >= 0 && last_t > first_t ? round_to(static_cast<double>(last.requests) / (last_t - first_t), 2) : 0.0},
          {"max_calls_in_one_second", round_to(peak_1s.per_sec, 1)},
          {"max_calls_in_one_second_at_s", round_to(peak_1s.at, 1)},
          {"max_calls_per_sec_over_10s", round_to(peak_10s.per_sec, 1)},
          {"max_calls_per_sec_over_10s_at_s", round_to(peak_10s.at, 1)},
          {"max_calls_in_one_second_redis_down", redis_down > 0 ? json(round_to(peak_redis_down.per_sec, 1)) : json(nullptr)},
          {"redis_calls_per_1000_http_calls", last.requests ? round_to(1000.0 * static_cast<double>(redis_calls) / static_cast<double>(last.requests), 1) : 0.0},
          {"batches_moved_to_another_instance", sent.moved},
          {"killed_at_s", round_to(killed_at, 1)},
          {"restarted_at_s", round_to(restarted_at, 1)},
          {"redis_down_s", redis_down > 0 ? json({round_to(redis_down_from, 1), round_to(redis_down_to, 1)}) : json(nullptr)},
          {"accepted_in_s", round_to(sent.seconds, 1)},
          {"delivered_in_s", round_to(last_t, 1)},
          {"all_delivered", all},
          {"dead_letters", dead_letters},
          {"queued_at_end", queued},
          {"meets_target", all && last.contacts == events && last.duplicates == 0 && last.rejected_429 == 0 && peak_10s.per_sec <= rate * 1.02 && peak_1s.per_sec <= rate + lane_burst + rate * 0.02},
          {"load_avg_start", load_start},
          {"load_avg_end", load_average()}});
    return 0;
} catch (const std::exception &e) {
    std::cerr << "bench_scaleout: " << e.what() << "\n";
    return 1;
}
