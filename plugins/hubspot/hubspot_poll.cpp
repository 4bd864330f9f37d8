#include "hubspot_poll.hpp"

#include <charconv>
#include <chrono>
#include <optional>

namespace hubspot {

using recsync::sdk::ConfigError;
using recsync::sdk::InvalidInput;
using recsync::sdk::json;
using recsync::sdk::Request;
using recsync::sdk::Response;

namespace {

constexpr std::string_view kObjectId = "hs_object_id";

struct Cursor {
    int64_t time_ms = 0;
    std::string id;  // tie mode: the last id read at time_ms ("0": none yet)
    bool tie = false;
    // Deletions: the archived listing is swept (all of it, by id: it has no time filter)
    // at most every archived_every_ms. archived_ms: the newest archivedAt a finished sweep
    // saw; a sweep reports only records archived after it (less the overlap).
    int64_t archived_ms = 0;
    int64_t next_sweep_ms = 0;
    bool sweeping = false;
    std::string sweep_after;  // the listing's paging token ("": its first page)
    int64_t sweep_max_ms = 0;  // the newest archivedAt this sweep has seen so far
};

std::string cursor_text(const Cursor &c) {
    json j = {{"t", c.time_ms}};
    if (c.tie) {
        j["tie"] = true;
        j["id"] = c.id;
    }
    if (c.archived_ms) j["ahw"] = c.archived_ms;
    if (c.next_sweep_ms) j["nsw"] = c.next_sweep_ms;
    if (c.sweeping) j["sweep"] = {{"after", c.sweep_after}, {"max", c.sweep_max_ms}};
    return j.dump();
}

// The cursor a request starts from; nullopt: "start at now" (poll_since: now).
std::optional<Cursor> cursor_of(const PollSettings &s, std::string_view text) {
    if (text.empty()) {
        if (s.since_now) return std::nullopt;
        Cursor c;
        c.time_ms = c.archived_ms = s.since_ms - 1;  // GT since - 1: the records changed (or deleted) at `since` too
        return c;
    }
    const auto j = json::parse(text.begin(), text.end(), nullptr, false);
    const auto bad = [&](const char *why) { return InvalidInput(std::string("not a hubspot poll cursor (") + why + "): " + std::string(text.substr(0, 100))); };
    if (!j.is_object() || !j.contains("t") || !j["t"].is_number_integer()) throw bad("no time");
    Cursor c;
    c.time_ms = j["t"].get<int64_t>();
    c.tie = j.value("tie", false);
    if (c.tie) {
        if (!j.contains("id") || !j["id"].is_string()) throw bad("tie mode without an id");
        c.id = j["id"].get<std::string>();
    }
    if (const auto a = j.find("ahw"); a != j.end() && a->is_number_integer()) c.archived_ms = a->get<int64_t>();
    if (const auto n = j.find("nsw"); n != j.end() && n->is_number_integer()) c.next_sweep_ms = n->get<int64_t>();
    if (const auto w = j.find("sweep"); w != j.end()) {
        if (!w->is_object() || !w->contains("after") || !(*w)["after"].is_string()) throw bad("a sweep without its place");
        c.sweeping = true;
        c.sweep_after = (*w)["after"].get<std::string>();
        c.sweep_max_ms = w->value("max", int64_t{0});
    }
    return c;
}

json filter(std::string_view property, const char *op, const std::string &value) {
    return {{"propertyName", property}, {"operator", op}, {"value", value}};
}

}  // namespace

std::optional<int64_t> parse_time_ms(std::string_view t) {
    if (!t.empty() && t.find('-') == std::string_view::npos) {  // epoch ms digits
        int64_t v = 0;
        const auto r = std::from_chars(t.data(), t.data() + t.size(), v);
        return r.ec == std::errc() && r.ptr == t.data() + t.size() ? std::optional<int64_t>(v) : std::nullopt;
    }
    return recsync::sdk::rfc3339_ms(t);
}

std::string_view modified_property(std::string_view object) { return object == "contacts" ? "lastmodifieddate" : "hs_lastmodifieddate"; }

PollSettings PollSettings::from_config(const json &config) {
    PollSettings s;
    if (const auto o = config.find("poll_overlap_s"); o != config.end()) {
        if (!o->is_number_integer() || o->get<int64_t>() < 0 || o->get<int64_t>() > 3600)
            throw ConfigError("hubspot config 'poll_overlap_s' must be a whole number of seconds from 0 to 3600");
        s.overlap_ms = o->get<int64_t>() * 1000;
    }
    if (const auto p = config.find("poll_page_size"); p != config.end()) {
        if (!p->is_number_integer() || p->get<int64_t>() < 1 || p->get<int64_t>() > 200)
            throw ConfigError("hubspot config 'poll_page_size' must be a whole number from 1 to 200 (HubSpot's search maximum)");
        s.page_size = static_cast<int>(p->get<int64_t>());
    }
    if (const auto a = config.find("poll_deletions_every_s"); a != config.end()) {
        if (!a->is_number_integer() || a->get<int64_t>() < 0 || a->get<int64_t>() > 86'400)
            throw ConfigError("hubspot config 'poll_deletions_every_s' must be a whole number of seconds from 0 (never) to 86400");
        s.archived_every_ms = a->get<int64_t>() * 1000;
    }
    if (const auto v = config.find("poll_since"); v != config.end()) {
        const std::string text = v->is_string() ? v->get<std::string>() : std::string();
        if (text == "beginning") {
            s.since_now = false;
            s.since_ms = 0;
        } else if (text != "now") {
            const auto t = text.find('T') != std::string::npos ? parse_time_ms(text) : std::nullopt;
            if (!t) throw ConfigError("hubspot config 'poll_since' must be \"now\", \"beginning\" or an RFC 3339 time like 2026-01-31T00:00:00Z, got " + v->dump());
            s.since_now = false;
            s.since_ms = *t;
        }
    }
    if (const auto r = config.find("read_properties"); r != config.end() && r->is_object())  // checked by the provider
        for (const auto &[object, list] : r->items())
            for (const auto &p : list)
                if (p.is_string()) s.properties[object].push_back(p.get<std::string>());
    return s;
}

Request poll_request(const PollSettings &s, std::string_view object, std::string_view path_segment, std::string_view cursor_text_in, std::string_view access_token,
                     int64_t now_ms) {
    const auto cursor = cursor_of(s, cursor_text_in);
    const std::string_view modified = modified_property(object);
    if (cursor && cursor->sweeping) {
        // A page of the archived (deleted) records, by id.
        std::string path = "/crm/v3/objects/" + std::string(path_segment) + "?archived=true&limit=100";
        if (!cursor->sweep_after.empty()) path += "&after=" + recsync::sdk::percent_encode(cursor->sweep_after);
        Request req{"GET", std::move(path), {}, {}};
        req.headers.push_back({"Accept", "application/json", false});
        if (!access_token.empty()) req.headers.push_back(recsync::sdk::bearer_authorization(access_token));
        return req;
    }
    json body;
    if (!cursor) {
        // Start at now: the newest change the index shows is where the cursor begins.
        body = {{"sorts", json::array({{{"propertyName", modified}, {"direction", "DESCENDING"}}})}, {"limit", 1}};
    } else if (cursor->tie) {
        body = {{"filterGroups", json::array({{{"filters", json::array({filter(modified, "EQ", std::to_string(cursor->time_ms)),
                                                                          filter(kObjectId, "GT", cursor->id.empty() ? "0" : cursor->id)})}}})},
                {"sorts", json::array({{{"propertyName", kObjectId}, {"direction", "ASCENDING"}}})},
                {"limit", s.page_size}};
    } else {
        body = {{"filterGroups", json::array({{{"filters", json::array({filter(modified, "GT", std::to_string(cursor->time_ms)),
                                                                          filter(modified, "LTE", std::to_string(now_ms - s.overlap_ms))})}}})},
                {"sorts", json::array({{{"propertyName", modified}, {"direction", "ASCENDING"}}})},
                {"limit", s.page_size}};
    }
    if (const auto p = s.properties.find(object); p != s.properties.end()) {
        // What the records need, and what the cursor reads from each.
        json props = json::array({modified, kObjectId, "createdate"});
        for (const auto &name : p->second) props.push_back(name);
        body["properties"] = std::move(props);
    }
    Request req{"POST", "/crm/v3/objects/" + std::string(path_segment) + "/search", body.dump(), {}};
    req.headers.push_back({"Content-Type", "application/json", false});
    req.headers.push_back({"Accept", "application/json", false});
    if (!access_token.empty()) req.headers.push_back(recsync::sdk::bearer_authorization(access_token));
    return req;
}

namespace {

// A page of the archived listing: a deletion event for each record archived after the
// last finished sweep's newest (less the overlap; repeats have the same event id), and
// the sweep's next page, or its end.
json archived_page(const PollSettings &s, std::string_view object, Cursor cursor, const json &body, int64_t now_ms) {
    const auto results = body.find("results");
    if (results == body.end() || !results->is_array()) throw InvalidInput("HubSpot answered an archived listing without 'results'");
    json events = json::array();
    for (const auto &r : *results) {
        if (!r.is_object() || !r.contains("id")) throw InvalidInput("HubSpot archived record without an 'id'");
        const std::string id = r["id"].is_string() ? r["id"].get<std::string>() : r["id"].dump();
        const auto at = r.contains("archivedAt") && r["archivedAt"].is_string() ? parse_time_ms(r["archivedAt"].get<std::string>()) : std::nullopt;
        if (!at) throw InvalidInput("HubSpot archived record " + id + " without a readable 'archivedAt'");
        cursor.sweep_max_ms = std::max(cursor.sweep_max_ms, *at);
        if (*at <= cursor.archived_ms - s.overlap_ms) continue;  // reported by an earlier sweep
        events.push_back({{"object", object}, {"event", "deleted"}, {"external_id", id}, {"id", "archived:" + id + ":" + std::to_string(*at)}, {"occurred_at", *at}});
    }
    const auto next = body.find("paging");
    std::string after;
    if (next != body.end() && next->is_object() && next->contains("next") && (*next)["next"].is_object())
        after = (*next)["next"].value("after", std::string());
    if (!after.empty()) {
        cursor.sweep_after = std::move(after);
    } else {
        cursor.sweeping = false;
        cursor.sweep_after.clear();
        cursor.archived_ms = cursor.sweep_max_ms;
        cursor.next_sweep_ms = now_ms + s.archived_every_ms;
    }
    return {{"events", std::move(events)}, {"cursor", cursor_text(cursor)}, {"more", true}};
}

}  // namespace

json poll_page(const PollSettings &s, std::string_view object, const Response &response, int64_t now_ms) {
    const auto body = json::parse(response.body.begin(), response.body.end(), nullptr, false);
    if (response.status < 200 || response.status >= 300) {
        std::string why = "HubSpot returned " + std::to_string(response.status) + " to a search";
        if (body.is_object() && body.contains("message") && body["message"].is_string()) why += ": " + body["message"].get<std::string>().substr(0, 300);
        throw InvalidInput(why);
    }
    const auto results = body.is_object() ? body.find("results") : body.end();
    if (!body.is_object() || results == body.end() || !results->is_array()) throw InvalidInput("HubSpot answered a search without 'results'");
    auto cursor = cursor_of(s, response.cursor);
    if (cursor && cursor->sweeping) return archived_page(s, object, *cursor, body, now_ms);
    const std::string_view modified_name = modified_property(object);
    json events = json::array();
    int64_t last_ms = 0;
    std::string last_id;
    for (const auto &r : *results) {
        const auto props = r.is_object() ? r.find("properties") : r.end();
        if (!r.is_object() || props == r.end() || !props->is_object() || !r.contains("id")) throw InvalidInput("HubSpot search result without 'id' and 'properties'");
        const std::string id = r["id"].is_string() ? r["id"].get<std::string>() : r["id"].dump();
        const auto stamp = props->find(modified_name);
        std::optional<int64_t> ms = stamp != props->end() && stamp->is_string() ? parse_time_ms(stamp->get<std::string>()) : std::nullopt;
        if (!ms && r.contains("updatedAt") && r["updatedAt"].is_string()) ms = parse_time_ms(r["updatedAt"].get<std::string>());
        if (!ms) throw InvalidInput("HubSpot search result " + id + " without a readable " + std::string(modified_name));
        const std::string updated = r.value("updatedAt", std::string());
        json e = {{"object", object},
                  {"event", !updated.empty() && r.value("createdAt", std::string()) == updated ? "created" : "updated"},
                  {"external_id", id},
                  {"id", "poll:" + id + ":" + std::to_string(*ms)},
                  {"occurred_at", *ms},
                  {"data", {{"id", id}, {"properties", *props}}}};
        if (!updated.empty()) e["modified"] = updated;  // the stamp writes report: an echo of ours is dropped
        events.push_back(std::move(e));
        last_ms = *ms;
        last_id = id;
    }
    const bool full = static_cast<int>(results->size()) >= s.page_size;
    json out = {{"more", false}};
    if (!cursor) {
        // The start-at-now probe: one record, the newest; nothing before it is delivered
        // but the overlap's worth, which the index may still be filling. Deletions from
        // then on too.
        if (results->empty()) {
            out["cursor"] = std::string();
        } else {
            Cursor c;
            c.time_ms = c.archived_ms = last_ms - s.overlap_ms;
            c.next_sweep_ms = now_ms + s.archived_every_ms;
            out["cursor"] = cursor_text(c);
        }
        out["more"] = !results->empty();
        out["events"] = json::array();
        return out;
    }
    Cursor next = *cursor;
    if (cursor->tie) {
        // A full page: more at this timestamp after its last id; a short one: the
        // timestamp is done, go on after it.
        next.id = full ? last_id : std::string();
        next.tie = full;
        out["more"] = true;
    } else if (full) {
        next.time_ms = last_ms;  // the rest of the last timestamp, by id
        next.id = "0";
        next.tie = true;
        out["more"] = true;
    } else {
        // Short: everything up to the window's end was read. The window is closed on the
        // right at now - overlap, so moving to the last record's time (not the window's
        // end, which parse cannot see) loses nothing.
        if (!results->empty()) next.time_ms = last_ms;
        if (s.archived_every_ms > 0 && now_ms >= next.next_sweep_ms) {
            // Caught up, and a sweep of the deletions is due: it starts now.
            next.sweeping = true;
            next.sweep_after.clear();
            next.sweep_max_ms = next.archived_ms;
            out["more"] = true;
        }
    }
    out["cursor"] = cursor_text(next);
    out["events"] = std::move(events);
    return out;
}

}  // namespace hubspot
