#include "connectors/postgres/pg_target.hpp"

#include <recsync/provider_sdk.hpp>

#include <set>

namespace recsync::connectors::postgres {

namespace {

using sdk::Action;
using sdk::Call;
using sdk::ConfigError;
using sdk::Direction;
using sdk::InvalidInput;
using sdk::json;
using sdk::Request;
using sdk::Response;
using sdk::Result;

class PgTarget final : public sdk::Provider {
public:
    // config.objects: the objects of postgres.tables (the runtime builder lists them).
    explicit PgTarget(const json &config) {
        const auto objects = config.find("objects");
        if (objects == config.end() || !objects->is_array() || objects->empty()) throw ConfigError("postgres connection: postgres.tables lists no object");
        for (const auto &o : *objects) objects_.insert(o.get<std::string>());
    }

    json describe() override {
        json objects = json::object();
        // An upsert by our key: an in-doubt create is the same call again.
        for (const auto &name : objects_) objects[name] = {{"schema", {{"type", "object"}}}, {"create_retry", "upsert"}};
        return {{"objects", std::move(objects)}};
    }

    json transform(Direction, std::string_view object, const json &record) override {
        check_object(object);
        if (!record.is_object()) throw InvalidInput("record must be a JSON object");
        return record;
    }

    void validate(std::string_view object, const json &payload) override {
        check_object(object);
        if (!payload.is_object()) throw InvalidInput("payload must be a JSON object");
    }

    Request build_request(const Call &call) override {
        check_object(call.object);
        if (call.record_key.empty()) throw InvalidInput("a record key is needed to address the row");
        const std::string path = "/" + sdk::percent_encode(call.object) + "/" + sdk::percent_encode(call.record_key);
        switch (call.action) {
            case Action::Create:
            case Action::Update:
            case Action::Upsert: return {"PUT", path, std::string(call.payload), {}};
            case Action::Delete: return {"DELETE", path, "", {}};
            case Action::Read: return {"GET", path, "", {}};
            default: throw sdk::Unsupported("action " + std::to_string(static_cast<int>(call.action)) + " is not supported by the postgres connector");
        }
    }

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

private:
    void check_object(std::string_view object) const {
        if (!objects_.count(std::string(object))) throw sdk::Unsupported("object '" + std::string(object) + "' is not in this connection's postgres.tables");
    }

    std::set<std::string> objects_;
};

}  // namespace

const recsync_provider &descriptor() {
    static const recsync_provider *d = sdk::detail::entry<PgTarget>(kProviderId, "1.0.0", 0, RECSYNC_ABI_VERSION, RECSYNC_ABI_VERSION);
    return *d;
}

}  // namespace recsync::connectors::postgres
