// Tasks as rows: the columns the task log and the dead letters share, written and read in
// one place.
#pragma once

#include "model/task.hpp"
#include "store/sqlite/sqlite_db.hpp"

namespace recsync::store::sqlite {

// A macro, not a constant: SqliteDb::prepare caches statements by the address of a literal.
// connection, object, record_key, action, payload, attempts, created_at, sent, event_kind,
// order_kind, order_value, seq, conflict: 13 columns, as read_task_columns reads them.
#define RECSYNC_TASK_COLUMNS "connection, object, record_key, action, payload, attempts, created_at, sent, event_kind, order_kind, order_value, seq, conflict"

// Binds the 13 columns to parameters first .. first+12.
void bind_task_columns(Statement &st, int first, const model::Task &t);
// Reads them from columns first .. first+12.
void read_task_columns(const Statement &st, int first, model::Task &t);

}  // namespace recsync::store::sqlite
