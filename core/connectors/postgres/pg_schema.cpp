#include "connectors/postgres/pg_schema.hpp"

#include "connectors/postgres/pg_connection.hpp"

#include <set>

namespace recsync::connectors::postgres {

namespace {

std::string in_schema(const config::PostgresConfig &pg, const std::string &name) { return quote_ident(pg.schema) + "." + quote_ident(name); }

std::string schema_of(const std::string &qualified) { return qualified.substr(0, qualified.find('.')); }
std::string name_of(const std::string &qualified) { return qualified.substr(qualified.find('.') + 1); }

// A trigger's arguments as 'escape' text (a\000b\000) shown as "object 'a', key 'b'".
std::string shown_args(const std::string &escaped) {
    std::vector<std::string> args;
    for (size_t start = 0; start < escaped.size();) {
        const size_t nul = escaped.find("\\000", start);
        args.push_back(escaped.substr(start, nul == std::string::npos ? std::string::npos : nul - start));
        if (nul == std::string::npos) break;
        start = nul + 4;
    }
    if (args.size() != 2) return "arguments '" + escaped + "'";
    return "object '" + args[0] + "', key '" + args[1] + "'";
}

}  // namespace

std::string notify_channel(const config::PostgresConfig &pg) { return pg.schema + "_changes"; }

std::string rfc3339_ms_sql(const std::string &column) { return "to_char(" + column + " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"; }

std::vector<std::string> install_sql(const config::PostgresConfig &pg) {
    const std::string changes = in_schema(pg, "changes");
    std::vector<std::string> sql;
    sql.push_back("CREATE SCHEMA IF NOT EXISTS " + quote_ident(pg.schema));
    // id orders the rows of one record (row locks serialise its writers, and a later
    // writer's trigger runs later); xid holds a row back until every older transaction
    // has ended (capture reads below pg_snapshot_xmin), so a transaction that commits late
    // is never skipped.
    sql.push_back("CREATE TABLE IF NOT EXISTS " + changes +
                  " (\n"
                  "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
                  "  xid xid8 NOT NULL DEFAULT pg_current_xact_id(),\n"
                  "  object text NOT NULL,\n"
                  "  op \"char\" NOT NULL,\n"
                  "  key text NOT NULL,\n"
                  "  data jsonb,\n"
                  "  previous jsonb,\n"
                  "  origin text,\n"
                  "  at timestamptz NOT NULL DEFAULT clock_timestamp()\n"
                  ")");
    // Rows whose change the rules or schemas refused, with the reason: kept, so that once
    // the rules are fixed they can be put back (README: "refused rows").
    sql.push_back("CREATE TABLE IF NOT EXISTS " + in_schema(pg, "refused") +
                  " (\n"
                  "  id bigint PRIMARY KEY,\n"
                  "  xid xid8 NOT NULL,\n"
                  "  object text NOT NULL,\n"
                  "  op \"char\" NOT NULL,\n"
                  "  key text NOT NULL,\n"
                  "  data jsonb,\n"
                  "  previous jsonb,\n"
                  "  origin text,\n"
                  "  at timestamptz NOT NULL,\n"
                  "  reason text NOT NULL,\n"
                  "  refused_at timestamptz NOT NULL DEFAULT now()\n"
                  ")");
    // When each record was last changed by someone other than recsync: a two-way apply
    // that carries an older change than that is rolled back (it lost, under the conflict
    // policy, to a change capture may not have handed to recsync yet).
    sql.push_back("CREATE TABLE IF NOT EXISTS " + in_schema(pg, "local_writes") +
                  " (\n"
                  "  object text NOT NULL,\n"
                  "  key text NOT NULL,\n"
                  "  at timestamptz NOT NULL,\n"
                  "  PRIMARY KEY (object, key)\n"
                  ")");
    const std::string log_row = "INSERT INTO " + changes + " (object, op, key, data, previous, origin, at) VALUES (TG_ARGV[0], ";
    const std::string stamp_write = "INSERT INTO " + in_schema(pg, "local_writes") +
                              " (object, key, at) VALUES (TG_ARGV[0], k, stamp) ON CONFLICT (object, key) DO UPDATE SET at = excluded.at;\n";
    // TG_ARGV: the object's name in the config, the key column.
    sql.push_back("CREATE OR REPLACE FUNCTION " + in_schema(pg, "capture") +
                  "() RETURNS trigger LANGUAGE plpgsql AS $recsync$\n"
                  "DECLARE\n"
                  "  n jsonb;\n"
                  "  o jsonb;\n"
                  "  k text;\n"
                  "  keys text[];\n"
                  "  stamp timestamptz := clock_timestamp();\n"
                  "  origin text := nullif(current_setting('recsync.origin', true), '');\n"
                  "BEGIN\n"
                  "  IF TG_OP = 'INSERT' THEN\n"
                  "    n := to_jsonb(NEW);\n"
                  "    keys := ARRAY[n->>TG_ARGV[1]];\n"
                  "    " + log_row + "'I', n->>TG_ARGV[1], n, NULL, origin, stamp);\n"
                  "  ELSIF TG_OP = 'DELETE' THEN\n"
                  "    o := to_jsonb(OLD);\n"
                  "    keys := ARRAY[o->>TG_ARGV[1]];\n"
                  "    " + log_row + "'D', o->>TG_ARGV[1], NULL, o, origin, stamp);\n"
                  "  ELSE\n"
                  "    n := to_jsonb(NEW);\n"
                  "    o := to_jsonb(OLD);\n"
                  "    IF n = o THEN RETURN NULL; END IF;\n"
                  "    IF (n->>TG_ARGV[1]) IS DISTINCT FROM (o->>TG_ARGV[1]) THEN\n"
                  "      -- a new key is another record: the old one's delete, the new one's insert\n"
                  "      keys := ARRAY[o->>TG_ARGV[1], n->>TG_ARGV[1]];\n"
                  "      " + log_row + "'D', o->>TG_ARGV[1], NULL, o, origin, stamp);\n"
                  "      " + log_row + "'I', n->>TG_ARGV[1], n, NULL, origin, stamp);\n"
                  "    ELSE\n"
                  "      keys := ARRAY[n->>TG_ARGV[1]];\n"
                  "      " + log_row + "'U', n->>TG_ARGV[1], n, o, origin, stamp);\n"
                  "    END IF;\n"
                  "  END IF;\n"
                  "  IF origin IS NULL THEN\n"
                  "    FOREACH k IN ARRAY keys LOOP\n"
                  "      " + stamp_write +
                  "    END LOOP;\n"
                  "  END IF;\n"
                  "  PERFORM pg_notify(" + quote_literal(notify_channel(pg)) + ", '');\n"
                  "  RETURN NULL;\n"
                  "END\n"
                  "$recsync$");
    sql.push_back("CREATE OR REPLACE FUNCTION " + in_schema(pg, "refuse_truncate") +
                  "() RETURNS trigger LANGUAGE plpgsql AS $recsync$\n"
                  "BEGIN\n"
                  "  RAISE EXCEPTION 'TRUNCATE of % is refused: recsync captures this table''s changes row by row (DELETE instead, or drop the trigger "
                  "recsync_no_truncate)', TG_TABLE_NAME;\n"
                  "END\n"
                  "$recsync$");
    for (const auto &t : pg.tables) {
        const std::string table = quote_table(t.table);
        if (!t.capture) {
            sql.push_back("DROP TRIGGER IF EXISTS recsync_capture ON " + table);
            sql.push_back("DROP TRIGGER IF EXISTS recsync_no_truncate ON " + table);
            continue;
        }
        sql.push_back("CREATE OR REPLACE TRIGGER recsync_capture AFTER INSERT OR UPDATE OR DELETE ON " + table + " FOR EACH ROW EXECUTE FUNCTION " +
                      in_schema(pg, "capture") + "(" + quote_literal(t.object) + ", " + quote_literal(t.key) + ")");
        sql.push_back("CREATE OR REPLACE TRIGGER recsync_no_truncate BEFORE TRUNCATE ON " + table + " FOR EACH STATEMENT EXECUTE FUNCTION " +
                      in_schema(pg, "refuse_truncate") + "()");
    }
    return sql;
}

std::vector<std::string> uninstall_sql(const config::PostgresConfig &pg) {
    std::vector<std::string> sql;
    for (const auto &t : pg.tables) {
        // The table may be gone already: uninstall must still get rid of the rest.
        const std::string guard = "DO $recsync$ BEGIN IF to_regclass(" + quote_literal(quote_table(t.table)) + ") IS NOT NULL THEN ";
        sql.push_back(guard + "DROP TRIGGER IF EXISTS recsync_capture ON " + quote_table(t.table) + "; DROP TRIGGER IF EXISTS recsync_no_truncate ON " +
                      quote_table(t.table) + "; END IF; END $recsync$");
    }
    sql.push_back("DROP SCHEMA IF EXISTS " + quote_ident(pg.schema) + " CASCADE");
    return sql;
}

std::vector<std::string> verify(PgConnection &db, const config::PostgresConfig &pg) {
    std::vector<std::string> problems;
    const auto log = db.exec("SELECT to_regclass($1) IS NOT NULL", {quote_ident(pg.schema) + ".changes"});
    if (log.text(0, 0) != "t") problems.push_back(pg.where + ": postgres: no change log " + pg.schema + ".changes in the database: run `recsync pg install -c CONFIG`");
    if (log.text(0, 0) == "t" && db.exec("SELECT to_regclass($1) IS NOT NULL", {quote_ident(pg.schema) + ".local_writes"}).text(0, 0) != "t")
        problems.push_back(pg.where + ": postgres: no table " + pg.schema + ".local_writes (installed by an older recsync): run `recsync pg install -c CONFIG` again");
    for (const auto &t : pg.tables) {
        const std::string where = t.where + ": postgres.tables." + t.object + ": ";
        const auto cols = db.exec(
            "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
            {schema_of(t.table), name_of(t.table)});
        if (cols.rows() == 0) {
            problems.push_back(where + "table " + t.table + " does not exist (or has no columns)");
            continue;
        }
        std::set<std::string> columns;
        for (int i = 0; i < cols.rows(); ++i) columns.insert(cols.text(i, 0));
        if (!columns.count(t.key)) problems.push_back(where + "key column '" + t.key + "' is not a column of " + t.table);
        for (const auto &[column, field] : t.columns)
            if (!columns.count(column)) problems.push_back(where + "columns: '" + column + "' is not a column of " + t.table);
        // Apply upserts ON CONFLICT (key): the key must have a unique index of its own.
        const auto unique = db.exec(
            "SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
            "WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL AND a.attname = $2",
            {quote_table(t.table), t.key});
        if (columns.count(t.key) && unique.rows() == 0) problems.push_back(where + "key column '" + t.key + "' of " + t.table + " has no unique index of its own (a primary key or UNIQUE)");
        if (!t.capture) continue;
        // The capture trigger's arguments and function are fixed when it is installed: a
        // changed object name, key column or schema needs another install. The arguments
        // come as 'escape' text, NUL-separated as \000 (plain SQL names: nothing else escaped).
        const auto triggers = db.exec(
            "SELECT encode(t.tgargs, 'escape'), n.nspname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
            "JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE t.tgrelid = to_regclass($1) AND t.tgname = 'recsync_capture' AND NOT t.tgisinternal AND t.tgenabled <> 'D'",
            {quote_table(t.table)});
        const std::string reinstall = "; run `recsync pg install -c CONFIG` again";
        if (triggers.rows() == 0) {
            problems.push_back(where + "table " + t.table + " has no enabled trigger recsync_capture: its changes are not captured; run `recsync pg install -c CONFIG`");
            continue;
        }
        const std::string expected_args = t.object + "\\000" + t.key + "\\000";
        if (triggers.text(0, 1) != pg.schema)
            problems.push_back(where + "the trigger recsync_capture on " + t.table + " logs into schema '" + triggers.text(0, 1) + "', not '" + pg.schema + "'" + reinstall);
        else if (triggers.text(0, 0) != expected_args)
            problems.push_back(where + "the trigger recsync_capture on " + t.table + " was installed for another object or key column (" + shown_args(triggers.text(0, 0)) +
                               "; the config says object '" + t.object + "', key '" + t.key + "')" + reinstall);
    }
    return problems;
}

}  // namespace recsync::connectors::postgres
