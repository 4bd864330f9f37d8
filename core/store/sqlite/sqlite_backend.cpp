#include "store/sqlite/sqlite_backend.hpp"

#include "store/sqlite/checkpointer.hpp"
#include "store/sqlite/schema.hpp"
#include "store/sqlite/sqlite_dead_letters.hpp"
#include "store/sqlite/sqlite_delivery_log.hpp"
#include "store/sqlite/sqlite_sync_state.hpp"
#include "store/sqlite/sqlite_task_log.hpp"

#include <filesystem>

namespace recsync::store::sqlite {

namespace {

class SqliteCursors final : public CursorStore {
public:
    explicit SqliteCursors(SqliteDb &reader) : reader_(reader) {}
    std::optional<std::string> get(const std::string &connection, const std::string &object) override {
        auto l = reader_.lock();
        auto st = reader_.prepare("SELECT value FROM cursors WHERE connection = ? AND object = ?");
        st.bind(1, connection).bind(2, object);
        if (!st.step()) return std::nullopt;
        return st.column_text(0);
    }

private:
    SqliteDb &reader_;
};

// Members in the order they must be built (the connections first) and destroyed (the task
// log's commit thread last of the parts, before the connections close).
class SqliteBackend final : public StateBackend {
public:
    explicit SqliteBackend(const config::StateConfig &c)
        : writer_(prepare_file(c.path), c.synchronous),
          checkpointer_(writer_),
          reader_(migrated(writer_), SqliteDb::ReadOnly{}),
          intake_reader_(writer_.path(), SqliteDb::ReadOnly{}),
          tasks_(writer_, reader_, intake_reader_, {std::chrono::microseconds(c.commit_window_us), c.event_id_retention_ms}),
          deliveries_(writer_),
          sync_state_(reader_),
          dead_letters_(writer_),
          cursors_(reader_) {
        writer_.set_cache_mib(c.cache_mib);
        reader_.set_cache_mib(c.cache_mib);  // ingest's look-ups touch few pages: its default will do
    }

    TaskLog &tasks() override { return tasks_; }
    DeliveryLog &deliveries() override { return deliveries_; }
    SyncState &sync_state() override { return sync_state_; }
    DeadLetterStore &dead_letters() override { return dead_letters_; }
    CursorStore &cursors() override { return cursors_; }
    std::string description() const override { return "sqlite " + writer_.path(); }

private:
    static const std::string &prepare_file(const std::string &path) {
        const auto dir = std::filesystem::path(path).parent_path();
        if (!dir.empty()) std::filesystem::create_directories(dir);
        return path;
    }
    static const std::string &migrated(SqliteDb &db) {
        migrate(db);
        return db.path();
    }

    SqliteDb writer_;
    Checkpointer checkpointer_;
    SqliteDb reader_;         // the dispatcher's reads (windows, sync state), the admin's
    SqliteDb intake_reader_;  // ingest's look-ups of ids and orders (TaskLog::known)
    SqliteTaskLog tasks_;
    SqliteDeliveryLog deliveries_;
    SqliteSyncState sync_state_;
    SqliteDeadLetters dead_letters_;
    SqliteCursors cursors_;
};

}  // namespace

std::unique_ptr<StateBackend> open_backend(const config::StateConfig &config) { return std::make_unique<SqliteBackend>(config); }

}  // namespace recsync::store::sqlite
