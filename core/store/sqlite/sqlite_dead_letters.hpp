// Dead letters in SQLite (table `dead_letters`).
#pragma once

#include "store/dead_letters.hpp"
#include "store/sqlite/sqlite_db.hpp"

namespace recsync::store::sqlite {

class SqliteDeadLetters final : public DeadLetterStore {
public:
    explicit SqliteDeadLetters(SqliteDb &db) : db_(db) {}
    std::vector<DeadLetter> list(int64_t limit, int64_t after_id) override;
    std::optional<DeadLetter> get(int64_t id) override;
    bool drop(int64_t id) override;
    int64_t count() override;

private:
    SqliteDb &db_;
};

}  // namespace recsync::store::sqlite
