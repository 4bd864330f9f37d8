#include "store/sqlite/checkpointer.hpp"

#include <spdlog/spdlog.h>

namespace recsync::store::sqlite {

Checkpointer::Checkpointer(SqliteDb &writer) : writer_(writer), db_(writer.path(), "full") {
    writer_.on_wal_commit([this](int pages) {
        bool now_due;
        {
            std::lock_guard l(mutex_);
            wal_pages_ = pages;
            if (pages < copied_upto_) copied_upto_ = 0;  // the WAL was reset: it starts over
            now_due = due();
        }
        if (now_due) due_.notify_one();
    });
    thread_ = std::thread([this] { loop(); });
}

Checkpointer::~Checkpointer() {
    writer_.on_wal_commit({});  // back to nothing: SQLite checkpoints when the last connection closes
    {
        std::lock_guard l(mutex_);
        stopping_ = true;
    }
    due_.notify_one();
    thread_.join();
}

void Checkpointer::loop() {
    std::unique_lock l(mutex_);
    for (;;) {
        due_.wait(l, [&] { return stopping_ || due(); });
        if (stopping_) return;
        const int pages = wal_pages_;
        l.unlock();
        int copied = 0;
        try {
            // Most of it without holding anyone up; then the rest, with the writer held
            // back for that short while, so that the WAL starts over: with readers about,
            // passive checkpoints alone never catch up with a busy writer, and the WAL
            // grew without end (300 MB in 10 s with 10,000 lanes), every commit extending
            // the file.
            db_.checkpoint(SqliteDb::Checkpoint::Passive);
            copied = db_.checkpoint(SqliteDb::Checkpoint::Restart);
        } catch (const std::exception &e) {
            spdlog::warn("state database {}: checkpoint failed: {}", db_.path(), e.what());
        }
        l.lock();
        // The next one once as much again has come; if a reader held all of it back, once
        // as much again has come after what was there.
        copied_upto_ = copied > 0 ? copied : pages;
    }
}

}  // namespace recsync::store::sqlite
