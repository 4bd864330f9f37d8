#include "store/sqlite/checkpointer.hpp"

#include <spdlog/spdlog.h>

#include <chrono>

namespace recsync::store::sqlite {

Checkpointer::Checkpointer(SqliteDb &writer) : writer_(writer), db_(writer.path(), "full") {
    db_.set_busy_timeout_ms(kReaderWaitMs);
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
    writer_.on_wal_commit({});  // SQLite's own checkpoints after commits again
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
        SqliteDb::CheckpointResult done;
        try {
            // Most of it without holding anyone up (PASSIVE); then the rest with the
            // writer held back, and the readers waited for, so that the WAL starts over
            // (RESTART). A reader that began before the copy ended pins the frames it
            // reads: with readers always about, as ingest's and the dispatcher's are,
            // passive checkpoints never reach the end of a busy writer's WAL, which grew
            // without end (300 MB in 10 s with 10,000 lanes), every commit extending the
            // file. The wait is short (kReaderWaitMs) and tried again after a pause with the
            // writer let go, so a slow reader never stalls the writer for long.
            done = db_.checkpoint(SqliteDb::Checkpoint::Passive);
            done.complete = false;  // PASSIVE is complete when it has copied what it could
            for (int attempt = 0; attempt < kRestartAttempts && !done.complete; ++attempt) {
                if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
                auto held = writer_.lock();
                done = db_.checkpoint(SqliteDb::Checkpoint::Restart);
            }
        } catch (const std::exception &e) {
            spdlog::warn("state database {}: checkpoint failed: {}", db_.path(), e.what());
        }
        l.lock();
        // The next one once as much again has come (the WAL's next commit starts it over
        // if this one was complete); if a reader held it all back, once as much again has
        // come after what was there.
        copied_upto_ = done.copied > 0 ? done.copied : pages;
    }
}

}  // namespace recsync::store::sqlite
