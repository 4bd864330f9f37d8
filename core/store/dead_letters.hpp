// Dead letters: tasks that failed for good (a permanent error, or retries used up), with
// the request, the response and the reason. Replayed through the task log
// (dead_letter_replay.hpp). Implementations: store/sqlite/.
#pragma once

#include "model/task.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace recsync::store {

struct DeadLetter {
    int64_t id = 0;
    model::Task task;     // as it was at its last attempt (task.id: its id in the task log)
    std::string request;  // method, URL, headers (secrets redacted), body
    int response_status = 0;
    std::string response_body;
    std::string reason;
    int64_t failed_ms = 0;
};

class DeadLetterStore {
public:
    virtual ~DeadLetterStore() = default;
    // Oldest first, ids above `after_id`.
    virtual std::vector<DeadLetter> list(int64_t limit, int64_t after_id = 0) = 0;
    virtual std::optional<DeadLetter> get(int64_t id) = 0;
    // Removes it; false if there was none.
    virtual bool drop(int64_t id) = 0;
    virtual int64_t count() = 0;
};

}  // namespace recsync::store
