// The sync state in SQLite (table `links`), read on the backend's read-only connection.
#pragma once

#include "store/sqlite/sqlite_db.hpp"
#include "store/sync_state.hpp"

namespace recsync::store::sqlite {

class SqliteSyncState final : public SyncState {
public:
    explicit SqliteSyncState(SqliteDb &reader) : reader_(reader) {}
    model::LinkState link(const model::LinkKey &key) override;
    std::vector<model::LinkState> links(const std::vector<model::LinkKey> &keys) override;
    std::optional<model::SideChange> side_change(const std::string &record_key, const std::string &side) override;

private:
    // Within the caller's lock (and read transaction, if any).
    model::LinkState read(const model::LinkKey &key);
    SqliteDb &reader_;
};

}  // namespace recsync::store::sqlite
