// What System A's built-in targets (connectors/http, connectors/postgres) share: a fixed
// list of objects whose records are kept under recsync's record key, one call a record at
// /<object>/<record key>, in the form the mapping makes (nothing to translate).
#pragma once

#include <recsync/provider_sdk.hpp>

#include <set>
#include <string>
#include <string_view>

namespace recsync::connectors {

// How a target's messages name it and its parts.
struct KeyedTargetWording {
    std::string connector;     // "http": "action 9 is not supported by the http connector"
    std::string objects_list;  // "this connection's postgres.tables": "object 'x' is not in ..."
    std::string record;        // "the row": "a record key is needed to address the row"
};

class KeyedTarget : public sdk::Provider {
public:
    sdk::json describe() override;
    sdk::json transform(sdk::Direction, std::string_view object, const sdk::json &record) override;
    void validate(std::string_view object, const sdk::json &payload) override;

protected:
    KeyedTarget(std::set<std::string> objects, KeyedTargetWording wording);

    // The call at /<object>/<record key>: PUT with the record (create, update, upsert),
    // DELETE or GET; no headers. Throws for an unknown object, no key or another action.
    sdk::Request keyed_request(const sdk::Call &call) const;

private:
    void check_object(std::string_view object) const;

    std::set<std::string> objects_;
    KeyedTargetWording wording_;
};

}  // namespace recsync::connectors
