// Where a lane's calls run: over HTTP (HttpExecutor) or, for a PostgreSQL connection
// (base_url postgres://<connection>), on that connection's Applier. One interface for the
// dispatcher thread, so a lane does not care which: both answer as HttpOutcome.
#pragma once

#include "config/config.hpp"
#include "dispatch/http_executor.hpp"

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace recsync::connectors::postgres {
class Applier;
struct ApplyResult;
}

namespace recsync::dispatch {

class CallExecutor {
public:
    explicit CallExecutor(size_t max_connections);
    ~CallExecutor();

    // A PostgreSQL connection's calls go to its applier (made on first sight, given the
    // new tables on a reload). Owner thread only.
    void configure(const config::ConnectionConfig &c);
    // The same contract as HttpExecutor's (owner thread only, but wakeup()).
    void start(HttpCall call);
    std::vector<HttpOutcome> poll(int timeout_ms);
    void wakeup() { http_.wakeup(); }
    size_t in_flight() const { return http_.in_flight() + applying_.size() + unroutable_.size(); }
    std::chrono::steady_clock::duration take_waited() { return http_.take_waited(); }

private:
    HttpExecutor http_;
    // Every applier's finished calls, pushed from its workers. Declared before appliers_:
    // an applier's destructor finishes its calls, whose results still land here.
    std::mutex finished_mutex_;
    std::vector<connectors::postgres::ApplyResult> finished_;  // under finished_mutex_
    std::map<std::string, std::unique_ptr<connectors::postgres::Applier>, std::less<>> appliers_;
    std::map<uint64_t, HttpCall> applying_;  // by tag: handed back with the outcome
    std::vector<HttpOutcome> unroutable_;
};

}  // namespace recsync::dispatch
