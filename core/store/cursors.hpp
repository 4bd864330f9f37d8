// Poll cursors: where a poller stands in one object's changes at one connection. A cursor
// moves in the same commit as the changes of the page it read (TaskLog::append with
// AppendBatch::cursor), so it never runs ahead of what is durable. Implementations:
// store/sqlite/.
#pragma once

#include "store/task_log.hpp"

#include <optional>
#include <string>

namespace recsync::store {

class CursorStore {
public:
    virtual ~CursorStore() = default;
    // The cursor's value; none before the first page.
    virtual std::optional<std::string> get(const std::string &connection, const std::string &object) = 0;
};

}  // namespace recsync::store
