// The task log: where accepted work waits until it is done. Ingest appends each request's
// planned changes in one durable commit before the sender hears 2xx; lanes read their
// backlog from it a window at a time; the delivery log (delivery_log.hpp) removes tasks
// as they finish. Implementations: store/sqlite/.
//
// An append also applies the event model (DESIGN.md, "The record is the unit"): a change
// whose event id was seen within the retention, or whose order is older than the last
// change accepted for its record, or (from a connection) that is the echo of recsync's own
// write there, is acknowledged and leaves no task.
#pragma once

#include "model/link_state.hpp"
#include "model/task.hpp"

#include <exception>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace recsync::store {

// One event as ingest planned it: who it is (for deduplication and order) and the tasks
// the rules made of it (none if no rule fired or a skip rule did).
struct PlannedChange {
    std::string source;    // "internal", or the connection it came from
    std::string event_id;  // empty: none (no deduplication)
    std::string entity;    // the record in its source
    std::string record_key;
    model::Order order;
    std::vector<model::Task> tasks;
    // From a connection (source != "internal"): the record's id there. The commit names
    // the record by the key it is linked under, if any (its tasks' record_key changes);
    // a record first seen there is keyed by this id, and linked to it once its change
    // writes anywhere.
    std::string external_id;
    // ... and its modification stamp there, if the provider reports one: equal to the
    // stamp of recsync's own last write there, the change is that write's echo, dropped.
    std::string modified;
    // The record was deleted at its source: from a connection, its link there is
    // tombstoned; from System A, its links at the System A connections (echo_connections)
    // are, so that a CRM change on its way does not make it again in System A.
    bool deletes = false;
    // From a connection with a conflict policy (config::ConflictPolicy): a change that
    // loses to System A's concurrent one is dropped; one that stands is recorded as the
    // side's latest (record_changes) for the dispatcher's check of tasks toward it.
    uint8_t conflict = 0;
    int64_t accepted_ms = 0;  // when ingest planned it (a change's time without occurred_at)
    // From System A ("internal"): the hash of the event's data as JSON text (nlohmann's
    // dump, keys sorted), and the System A connections it may echo: equal to what recsync
    // last wrote to the record at one of them, the event is that write coming back.
    uint64_t data_hash = 0;
    std::vector<std::string> echo_connections;
    bool from_system_a = false;  // source is "internal" or a System A connection (a captured database)
};

// A poller's position in one object's changes at one connection: it moves in the commit
// that appends the changes it read, or not at all.
struct Cursor {
    std::string connection;
    std::string object;
    std::string value;
};

struct AppendBatch {
    std::vector<PlannedChange> changes;
    std::optional<Cursor> cursor;
};

// What the log already knows of a change's identity (TaskLog::known).
enum class Known : uint8_t { New, Duplicate, Stale };

struct Appended {
    std::vector<model::Task> tasks;  // now durable, with ids, in append order
    size_t duplicates = 0;           // changes whose event id was seen within the retention
    size_t stale = 0;                // changes older than their record's last accepted one
    size_t replays_gone = 0;         // tasks replaying a dead letter that was gone already (dropped)
    size_t echoes = 0;               // changes that were recsync's own write coming back (from either side)
    size_t conflicts = 0;            // changes (or their tasks to one side) that lost a conflict: dropped
    // Links whose "last written" no longer holds: the record changed on that side since
    // (a change from there was accepted). Their cached state must be read again.
    std::vector<model::LinkKey> changed_links;
    std::exception_ptr error;        // set: nothing of the batch was stored
};

class TaskLog {
public:
    using Done = std::function<void(Appended &&)>;
    virtual ~TaskLog() = default;

    // Appends durably, in the background: one commit may carry many batches (group
    // commit), so a sender waiting for its 2xx holds no thread. `done` runs on the log's
    // commit thread once the batch is durable or its commit failed, in commit order (so
    // tasks reach their lanes in id order); keep it short and never append from it.
    virtual void append(AppendBatch batch, Done done) = 0;
    // Returns once everything appended before the call is committed and its `done` ran.
    virtual void flush() = 0;
    // What the log knows of each change's identity now, without waiting for a writer (the
    // changes' tasks are not looked at): a repeat of an event id seen well within the
    // retention (by a minute, so that the commit that follows still sees it), or an order
    // older than its record's last accepted one. Ingest asks before planning, so that a
    // repeat is acknowledged without being planned again (its rules, schema or plugin may
    // have changed since it was accepted, and it must not be refused for that). The
    // append's commit still decides: a change this calls new may be a repeat there.
    virtual std::vector<Known> known(const std::vector<PlannedChange> &changes) = 0;
    // Up to `limit` tasks of `connection` with ids above `after_id`, oldest first (a
    // lane's next window). Never waits for a writer.
    virtual std::vector<model::Task> read(const std::string &connection, int64_t after_id, size_t limit) = 0;
    // Tasks waiting, per connection (read once at a start).
    virtual std::map<std::string, int64_t> count_by_connection() = 0;
    virtual int64_t count() = 0;
    // The newest id the log has given (its task may be finished), 0 if none: at a start,
    // tasks up to it may have been sent by an earlier run.
    virtual int64_t last_id() = 0;
};

// append, waiting for the commit: returns what was appended, throws what the commit
// threw. From a Done callback it throws std::logic_error (it would wait for itself).
Appended append_and_wait(TaskLog &log, AppendBatch batch);

// Implementations hold one around each Done callback they run, so that waiting for their
// own commit thread from one fails at once instead of hanging.
class CommitCallbackScope {
public:
    CommitCallbackScope();
    ~CommitCallbackScope();
    CommitCallbackScope(const CommitCallbackScope &) = delete;
    CommitCallbackScope &operator=(const CommitCallbackScope &) = delete;
    static bool active();
};

// A batch of plain tasks, each its own change without identity (tests, tools, replays).
AppendBatch batch_of(std::vector<model::Task> tasks);

}  // namespace recsync::store
