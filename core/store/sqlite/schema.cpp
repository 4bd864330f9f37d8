#include "store/sqlite/schema.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>

namespace recsync::store::sqlite {

namespace {

int user_version(SqliteDb &db) {
    auto l = db.lock();
    auto st = db.prepare("PRAGMA user_version");
    return st.step() ? static_cast<int>(st.column_int(0)) : 0;
}

// The task log: one row per task until it is done or dead-lettered, kept by connection
// (WITHOUT ROWID, keyed (connection, id)) so that a lane's backlog is one range of pages:
// a window is read from a page or two, and the results of one lane touch its own pages.
// Ids are the acceptance order across connections, never reused: the next one is in
// `meta`. The backlog per connection is counted in `task_counts`, in the commits that
// add and remove tasks, so a start reads it instead of counting millions of rows.
const char *const kTasksColumns =
    " (connection TEXT NOT NULL, id INTEGER NOT NULL, object TEXT NOT NULL, record_key TEXT NOT NULL,"
    " action INTEGER NOT NULL, payload TEXT NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0, not_before INTEGER NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL, last_error TEXT, sent INTEGER NOT NULL DEFAULT 0,"
    " event_kind INTEGER NOT NULL DEFAULT 0, order_kind INTEGER NOT NULL DEFAULT 0, order_value INTEGER NOT NULL DEFAULT 0,"
    " seq INTEGER, PRIMARY KEY (connection, id)) WITHOUT ROWID";

void create_tasks(SqliteDb &db) {
    db.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID");
    db.exec("CREATE TABLE IF NOT EXISTS task_counts (connection TEXT PRIMARY KEY, tasks INTEGER NOT NULL) WITHOUT ROWID");
    if (!db.table_exists("tasks")) {
        db.exec((std::string("CREATE TABLE tasks") + kTasksColumns).c_str());
        db.exec("INSERT OR IGNORE INTO meta(key, value) VALUES('next_task_id', 1)");
        return;
    }
    // A task table from an earlier recsync (rowid order, some columns missing): copied
    // into the layout by connection, once.
    spdlog::info("state database {}: rebuilding the task log by connection (once: the database was made by an earlier recsync)", db.path());
    for (const char *column : {"sent", "event_kind", "order_kind", "order_value"}) db.add_column_if_missing("tasks", column, "INTEGER NOT NULL DEFAULT 0");
    db.add_column_if_missing("tasks", "seq", "INTEGER");
    db.exec((std::string("CREATE TABLE tasks_by_connection") + kTasksColumns).c_str());
    db.exec(
        "INSERT INTO tasks_by_connection SELECT connection, id, object, record_key, action, payload, attempts, not_before, created_at, last_error, sent,"
        " event_kind, order_kind, order_value, seq FROM tasks ORDER BY connection, id");
    // Ids go on after every id the old table ever gave (AUTOINCREMENT's high-water mark).
    int64_t next = 1;
    {
        auto l = db.lock();
        auto st = db.prepare("SELECT MAX(id) FROM tasks");
        if (st.step() && !st.column_is_null(0)) next = std::max(next, st.column_int(0) + 1);
    }
    if (db.table_exists("sqlite_sequence")) {
        auto l = db.lock();
        auto st = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'tasks'");
        if (st.step()) next = std::max(next, st.column_int(0) + 1);
    }
    db.exec("DROP TABLE tasks");
    db.exec("ALTER TABLE tasks_by_connection RENAME TO tasks");
    {
        auto l = db.lock();
        db.prepare("INSERT INTO meta(key, value) VALUES('next_task_id', ?) ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)").bind(1, next).step();
    }
    db.exec("DELETE FROM task_counts");
    db.exec("INSERT INTO task_counts SELECT connection, COUNT(*) FROM tasks GROUP BY connection");
}

// The sync state per record and link. Keyed by record key first, so its writes follow the
// order of System A's keys however many connections there are (keyed by connection first,
// each result of a round over 10,000 lanes landed on a page of its own: bench/run lanes),
// and one record's state in every CRM sits together.
void create_links(SqliteDb &db) {
    db.exec(
        "CREATE TABLE IF NOT EXISTS links ("
        " record_key TEXT NOT NULL, connection TEXT NOT NULL, object TEXT NOT NULL,"
        " external_id TEXT NOT NULL DEFAULT '', written_hash INTEGER NOT NULL DEFAULT 0, applied_seq INTEGER NOT NULL DEFAULT 0,"
        " order_kind INTEGER NOT NULL DEFAULT 0, order_value INTEGER NOT NULL DEFAULT 0,"
        " deleted INTEGER NOT NULL DEFAULT 0, maybe_exists INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL,"
        " PRIMARY KEY (record_key, connection, object)) WITHOUT ROWID");
    // Earlier recsyncs kept only the id map (in one key order or the other): its ids carry over.
    if (db.table_exists("id_map")) {
        spdlog::info("state database {}: moving the id map into the sync state (once: the database was made by an earlier recsync)", db.path());
        db.exec(
            "INSERT OR IGNORE INTO links(record_key, connection, object, external_id, updated_at)"
            " SELECT record_key, connection, object, external_id, updated_at FROM id_map ORDER BY record_key, connection, object");
        db.exec("DROP TABLE id_map");
    }
}

// Event ids seen within the retention, by a 128-bit hash of (source, id): a repeat is
// acknowledged and ignored. seen_at orders the pruning of expired ids.
void create_event_ids(SqliteDb &db) {
    db.exec("CREATE TABLE IF NOT EXISTS event_ids (id_hash BLOB PRIMARY KEY, seen_at INTEGER NOT NULL) WITHOUT ROWID");
    db.exec("CREATE INDEX IF NOT EXISTS event_ids_by_time ON event_ids(seen_at)");
}

// The order of the last change accepted per record in its source, by kind: the last
// `version` and the last `occurred_at` (ms), each compared with its own kind only.
void create_record_orders(SqliteDb &db) {
    db.exec(
        "CREATE TABLE IF NOT EXISTS record_orders ("
        " record_key TEXT NOT NULL, source TEXT NOT NULL, entity TEXT NOT NULL, version INTEGER, occurred_ms INTEGER,"
        " PRIMARY KEY (record_key, source, entity)) WITHOUT ROWID");
}

void create_dead_letters(SqliteDb &db) {
    db.exec(
        "CREATE TABLE IF NOT EXISTS dead_letters ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT, task_id INTEGER NOT NULL,"
        " connection TEXT NOT NULL, object TEXT NOT NULL, record_key TEXT NOT NULL,"
        " action INTEGER NOT NULL, payload TEXT NOT NULL, attempts INTEGER NOT NULL,"
        " request TEXT, response_status INTEGER, response_body TEXT, reason TEXT NOT NULL,"
        " created_at INTEGER NOT NULL, failed_at INTEGER NOT NULL, sent INTEGER NOT NULL DEFAULT 0,"
        " event_kind INTEGER NOT NULL DEFAULT 0, order_kind INTEGER NOT NULL DEFAULT 0, order_value INTEGER NOT NULL DEFAULT 0,"
        " seq INTEGER)");
    // A dead-lettered create may have been made; its replay must stay in doubt (`sent`).
    db.add_column_if_missing("dead_letters", "sent", "INTEGER NOT NULL DEFAULT 0");
    db.add_column_if_missing("dead_letters", "event_kind", "INTEGER NOT NULL DEFAULT 0");
    db.add_column_if_missing("dead_letters", "order_kind", "INTEGER NOT NULL DEFAULT 0");
    db.add_column_if_missing("dead_letters", "order_value", "INTEGER NOT NULL DEFAULT 0");
    db.add_column_if_missing("dead_letters", "seq", "INTEGER");
}

void create_cursors(SqliteDb &db) {
    db.exec(
        "CREATE TABLE IF NOT EXISTS cursors (connection TEXT NOT NULL, object TEXT NOT NULL, value TEXT NOT NULL, updated_at INTEGER NOT NULL,"
        " PRIMARY KEY (connection, object)) WITHOUT ROWID");
}

}  // namespace

void migrate(SqliteDb &db) {
    const int found = user_version(db);
    if (found > kSchemaVersion)
        throw SqliteError("state database " + db.path() + " was made by a newer recsync (schema " + std::to_string(found) + ", this one knows up to " +
                          std::to_string(kSchemaVersion) + "): run that version, or restore a backup");
    if (found == kSchemaVersion) return;
    db.transaction([&] {
        // Looked at again inside the write transaction: another process may have upgraded it.
        if (user_version(db) == kSchemaVersion) return;
        // Dead letters first: an old task table's ids are continued past theirs too.
        create_dead_letters(db);
        create_tasks(db);
        create_links(db);
        create_event_ids(db);
        create_record_orders(db);
        create_cursors(db);
        db.exec(("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str());
    });
}

}  // namespace recsync::store::sqlite
