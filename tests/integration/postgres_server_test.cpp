// PostgresServer (tests/support/postgres_server.hpp): one real PostgreSQL 15 server for
// the whole executable (a ::testing::Environment; registered ONE_PROCESS), reachable on
// loopback with the settings the tests rely on, and keeping its data across a restart
// and a stop/start.
#include "support/postgres_server.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>

using recsync::testkit::PostgresServer;

namespace {

class PostgresEnvironment : public ::testing::Environment {
public:
    static PostgresServer *server() { return server_.get(); }
    void SetUp() override {
        const auto t0 = std::chrono::steady_clock::now();
        server_ = std::make_unique<PostgresServer>();
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
        std::cout << "PostgresServer: started in " << ms << " ms at " << server_->dsn() << " (" << server_->dir() << ")\n";
    }
    void TearDown() override { server_.reset(); }

private:
    static inline std::unique_ptr<PostgresServer> server_;
};

[[maybe_unused]] ::testing::Environment *const kEnvironment = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

class PostgresServerTest : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_NE(PostgresEnvironment::server(), nullptr) << "the shared PostgresServer did not start"; }
    PostgresServer &pg() { return *PostgresEnvironment::server(); }
};

TEST_F(PostgresServerTest, ListensOnLoopbackWithTheTestSettings) {
    EXPECT_GT(pg().port(), 0);
    EXPECT_EQ(pg().dsn(), "host=127.0.0.1 port=" + std::to_string(pg().port()) + " dbname=postgres user=recsync");
    EXPECT_EQ(pg().psql("SHOW port"), std::to_string(pg().port()));
    EXPECT_EQ(pg().psql("SHOW listen_addresses"), "127.0.0.1");
    EXPECT_EQ(pg().psql("SHOW fsync"), "on");
    EXPECT_EQ(pg().psql("SHOW synchronous_commit"), "on");
    EXPECT_EQ(pg().psql("SHOW max_connections"), "100");
    EXPECT_EQ(pg().psql("SHOW shared_buffers"), "64MB");
    EXPECT_EQ(pg().psql("SELECT current_user, pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()"), "recsync|UTF8");
    EXPECT_EQ(pg().psql("SELECT current_setting('server_version_num')::int / 10000"), "15");
    EXPECT_TRUE(std::filesystem::exists(pg().dir() + "/.s.PGSQL." + std::to_string(pg().port())));
}

TEST_F(PostgresServerTest, ARowSurvivesARestart) {
    pg().psql("DROP TABLE IF EXISTS survivors; CREATE TABLE survivors (id int PRIMARY KEY, name text NOT NULL);"
              "INSERT INTO survivors VALUES (1, 'ada'), (2, 'grace');");
    EXPECT_EQ(pg().psql("SELECT id, name FROM survivors ORDER BY id"), "1|ada\n2|grace");
    const int port = pg().port();
    pg().restart();
    EXPECT_TRUE(pg().running());
    EXPECT_EQ(pg().port(), port);
    EXPECT_EQ(pg().psql("SELECT id, name FROM survivors ORDER BY id"), "1|ada\n2|grace");
}

TEST_F(PostgresServerTest, StopRefusesConnectionsUntilStart) {
    pg().psql("DROP TABLE IF EXISTS kept; CREATE TABLE kept (v text); INSERT INTO kept VALUES ('x');");
    pg().stop();
    EXPECT_FALSE(pg().running());
    EXPECT_THROW(pg().psql("SELECT 1"), std::runtime_error);
    pg().start();
    EXPECT_TRUE(pg().running());
    EXPECT_EQ(pg().psql("SELECT v FROM kept"), "x");
}

TEST_F(PostgresServerTest, PsqlThrowsWithTheErrorAndStopsAtTheFirstOne) {
    pg().psql("DROP TABLE IF EXISTS half; CREATE TABLE half (v int);");
    try {
        pg().psql("INSERT INTO half VALUES (1); SELECT * FROM no_such_table; INSERT INTO half VALUES (2);");
        FAIL() << "psql did not throw";
    } catch (const std::runtime_error &e) {
        EXPECT_NE(std::string(e.what()).find("no_such_table"), std::string::npos) << e.what();
    }
    EXPECT_EQ(pg().psql("SELECT array_agg(v) FROM half"), "{1}");
}

}  // namespace
