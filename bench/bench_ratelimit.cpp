// bench_ratelimit: one lane configured at R/s (default 100) with a backlog, against a mock
// CRM enforcing the same limit (token bucket, same rate and burst): the rate the mock
// accepts over a steady window (target 97-100% of R) and the 429s its limiter answers
// (target 0). Then a 429 storm (POST /_mock/faults {"fail_next":N,"status":429,
// "retry_after":S}) and the time until the lane is back at its limit.
//
// The baseline is the limit itself, as the mock enforces it: `share_of_limit` = accepted
// rate / R. The mock's /_mock/stats is sampled every 50 ms.
//
// Lines (stdout):
//   {"bench":"ratelimit", ...}        achieved rate, share of the limit, 429s, meets_target
//   {"bench":"ratelimit.storm", ...}  back_at_limit_s after the storm, 429s from the limiter after it
#include "delivery_common.hpp"

using namespace bench;

namespace {

const char *kUsage =
    "usage: bench_ratelimit [--rate 100] [--lane-burst R] [--mock-burst R] [--backlog 3000] [--window 20]\n"
    "                       [--storm 20] [--retry-after 1] [--recover-timeout 90] [--in-flight 8]\n";

struct Point {
    double t;  // seconds since t0
    int64_t created, limited, injected, requests;
};

}  // namespace

int main(int argc, char **argv) try {
    Args args(argc, argv);
    const double rate = args.num("rate", 100);
    const double lane_burst = args.num("lane-burst", rate);
    const double mock_burst = args.num("mock-burst", rate);
    const int64_t backlog = static_cast<int64_t>(args.num("backlog", 3000));
    const double window = args.num("window", 20);
    const int storm = static_cast<int>(args.num("storm", 20));
    const int retry_after = static_cast<int>(args.num("retry-after", 1));
    const double recover_timeout = args.num("recover-timeout", 90);
    const int in_flight = static_cast<int>(args.num("in-flight", 8));
    args.done(kUsage);
    install_guard(static_cast<unsigned>(window + recover_timeout) + 300);
    if (backlog < rate * (window + 3)) std::cerr << "bench_ratelimit: warning: the backlog runs out before the window ends\n";

    const json load_start = load_average();
    TempDir dir;
    const std::string plugins = prepare_plugins(dir);
    const std::string rules = prepare_rules(dir, "hubspot-main");
    char num[64];
    std::snprintf(num, sizeof num, "%g", rate);
    std::string rate_s = num;
    std::snprintf(num, sizeof num, "%g", mock_burst);
    Mock mock = start_mock(dir, {"--no-log", "--rate", rate_s, "--burst", num});
    HttpClient admin("127.0.0.1", mock.port);
    progress("mock CRM on " + mock.url() + " enforcing " + rate_s + "/s burst " + num);

    EngineSpec spec = engine_spec(dir, plugins, rules, mock);
    spec.log_level = "info";
    spec.retry_base_ms = 200;
    spec.retry_max_ms = 5000;
    const std::string cfg = dir.write("recsync.yaml", config_yaml(spec, {{"hubspot-main", rate, lane_burst, in_flight}}));
    Engine engine = start_recsync(cfg, spec.port, dir.file("recsync.log"));

    // Sampler.
    std::vector<Point> points;
    std::mutex mu;
    std::atomic<bool> stop{false};
    Clock::time_point t0 = Clock::now();
    std::thread sampler([&] {
        HttpClient c("127.0.0.1", mock.port);
        while (!stop) {
            json st;
            try {
                st = c.get_json("/_mock/stats");
            } catch (const std::exception &e) {
                progress(std::string("sampler: ") + e.what());
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
                continue;
            }
            {
                std::lock_guard l(mu);
                points.push_back({seconds_since(t0), st["created"], st["rejected_429"], st["injected_failures"], st["requests"]});
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    });
    auto at = [&](double t) {  // the last sample at or before t
        std::lock_guard l(mu);
        Point p = points.front();
        for (const auto &q : points) {
            if (q.t > t) break;
            p = q;
        }
        return p;
    };
    auto latest = [&] {
        std::lock_guard l(mu);
        return points.back();
    };

    progress("queueing a backlog of " + std::to_string(backlog) + " events");
    const auto sent = send_events(spec.port, "rl", 0, backlog, 500, 2, t0);
    progress("backlog accepted in " + std::to_string(sent.last_accept_s) + " s; measuring " + std::to_string(window) + " s from t=2 s");
    std::this_thread::sleep_until(t0 + std::chrono::milliseconds(static_cast<int64_t>((2 + window) * 1000) + 100));
    const Point a = at(2.0), b = at(2.0 + window);
    const double achieved = static_cast<double>(b.created - a.created) / (b.t - a.t);
    const Point end_steady = latest();
    const double overall = static_cast<double>(end_steady.created) / end_steady.t;

    // Keep the lane busy through the storm and the recovery.
    const int64_t topup = static_cast<int64_t>(rate * (recover_timeout + 10));
    send_events(spec.port, "rl", backlog, topup, 500, 2, t0);
    const Point before = latest();
    progress("429 storm: fail_next " + std::to_string(storm) + " with Retry-After " + std::to_string(retry_after));
    const auto f = admin.request("POST", "/_mock/faults", json{{"fail_next", storm}, {"status", 429}, {"retry_after", retry_after}}.dump());
    if (f.status != 200) throw std::runtime_error("POST /_mock/faults -> " + std::to_string(f.status) + " " + f.body);
    const double storm_t = seconds_since(t0);
    // First injected 429, last injected 429, then the first full second at >= 97% of R.
    double hit_t = -1, over_t = -1, back_t = -1;
    const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(recover_timeout * 1000));
    while (Clock::now() < deadline && back_t < 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        const Point p = latest();
        if (std::getenv("BENCH_VERBOSE")) progress("t=" + std::to_string(p.t) + " created=" + std::to_string(p.created) + " injected=" + std::to_string(p.injected));
        if (hit_t < 0 && p.injected > before.injected) hit_t = p.t;
        if (over_t < 0 && p.injected >= before.injected + storm) over_t = p.t;
        if (over_t >= 0 && p.t >= over_t + 1.0) {
            // Windows [s, s+1] with s >= over_t, ending at or before p.t.
            std::lock_guard l(mu);
            for (size_t i = 0; i < points.size() && back_t < 0; ++i) {
                if (points[i].t < over_t) continue;
                for (size_t k = i; k < points.size(); ++k)
                    if (points[k].t >= points[i].t + 1.0) {
                        const double r = static_cast<double>(points[k].created - points[i].created) / (points[k].t - points[i].t);
                        if (r >= 0.97 * rate) back_t = points[i].t;
                        break;
                    }
            }
        }
    }
    // Five more seconds at the recovered rate, and what the limiter said meanwhile.
    const Point rec = latest();
    std::this_thread::sleep_for(std::chrono::seconds(5));
    const Point after5 = latest();
    stop = true;
    sampler.join();
    const Point last = at(1e9);
    HttpClient rc("127.0.0.1", spec.port);
    const auto status = rc.get_json("/v1/status");
    engine.proc.stop();

    const int64_t limited_steady = b.limited - a.limited;
    emit({{"bench", "ratelimit"},
          {"limit_per_sec", rate},
          {"lane_burst", lane_burst},
          {"mock_burst", mock_burst},
          {"in_flight", in_flight},
          {"backlog", backlog},
          {"window_s", window},
          {"achieved_per_sec", round_to(achieved, 2)},
          {"share_of_limit", round_to(achieved / rate, 4)},
          {"overall_per_sec_incl_burst", round_to(overall, 2)},
          {"rejected_429_in_window", limited_steady},
          {"rejected_429_before_storm", before.limited},
          {"meets_rate_target", achieved >= 0.97 * rate && achieved <= 1.0 * rate * 1.005},
          {"meets_429_target", before.limited == 0},
          {"load_avg_start", load_start},
          {"load_avg_end", load_average()}});
    emit({{"bench", "ratelimit.storm"},
          {"limit_per_sec", rate},
          {"injected_429", storm},
          {"retry_after_s", retry_after},
          {"storm_lasted_s", hit_t >= 0 && over_t >= 0 ? json(round_to(over_t - hit_t, 2)) : json(nullptr)},
          {"back_at_limit_s", back_t >= 0 && hit_t >= 0 ? json(round_to(back_t - hit_t, 2)) : json(nullptr)},
          {"back_at_limit_after_storm_s", back_t >= 0 && over_t >= 0 ? json(round_to(back_t - over_t, 2)) : json(nullptr)},
          {"recovered", back_t >= 0},
          {"rate_next_5s", round_to(static_cast<double>(after5.created - rec.created) / (after5.t - rec.t), 2)},
          {"rejected_429_after_storm", last.limited - before.limited},
          {"retried", status["connections"]["hubspot-main"]["retried"]},
          {"dead_letters", status["dead_letters"]},
          {"storm_sent_at_s", round_to(storm_t, 2)},
          {"load_avg_end", load_average()}});
    return 0;
} catch (const std::exception &e) {
    std::cerr << "bench_ratelimit: " << e.what() << "\n";
    return 1;
}
