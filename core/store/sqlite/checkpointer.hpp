// WAL checkpoints on a thread of their own. SQLite checkpoints after a commit once the WAL
// passes 1,000 pages, on the committing thread: the dispatcher's results commits then paid
// for copying ingest's pages into the database file and for its fsync (a tenth of the
// dispatcher's time with 10,000 lanes: bench/run lanes). Here the writer's commits only
// say how large the WAL is; once it has grown by the threshold since the last checkpoint
// (not merely: is larger than it, which a WAL that a reader keeps from being reset always
// is, and which made a checkpoint and its fsync after every commit), this thread copies
// it, with a connection of its own: first without waiting for anyone (PASSIVE), then the
// rest with the writer held back for that short while and the readers waited for (RESTART,
// a few tries of kReaderWaitMs), so that the WAL starts over from its beginning instead
// of growing (the writer waits for a remainder, not for the whole copy and its fsync as
// in SQLite's own checkpoints).
#pragma once

#include "store/sqlite/sqlite_db.hpp"

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace recsync::store::sqlite {

class Checkpointer {
public:
    static constexpr int kThresholdPages = 1000;  // SQLite's own default
    static constexpr int kReaderWaitMs = 10;       // the writer held back at most this long ...
    static constexpr int kRestartAttempts = 5;     // ... this many times per checkpoint
    // Takes over `writer`'s checkpoints (its commits no longer run one). `writer` must
    // outlive this.
    explicit Checkpointer(SqliteDb &writer);
    // Gives the writer its own checkpoints back and ends the thread (SQLite checkpoints
    // when the last connection closes).
    ~Checkpointer();
    Checkpointer(const Checkpointer &) = delete;
    Checkpointer &operator=(const Checkpointer &) = delete;

private:
    void loop();

    SqliteDb &writer_;
    SqliteDb db_;  // its own connection: a checkpoint never holds the writer's lock
    std::mutex mutex_;
    std::condition_variable due_;
    int wal_pages_ = 0;    // the WAL's size at the last commit
    int copied_upto_ = 0;  // ... and what the last checkpoint copied of it
    bool due() const { return wal_pages_ < copied_upto_ ? wal_pages_ >= kThresholdPages : wal_pages_ - copied_upto_ >= kThresholdPages; }
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace recsync::store::sqlite
