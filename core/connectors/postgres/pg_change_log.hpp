// Reading the change log (pg_schema.hpp) in commit order: a row is read only once every
// transaction older than its own has ended (its xid below pg_snapshot_xmin of a fresh
// snapshot), so a transaction that began first and commits last is read after the ones
// that committed meanwhile, never skipped; rows are removed only once their events are
// durable in recsync (at least once; the record state makes the repeat harmless).
#pragma once

#include "config/config.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace recsync::connectors::postgres {

class PgConnection;

struct ChangeRow {
    int64_t id = 0;
    std::string xid;
    std::string object;
    char op = 0;  // 'I', 'U', 'D'
    std::string key;
    std::optional<std::string> data, previous;  // the row as JSON after and before
    std::string origin;                         // recsync.origin of the writing transaction
    std::string at;                             // RFC 3339, UTC, milliseconds
};

struct ChangeBatch {
    std::vector<ChangeRow> rows;  // in log order
    // Committed rows held back behind a transaction still open: look again soon.
    bool held_back = false;
};

class ChangeLog {
public:
    ChangeLog(PgConnection &db, const config::PostgresConfig &pg);
    ChangeBatch read(int limit);
    void remove(const std::vector<int64_t> &ids);
    // A row whose change was refused: moved to <schema>.refused with the reason.
    void set_aside(int64_t id, const std::string &reason);
    void listen();  // LISTEN on the triggers' channel (on this connection)
    // Forgets the local_writes stamps no apply can need any more: older than `keep_s`
    // seconds and than every change still in the log. Until a change is captured the
    // engine cannot know of it; once captured, the engine decides its conflicts itself
    // (only a call already in flight then still needs the stamp).
    void prune_local_writes(int keep_s);

private:
    PgConnection &db_;
    std::string read_sql_, held_sql_, remove_sql_, set_aside_sql_, listen_sql_, prune_sql_;
};

}  // namespace recsync::connectors::postgres
