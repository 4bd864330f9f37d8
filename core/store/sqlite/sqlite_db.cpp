#include "store/sqlite/sqlite_db.hpp"

#include <sqlite3.h>

namespace recsync::store::sqlite {

namespace {
[[noreturn]] void raise(sqlite3 *db, const std::string &what) {
    throw SqliteError(what + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
}
}  // namespace

Statement::~Statement() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
}

Statement &Statement::bind(int i, int64_t v) {
    if (sqlite3_bind_int64(stmt_, i, v) != SQLITE_OK) raise(db_, "bind");
    return *this;
}

Statement &Statement::bind(int i, std::string_view v) {
    if (sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT) != SQLITE_OK) raise(db_, "bind");
    return *this;
}

Statement &Statement::bind_blob(int i, const void *data, size_t size) {
    if (sqlite3_bind_blob(stmt_, i, data, static_cast<int>(size), SQLITE_TRANSIENT) != SQLITE_OK) raise(db_, "bind");
    return *this;
}

Statement &Statement::bind_null(int i) {
    if (sqlite3_bind_null(stmt_, i) != SQLITE_OK) raise(db_, "bind");
    return *this;
}

bool Statement::step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    raise(db_, std::string("step: ") + sqlite3_sql(stmt_));
}

int64_t Statement::column_int(int c) const { return sqlite3_column_int64(stmt_, c); }

std::string Statement::column_text(int c) const {
    const auto *p = reinterpret_cast<const char *>(sqlite3_column_text(stmt_, c));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, c))) : std::string();
}

bool Statement::column_is_null(int c) const { return sqlite3_column_type(stmt_, c) == SQLITE_NULL; }

SqliteDb::SqliteDb(const std::string &path, const std::string &synchronous) : path_(path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
        const std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
        sqlite3_close(db_);
        db_ = nullptr;
        throw SqliteError("cannot open state database " + path + ": " + msg);
    }
    sqlite3_busy_timeout(db_, 5000);
    exec("PRAGMA journal_mode=WAL");
    synchronous_full_ = synchronous != "normal";
    exec(synchronous_full_ ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    exec("PRAGMA foreign_keys=ON");
}

SqliteDb::SqliteDb(const std::string &path, ReadOnly) : path_(path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
        const std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
        sqlite3_close(db_);
        db_ = nullptr;
        throw SqliteError("cannot open state database " + path + " for reading: " + msg);
    }
    sqlite3_busy_timeout(db_, 5000);
}

SqliteDb::~SqliteDb() {
    for (auto &[sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close(db_);
}

void SqliteDb::exec(const char *sql) {
    auto l = lock();
    char *err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : "unknown error";
        sqlite3_free(err);
        throw SqliteError(std::string(sql).substr(0, 60) + ": " + msg);
    }
}

void SqliteDb::add_column_if_missing(const std::string &table, const std::string &column, const std::string &definition) {
    auto l = lock();
    // Not cached: the text is built at run time, and this runs once per open.
    sqlite3_stmt *stmt = nullptr;
    const std::string info = "PRAGMA table_info(" + table + ")";
    if (sqlite3_prepare_v2(db_, info.c_str(), -1, &stmt, nullptr) != SQLITE_OK) raise(db_, info);
    bool found = false;
    while (sqlite3_step(stmt) == SQLITE_ROW)
        if (const auto *name = sqlite3_column_text(stmt, 1); name && column == reinterpret_cast<const char *>(name)) found = true;
    sqlite3_finalize(stmt);
    if (!found) exec(("ALTER TABLE " + table + " ADD COLUMN " + column + " " + definition).c_str());
}

Statement SqliteDb::prepare(const char *sql) {
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
        sqlite3_stmt *stmt = nullptr;
        if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) raise(db_, std::string("prepare: ") + sql);
        it = cache_.emplace(sql, stmt).first;
    }
    return Statement(db_, it->second);
}

int64_t SqliteDb::last_insert_id() const { return sqlite3_last_insert_rowid(db_); }
int SqliteDb::changes() const { return sqlite3_changes(db_); }

void SqliteDb::on_wal_commit(std::function<void(int pages)> fn) {
    auto l = lock();
    on_wal_commit_ = std::move(fn);
    if (!on_wal_commit_) {
        sqlite3_wal_autocheckpoint(db_, 1000);  // SQLite's own hook and threshold again
        return;
    }
    sqlite3_wal_hook(
        db_,
        [](void *self, sqlite3 *, const char *, int pages) {
            if (const auto &f = static_cast<SqliteDb *>(self)->on_wal_commit_) f(pages);
            return SQLITE_OK;
        },
        this);
}

SqliteDb::CheckpointResult SqliteDb::checkpoint(Checkpoint mode) {
    auto l = lock();
    CheckpointResult r;
    const int rc = sqlite3_wal_checkpoint_v2(db_, nullptr, mode == Checkpoint::Passive ? SQLITE_CHECKPOINT_PASSIVE : SQLITE_CHECKPOINT_RESTART, &r.wal_pages, &r.copied);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) raise(db_, "checkpoint");
    r.complete = rc == SQLITE_OK;
    return r;
}

void SqliteDb::set_cache_mib(int mib) {
    if (mib <= 0) return;
    const std::string pragma = "PRAGMA cache_size=-" + std::to_string(int64_t{mib} * 1024);  // negative: KiB
    exec(pragma.c_str());
}

void SqliteDb::read_transaction(const std::function<void()> &fn) {
    auto l = lock();
    exec("BEGIN");
    try {
        fn();
    } catch (...) {
        exec("ROLLBACK");
        throw;
    }
    exec("COMMIT");
}

void SqliteDb::set_busy_timeout_ms(int ms) {
    auto l = lock();
    sqlite3_busy_timeout(db_, ms);
}

bool SqliteDb::table_exists(const char *name) {
    auto l = lock();
    auto st = prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
    st.bind(1, std::string_view(name));
    return st.step();
}

bool SqliteDb::try_transaction(const std::function<void()> &fn, Durability durability) {
    std::unique_lock l(mutex_, std::try_to_lock);
    if (!l.owns_lock()) return false;
    transaction(fn, durability);
    return true;
}

void SqliteDb::transaction(const std::function<void()> &fn, Durability durability) {
    auto l = lock();
    if (depth_ == 0 && durability == Durability::CrashSafe && synchronous_full_) {
        exec("PRAGMA synchronous=NORMAL");
        struct Restore {
            SqliteDb &db;
            ~Restore() {
                char *err = nullptr;
                sqlite3_exec(db.db_, "PRAGMA synchronous=FULL", nullptr, nullptr, &err);
                sqlite3_free(err);
            }
        } restore{*this};
        transaction(fn, Durability::Configured);
        return;
    }
    if (depth_ > 0) {
        ++depth_;
        try {
            fn();
        } catch (...) {
            --depth_;
            throw;
        }
        --depth_;
        return;
    }
    exec("BEGIN IMMEDIATE");
    depth_ = 1;
    try {
        fn();
        depth_ = 0;
        exec("COMMIT");
    } catch (...) {
        depth_ = 0;
        char *err = nullptr;
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, &err);
        sqlite3_free(err);
        throw;
    }
}

}  // namespace recsync::store::sqlite
