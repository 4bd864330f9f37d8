// The sync state in SQLite (table `links`), read on the backend's read-only connection.
#pragma once

#include "store/sqlite/sqlite_db.hpp"
#include "store/sync_state.hpp"

namespace recsync::store::sqlite {

class SqliteSyncState final : public SyncState {
public:
    explicit SqliteSyncState(SqliteDb &reader) : reader_(reader) {}
    model::LinkState link(const model::LinkKey &key) override;

private:
    SqliteDb &reader_;
};

}  // namespace recsync::store::sqlite
