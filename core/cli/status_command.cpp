// `recsync status -c FILE`: the running instance's /v1/status, as a table a terminal reads
// at a glance (or the JSON itself with --json).
#include "cli/api_client.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

namespace recsync::cli {

namespace {

using nlohmann::json;

// "850 ms", "42 s", "3 m", "5 h": a waiting time short enough to read.
std::string age_text(int64_t ms) {
    if (ms <= 0) return "-";
    if (ms < 10'000) return std::to_string(ms) + " ms";
    if (ms < 600'000) return std::to_string(ms / 1000) + " s";
    if (ms < 36'000'000) return std::to_string(ms / 60'000) + " m";
    return std::to_string(ms / 3'600'000) + " h";
}

std::string rate_text(const json &lane) {
    const double limit = lane.value("rate_per_second", 0.0), now = lane.value("current_rate_per_second", 0.0);
    if (limit <= 0) return "unlimited";
    const auto num = [](double v) {
        std::string s = std::to_string(v);
        s.erase(s.find_last_not_of('0') + 1);
        if (s.back() == '.') s.pop_back();
        return s;
    };
    return now < limit ? num(now) + "/" + num(limit) + "/s" : num(limit) + "/s";
}

std::string state_text(const json &lane, int64_t now_ms) {
    if (lane.value("removed", false)) return "removed (keeps its tasks)";
    if (lane.contains("auth_error")) return "auth error: " + lane["auth_error"].get<std::string>();
    if (const auto until = lane.value("paused_until_ms", int64_t{0}); until > now_ms) return "paused " + age_text(until - now_ms);
    return "ok";
}

void print_table(const std::vector<std::vector<std::string>> &rows) {
    std::vector<size_t> width;
    for (const auto &r : rows)
        for (size_t i = 0; i < r.size(); ++i) {
            if (width.size() <= i) width.push_back(0);
            width[i] = std::max(width[i], r[i].size());
        }
    for (const auto &r : rows) {
        std::string line;
        for (size_t i = 0; i < r.size(); ++i) line += r[i] + (i + 1 < r.size() ? std::string(width[i] - r[i].size() + 2, ' ') : "");
        std::cout << line << "\n";
    }
}

}  // namespace

int cmd_status(const std::string &path, bool as_json) {
    const auto loaded = load_config_or_print(path);
    if (!loaded) return 1;
    const config::EngineConfig &cfg = *loaded;
    const auto reply = api_call(cfg, "GET", "/v1/status", cfg.server.status_token.empty() ? cfg.server.admin_token : cfg.server.status_token);
    if (reply.status == 0) {
        std::cerr << "error: no recsync answers at " << cfg.server.listen << (reply.error.empty() ? "" : ": " + reply.error) << "\n";
        return 1;
    }
    if (reply.status != 200) {
        std::cerr << "error: GET /v1/status: HTTP " << reply.status << " " << reply.body << "\n";
        return 1;
    }
    if (as_json) {
        std::cout << reply.body << "\n";
        return 0;
    }
    json status;
    try {
        status = json::parse(reply.body);
    } catch (const json::exception &e) {
        std::cerr << "error: /v1/status answered something that is not JSON: " << e.what() << "\n";
        return 1;
    }
    const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::vector<std::vector<std::string>> rows = {
        {"CONNECTION", "PROVIDER", "QUEUED", "IN FLIGHT", "RATE", "OLDEST", "P99", "OK", "RETRIED", "DEAD", "THROTTLED", "STATE", "LAST ERROR"}};
    for (const auto &item : status.at("connections").items()) {
        const std::string &name = item.key();
        const json &lane = item.value();  // a reference, not a structured binding: clang 14 cannot capture those
        const auto n = [&lane](const char *key) { return std::to_string(lane.value(key, int64_t{0})); };
        rows.push_back({name, lane.value("provider", ""), n("queued"), n("in_flight") + "/" + n("in_flight_target"), rate_text(lane),
                        age_text(lane.value("oldest_age_ms", int64_t{0})), age_text(static_cast<int64_t>(lane.value("delivery_p99_ms", 0.0))), n("succeeded"),
                        n("retried"), n("dead_lettered"), n("throttled"), state_text(lane, now_ms), lane.value("last_error", std::string("-"))});
    }
    print_table(rows);
    std::cout << "\n" << status.value("dead_letters", int64_t{0}) << " dead letter(s); " << status.value("rules", int64_t{0}) << " rule(s)";
    if (const auto error = status.value("reload", json::object()).value("last_error", std::string()); !error.empty()) std::cout << "; last reload failed: " << error;
    std::cout << "\n";
    return 0;
}

}  // namespace recsync::cli
