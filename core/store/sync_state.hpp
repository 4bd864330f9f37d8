// Reading the sync state: per record and link, what recsync knows of the record there
// (model/link_state.hpp). Written only through the delivery log, with the results that
// change it. Implementations: store/sqlite/.
#pragma once

#include "model/link_state.hpp"

#include <optional>
#include <string>
#include <vector>

namespace recsync::store {

class SyncState {
public:
    virtual ~SyncState() = default;
    // The record's state at the link; a default LinkState if nothing is known. Never waits
    // for a writer.
    virtual model::LinkState link(const model::LinkKey &key) = 0;
    // The same for many records, in one read (the dispatcher reads the records a batch
    // of tasks brings into the window this way: one read per batch, not per task).
    virtual std::vector<model::LinkState> links(const std::vector<model::LinkKey> &keys) = 0;
    // The last change accepted from one side of a two-way pair ("internal", or a
    // connection) for the record, under a conflict policy; none if there is none. Read
    // fresh (never cached): the dispatcher asks before a two-way task's call.
    virtual std::optional<model::SideChange> side_change(const std::string &record_key, const std::string &side) = 0;
};

}  // namespace recsync::store
