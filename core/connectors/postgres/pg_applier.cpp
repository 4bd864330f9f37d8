#include "connectors/postgres/pg_applier.hpp"

#include "connectors/postgres/pg_connection.hpp"
#include "connectors/postgres/pg_schema.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <map>
#include <optional>

namespace recsync::connectors::postgres {

namespace {

using nlohmann::json;

std::string percent_decode(std::string_view s) {
    const auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
            out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

ApplyResult answer(uint64_t tag, int status, std::string body = {}) { return {tag, status, std::move(body), false}; }

// When someone other than recsync changed the row at or after `since_ms`, if they did
// (the trigger's local_writes stamp, in whole milliseconds as the engine compares: within
// one millisecond System A's change wins).
// Asked after the write, which holds the row's lock: a writer that committed before is
// seen, a later one waits for us and is captured as the later change it is.
std::optional<std::string> changed_since(PgConnection &db, const config::PostgresConfig &pg, const std::string &object, const std::string &key, int64_t since_ms) {
    const auto r = db.exec("SELECT " + rfc3339_ms_sql("at") + " FROM " + quote_ident(pg.schema) +
                               ".local_writes WHERE object = $1 AND key = $2 AND floor(extract(epoch FROM at) * 1000) >= $3::bigint",
                           {object, key, std::to_string(since_ms)});
    if (r.rows() == 0) return std::nullopt;
    return r.text(0, 0);
}

// "The key is this": the key column's value in a record jsonb_populate_record converts.
std::string key_record(const config::PostgresTableConfig &t, const std::string &key) { return json{{t.key, key}}.dump(); }

std::string key_match(const config::PostgresTableConfig &t) {
    const std::string table = quote_table(t.table), key = quote_ident(t.key);
    return key + " = (SELECT " + key + " FROM jsonb_populate_record(NULL::" + table + ", $1::jsonb))";
}

// The mapped record's fields as the table's columns (postgres.tables.<object>.columns
// read backwards), the key column set from the record key.
std::optional<std::string> to_columns(const config::PostgresTableConfig &t, const json &record, const std::string &key, json &out) {
    out = json::object();
    std::map<std::string, std::string, std::less<>> column_of;
    for (const auto &[column, field] : t.columns) column_of[field] = column;
    for (const auto &[field, value] : record.items()) {
        if (t.columns.empty()) {
            out[field] = value;
            continue;
        }
        const auto it = column_of.find(field);
        if (it == column_of.end()) return "field '" + field + "' has no column in postgres.tables." + t.object + ".columns";
        out[it->second] = value;
    }
    out[t.key] = key;
    return std::nullopt;
}

ApplyResult run(PgConnection &db, const std::string &connection, const config::PostgresConfig &pg, const ApplyJob &job) {
    const auto slash = job.path.find('/', 1);
    if (job.path.empty() || job.path[0] != '/' || slash == std::string::npos) return answer(job.tag, 400, "bad path " + job.path);
    const std::string object = percent_decode(job.path.substr(1, slash - 1));
    const std::string key = percent_decode(job.path.substr(slash + 1));
    const auto *t = pg.table(object);
    if (!t) return answer(job.tag, 404, "object '" + object + "' is not in postgres.tables");
    const std::string table = quote_table(t->table);
    db.exec("BEGIN; SET LOCAL recsync.origin = " + quote_literal(connection));
    try {
        ApplyResult result;
        if (job.method == "PUT") {
            const json record = json::parse(job.body, nullptr, false);
            if (!record.is_object()) {
                db.exec("ROLLBACK");
                return answer(job.tag, 400, "the record is not a JSON object");
            }
            json row;
            if (auto why = to_columns(*t, record, key, row)) {
                db.exec("ROLLBACK");
                return answer(job.tag, 422, *why);
            }
            std::string cols, sets, updates;
            for (const auto &[column, _] : row.items()) {
                cols += (cols.empty() ? "" : ", ") + quote_ident(column);
                if (column == t->key) continue;
                sets += (sets.empty() ? "" : ", ") + quote_ident(column) + " = EXCLUDED." + quote_ident(column);
                updates += (updates.empty() ? "" : ", ") + quote_ident(column) + " = r." + quote_ident(column);
            }
            const std::string source = "jsonb_populate_record(NULL::" + table + ", $1::jsonb)";
            // An existing row is updated first: an INSERT checks NOT NULL columns the record
            // leaves out before it sees the conflict, so a partial change of a row would fail.
            long long updated = 0;
            if (!updates.empty())
                updated = db.exec("UPDATE " + table + " t SET " + updates + " FROM " + source + " r WHERE t." + quote_ident(t->key) + " = r." + quote_ident(t->key),
                                  {row.dump()})
                              .affected();
            if (updated == 0)  // a new row (or one made meanwhile: the conflict updates it)
                db.exec("INSERT INTO " + table + " (" + cols + ") SELECT " + cols + " FROM " + source + " ON CONFLICT (" + quote_ident(t->key) + ") " +
                            (sets.empty() ? "DO NOTHING" : "DO UPDATE SET " + sets),
                        {row.dump()});
            // Only a captured table's trigger stamps local changes.
            if (job.lose_to_changes_since_ms > 0 && t->capture) {
                if (const auto at = changed_since(db, pg, object, key, job.lose_to_changes_since_ms)) {
                    db.exec("ROLLBACK");
                    ApplyResult lost = answer(job.tag, 409, "conflict: System A changed the row since (at " + *at + ", this change at " +
                                                                std::to_string(job.lose_to_changes_since_ms) + " ms): not written");
                    lost.lost_conflict = true;
                    return lost;
                }
            }
            result = answer(job.tag, 200, "{}");
        } else if (job.method == "DELETE") {
            const auto r = db.exec("DELETE FROM " + table + " WHERE " + key_match(*t), {key_record(*t, key)});
            result = answer(job.tag, r.affected() ? 204 : 404);
        } else if (job.method == "GET") {
            const auto r = db.exec("SELECT to_jsonb(x)::text FROM " + table + " x WHERE " + key_match(*t), {key_record(*t, key)});
            if (r.rows() == 0) {
                result = answer(job.tag, 404);
            } else {
                json row = json::parse(r.text(0, 0));
                if (!t->columns.empty()) {
                    json fields = json::object();
                    for (const auto &[column, field] : t->columns)
                        if (row.contains(column)) fields[field] = row[column];
                    row = std::move(fields);
                }
                result = answer(job.tag, 200, row.dump());
            }
        } else {
            db.exec("ROLLBACK");
            return answer(job.tag, 405, "method " + job.method + " is not applied to PostgreSQL");
        }
        db.exec("COMMIT");
        return result;
    } catch (const PgError &) {
        if (db.ok()) {
            try {
                db.exec("ROLLBACK");
            } catch (const PgError &) {
            }
        }
        throw;
    }
}

}  // namespace

ApplyResult Applier::apply(PgConnection &db, const std::string &connection, const config::PostgresConfig &pg, const ApplyJob &job) {
    try {
        return run(db, connection, pg, job);
    } catch (const PgError &e) {
        // PostgreSQL's message is the reason the dead letter keeps (it names no secret).
        const int status = e.transient() ? 503 : 422;
        return answer(job.tag, status, std::string("PostgreSQL: ") + e.what());
    }
}

Applier::Applier(std::string connection, config::PostgresConfig pg, int workers, std::function<void(ApplyResult)> done)
    : connection_(std::move(connection)), done_(std::move(done)), pg_(std::make_shared<const config::PostgresConfig>(std::move(pg))) {
    for (int i = 0; i < std::max(1, workers); ++i) threads_.emplace_back([this] { work(); });
}

Applier::~Applier() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    ready_.notify_all();
    for (auto &t : threads_) t.join();
}

void Applier::submit(ApplyJob job) {
    {
        std::lock_guard lock(mutex_);
        queue_.push_back(std::move(job));
    }
    ready_.notify_one();
}

void Applier::reconfigure(config::PostgresConfig pg) {
    std::lock_guard lock(mutex_);
    pg_ = std::make_shared<const config::PostgresConfig>(std::move(pg));
}

void Applier::work() {
    std::unique_ptr<PgConnection> db;  // this worker's own, opened when a call needs it
    for (;;) {
        ApplyJob job;
        std::shared_ptr<const config::PostgresConfig> pg;
        {
            std::unique_lock lock(mutex_);
            ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping, and every call started is answered
            job = std::move(queue_.front());
            queue_.pop_front();
            pg = pg_;
        }
        ApplyResult result;
        try {
            if (db && !db->ok()) db.reset();
            if (!db) db = std::make_unique<PgConnection>(pg->dsn);
            result = apply(*db, connection_, *pg, job);
        } catch (const PgError &e) {  // cannot connect: the lane retries later
            result = answer(job.tag, 503, e.what());
        }
        if (result.status == 503) {
            spdlog::warn("postgres connection '{}': {}", connection_, result.body);
            db.reset();  // a fresh connection for the next call
        }
        done_(std::move(result));
    }
}

}  // namespace recsync::connectors::postgres
