// The SQLite backend's tables, created on first open and upgraded in place from any
// earlier recsync's database (PRAGMA user_version says how far it is).
#pragma once

#include "store/sqlite/sqlite_db.hpp"

namespace recsync::store::sqlite {

inline constexpr int kSchemaVersion = 3;

// Idempotent; one transaction. Safe against another process (a `recsync dlq` command next
// to the engine) doing the same at once.
void migrate(SqliteDb &db);

}  // namespace recsync::store::sqlite
