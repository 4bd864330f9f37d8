#include "connectors/postgres/pg_target.hpp"

#include "connectors/keyed_target.hpp"

#include <set>

namespace recsync::connectors::postgres {

namespace {

using sdk::Action;
using sdk::Call;
using sdk::ConfigError;
using sdk::json;
using sdk::Request;
using sdk::Response;
using sdk::Result;

// config.objects: the objects of postgres.tables (the runtime builder lists them).
std::set<std::string> configured_objects(const json &config) {
    const auto objects = config.find("objects");
    if (objects == config.end() || !objects->is_array() || objects->empty()) throw ConfigError("postgres connection: postgres.tables lists no object");
    std::set<std::string> names;
    for (const auto &o : *objects) names.insert(o.get<std::string>());
    return names;
}

// Its calls go to the connection's Applier, which upserts by our key.
class PgTarget final : public KeyedTarget {
public:
    explicit PgTarget(const json &config) : KeyedTarget(configured_objects(config), {"postgres", "this connection's postgres.tables", "the row"}) {}

    Request build_request(const Call &call) override { return keyed_request(call); }

    Result parse_response(const Call &call, const Response &response) override {
        const int s = response.status;
        const std::string key(call.record_key);
        if (s >= 200 && s < 300) {
            Result r = Result::ok(key);  // the row is kept under our key
            if (call.action == Action::Read) r.record = std::string(response.body);
            return r;
        }
        if (s == 404 && call.action == Action::Delete) return Result::ok(key);  // no such row: done
        const std::string why = response.body.empty() ? "PostgreSQL apply answered " + std::to_string(s) : std::string(response.body);
        if (s == 503) return Result::retry(why, 0);
        return Result::fail(why);
    }
};

}  // namespace

const recsync_provider &descriptor() {
    static const recsync_provider *d = sdk::detail::entry<PgTarget>(kProviderId, "1.0.0", 0, RECSYNC_ABI_VERSION, RECSYNC_ABI_VERSION);
    return *d;
}

}  // namespace recsync::connectors::postgres
