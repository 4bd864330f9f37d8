// Helpers shared by the Lane and LaneScheduler tests (unit_dispatch_test).
#pragma once

#include "model/backlog.hpp"
#include "model/runtime.hpp"
#include "util/clock.hpp"

#include <memory>
#include <string>

namespace recsync::testing {

// push() compares ready_at with the real steady clock: the epoch is always in the past and
// an hour from now always in the future, so nothing here depends on timing.
inline const util::TimePoint kPast = util::TimePoint{};

// A ConnectionRuntime without a provider, which is all a Lane reads.
inline std::shared_ptr<model::ConnectionRuntime> mock_connection(const std::string &name, int max_in_flight, double rate = 0, double burst = 0) {
    auto c = std::make_shared<model::ConnectionRuntime>();
    c->config.name = name;
    c->config.provider = "mock";
    c->config.max_in_flight = max_in_flight;
    c->rate_per_second = rate;
    c->burst = burst;
    return c;
}

// The backlog counter a test's lanes count into (one per test process is enough: tests
// that read it use their own connection names).
inline model::Backlog &test_backlog() {
    static model::Backlog b;
    return b;
}

}  // namespace recsync::testing
