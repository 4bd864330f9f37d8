// Everything built from the config at load (engine/runtime_builder.hpp): provider
// libraries, one provider instance per connection, the compiled rules. Immutable once
// built; `recsync check` builds one and throws it away, `recsync run` serves from one,
// and every layer above reads it.
#pragma once

#include "config/config.hpp"
#include "plugin/provider_instance.hpp"
#include "rules/rule_set.hpp"
#include "schema/json_schema.hpp"

#include <array>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace recsync::model {

// How a create that may already have been made (its answer was lost) is sent again:
// the provider's describe, "create_retry" per object (provider_abi.h).
enum class CreateRetry { Resend, Upsert, Find };

struct ConnectionRuntime {
    config::ConnectionConfig config;
    std::shared_ptr<plugin::ProviderInstance> provider;
    std::vector<std::string> objects;  // the objects describe() lists, in its order
    std::map<std::string, std::shared_ptr<const schema::JsonSchema>> object_schemas;
    double rate_per_second = 0;  // effective: config, else provider default, else unlimited
    double burst = 0;
    std::map<std::string, CreateRetry, std::less<>> create_retry;  // objects without: Resend
    // Most records per call, by object and action (describe's "batch", capped by the
    // connection's batch.max_size); absent or 1: one record per call.
    std::map<std::string, std::array<int, RECSYNC_ACTION_FIND + 1>, std::less<>> batch_sizes;
    // Deliveries to /v1/webhooks/<name> can be checked: the plugin takes webhooks and its
    // describe() does not say "webhooks": false (e.g. HubSpot without webhook_url).
    bool webhooks = false;
    // A connection to System A (provider http: its services; postgres: its database):
    // records there are named by our key, and it is System A's side of every pair.
    bool system_a = false;

    const schema::JsonSchema *object_schema(const std::string &object) const;
    CreateRetry create_retry_of(std::string_view object) const;
    int batch_size_of(std::string_view object, recsync_action action) const;
    bool batches() const { return !batch_sizes.empty(); }
};

struct Runtime {
    config::EngineConfig config;
    std::map<std::string, std::shared_ptr<plugin::ProviderLibrary>> libraries;  // by provider id
    std::map<std::string, std::shared_ptr<ConnectionRuntime>> connections;      // by name
    std::shared_ptr<const rules::RuleSet> rules;
    // The connections to System A (ConnectionRuntime::system_a), sorted: a System A event
    // that only repeats what recsync last wrote there is an echo (pipeline/plan.cpp). A
    // postgres connection is also a source of System A's changes.
    std::vector<std::string> system_a_connections;
    // Plugins in plugins_dir that no connection uses and that failed to load: file -> why.
    // Reported (log, /v1/status), never fatal.
    std::map<std::string, std::string> refused_plugins;

    const ConnectionRuntime *connection(const std::string &name) const;
    // "internal" (POST /v1/events) or a System A connection that captures (postgres):
    // its events are System A's changes, keyed by System A's key.
    bool from_system_a(const std::string &source) const;
};

}  // namespace recsync::model
