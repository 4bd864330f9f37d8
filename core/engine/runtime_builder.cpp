#include "engine/runtime_builder.hpp"

#include "config/yaml_source.hpp"
#include "connectors/http/http_target.hpp"
#include "connectors/postgres/pg_target.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace recsync::engine {

using model::ConnectionRuntime;
using model::CreateRetry;
using model::Runtime;

namespace {

// Compiled object schemas by provider and schema text: the connections of one provider
// nearly always describe the same objects, and a compiled schema is most of a
// connection's memory (10,000 HubSpot connections took 58 KB each with one copy apiece).
using SchemaCache = std::map<std::string, std::shared_ptr<const schema::JsonSchema>, std::less<>>;
// Connections whose creates are re-sent as they are, by the warning they share (provider
// and objects): one line for 10,000 connections of one provider, not 10,000.
using ResentWarnings = std::map<std::pair<std::string, std::string>, std::vector<std::string>>;

// describe's "batch" of one object: {"create": N, ...}, each size capped by the
// connection's batch.max_size. A wrong value is the plugin's bug, named at load.
void read_batch_sizes(const config::ConnectionConfig &c, const std::string &provider, const std::string &object, const nlohmann::json &batch, ConnectionRuntime &conn) {
    auto bad = [&](const std::string &why) {
        throw config::ConfigError(c.where + ": connection '" + c.name + "': " + provider + ".describe: object '" + object + "': batch " + why);
    };
    if (!batch.is_object()) bad("is not an object of sizes by action");
    static const std::pair<const char *, recsync_action> kActions[] = {{"create", RECSYNC_ACTION_CREATE}, {"update", RECSYNC_ACTION_UPDATE},
                                                                        {"upsert", RECSYNC_ACTION_UPSERT}, {"delete", RECSYNC_ACTION_DELETE},
                                                                        {"read", RECSYNC_ACTION_READ},     {"find", RECSYNC_ACTION_FIND}};
    std::array<int, RECSYNC_ACTION_FIND + 1> sizes{};
    bool any = false;
    for (const auto &item : batch.items()) {
        // Named copies, not structured bindings: clang 14 cannot capture those in a lambda.
        const std::string &name = item.key();
        const auto &size = item.value();
        const auto it = std::find_if(std::begin(kActions), std::end(kActions), [&](const auto &a) { return name == a.first; });
        if (it == std::end(kActions)) bad("names an unknown action '" + name + "'");
        if (!size.is_number_integer() || size.get<int64_t>() < 1 || size.get<int64_t>() > 10'000) bad("." + name + " is not a size between 1 and 10000");
        int n = static_cast<int>(size.get<int64_t>());
        if (c.batch.max_size > 0) n = std::min(n, c.batch.max_size);
        sizes[static_cast<size_t>(it->second)] = n;
        any = any || n > 1;
    }
    if (any) conn.batch_sizes[object] = sizes;
}

std::shared_ptr<ConnectionRuntime> build_connection(const config::ConnectionConfig &c, const std::shared_ptr<plugin::ProviderLibrary> &lib, SchemaCache &schemas,
                                                    ResentWarnings &resent_warnings) {
    auto conn = std::make_shared<ConnectionRuntime>();
    nlohmann::json description;  // not kept: a parsed describe() with its schemas is a few KB per connection
    conn->config = c;
    conn->system_a = c.provider == connectors::http::kProviderId || c.provider == connectors::postgres::kProviderId;
    nlohmann::json cfg = c.settings;
    cfg["base_url"] = c.base_url;
    cfg["connection"] = c.name;
    if (!c.plugin_credentials.empty()) cfg["credentials"] = c.plugin_credentials;
    if (c.provider == connectors::postgres::kProviderId) {
        cfg["objects"] = nlohmann::json::array();
        for (const auto &t : c.postgres.tables) cfg["objects"].push_back(t.object);
    }
    try {
        conn->provider = plugin::ProviderInstance::create(lib, cfg);
        description = conn->provider->describe();
    } catch (const plugin::PluginError &e) {
        throw config::ConfigError(c.where + ": connection '" + c.name + "': " + e.what());
    }
    const auto &objects = description.value("objects", nlohmann::json::object());
    if (!objects.is_object()) throw config::ConfigError(c.where + ": connection '" + c.name + "': " + lib->id() + ".describe: 'objects' is not an object");
    std::string resent;  // objects whose creates are re-sent as they are
    for (const auto &[name, obj] : objects.items()) {
        conn->objects.push_back(name);
        if (!obj.is_object()) continue;
        const auto how = obj.find("create_retry");
        if (how == obj.end()) {
            resent += (resent.empty() ? "" : ", ") + name;
        } else if (*how == "upsert") {
            conn->create_retry[name] = CreateRetry::Upsert;
        } else if (*how == "find" && RECSYNC_ABI_MINOR_OF(lib->abi_version()) >= 2) {
            conn->create_retry[name] = CreateRetry::Find;
        } else {
            throw config::ConfigError(c.where + ": connection '" + c.name + "': " + lib->id() + ".describe: object '" + name + "': create_retry " + how->dump() +
                                      (*how == "find" ? " needs a plugin of provider ABI 1.2 or later" : " is not one of \"upsert\", \"find\""));
        }
        if (const auto b = obj.find("batch"); b != obj.end() && conn->provider->has_batches() && c.batch.max_size != 1)
            read_batch_sizes(c, lib->id(), name, *b, *conn);
        if (!obj.contains("schema")) continue;
        try {
            std::string key = lib->id() + '\n' + name + '\n' + obj["schema"].dump();
            auto &compiled = schemas[std::move(key)];
            if (!compiled) compiled = schema::JsonSchema::compile(obj["schema"], lib->id() + " object '" + name + "'");
            conn->object_schemas[name] = compiled;
        } catch (const std::exception &e) {
            throw config::ConfigError(c.where + ": connection '" + c.name + "': " + e.what());
        }
    }
    if (!resent.empty()) resent_warnings[{lib->id(), resent}].push_back(c.name);
    conn->webhooks = conn->provider->has_webhooks() && description.value("webhooks", true);
    if (!c.polling.objects.empty()) {
        if (!conn->provider->has_polling())
            throw config::ConfigError(c.polling.where + ": connection '" + c.name + "': provider '" + lib->id() + "' cannot poll (it has no poll calls)");
        for (const auto &p : c.polling.objects)
            if (std::find(conn->objects.begin(), conn->objects.end(), p.object) == conn->objects.end())
                throw config::ConfigError(p.where + ": connection '" + c.name + "': polling.objects: '" + p.object + "' is not an object of this connection");
    }
    const auto rl = description.value("rate_limit", nlohmann::json::object());
    conn->rate_per_second = c.rate_limit.per_second > 0 ? c.rate_limit.per_second : rl.value("per_second", 0.0);
    conn->burst = c.rate_limit.burst > 0 ? c.rate_limit.burst : (c.rate_limit.per_second > 0 ? c.rate_limit.per_second : rl.value("burst", conn->rate_per_second));
    return conn;
}

}  // namespace

std::shared_ptr<const Runtime> build_runtime(const config::EngineConfig &cfg) {
    auto rt = std::make_shared<Runtime>();
    rt->config = cfg;
    std::vector<std::string> errors;

    std::map<std::string, std::string> files;
    try {
        plugin::check_trusted_path(cfg.plugins_dir, "plugins directory");
        files = plugin::find_provider_files(cfg.plugins_dir);
    } catch (const plugin::PluginError &e) {
        errors.push_back(cfg.file + ": plugins_dir: " + e.what());
    }
    if (files.count(connectors::http::kProviderId))
        errors.push_back(cfg.file + ": plugins_dir: " + files[connectors::http::kProviderId] + ": 'http' is the built-in connector to System A's services; rename the plugin");
    if (files.count(connectors::postgres::kProviderId))
        errors.push_back(cfg.file + ": plugins_dir: " + files[connectors::postgres::kProviderId] + ": 'postgres' is the built-in connector to System A's database; rename the plugin");
    for (const auto &c : cfg.connections) {
        if (rt->libraries.count(c.provider)) continue;
        if (c.provider == connectors::http::kProviderId) {
            rt->libraries[c.provider] = plugin::ProviderLibrary::builtin(connectors::http::descriptor());
            continue;
        }
        if (c.provider == connectors::postgres::kProviderId) {
            rt->libraries[c.provider] = plugin::ProviderLibrary::builtin(connectors::postgres::descriptor());
            continue;
        }
        auto it = files.find(c.provider);
        if (it == files.end()) {
            std::string found;
            for (const auto &[id, _] : files) found += (found.empty() ? "" : ", ") + id;
            errors.push_back(c.where + ": connection '" + c.name + "': no provider plugin '" + c.provider + "' in " + cfg.plugins_dir + " (found: " +
                             (found.empty() ? "none" : found) + ")");
            continue;
        }
        try {
            rt->libraries[c.provider] = plugin::ProviderLibrary::load(it->second);
        } catch (const plugin::PluginError &e) {
            errors.push_back(c.where + ": connection '" + c.name + "': " + e.what());
        }
    }
    // Plugins nobody uses yet still get loaded once, so a broken drop-in is reported now
    // rather than when a connection first needs it.
    for (const auto &[id, path] : files) {
        if (rt->libraries.count(id)) continue;
        bool used = false;
        for (const auto &c : cfg.connections) used = used || c.provider == id;
        if (used) continue;  // its failure is already a config error above
        try {
            plugin::ProviderLibrary::load(path);
        } catch (const plugin::PluginError &e) {
            rt->refused_plugins[path] = e.what();
            spdlog::warn("refused unused plugin: {}", e.what());
        }
    }
    SchemaCache schemas;
    ResentWarnings resent;
    for (const auto &c : cfg.connections) {
        auto lib = rt->libraries.find(c.provider);
        if (lib == rt->libraries.end()) continue;
        try {
            const auto &conn = rt->connections[c.name] = build_connection(c, lib->second, schemas, resent);
            if (conn->system_a) rt->system_a_connections.push_back(c.name);
        } catch (const config::ConfigError &e) {
            errors.push_back(e.what());
        }
    }
    std::sort(rt->system_a_connections.begin(), rt->system_a_connections.end());
    for (const auto &[what, names] : resent) {
        constexpr size_t kNamed = 5;
        std::string who = names.size() == 1 ? "connection" : std::to_string(names.size()) + " connections";
        for (size_t i = 0; i < names.size() && i < kNamed; ++i) who += (i ? ", '" : " '") + names[i] + "'";
        if (names.size() > kNamed) who += ", ...";
        spdlog::warn("{}: a create of {} whose answer is lost (a timeout, a crash) is sent again as it is: {} offers no upsert or lookup for it, "
                     "so only the CRM itself can refuse a duplicate (see the provider's settings for a unique key)",
                     who, what.second, what.first);
    }

    try {
        rt->rules = rules::RuleSet::load(cfg.rules_dir);
    } catch (const config::ConfigErrors &e) {
        errors.insert(errors.end(), e.errors().begin(), e.errors().end());
    }
    if (rt->rules) {
        for (const auto &r : rt->rules->rules) {
            if (r.source != "internal") {
                if (!cfg.connection(r.source))
                    errors.push_back(r.where + ": rule '" + r.name + "': source '" + r.source + "' is neither 'internal' nor a configured connection");
                else if (const auto *pgc = cfg.connection(r.source); pgc->provider == connectors::postgres::kProviderId) {
                    bool captured = false;
                    for (const auto &t : pgc->postgres.tables) captured = captured || (t.capture && t.entity == r.entity);
                    if (!captured)
                        errors.push_back(r.where + ": rule '" + r.name + "': connection '" + r.source + "' captures no table of entity '" + r.entity +
                                         "' (postgres.tables.<object>.entity, with capture on)");
                } else if (const auto src = rt->connections.find(r.source);
                           src != rt->connections.end() && !src->second->webhooks && src->second->config.polling.objects.empty())
                    // said at every load, so nobody waits for it to fire
                    spdlog::warn("{}: rule '{}' matches events from connection '{}' (System B -> A), which takes no webhooks ({}; see the "
                                 "provider's webhook settings) and polls nothing (its polling: setting), so it cannot fire",
                                 r.where, r.name, r.source,
                                 src->second->provider->has_webhooks() ? "its describe() says so" : "provider '" + src->second->config.provider + "' has none");
            }
            if (r.action == rules::ActionKind::Skip) continue;
            const auto *conf = cfg.connection(r.target);
            if (!conf) {
                errors.push_back(r.target_where + ": rule '" + r.name + "': unknown target connection '" + r.target + "'");
                continue;
            }
            auto conn = rt->connections.find(r.target);
            if (conn == rt->connections.end()) continue;  // its own error is reported above
            const auto &objects = conn->second->objects;
            if (std::find(objects.begin(), objects.end(), r.object) == objects.end()) {
                std::string known;
                for (const auto &name : objects) known += (known.empty() ? "" : ", ") + name;
                errors.push_back(r.target_where + ": rule '" + r.name + "': provider '" + conf->provider + "' has no object '" + r.object + "' (it has: " + known + ")");
            }
        }
    }
    if (!errors.empty()) throw config::ConfigErrors(std::move(errors));
    return rt;
}

}  // namespace recsync::engine
