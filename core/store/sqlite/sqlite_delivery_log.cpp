#include "store/sqlite/sqlite_delivery_log.hpp"

#include "store/sqlite/rows.hpp"
#include "util/clock.hpp"

namespace recsync::store::sqlite {

void write_link(SqliteDb &db, const model::LinkKey &k, const model::LinkState &s, int64_t now) {
    auto st = db.prepare(
        "INSERT INTO links(record_key, connection, object, external_id, written_hash, applied_seq, order_kind, order_value, deleted, maybe_exists, updated_at,"
        " written_modified)"
        " VALUES(?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(record_key, connection, object) DO UPDATE SET external_id = excluded.external_id,"
        " written_hash = excluded.written_hash, applied_seq = excluded.applied_seq, order_kind = excluded.order_kind, order_value = excluded.order_value,"
        " deleted = excluded.deleted, maybe_exists = excluded.maybe_exists, updated_at = excluded.updated_at, written_modified = excluded.written_modified");
    st.bind(1, k.record_key).bind(2, k.connection).bind(3, k.object).bind(4, s.external_id).bind(5, static_cast<int64_t>(s.written_hash));
    st.bind(6, s.applied_seq).bind(7, static_cast<int64_t>(s.applied_order.kind)).bind(8, s.applied_order.value);
    st.bind(9, int64_t{s.deleted}).bind(10, int64_t{s.maybe_exists}).bind(11, now).bind(12, s.written_modified);
    st.step();
}

void write_external_id(SqliteDb &db, const std::string &connection, const std::string &object, const std::string &external_id, const std::string &record_key) {
    db.prepare("INSERT INTO external_ids(connection, object, external_id, record_key) VALUES(?,?,?,?)"
               " ON CONFLICT(connection, object, external_id) DO UPDATE SET record_key = excluded.record_key")
        .bind(1, connection)
        .bind(2, object)
        .bind(3, external_id)
        .bind(4, record_key)
        .step();
}

void write_dead_letter(SqliteDb &db, const DeadLetter &d) {
    auto st = db.prepare("INSERT INTO dead_letters(task_id, " RECSYNC_TASK_COLUMNS ", request, response_status, response_body, reason, failed_at)"
                         " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    st.bind(1, d.task.id);
    model::Task t = d.task;
    t.seq = d.task.change_seq();  // a replay keeps the change's place in its record's order
    bind_task_columns(st, 2, t);
    st.bind(15, d.request).bind(16, static_cast<int64_t>(d.response_status)).bind(17, d.response_body).bind(18, d.reason).bind(19, d.failed_ms);
    st.step();
}

void SqliteDeliveryLog::write(const DeliveryBatch &b) {
    const int64_t now = util::epoch_ms();
    for (const int64_t id : b.sent_marks) db_.prepare("UPDATE tasks SET sent = 1 WHERE id = ?").bind(1, id).step();
    for (const auto &r : b.retries)
        db_.prepare("UPDATE tasks SET attempts = ?, not_before = ?, last_error = ? WHERE id = ?")
            .bind(1, static_cast<int64_t>(r.attempts))
            .bind(2, r.not_before_ms)
            .bind(3, r.error)
            .bind(4, r.id)
            .step();
    for (const auto &l : b.links) {
        write_link(db_, l.key, l.state, now);
        if (l.new_external_id) write_external_id(db_, l.key.connection, l.key.object, l.state.external_id, l.key.record_key);
    }
    for (const auto &d : b.dead_letters) write_dead_letter(db_, d);
    for (const int64_t id : b.finished) db_.prepare("DELETE FROM tasks WHERE id = ?").bind(1, id).step();
}

bool SqliteDeliveryLog::record(const DeliveryBatch &batch, bool wait) {
    if (batch.empty()) return true;
    // Crash-safe, not fsynced per batch: an fsync per poll round was a quarter of the
    // dispatcher's time (bench/run e2e).
    const auto fn = [&] { write(batch); };
    if (wait) {
        db_.transaction(fn, SqliteDb::Durability::CrashSafe);
        return true;
    }
    return db_.try_transaction(fn, SqliteDb::Durability::CrashSafe);
}

}  // namespace recsync::store::sqlite
