#include "dispatch/call_plan.hpp"

#include "config/config.hpp"

namespace recsync::dispatch {

const char *skip_text(Skip s) {
    switch (s) {
        case Skip::Unchanged: return "unchanged";
        case Skip::Stale: return "stale";
        case Skip::AfterDelete: return "after_delete";
        case Skip::NotSynced: return "not_synced";
        case Skip::Conflict: return "conflict";
        case Skip::None: break;
    }
    return "none";
}

namespace {

CallPlan send(recsync_action a, std::string external_id = {}, bool in_doubt = false) {
    CallPlan p;
    p.action = a;
    p.external_id = std::move(external_id);
    p.in_doubt = in_doubt;
    return p;
}

CallPlan skip(Skip why, std::string reason) {
    CallPlan p;
    p.kind = CallPlan::Kind::Skip;
    p.skip = why;
    p.reason = std::move(reason);
    return p;
}

CallPlan fail(std::string reason) {
    CallPlan p;
    p.kind = CallPlan::Kind::Fail;
    p.reason = std::move(reason);
    return p;
}

// Whether the change may bring a deleted record back: only its creation (tasks from an
// earlier recsync did not say what their change was: their action does).
bool recreates(const model::Task &t) { return t.change == model::Change::Created || (t.change == model::Change::Unknown && t.action == RECSYNC_ACTION_CREATE); }

std::string where(const model::Task &t) { return "record '" + t.record_key + "' at connection '" + t.connection + "' (" + t.object + ")"; }

const char *kMayExist = ": an earlier create of it may have been made there (its answer was lost and it was dead-lettered), with an id recsync never learnt; "
                        "replay that create's dead letter first";

}  // namespace

CallPlan plan_call(const model::Task &task, const model::LinkState &link, model::CreateRetry retry, uint64_t payload_hash, bool addressed_by_key) {
    // A read changes nothing there, and its order is the other side's clock: never stale.
    if (task.action != RECSYNC_ACTION_READ)
        if (auto why = model::stale_reason(task, link); !why.empty()) return skip(Skip::Stale, std::move(why));
    switch (task.action) {
        case RECSYNC_ACTION_DELETE:
            if (link.linked()) return send(RECSYNC_ACTION_DELETE, link.external_id);
            // System A's records exist by our key whether or not recsync ever wrote them.
            if (addressed_by_key && !link.deleted) return send(RECSYNC_ACTION_DELETE, task.record_key);
            if (link.maybe_exists) return fail("cannot delete " + where(task) + kMayExist);
            return skip(Skip::NotSynced, "no external id: nothing to delete");
        case RECSYNC_ACTION_READ: {
            // A late change of a record deleted there: nothing to read (a creation or restore reads it).
            if (!link.linked() && link.deleted && !recreates(task)) return skip(Skip::AfterDelete, "the record was deleted there; only a created event brings it back");
            if (link.linked()) return send(RECSYNC_ACTION_READ, link.external_id);
            // A hydration names the record by its id there (model::read_payload).
            if (auto id = model::read_target(task.payload); !id.empty()) return send(RECSYNC_ACTION_READ, std::move(id));
            return fail("no external id for " + where(task) + ": it was never created through recsync");
        }
        case RECSYNC_ACTION_CREATE:
        case RECSYNC_ACTION_UPDATE:
        case RECSYNC_ACTION_UPSERT:
            break;
        default:
            return fail(std::string("action ") + model::action_text(task.action) + " cannot be planned");
    }
    if (!link.linked() && link.deleted && !recreates(task)) return skip(Skip::AfterDelete, "the record was deleted there; only a created event brings it back");
    if (link.linked()) {
        if (payload_hash == link.written_hash) return skip(Skip::Unchanged, "the payload is what was last written there");
        return send(RECSYNC_ACTION_UPDATE, link.external_id);
    }
    switch (task.action) {
        case RECSYNC_ACTION_UPDATE:
            return fail("no external id for " + where(task) + (link.maybe_exists ? std::string(kMayExist) : ": it was never created through recsync (use action: upsert to create-or-update)"));
        case RECSYNC_ACTION_UPSERT:
            return send(RECSYNC_ACTION_UPSERT);
        default:
            break;
    }
    // A create. If an earlier attempt may have made it (this task's, or one dead-lettered
    // before it), it goes out so that it cannot make a second one.
    const bool in_doubt = (task.in_doubt() || link.maybe_exists) && task.send != model::SendState::Absent && retry != model::CreateRetry::Resend;
    if (!in_doubt) return send(RECSYNC_ACTION_CREATE);
    return send(retry == model::CreateRetry::Upsert ? RECSYNC_ACTION_UPSERT : RECSYNC_ACTION_FIND, {}, true);
}

namespace {
void applied(model::LinkState &s, const model::Task &t) {
    s.applied_seq = std::max(s.applied_seq, t.change_seq());
    if (t.order.kind != model::Order::None) s.applied_order = t.order;
}
}  // namespace

model::LinkState state_after_success(model::LinkState s, const model::Task &task, recsync_action sent, const std::string &external_id, uint64_t payload_hash) {
    switch (sent) {
        case RECSYNC_ACTION_FIND:
            // Found: its id is ours now (the create goes as an update); not found: as before.
            if (!external_id.empty()) {
                s.external_id = external_id;
                s.deleted = false;
                s.maybe_exists = false;
            }
            return s;  // the task is not done yet: nothing applied
        case RECSYNC_ACTION_DELETE:
            s.external_id.clear();
            s.written_hash = 0;
            s.deleted = true;
            s.maybe_exists = false;
            break;
        case RECSYNC_ACTION_READ:
            break;
        default:  // create, update, upsert
            if (!external_id.empty()) s.external_id = external_id;  // after a merge the CRM answers for the surviving record
            s.written_hash = payload_hash;
            s.deleted = false;
            s.maybe_exists = false;
            break;
    }
    applied(s, task);
    return s;
}

std::string conflict_loss(const model::Task &task, const std::optional<model::SideChange> &target, bool target_is_system_a) {
    if (!task.conflict || !target || task.action == RECSYNC_ACTION_DELETE || task.action == RECSYNC_ACTION_READ) return {};
    const auto policy = static_cast<config::ConflictPolicy>(task.conflict);
    const int64_t at = task.change_time_ms();
    const bool concurrent = target->seq >= task.change_seq();  // changed there after this change was accepted
    const char *there = target_is_system_a ? "System A" : "the connection";
    switch (policy) {
        case config::ConflictPolicy::LastWriterWins:
            if (task.seq && task.order.kind != model::Order::Time) {
                // A dead letter's replay without occurred_at: its change's time is lost (the
                // replay is stamped anew), so it loses to any change there since.
                if (concurrent) return std::string("conflict: ") + there + " changed the record after this replayed change was accepted";
                return {};
            }
            // Within one millisecond the clocks cannot tell: System A's change wins, a rule
            // its own database can apply at the row too (pg_applier.hpp), where the order
            // in which recsync accepted the two is not known.
            if (target->at_ms > at || (target->at_ms == at && target_is_system_a))
                return std::string("conflict: ") + there + " changed the record later (at " + std::to_string(target->at_ms) + " ms, this change at " +
                       std::to_string(at) + " ms): last writer wins";
            return {};
        case config::ConflictPolicy::PreferInternal:
            if (target_is_system_a && concurrent) return "conflict: System A changed the record meanwhile, and is preferred";
            return {};
        case config::ConflictPolicy::PreferExternal:
            if (!target_is_system_a && concurrent) return "conflict: the connection changed the record meanwhile, and is preferred";
            return {};
        case config::ConflictPolicy::None: break;
    }
    return {};
}

int64_t loses_to_system_a_changes_since_ms(const model::Task &task) {
    if (!task.conflict || task.action == RECSYNC_ACTION_DELETE || task.action == RECSYNC_ACTION_READ) return 0;
    switch (static_cast<config::ConflictPolicy>(task.conflict)) {
        case config::ConflictPolicy::LastWriterWins: return task.change_time_ms();  // a replay's time is its acceptance, as above
        case config::ConflictPolicy::PreferInternal: return task.created_ms;        // concurrent: changed after this was accepted
        case config::ConflictPolicy::PreferExternal:
        case config::ConflictPolicy::None: break;
    }
    return 0;
}

model::LinkState state_after_skip(model::LinkState s, const model::Task &task, Skip skip) {
    switch (skip) {
        case Skip::Unchanged:
            applied(s, task);
            break;
        case Skip::NotSynced:
            s.deleted = true;  // a late update must not make it now
            applied(s, task);
            break;
        case Skip::Conflict:
            applied(s, task);  // resolved: the record there holds the winner
            break;
        case Skip::Stale:
        case Skip::AfterDelete:
        case Skip::None:
            break;
    }
    return s;
}

std::optional<model::LinkState> state_after_dead_letter(const model::LinkState &link, const model::Task &task, bool definite_refusal) {
    const bool creates = task.action == RECSYNC_ACTION_CREATE || task.action == RECSYNC_ACTION_UPSERT;
    const bool made_maybe = creates && task.in_doubt() && (!definite_refusal || task.attempts > 0);
    if (!made_maybe || link.linked() || link.maybe_exists) return std::nullopt;
    auto s = link;
    s.maybe_exists = true;
    return s;
}

}  // namespace recsync::dispatch
