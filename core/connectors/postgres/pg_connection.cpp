#include "connectors/postgres/pg_connection.hpp"

#include <libpq-fe.h>

namespace recsync::connectors::postgres {

namespace {

std::string trimmed(const char *text) {
    std::string s = text ? text : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

// Throws for a failed result, with PostgreSQL's message and SQLSTATE.
PgResult checked(PGconn *conn, PGresult *r) {
    PgResult result(r);
    const auto status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    std::string msg = r ? trimmed(PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)) : "";
    if (msg.empty()) msg = trimmed(PQerrorMessage(conn));
    if (r) {
        if (const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL)) msg += " (" + trimmed(detail) + ")";
    }
    const std::string code = state ? state : "";
    throw PgError(msg + (code.empty() ? "" : " [SQLSTATE " + code + "]"), PQstatus(conn) == CONNECTION_OK ? code : "");
}

}  // namespace

bool PgError::transient() const {
    // No SQLSTATE: the connection itself failed. 08: connection exception; 40: a
    // serialization failure or deadlock (the transaction may succeed again); 53:
    // insufficient resources; 57: operator intervention (shutdown, restart); 58: I/O.
    if (sqlstate_.size() != 5) return true;
    const std::string cls = sqlstate_.substr(0, 2);
    return cls == "08" || cls == "40" || cls == "53" || cls == "57" || cls == "58";
}

void PgResult::release(pg_result *r) {
    if (r) PQclear(r);
}
int PgResult::rows() const { return PQntuples(r_.get()); }
int PgResult::columns() const { return PQnfields(r_.get()); }
bool PgResult::null(int row, int col) const { return PQgetisnull(r_.get(), row, col); }
std::string PgResult::text(int row, int col) const { return std::string(PQgetvalue(r_.get(), row, col), PQgetlength(r_.get(), row, col)); }
long long PgResult::affected() const {
    const char *n = PQcmdTuples(r_.get());
    return n && *n ? std::stoll(n) : 0;
}

PgConnection::PgConnection(const std::string &dsn, int timeout_s) {
    const std::string timeout = std::to_string(timeout_s);
    // expand_dbname: the DSN (a connection string or URI) is expanded in dbname's place and
    // overrides the keys before it, which fill in only what it leaves out.
    // Notices ("trigger ... does not exist, skipping") would go to stderr unasked.
    const char *keys[] = {"connect_timeout", "application_name", "options", "dbname", nullptr};
    const char *values[] = {timeout.c_str(), "recsync", "-c client_min_messages=warning", dsn.c_str(), nullptr};
    conn_ = PQconnectdbParams(keys, values, 1);
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
        std::string why = conn_ ? trimmed(PQerrorMessage(conn_)) : "out of memory";
        if (conn_) PQfinish(conn_);
        conn_ = nullptr;
        throw PgError("cannot connect to PostgreSQL: " + why, "");
    }
}

PgConnection::~PgConnection() {
    if (conn_) PQfinish(conn_);
}

PgResult PgConnection::exec(const std::string &sql) { return checked(conn_, PQexec(conn_, sql.c_str())); }

PgResult PgConnection::exec(const std::string &sql, const std::vector<std::string> &params) {
    std::vector<const char *> values;
    values.reserve(params.size());
    for (const auto &p : params) values.push_back(p.c_str());
    return checked(conn_, PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0));
}

bool PgConnection::ok() const { return conn_ && PQstatus(conn_) == CONNECTION_OK; }
int PgConnection::socket() const { return conn_ ? PQsocket(conn_) : -1; }

int PgConnection::take_notifications() {
    if (!conn_ || !PQconsumeInput(conn_)) throw PgError("PostgreSQL connection lost: " + trimmed(conn_ ? PQerrorMessage(conn_) : ""), "");
    int n = 0;
    while (PGnotify *note = PQnotifies(conn_)) {
        PQfreemem(note);
        ++n;
    }
    return n;
}

std::string quote_ident(const std::string &name) {
    std::string out = "\"";
    for (char c : name) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

std::string quote_literal(const std::string &text) {
    std::string out = "'";
    for (char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
    return out + "'";
}

std::string quote_table(const std::string &qualified) {
    const auto dot = qualified.find('.');
    if (dot == std::string::npos) return quote_ident(qualified);
    return quote_ident(qualified.substr(0, dot)) + "." + quote_ident(qualified.substr(dot + 1));
}

}  // namespace recsync::connectors::postgres
