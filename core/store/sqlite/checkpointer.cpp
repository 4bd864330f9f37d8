#include "store/sqlite/checkpointer.hpp"

#include <spdlog/spdlog.h>

namespace recsync::store::sqlite {

Checkpointer::Checkpointer(SqliteDb &writer) : writer_(writer), db_(writer.path(), "full") {
    writer_.on_wal_commit([this](int pages) {
        if (pages < kThresholdPages) return;
        {
            std::lock_guard l(mutex_);
            wal_pages_ = pages;
        }
        due_.notify_one();
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
        due_.wait(l, [&] { return stopping_ || wal_pages_ >= kThresholdPages; });
        if (stopping_) return;
        wal_pages_ = 0;
        l.unlock();
        try {
            db_.checkpoint();
        } catch (const std::exception &e) {
            spdlog::warn("state database {}: checkpoint failed: {}", db_.path(), e.what());
        }
        l.lock();
    }
}

}  // namespace recsync::store::sqlite
