// The delivery log: what the dispatcher records as calls finish, in one atomic commit per
// batch: tasks that leave the task log (done, skipped, dead-lettered, and those folded
// into them), retries, dead letters, the records' sync state, and the marks of calls that
// went out. Implementations: store/sqlite/.
#pragma once

#include "model/link_state.hpp"
#include "store/dead_letters.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace recsync::store {

struct TaskRetry {
    int64_t id = 0;
    int attempts = 0;
    int64_t not_before_ms = 0;  // epoch
    std::string error;
};

struct LinkWrite {
    model::LinkKey key;
    model::LinkState state;  // the record's whole state at the link after this batch
    bool new_external_id = false;  // state.external_id is new: index it (changes from there name the record by it)
};

struct DeliveryBatch {
    std::vector<int64_t> finished;  // task ids leaving the task log
    std::vector<TaskRetry> retries;
    std::vector<DeadLetter> dead_letters;  // their tasks are in `finished` too
    std::vector<LinkWrite> links;
    std::vector<int64_t> sent_marks;  // tasks whose call may have gone out (model::SendState::Sent)

    bool empty() const { return finished.empty() && retries.empty() && dead_letters.empty() && links.empty() && sent_marks.empty(); }
};

class DeliveryLog {
public:
    virtual ~DeliveryLog() = default;
    // Records the batch, all or nothing. Crash-safe, not necessarily power-safe: a result
    // lost to a power cut only makes its call again, as a kill -9 between the CRM's answer
    // and this commit would. wait=false: while another writer holds the store (ingest's
    // commits hold it through their fsync), returns false at once and records nothing.
    // Throws if the commit fails (nothing recorded).
    virtual bool record(const DeliveryBatch &batch, bool wait) = 0;
};

}  // namespace recsync::store
