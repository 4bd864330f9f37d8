// `recsync pg install | uninstall` and the database half of `recsync check`: the
// PostgreSQL connections' change log and triggers (connectors/postgres/pg_schema.hpp).
#include "cli/commands.hpp"

#include "config/config.hpp"
#include "connectors/postgres/pg_connection.hpp"
#include "connectors/postgres/pg_schema.hpp"
#include "connectors/postgres/pg_target.hpp"

#include <iostream>

namespace recsync::cli {

namespace pg = connectors::postgres;

int cmd_pg(const std::string &config_path, const std::string &verb, bool dry_run, const std::string &only) {
    const auto loaded = load_config_or_print(config_path);
    if (!loaded) return 1;
    const config::EngineConfig &cfg = *loaded;
    int done = 0, rc = 0;
    for (const auto &c : cfg.connections) {
        if (c.provider != pg::kProviderId || (!only.empty() && c.name != only)) continue;
        const auto sql = verb == "install" ? pg::install_sql(c.postgres) : pg::uninstall_sql(c.postgres);
        ++done;
        if (dry_run) {
            std::cout << "-- connection " << c.name << " (" << c.postgres.dsn_source << "): recsync pg " << verb << "\nBEGIN;\n";
            for (const auto &s : sql) std::cout << s << ";\n";
            std::cout << "COMMIT;\n";
            continue;
        }
        try {
            pg::PgConnection db(c.postgres.dsn);
            // All or nothing: a failed statement leaves the database as it was.
            db.exec("BEGIN");
            for (const auto &s : sql) db.exec(s);
            db.exec("COMMIT");
            if (verb == "install") {
                size_t captured = 0;
                for (const auto &t : c.postgres.tables) captured += t.capture;
                std::cout << "connection " << c.name << ": installed " << c.postgres.schema << ".changes and the triggers of " << captured << " captured table(s)\n";
            } else {
                std::cout << "connection " << c.name << ": uninstalled (schema " << c.postgres.schema << " dropped, with changes not yet captured)\n";
            }
        } catch (const pg::PgError &e) {
            std::cerr << "error: " << c.postgres.where << ": connection '" << c.name << "': " << e.what() << " (nothing was changed)\n";
            rc = 1;
        }
    }
    if (!done) {
        std::cerr << "error: " << config_path << ": no postgres connection" << (only.empty() ? "" : " named '" + only + "'") << "\n";
        return 1;
    }
    return rc;
}

std::vector<std::string> check_postgres(const config::EngineConfig &cfg) {
    std::vector<std::string> problems;
    for (const auto &c : cfg.connections) {
        if (c.provider != pg::kProviderId) continue;
        try {
            pg::PgConnection db(c.postgres.dsn);
            for (auto &p : pg::verify(db, c.postgres)) problems.push_back(std::move(p));
        } catch (const pg::PgError &e) {
            problems.push_back(c.postgres.where + ": connection '" + c.name + "' (" + c.postgres.dsn_source + "): " + e.what());
        }
    }
    return problems;
}

}  // namespace recsync::cli
