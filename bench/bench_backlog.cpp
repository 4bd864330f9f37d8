// bench_backlog: 10,000,000 queued tasks across 1,000 connections (the words:
// "10,000,000 queued tasks across 1,000 connections: peak RSS (peak_rss_mib, target under
// 512), time to ready after a restart (ready_s, target under 10), and delivery rate
// against the same run's 100,000-task rate (ratio, at least 0.8)").
//
// Lanes hold a window of their backlog (delivery.tasks_in_memory, default 200,000 across
// all lanes: 200 per lane here) and read the rest from the task log as they go, so neither
// memory nor the start should grow with the backlog.
//
// 1. Prefill. The tasks (HubSpot contact creates, one record each, unique emails, ~110-byte
//    payloads) are written into a state database by this program through the engine's own
//    task log (delivery_common.hpp prefill()), task i for connection i % connections, all
//    sendable at once. Reported: the time and the database (+WAL) bytes per task.
// 2. Baseline, same run: a fresh database of 100,000 such tasks over the same connections
//    and config. recsync is started on it and the mock's creates (/_mock/stats "created")
//    sampled every 20 ms from before the spawn until all are delivered. The rate is taken
//    between the moments 10% and 90% of them had been created (interpolated between
//    samples): the steady part, past the start (the first windows read, connections
//    opened, the limit on calls in flight settled) and before the tail (lanes running dry
//    at different times).
// 3. The big one: recsync started on the prefilled database (a restart with that backlog).
//    ready_s = spawn -> /readyz 200. After --warmup s, the creates over --window s ->
//    records_per_sec (from the same samples, so measured as the baseline is, but in the
//    steady state alone of a backlog that lasts far longer). At the end of the window:
//    VmHWM (peak_rss_mib) and VmRSS of recsync, /v1/status (sum of the connections'
//    `queued` and `in_memory`) and /metrics (recsync_tasks_in_memory).
// The two alternate: baseline, then --rounds times (restart on the big database, which
// still holds all but what earlier rounds delivered; a baseline on a fresh database), so a
// neighbour's burst on this shared machine lands on both sides of the ratio rather than on
// one. ratio = mean restart rate / mean baseline rate (each round also against the two
// baselines around it); ready_s and peak_rss_mib are the worst restart's;
// meets_target = peak_rss_mib < 512 && ready_s < 10 && ratio >= 0.8. recsync's CPU, bytes
// and syscalls read and bytes written per record (per_record, from /proc over the same
// intervals) say whether a slower rate is more work per record or less CPU from a shared
// machine, and what the work is.
//
// Lines (stdout):
//   {"bench":"backlog.prefill", ...}   prefill_s, sqlite_bytes, sqlite_bytes_per_task
//   {"bench":"backlog.baseline", ...}  records_per_sec (10%-90%, mean of the rounds), ready_s,
//                                      peak RSS, cpu_us_per_record, per round
//   {"bench":"backlog", ...}           per round and overall: ready_s, records_per_sec,
//                                      peak_rss_mib; the first restart's queued and
//                                      in_memory; ratio, meets_target
#include "delivery_common.hpp"

using namespace bench;

namespace {

const char *kUsage =
    "usage: bench_backlog [--tasks 10000000] [--connections 1000] [--baseline-tasks 100000] [--rounds 2]\n"
    "                     [--window 10] [--warmup 3] [--lane-in-flight 1] [--lane-rate 1000000] [--ready-timeout 300]\n";

std::string conn_name(int64_t i) { return numbered_name("conn", i); }

double mib(int64_t bytes) { return round_to(static_cast<double>(bytes) / (1 << 20), 1); }

// The mean length of prefill()'s payload for tasks 0..n-1: 95 bytes + the task number
// three times (email, first name, last name).
double mean_payload_bytes(int64_t n) {
    double digits = 0;
    for (int64_t lo = 0, hi = 10, d = 1; lo < n; lo = hi, hi *= 10, ++d) digits += static_cast<double>(d) * static_cast<double>(std::min(n, hi) - lo);
    return n > 0 ? 95.0 + 3.0 * digits / static_cast<double>(n) : 0;
}

// A value from Prometheus text (an unlabelled sample), -1 if absent.
int64_t metric(const std::string &text, const std::string &name) {
    const std::string key = "\n" + name + " ";
    const auto p = ("\n" + text).find(key);
    if (p == std::string::npos) return -1;
    return std::strtoll(text.c_str() + p + key.size() - 1, nullptr, 10);
}

// What the kernel counts for a process: user + system CPU seconds (as
// Child::cpu_seconds) and /proc/PID/io's bytes read and written through syscalls (page
// cache hits included: SQLite's page reads) and read syscalls. NAN where unknown.
struct ProcCounters {
    double cpu = NAN, rchar = NAN, wchar = NAN, syscr = NAN;
};

ProcCounters proc_counters(pid_t pid) {
    ProcCounters c;
    const auto cpu = cpu_seconds_of(pid);
    if (!cpu) return c;
    c.cpu = *cpu;
    std::ifstream io("/proc/" + std::to_string(pid) + "/io");
    std::string key;
    double v = 0;
    while (io >> key >> v) {
        if (key == "rchar:") c.rchar = v;
        else if (key == "wchar:") c.wchar = v;
        else if (key == "syscr:") c.syscr = v;
    }
    return c;
}

// The mock's "created" counter sampled every 20 ms on its own thread, from construction
// until stop(), with recsync's /proc counters once set_pid() names it: times are seconds
// since t0.
class Sampler {
public:
    struct Sample {
        double t;
        int64_t created;
        ProcCounters proc;  // recsync's; NAN before set_pid()
    };
    Sampler(uint16_t mock_port, Clock::time_point t0) : t0_(t0) {
        thread_ = std::thread([this, mock_port] {
            HttpClient c("127.0.0.1", mock_port);
            while (!stop_) {
                const auto r = c.get("/_mock/stats");
                const double t = seconds_since(t0_);
                const pid_t pid = pid_.load();
                const ProcCounters proc = pid > 0 ? proc_counters(pid) : ProcCounters{};
                if (r.status == 200) {
                    const int64_t n = json::parse(r.body)["created"].get<int64_t>();
                    std::lock_guard l(mu_);
                    samples_.push_back({t, n, proc});
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            }
        });
    }
    ~Sampler() { stop(); }
    void set_pid(pid_t pid) { pid_ = pid; }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    int64_t last() {
        std::lock_guard l(mu_);
        return samples_.empty() ? 0 : samples_.back().created;
    }
    // Creates (or recsync's counters) at time t, interpolated between the samples around it.
    double created_at(double t) { return at(t, [](const Sample &s) { return static_cast<double>(s.created); }); }
    ProcCounters proc_at(double t) {
        return {at(t, [](const Sample &s) { return s.proc.cpu; }), at(t, [](const Sample &s) { return s.proc.rchar; }),
                at(t, [](const Sample &s) { return s.proc.wchar; }), at(t, [](const Sample &s) { return s.proc.syscr; })};
    }
    // When the count first reached n, interpolated between the samples around it; NAN if it has not.
    double time_of(int64_t n) {
        std::lock_guard l(mu_);
        for (size_t i = 0; i < samples_.size(); ++i)
            if (samples_[i].created >= n) {
                if (i == 0) return samples_[0].t;
                const Sample &a = samples_[i - 1], &b = samples_[i];
                return a.t + (b.t - a.t) * static_cast<double>(n - a.created) / static_cast<double>(b.created - a.created);
            }
        return NAN;
    }

private:
    double at(double t, double (*value)(const Sample &)) {
        std::lock_guard l(mu_);
        if (samples_.empty()) return NAN;
        if (t <= samples_.front().t) return value(samples_.front());
        for (size_t i = 1; i < samples_.size(); ++i)
            if (samples_[i].t >= t) {
                const Sample &a = samples_[i - 1], &b = samples_[i];
                return value(a) + (value(b) - value(a)) * (t - a.t) / (b.t - a.t);
            }
        return value(samples_.back());
    }

    Clock::time_point t0_;
    std::atomic<bool> stop_{false};
    std::atomic<pid_t> pid_{0};
    std::mutex mu_;
    std::vector<Sample> samples_;
    std::thread thread_;
};

// recsync's work per record delivered between two samples.
struct PerRecord {
    double cpu_us = NAN, read_bytes = NAN, read_calls = NAN, written_bytes = NAN;
    json to_json() const {
        return {{"cpu_us", round_to(cpu_us, 1)}, {"read_bytes", std::round(read_bytes)}, {"read_calls", round_to(read_calls, 2)}, {"written_bytes", std::round(written_bytes)}};
    }
};

PerRecord per_record(const ProcCounters &a, const ProcCounters &b, double records) {
    return {(b.cpu - a.cpu) * 1e6 / records, (b.rchar - a.rchar) / records, (b.syscr - a.syscr) / records, (b.wchar - a.wchar) / records};
}

// What /v1/status and /metrics say about the lanes.
struct Lanes {
    int64_t queued = 0, in_memory = 0, in_flight = 0, in_memory_metric = -1, calls_in_flight_limit = -1;
};

Lanes read_lanes(uint16_t port) {
    HttpClient c("127.0.0.1", port);
    Lanes l;
    const json status = c.get_json("/v1/status");  // named: a range-for over a temporary's member dangles
    for (const auto &[name, s] : status["connections"].items()) {
        l.queued += s["queued"].get<int64_t>();
        l.in_memory += s["in_memory"].get<int64_t>();
        l.in_flight += s["in_flight"].get<int64_t>();
    }
    const auto m = c.get("/metrics");
    if (m.status != 200) throw std::runtime_error("GET /metrics -> " + std::to_string(m.status));
    l.in_memory_metric = metric(m.body, "recsync_tasks_in_memory");
    l.calls_in_flight_limit = metric(m.body, "recsync_calls_in_flight_limit");
    return l;
}

struct Baseline {
    double per_sec = 0;             // between 10% and 90% of the tasks created
    double first_to_last_per_sec = 0;
    double first_create_s = 0;      // spawn -> first create
    double drain_s = 0;             // spawn -> last create
    double ready_s = 0;
    int64_t peak_rss = 0, rss = 0;
    PerRecord work;  // recsync's, between the same 10% and 90% marks (NAN if 10% came before /readyz)
};

// Starts recsync on a fresh database of `tasks` tasks and waits until the mock has them all.
Baseline run_baseline(const std::string &cfg, uint16_t port, const std::string &log, const Mock &mock, int64_t tasks, std::chrono::seconds ready_timeout) {
    reset_mock(mock.port);
    const auto t0 = Clock::now();
    Sampler s(mock.port, t0);
    Engine e = start_recsync(cfg, port, log, ready_timeout);
    s.set_pid(e.proc.pid());
    const auto limit = std::chrono::seconds(120 + tasks / 1000);
    if (!wait_until([&] { return s.last() >= tasks || !e.proc.alive(); }, limit, std::chrono::milliseconds(20)) || s.last() < tasks)
        throw std::runtime_error("the baseline delivered " + std::to_string(s.last()) + " of " + std::to_string(tasks) + " tasks: " + tail_file(log));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // a last sample past the end
    s.stop();
    Baseline b;
    b.ready_s = e.ready_seconds;
    b.peak_rss = e.proc.rss_bytes("VmHWM:");
    b.rss = e.proc.rss_bytes();
    const double t10 = s.time_of(tasks / 10), t90 = s.time_of(tasks - tasks / 10);
    b.per_sec = static_cast<double>(tasks - tasks / 10 - tasks / 10) / (t90 - t10);
    b.work = per_record(s.proc_at(t10), s.proc_at(t90), static_cast<double>(tasks - tasks / 10 - tasks / 10));
    b.first_create_s = s.time_of(1);
    b.drain_s = s.time_of(tasks);
    b.first_to_last_per_sec = static_cast<double>(tasks - 1) / (b.drain_s - b.first_create_s);
    e.proc.stop(std::chrono::milliseconds(20000));
    return b;
}

// One restart on the big database.
struct Big {
    int64_t queued_at_start = 0;  // the backlog it started with
    double ready_s = 0, first_create_s = 0, per_sec = 0, cpu_s = 0;
    PerRecord work;  // recsync's, over the window
    int64_t peak_rss = 0, rss = 0, rss_ready = 0, peak_rss_ready = 0;
    int64_t delivered_at_status = 0;  // the mock's creates just before /v1/status was read
    int64_t delivered = 0;            // all of this run's creates, once recsync stopped
    Lanes lanes;
};

// Starts recsync on the big database (holding `backlog` tasks), waits `warmup` s after
// /readyz, counts the mock's creates over `window` s, then reads RSS, /v1/status, /metrics.
Big run_big(const std::string &cfg, uint16_t port, const std::string &log, const Mock &mock, int64_t backlog, double warmup, double window,
            std::chrono::seconds ready_timeout) {
    Big b;
    b.queued_at_start = backlog;
    reset_mock(mock.port);
    const auto t0 = Clock::now();
    Sampler samples(mock.port, t0);
    Engine e = start_recsync(cfg, port, log, ready_timeout);
    b.ready_s = e.ready_seconds;
    samples.set_pid(e.proc.pid());
    b.rss_ready = e.proc.rss_bytes();
    b.peak_rss_ready = e.proc.rss_bytes("VmHWM:");
    progress("ready in " + std::to_string(b.ready_s) + " s, RSS " + std::to_string(b.rss_ready >> 20) + " MiB");
    const double wa = b.ready_s + warmup, wb = wa + window;
    std::this_thread::sleep_until(t0 + std::chrono::milliseconds(static_cast<int64_t>(wa * 1000)));
    const double cpu0 = e.proc.cpu_seconds();
    std::this_thread::sleep_until(t0 + std::chrono::milliseconds(static_cast<int64_t>(wb * 1000)));
    b.cpu_s = e.proc.cpu_seconds() - cpu0;
    b.peak_rss = e.proc.rss_bytes("VmHWM:");
    b.rss = e.proc.rss_bytes();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a sample past the window's end
    b.delivered_at_status = samples.last();
    b.lanes = read_lanes(port);
    samples.stop();
    b.per_sec = (samples.created_at(wb) - samples.created_at(wa)) / window;
    b.work = per_record(samples.proc_at(wa), samples.proc_at(wb), b.per_sec * window);
    b.first_create_s = samples.time_of(1);
    e.proc.stop(std::chrono::milliseconds(30000));
    HttpClient c("127.0.0.1", mock.port);
    b.delivered = c.get_json("/_mock/stats")["created"].get<int64_t>();  // each create is one task (unique emails)
    return b;
}

}  // namespace

int main(int argc, char **argv) try {
    Args args(argc, argv);
    const int64_t tasks = static_cast<int64_t>(args.num("tasks", 10000000));
    const int64_t connections = static_cast<int64_t>(args.num("connections", 1000));
    const int64_t baseline_tasks = static_cast<int64_t>(args.num("baseline-tasks", 100000));
    const int rounds = std::max(1, static_cast<int>(args.num("rounds", 2)));
    const double window = args.num("window", 10);
    const double warmup = args.num("warmup", 3);
    const int lane_in_flight = static_cast<int>(args.num("lane-in-flight", 1));
    const double lane_rate = args.num("lane-rate", 1e6);
    const auto ready_timeout = std::chrono::seconds(static_cast<int64_t>(args.num("ready-timeout", 300)));
    args.done(kUsage);
    if (tasks < connections || baseline_tasks < 10 || connections < 1) throw std::runtime_error("need --tasks >= --connections >= 1 and --baseline-tasks >= 10");
    // Prefill at 5,000 tasks/s at worst; each run up to its ready timeout; each baseline's
    // delivery at 1,000/s at worst; each big run's warm-up, window and stop.
    install_guard(static_cast<unsigned>(static_cast<double>(tasks + baseline_tasks * (rounds + 1)) / 5000 + ready_timeout.count() * (2 * rounds + 1) +
                                        (rounds + 1) * (120 + baseline_tasks / 1000) + rounds * (warmup + window + 60) + 600));

    const json load_start = load_average();
    TempDir dir;
    const std::string plugins = prepare_plugins(dir);
    const std::string rules = prepare_rules(dir, conn_name(0));  // nothing is ingested: the tasks are prefilled
    Mock mock = start_mock(dir, {"--no-log", "--threads", "2"});
    progress("mock CRM on " + mock.url());

    EngineSpec spec = engine_spec(dir, plugins, rules, mock);  // state_path is set per run below
    std::vector<ConnSpec> conns;
    conns.reserve(static_cast<size_t>(connections));
    for (int64_t i = 0; i < connections; ++i) conns.push_back({conn_name(i), lane_rate, std::max(1.0, std::min(lane_rate, 1e4)), lane_in_flight});
    const auto connection_of = [&](int64_t i) { return conn_name(i % connections); };

    // 1. Prefill.
    const std::string big_db = dir.file("big/recsync.db");
    progress("writing " + std::to_string(tasks) + " tasks over " + std::to_string(connections) + " connections");
    const double prefill_s = prefill(big_db, connection_of, tasks, 0);
    const int64_t sqlite_bytes = database_bytes(big_db);
    progress("prefilled in " + std::to_string(prefill_s) + " s, " + std::to_string(sqlite_bytes) + " bytes");
    emit({{"bench", "backlog.prefill"},
          {"tasks", tasks},
          {"connections", connections},
          {"tasks_per_connection", tasks / connections},
          {"prefill_s", round_to(prefill_s, 2)},
          {"tasks_per_sec", std::round(static_cast<double>(tasks) / prefill_s)},
          {"sqlite_bytes", sqlite_bytes},
          {"sqlite_bytes_per_task", round_to(static_cast<double>(sqlite_bytes) / static_cast<double>(tasks), 1)},
          {"payload_bytes_per_task", round_to(mean_payload_bytes(tasks), 1)},
          {"load_avg_start", load_start},
          {"load_avg_end", load_average()}});

    spec.state_path = big_db;
    const std::string cfg_big = dir.write("big.yaml", config_yaml(spec, conns));

    // 2./3. Baseline, then `rounds` times: a restart on the big database, a baseline.
    std::vector<Baseline> bases;
    std::vector<Big> bigs;
    const json load_rounds = load_average();
    const auto baseline_round = [&](int r) {
        spec.state_path = dir.file("baseline-" + std::to_string(r) + "/recsync.db");
        prefill(spec.state_path, connection_of, baseline_tasks, 0);
        const std::string cfg = dir.write("baseline-" + std::to_string(r) + ".yaml", config_yaml(spec, conns));
        progress("baseline " + std::to_string(r) + ": " + std::to_string(baseline_tasks) + " tasks");
        bases.push_back(run_baseline(cfg, spec.port, dir.file("recsync-baseline-" + std::to_string(r) + ".log"), mock, baseline_tasks, ready_timeout));
        progress("baseline " + std::to_string(r) + ": " + std::to_string(bases.back().per_sec) + " records/s, ready in " + std::to_string(bases.back().ready_s) + " s");
        std::error_code ec;
        fs::remove_all(fs::path(spec.state_path).parent_path(), ec);
    };
    baseline_round(1);
    int64_t backlog = tasks;
    for (int r = 1; r <= rounds; ++r) {
        progress("round " + std::to_string(r) + ": recsync on " + std::to_string(backlog) + " queued tasks");
        bigs.push_back(run_big(cfg_big, spec.port, dir.file("recsync-big-" + std::to_string(r) + ".log"), mock, backlog, warmup, window, ready_timeout));
        const Big &g = bigs.back();
        progress("round " + std::to_string(r) + ": " + std::to_string(g.per_sec) + " records/s, peak RSS " + std::to_string(g.peak_rss >> 20) + " MiB, " +
                 std::to_string(g.lanes.queued) + " queued");
        backlog -= g.delivered;
        if (g.lanes.queued < connections * 10) std::cerr << "bench_backlog: warning: the backlog nearly ran out during the window; raise --tasks\n";
        baseline_round(r + 1);
    }

    Baseline base;  // the means (rates, work) and the worst (ready, RSS) of the rounds
    base.work = {0, 0, 0, 0};
    json base_rounds = json::array();
    for (const auto &b : bases) {
        base_rounds.push_back({{"records_per_sec", std::round(b.per_sec)},
                               {"first_to_last_per_sec", std::round(b.first_to_last_per_sec)},
                               {"ready_s", round_to(b.ready_s, 2)},
                               {"first_create_s", round_to(b.first_create_s, 2)},
                               {"drain_s", round_to(b.drain_s, 2)},
                               {"per_record", b.work.to_json()},
                               {"peak_rss_mib", mib(b.peak_rss)}});
        const double n = static_cast<double>(bases.size());
        base.per_sec += b.per_sec / n;
        base.first_to_last_per_sec += b.first_to_last_per_sec / n;
        base.work.cpu_us += b.work.cpu_us / n;
        base.work.read_bytes += b.work.read_bytes / n;
        base.work.read_calls += b.work.read_calls / n;
        base.work.written_bytes += b.work.written_bytes / n;
        base.ready_s = std::max(base.ready_s, b.ready_s);
        base.peak_rss = std::max(base.peak_rss, b.peak_rss);
        base.rss = std::max(base.rss, b.rss);
    }
    emit({{"bench", "backlog.baseline"},
          {"tasks", baseline_tasks},
          {"connections", connections},
          {"rate_between", json::array({0.1, 0.9})},
          {"rounds", base_rounds},
          {"records_per_sec", std::round(base.per_sec)},
          {"first_to_last_per_sec", std::round(base.first_to_last_per_sec)},
          {"cpu_us_per_record", round_to(base.work.cpu_us, 1)},
          {"per_record", base.work.to_json()},
          {"ready_s", round_to(base.ready_s, 2)},
          {"peak_rss_mib", mib(base.peak_rss)},
          {"rss_mib", mib(base.rss)},
          {"load_avg_start", load_rounds},
          {"load_avg_end", load_average()}});

    // Each restart against the baselines on either side of it; the totals: the worst ready
    // and peak RSS, the mean rates.
    json big_rounds = json::array();
    double per_sec = 0, cpu_us = 0, ready_s = 0;
    int64_t peak_rss = 0;
    for (size_t r = 0; r < bigs.size(); ++r) {
        const Big &g = bigs[r];
        const double around = (bases[r].per_sec + bases[r + 1].per_sec) / 2;
        big_rounds.push_back({{"queued_at_start", g.queued_at_start},
                              {"ready_s", round_to(g.ready_s, 2)},
                              {"first_create_s", round_to(g.first_create_s, 2)},
                              {"records_per_sec", std::round(g.per_sec)},
                              {"baseline_records_per_sec", std::round(around)},
                              {"ratio", round_to(g.per_sec / around, 3)},
                              {"recsync_cpu_s", round_to(g.cpu_s, 2)},
                              {"per_record", g.work.to_json()},
                              {"peak_rss_mib", mib(g.peak_rss)},
                              {"rss_mib", mib(g.rss)},
                              {"rss_at_ready_mib", mib(g.rss_ready)},
                              {"peak_rss_at_ready_mib", mib(g.peak_rss_ready)},
                              {"queued", g.lanes.queued},
                              {"queued_expected", g.queued_at_start - g.delivered_at_status},
                              {"in_memory", g.lanes.in_memory},
                              {"calls_in_flight_limit", g.lanes.calls_in_flight_limit}});
        per_sec += g.per_sec / static_cast<double>(bigs.size());
        cpu_us += g.work.cpu_us / static_cast<double>(bigs.size());
        ready_s = std::max(ready_s, g.ready_s);
        peak_rss = std::max(peak_rss, g.peak_rss);
    }
    const Big &first = bigs.front();  // the restart on exactly --tasks
    const double ratio = per_sec / base.per_sec;
    const double peak_rss_mib = mib(peak_rss);
    emit({{"bench", "backlog"},
          {"tasks", tasks},
          {"connections", connections},
          {"lane_in_flight", lane_in_flight},
          {"lane_rate", lane_rate},
          {"warmup_s", warmup},
          {"window_s", window},
          {"rounds", big_rounds},
          {"ready_s", round_to(ready_s, 2)},
          {"records_per_sec", std::round(per_sec)},
          {"cpu_us_per_record", round_to(cpu_us, 1)},
          {"peak_rss_mib", peak_rss_mib},
          {"queued", first.lanes.queued},
          {"queued_expected", tasks - first.delivered_at_status},
          {"in_memory", first.lanes.in_memory},
          {"tasks_in_memory_metric", first.lanes.in_memory_metric},
          {"in_flight", first.lanes.in_flight},
          {"baseline_records_per_sec", std::round(base.per_sec)},
          {"baseline_cpu_us_per_record", round_to(base.work.cpu_us, 1)},
          {"ratio", round_to(ratio, 3)},
          {"targets", {{"peak_rss_mib", 512}, {"ready_s", 10}, {"ratio", 0.8}}},
          {"meets_target", peak_rss_mib < 512 && ready_s < 10 && ratio >= 0.8},
          {"load_avg_start", load_rounds},
          {"load_avg_end", load_average()}});
    return 0;
} catch (const std::exception &e) {
    std::cerr << "bench_backlog: " << e.what() << "\n";
    return 1;
}
