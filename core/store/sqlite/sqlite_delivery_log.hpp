// The delivery log in SQLite: one crash-safe transaction per batch of results.
#pragma once

#include "store/delivery_log.hpp"
#include "store/sqlite/sqlite_db.hpp"

namespace recsync::store::sqlite {

class SqliteDeliveryLog final : public DeliveryLog {
public:
    explicit SqliteDeliveryLog(SqliteDb &db) : db_(db) {}
    bool record(const DeliveryBatch &batch, bool wait) override;

private:
    void write(const DeliveryBatch &batch);
    SqliteDb &db_;
};

// Writes one link row (the whole state) within the caller's transaction.
void write_link(SqliteDb &db, const model::LinkKey &key, const model::LinkState &state, int64_t now_ms);
// Changes from `connection` name the record by `external_id` from now on.
void write_external_id(SqliteDb &db, const std::string &connection, const std::string &object, const std::string &external_id, const std::string &record_key);
// Adds a dead letter within the caller's transaction.
void write_dead_letter(SqliteDb &db, const DeadLetter &d);

}  // namespace recsync::store::sqlite
