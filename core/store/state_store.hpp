// Sync state beside the task log, in the same SQLite database: the id map (our key <->
// their id, per connection and object) and the dead-letter queue.
#pragma once

#include "queue/task.hpp"
#include "store/sqlite_db.hpp"

#include <optional>
#include <string>
#include <vector>

namespace recsync::store {

struct DeadLetter {
    int64_t id = 0;
    queue::Task task;
    std::string request;  // method, URL, headers (secrets redacted), body
    int response_status = 0;
    std::string response_body;
    std::string reason;
    int64_t failed_ms = 0;
};

class StateStore {
public:
    explicit StateStore(SqliteDb &db);

    std::optional<std::string> external_id(const std::string &connection, const std::string &object, const std::string &record_key);
    void put_external_id(const std::string &connection, const std::string &object, const std::string &record_key, const std::string &external_id);
    void erase_external_id(const std::string &connection, const std::string &object, const std::string &record_key);

    void add_dead_letter(const DeadLetter &dl);
    std::vector<DeadLetter> dead_letters(int64_t limit, int64_t after_id = 0);
    std::optional<DeadLetter> dead_letter(int64_t id);
    // Removes it; false if there was none.
    bool drop_dead_letter(int64_t id);
    int64_t dead_letter_count();

private:
    SqliteDb &db_;
};

}  // namespace recsync::store
