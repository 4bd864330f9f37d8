#include "model/task.hpp"
#include "model/link_state.hpp"

#include <xxhash.h>

#include <nlohmann/json.hpp>

namespace recsync::model {

const char *action_text(recsync_action a) {
    switch (a) {
        case RECSYNC_ACTION_CREATE: return "create";
        case RECSYNC_ACTION_UPDATE: return "update";
        case RECSYNC_ACTION_UPSERT: return "upsert";
        case RECSYNC_ACTION_DELETE: return "delete";
        case RECSYNC_ACTION_READ: return "read";
        case RECSYNC_ACTION_FIND: return "find";
        default: break;
    }
    return "?";
}

const char *change_text(Change c) {
    switch (c) {
        case Change::Created: return "created";
        case Change::Updated: return "updated";
        case Change::Deleted: return "deleted";
        case Change::Unknown: break;
    }
    return "unknown";
}

uint64_t payload_hash(std::string_view payload) {
    const uint64_t h = XXH3_64bits(payload.data(), payload.size());
    return h ? h : 1;
}

std::string stale_reason(const Task &task, const LinkState &link) {
    if (task.order.older_than(link.applied_order))
        return "the record has since applied a newer change (order " + std::to_string(link.applied_order.value) + " > " + std::to_string(task.order.value) + ")";
    if (task.change_seq() < link.applied_seq)
        return "the record has since applied a newer change (accepted as task " + std::to_string(link.applied_seq) + ", after this one's " +
               std::to_string(task.change_seq()) + ")";
    return {};
}

std::string read_payload(std::string_view external_id) { return nlohmann::json{{"external_id", external_id}}.dump(); }

std::string read_target(std::string_view payload) {
    if (payload.empty()) return {};
    const auto j = nlohmann::json::parse(payload, nullptr, false);
    if (!j.is_object()) return {};
    const auto it = j.find("external_id");
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace recsync::model
