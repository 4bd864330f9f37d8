#include "store/state_store.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <string>

namespace recsync::store {

namespace {

// The id map is ordered by record key first, so its writes follow the order of System A's
// keys however many connections there are: keyed by connection first, each result of a
// round over 10,000 lanes landed on a page of its own and every commit rewrote hundreds
// of them (bench/run lanes). One record's ids in every CRM also sit together.
const char *const kIdMapTable =
    " (connection TEXT NOT NULL, object TEXT NOT NULL, record_key TEXT NOT NULL,"
    " external_id TEXT NOT NULL, updated_at INTEGER NOT NULL,"
    " PRIMARY KEY (record_key, connection, object)) WITHOUT ROWID";

bool keyed_by_connection_first(SqliteDb &db) {
    auto l = db.lock();
    auto st = db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'id_map'");
    return st.step() && st.column_text(0).find("PRIMARY KEY (connection, object, record_key)") != std::string::npos;
}

// A database from before that order: its id map is copied into the new one, once. Looked
// at again inside the write transaction, in case another process (a `recsync dlq` command
// next to the engine) got there first.
void migrate_id_map(SqliteDb &db) {
    if (!keyed_by_connection_first(db)) return;
    db.transaction([&] {
        if (!keyed_by_connection_first(db)) return;
        spdlog::info("state database {}: rebuilding the id map in record-key order (once: the database was made by an earlier recsync)", db.path());
        db.exec((std::string("CREATE TABLE id_map_by_record") + kIdMapTable).c_str());
        // In the new key order: appends to the new tree rather than inserts all over it.
        db.exec("INSERT INTO id_map_by_record SELECT connection, object, record_key, external_id, updated_at FROM id_map ORDER BY record_key, connection, object");
        db.exec("DROP TABLE id_map");
        db.exec("ALTER TABLE id_map_by_record RENAME TO id_map");
    });
}

}  // namespace

StateStore::StateStore(SqliteDb &db) : db_(db) {
    migrate_id_map(db_);
    db_.exec((std::string("CREATE TABLE IF NOT EXISTS id_map") + kIdMapTable).c_str());
    db_.exec(
        "CREATE TABLE IF NOT EXISTS dead_letters ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT, task_id INTEGER NOT NULL,"
        " connection TEXT NOT NULL, object TEXT NOT NULL, record_key TEXT NOT NULL,"
        " action INTEGER NOT NULL, payload TEXT NOT NULL, attempts INTEGER NOT NULL,"
        " request TEXT, response_status INTEGER, response_body TEXT, reason TEXT NOT NULL,"
        " created_at INTEGER NOT NULL, failed_at INTEGER NOT NULL, sent INTEGER NOT NULL DEFAULT 0)");
    // A dead-lettered create may have been made; its replay must stay in doubt (Task::sent).
    db_.add_column_if_missing("dead_letters", "sent", "INTEGER NOT NULL DEFAULT 0");  // a database from before the column
}

std::optional<std::string> StateStore::external_id(const std::string &connection, const std::string &object, const std::string &record_key) {
    auto l = db_.lock();
    auto st = db_.prepare("SELECT external_id FROM id_map WHERE connection = ? AND object = ? AND record_key = ?");
    st.bind(1, connection).bind(2, object).bind(3, record_key);
    if (!st.step()) return std::nullopt;
    return st.column_text(0);
}

void StateStore::put_external_id(const std::string &connection, const std::string &object, const std::string &record_key, const std::string &external_id) {
    auto l = db_.lock();
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    auto st = db_.prepare(
        "INSERT INTO id_map(connection, object, record_key, external_id, updated_at) VALUES(?,?,?,?,?)"
        " ON CONFLICT(connection, object, record_key) DO UPDATE SET external_id = excluded.external_id, updated_at = excluded.updated_at");
    st.bind(1, connection).bind(2, object).bind(3, record_key).bind(4, external_id).bind(5, now).step();
}

void StateStore::erase_external_id(const std::string &connection, const std::string &object, const std::string &record_key) {
    auto l = db_.lock();
    db_.prepare("DELETE FROM id_map WHERE connection = ? AND object = ? AND record_key = ?").bind(1, connection).bind(2, object).bind(3, record_key).step();
}

void StateStore::add_dead_letter(const DeadLetter &d) {
    auto l = db_.lock();
    auto st = db_.prepare(
        "INSERT INTO dead_letters(task_id, connection, object, record_key, action, payload, attempts, request, response_status, response_body, reason, created_at, failed_at, sent)"
        " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    st.bind(1, d.task.id).bind(2, d.task.connection).bind(3, d.task.object).bind(4, d.task.record_key).bind(5, static_cast<int64_t>(d.task.action));
    st.bind(6, d.task.payload).bind(7, static_cast<int64_t>(d.task.attempts)).bind(8, d.request).bind(9, static_cast<int64_t>(d.response_status));
    st.bind(10, d.response_body).bind(11, d.reason).bind(12, d.task.created_ms).bind(13, d.failed_ms).bind(14, int64_t{d.task.sent});
    st.step();
}

std::vector<DeadLetter> StateStore::dead_letters(int64_t limit, int64_t after_id) {
    auto l = db_.lock();
    std::vector<DeadLetter> out;
    auto st = db_.prepare(
        "SELECT id, task_id, connection, object, record_key, action, payload, attempts, request, response_status, response_body, reason, created_at, failed_at, sent"
        " FROM dead_letters WHERE id > ? ORDER BY id LIMIT ?");
    st.bind(1, after_id).bind(2, limit);
    while (st.step()) {
        DeadLetter d;
        d.id = st.column_int(0);
        d.task.id = st.column_int(1);
        d.task.connection = st.column_text(2);
        d.task.object = st.column_text(3);
        d.task.record_key = st.column_text(4);
        d.task.action = static_cast<recsync_action>(st.column_int(5));
        d.task.payload = st.column_text(6);
        d.task.attempts = static_cast<int>(st.column_int(7));
        d.request = st.column_text(8);
        d.response_status = static_cast<int>(st.column_int(9));
        d.response_body = st.column_text(10);
        d.reason = st.column_text(11);
        d.task.created_ms = st.column_int(12);
        d.failed_ms = st.column_int(13);
        d.task.sent = st.column_int(14) != 0;
        out.push_back(std::move(d));
    }
    return out;
}

std::optional<DeadLetter> StateStore::dead_letter(int64_t id) {
    auto letters = dead_letters(1, id - 1);
    if (letters.empty() || letters.front().id != id) return std::nullopt;
    return std::move(letters.front());
}

bool StateStore::drop_dead_letter(int64_t id) {
    auto l = db_.lock();
    db_.prepare("DELETE FROM dead_letters WHERE id = ?").bind(1, id).step();
    return db_.changes() > 0;
}

int64_t StateStore::dead_letter_count() {
    auto l = db_.lock();
    auto st = db_.prepare("SELECT COUNT(*) FROM dead_letters");
    st.step();
    return st.column_int(0);
}

}  // namespace recsync::store
