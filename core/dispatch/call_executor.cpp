#include "dispatch/call_executor.hpp"

#include "connectors/postgres/pg_applier.hpp"
#include "connectors/postgres/pg_target.hpp"

namespace recsync::dispatch {

namespace pg = connectors::postgres;

CallExecutor::CallExecutor(size_t max_connections) : http_(max_connections) {}
CallExecutor::~CallExecutor() = default;

void CallExecutor::configure(const config::ConnectionConfig &c) {
    if (c.provider != pg::kProviderId) return;
    auto &applier = appliers_[c.name];
    if (applier) return applier->reconfigure(c.postgres);
    // One database connection per call its lane may have in flight, at most 16.
    applier = std::make_unique<pg::Applier>(c.name, c.postgres, std::min(c.max_in_flight, 16), [this](pg::ApplyResult r) {
        {
            std::lock_guard lock(finished_mutex_);
            finished_.push_back(std::move(r));
        }
        http_.wakeup();  // poll may be waiting on HTTP alone
    });
}

void CallExecutor::start(HttpCall call) {
    if (call.url.rfind(pg::kUrlScheme, 0) != 0) return http_.start(std::move(call));
    // postgres://<connection>/<object>/<key>
    const std::string_view rest = std::string_view(call.url).substr(std::char_traits<char>::length(pg::kUrlScheme));
    const auto slash = rest.find('/');
    const auto it = appliers_.find(rest.substr(0, slash));
    pg::ApplyJob job{call.tag, call.method, slash == std::string_view::npos ? std::string("/") : std::string(rest.substr(slash)), call.body,
                     call.lose_to_changes_since_ms};
    if (it == appliers_.end()) {  // not configured (a lane's own calls always are): a failure
        HttpOutcome o;
        o.tag = call.tag;
        o.status = 404;
        o.body = "no PostgreSQL connection for " + call.url;
        o.call = std::move(call);
        unroutable_.push_back(std::move(o));
        return;
    }
    applying_.emplace(call.tag, std::move(call));
    it->second->submit(std::move(job));
}

std::vector<HttpOutcome> CallExecutor::poll(int timeout_ms) {
    // An applier's result wakes the HTTP poll; results ready already mean no wait.
    std::vector<HttpOutcome> out = std::exchange(unroutable_, {});
    std::vector<pg::ApplyResult> finished;
    {
        std::lock_guard lock(finished_mutex_);
        finished.swap(finished_);
    }
    for (auto &r : finished) {
        auto it = applying_.find(r.tag);
        if (it == applying_.end()) continue;
        HttpOutcome o;
        o.tag = r.tag;
        o.status = r.status;
        o.body = std::move(r.body);
        o.lost_conflict = r.lost_conflict;
        o.call = std::move(it->second);
        applying_.erase(it);
        out.push_back(std::move(o));
    }
    const bool ready = !out.empty();
    auto http = http_.poll(ready ? 0 : timeout_ms);
    if (out.empty()) return http;
    for (auto &o : http) out.push_back(std::move(o));
    return out;
}

}  // namespace recsync::dispatch
