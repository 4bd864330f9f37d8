// The two-way soak (twoway_soak.hpp) with a PostgreSQL table as System A: a person's edits
// are SQL (captured by the trigger recsync pg install puts on the table), and recsync's
// writes are the connection's applies. Header-only; needs a running PostgreSQL
// (testkit::PostgresServer) and links recsync_core.
#pragma once

#include "connectors/postgres/pg_connection.hpp"
#include "connectors/postgres/pg_schema.hpp"
#include "support/twoway_soak.hpp"

#include <cstdlib>
#include <string>

namespace recsync::testkit {

class PostgresSoakSystemA : public SoakSystemA {
public:
    // A table soak_<name> (text keys: records made in the CRM are keyed by its ids) with the
    // change log and trigger in schema rs_soak_<name>.
    PostgresSoakSystemA(const std::string &dsn, const std::string &name) : db_(dsn), table_("soak_" + name), schema_("rs_soak_" + name) {
        setenv("RECSYNC_SOAK_PG_DSN", dsn.c_str(), 1);
        db_.exec("CREATE TABLE " + table_ + " (key text PRIMARY KEY, email text NOT NULL, first_name text)");
        config::PostgresConfig pg;
        pg.schema = schema_;
        config::PostgresTableConfig t;
        t.object = "contacts";
        t.table = "public." + table_;
        t.key = "key";
        t.entity = "contact";
        pg.tables.push_back(t);
        db_.exec("BEGIN");
        for (const auto &sql : connectors::postgres::install_sql(pg)) db_.exec(sql);
        db_.exec("COMMIT");
    }
    std::string connection_yaml(const std::string &retry) override {
        return "  erp: { provider: postgres, max_in_flight: 16, " + retry + ", postgres: { dsn_env: RECSYNC_SOAK_PG_DSN, schema: " + schema_ +
               ", tables: { contacts: { table: public." + table_ + ", key: key, entity: contact } } } }\n";
    }
    std::string source() const override { return "source: erp, "; }
    void write(const std::string &key, const std::string &email, const std::string &first, bool created, int64_t) override {
        if (created) db_.exec("INSERT INTO " + table_ + " (key, email, first_name) VALUES ($1, $2, $3)", {key, email, first});
        else db_.exec("UPDATE " + table_ + " SET first_name = $2 WHERE key = $1", {key, first});
    }
    void erase(const std::string &key, int64_t) override { db_.exec("DELETE FROM " + table_ + " WHERE key = $1", {key}); }
    std::optional<std::string> first_name(const std::string &key) override {
        const auto r = db_.exec("SELECT coalesce(first_name, '') FROM " + table_ + " WHERE key = $1", {key});
        if (r.rows() == 0) return std::nullopt;
        return r.text(0, 0);
    }
    // Every write there, a person's or recsync's, takes a change-log id.
    int64_t activity() override { return std::stoll(db_.exec("SELECT coalesce(last_value, 0) FROM pg_sequences WHERE schemaname = $1", {schema_}).text(0, 0)); }
    bool pending() override { return db_.exec("SELECT EXISTS (SELECT 1 FROM " + schema_ + ".changes)").text(0, 0) == "t"; }

private:
    connectors::postgres::PgConnection db_;
    std::string table_, schema_;
};

}  // namespace recsync::testkit
