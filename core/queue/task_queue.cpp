#include "queue/task_queue.hpp"

#include "util/clock.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <future>
#include <stdexcept>

namespace recsync::queue {

const char *action_text(recsync_action a) {
    switch (a) {
        case RECSYNC_ACTION_CREATE: return "create";
        case RECSYNC_ACTION_UPDATE: return "update";
        case RECSYNC_ACTION_UPSERT: return "upsert";
        case RECSYNC_ACTION_DELETE: return "delete";
        case RECSYNC_ACTION_READ: return "read";
        case RECSYNC_ACTION_FIND: return "find";
        default: break;
    }
    return "?";
}

TaskQueue::TaskQueue(store::SqliteDb &db, std::chrono::microseconds commit_window) : db_(db), commit_window_(commit_window) {
    db_.exec(
        "CREATE TABLE IF NOT EXISTS tasks ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " connection TEXT NOT NULL, object TEXT NOT NULL, record_key TEXT NOT NULL,"
        " action INTEGER NOT NULL, payload TEXT NOT NULL,"
        " attempts INTEGER NOT NULL DEFAULT 0, not_before INTEGER NOT NULL DEFAULT 0,"
        " created_at INTEGER NOT NULL, last_error TEXT, sent INTEGER NOT NULL DEFAULT 0)");
    db_.add_column_if_missing("tasks", "sent", "INTEGER NOT NULL DEFAULT 0");  // a database from before the column
    committer_ = std::thread([this] { commit_loop(); });
}

TaskQueue::~TaskQueue() {
    {
        std::lock_guard lock(group_mutex_);
        stopping_ = true;
    }
    group_ready_.notify_one();
    committer_.join();
}

void TaskQueue::insert(Task &t, int64_t now) {
    if (!t.created_ms) t.created_ms = now;
    auto st = db_.prepare("INSERT INTO tasks(connection, object, record_key, action, payload, attempts, not_before, created_at, sent) VALUES(?,?,?,?,?,?,?,?,?)");
    st.bind(1, t.connection).bind(2, t.object).bind(3, t.record_key).bind(4, static_cast<int64_t>(t.action)).bind(5, t.payload);
    st.bind(6, static_cast<int64_t>(t.attempts)).bind(7, t.not_before_ms).bind(8, t.created_ms).bind(9, int64_t{t.sent});
    st.step();
    t.id = db_.last_insert_id();
}

void TaskQueue::append_here(std::vector<Task> &tasks) {
    if (tasks.empty()) return;
    const int64_t now = util::epoch_ms();
    db_.transaction([&] {
        for (auto &t : tasks) insert(t, now);
    });
}

void TaskQueue::append_async(std::vector<Task> tasks, Committed done) {
    if (tasks.empty()) return done(std::move(tasks), nullptr);
    {
        std::lock_guard lock(group_mutex_);
        if (group_.empty()) group_since_ = std::chrono::steady_clock::now();
        group_.push_back({std::move(tasks), std::move(done)});
        ++appended_;
    }
    group_ready_.notify_one();
}

void TaskQueue::refuse_from_commit_thread(const char *what) const {
    if (std::this_thread::get_id() == committer_.get_id())
        throw std::logic_error(std::string("TaskQueue::") + what + " called from a commit callback: it would wait for itself");
}

void TaskQueue::flush() {
    refuse_from_commit_thread("flush");
    std::unique_lock lock(group_mutex_);
    const uint64_t target = appended_;
    group_done_.wait(lock, [&] { return finished_ >= target; });
}

void TaskQueue::append(std::vector<Task> &tasks) {
    if (tasks.empty()) return;
    refuse_from_commit_thread("append");
    std::promise<std::exception_ptr> committed;
    auto result = committed.get_future();
    append_async(std::move(tasks), [&](std::vector<Task> &&stored, std::exception_ptr error) {
        tasks = std::move(stored);
        committed.set_value(error);
    });
    if (const auto error = result.get()) std::rethrow_exception(error);
}

void TaskQueue::commit_loop() {
    std::unique_lock lock(group_mutex_);
    for (;;) {
        group_ready_.wait(lock, [&] { return stopping_ || !group_.empty(); });
        if (group_.empty()) return;  // stopping, nothing left
        // Let others join this commit until its first append has waited the window (work
        // that piled up during the last commit may have waited that long already).
        if (const auto deadline = group_since_ + commit_window_; !stopping_ && std::chrono::steady_clock::now() < deadline) {
            lock.unlock();
            std::this_thread::sleep_until(deadline);
            lock.lock();
        }
        std::vector<Appended> batch;
        batch.swap(group_);
        lock.unlock();
        std::exception_ptr error;
        try {
            const int64_t now = util::epoch_ms();
            db_.transaction([&] {
                for (auto &a : batch)
                    for (auto &t : a.tasks) insert(t, now);
            });
        } catch (...) {
            error = std::current_exception();
            for (auto &a : batch)
                for (auto &t : a.tasks) t.id = 0;  // rolled back
        }
        for (auto &a : batch) {
            try {
                a.done(std::move(a.tasks), error);
            } catch (const std::exception &e) {
                spdlog::error("after a commit of queued tasks: {}", e.what());
            }
        }
        lock.lock();
        finished_ += batch.size();
        group_done_.notify_all();
    }
}

namespace {
// A macro, not a constant: prepare() caches statements by the address of a literal.
#define RECSYNC_PENDING_COLUMNS "SELECT id, connection, object, record_key, action, payload, attempts, not_before, created_at, sent FROM tasks"

std::vector<Task> read_tasks(store::Statement &st) {
    std::vector<Task> out;
    while (st.step()) {
        Task t;
        t.id = st.column_int(0);
        t.connection = st.column_text(1);
        t.object = st.column_text(2);
        t.record_key = st.column_text(3);
        t.action = static_cast<recsync_action>(st.column_int(4));
        t.payload = st.column_text(5);
        t.attempts = static_cast<int>(st.column_int(6));
        t.not_before_ms = st.column_int(7);
        t.created_ms = st.column_int(8);
        t.sent = st.column_int(9) != 0;
        t.marked = t.sent;
        out.push_back(std::move(t));
    }
    return out;
}
}  // namespace

std::vector<Task> TaskQueue::load_pending() {
    auto l = db_.lock();
    auto st = db_.prepare(RECSYNC_PENDING_COLUMNS " ORDER BY id");
    return read_tasks(st);
}

std::vector<Task> TaskQueue::load_pending(const std::vector<std::string> &connections) {
    auto l = db_.lock();
    auto st = db_.prepare(RECSYNC_PENDING_COLUMNS " WHERE connection IN (SELECT value FROM json_each(?)) ORDER BY id");
    st.bind(1, nlohmann::json(connections).dump());
    return read_tasks(st);
}
#undef RECSYNC_PENDING_COLUMNS

void TaskQueue::remove(int64_t id) {
    auto l = db_.lock();
    db_.prepare("DELETE FROM tasks WHERE id = ?").bind(1, id).step();
}

void TaskQueue::set_payload(int64_t id, const std::string &payload) {
    auto l = db_.lock();
    db_.prepare("UPDATE tasks SET payload = ? WHERE id = ?").bind(1, payload).bind(2, id).step();
}

void TaskQueue::reschedule(int64_t id, int attempts, int64_t not_before_ms, const std::string &last_error) {
    auto l = db_.lock();
    db_.prepare("UPDATE tasks SET attempts = ?, not_before = ?, last_error = ? WHERE id = ?").bind(1, static_cast<int64_t>(attempts)).bind(2, not_before_ms).bind(3, last_error).bind(4, id).step();
}

void TaskQueue::mark_sent(int64_t id) {
    auto l = db_.lock();
    db_.prepare("UPDATE tasks SET sent = 1 WHERE id = ?").bind(1, id).step();
}

int64_t TaskQueue::count() {
    auto l = db_.lock();
    auto st = db_.prepare("SELECT COUNT(*) FROM tasks");
    st.step();
    return st.column_int(0);
}

}  // namespace recsync::queue
