#include "model/task.hpp"
#include "model/link_state.hpp"

#include <xxhash.h>

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

}  // namespace recsync::model
