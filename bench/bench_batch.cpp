// bench_batch: records/s through one lane against a mock CRM enforcing HubSpot
// Professional's 190 calls per 10 s (a token bucket of 19/s, burst 19, 429 past it), with a
// large backlog: batching on (the provider's sizes: 100 records per batch/create) against
// the same lane with batching off (batch.max_size: 1), measured in the same run. Target
// (issue 17): at least 95% of 19 x 100 = 1,805 records/s, zero 429s.
//
// Lines (stdout):
//   {"bench":"batch", ...}  records_per_sec on/off, calls_per_sec, rejected_429, ratio, meets_target
#include "delivery_common.hpp"

using namespace bench;

namespace {

const char *kUsage = "usage: bench_batch [--rate 19] [--window 10] [--backlog 40000] [--backlog-off 400]\n";

struct Point {
    double t;
    int64_t created, limited, requests;
};

struct Run {
    double records_per_sec = 0, calls_per_sec = 0;
    int64_t limited = 0, created = 0;
};

// One engine, one lane at `rate` calls/s, against a fresh mock enforcing it: the mock's
// created records and requests over `window` s once the backlog is queued.
Run measure(double rate, int batch_max_size, int64_t backlog, double window) {
    TempDir dir;
    const std::string plugins = prepare_plugins(dir);
    const std::string rules = prepare_rules(dir, "hubspot-main");
    char num[64];
    std::snprintf(num, sizeof num, "%g", rate);
    Mock mock = start_mock(dir, {"--no-log", "--rate", num, "--burst", num});
    EngineSpec spec = engine_spec(dir, plugins, rules, mock);
    ConnSpec conn{"hubspot-main", rate, rate, 8};
    conn.batch_max_size = batch_max_size;
    const std::string cfg = dir.write("recsync.yaml", config_yaml(spec, {conn}));
    Engine engine = start_recsync(cfg, spec.port, dir.file("recsync.log"));
    HttpClient c("127.0.0.1", mock.port);
    auto sample = [&](Clock::time_point t0) {
        const json st = c.get_json("/_mock/stats");
        return Point{seconds_since(t0), st["created"], st["rejected_429"], st["requests"]};
    };
    const Clock::time_point t0 = Clock::now();
    progress(std::string("batching ") + (batch_max_size == 1 ? "off" : "on") + ": queueing " + std::to_string(backlog) + " events");
    send_events(spec.port, "b", 0, backlog, 500, 2, t0);
    const Point a = sample(t0);
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(window * 1000)));
    const Point b = sample(t0);
    engine.proc.stop();
    Run r;
    r.records_per_sec = static_cast<double>(b.created - a.created) / (b.t - a.t);
    r.calls_per_sec = static_cast<double>(b.requests - a.requests) / (b.t - a.t);
    r.limited = b.limited;
    r.created = b.created;
    if (b.created >= backlog) std::cerr << "bench_batch: warning: the backlog ran out inside the window; raise --backlog\n";
    return r;
}

}  // namespace

int main(int argc, char **argv) try {
    Args args(argc, argv);
    const double rate = args.num("rate", 19);
    const double window = args.num("window", 10);
    const int64_t backlog = static_cast<int64_t>(args.num("backlog", 40000));
    const int64_t backlog_off = static_cast<int64_t>(args.num("backlog-off", 400));
    args.done(kUsage);
    install_guard(static_cast<unsigned>(2 * window) + 300);
    const json load_start = load_average();
    const Run on = measure(rate, 0, backlog, window);
    const Run off = measure(rate, 1, backlog_off, window);
    const double target = 0.95 * rate * 100;
    emit({{"bench", "batch"},
          {"limit_calls_per_sec", rate},
          {"window_s", window},
          {"records_per_sec", round_to(on.records_per_sec, 1)},
          {"calls_per_sec", round_to(on.calls_per_sec, 2)},
          {"records_per_call", on.calls_per_sec > 0 ? round_to(on.records_per_sec / on.calls_per_sec, 1) : 0.0},
          {"rejected_429", on.limited},
          {"baseline_unbatched_records_per_sec", round_to(off.records_per_sec, 2)},
          {"baseline_rejected_429", off.limited},
          {"ratio", off.records_per_sec > 0 ? round_to(on.records_per_sec / off.records_per_sec, 1) : 0.0},
          {"target_records_per_sec", target},
          {"meets_target", on.records_per_sec >= target && on.limited == 0},
          {"load_avg_start", load_start},
          {"load_avg_end", load_average()}});
    return 0;
} catch (const std::exception &e) {
    std::cerr << "bench_batch: " << e.what() << "\n";
    return 1;
}
