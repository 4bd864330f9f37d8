// The task log in SQLite (table `tasks`, with `event_ids` and `record_orders` for the
// event model). Appends are group commits on one thread; reads use the backend's
// read-only connection, so a lane refilling its window never waits for an fsync.
#pragma once

#include "store/sqlite/sqlite_db.hpp"
#include "store/task_log.hpp"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace recsync::store::sqlite {

class SqliteTaskLog final : public TaskLog {
public:
    struct Options {
        // How long the first append of a group may wait for others to join its commit
        // (state.commit_window_us). A commit window (a millisecond, say) gathers requests
        // that arrive one by one into fewer commits: at 3,500 single-event requests/s on
        // two cores, 1 ms halved the engine's CPU (one fsync and a round of thread wakeups
        // per group, not per request) for 0.7 ms more until the 2xx (bench/README.md).
        std::chrono::microseconds commit_window{0};
        int64_t event_id_retention_ms = 7LL * 86'400'000;  // state.event_id_retention
    };
    // `intake_reader`: a read-only connection of its own for known(), which ingest's I/O
    // threads call, so that they never wait for the dispatcher's reads on `reader`.
    SqliteTaskLog(SqliteDb &writer, SqliteDb &reader, SqliteDb &intake_reader, Options options);
    // Commits what was appended before it returns.
    ~SqliteTaskLog() override;

    void append(AppendBatch batch, Done done) override;
    void flush() override;
    std::vector<Known> known(const std::vector<PlannedChange> &changes) override;
    std::vector<model::Task> read(const std::string &connection, int64_t after_id, size_t limit) override;
    std::map<std::string, int64_t> count_by_connection() override;
    int64_t count() override;
    int64_t last_id() override;

private:
    struct Pending {
        AppendBatch batch;
        Done done;
        Appended result;
    };
    void commit_loop();
    // Writes a group in the caller's transaction.
    void write(std::vector<Pending> &group, int64_t now_ms);
    bool first_sighting(const std::string &source, const std::string &event_id, int64_t now_ms);
    bool in_order(const PlannedChange &c);
    // A change from a connection: keys its tasks by the record it is linked to; false if
    // it is the echo of recsync's own write there.
    bool link_inbound(PlannedChange &c, int64_t now_ms, std::vector<model::LinkKey> &changed);
    // A change from System A: false if it repeats what recsync last wrote there (an echo).
    bool system_a_change(const PlannedChange &c, std::vector<model::LinkKey> &changed);
    // A delete from System A: its links at the System A connections become tombstones.
    void tombstone_system_a(const PlannedChange &c, std::vector<model::LinkKey> &changed);
    // Conflicts (config::ConflictPolicy), for changes of a two-way pair. A connection's
    // change: false if it loses to System A's change on its way there (not written yet);
    // else it is recorded as that side's latest (record_changes). A System A change: drops
    // its tasks that lose to a connection's change on its way to System A, returns how
    // many, and records the change as System A's latest.
    bool inbound_stands(const PlannedChange &c, int64_t now_ms, std::vector<model::LinkKey> &changed);
    size_t resolve_internal(PlannedChange &c, int64_t now_ms);
    // The newest change time of a two-way task toward the link(s) (any object if null)
    // that has not finished; none if there is none.
    // `from`: only a change from that source (null: any).
    std::optional<int64_t> pending_incoming(const std::string &key, const std::string &connection, const std::string *object, const std::string *from);
    void record_side_change(const std::string &key, const std::string &side, int64_t at_ms);
    // A two-way task toward its link, just inserted: what inbound_stands looks for.
    void note_incoming(const model::Task &t, const std::string &source);
    int64_t last_task_id();
    void insert(model::Task &t, int64_t now_ms);

    SqliteDb &db_;
    SqliteDb &reader_;
    SqliteDb &intake_reader_;
    const Options options_;

    std::mutex group_mutex_;
    std::condition_variable group_ready_;
    std::condition_variable group_done_;
    std::vector<Pending> group_;                         // for the next commit
    std::chrono::steady_clock::time_point group_since_;  // when its first append came
    uint64_t appended_ = 0;                              // appends so far, and how many are done
    uint64_t finished_ = 0;
    bool stopping_ = false;
    std::thread committer_;
};

}  // namespace recsync::store::sqlite
