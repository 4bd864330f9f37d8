// One PostgresServer (postgres_server.hpp) for a whole GoogleTest executable: including
// this header registers an Environment that starts it before the first test and stops it
// after the last (register the executable ONE_PROCESS). Apart from postgres_server.hpp,
// which programs without GoogleTest (bench_pgcapture) include too.
#pragma once

#include "support/postgres_server.hpp"

#include <gtest/gtest.h>

#include <memory>

namespace recsync::testkit {

class PostgresEnvironment : public ::testing::Environment {
public:
    // Null if it did not start (the environment's failure is reported; tests assert on it).
    static PostgresServer *server() { return server_.get(); }
    void SetUp() override { server_ = std::make_unique<PostgresServer>(); }
    void TearDown() override { server_.reset(); }  // gtest never deletes its environments

private:
    static inline std::unique_ptr<PostgresServer> server_;
};

inline ::testing::Environment *const kPostgresEnvironment = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

inline PostgresServer *shared_postgres() { return PostgresEnvironment::server(); }

}  // namespace recsync::testkit
