// Applies inbound changes to a PostgreSQL connection's tables: the calls its lane makes
// (pg_target.hpp builds them: PUT / DELETE / GET /<object>/<record key>) run as SQL on a
// few connections of its own, each call one transaction that sets
// `SET LOCAL recsync.origin = '<connection>'`, so the capture trigger marks the rows as
// ours and capture skips them (no echo, no superuser, no session_replication_role).
//   PUT    -> an UPDATE of the row by key, else INSERT ... SELECT FROM
//             jsonb_populate_record(NULL::table, $1) ON CONFLICT
//             (key) DO UPDATE of the columns the record names (PostgreSQL converts the
//             JSON values to the columns' types; the fields it leaves out keep theirs)
//   DELETE -> DELETE by key (404 when there was none: done)
//   GET    -> the row as JSON (404 when there is none)
// A two-way PUT first checks, holding the row's lock, that nobody else changed the row
// since the change it carries (lose_to_changes_since_ms): such a change may not have reached
// recsync yet, so only the database can tell that it wins. It is rolled back (409, lost).
// Answers are HTTP-like so the lane judges them as any call's: 2xx done; 422 with
// PostgreSQL's message for a constraint violation, a type error or an unknown column
// (dead-lettered); 503 for a lost connection, a deadlock or a server going away (retried).
#pragma once

#include "config/config.hpp"

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace recsync::connectors::postgres {

struct ApplyJob {
    uint64_t tag = 0;
    std::string method;
    std::string path;  // /<object>/<percent-encoded record key>
    std::string body;
    // A PUT is rolled back if the row was changed by anyone but recsync at or after this
    // time (epoch ms; 0: never): the conflict policy's winner is that change (see local_writes
    // in pg_schema.cpp).
    int64_t lose_to_changes_since_ms = 0;
};

struct ApplyResult {
    uint64_t tag = 0;
    int status = 0;
    std::string body;
    bool lost_conflict = false;  // rolled back for a later change of the row (status 409)
};

class Applier {
public:
    // workers: connections (and threads) at most, opened as calls need them. done: called
    // from a worker with each call's result, so it must be thread-safe.
    Applier(std::string connection, config::PostgresConfig pg, int workers, std::function<void(ApplyResult)> done);
    ~Applier();  // finishes the calls started, then stops
    Applier(const Applier &) = delete;
    Applier &operator=(const Applier &) = delete;

    void submit(ApplyJob job);
    void reconfigure(config::PostgresConfig pg);  // a reload: later calls use the new tables

    // One call on a connection (exposed for tests): the answer it makes.
    static ApplyResult apply(class PgConnection &db, const std::string &connection, const config::PostgresConfig &pg, const ApplyJob &job);

private:
    void work();

    const std::string connection_;
    std::function<void(ApplyResult)> done_;
    std::mutex mutex_;
    std::condition_variable ready_;
    std::shared_ptr<const config::PostgresConfig> pg_;  // under mutex_
    std::deque<ApplyJob> queue_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace recsync::connectors::postgres
