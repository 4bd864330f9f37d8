// bench_lanes: 10,000 connections (HubSpot plugin, all pointing at one mock CRM) and
// 1,000,000 queued tasks.
//
// 1. Memory. The tasks (100 per lane, one record each, a create with a ~110-byte payload)
//    are written into the state database by this program through the engine's own
//    task log, with not_before one hour ahead so the lanes hold them without
//    sending. recsync is started on an empty database (same config), then on the full one:
//    bytes per queued task = RSS delta / tasks; and the SQLite file size per task.
// 2. Throughput. not_before is cleared and recsync restarted on the same database: records/s
//    the mock creates over a window (after a 2 s warm-up), across the 10,000 lanes. Then, in
//    the same run, a single lane (one connection, its own database with enough tasks) over
//    the same window: the baseline. The two alternate, --rounds times (many, one, many,
//    one), so a neighbour's burst on this shared machine lands on both rather than on
//    whichever ran second; each is the mean of its rounds. Target: 10,000 lanes within 20%
//    of the single lane.
//
// Lines (stdout):
//   {"bench":"lanes.memory", ...}
//   {"bench":"lanes", ...}   records_per_sec, single_lane_records_per_sec, ratio, meets_target
#include "delivery_common.hpp"

#include "store/sqlite/sqlite_db.hpp"  // the bench clears not_before in the database it wrote

using namespace bench;

namespace {

const char *kUsage =
    "usage: bench_lanes [--lanes 10000] [--tasks 1000000] [--window 10] [--rounds 2] [--lane-in-flight 1] [--lane-rate 1000000]\n"
    "                   [--single-in-flight 16] [--single-tasks 1000000] [--ready-timeout 600]\n";

std::string lane_name(int64_t i) { return numbered_name("lane", i); }

struct Window {
    double per_sec = 0;
    double cpu_s = 0;
    int64_t created = 0;
    double ready_s = 0;
};

// Starts recsync on `cfg`, skips `warmup` s, counts the mock's creates over `window` s.
Window measure(const std::string &cfg, uint16_t port, const std::string &log, const Mock &mock, double warmup, double window, std::chrono::seconds ready_timeout) {
    reset_mock(mock.port);
    Engine e = start_recsync(cfg, port, log, ready_timeout);
    HttpClient c("127.0.0.1", mock.port);
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(warmup * 1000)));
    const auto a = c.get_json("/_mock/stats")["created"].get<int64_t>();
    const double cpu0 = e.proc.cpu_seconds();
    const auto t = Clock::now();
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(window * 1000)));
    const auto b = c.get_json("/_mock/stats")["created"].get<int64_t>();
    const double dt = seconds_since(t);
    Window w{static_cast<double>(b - a) / dt, e.proc.cpu_seconds() - cpu0, b, e.ready_seconds};
    e.proc.stop(std::chrono::milliseconds(20000));
    return w;
}

}  // namespace

int main(int argc, char **argv) try {
    Args args(argc, argv);
    const int64_t lanes = static_cast<int64_t>(args.num("lanes", 10000));
    const int64_t tasks = static_cast<int64_t>(args.num("tasks", 1000000));
    const double window = args.num("window", 10);
    const int rounds = std::max(1, static_cast<int>(args.num("rounds", 2)));
    const int lane_in_flight = static_cast<int>(args.num("lane-in-flight", 1));
    const double lane_rate = args.num("lane-rate", 1e6);
    const int single_in_flight = static_cast<int>(args.num("single-in-flight", 16));
    const int64_t single_tasks = static_cast<int64_t>(args.num("single-tasks", 1000000));
    const auto ready_timeout = std::chrono::seconds(static_cast<int64_t>(args.num("ready-timeout", 600)));
    args.done(kUsage);
    install_guard(static_cast<unsigned>(ready_timeout.count() * (2 + 2 * rounds) + window * 2 * rounds) + 600);

    const json load_start = load_average();
    TempDir dir;
    const std::string plugins = prepare_plugins(dir);
    const std::string rules = prepare_rules(dir, lane_name(0));
    Mock mock = start_mock(dir, {"--no-log", "--threads", "2"});
    progress("mock CRM on " + mock.url());

    EngineSpec spec = engine_spec(dir, plugins, rules, mock);  // state_path is set per run below
    std::vector<ConnSpec> conns;
    conns.reserve(static_cast<size_t>(lanes));
    for (int64_t i = 0; i < lanes; ++i) conns.push_back({lane_name(i), lane_rate, std::max(1.0, std::min(lane_rate, 1e4)), lane_in_flight});

    // 1. Memory.
    const std::string full_db = dir.file("many/recsync.db");
    progress("writing " + std::to_string(tasks) + " tasks over " + std::to_string(lanes) + " lanes");
    const int64_t hold_until = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count() + 3600 * 1000;
    const double prefill_s = prefill(full_db, [&](int64_t i) { return lane_name(i % lanes); }, tasks, hold_until);
    const int64_t sqlite_bytes = database_bytes(full_db);
    progress("prefilled in " + std::to_string(prefill_s) + " s, " + std::to_string(sqlite_bytes) + " bytes");

    spec.state_path = dir.file("empty/recsync.db");
    const std::string cfg_empty = dir.write("empty.yaml", config_yaml(spec, conns));
    int64_t rss_empty = 0, empty_db = 0;
    double ready_empty = 0;
    {
        Engine e = start_recsync(cfg_empty, spec.port, dir.file("recsync-empty.log"), ready_timeout);
        std::this_thread::sleep_for(std::chrono::seconds(3));
        rss_empty = e.proc.rss_bytes();
        ready_empty = e.ready_seconds;
        e.proc.stop();
        empty_db = database_bytes(spec.state_path);
    }
    progress("empty: RSS " + std::to_string(rss_empty >> 20) + " MiB, ready in " + std::to_string(ready_empty) + " s");

    spec.state_path = full_db;
    const std::string cfg_full = dir.write("full.yaml", config_yaml(spec, conns));
    int64_t rss_full = 0, hwm_full = 0, queued = 0;
    double ready_full = 0;
    {
        Engine e = start_recsync(cfg_full, spec.port, dir.file("recsync-full.log"), ready_timeout);
        std::this_thread::sleep_for(std::chrono::seconds(3));
        rss_full = e.proc.rss_bytes();
        hwm_full = e.proc.rss_bytes("VmHWM:");
        ready_full = e.ready_seconds;
        HttpClient c("127.0.0.1", spec.port);
        const json status = c.get_json("/v1/status");  // named: a range-for over a temporary's member dangles
        for (const auto &[name, l] : status["connections"].items()) queued += l["queued"].get<int64_t>();
        e.proc.stop(std::chrono::milliseconds(30000));
    }
    progress("full: RSS " + std::to_string(rss_full >> 20) + " MiB, " + std::to_string(queued) + " queued, ready in " + std::to_string(ready_full) + " s");
    emit({{"bench", "lanes.memory"},
          {"lanes", lanes},
          {"tasks", tasks},
          {"queued_seen", queued},
          {"rss_empty_mib", round_to(static_cast<double>(rss_empty) / (1 << 20), 1)},
          {"rss_loaded_mib", round_to(static_cast<double>(rss_full) / (1 << 20), 1)},
          {"peak_rss_loaded_mib", round_to(static_cast<double>(hwm_full) / (1 << 20), 1)},
          {"rss_bytes_per_task", std::round(static_cast<double>(rss_full - rss_empty) / static_cast<double>(tasks))},
          {"peak_rss_bytes_per_task", std::round(static_cast<double>(hwm_full - rss_empty) / static_cast<double>(tasks))},
          {"sqlite_bytes", sqlite_bytes},
          {"sqlite_bytes_per_task", std::round(static_cast<double>(sqlite_bytes - empty_db) / static_cast<double>(tasks))},
          {"payload_bytes_per_task", 110},
          {"ready_s_empty", round_to(ready_empty, 2)},
          {"ready_s_loaded", round_to(ready_full, 2)},
          {"prefill_s", round_to(prefill_s, 2)},
          {"load_avg_start", load_start},
          {"load_avg_end", load_average()}});

    // 2. Throughput across the lanes, then a single lane.
    {
        recsync::store::sqlite::SqliteDb db(full_db, "normal");
        db.exec("UPDATE tasks SET not_before = 0");
    }
    const std::string single_db = dir.file("single/recsync.db");
    prefill(single_db, [](int64_t) { return lane_name(0); }, single_tasks, 0);
    spec.state_path = single_db;
    const std::string cfg_single = dir.write("single.yaml", config_yaml(spec, {{lane_name(0), 1e6, 1e4, single_in_flight}}));
    const json load_many = load_average();
    Window many, one;  // sums over the rounds
    json per_round = json::array();
    for (int r = 1; r <= rounds; ++r) {
        progress("round " + std::to_string(r) + ": " + std::to_string(lanes) + " lanes, " + std::to_string(window) + " s window");
        const Window m = measure(cfg_full, spec.port, dir.file("recsync-many-" + std::to_string(r) + ".log"), mock, 2, window, ready_timeout);
        progress("round " + std::to_string(r) + ": a single lane");
        const Window o = measure(cfg_single, spec.port, dir.file("recsync-single-" + std::to_string(r) + ".log"), mock, 2, window, ready_timeout);
        progress("round " + std::to_string(r) + ": lanes " + std::to_string(m.per_sec) + ", single lane " + std::to_string(o.per_sec) + " records/s");
        per_round.push_back({{"records_per_sec", std::round(m.per_sec)}, {"single_lane_records_per_sec", std::round(o.per_sec)}, {"ratio", round_to(m.per_sec / o.per_sec, 3)}});
        many.per_sec += m.per_sec / rounds;
        many.cpu_s += m.cpu_s / rounds;
        many.ready_s = std::max(many.ready_s, m.ready_s);
        one.per_sec += o.per_sec / rounds;
        one.cpu_s += o.cpu_s / rounds;
        one.created += o.created;
    }
    if (static_cast<double>(one.created) >= static_cast<double>(single_tasks) * 0.98)
        std::cerr << "bench_lanes: warning: the single lane ran out of tasks; raise --single-tasks\n";

    const double ratio = many.per_sec / one.per_sec;
    emit({{"bench", "lanes"},
          {"lanes", lanes},
          {"queued_tasks", tasks},
          {"lane_in_flight", lane_in_flight},
          {"lane_rate", lane_rate},
          {"window_s", window},
          {"rounds", per_round},
          {"records_per_sec", std::round(many.per_sec)},
          {"recsync_cpu_s", round_to(many.cpu_s, 2)},
          {"ready_s", round_to(many.ready_s, 2)},
          {"single_lane_in_flight", single_in_flight},
          {"single_lane_records_per_sec", std::round(one.per_sec)},
          {"single_lane_cpu_s", round_to(one.cpu_s, 2)},
          {"ratio", round_to(ratio, 3)},
          {"meets_target", ratio >= 0.8},
          {"load_avg_start", load_many},
          {"load_avg_end", load_average()}});
    return 0;
} catch (const std::exception &e) {
    std::cerr << "bench_lanes: " << e.what() << "\n";
    return 1;
}
