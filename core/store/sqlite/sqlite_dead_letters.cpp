#include "store/sqlite/sqlite_dead_letters.hpp"

#include "store/sqlite/rows.hpp"

namespace recsync::store::sqlite {

std::vector<DeadLetter> SqliteDeadLetters::list(int64_t limit, int64_t after_id) {
    auto l = db_.lock();
    std::vector<DeadLetter> out;
    auto st = db_.prepare("SELECT id, task_id, request, response_status, response_body, reason, failed_at, " RECSYNC_TASK_COLUMNS
                          " FROM dead_letters WHERE id > ? ORDER BY id LIMIT ?");
    st.bind(1, after_id).bind(2, limit);
    while (st.step()) {
        DeadLetter d;
        d.id = st.column_int(0);
        d.task.id = st.column_int(1);
        d.request = st.column_text(2);
        d.response_status = static_cast<int>(st.column_int(3));
        d.response_body = st.column_text(4);
        d.reason = st.column_text(5);
        d.failed_ms = st.column_int(6);
        read_task_columns(st, 7, d.task);
        out.push_back(std::move(d));
    }
    return out;
}

std::optional<DeadLetter> SqliteDeadLetters::get(int64_t id) {
    auto letters = list(1, id - 1);
    if (letters.empty() || letters.front().id != id) return std::nullopt;
    return std::move(letters.front());
}

bool SqliteDeadLetters::drop(int64_t id) {
    auto l = db_.lock();
    db_.prepare("DELETE FROM dead_letters WHERE id = ?").bind(1, id).step();
    return db_.changes() > 0;
}

int64_t SqliteDeadLetters::count() {
    auto l = db_.lock();
    auto st = db_.prepare("SELECT COUNT(*) FROM dead_letters");
    st.step();
    return st.column_int(0);
}

}  // namespace recsync::store::sqlite
