// bench_latency: events at a steady rate (default 3,500/s, open loop: each event has its
// due time and is sent then, however the earlier ones went) to a running recsync; for each
// event, the time from its acceptance (the 202 of its POST /v1/events, as the sender sees
// it) to the mock CRM's receipt of the create (the mock's request log `at_ms`), matched by
// the record's email. The mock is not changed: its log is read once at the end.
//
// Baseline in the same run: the same senders at the same rate POSTing the plugin's create
// body straight to the mock: the round trip a call costs without recsync.
//
// Lines (stdout):
//   {"bench":"latency.baseline", ...}  direct POSTs to the mock: round-trip p50/p99/max
//   {"bench":"latency", ...}           acceptance -> receipt p50/p90/p99/max, meets_target (p99 < 20 ms)
//
// `at_ms` has millisecond resolution (taken when the mock starts handling the request), so
// each latency is up to 1 ms low; acceptance is taken in microseconds.
#include "delivery_common.hpp"

using namespace bench;

namespace {

const char *kUsage =
    "usage: bench_latency [--rate 3500] [--seconds 20] [--warmup 2] [--senders 16] [--batch 1] [--in-flight 16]\n"
    "                     [--sync full|normal] [--baseline-seconds 10]\n";

struct Sample {
    int64_t due_us = 0;     // steady offset from t0 when it should have been sent
    int64_t sent_us = 0;    // steady offset when it was sent
    int64_t answer_us = 0;  // steady offset when the answer arrived
    int64_t accept_epoch_us = 0;
    int status = 0;
};

// Open-loop pacing: slot j (j = 0.., `batch` events each) is due at t0 + j * batch / rate;
// sender k takes the slots j with j % senders == k. `send(client, j)` returns the status.
std::vector<Sample> paced(int senders, double rate, int batch, double seconds, uint16_t port,
                          const std::function<int(HttpClient &, int64_t)> &send, Clock::time_point t0) {
    const int64_t slots = static_cast<int64_t>(rate * seconds / batch);
    const double period_us = 1e6 * batch / rate;
    std::vector<Sample> samples(static_cast<size_t>(slots));
    std::vector<std::thread> threads;
    for (int k = 0; k < senders; ++k)
        threads.emplace_back([&, k] {
            HttpClient c("127.0.0.1", port);
            for (int64_t j = k; j < slots; j += senders) {
                auto &s = samples[static_cast<size_t>(j)];
                s.due_us = static_cast<int64_t>(static_cast<double>(j) * period_us);
                std::this_thread::sleep_until(t0 + std::chrono::microseconds(s.due_us));
                s.sent_us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
                s.status = send(c, j);
                s.answer_us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
                s.accept_epoch_us = epoch_us();
            }
        });
    for (auto &t : threads) t.join();
    return samples;
}

}  // namespace

int main(int argc, char **argv) try {
    Args args(argc, argv);
    const double rate = args.num("rate", 3500);
    const double seconds = args.num("seconds", 20);
    const double warmup = args.num("warmup", 2);
    const int senders = static_cast<int>(args.num("senders", 16));
    const int batch = static_cast<int>(args.num("batch", 1));
    const int in_flight = static_cast<int>(args.num("in-flight", 16));
    const std::string sync = args.str("sync", "full");
    const double baseline_seconds = args.num("baseline-seconds", 10);
    args.done(kUsage);
    install_guard(static_cast<unsigned>(seconds + baseline_seconds) + 300);

    const json load_start = load_average();
    TempDir dir;
    const std::string plugins = prepare_plugins(dir);
    const std::string rules = prepare_rules(dir, "hubspot-main");
    // The request log on (it is what we read), large enough for every call.
    const int64_t max_log = static_cast<int64_t>(rate * std::max(seconds, baseline_seconds) * 1.5) + 10000;
    Mock mock = start_mock(dir, {"--threads", "2", "--max-log", std::to_string(max_log)});
    HttpClient admin("127.0.0.1", mock.port);
    progress("mock CRM on " + mock.url());

    // Baseline: straight to the mock.
    progress("baseline: " + std::to_string(rate) + "/s straight to the mock for " + std::to_string(baseline_seconds) + " s");
    const std::string auth = "Accept: application/json\r\nAuthorization: Bearer " + kToken + "\r\n";
    auto base = paced(senders, rate, 1, baseline_seconds, mock.port,
                      [&](HttpClient &c, int64_t j) { return c.request("POST", "/crm/v3/objects/contacts", hubspot_create_body("b" + std::to_string(j) + "@example.com", j), "application/json", auth).status; },
                      Clock::now() + std::chrono::milliseconds(100));
    std::vector<double> base_rtt;
    int64_t base_bad = 0;
    for (const auto &s : base) {
        if (s.status != 201) ++base_bad;
        if (s.due_us >= warmup * 1e6) base_rtt.push_back((s.answer_us - s.sent_us) / 1000.0);
    }
    reset_mock(mock.port);

    EngineSpec spec = engine_spec(dir, plugins, rules, mock);
    spec.synchronous = sync;
    const std::string cfg = dir.write("recsync.yaml", config_yaml(spec, {{"hubspot-main", 1e6, 1e4, in_flight}}));
    Engine engine = start_recsync(cfg, spec.port, dir.file("recsync.log"));
    progress("recsync ready; " + std::to_string(rate) + " events/s for " + std::to_string(seconds) + " s, " + std::to_string(senders) + " senders, batch " +
             std::to_string(batch));

    const double cpu_r0 = engine.proc.cpu_seconds();
    const auto t0 = Clock::now() + std::chrono::milliseconds(100);
    auto samples = paced(senders, rate, batch, seconds, spec.port,
                         [&](HttpClient &c, int64_t j) {
                             std::string body;
                             for (int64_t i = j * batch; i < (j + 1) * batch; ++i) (body += contact_event("lat", i)) += '\n';
                             return c.request("POST", "/v1/events", body, "application/x-ndjson").status;
                         },
                         t0);
    const double send_seconds = seconds_since(t0);
    const int64_t n_events = static_cast<int64_t>(samples.size()) * batch;
    // Let the last ones arrive.
    wait_until([&] { return admin.get_json("/_mock/stats")["created"].get<int64_t>() >= n_events; }, std::chrono::seconds(30), std::chrono::milliseconds(100));
    const double cpu_r = engine.proc.cpu_seconds() - cpu_r0;
    const auto stats = admin.get_json("/_mock/stats");
    engine.proc.stop();

    // Receipt times by event number, from the mock's log.
    progress("reading the mock's request log");
    const auto receipt = receipts_by_event(admin, "lat");  // event number -> at_ms

    std::vector<double> latency, accept_rtt, lag;
    int64_t missing = 0, rejected = 0, negative = 0;
    for (size_t j = 0; j < samples.size(); ++j) {
        const auto &s = samples[j];
        if (s.status != 202) {
            rejected += batch;
            continue;
        }
        if (s.due_us < warmup * 1e6) continue;
        accept_rtt.push_back((s.answer_us - s.sent_us) / 1000.0);
        lag.push_back((s.sent_us - s.due_us) / 1000.0);
        for (int64_t i = static_cast<int64_t>(j) * batch; i < static_cast<int64_t>(j + 1) * batch; ++i) {
            const auto it = receipt.find(i);
            if (it == receipt.end()) {
                ++missing;
                continue;
            }
            const double ms = static_cast<double>(it->second) - static_cast<double>(s.accept_epoch_us) / 1000.0;
            if (ms < 0) ++negative;
            latency.push_back(ms);
        }
    }
    const json base_sum = latency_summary(base_rtt);
    emit({{"bench", "latency.baseline"},
          {"what", "the same senders at the same rate POSTing the plugin's create body straight to the mock: round trip"},
          {"rate", rate},
          {"seconds", baseline_seconds},
          {"non_201", base_bad},
          {"rtt", base_sum}});
    const json lat = latency_summary(latency);
    // The rate must have been held too (within 3%), or the latencies describe a lighter load.
    const double rate_sent = static_cast<double>(n_events) / send_seconds;
    const bool rate_held = rate_sent >= 0.97 * rate;
    const bool meets = !latency.empty() && lat["p99_ms"].get<double>() < 20.0 && missing == 0 && rejected == 0 && rate_held;
    emit({{"bench", "latency"},
          {"rate_target", rate},
          {"rate_sent", std::round(rate_sent)},
          {"rate_held", rate_held},
          {"seconds", seconds},
          {"warmup_s", warmup},
          {"senders", senders},
          {"batch", batch},
          {"in_flight", in_flight},
          {"synchronous", sync},
          {"events", n_events},
          {"measured", latency.size()},
          {"missing", missing},
          {"rejected", rejected},
          {"received_before_ack", negative},
          {"p50_ms", lat["p50_ms"]},
          {"p90_ms", lat["p90_ms"]},
          {"p99_ms", lat["p99_ms"]},
          {"p999_ms", lat["p999_ms"]},
          {"max_ms", lat["max_ms"]},
          {"accept_rtt", latency_summary(accept_rtt)},
          {"send_lag", latency_summary(lag)},
          {"baseline_rtt_p50_ms", base_sum["p50_ms"]},
          {"baseline_rtt_p99_ms", base_sum["p99_ms"]},
          {"mock_requests", stats["requests"]},
          {"recsync_cpu_s", round_to(cpu_r, 2)},
          {"meets_target", meets},
          {"load_avg_start", load_start},
          {"load_avg_end", load_average()}});
    return 0;
} catch (const std::exception &e) {
    std::cerr << "bench_latency: " << e.what() << "\n";
    return 1;
}
