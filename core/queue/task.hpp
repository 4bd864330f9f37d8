// One unit of outbound work: an action on one record at one connection.
#pragma once

#include <recsync/provider_abi.h>

#include <cstdint>
#include <string>

namespace recsync::queue {

struct Task {
    int64_t id = 0;          // durable id (SQLite rowid); order of acceptance
    std::string connection;  // lane
    std::string object;      // provider object, e.g. "contacts"
    std::string record_key;  // our key
    recsync_action action = RECSYNC_ACTION_CREATE;
    std::string payload;     // transformed JSON (empty for delete)
    int attempts = 0;
    int64_t not_before_ms = 0;  // epoch ms; 0 = now
    int64_t created_ms = 0;
    // A create that may have reached the provider already (an attempt was made and its
    // answer may be lost): re-sent by the object's create_retry, never as a bare create.
    bool sent = false;
    // Whether tasks.sent is 1 in the database. Where the object's retry is a FIND, the
    // mark is written before the first attempt goes out (a needless FIND costs a call);
    // where it is an upsert, with the next results instead (the call does not wait), and
    // every such create still queued at a start counts as sent (Dispatcher::enqueue).
    bool marked = false;
    // In memory only: a FIND just said the record does not exist, so the next attempt is
    // a plain create (which makes the task in doubt again once sent).
    bool verified_absent = false;

    // Records are ordered per (object, key) within a lane.
    std::string record_id() const { return object + '\x1f' + record_key; }
};

const char *action_text(recsync_action a);

}  // namespace recsync::queue
