// The SQLite backend's tables, created on first open and upgraded in place from any
// earlier recsync's database (PRAGMA user_version says how far it is).
#pragma once

#include "store/sqlite/sqlite_db.hpp"

namespace recsync::store::sqlite {

// PRAGMA user_version: 0 is every database made before recsync versioned its layout
// (tasks with or without `sent`, an `id_map` keyed either way, dead letters with or
// without `sent`); 1 is this one (sync state in `links`, event ids, record orders,
// cursors, the window index on tasks). The upgrade is one way: an older recsync cannot
// use a database once upgraded (it would find no `id_map` and make every record again).
inline constexpr int kSchemaVersion = 3;  // 2: links.written_modified, external_ids; 3: conflicts (tasks.conflict, links.incoming_*, record_changes)

// Idempotent; one transaction. Safe against another process (a `recsync dlq` command next
// to the engine) doing the same at once.
void migrate(SqliteDb &db);

}  // namespace recsync::store::sqlite
