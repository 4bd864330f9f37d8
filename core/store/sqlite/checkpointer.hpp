// WAL checkpoints on a thread of their own. SQLite checkpoints after a commit once the WAL
// passes 1,000 pages, on the committing thread: the dispatcher's results commits then paid
// for copying ingest's pages into the database file and for its fsync (a tenth of the
// dispatcher's time with 10,000 lanes: bench/run lanes). Here the writer's commits only
// say how large the WAL is; past the threshold this thread copies it, with a connection of
// its own, without waiting for readers or writers (PASSIVE), so the writers never wait
// for it either.
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
    // Takes over `writer`'s checkpoints (its commits no longer run one). `writer` must
    // outlive this.
    explicit Checkpointer(SqliteDb &writer);
    // One last checkpoint, then the thread ends.
    ~Checkpointer();
    Checkpointer(const Checkpointer &) = delete;
    Checkpointer &operator=(const Checkpointer &) = delete;

private:
    void loop();

    SqliteDb &writer_;
    SqliteDb db_;  // its own connection: a checkpoint never holds the writer's lock
    std::mutex mutex_;
    std::condition_variable due_;
    int wal_pages_ = 0;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace recsync::store::sqlite
