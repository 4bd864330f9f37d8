#include "connectors/keyed_target.hpp"

#include <utility>

namespace recsync::connectors {

using sdk::Action;
using sdk::InvalidInput;
using sdk::json;

KeyedTarget::KeyedTarget(std::set<std::string> objects, KeyedTargetWording wording) : objects_(std::move(objects)), wording_(std::move(wording)) {}

json KeyedTarget::describe() {
    json objects = json::object();
    // A write by our key makes or replaces the record: an in-doubt create is the same call.
    for (const auto &name : objects_) objects[name] = {{"schema", {{"type", "object"}}}, {"create_retry", "upsert"}};
    return {{"objects", std::move(objects)}};
}

json KeyedTarget::transform(sdk::Direction, std::string_view object, const json &record) {
    check_object(object);
    if (!record.is_object()) throw InvalidInput("record must be a JSON object");
    return record;
}

void KeyedTarget::validate(std::string_view object, const json &payload) {
    check_object(object);
    if (!payload.is_object()) throw InvalidInput("payload must be a JSON object");
}

sdk::Request KeyedTarget::keyed_request(const sdk::Call &call) const {
    check_object(call.object);
    if (call.record_key.empty()) throw InvalidInput("a record key is needed to address " + wording_.record);
    const std::string path = "/" + sdk::percent_encode(call.object) + "/" + sdk::percent_encode(call.record_key);
    switch (call.action) {
        case Action::Create:
        case Action::Update:
        case Action::Upsert: return {"PUT", path, std::string(call.payload), {}};
        case Action::Delete: return {"DELETE", path, "", {}};
        case Action::Read: return {"GET", path, "", {}};
        default: throw sdk::Unsupported("action " + std::to_string(static_cast<int>(call.action)) + " is not supported by the " + wording_.connector + " connector");
    }
}

void KeyedTarget::check_object(std::string_view object) const {
    if (!objects_.count(std::string(object))) throw sdk::Unsupported("object '" + std::string(object) + "' is not in " + wording_.objects_list);
}

}  // namespace recsync::connectors
