// bench_fairness: a quiet lane beside a lane with 1,000,000 waiting tasks (issue 5: "a lane
// with a million waiting tasks must not delay a quiet lane").
//
// Two connections, each with its own mock CRM: `busy`, whose 1,000,000 creates are written
// into the state database before recsync starts (through the engine's own queue, as a
// restart with that backlog would find them), unlimited and 16 in flight; and `quiet`,
// which gets only the events this program posts: one every --interval-ms, each its own
// POST /v1/events. For each quiet event: the time from its acceptance (the 202) to the
// quiet mock's receipt of the create (its request log `at_ms`, matched by email).
//
// Baseline in the same run: the same quiet events with no backlog (a fresh database).
// With the backlog, the busy lane must really be running while the quiet events flow: its
// mock's creates are counted over the same window, and the backlog must outlast it.
//
// Lines (stdout):
//   {"bench":"fairness.baseline", ...}  quiet lane alone: acceptance -> receipt p50/p99/max
//   {"bench":"fairness", ...}           the same beside the busy lane; busy_records_per_sec,
//                                       busy_left, meets_target (p99 < 20 ms, as `latency`)
#include "delivery_common.hpp"

using namespace bench;

namespace {

const char *kUsage = "usage: bench_fairness [--backlog 1000000] [--events 300] [--interval-ms 20] [--busy-in-flight 16] [--ready-timeout 300]\n";

struct Quiet {
    std::vector<double> latency_ms;
    int64_t missing = 0;
    double seconds = 0;
};

// Posts `n` quiet events (prefix `prefix`), one per `interval`, and matches each 202 with
// the quiet mock's receipt of its create.
Quiet send_quiet(uint16_t port, const Mock &quiet, const std::string &prefix, int64_t n, std::chrono::milliseconds interval) {
    reset_mock(quiet.port);
    HttpClient c("127.0.0.1", port);
    std::vector<int64_t> accepted_us(static_cast<size_t>(n), 0);
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < n; ++i) {
        std::this_thread::sleep_until(t0 + interval * i);
        const auto r = c.request("POST", "/v1/events", contact_event(prefix, i), "application/json");
        if (r.status != 202) throw std::runtime_error("POST /v1/events -> " + std::to_string(r.status) + " " + r.error + r.body.substr(0, 200));
        accepted_us[static_cast<size_t>(i)] = epoch_us();
    }
    Quiet q;
    q.seconds = seconds_since(t0);
    HttpClient admin("127.0.0.1", quiet.port);
    wait_until([&] { return admin.get_json("/_mock/stats")["created"].get<int64_t>() >= n; }, std::chrono::seconds(60), std::chrono::milliseconds(50));
    const auto receipt = receipts_by_event(admin, prefix);
    for (int64_t i = 0; i < n; ++i) {
        const auto it = receipt.find(i);
        if (it == receipt.end()) ++q.missing;
        else q.latency_ms.push_back(static_cast<double>(it->second) - static_cast<double>(accepted_us[static_cast<size_t>(i)]) / 1000.0);
    }
    return q;
}

// The config: `busy` and `quiet`, each at its own mock.
std::string two_lane_config(EngineSpec spec, const Mock &busy, const Mock &quiet, int busy_in_flight) {
    spec.mock_url = busy.url();
    std::string y = config_yaml(spec, {{"busy", 1e6, 1e4, busy_in_flight}});
    spec.mock_url = quiet.url();
    const std::string q = config_yaml(spec, {{"quiet", 1e6, 1e4, 16}});
    return y + q.substr(q.find("connections:\n") + 13);
}

}  // namespace

int main(int argc, char **argv) try {
    Args args(argc, argv);
    const int64_t backlog = static_cast<int64_t>(args.num("backlog", 1000000));
    const int64_t events = static_cast<int64_t>(args.num("events", 300));
    const auto interval = std::chrono::milliseconds(static_cast<int64_t>(args.num("interval-ms", 20)));
    const int busy_in_flight = static_cast<int>(args.num("busy-in-flight", 16));
    const auto ready_timeout = std::chrono::seconds(static_cast<int64_t>(args.num("ready-timeout", 300)));
    args.done(kUsage);
    install_guard(static_cast<unsigned>(2 * ready_timeout.count() + 600));

    const json load_start = load_average();
    TempDir dir;
    const std::string plugins = prepare_plugins(dir);
    const std::string rules = prepare_rules(dir, "quiet");  // events go to `quiet` only
    Mock busy = start_mock(dir, {"--no-log", "--threads", "2"}, "busy");
    Mock quiet = start_mock(dir, {"--threads", "1"}, "quiet");
    EngineSpec spec = engine_spec(dir, plugins, rules, busy);

    // Baseline: the quiet lane alone.
    spec.state_path = dir.file("alone/recsync.db");
    const std::string cfg_alone = dir.write("alone.yaml", two_lane_config(spec, busy, quiet, busy_in_flight));
    Quiet alone;
    {
        Engine e = start_recsync(cfg_alone, spec.port, dir.file("recsync-alone.log"), ready_timeout);
        progress("baseline: " + std::to_string(events) + " quiet events, no backlog");
        alone = send_quiet(spec.port, quiet, "alone", events, interval);
        e.proc.stop();
    }
    const json alone_sum = latency_summary(alone.latency_ms);
    emit({{"bench", "fairness.baseline"}, {"events", events}, {"interval_ms", interval.count()}, {"missing", alone.missing}, {"latency", alone_sum}});

    // The same beside a busy lane with `backlog` waiting tasks.
    spec.state_path = dir.file("busy/recsync.db");
    progress("writing " + std::to_string(backlog) + " tasks for the busy lane");
    const double prefill_s = prefill(spec.state_path, [](int64_t) { return std::string("busy"); }, backlog, 0);
    const std::string cfg_busy = dir.write("busy.yaml", two_lane_config(spec, busy, quiet, busy_in_flight));
    reset_mock(busy.port);
    Engine e = start_recsync(cfg_busy, spec.port, dir.file("recsync-busy.log"), ready_timeout);
    HttpClient busy_admin("127.0.0.1", busy.port);
    const auto busy_created = [&] { return busy_admin.get_json("/_mock/stats")["created"].get<int64_t>(); };
    if (!wait_until([&] { return busy_created() > 1000; }, std::chrono::seconds(60))) throw std::runtime_error("the busy lane did not start sending");
    progress("busy lane sending; " + std::to_string(events) + " quiet events beside it");
    const int64_t busy0 = busy_created();
    const double cpu0 = e.proc.cpu_seconds();
    const auto t = Clock::now();
    const Quiet beside = send_quiet(spec.port, quiet, "beside", events, interval);
    const double window = seconds_since(t);
    const int64_t busy1 = busy_created();
    const double cpu = e.proc.cpu_seconds() - cpu0;
    HttpClient c("127.0.0.1", spec.port);
    const json status = c.get_json("/v1/status");
    const int64_t busy_left = status["connections"]["busy"]["queued"].get<int64_t>();
    e.proc.stop(std::chrono::milliseconds(30000));

    const json beside_sum = latency_summary(beside.latency_ms);
    const double p99 = beside_sum["p99_ms"].is_number() ? beside_sum["p99_ms"].get<double>() : 1e9;
    if (busy_left == 0) std::cerr << "bench_fairness: warning: the busy lane's backlog ran out during the window; raise --backlog\n";
    emit({{"bench", "fairness"},
          {"backlog", backlog},
          {"events", events},
          {"interval_ms", interval.count()},
          {"missing", beside.missing},
          {"latency", beside_sum},
          {"baseline_p99_ms", alone_sum["p99_ms"]},
          {"busy_records_per_sec", std::round(static_cast<double>(busy1 - busy0) / window)},
          {"busy_left", busy_left},
          {"window_s", round_to(window, 2)},
          {"recsync_cpu_s", round_to(cpu, 2)},
          {"prefill_s", round_to(prefill_s, 2)},
          {"meets_target", beside.missing == 0 && busy_left > 0 && p99 < 20},
          {"load_avg_start", load_start},
          {"load_avg_end", load_average()}});
    return 0;
} catch (const std::exception &e) {
    std::cerr << "bench_fairness: " << e.what() << "\n";
    return 1;
}
