// Where the engine keeps its state: the task log, the delivery log, the sync state, dead
// letters and poll cursors, all in one backend so that a commit can span them. Chosen by
// the config's `state` section; SQLite (store/sqlite/) is the embedded one. Nothing
// outside store/<backend>/ names a backend's types.
#pragma once

#include "config/config.hpp"
#include "store/cursors.hpp"
#include "store/dead_letters.hpp"
#include "store/delivery_log.hpp"
#include "store/sync_state.hpp"
#include "store/task_log.hpp"

#include <memory>
#include <string>

namespace recsync::store {

class StateBackend {
public:
    virtual ~StateBackend() = default;
    virtual TaskLog &tasks() = 0;
    virtual DeliveryLog &deliveries() = 0;
    virtual SyncState &sync_state() = 0;
    virtual DeadLetterStore &dead_letters() = 0;
    virtual CursorStore &cursors() = 0;
    // For logs: "sqlite /var/lib/recsync/recsync.db".
    virtual std::string description() const = 0;
};

// Opens (creating or upgrading) the backend the config names. Throws std::runtime_error
// naming the problem.
std::unique_ptr<StateBackend> open_state_backend(const config::StateConfig &config);

}  // namespace recsync::store
