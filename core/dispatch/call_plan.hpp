// The record's state machine at one link, as pure functions: what call a task's intent
// becomes given what recsync knows of the record there (DESIGN.md, "The record is the
// unit, not the event"), and what it knows after the call's result.
//
//   intent create/update/upsert, record linked   -> UPDATE by its id (nothing if the
//                                                   payload is what was last written)
//   intent create, not linked                   -> CREATE, or, if a create may already
//                                                   have been made, UPSERT by its key or
//                                                   FIND it first (the provider's
//                                                   create_retry for the object)
//   intent upsert, not linked                   -> UPSERT
//   intent update, not linked                   -> fails: nothing to update
//   intent delete, linked                       -> DELETE by its id
//   intent delete, never made there             -> nothing (a tombstone is kept)
//   intent delete, may exist without an id      -> fails, saying so (replay its create first)
//   any, older than the change last applied     -> nothing (a replay of an old change)
//   update or upsert after the record's delete  -> nothing: only a `created` brings it back
#pragma once

#include "model/link_state.hpp"
#include "model/runtime.hpp"
#include "model/task.hpp"

#include <optional>
#include <string>

namespace recsync::dispatch {

// Why a task finished without a call.
enum class Skip : uint8_t { None, Unchanged, Stale, AfterDelete, NotSynced, Conflict };
const char *skip_text(Skip s);

struct CallPlan {
    enum class Kind : uint8_t { Send, Skip, Fail };
    Kind kind = Kind::Send;
    recsync_action action = RECSYNC_ACTION_CREATE;  // Send: what goes out
    std::string external_id;                        // Send: the id it acts on (empty for create, upsert, find)
    bool in_doubt = false;                          // Send: a create an earlier attempt may have made
    Skip skip = Skip::None;                         // Skip: why
    std::string reason;                             // Skip and Fail: in words
};

// A two-way task (task.conflict set) toward a side that has changed the record itself:
// why its change loses the conflict there (the call is not made), or empty if it stands.
// `target`: the side's last accepted change (store::SyncState::side_change);
// `target_is_system_a`: the task goes to System A (from a CRM). Last writer wins by each
// side's time (within one millisecond, System A's change); a preferred side wins
// whenever the two changes were concurrent (the target's was accepted after the task's).
std::string conflict_loss(const model::Task &task, const std::optional<model::SideChange> &target, bool target_is_system_a);

// The same rule where only System A's database knows its latest change (not captured yet):
// the time from which a change of the record there wins over this two-way write (epoch
// ms, that millisecond included), or 0 when nothing there can win (no policy, prefer:
// external, a delete).
int64_t loses_to_system_a_changes_since_ms(const model::Task &task);

// `payload_hash`: model::payload_hash(task.payload). `addressed_by_key`: the connection
// names records by our key (System A's own service, connectors/http/), so a record
// recsync never wrote there may still exist there: its delete is sent.
CallPlan plan_call(const model::Task &task, const model::LinkState &link, model::CreateRetry retry, uint64_t payload_hash, bool addressed_by_key = false);

// What the link knows once `sent` (the call made for `task`) succeeded. `external_id`:
// what the provider answered (empty if it said none).
model::LinkState state_after_success(model::LinkState link, const model::Task &task, recsync_action sent, const std::string &external_id, uint64_t payload_hash);
// ... once the task finished without a call (plan.skip).
model::LinkState state_after_skip(model::LinkState link, const model::Task &task, Skip skip);
// ... once it was dead-lettered: a create or upsert that may have been made there (an
// attempt went out without a definite answer: `definite_refusal` is false, or an earlier
// attempt failed) leaves a record that may exist there with an id recsync never learnt;
// nullopt if nothing changes.
std::optional<model::LinkState> state_after_dead_letter(const model::LinkState &link, const model::Task &task, bool definite_refusal);

}  // namespace recsync::dispatch
