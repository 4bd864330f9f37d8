// bench_slowcrm: records/s through one lane with the default configuration (no
// max_in_flight; a rate limit out of the way, batching off) against a mock CRM that
// answers every call after 150 ms (--delay-ms: holding no thread, so the mock's threads
// are not the limit), from a prefilled backlog. Calls in flight must follow the answer time (Little's law): at 8 in
// flight this is 53 records/s. Baseline, in the same run: wrk against the same mock with
// as many connections as recsync opened. Target (issue 17): at least 15,000 records/s and
// at least 0.8 of wrk.
//
// Lines (stdout):
//   {"bench":"slowcrm", ...}  records_per_sec, connections, peak in flight and target,
//                             baseline_wrk_per_sec, ratio, meets_target
#include "delivery_common.hpp"

using namespace bench;

namespace {

const char *kUsage = "usage: bench_slowcrm [--delay-ms 150] [--tasks 400000] [--warmup 6] [--window 10] [--wrk-threads 2]\n";

}  // namespace

int main(int argc, char **argv) try {
    Args args(argc, argv);
    const int delay_ms = static_cast<int>(args.num("delay-ms", 150));
    const int64_t tasks = static_cast<int64_t>(args.num("tasks", 400000));
    const double warmup = args.num("warmup", 6);
    const double window = args.num("window", 10);
    const int wrk_threads = static_cast<int>(args.num("wrk-threads", 2));
    args.done(kUsage);
    install_guard(static_cast<unsigned>(warmup + 2 * window) + 400);
    if (!have_program("wrk")) throw std::runtime_error("wrk is not installed (./bench/run slowcrm installs it: apt-get install wrk)");
    const json load_start = load_average();

    TempDir dir;
    const std::string plugins = prepare_plugins(dir);
    const std::string rules = prepare_rules(dir, "slow");
    Mock mock = start_mock(dir, {"--no-log", "--delay-ms", std::to_string(delay_ms), "--threads", "2"});
    EngineSpec spec = engine_spec(dir, plugins, rules, mock);
    spec.synchronous = "normal";
    // No max_in_flight: the default, which follows answer times. The rate limit is set
    // out of the way: the mock has none, and HubSpot's plugin defaults to HubSpot's 10/s.
    ConnSpec conn{"slow", 1e6, 1e4, 0};
    const std::string cfg = dir.write("recsync.yaml", config_yaml(spec, {conn}));
    progress("prefilling " + std::to_string(tasks) + " tasks");
    prefill(spec.state_path, [](int64_t) { return std::string("slow"); }, tasks, 0);

    HttpClient admin("127.0.0.1", mock.port);
    const auto created = [&] { return admin.get_json("/_mock/stats")["created"].get<int64_t>(); };
    progress("recsync against a CRM answering in " + std::to_string(delay_ms) + " ms");
    Engine engine = start_recsync(cfg, spec.port, dir.file("recsync.log"));
    HttpClient api("127.0.0.1", spec.port);
    int64_t peak_in_flight = 0, peak_target = 0;
    double answer_ms = 0;
    const auto watch = [&](double seconds) {
        const auto until = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
        while (Clock::now() < until) {
            const json lane = api.get_json("/v1/status")["connections"]["slow"];
            peak_in_flight = std::max<int64_t>(peak_in_flight, lane["in_flight"].get<int64_t>());
            peak_target = std::max<int64_t>(peak_target, lane["in_flight_target"].get<int64_t>());
            answer_ms = lane["answer_ms"].get<double>();
            std::this_thread::sleep_for(std::chrono::milliseconds(250));
        }
    };
    watch(warmup);
    const int64_t a = created();
    const auto ta = Clock::now();
    watch(window);
    const int64_t b = created();
    const double records_per_sec = static_cast<double>(b - a) / seconds_since(ta);
    const int64_t connections = admin.get_json("/_mock/stats")["connections"].get<int64_t>();
    engine.proc.stop();
    if (b >= tasks) std::cerr << "bench_slowcrm: warning: the backlog ran out inside the window; raise --tasks\n";

    // Baseline: wrk at the same mock, as many connections as recsync opened.
    progress("wrk with " + std::to_string(connections) + " connections");
    const std::string lua = dir.write("post.lua", kWrkLua);
    const json wrk = run_wrk(lua, mock, wrk_threads, static_cast<int>(std::max<int64_t>(connections, wrk_threads)), static_cast<int>(window));
    const double wrk_per_sec = wrk["per_sec"].get<double>();
    const double ratio = wrk_per_sec > 0 ? records_per_sec / wrk_per_sec : 0;
    emit({{"bench", "slowcrm"},
          {"delay_ms", delay_ms},
          {"records_per_sec", round_to(records_per_sec, 1)},
          {"connections", connections},
          {"peak_in_flight", peak_in_flight},
          {"peak_in_flight_target", peak_target},
          {"answer_ms", round_to(answer_ms, 1)},
          {"baseline_wrk_per_sec", wrk_per_sec},
          {"baseline_wrk", wrk},
          {"ratio", round_to(ratio, 3)},
          {"target_records_per_sec", 15000},
          {"target_ratio", 0.8},
          {"meets_target", records_per_sec >= 15000 && ratio >= 0.8},
          {"load_avg_start", load_start},
          {"load_avg_end", load_average()}});
    return 0;
} catch (const std::exception &e) {
    std::cerr << "bench_slowcrm: " << e.what() << "\n";
    return 1;
}
