#include "connectors/postgres/pg_change_log.hpp"

#include "connectors/postgres/pg_connection.hpp"
#include "connectors/postgres/pg_schema.hpp"

namespace recsync::connectors::postgres {

ChangeLog::ChangeLog(PgConnection &db, const config::PostgresConfig &pg) : db_(db) {
    const std::string changes = quote_ident(pg.schema) + ".changes";
    read_sql_ = "SELECT id, xid::text, object, op, key, data::text, previous::text, coalesce(origin, ''), " + rfc3339_ms_sql("at") + " FROM " + changes + " WHERE xid < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY id LIMIT $1";
    held_sql_ = "SELECT EXISTS (SELECT 1 FROM " + changes + " WHERE xid >= pg_snapshot_xmin(pg_current_snapshot()))";
    remove_sql_ = "DELETE FROM " + changes + " WHERE id = ANY($1::bigint[])";
    set_aside_sql_ = "WITH moved AS (DELETE FROM " + changes + " WHERE id = $1 RETURNING *) INSERT INTO " + quote_ident(pg.schema) +
                     ".refused (id, xid, object, op, key, data, previous, origin, at, reason) SELECT id, xid, object, op, key, data, previous, origin, at, $2 "
                     "FROM moved ON CONFLICT (id) DO NOTHING";
    listen_sql_ = "LISTEN " + quote_ident(notify_channel(pg));
    prune_sql_ = "DELETE FROM " + quote_ident(pg.schema) + ".local_writes WHERE at < clock_timestamp() - make_interval(secs => $1::int) AND at < coalesce((SELECT min(at) FROM " +
                 changes + "), 'infinity')";
}

ChangeBatch ChangeLog::read(int limit) {
    ChangeBatch batch;
    const auto r = db_.exec(read_sql_, {std::to_string(limit)});
    batch.rows.reserve(r.rows());
    for (int i = 0; i < r.rows(); ++i) {
        ChangeRow row;
        row.id = std::stoll(r.text(i, 0));
        row.xid = r.text(i, 1);
        row.object = r.text(i, 2);
        const auto op = r.text(i, 3);
        row.op = op.empty() ? 0 : op[0];
        row.key = r.text(i, 4);
        if (!r.null(i, 5)) row.data = r.text(i, 5);
        if (!r.null(i, 6)) row.previous = r.text(i, 6);
        row.origin = r.text(i, 7);
        row.at = r.text(i, 8);
        batch.rows.push_back(std::move(row));
    }
    if (static_cast<int>(batch.rows.size()) < limit) batch.held_back = db_.exec(held_sql_).text(0, 0) == "t";
    return batch;
}

void ChangeLog::remove(const std::vector<int64_t> &ids) {
    if (ids.empty()) return;
    std::string array = "{";
    for (size_t i = 0; i < ids.size(); ++i) array += (i ? "," : "") + std::to_string(ids[i]);
    array += "}";
    db_.exec(remove_sql_, {array});
}

void ChangeLog::set_aside(int64_t id, const std::string &reason) { db_.exec(set_aside_sql_, {std::to_string(id), reason}); }

void ChangeLog::listen() { db_.exec(listen_sql_); }

void ChangeLog::prune_local_writes(int keep_s) { db_.exec(prune_sql_, {std::to_string(keep_s)}); }

}  // namespace recsync::connectors::postgres
