#include "rest_poll.hpp"

#include "rest_classify.hpp"

#include <chrono>
#include <cstdio>

namespace rest {

using recsync::sdk::InvalidInput;
using recsync::sdk::percent_encode;
using recsync::sdk::Request;
using recsync::sdk::Response;

namespace {

struct Cursor {
    std::string updated_at;
    std::string id;
};

std::string cursor_text(const Cursor &c) { return json{{"t", c.updated_at}, {"id", c.id}}.dump(); }

std::optional<Cursor> cursor_of(std::string_view text) {
    if (text.empty()) return std::nullopt;
    const json j = json::parse(text.begin(), text.end(), nullptr, false);
    if (!j.is_object() || !j.contains("t") || !j["t"].is_string() || !j.contains("id") || !j["id"].is_string())
        throw InvalidInput("not a rest poll cursor: " + std::string(text.substr(0, 100)));
    return Cursor{j["t"].get<std::string>(), j["id"].get<std::string>()};
}

// An updated-at as the text the cursor sends back: a string as it is, a number as digits.
std::string stamp_text(const json *v) {
    if (!v) return {};
    if (v->is_string()) return v->get<std::string>();
    if (v->is_number_integer() || v->is_number_unsigned()) return v->dump();
    return {};
}

}  // namespace

Request poll_request(const PollSpec &poll, std::string_view cursor_in) {
    const auto cursor = cursor_of(cursor_in);
    std::string path = poll.path.source;
    char sep = path.find('?') == std::string::npos ? '?' : '&';
    const auto add = [&](const std::string &name, std::string_view value) {
        path += sep + name + "=" + percent_encode(value);
        sep = '&';
    };
    const std::string since = cursor ? cursor->updated_at : poll.start;
    if (!since.empty()) add(poll.since_param, since);
    if (cursor && !poll.after_id_param.empty()) add(poll.after_id_param, cursor->id);
    if (!poll.page_size_param.empty()) add(poll.page_size_param, std::to_string(poll.page_size));
    Request req{"GET", std::move(path), {}, {}};
    req.headers.push_back({"Accept", "application/json", false});
    return req;
}

json poll_page(const PollSpec &poll, std::string_view object, const Response &response, const Pointer &message, const std::vector<std::string> &secrets) {
    const json body = json::parse(response.body.begin(), response.body.end(), nullptr, false);
    const std::string what = "the poll of " + std::string(object);
    if (response.status < 200 || response.status >= 300)
        throw InvalidInput("HTTP " + std::to_string(response.status) + " to " + what + describe_body(body, response.body, message, secrets));
    const json *items = at_pointer(body, poll.items);
    if (!items || !items->is_array()) throw InvalidInput("the answer to " + what + " has no items array at " + poll.items.to_string());
    Cursor next;  // the last item's; with no items the request's cursor stands
    std::string first_stamp;
    json events = json::array();
    for (const auto &item : *items) {
        const std::string id = id_text(at_pointer(item, poll.id));
        if (id.empty()) throw InvalidInput(what + ": an item without an id at " + poll.id.to_string());
        const json *stamp_value = at_pointer(item, poll.updated_at);
        const std::string stamp = stamp_text(stamp_value);
        if (stamp.empty()) throw InvalidInput(what + ": item " + id + " has no updated-at at " + poll.updated_at.to_string());
        const json *deleted = poll.deleted ? at_pointer(item, *poll.deleted) : nullptr;
        const bool gone = deleted && deleted->is_boolean() && deleted->get<bool>();
        const bool created = !gone && poll.created_at && stamp_text(at_pointer(item, *poll.created_at)) == stamp;
        json e = {{"object", object}, {"event", gone ? "deleted" : created ? "created" : "updated"}, {"external_id", id}, {"id", "poll:" + id + ":" + stamp}, {"modified", stamp}};
        // The change's time orders the record's events (an epoch-ms number is taken as it is).
        if (const auto ms = recsync::sdk::rfc3339_ms(stamp)) e["occurred_at"] = *ms;
        else if (stamp_value->is_number_integer()) e["occurred_at"] = stamp_value->get<int64_t>();
        if (!gone && poll.hydrate) e["hydrate"] = true;
        else if (!gone) e["data"] = item;
        events.push_back(std::move(e));
        if (first_stamp.empty()) first_stamp = stamp;
        next = {stamp, id};
    }
    const bool full = static_cast<int>(items->size()) >= poll.page_size;
    if (full && poll.after_id_param.empty() && first_stamp == next.updated_at)
        throw InvalidInput(what + ": a whole page (" + std::to_string(items->size()) + " items) was updated at " + next.updated_at +
                           ", and asking again from there returns the same page: set poll.after_id_param (the API's after-id filter) or a larger page_size");
    const bool moved = !items->empty();
    return {{"events", std::move(events)}, {"cursor", moved ? cursor_text(next) : std::string(response.cursor)}, {"more", full}};
}

}  // namespace rest
