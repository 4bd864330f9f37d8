// What `recsync pg install` writes, checked without a server (the integration suite,
// tests/integration/postgres_test.cpp, runs it on a real PostgreSQL 15).
#include "connectors/postgres/pg_connection.hpp"
#include "connectors/postgres/pg_schema.hpp"

#include <gtest/gtest.h>

namespace recsync::connectors::postgres {
namespace {

config::PostgresConfig two_tables() {
    config::PostgresConfig pg;
    pg.schema = "sync";
    pg.tables.push_back({"contacts", "public.customers", "id", "contact", {}, true, "f:1:1"});
    pg.tables.push_back({"orders", "sales.orders", "order_no", "orders", {}, false, "f:2:1"});
    return pg;
}

TEST(PgSchema, NamesAreQuotedSoNoConfigValueCanCarrySql) {
    EXPECT_EQ(quote_ident("customers"), "\"customers\"");
    EXPECT_EQ(quote_ident("we\"ird"), "\"we\"\"ird\"");
    EXPECT_EQ(quote_literal("it's"), "'it''s'");
    EXPECT_EQ(quote_table("public.customers"), "\"public\".\"customers\"");
}

TEST(PgSchema, InstallCreatesTheLogAndTriggersOnlyOnCapturedTables) {
    const auto sql = install_sql(two_tables());
    std::string all;
    for (const auto &s : sql) all += s + ";\n";
    EXPECT_NE(all.find("CREATE SCHEMA IF NOT EXISTS \"sync\""), std::string::npos);
    EXPECT_NE(all.find("CREATE TABLE IF NOT EXISTS \"sync\".\"changes\""), std::string::npos);
    EXPECT_NE(all.find("xid xid8 NOT NULL DEFAULT pg_current_xact_id()"), std::string::npos) << "capture orders by commit through the xid";
    EXPECT_NE(all.find("CREATE OR REPLACE TRIGGER recsync_capture AFTER INSERT OR UPDATE OR DELETE ON \"public\".\"customers\""), std::string::npos);
    EXPECT_NE(all.find("\"sync\".\"capture\"('contacts', 'id')"), std::string::npos);
    EXPECT_NE(all.find("BEFORE TRUNCATE ON \"public\".\"customers\""), std::string::npos);
    EXPECT_NE(all.find("current_setting('recsync.origin', true)"), std::string::npos);
    EXPECT_NE(all.find("pg_notify('sync_changes', '')"), std::string::npos);
    // Apply only: no capture trigger, and one left from an earlier install is dropped.
    EXPECT_EQ(all.find("TRIGGER recsync_capture AFTER INSERT OR UPDATE OR DELETE ON \"sales\".\"orders\""), std::string::npos);
    EXPECT_NE(all.find("DROP TRIGGER IF EXISTS recsync_capture ON \"sales\".\"orders\""), std::string::npos);
    EXPECT_EQ(notify_channel(two_tables()), "sync_changes");
}

TEST(PgSchema, UninstallDropsTriggersEvenOfTablesGoneAndThenTheSchema) {
    const auto sql = uninstall_sql(two_tables());
    ASSERT_EQ(sql.size(), 3u);
    EXPECT_NE(sql[0].find("to_regclass('\"public\".\"customers\"') IS NOT NULL"), std::string::npos) << sql[0];
    EXPECT_EQ(sql.back(), "DROP SCHEMA IF EXISTS \"sync\" CASCADE");
}

}  // namespace
}  // namespace recsync::connectors::postgres
