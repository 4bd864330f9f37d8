// What `recsync pg install` puts in the database, and what `recsync check` verifies.
//
// In the connection's schema (postgres.schema, default "recsync"): the change log
// `changes` and the trigger functions. On each captured table a row trigger appends one
// row per INSERT, UPDATE (only when a column changed) or DELETE, with the row as JSON
// before and after, the writing transaction's id (xid8) and `recsync.origin` (set by
// recsync's own apply: capture skips those rows), and a statement trigger refuses
// TRUNCATE (it fires no row triggers, so its deletes could not be captured). The trigger
// also stamps `local_writes` with when each record was last changed by anyone but
// recsync, which two-way applies check (pg_applier.hpp); capture prunes it. Every
// statement is idempotent: install twice, or after an upgrade of recsync, changes nothing
// that is already right.
#pragma once

#include "config/config.hpp"

#include <string>
#include <vector>

namespace recsync::connectors::postgres {

class PgConnection;

// The NOTIFY channel the triggers wake capture on (payloads are not used: capped at
// 8,000 bytes and not kept, they only say "look").
std::string notify_channel(const config::PostgresConfig &pg);

// SQL for a timestamptz column as RFC 3339 text, UTC, milliseconds (as events carry it).
std::string rfc3339_ms_sql(const std::string &column);

std::vector<std::string> install_sql(const config::PostgresConfig &pg);
// Drops the triggers and the connection's schema (with the change log: rows not yet
// captured are lost; the command says so).
std::vector<std::string> uninstall_sql(const config::PostgresConfig &pg);

// Problems found in the database for the config (empty: all good): the change log, each
// table, its key (unique), its mapped columns and its triggers. Each names the table's
// file:line. Throws PgError when the database cannot be asked.
std::vector<std::string> verify(PgConnection &db, const config::PostgresConfig &pg);

}  // namespace recsync::connectors::postgres
