// A thin RAII layer over one SQLite connection: WAL, cached prepared statements, and
// transactions that nest (the outermost one commits). Thread-safe: one recursive mutex
// serialises users, which is what SQLite would do to writers anyway. Only store/sqlite/
// uses it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace recsync::store::sqlite {

class SqliteError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A cached prepared statement, reset on destruction so it can be reused.
class Statement {
public:
    Statement(sqlite3 *db, sqlite3_stmt *stmt) : db_(db), stmt_(stmt) {}
    ~Statement();
    Statement(const Statement &) = delete;
    Statement &operator=(const Statement &) = delete;

    Statement &bind(int index, int64_t value);
    Statement &bind(int index, std::string_view value);
    Statement &bind_blob(int index, const void *data, size_t size);
    Statement &bind_null(int index);
    // Returns true while a row is available.
    bool step();
    int64_t column_int(int col) const;
    std::string column_text(int col) const;
    bool column_is_null(int col) const;

private:
    sqlite3 *db_;
    sqlite3_stmt *stmt_;
};

class SqliteDb {
public:
    // Opens (creating) `path` in WAL mode; `synchronous` is "full" or "normal".
    SqliteDb(const std::string &path, const std::string &synchronous);
    // A second connection to a database open for writing elsewhere, for reads only: in WAL
    // mode a reader never waits for the writer, whose commits hold its connection through
    // their fsync.
    struct ReadOnly {};
    SqliteDb(const std::string &path, ReadOnly);
    ~SqliteDb();
    SqliteDb(const SqliteDb &) = delete;
    SqliteDb &operator=(const SqliteDb &) = delete;

    void exec(const char *sql);
    // Schema upgrade of a database made by an older recsync: adds `column` (with its SQL
    // `definition`, e.g. "INTEGER NOT NULL DEFAULT 0") to `table` unless it is there.
    void add_column_if_missing(const std::string &table, const std::string &column, const std::string &definition);
    // A prepared statement for `sql` (a string literal: cached by address). Callers must
    // hold the lock (be inside transaction() or hold lock()).
    Statement prepare(const char *sql);
    int64_t last_insert_id() const;
    int changes() const;
    bool table_exists(const char *name);
    // Calls `fn(pages)` after each commit that went to the WAL, with the WAL's size in
    // pages, on the committing thread and inside its lock: keep it short. Replaces
    // SQLite's own checkpoint after commits (see Checkpointer); an empty `fn` gives it back.
    void on_wal_commit(std::function<void(int pages)> fn);
    // A checkpoint. Passive: copies what it can of the WAL into the database without
    // waiting for readers or writers. Restart: copies all of it, waiting (up to the busy
    // timeout) for the writer's transaction to end and holding new ones back until it is
    // done and every reader has left the WAL, so that the next commit writes the WAL from
    // its start again instead of growing it.
    enum class Checkpoint { Passive, Restart };
    struct CheckpointResult {
        bool complete = false;  // false: a reader or writer was in the way (SQLITE_BUSY)
        int wal_pages = 0;
        int copied = 0;  // of them, now in the database file
    };
    CheckpointResult checkpoint(Checkpoint mode);
    // This connection's page cache; 0 leaves SQLite's default (2 MiB).
    void set_cache_mib(int mib);
    // How long this connection waits for a lock before SQLITE_BUSY (5 s unless set).
    void set_busy_timeout_ms(int ms);

    // How a transaction's COMMIT must survive. Configured: as `state.synchronous` says
    // (FULL by default: power loss too; accepted events use this). CrashSafe: a process
    // crash, not necessarily a power loss (WAL, synchronous=NORMAL: no fsync per commit;
    // the next FULL commit or checkpoint syncs it). For records whose loss only means
    // work is done again, e.g. delivery results: a lost "done" re-sends the call.
    enum class Durability { Configured, CrashSafe };
    // Runs `fn` inside BEGIN IMMEDIATE..COMMIT (ROLLBACK on exception). Nested calls join
    // the outer transaction (and its durability).
    void transaction(const std::function<void()> &fn, Durability durability = Durability::Configured);
    // The same, but only if no other thread holds the database now: false (and `fn` not
    // run) if one does. For a thread that has other work than waiting for a commit.
    bool try_transaction(const std::function<void()> &fn, Durability durability = Durability::Configured);
    // Runs `fn`, holding the lock, inside one read transaction (BEGIN..COMMIT; ROLLBACK on
    // exception): one snapshot for all its statements, where each statement on its own
    // takes and drops the WAL's read lock (fcntl calls) and finds its snapshot again.
    void read_transaction(const std::function<void()> &fn);
    std::unique_lock<std::recursive_mutex> lock() { return std::unique_lock(mutex_); }
    const std::string &path() const { return path_; }

private:
    sqlite3 *db_ = nullptr;
    std::string path_;
    std::recursive_mutex mutex_;
    bool synchronous_full_ = true;
    int depth_ = 0;
    std::map<const char *, sqlite3_stmt *> cache_;
    std::function<void(int)> on_wal_commit_;
};

}  // namespace recsync::store::sqlite
