// bench_e2e: records/s end to end — events POSTed to a running recsync (SQLite queue,
// synchronous=full by default) until the mock CRM (recsync-mock-crm --no-log, no rate
// limit) has created every record — against, in the same run, what wrk gets from the
// same mock with the same POST (the body the HubSpot plugin sends, a fresh email per
// request), and the BullMQ peer (shared/peers/bullmq) when node, redis-server and its
// node_modules are there.
//
// Lines (stdout):
//   {"bench":"e2e.wrk", ...}     the baseline: wrk before and after the recsync phase
//   {"bench":"e2e", ...}         recsync records/s, the ratio to wrk, meets_target (>= 0.4)
//   {"bench":"e2e.bullmq", ...}  the peer's own line, with its ratio to wrk
//
// Usage: bench_e2e [--events N] [--batch B] [--senders S] [--in-flight F] [--sync full|normal]
//                  [--wrk-seconds T] [--wrk-connections C] [--wrk-threads T]
//                  [--peer-jobs N] [--peer-concurrency C] [--no-peer]
#include "delivery_common.hpp"

using namespace bench;

namespace {

const char *kUsage =
    "usage: bench_e2e [--events 60000] [--batch 100] [--senders 4] [--in-flight 16] [--sync full|normal]\n"
    "                 [--wrk-seconds 10] [--wrk-connections 16] [--wrk-threads 2]\n"
    "                 [--peer-jobs 20000] [--peer-concurrency 64] [--no-peer]\n";

}  // namespace

int main(int argc, char **argv) try {
    Args args(argc, argv);
    const int64_t events = static_cast<int64_t>(args.num("events", 60000));
    const int batch = static_cast<int>(args.num("batch", 100));
    const int senders = static_cast<int>(args.num("senders", 4));
    const int in_flight = static_cast<int>(args.num("in-flight", 16));
    const std::string sync = args.str("sync", "full");
    const int wrk_seconds = static_cast<int>(args.num("wrk-seconds", 10));
    const int wrk_conns = static_cast<int>(args.num("wrk-connections", 16));
    const int wrk_threads = static_cast<int>(args.num("wrk-threads", 2));
    const int peer_jobs = static_cast<int>(args.num("peer-jobs", 20000));
    const int peer_conc = static_cast<int>(args.num("peer-concurrency", 64));
    const bool no_peer = args.flag("no-peer");
    args.done(kUsage);
    install_guard(900);

    const json load_start = load_average();
    TempDir dir;
    const std::string plugins = prepare_plugins(dir);
    const std::string rules = prepare_rules(dir, "hubspot-main");
    Mock mock = start_mock(dir, {"--no-log", "--threads", "2"});
    HttpClient admin("127.0.0.1", mock.port);
    progress("mock CRM on " + mock.url());

    // Baseline, part 1: wrk straight at the mock.
    const std::string lua = dir.write("post.lua", kWrkLua);
    const bool have_wrk = have_program("wrk");
    json wrk_before, wrk_after;
    if (have_wrk) {
        progress("wrk -t" + std::to_string(wrk_threads) + " -c" + std::to_string(wrk_conns) + " for " + std::to_string(wrk_seconds) + " s");
        wrk_before = run_wrk(lua, mock, wrk_threads, wrk_conns, wrk_seconds);
        progress("wrk: " + wrk_before.dump());
    } else {
        progress("wrk not found (scripts/deps --bench installs it): no baseline");
    }
    reset_mock(mock.port);

    // recsync: one connection to the mock, no rate limit, `in_flight` calls at a time.
    EngineSpec spec = engine_spec(dir, plugins, rules, mock);
    spec.synchronous = sync;
    const std::string cfg = dir.write("recsync.yaml", config_yaml(spec, {{"hubspot-main", 1e6, 1e4, in_flight}}));
    Engine engine = start_recsync(cfg, spec.port, dir.file("recsync.log"));
    progress("recsync ready on port " + std::to_string(spec.port) + "; sending " + std::to_string(events) + " events");

    const double cpu_r0 = engine.proc.cpu_seconds(), cpu_m0 = mock.proc.cpu_seconds();
    const auto t0 = Clock::now();
    std::atomic<double> done_s{0};
    std::thread watcher([&] {
        HttpClient c("127.0.0.1", mock.port);
        while (seconds_since(t0) < 600) {
            const auto st = c.get_json("/_mock/stats");
            if (st["created"].get<int64_t>() >= events) {
                done_s = seconds_since(t0);
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    });
    const auto sent = send_events(spec.port, "e", 0, events, batch, senders, t0);
    progress("all accepted after " + std::to_string(sent.last_accept_s) + " s; waiting for delivery");
    watcher.join();
    const double cpu_r = engine.proc.cpu_seconds() - cpu_r0, cpu_m = mock.proc.cpu_seconds() - cpu_m0;
    const auto stats = admin.get_json("/_mock/stats");
    HttpClient rc("127.0.0.1", spec.port);
    const auto status = rc.get_json("/v1/status");
    engine.proc.stop();
    if (done_s.load() <= 0) throw std::runtime_error("not every record arrived within 600 s: " + stats.dump());
    progress("delivered in " + std::to_string(done_s.load()) + " s");

    // Baseline, part 2: wrk again (the machine is shared; the mean of both is the baseline).
    if (have_wrk) {
        reset_mock(mock.port);
        wrk_after = run_wrk(lua, mock, wrk_threads, wrk_conns, wrk_seconds);
        progress("wrk: " + wrk_after.dump());
    }
    const double wrk_per_sec = have_wrk ? (wrk_before["per_sec"].get<double>() + wrk_after["per_sec"].get<double>()) / 2 : NAN;
    const double per_sec = static_cast<double>(events) / done_s.load();
    if (have_wrk)
        emit({{"bench", "e2e.wrk"},
              {"what", "wrk POST /crm/v3/objects/contacts straight at the mock, the plugin's body, a new email per request"},
              {"threads", wrk_threads},
              {"connections", wrk_conns},
              {"seconds", wrk_seconds},
              {"requests_per_sec", std::round(wrk_per_sec)},
              {"before", wrk_before},
              {"after", wrk_after}});
    emit({{"bench", "e2e"},
          {"events", events},
          {"batch", batch},
          {"senders", senders},
          {"in_flight", in_flight},
          {"synchronous", sync},
          {"seconds", round_to(done_s.load(), 3)},
          {"records_per_sec", std::round(per_sec)},
          {"accepted_events_per_sec", std::round(static_cast<double>(events) / sent.last_accept_s)},
          {"resent_batches", sent.resent},
          {"baseline_wrk_per_sec", have_wrk ? json(std::round(wrk_per_sec)) : json(nullptr)},
          {"ratio", have_wrk ? json(round_to(per_sec / wrk_per_sec, 3)) : json(nullptr)},
          {"meets_target", have_wrk ? json(per_sec / wrk_per_sec >= 0.4) : json(nullptr)},
          {"mock_requests", stats["requests"]},
          {"mock_created", stats["created"]},
          {"mock_duplicates", stats["duplicates"]},
          {"dead_letters", status["dead_letters"]},
          {"recsync_cpu_s", round_to(cpu_r, 2)},
          {"mock_cpu_s", round_to(cpu_m, 2)},
          {"load_avg_start", load_start},
          {"load_avg_end", load_average()}});

    // The BullMQ peer against the same mock.
    if (no_peer) return 0;
    reset_mock(mock.port);
    const double cpu_m1 = mock.proc.cpu_seconds();
    const auto peer_line = run_bullmq_peer(dir, peer_jobs, peer_conc, mock.url() + "/crm/v3/objects/contacts");
    if (!peer_line) return 0;
    const json &peer = *peer_line;
    const auto pstats = admin.get_json("/_mock/stats");
    json line = {{"bench", "e2e.bullmq"}};
    for (auto &[k, v] : peer.items()) line[k] = v;
    line["mock_created"] = pstats["created"];
    line["mock_cpu_s"] = round_to(mock.proc.cpu_seconds() - cpu_m1, 2);
    if (have_wrk) line["ratio"] = round_to(peer["per_sec"].get<double>() / wrk_per_sec, 3);
    line["recsync_over_bullmq"] = round_to(per_sec / peer["per_sec"].get<double>(), 2);
    line["load_avg_end"] = load_average();
    emit(line);
    return 0;
} catch (const std::exception &e) {
    std::cerr << "bench_e2e: " << e.what() << "\n";
    return 1;
}
