#include "model/backlog.hpp"

#include <mutex>

namespace recsync::model {

void Backlog::reset(const std::map<std::string, int64_t> &counts) {
    std::unique_lock l(mutex_);
    int64_t total = 0;
    for (auto &[name, c] : counters_) c->store(0, std::memory_order_relaxed);
    for (const auto &[name, n] : counts) {
        auto &c = counters_[name];
        if (!c) c = std::make_unique<Counter>(0);
        c->store(n, std::memory_order_relaxed);
        total += n;
    }
    total_.store(total, std::memory_order_relaxed);
}

Backlog::Counter &Backlog::counter(const std::string &connection) {
    {
        std::shared_lock l(mutex_);
        if (auto it = counters_.find(connection); it != counters_.end()) return *it->second;
    }
    std::unique_lock l(mutex_);
    auto &c = counters_[connection];
    if (!c) c = std::make_unique<Counter>(0);
    return *c;
}

int64_t Backlog::of(const std::string &connection) const {
    std::shared_lock l(mutex_);
    auto it = counters_.find(connection);
    return it == counters_.end() ? 0 : it->second->load(std::memory_order_relaxed);
}

}  // namespace recsync::model
