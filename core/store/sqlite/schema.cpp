#include "store/sqlite/schema.hpp"

#include <spdlog/spdlog.h>

#include <string>

namespace recsync::store::sqlite {

namespace {

int user_version(SqliteDb &db) {
    auto l = db.lock();
    auto st = db.prepare("PRAGMA user_version");
    return st.step() ? static_cast<int>(st.column_int(0)) : 0;
}

// The task log: one row per task until it is done or dead-lettered. Rowids are the
// acceptance order (AUTOINCREMENT: never reused), and a lane reads its backlog a window at
// a time in that order through tasks_by_connection, which also counts the backlog per
// connection at a start without reading the rows.
void create_tasks(SqliteDb &db) {
    db.exec(
        "CREATE TABLE IF NOT EXISTS tasks ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " connection TEXT NOT NULL, object TEXT NOT NULL, record_key TEXT NOT NULL,"
        " action INTEGER NOT NULL, payload TEXT NOT NULL,"
        " attempts INTEGER NOT NULL DEFAULT 0, not_before INTEGER NOT NULL DEFAULT 0,"
        " created_at INTEGER NOT NULL, last_error TEXT, sent INTEGER NOT NULL DEFAULT 0,"
        " event_kind INTEGER NOT NULL DEFAULT 0, order_kind INTEGER NOT NULL DEFAULT 0, order_value INTEGER NOT NULL DEFAULT 0,"
        " seq INTEGER, conflict INTEGER NOT NULL DEFAULT 0)");
    // Databases from before these columns.
    db.add_column_if_missing("tasks", "sent", "INTEGER NOT NULL DEFAULT 0");
    db.add_column_if_missing("tasks", "event_kind", "INTEGER NOT NULL DEFAULT 0");
    db.add_column_if_missing("tasks", "order_kind", "INTEGER NOT NULL DEFAULT 0");
    db.add_column_if_missing("tasks", "order_value", "INTEGER NOT NULL DEFAULT 0");
    db.add_column_if_missing("tasks", "seq", "INTEGER");
    db.add_column_if_missing("tasks", "conflict", "INTEGER NOT NULL DEFAULT 0");
    db.exec("CREATE INDEX IF NOT EXISTS tasks_by_connection ON tasks(connection, id)");
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
        " written_modified TEXT NOT NULL DEFAULT '',"
        " incoming_seq INTEGER NOT NULL DEFAULT 0, incoming_ms INTEGER NOT NULL DEFAULT 0, incoming_from TEXT NOT NULL DEFAULT '',"
        " PRIMARY KEY (record_key, connection, object)) WITHOUT ROWID");
    db.add_column_if_missing("links", "written_modified", "TEXT NOT NULL DEFAULT ''");
    // Conflicts: the last task of a two-way pair toward this link (its id, its change's
    // time and source), written by the task log's commit only (the delivery log leaves
    // them be).
    db.add_column_if_missing("links", "incoming_seq", "INTEGER NOT NULL DEFAULT 0");
    db.add_column_if_missing("links", "incoming_ms", "INTEGER NOT NULL DEFAULT 0");
    db.add_column_if_missing("links", "incoming_from", "TEXT NOT NULL DEFAULT ''");
    // Earlier recsyncs kept only the id map (in one key order or the other): its ids carry over.
    if (db.table_exists("id_map")) {
        spdlog::info("state database {}: moving the id map into the sync state (once: the database was made by an earlier recsync)", db.path());
        db.exec(
            "INSERT OR IGNORE INTO links(record_key, connection, object, external_id, updated_at)"
            " SELECT record_key, connection, object, external_id, updated_at FROM id_map ORDER BY record_key, connection, object");
        db.exec("DROP TABLE id_map");
    }
}

// A record's key by its id at a connection: what a change coming from there is about.
// Written when a link learns an id (rarely: creates, finds) and when a record first comes
// from a connection; an index on links(external_id) would be rewritten with every result.
void create_external_ids(SqliteDb &db) {
    const bool existed = db.table_exists("external_ids");
    db.exec(
        "CREATE TABLE IF NOT EXISTS external_ids (connection TEXT NOT NULL, object TEXT NOT NULL, external_id TEXT NOT NULL, record_key TEXT NOT NULL,"
        " PRIMARY KEY (connection, object, external_id)) WITHOUT ROWID");
    if (!existed)
        db.exec(
            "INSERT OR IGNORE INTO external_ids(connection, object, external_id, record_key)"
            " SELECT connection, object, external_id, record_key FROM links WHERE external_id != '' ORDER BY connection, object, external_id");
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

// Conflicts: per record and side ("internal", or a connection), the last change accepted
// from that side under a conflict policy: when (the task log's id sequence) and its time
// there. The dispatcher reads it before a two-way task's call.
void create_record_changes(SqliteDb &db) {
    db.exec(
        "CREATE TABLE IF NOT EXISTS record_changes ("
        " record_key TEXT NOT NULL, side TEXT NOT NULL, changed_seq INTEGER NOT NULL, changed_ms INTEGER NOT NULL,"
        " PRIMARY KEY (record_key, side)) WITHOUT ROWID");
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
        " seq INTEGER, conflict INTEGER NOT NULL DEFAULT 0)");
    // A dead-lettered create may have been made; its replay must stay in doubt (`sent`).
    db.add_column_if_missing("dead_letters", "sent", "INTEGER NOT NULL DEFAULT 0");
    db.add_column_if_missing("dead_letters", "event_kind", "INTEGER NOT NULL DEFAULT 0");
    db.add_column_if_missing("dead_letters", "order_kind", "INTEGER NOT NULL DEFAULT 0");
    db.add_column_if_missing("dead_letters", "order_value", "INTEGER NOT NULL DEFAULT 0");
    db.add_column_if_missing("dead_letters", "seq", "INTEGER");
    db.add_column_if_missing("dead_letters", "conflict", "INTEGER NOT NULL DEFAULT 0");
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
        create_tasks(db);
        create_links(db);
        create_external_ids(db);
        create_event_ids(db);
        create_record_orders(db);
        create_record_changes(db);
        create_dead_letters(db);
        create_cursors(db);
        db.exec(("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str());
    });
}

}  // namespace recsync::store::sqlite
