// Tasks accepted and not yet finished, per connection: what ingest compares with the
// configured limits before it accepts more (a 429 past them), and what /v1/status and
// /metrics show as each lane's queue. Counted in memory from the task log's count at a
// start, then by every commit that appends or finishes tasks. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_map>

namespace recsync::model {

class Backlog {
public:
    using Counter = std::atomic<int64_t>;
    // The count of every connection (tasks of connections not configured count too).
    void reset(const std::map<std::string, int64_t> &counts);
    // The connection's counter; the reference stays valid for the Backlog's life.
    Counter &counter(const std::string &connection);
    void add(Counter &c, int64_t n) {
        c.fetch_add(n, std::memory_order_relaxed);
        total_.fetch_add(n, std::memory_order_relaxed);
    }
    void add(const std::string &connection, int64_t n) { add(counter(connection), n); }
    void remove(Counter &c, int64_t n) { add(c, -n); }
    int64_t of(const std::string &connection) const;
    int64_t total() const { return total_.load(std::memory_order_relaxed); }

private:
    mutable std::shared_mutex mutex_;
    std::unordered_map<std::string, std::unique_ptr<Counter>> counters_;
    std::atomic<int64_t> total_{0};
};

}  // namespace recsync::model
