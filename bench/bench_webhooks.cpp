// bench_webhooks: HubSpot webhook events made durable per second (v3 signature checked,
// events planned, committed, 200 answered) against, in the same run and on the same
// engine, System A events made durable through POST /v1/events. Both with one event per
// request and with 100.
//
// Each webhook event is a contact.propertyChange of its own record, so each becomes one
// durable task (its hydrating read) as each /v1/events contact event becomes one create
// task. The CRM connection is paced at 1 call/s: the dispatcher stays out of the way and
// the figure is ingest's.
//
// Lines (stdout):
//   {"bench":"webhooks.events", "batch":N, ...}             /v1/events: events/s (the baseline)
//   {"bench":"webhooks.events_identified", "batch":N, ...}  the same events with an id and an
//                                                           occurred_at, as a webhook's carry
//   {"bench":"webhooks", "batch":N, ...}                    /v1/webhooks/crm: events/s, ratios to both
#include "delivery_common.hpp"

#include "webhook_sender.hpp"  // the mock CRM's HubSpot v3 signature

using namespace bench;

namespace {

const char *kUsage = "usage: bench_webhooks [--seconds 8] [--senders 8] [--sync full|normal]\n";
const std::string kSecret = "bench-client-secret";
const std::string kHookUrl = "https://sync.example.com/v1/webhooks/crm";

struct Phase {
    int64_t events = 0;
    int64_t requests = 0;
    int64_t refused = 0;
    double seconds = 0;
};

// `senders` keep-alive clients send for `seconds`; request j of sender k carries events
// numbered from (k * 1e9 + j * batch).
Phase drive(uint16_t port, int senders, int batch, double seconds, const std::function<HttpResult(HttpClient &, int64_t first, int batch)> &send) {
    std::atomic<int64_t> events{0}, requests{0}, refused{0};
    const auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (int k = 0; k < senders; ++k)
        threads.emplace_back([&, k] {
            HttpClient c("127.0.0.1", port);
            for (int64_t j = 0; seconds_since(t0) < seconds; ++j) {
                const auto r = send(c, static_cast<int64_t>(k) * 1'000'000'000 + j * batch, batch);
                if (r.status == 200 || r.status == 202) {
                    events += batch;
                    ++requests;
                } else {
                    ++refused;
                    if (refused.load() < 5) progress("refused: " + std::to_string(r.status) + " " + r.error + r.body.substr(0, 200));
                }
            }
        });
    for (auto &t : threads) t.join();
    return {events.load(), requests.load(), refused.load(), seconds_since(t0)};
}

}  // namespace

int main(int argc, char **argv) try {
    Args args(argc, argv);
    const double seconds = args.num("seconds", 8);
    const int senders = static_cast<int>(args.num("senders", 8));
    const std::string sync = args.str("sync", "full");
    args.done(kUsage);
    install_guard(600);

    TempDir dir;
    const std::string plugins = prepare_plugins(dir);
    const std::string rules = prepare_rules(dir, "crm");
    dir.write("rules/inbound.yaml",
              "mappings:\n  hs-back: { fields: [ { from: email, to: email } ] }\n"
              "rules:\n  - { name: back, on: { source: crm, entity: contacts, event: [created, updated] }, do: { action: upsert, target: crm, object: contacts, mapping: hs-back } }\n");
    const Mock mock = start_mock(dir, {"--no-log"});
    const uint16_t port = free_port();
    setenv("BENCH_HS_SECRET", kSecret.c_str(), 1);
    const std::string cfg = dir.write("recsync.yaml",
                                      "plugins_dir: " + plugins + "\nrules_dir: " + rules + "\nwatch_rules: false\n"
                                      "state: { path: " + dir.file("state/recsync.db") + ", synchronous: " + sync + " }\n"
                                      "server: { listen: '127.0.0.1:" + std::to_string(port) + "' }\nlog_level: warn\n"
                                      "delivery: { max_backlog: { per_connection: 100000000, total: 100000000 } }\n"
                                      "connections:\n  crm:\n    provider: hubspot\n    base_url: '" + mock.url() + "'\n"
                                      "    credentials: { token_env: BENCH_CRM_TOKEN, client_secret_env: BENCH_HS_SECRET }\n"
                                      "    settings: { webhook_url: '" + kHookUrl + "' }\n"
                                      "    rate_limit: { per_second: 1, burst: 1 }\n");
    Engine engine = start_recsync(cfg, port, dir.file("recsync.log"));
    progress("recsync ready on port " + std::to_string(port));

    const auto post_events = [](HttpClient &c, int64_t first, int batch) {
        std::string body;
        for (int i = 0; i < batch; ++i) body += contact_event("e", first + i) + "\n";
        return c.request("POST", "/v1/events", body, "application/x-ndjson");
    };
    // The same with what a webhook's events carry: an id (deduplicated) and an order.
    const auto post_identified = [](HttpClient &c, int64_t first, int batch) {
        std::string body;
        for (int i = 0; i < batch; ++i) {
            std::string e = contact_event("i", first + i);
            e.insert(e.size() - 1, R"(,"id":"ev-)" + std::to_string(first + i) + R"(","occurred_at":"2026-12-02T03:00:00.000Z")");
            body += e + "\n";
        }
        return c.request("POST", "/v1/events", body, "application/x-ndjson");
    };
    const auto post_webhook = [](HttpClient &c, int64_t first, int batch) {
        json events = json::array();
        const int64_t at = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
        for (int i = 0; i < batch; ++i)
            events.push_back({{"eventId", first + i}, {"subscriptionId", 1}, {"portalId", 1}, {"appId", 1}, {"occurredAt", at},
                              {"subscriptionType", "contact.propertyChange"}, {"attemptNumber", 0}, {"objectId", first + i + 1},
                              {"propertyName", "email"}, {"propertyValue", "w" + std::to_string(first + i) + "@example.com"}, {"changeSource", "CRM"}});
        const std::string body = events.dump(), ts = std::to_string(at);
        return c.request("POST", "/v1/webhooks/crm", body, "application/json",
                         "X-HubSpot-Signature-v3: " + recsync::mock::hubspot_v3_signature(kSecret, "POST", kHookUrl, body, ts) + "\r\nX-HubSpot-Request-Timestamp: " + ts + "\r\n");
    };

    for (const int batch : {1, 100}) {
        progress("/v1/events, " + std::to_string(batch) + " per request, " + std::to_string(senders) + " senders");
        const Phase base = drive(port, senders, batch, seconds, post_events);
        progress("/v1/events with ids and orders, " + std::to_string(batch) + " per request");
        const Phase identified = drive(port, senders, batch, seconds, post_identified);
        progress("/v1/webhooks/crm, " + std::to_string(batch) + " per delivery");
        const Phase hooks = drive(port, senders, batch, seconds, post_webhook);
        const auto rate = [](const Phase &p) { return static_cast<double>(p.events) / p.seconds; };
        const double base_rate = rate(base), identified_rate = rate(identified), hook_rate = rate(hooks);
        emit({{"bench", "webhooks.events"}, {"batch", batch}, {"senders", senders}, {"events", base.events}, {"refused", base.refused},
              {"events_per_s", round_to(base_rate, 1)}, {"load", load_average()}});
        emit({{"bench", "webhooks.events_identified"}, {"batch", batch}, {"senders", senders}, {"events", identified.events}, {"refused", identified.refused},
              {"events_per_s", round_to(identified_rate, 1)}, {"load", load_average()}});
        emit({{"bench", "webhooks"}, {"batch", batch}, {"senders", senders}, {"events", hooks.events}, {"refused", hooks.refused},
              {"events_per_s", round_to(hook_rate, 1)}, {"ratio_to_events", round_to(base_rate > 0 ? hook_rate / base_rate : 0, 3)},
              {"ratio_to_identified_events", round_to(identified_rate > 0 ? hook_rate / identified_rate : 0, 3)}, {"sync", sync}, {"load", load_average()}});
    }
    HttpClient rc("127.0.0.1", port);
    const auto metrics = rc.get("/metrics");
    if (metrics.body.find("recsync_webhooks_unauthenticated_total 0") == std::string::npos)
        throw std::runtime_error("some webhook deliveries were refused as unauthenticated");
    engine.proc.stop();
    return 0;
} catch (const std::exception &e) {
    std::cerr << "bench_webhooks: " << e.what() << std::endl;
    return 1;
}
