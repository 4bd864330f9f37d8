#include "cli/commands.hpp"

#include "cli/api_client.hpp"

#include "config/yaml_source.hpp"
#include "engine/engine.hpp"
#include "engine/runtime_builder.hpp"
#include "log/log_format.hpp"
#include "pipeline/plan.hpp"
#include "plugin/conformance.hpp"
#include "plugin/conformance_isolation.hpp"
#include "server/http_listener.hpp"
#include "store/dead_letter_replay.hpp"
#include "store/state_backend.hpp"

#include <curl/curl.h>

#include <spdlog/spdlog.h>

#include <charconv>
#include <csignal>
#include <fstream>
#include <iostream>
#include <sstream>

#ifndef RECSYNC_VERSION
#define RECSYNC_VERSION "0.0.0"
#endif

namespace recsync::cli {

namespace {

const char *kUsage =
    "usage: recsync <command> [options]\n"
    "  run -c FILE                    serve: accept events, sync them (SIGHUP reloads; SIGTERM/SIGINT drain and exit)\n"
    "  check -c FILE                  validate config, plugins, rules, mappings and schemas; exit 1 on any error\n"
    "  rules test -c FILE [--source CONNECTION] EVENT.json\n"
    "                               show what each event would do (rules fired, payloads, requests); sends nothing.\n"
    "                               --source: events as they come from that connection (entity = its object,\n"
    "                               data = the record as its plugin turns it inbound)\n"
    "  plugin check FILE.so [--config JSON] [--call-timeout-ms N]\n"
    "                                        load one provider alone (in a child process) and run the\n"
    "                                        full conformance kit; N: the limit per check (5000)\n"
    "  dlq list -c FILE [--limit N]   list dead letters\n"
    "  dlq show -c FILE ID            one dead letter: request, response, reason\n"
    "  dlq replay -c FILE ID...|--all [--connection NAME]  send them again (attempts reset)\n"
    "  dlq drop -c FILE ID...         forget them\n"
    "  status -c FILE [--json]       the running instance's connections as a table (or its /v1/status JSON)\n"
    "  pg install -c FILE [--dry-run] [--connection NAME]\n"
    "                               create the change log and triggers of the postgres connections' tables\n"
    "                               (idempotent; --dry-run prints the SQL)\n"
    "  pg uninstall -c FILE [--dry-run] [--connection NAME]  drop them (changes not yet captured are lost)\n"
    "  version                        print versions\n";


// The config's log_format for what the command logs from here on (text before).
void use_log_format(const config::EngineConfig &cfg) { log::use_format(log::parse_format(cfg.log_format).value_or(log::Format::Text)); }

// Loads config + runtime, printing every problem. Returns null on failure.
std::shared_ptr<const model::Runtime> load_runtime(const std::string &path, config::EngineConfig &cfg) {
    try {
        cfg = config::load_config(path);
        use_log_format(cfg);
        return engine::build_runtime(cfg);
    } catch (const std::exception &e) {
        print_errors(e);
        return nullptr;
    }
}

std::string read_file(const std::string &path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error(path + ": cannot open file");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// Finds "-c FILE" / "--config FILE" in args; empty if absent.
std::string config_arg(const std::vector<std::string> &args, std::vector<std::string> *rest = nullptr) {
    std::string path;
    for (size_t i = 0; i < args.size(); ++i) {
        if ((args[i] == "-c" || args[i] == "--config") && i + 1 < args.size()) path = args[++i];
        else if (rest) rest->push_back(args[i]);
    }
    return path;
}

}  // namespace

void print_errors(const std::exception &e) {
    if (const auto *many = dynamic_cast<const config::ConfigErrors *>(&e)) {
        for (const auto &line : many->errors()) std::cerr << "error: " << line << "\n";
        std::cerr << many->errors().size() << " error(s)\n";
    } else {
        std::cerr << "error: " << e.what() << "\n";
    }
}

std::optional<config::EngineConfig> load_config_or_print(const std::string &path) {
    try {
        return config::load_config(path);
    } catch (const std::exception &e) {
        print_errors(e);
        return std::nullopt;
    }
}

int cmd_version() {
    std::cout << "recsync " << RECSYNC_VERSION << " (provider ABI " << RECSYNC_ABI_MAJOR << "." << RECSYNC_ABI_MINOR << ")\n";
    return 0;
}

int cmd_check(const std::string &path) {
    config::EngineConfig cfg;
    const auto rt = load_runtime(path, cfg);
    if (!rt) return 1;
    // PostgreSQL connections: the database is asked (tables, columns, key, triggers).
    if (auto problems = check_postgres(cfg); !problems.empty()) {
        print_errors(config::ConfigErrors(std::move(problems)));
        return 1;
    }
    std::cout << "ok: " << path << "\n";
    for (const auto &[id, lib] : rt->libraries) std::cout << "  plugin " << id << " " << lib->version() << " (" << lib->path() << ")\n";
    for (const auto &[path, why] : rt->refused_plugins) std::cout << "  warning: unused plugin refused: " << why << "\n";
    for (const auto &[name, c] : rt->connections)
        std::cout << "  connection " << name << ": " << c->config.provider << " at " << c->config.base_url << ", " << c->object_schemas.size() << " object schema(s)\n";
    std::cout << "  " << rt->rules->rules.size() << " rule(s), " << rt->rules->mappings.size() << " mapping(s), " << rt->rules->entity_schemas.size()
              << " entity schema(s) from " << rt->rules->files.size() << " file(s) in " << cfg.rules_dir << "\n";
    return 0;
}

int cmd_run(const std::string &path) {
    // Block the signals we wait for before any thread starts, so every thread inherits
    // the mask and sigwait below is the only receiver.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);

    std::unique_ptr<engine::Engine> engine;
    try {
        const auto cfg = config::load_config(path);
        spdlog::set_level(spdlog::level::from_str(cfg.log_level));
        use_log_format(cfg);
        engine = std::make_unique<engine::Engine>(cfg);
        engine->start();
    } catch (const std::exception &e) {
        print_errors(e);
        return 1;
    }
    while (true) {
        int sig = 0;
        sigwait(&set, &sig);
        if (sig == SIGHUP) {
            spdlog::info("SIGHUP: reloading config, plugins and rules");
            engine->reload();  // logs the outcome; a failed reload keeps what runs
            continue;
        }
        spdlog::info("{}: draining and stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
        break;
    }
    engine->stop();
    spdlog::info("stopped; {} task(s) left queued for the next start", engine->backlog().total());
    return 0;
}

int cmd_plugin_check(const std::string &so_path, const std::string &config_json, int call_timeout_ms) {
    // Still one thread here, so the kit can run in a forked child: a crash or a hang in the
    // plugin becomes a failed check instead of ending this process.
    plugin::ConformanceOptions options;
    options.depth = plugin::ConformanceOptions::Depth::full;
    const auto report = plugin::run_conformance_isolated(so_path, config_json, options, {call_timeout_ms});
    for (const auto &c : report.checks)
        std::cout << (!c.passed ? "  FAIL  " : c.skipped ? "  skip  " : "  ok    ") << c.name << (c.detail.empty() ? "" : ": " + c.detail) << "\n";
    std::cout << (report.passed() ? "conforms: " : "does not conform: ") << so_path << "\n";
    return report.passed() ? 0 : 1;
}

namespace {

// The HTTP request the plugin would build for `task` on its first attempt: method, URL and
// body (headers are left out: they carry the credentials). An update or delete needs the
// record's id at the CRM, known only once it was synced: EXTERNAL_ID stands in for it.
// False if the plugin cannot build it (the task would be dead-lettered).
bool print_request(const model::Runtime &rt, const model::Task &task) {
    const auto *conn = rt.connection(task.connection);
    if (!conn) return true;
    const bool needs_id = task.action != RECSYNC_ACTION_CREATE && task.action != RECSYNC_ACTION_UPSERT;
    try {
        const auto req = conn->provider->build_request({task.action, task.object, task.record_key, needs_id ? "EXTERNAL_ID" : "", task.payload, "TOKEN"});
        std::cout << "    request: " << req.method << " " << conn->config.base_url << req.path << (needs_id ? "  (EXTERNAL_ID: its id at the CRM, from the id map)" : "")
                  << "\n";
        if (!req.body.empty()) std::cout << "    body: " << req.body << "\n";
        return true;
    } catch (const std::exception &e) {
        std::cout << "    request: cannot be built: " << e.what() << "\n";
        return false;
    }
}

}  // namespace

int cmd_rules_test(const std::string &path, const std::vector<std::string> &event_files, const std::string &source) {
    config::EngineConfig cfg;
    const auto rt = load_runtime(path, cfg);
    if (!rt) return 1;
    if (source != "internal" && !rt->connection(source)) {
        std::cerr << "recsync rules test: --source " << source << " is not a configured connection\n";
        return 2;
    }
    int status = 0;
    for (const auto &file : event_files) {
        try {
            const auto events = pipeline::parse_events(read_file(file));
            for (size_t i = 0; i < events.size(); ++i) {
                std::cout << file << (events.size() > 1 ? "[" + std::to_string(i) + "]" : "") << ":\n";
                try {
                    const auto plan = pipeline::plan_event(*rt, events[i], source);
                    if (plan.actions.empty()) std::cout << "  no rule fired\n";
                    for (const auto &a : plan.actions) {
                        std::cout << "  rule '" << a.rule << "': " << a.action;
                        if (!a.task.connection.empty()) std::cout << " " << a.task.connection << "/" << a.task.object << " key=" << a.task.record_key;
                        std::cout << "\n";
                        if (!a.task.payload.empty()) std::cout << "    payload: " << a.task.payload << "\n";
                        if (!a.task.connection.empty() && !print_request(*rt, a.task)) status = 1;
                    }
                } catch (const pipeline::EventError &e) {
                    std::cout << "  rejected (" << e.status() << "): " << e.what() << "\n";
                    status = 1;
                }
            }
        } catch (const std::exception &e) {
            std::cerr << "error: " << e.what() << "\n";
            status = 1;
        }
    }
    return status;
}

int cmd_dlq_list(const std::string &path, long limit) {
    try {
        const auto cfg = config::load_config(path);
        const auto state = store::open_state_backend(cfg.state);
        const auto letters = state->dead_letters().list(limit);
        for (const auto &d : letters)
            std::cout << d.id << "\t" << d.task.connection << "\t" << d.task.object << "\t" << model::action_text(d.task.action) << "\t" << d.task.record_key << "\t"
                      << "attempts=" << d.task.attempts << "\t" << d.reason << "\n";
        std::cout << letters.size() << " dead letter(s)\n";
        return 0;
    } catch (const std::exception &e) {
        print_errors(e);
        return 1;
    }
}

namespace {

ApiReply admin_call(const config::EngineConfig &cfg, const std::string &method, const std::string &path) {
    return api_call(cfg, method, path, cfg.server.admin_token);
}

std::vector<int64_t> parse_ids(const std::vector<std::string> &args, bool &all, std::string &connection) {
    std::vector<int64_t> ids;
    for (size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--all") all = true;
        else if (args[i] == "--connection" && i + 1 < args.size()) connection = args[++i];
        else {
            size_t used = 0;
            const long long id = std::stoll(args[i], &used);
            if (used != args[i].size() || id <= 0) throw std::invalid_argument("'" + args[i] + "' is not a dead-letter id");
            ids.push_back(id);
        }
    }
    return ids;
}

}  // namespace

int cmd_dlq(const std::string &path, const std::string &verb, const std::vector<std::string> &args) {
    try {
        const auto cfg = config::load_config(path);
        use_log_format(cfg);
        bool all = false;
        std::string connection;
        const auto ids = parse_ids(args, all, connection);
        if (ids.empty() && !(verb == "replay" && all)) {
            std::cerr << "recsync dlq " << verb << ": give dead-letter ids" << (verb == "replay" ? " or --all" : "") << "\n";
            return 2;
        }
        // A running engine must do it itself: it owns the queue in memory.
        const bool running = admin_call(cfg, "GET", "/healthz").status == 200;
        if (running && cfg.server.admin_token.empty()) {
            std::cerr << "error: recsync is running at " << cfg.server.listen << "; set the admin token variable (server.admin_token_env) so this command can use its admin API\n";
            return 1;
        }
        int rc = 0;
        if (running) {
            auto call = [&](const std::string &method, const std::string &p) {
                const auto r = admin_call(cfg, method, p);
                if (r.status / 100 != 2) {
                    std::cerr << "error: " << method << " " << p << ": HTTP " << r.status << " " << r.body << "\n";
                    rc = 1;
                } else {
                    std::cout << r.body << "\n";
                }
            };
            if (verb == "replay" && all) call("POST", "/v1/admin/dlq/replay" + (connection.empty() ? std::string() : "?connection=" + connection));
            for (const auto id : ids) {
                if (verb == "show") call("GET", "/v1/admin/dlq/" + std::to_string(id));
                else if (verb == "replay") call("POST", "/v1/admin/dlq/" + std::to_string(id) + "/replay");
                else call("DELETE", "/v1/admin/dlq/" + std::to_string(id));
            }
            return rc;
        }
        const auto state = store::open_state_backend(cfg.state);
        if (verb == "replay") {
            const auto r = store::replay_dead_letters(state->tasks(), state->dead_letters(), state->sync_state(), {all ? std::vector<int64_t>{} : ids, connection});
            std::cout << r.replayed << " dead letter(s) queued again; recsync is not running: they are sent when it starts\n";
            for (const auto id : r.stale) std::cout << "dead letter " << id << " dropped, not replayed: its record has since applied a newer change there\n";
            return r.replayed || !r.stale.empty() || all ? 0 : 1;
        }
        for (const auto id : ids) {
            if (verb == "drop") {
                if (state->dead_letters().drop(id)) {
                    std::cout << "dropped " << id << "\n";
                } else {
                    std::cerr << "error: no dead letter " << id << "\n";
                    rc = 1;
                }
                continue;
            }
            const auto d = state->dead_letters().get(id);
            if (!d) {
                std::cerr << "error: no dead letter " << id << "\n";
                rc = 1;
                continue;
            }
            std::cout << "dead letter " << d->id << ": " << model::action_text(d->task.action) << " " << d->task.connection << "/" << d->task.object << " key="
                      << d->task.record_key << ", " << d->task.attempts << " attempt(s)\nreason: " << d->reason << "\npayload: " << d->task.payload
                      << "\nrequest:\n" << d->request << "\nresponse: HTTP " << d->response_status << "\n" << d->response_body << "\n";
        }
        return rc;
    } catch (const std::exception &e) {
        print_errors(e);
        return 1;
    }
}

int run_command(const std::vector<std::string> &args) {
    if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
        std::cout << kUsage;
        return args.empty() ? 2 : 0;
    }
    // Redacted from the first line on, before any config names the secrets' values.
    log::use_format(log::Format::Text);
    const std::string &cmd = args[0];
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    auto need_config = [&](const std::string &c) {
        if (c.empty()) std::cerr << "recsync " << cmd << ": missing -c FILE\n" << kUsage;
        return !c.empty();
    };
    if (cmd == "version" || cmd == "--version") return cmd_version();
    if (cmd == "check" || cmd == "run") {
        const auto c = config_arg(rest);
        if (!need_config(c)) return 2;
        return cmd == "check" ? cmd_check(c) : cmd_run(c);
    }
    if (cmd == "plugin" && !rest.empty() && rest[0] == "check") {
        std::string so, cfg = "{}";
        int call_timeout_ms = 5000;
        for (size_t i = 1; i < rest.size(); ++i) {
            if (rest[i] == "--config" && i + 1 < rest.size()) cfg = rest[++i];
            else if (rest[i] == "--call-timeout-ms" && i + 1 < rest.size()) {
                const std::string n = rest[++i];
                const auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), call_timeout_ms);
                if (ec != std::errc() || end != n.data() + n.size() || call_timeout_ms <= 0) {
                    std::cerr << "recsync plugin check: --call-timeout-ms needs a positive number of milliseconds\n";
                    return 2;
                }
            } else so = rest[i];
        }
        if (so.empty()) {
            std::cerr << "recsync plugin check: missing FILE.so\n";
            return 2;
        }
        return cmd_plugin_check(so, cfg, call_timeout_ms);
    }
    if (cmd == "rules" && !rest.empty() && rest[0] == "test") {
        std::vector<std::string> args, files;
        const auto c = config_arg(std::vector<std::string>(rest.begin() + 1, rest.end()), &args);
        if (!need_config(c)) return 2;
        std::string source = "internal";
        for (size_t i = 0; i < args.size(); ++i) {
            if (args[i] == "--source") {
                if (i + 1 == args.size()) {
                    std::cerr << "recsync rules test: --source needs a connection name\n";
                    return 2;
                }
                source = args[++i];
            } else {
                files.push_back(args[i]);
            }
        }
        if (files.empty()) {
            std::cerr << "recsync rules test: give one or more EVENT.json files\n";
            return 2;
        }
        return cmd_rules_test(c, files, source);
    }
    if (cmd == "dlq" && !rest.empty() && (rest[0] == "show" || rest[0] == "replay" || rest[0] == "drop")) {
        std::vector<std::string> others;
        const auto c = config_arg(std::vector<std::string>(rest.begin() + 1, rest.end()), &others);
        if (!need_config(c)) return 2;
        return cmd_dlq(c, rest[0], others);
    }
    if (cmd == "dlq" && !rest.empty() && rest[0] == "list") {
        std::vector<std::string> others;
        const auto c = config_arg(std::vector<std::string>(rest.begin() + 1, rest.end()), &others);
        if (!need_config(c)) return 2;
        long limit = 100;
        for (size_t i = 0; i + 1 < others.size(); ++i)
            if (others[i] == "--limit") limit = std::stol(others[i + 1]);
        return cmd_dlq_list(c, limit);
    }
    if (cmd == "status") {
        std::vector<std::string> others;
        const auto c = config_arg(rest, &others);
        if (!need_config(c)) return 2;
        const bool as_json = others.size() == 1 && others[0] == "--json";
        if (!others.empty() && !as_json) {
            std::cerr << "recsync status: unknown argument '" << others[0] << "'\n";
            return 2;
        }
        return cmd_status(c, as_json);
    }
    if (cmd == "pg" && !rest.empty() && (rest[0] == "install" || rest[0] == "uninstall")) {
        std::vector<std::string> others;
        const auto c = config_arg(std::vector<std::string>(rest.begin() + 1, rest.end()), &others);
        if (!need_config(c)) return 2;
        bool dry_run = false;
        std::string only;
        for (size_t i = 0; i < others.size(); ++i) {
            if (others[i] == "--dry-run") dry_run = true;
            else if (others[i] == "--connection" && i + 1 < others.size()) only = others[++i];
            else {
                std::cerr << "recsync pg " << rest[0] << ": unknown argument '" << others[i] << "'\n";
                return 2;
            }
        }
        return cmd_pg(c, rest[0], dry_run, only);
    }
    std::cerr << "recsync: unknown command '" << cmd << "'\n" << kUsage;
    return 2;
}

}  // namespace recsync::cli
