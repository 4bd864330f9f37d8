// One libpq connection, owned by one thread at a time: connect with a time bound, run
// statements (with text parameters), and say why a failure happened in PostgreSQL's own
// words (its message and SQLSTATE), without the DSN (it may hold a password).
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

struct pg_conn;
struct pg_result;

namespace recsync::connectors::postgres {

// A statement or connection failure. sqlstate is empty for a lost or refused connection.
class PgError : public std::runtime_error {
public:
    PgError(const std::string &what, std::string sqlstate) : std::runtime_error(what), sqlstate_(std::move(sqlstate)) {}
    const std::string &sqlstate() const { return sqlstate_; }
    // The connection is gone or the server is going away: try again later on a new one.
    bool transient() const;

private:
    std::string sqlstate_;
};

class PgResult {
public:
    explicit PgResult(pg_result *r) : r_(r, &release) {}
    int rows() const;
    int columns() const;
    bool null(int row, int col) const;
    std::string text(int row, int col) const;
    long long affected() const;  // rows an INSERT/UPDATE/DELETE touched

private:
    static void release(pg_result *r);
    std::unique_ptr<pg_result, void (*)(pg_result *)> r_;
};

class PgConnection {
public:
    // Connects (connect_timeout in the DSN wins over timeout_s). Throws PgError.
    PgConnection(const std::string &dsn, int timeout_s = 10);
    ~PgConnection();
    PgConnection(const PgConnection &) = delete;
    PgConnection &operator=(const PgConnection &) = delete;

    // Runs SQL (one or more statements, no parameters). Throws PgError.
    PgResult exec(const std::string &sql);
    // One statement with text parameters ($1..$n). Throws PgError.
    PgResult exec(const std::string &sql, const std::vector<std::string> &params);
    bool ok() const;  // the connection is usable
    int socket() const;
    // Notifications received so far (LISTEN): consumes input and returns how many.
    int take_notifications();

private:
    pg_conn *conn_ = nullptr;
};

// "name" -> "\"name\"", quotes doubled: for names that come from the config (already
// checked to be plain names, quoted anyway so case and keywords survive).
std::string quote_ident(const std::string &name);
// 'text' with quotes doubled (standard_conforming_strings is on since 9.1).
std::string quote_literal(const std::string &text);
// "public.customers" -> "\"public\".\"customers\"".
std::string quote_table(const std::string &qualified);

}  // namespace recsync::connectors::postgres
