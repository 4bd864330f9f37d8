// PostgreSQL as System A (connectors/postgres, sources/pg_capture): `recsync pg install`
// puts a change log and triggers on a real PostgreSQL 15 (started once for the suite);
// rows written there reach the (mock) CRM through the rules, in commit order; the CRM's
// changes come back as upserts of the rows, which capture does not send out again.
#include "cli/commands.hpp"
#include "connectors/postgres/pg_applier.hpp"
#include "connectors/postgres/pg_change_log.hpp"
#include "connectors/postgres/pg_connection.hpp"
#include "config/config.hpp"
#include "support/engine_harness.hpp"
#include "support/postgres_environment.hpp"
#include "support/twoway_soak_postgres.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <future>
#include <iostream>
#include <thread>

namespace recsync {
namespace {

using json = nlohmann::json;
using testkit::http_request;
using testkit::wait_until;
using namespace std::chrono_literals;

// Each test its own table and recsync schema in the one database, beside the one mock CRM.
class PostgresTest : public testkit::OneCrmEngineTest {
protected:
    void SetUp() override {
        OneCrmEngineTest::SetUp();
        ASSERT_NE(testkit::shared_postgres(), nullptr);
        suffix_ = std::to_string(++counter_);
        table_ = "customers_" + suffix_;
        schema_ = "rs_" + suffix_;
        setenv("RECSYNC_TEST_PG_DSN", postgres().dsn().c_str(), 1);
        postgres().psql("CREATE TABLE " + table_ +
                        " (id bigint PRIMARY KEY, email text NOT NULL, first_name text CHECK (first_name IS DISTINCT FROM 'forbidden'), status text)");
        dir_.write("rules/db.yaml",
                   "mappings:\n"
                   "  to-crm: { fields: [ { from: email, to: email, required: true }, { from: first_name, to: firstname } ] }\n"
                   "  to-db: { fields: [ { from: email, to: email }, { from: firstname, to: first_name } ] }\n"
                   "rules:\n"
                   "  - { name: new, on: { source: db, entity: contact, event: created }, do: { action: create, target: crm, object: contacts, mapping: to-crm } }\n"
                   "  - { name: changed, on: { source: db, entity: contact, event: updated }, do: { action: update, target: crm, object: contacts, mapping: to-crm } }\n"
                   "  - { name: gone, on: { source: db, entity: contact, event: deleted }, do: { action: delete, target: crm, object: contacts } }\n"
                   "  - { name: from-crm, on: { source: crm, entity: contacts, event: [created, updated] }, do: { action: upsert, target: db, object: contacts, mapping: to-db } }\n"
                   "  - { name: gone-in-crm, on: { source: crm, entity: contacts, event: deleted }, do: { action: delete, target: db, object: contacts } }\n");
    }
    // recsync.yaml: the CRM and the database as System A.
    std::string config(const std::string &crm_extra = "", const std::string &object = "contacts") {
        const std::string db = "  db:\n"
                               "    provider: postgres\n"
                               "    max_in_flight: 4\n"
                               "    retry: { base_delay_ms: 5, max_delay_ms: 50, max_attempts: 3 }\n"
                               "    postgres:\n"
                               "      dsn_env: RECSYNC_TEST_PG_DSN\n"
                               "      schema: " + schema_ + "\n"
                               "      tables:\n"
                               "        " + object + ": { table: public." + table_ + ", key: id, entity: contact }\n";
        return testkit::write_engine_config(dir_, crm_connection("retry: { base_delay_ms: 5, max_delay_ms: 50 }" + crm_extra) + db);
    }
    void install() {
        const auto cfg = config();
        ASSERT_EQ(cli::cmd_pg(cfg, "install", false, ""), 0);
    }
    void start(const std::string &crm_extra = "") {
        engine_ = std::make_unique<engine::Engine>(config::load_config(config(crm_extra)));
        engine_->start();
    }
    // The CRM's contact with this email, if any.
    std::optional<mock::Record> crm_contact(const std::string &email) {
        for (auto &r : crm_->records("contacts"))
            if (r.properties.count("email") && r.properties.at("email") == email) return r;
        return std::nullopt;
    }
    static testkit::PostgresServer &postgres() { return *testkit::shared_postgres(); }
    std::string sql(const std::string &s) { return postgres().psql(s); }
    size_t change_log_rows() { return std::stoul(sql("SELECT count(*) FROM " + schema_ + ".changes")); }

    static inline int counter_ = 0;
    std::string suffix_, table_, schema_;
};

TEST_F(PostgresTest, InstallIsIdempotentPrintsItsSqlAndRefusesTruncate) {
    const auto cfg = config();
    ::testing::internal::CaptureStdout();
    ASSERT_EQ(cli::cmd_pg(cfg, "install", true, ""), 0);
    const std::string printed = ::testing::internal::GetCapturedStdout();
    EXPECT_NE(printed.find("CREATE TABLE IF NOT EXISTS \"" + schema_ + "\".\"changes\""), std::string::npos) << printed;
    EXPECT_NE(printed.find("CREATE OR REPLACE TRIGGER recsync_capture"), std::string::npos) << printed;
    EXPECT_EQ(sql("SELECT to_regclass('" + schema_ + ".changes') IS NULL"), "t") << "a dry run changed the database";

    // Before the install, check names what is missing, with the config's file:line.
    config::EngineConfig loaded = config::load_config(cfg);
    auto problems = cli::check_postgres(loaded);
    ASSERT_EQ(problems.size(), 2u);
    EXPECT_NE(problems[0].find("recsync.yaml:"), std::string::npos) << problems[0];
    EXPECT_NE(problems[0].find("no change log"), std::string::npos) << problems[0];
    EXPECT_NE(problems[1].find("no enabled trigger recsync_capture"), std::string::npos) << problems[1];

    ASSERT_EQ(cli::cmd_pg(cfg, "install", false, ""), 0);
    ASSERT_EQ(cli::cmd_pg(cfg, "install", false, ""), 0) << "a second install must change nothing and succeed";
    EXPECT_TRUE(cli::check_postgres(loaded).empty());
    EXPECT_EQ(sql("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public." + table_ + "'::regclass AND NOT tgisinternal"), "2");
    EXPECT_THROW(sql("TRUNCATE " + table_), std::runtime_error);
    try {
        sql("TRUNCATE " + table_);
    } catch (const std::runtime_error &e) {
        EXPECT_NE(std::string(e.what()).find("TRUNCATE of " + table_ + " is refused"), std::string::npos) << e.what();
    }
    // An update that changes nothing writes no change.
    sql("INSERT INTO " + table_ + " VALUES (1, 'a@example.com', 'A', 'lead')");
    sql("UPDATE " + table_ + " SET first_name = 'A' WHERE id = 1");
    EXPECT_EQ(change_log_rows(), 1u);

    ASSERT_EQ(cli::cmd_pg(cfg, "uninstall", false, ""), 0);
    EXPECT_EQ(sql("SELECT to_regclass('" + schema_ + ".changes') IS NULL"), "t");
    EXPECT_EQ(sql("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public." + table_ + "'::regclass AND NOT tgisinternal"), "0");
    sql("TRUNCATE " + table_);  // allowed again
}

TEST_F(PostgresTest, CheckNamesAMissingTableAndKeyColumn) {
    const auto cfg = dir_.write("bad.yaml",
                                "plugins_dir: plugins\nrules_dir: rules\nstate: { path: state/r.db }\nconnections:\n"
                                "  db:\n"
                                "    provider: postgres\n"
                                "    postgres:\n"
                                "      dsn_env: RECSYNC_TEST_PG_DSN\n"
                                "      tables:\n"
                                "        nothere: { table: no_such_table, key: id }\n"
                                "        contacts: { table: " + table_ + ", key: ident, capture: false }\n");
    const auto problems = cli::check_postgres(config::load_config(cfg));
    ASSERT_GE(problems.size(), 3u);
    std::string all;
    for (const auto &p : problems) all += p + "\n";
    EXPECT_NE(all.find("bad.yaml:10:"), std::string::npos) << all;
    EXPECT_NE(all.find("table public.no_such_table does not exist"), std::string::npos) << all;
    EXPECT_NE(all.find("bad.yaml:11:"), std::string::npos) << all;
    EXPECT_NE(all.find("key column 'ident' is not a column"), std::string::npos) << all;
}

// The trigger's arguments are fixed at install: check names a trigger installed for
// another object name, and a second install mends it.
TEST_F(PostgresTest, CheckNamesATriggerInstalledForAnotherObject) {
    install();
    EXPECT_TRUE(cli::check_postgres(config::load_config(config())).empty());
    const auto renamed = config("", "people");
    const auto problems = cli::check_postgres(config::load_config(renamed));
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_NE(problems[0].find("the trigger recsync_capture on public." + table_ + " was installed for another object or key column (object 'contacts', key 'id'; "
                               "the config says object 'people', key 'id'); run `recsync pg install -c CONFIG` again"),
              std::string::npos)
        << problems[0];
    EXPECT_NE(problems[0].find("recsync.yaml:"), std::string::npos) << problems[0];
    ASSERT_EQ(cli::cmd_pg(renamed, "install", false, ""), 0);
    EXPECT_TRUE(cli::check_postgres(config::load_config(renamed)).empty());
}

TEST_F(PostgresTest, ConfigRefusesADsnInTheFileAndUnsafeNames) {
    const auto bad = [&](const std::string &pg_section) {
        const auto cfg = dir_.write("c.yaml", "plugins_dir: plugins\nrules_dir: rules\nstate: { path: state/r.db }\nconnections:\n  db:\n    provider: postgres\n    postgres: " + pg_section + "\n");
        try {
            config::load_config(cfg);
        } catch (const std::exception &e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    EXPECT_NE(bad("{ dsn: 'host=x password=y', tables: { c: { table: t, key: id } } }").find("unknown key 'dsn'"), std::string::npos);
    EXPECT_NE(bad("{ tables: { c: { table: t, key: id } } }").find("dsn_env: VAR or dsn_file: PATH"), std::string::npos);
    EXPECT_NE(bad("{ dsn_env: RECSYNC_TEST_PG_DSN, tables: { c: { table: 't; DROP TABLE x', key: id } } }").find("is not a plain SQL name"), std::string::npos);
    EXPECT_NE(bad("{ dsn_env: RECSYNC_TEST_UNSET_VAR, tables: { c: { table: t, key: id } } }").find("RECSYNC_TEST_UNSET_VAR is not set"), std::string::npos);
    EXPECT_NE(bad("{ dsn_env: RECSYNC_TEST_PG_DSN, tables: { c: { table: t } } }").find("c.yaml:7:"), std::string::npos);
}

TEST_F(PostgresTest, InsertsUpdatesAndDeletesBecomeCrmCalls) {
    install();
    start();
    sql("INSERT INTO " + table_ + " VALUES (1, 'ada@example.com', 'Ada', 'lead'), (2, 'grace@example.com', 'Grace', 'lead'), (3, 'alan@example.com', 'Alan', 'lead')");
    ASSERT_TRUE(wait_until([&] { return crm_->counters().created == 3; }, 20s)) << crm_->counters().created;
    sql("UPDATE " + table_ + " SET first_name = 'Augusta' WHERE id = 1");
    sql("DELETE FROM " + table_ + " WHERE id = 3");
    ASSERT_TRUE(wait_until([&] { return crm_->counters().updated == 1 && crm_->counters().deleted == 1; }, 20s));
    ASSERT_TRUE(wait_until([&] { return engine_->state().tasks().count() == 0 && change_log_rows() == 0; }, 10s)) << "the change log is emptied once durable";
    ASSERT_TRUE(crm_contact("ada@example.com"));
    EXPECT_EQ(crm_contact("ada@example.com")->properties.at("firstname"), "Augusta");
    EXPECT_EQ(crm_contact("grace@example.com")->properties.at("firstname"), "Grace");
    EXPECT_FALSE(crm_contact("alan@example.com"));
    EXPECT_EQ(crm_->counters().created, 3u);
    EXPECT_EQ(engine_->metrics().pg_rows_captured.load(), 5u);
    EXPECT_EQ(engine_->dead_letters().count(), 0);
    const auto status = json::parse(http_request("GET", "http://127.0.0.1:" + std::to_string(engine_->port()) + "/v1/status").body)["capture"];
    ASSERT_EQ(status.size(), 1u) << status.dump();
    EXPECT_EQ(status[0]["connection"], "db");
    EXPECT_EQ(status[0]["connected"], true);
    EXPECT_EQ(status[0]["captured"], 5);
    EXPECT_FALSE(status[0].contains("last_error")) << status.dump();
    EXPECT_EQ(http_request("GET", "http://127.0.0.1:" + std::to_string(engine_->port()) + "/readyz").body, R"({"status":"ready"})") << "a connected capture is not degraded";
}

// A column set to NULL clears the CRM's property; a NULL the row already had is no field.
TEST_F(PostgresTest, AColumnSetToNullClearsTheCrmProperty) {
    install();
    start();
    sql("INSERT INTO " + table_ + " VALUES (1, 'kay@example.com', NULL, 'lead')");
    ASSERT_TRUE(wait_until([&] { return crm_->counters().created == 1; }, 20s));
    ASSERT_TRUE(crm_contact("kay@example.com"));
    EXPECT_EQ(crm_contact("kay@example.com")->properties.count("firstname"), 0u) << "a NULL in a new row is sent as no value";
    sql("UPDATE " + table_ + " SET first_name = 'Kay' WHERE id = 1");
    ASSERT_TRUE(wait_until([&] { return crm_->counters().updated == 1; }, 20s));
    EXPECT_EQ(crm_contact("kay@example.com")->properties.at("firstname"), "Kay");
    sql("UPDATE " + table_ + " SET first_name = NULL WHERE id = 1");
    ASSERT_TRUE(wait_until([&] { return crm_->counters().updated == 2; }, 20s));
    EXPECT_EQ(crm_contact("kay@example.com")->properties.at("firstname"), "") << "HubSpot clears a property set to \"\"";
    // Still NULL: the next change's payload has no first name, and it is not cleared again.
    sql("UPDATE " + table_ + " SET email = 'kay.l@example.com' WHERE id = 1");
    ASSERT_TRUE(wait_until([&] { return crm_->counters().updated == 3; }, 20s));
    ASSERT_TRUE(wait_until([&] { return engine_->state().tasks().count() == 0 && change_log_rows() == 0; }, 10s));
    ASSERT_TRUE(crm_contact("kay.l@example.com"));
    EXPECT_EQ(crm_contact("kay.l@example.com")->properties.at("firstname"), "");
    EXPECT_EQ(engine_->dead_letters().count(), 0);
    EXPECT_EQ(crm_->counters().created, 1u);
}

// With a columns map, the mapped record's fields are written to their columns, read back
// under their field names, and a field with no column is refused with its name.
TEST_F(PostgresTest, ApplyWritesFieldsToTheirMappedColumns) {
    namespace pg = connectors::postgres;
    config::PostgresConfig cfg;
    cfg.dsn = postgres().dsn();
    cfg.tables.push_back({"people", "public." + table_, "id", "person", {{"email", "mail"}, {"first_name", "given"}}, false, "t:1:1"});
    pg::PgConnection db(postgres().dsn());
    auto r = pg::Applier::apply(db, "db", cfg, {1, "PUT", "/people/7", R"({"mail":"m@example.com","given":"G"})"});
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(sql("SELECT email || '|' || first_name FROM " + table_ + " WHERE id = 7"), "m@example.com|G");
    r = pg::Applier::apply(db, "db", cfg, {2, "PUT", "/people/7", R"({"given":"H"})"});
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(sql("SELECT email || '|' || first_name FROM " + table_ + " WHERE id = 7"), "m@example.com|H") << "a field left out keeps its column";
    r = pg::Applier::apply(db, "db", cfg, {3, "GET", "/people/7", ""});
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(json::parse(r.body), (json{{"mail", "m@example.com"}, {"given", "H"}}));
    r = pg::Applier::apply(db, "db", cfg, {4, "PUT", "/people/7", R"({"nickname":"x"})"});
    EXPECT_EQ(r.status, 422);
    EXPECT_NE(r.body.find("field 'nickname' has no column"), std::string::npos) << r.body;
    r = pg::Applier::apply(db, "db", cfg, {5, "PUT", "/people/not-a-number", R"({"mail":"n@example.com"})"});
    EXPECT_EQ(r.status, 422);
    EXPECT_NE(r.body.find("22P02"), std::string::npos) << r.body;  // invalid input syntax for type bigint
    r = pg::Applier::apply(db, "db", cfg, {6, "DELETE", "/people/7", ""});
    EXPECT_EQ(r.status, 204);
    r = pg::Applier::apply(db, "db", cfg, {7, "DELETE", "/people/7", ""});
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(sql("SELECT count(*) FROM " + table_), "0");
}

// A row the entity's schema refuses (an email without '@') must not hold the rows after
// it: it is kept aside in <schema>.refused with the reason, and can be put back.
TEST_F(PostgresTest, ARefusedRowIsKeptAsideAndTheRestGoOn) {
    install();
    start();
    sql("INSERT INTO " + table_ + " VALUES (1, 'one@example.com', 'One', 'lead'), (2, 'not-an-email', 'Two', 'lead'), (3, 'three@example.com', 'Three', 'lead')");
    ASSERT_TRUE(wait_until([&] { return crm_->counters().created == 2 && change_log_rows() == 0; }, 20s)) << crm_->counters().created;
    EXPECT_EQ(sql("SELECT key || '|' || op::text FROM " + schema_ + ".refused"), "2|I");
    EXPECT_NE(sql("SELECT reason FROM " + schema_ + ".refused").find("does not match the schema of entity 'contact'"), std::string::npos);
    EXPECT_EQ(engine_->metrics().pg_rows_refused.load(), 1u);
    // Corrected where it was kept and put back (the SQL the README gives): it goes through.
    sql("UPDATE " + schema_ + ".refused SET data = jsonb_set(data, '{email}', '\"two@example.com\"')");
    sql("WITH r AS (DELETE FROM " + schema_ + ".refused RETURNING *) INSERT INTO " + schema_ +
        ".changes (xid, object, op, key, data, previous, origin, at) SELECT xid, object, op, key, data, previous, origin, at FROM r ORDER BY id");
    ASSERT_TRUE(wait_until([&] { return crm_contact("two@example.com").has_value() && change_log_rows() == 0; }, 20s));
    EXPECT_EQ(crm_contact("two@example.com")->properties.at("firstname"), "Two");
    EXPECT_EQ(sql("SELECT count(*) FROM " + schema_ + ".refused"), "0");
    EXPECT_EQ(engine_->dead_letters().count(), 0);
}

// Session A starts first (its transaction id is older) and commits last; session B's
// rows, committed meanwhile, come later in no id order that a cursor could follow. Both
// are captured, and record 11, written by B and then by A, ends as A left it.
TEST_F(PostgresTest, ATransactionThatCommitsLateIsCapturedInOrder) {
    install();
    start();
    auto a = std::async(std::launch::async, [&] {
        return sql("BEGIN; INSERT INTO " + table_ + " VALUES (10, 'a10@example.com', 'fromA', 'lead'); SELECT pg_sleep(1.5); UPDATE " + table_ +
                   " SET first_name = 'fromA' WHERE id = 11; COMMIT;");
    });
    std::this_thread::sleep_for(400ms);  // A holds its transaction open
    sql("INSERT INTO " + table_ + " VALUES (11, 'b11@example.com', 'fromB', 'lead')");
    sql("UPDATE " + table_ + " SET first_name = 'fromB2' WHERE id = 11");
    // B's rows are held back behind A's open transaction: nothing reaches the CRM yet.
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(crm_->counters().created, 0u) << "a row was read before an older transaction ended";
    a.get();
    ASSERT_TRUE(wait_until([&] { return crm_->counters().created == 2 && engine_->state().tasks().count() == 0 && change_log_rows() == 0; }, 20s));
    ASSERT_TRUE(crm_contact("a10@example.com"));
    ASSERT_TRUE(crm_contact("b11@example.com"));
    EXPECT_EQ(crm_contact("b11@example.com")->properties.at("firstname"), "fromA");
    EXPECT_EQ(engine_->metrics().pg_rows_captured.load(), 4u);
}

// The CRM's contacts reach the table as upserts (the CRM id as the key); the trigger marks
// those rows as recsync's, so capture does not send them back to the CRM.
TEST_F(PostgresTest, CrmChangesAreAppliedAndNotCapturedAgain) {
    install();
    for (int i = 0; i < 5; ++i) {
        const auto r = http_request("POST", crm_->base_url() + "/crm/v3/objects/contacts",
                                    json{{"properties", {{"email", "crm" + std::to_string(i) + "@example.com"}, {"firstname", "C" + std::to_string(i)}}}, {"associations", json::array()}}.dump());
        ASSERT_EQ(r.status, 201) << r.body;
    }
    start(", settings: { poll_since: beginning, poll_overlap_s: 0, poll_deletions_every_s: 1 }, polling: { objects: { contacts: 1s } }");
    ASSERT_TRUE(wait_until([&] { return sql("SELECT count(*) FROM " + table_) == "5"; }, 20s)) << sql("SELECT count(*) FROM " + table_);
    const auto crm = crm_contact("crm3@example.com");
    ASSERT_TRUE(crm);
    EXPECT_EQ(sql("SELECT email || '|' || first_name FROM " + table_ + " WHERE id = " + crm->id), "crm3@example.com|C3");
    ASSERT_TRUE(wait_until([&] { return engine_->metrics().pg_own_rows_skipped.load() == 5 && change_log_rows() == 0; }, 10s))
        << engine_->metrics().pg_own_rows_skipped.load();
    std::this_thread::sleep_for(1s);
    EXPECT_EQ(crm_->counters().updated, 0u) << "recsync's own apply was captured and sent back";
    EXPECT_EQ(crm_->counters().created, 5u);
    EXPECT_EQ(engine_->metrics().pg_rows_captured.load(), 0u);
    // A later edit in the table is the database's own change: it goes to the CRM.
    sql("UPDATE " + table_ + " SET first_name = 'Edited' WHERE id = " + crm->id);
    ASSERT_TRUE(wait_until([&] { return crm_->counters().updated == 1; }, 20s));
    EXPECT_EQ(crm_->record("contacts", crm->id)->properties.at("firstname"), "Edited");
    EXPECT_EQ(crm_->counters().created, 5u) << "the edited row was linked to its CRM record";
    // A deletion in the CRM (found by the archived sweep) deletes the row by key; the
    // row's own delete trigger row is recsync's, so nothing is deleted back in the CRM.
    const auto gone = crm_contact("crm1@example.com");
    ASSERT_TRUE(gone);
    ASSERT_EQ(http_request("DELETE", crm_->base_url() + "/crm/v3/objects/contacts/" + gone->id).status, 204);
    ASSERT_TRUE(wait_until([&] { return sql("SELECT count(*) FROM " + table_ + " WHERE id = " + gone->id) == "0"; }, 20s));
    ASSERT_TRUE(wait_until([&] { return change_log_rows() == 0; }, 10s));
    EXPECT_EQ(engine_->metrics().pg_own_rows_skipped.load(), 6u);
    EXPECT_EQ(crm_->counters().deleted, 1u);
    EXPECT_EQ(sql("SELECT count(*) FROM " + table_), "4");
}

TEST_F(PostgresTest, ARowViolatingAConstraintIsDeadLetteredWithPostgresReason) {
    install();
    ASSERT_EQ(http_request("POST", crm_->base_url() + "/crm/v3/objects/contacts",
                           json{{"properties", {{"email", "bad@example.com"}, {"firstname", "forbidden"}}}, {"associations", json::array()}}.dump())
                  .status,
              201);
    ASSERT_EQ(http_request("POST", crm_->base_url() + "/crm/v3/objects/contacts",
                           json{{"properties", {{"email", "good@example.com"}, {"firstname", "Fine"}}}, {"associations", json::array()}}.dump())
                  .status,
              201);
    start(", settings: { poll_since: beginning, poll_overlap_s: 0 }, polling: { objects: { contacts: 1s } }");
    ASSERT_TRUE(wait_until([&] { return engine_->dead_letters().count() == 1 && sql("SELECT count(*) FROM " + table_) == "1"; }, 20s));
    const auto letters = engine_->dead_letters().list(10);
    ASSERT_EQ(letters.size(), 1u);
    EXPECT_NE(letters[0].reason.find("violates check constraint"), std::string::npos) << letters[0].reason;
    EXPECT_NE(letters[0].reason.find("23514"), std::string::npos) << letters[0].reason;
    EXPECT_EQ(letters[0].task.connection, "db");
}

// A two-way write carries its change's time: if someone changed the row since (that
// millisecond included: within one, System A wins), the database rolls it back and says
// so, even before capture has handed that change to recsync. recsync's own writes leave
// no stamp; capture forgets the stamps no call can need.
TEST_F(PostgresTest, AnApplyOlderThanTheRowsOwnLaterChangeIsRolledBack) {
    namespace pg = connectors::postgres;
    install();
    config::PostgresConfig cfg = config::load_config(config()).connection("db")->postgres;
    pg::PgConnection db(postgres().dsn());
    const auto stamp = [&] { return std::stoll(sql("SELECT floor(extract(epoch FROM at) * 1000)::bigint FROM " + schema_ + ".local_writes WHERE key = '1'")); };
    const auto first_name = [&] { return sql("SELECT first_name FROM " + table_ + " WHERE id = 1"); };
    sql("INSERT INTO " + table_ + " (id, email, first_name) VALUES (1, 'one@example.com', 'Local')");
    const int64_t made = stamp();
    auto r = pg::Applier::apply(db, "db", cfg, {1, "PUT", "/contacts/1", R"({"first_name":"Crm"})", made + 1});
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_FALSE(r.lost_conflict);
    EXPECT_EQ(first_name(), "Crm") << "a change newer than the row's own is written";
    EXPECT_EQ(stamp(), made) << "recsync's own write is no local change";

    sql("UPDATE " + table_ + " SET first_name = 'Local2' WHERE id = 1");
    const int64_t edited = stamp();
    ASSERT_GE(edited, made);
    for (const int64_t since : {edited - 5, edited}) {
        r = pg::Applier::apply(db, "db", cfg, {2, "PUT", "/contacts/1", R"({"first_name":"Older"})", since});
        EXPECT_EQ(r.status, 409) << r.body;
        EXPECT_TRUE(r.lost_conflict);
        EXPECT_NE(r.body.find("System A changed the row since"), std::string::npos) << r.body;
        EXPECT_EQ(first_name(), "Local2") << "the row's later change stands (at " << since << ", stamp " << edited << ")";
    }
    EXPECT_EQ(sql("SELECT count(*) FROM " + schema_ + ".changes WHERE origin = 'db'"), "1") << "a rolled-back write leaves no change-log row";
    r = pg::Applier::apply(db, "db", cfg, {3, "PUT", "/contacts/1", R"({"first_name":"Unconditional"})"});
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(first_name(), "Unconditional");

    // Stamps stay while a change older than them waits in the log, and go after.
    pg::ChangeLog log(db, cfg);
    sql("SELECT pg_sleep(0.01)");
    log.prune_local_writes(0);
    EXPECT_EQ(sql("SELECT count(*) FROM " + schema_ + ".local_writes"), "1");
    sql("DELETE FROM " + schema_ + ".changes");
    log.prune_local_writes(3600);
    EXPECT_EQ(sql("SELECT count(*) FROM " + schema_ + ".local_writes"), "1") << "younger than the time kept";
    log.prune_local_writes(0);
    EXPECT_EQ(sql("SELECT count(*) FROM " + schema_ + ".local_writes"), "0");

    // An install by an older recsync lacks the table: check says to install again.
    sql("DROP TABLE " + schema_ + ".local_writes");
    config::EngineConfig loaded = config::load_config(config());
    const auto problems = cli::check_postgres(loaded);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_NE(problems[0].find("local_writes"), std::string::npos) << problems[0];
    ASSERT_EQ(cli::cmd_pg(config(), "install", false, ""), 0);
    EXPECT_TRUE(cli::check_postgres(loaded).empty());
}

// PostgreSQL restarts under recsync: capture reconnects and goes on; nothing is lost.
TEST_F(PostgresTest, CaptureGoesOnAfterPostgresRestarts) {
    install();
    start();
    sql("INSERT INTO " + table_ + " SELECT g, 'r' || g || '@example.com', 'R', 'lead' FROM generate_series(1, 50) g");
    ASSERT_TRUE(wait_until([&] { return crm_->counters().created == 50; }, 20s));
    postgres().restart();
    sql("INSERT INTO " + table_ + " SELECT g, 'r' || g || '@example.com', 'R', 'lead' FROM generate_series(51, 100) g");
    ASSERT_TRUE(wait_until([&] { return crm_->counters().created == 100 && change_log_rows() == 0; }, 30s)) << crm_->counters().created;
    EXPECT_EQ(crm_->counters().duplicates, 0u);
}

// The two-way soak with the table as System A: records edited in the table (SQL) and in
// the CRM at once, some on both sides, some deleted, under last_writer_wins: every record
// converges, no deleted one comes back, and recsync writes to the CRM no more than the
// table's own changes ask (its applies are not captured again).
TEST_F(PostgresTest, TwoWaySoakConvergesWithPostgresAsSystemA) {
    testkit::SoakOptions o;
    o.records = 60;
    o.seconds = 6;
    o.edits_per_second = 60;
    testkit::PostgresSoakSystemA side(postgres().dsn(), suffix_);
    const auto r = testkit::run_twoway_soak(o, side);
    std::string examples;
    for (const auto &e : r.examples) examples += "\n  " + e;
    RecordProperty("result", r.to_json().dump());
    std::cout << r.to_json().dump() << examples << "\n";
    EXPECT_TRUE(r.settled) << "the queues did not empty after the edits";
    EXPECT_GT(r.edits_a, 50);
    EXPECT_GT(r.edits_b, 50);
    EXPECT_GT(r.both, 5);
    EXPECT_GT(r.crm_born, 0);
    EXPECT_EQ(r.diverged, 0) << examples;
    EXPECT_EQ(r.resurrected, 0) << examples;
    EXPECT_EQ(r.excess_calls, 0) << examples;
}

}  // namespace
}  // namespace recsync
