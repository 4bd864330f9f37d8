// Reading the sync state: per record and link, what recsync knows of the record there
// (model/link_state.hpp). Written only through the delivery log, with the results that
// change it. Implementations: store/sqlite/.
#pragma once

#include "model/link_state.hpp"

namespace recsync::store {

class SyncState {
public:
    virtual ~SyncState() = default;
    // The record's state at the link; a default LinkState if nothing is known. Never waits
    // for a writer.
    virtual model::LinkState link(const model::LinkKey &key) = 0;
};

}  // namespace recsync::store
