// bench_batch: records/s through one lane against a mock CRM enforcing HubSpot
// Professional's 190 calls per 10 s (a token bucket of 19/s, burst 19, 429 past it), with a
// large backlog: batching on (the provider's sizes: 100 records per batch/create) against
// the same lane with batching off (batch.max_size: 1), measured in the same run. Target
// (issue 17): at least 95% of 19 x 100 = 1,805 records/s, zero 429s. The BullMQ peer
// (../shared/peers/bullmq) with its limiter at the same rate runs against a fresh mock
// enforcing it too, when node, redis-server and its npm packages are there.
//
// Lines (stdout):
//   {"bench":"batch", ...}  records_per_sec on/off, calls_per_sec, rejected_429, ratio, meets_target
//   {"bench":"batch.bullmq", ...}  the peer's records_per_sec, rejected_429, recsync_over_bullmq
#include "delivery_common.hpp"

using namespace bench;

namespace {

const char *kUsage = "usage: bench_batch [--rate 19] [--window 10] [--backlog 40000] [--backlog-off 400] [--peer-jobs 400] [--no-peer]\n";

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

// The BullMQ peer, its limiter at `rate` jobs/s, against a fresh mock enforcing `rate`.
std::optional<json> measure_peer(double rate, int jobs) {
    TempDir dir;
    char num[64];
    std::snprintf(num, sizeof num, "%g", rate);
    Mock mock = start_mock(dir, {"--no-log", "--rate", num, "--burst", num});
    const auto peer = run_bullmq_peer(dir, jobs, 8, mock.url() + "/crm/v3/objects/contacts", rate);
    if (!peer) return std::nullopt;
    const json st = HttpClient("127.0.0.1", mock.port).get_json("/_mock/stats");
    return json{{"bench", "batch.bullmq"},
                {"limiter_per_sec", rate},
                {"jobs", jobs},
                {"done", (*peer)["done"]},
                {"failed", (*peer)["failed"]},
                {"seconds", (*peer)["seconds"]},
                {"records_per_sec", (*peer)["per_sec"]},
                {"mock_created", st["created"]},
                {"rejected_429", st["rejected_429"]}};
}

}  // namespace

int main(int argc, char **argv) try {
    Args args(argc, argv);
    const double rate = args.num("rate", 19);
    const double window = args.num("window", 10);
    const int64_t backlog = static_cast<int64_t>(args.num("backlog", 40000));
    const int64_t backlog_off = static_cast<int64_t>(args.num("backlog-off", 400));
    const int peer_jobs = static_cast<int>(args.num("peer-jobs", 400));
    const bool no_peer = args.flag("no-peer");
    args.done(kUsage);
    install_guard(static_cast<unsigned>(2 * window) + 420);
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
    if (no_peer) return 0;
    if (auto peer = measure_peer(rate, peer_jobs)) {
        const double per_sec = (*peer)["records_per_sec"].get<double>();
        (*peer)["recsync_over_bullmq"] = per_sec > 0 ? round_to(on.records_per_sec / per_sec, 1) : 0.0;
        (*peer)["load_avg_end"] = load_average();
        emit(*peer);
    }
    return 0;
} catch (const std::exception &e) {
    std::cerr << "bench_batch: " << e.what() << "\n";
    return 1;
}
