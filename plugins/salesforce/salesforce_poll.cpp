#include "salesforce_poll.hpp"

#include "salesforce_errors.hpp"
#include "salesforce_text.hpp"

#include <algorithm>
#include <optional>
#include <vector>

namespace salesforce {

using recsync::sdk::InvalidInput;
using recsync::sdk::json;
using recsync::sdk::Request;
using recsync::sdk::Response;

namespace {

struct Cursor {
    int64_t second_ms = 0;  // where the next query starts (a whole second)
    int64_t last_ms = -1;   // the last row delivered: (stamp, Id); -1: none
    std::string last_id;
    std::string next;  // the open query's nextRecordsUrl
};

constexpr int64_t floor_second(int64_t ms) { return ms - ((ms % 1000) + 1000) % 1000; }

std::string cursor_text(const Cursor &c) {
    json j = {{"s", c.second_ms}};
    if (c.last_ms >= 0) {
        j["ms"] = c.last_ms;
        j["id"] = c.last_id;
    }
    if (!c.next.empty()) j["next"] = c.next;
    return j.dump();
}

// nullopt: no cursor yet, and it starts at now (the probe for the newest stamp).
std::optional<Cursor> cursor_of(const Settings &s, std::string_view text) {
    if (text.empty()) {
        if (s.poll.since_now) return std::nullopt;
        Cursor c;
        c.second_ms = floor_second(s.poll.since_ms);
        return c;
    }
    const auto j = json::parse(text.begin(), text.end(), nullptr, false);
    if (!j.is_object() || !j.contains("s") || !j["s"].is_number_integer()) throw InvalidInput("not a salesforce poll cursor: " + std::string(text.substr(0, 100)));
    Cursor c;
    c.second_ms = j["s"].get<int64_t>();
    if (j.contains("ms") && j["ms"].is_number_integer() && j.contains("id") && j["id"].is_string()) {
        c.last_ms = j["ms"].get<int64_t>();
        c.last_id = j["id"].get<std::string>();
    }
    c.next = j.value("next", std::string());
    return c;
}

Request query_get(const Settings &s, std::string path, std::string_view token) {
    Request req{"GET", std::move(path), {}, {}};
    req.headers.push_back({"Accept", "application/json", false});
    req.headers.push_back({"Sforce-Query-Options", "batchSize=" + std::to_string(s.poll.batch_size), false});
    if (!token.empty()) req.headers.push_back(recsync::sdk::bearer_authorization(token));
    return req;
}

std::string id_text(const json &row) {
    const auto id = row.find("Id");
    if (id == row.end() || !id->is_string() || id->get_ref<const std::string &>().empty()) throw InvalidInput("Salesforce query row without an Id");
    return id->get<std::string>();
}

}  // namespace

std::string select_list(const ObjectSettings &object, bool for_poll) {
    // Field names are case-insensitive in SOQL: a configured "id" is not asked twice.
    const auto same = [](std::string_view a, std::string_view b) {
        return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(x) == std::tolower(y); });
    };
    std::vector<std::string_view> names = {"Id"};
    const auto add = [&](std::string_view f) {
        if (std::none_of(names.begin(), names.end(), [&](std::string_view n) { return same(n, f); })) names.push_back(f);
    };
    if (for_poll)
        for (const char *f : {"IsDeleted", "CreatedDate", "SystemModstamp", "LastModifiedById"}) add(f);
    for (const auto &f : object.fields) add(f);
    std::string list;
    for (const auto n : names) list += (list.empty() ? "" : ", ") + std::string(n);
    return list;
}

Request poll_request(const Settings &s, const ObjectSettings &object, std::string_view cursor_text_in, std::string_view token, int64_t now_ms) {
    const auto cursor = cursor_of(s, cursor_text_in);
    const std::string query_all = s.data_path + "/queryAll/?q=";
    if (!cursor) return query_get(s, query_all + recsync::sdk::percent_encode("SELECT SystemModstamp FROM " + object.type + " ORDER BY SystemModstamp DESC LIMIT 1"), token);
    if (!cursor->next.empty()) {
        // Salesforce's own locator path; only a path under this API version is followed.
        if (!cursor->next.starts_with(s.data_path + "/queryAll/") || cursor->next.find("..") != std::string::npos || cursor->next.find_first_of("?#\\ ") != std::string::npos)
            throw InvalidInput("salesforce poll cursor holds an unexpected nextRecordsUrl: " + cursor->next.substr(0, 100));
        return query_get(s, cursor->next, token);
    }
    const int64_t upper = floor_second(now_ms - s.poll.overlap_ms);
    const std::string soql = "SELECT " + select_list(object, true) + " FROM " + object.type + " WHERE SystemModstamp >= " + soql_datetime(cursor->second_ms) +
                             " AND SystemModstamp <= " + soql_datetime(upper) + " ORDER BY SystemModstamp, Id";
    return query_get(s, query_all + recsync::sdk::percent_encode(soql), token);
}

json poll_page(const Settings &s, const ObjectSettings &object, const Response &response, const std::string &echo_user_id) {
    auto cursor = cursor_of(s, response.cursor);
    if (response.status != 200) {
        const ApiError e = api_error(response.status, response.body);
        if (cursor && !cursor->next.empty() && e.has("INVALID_QUERY_LOCATOR")) {
            // The open query's locator expired: a new query from where the rows got to.
            cursor->next.clear();
            return {{"events", json::array()}, {"cursor", cursor_text(*cursor)}, {"more", true}};
        }
        throw InvalidInput(e.message + " (to a poll of " + object.type + ")");
    }
    const auto body = json::parse(response.body.begin(), response.body.end(), nullptr, false);
    const auto records = body.is_object() ? body.find("records") : body.end();
    if (!body.is_object() || records == body.end() || !records->is_array()) throw InvalidInput("Salesforce answered a query without 'records'");
    if (!cursor) {
        // The probe: start at the newest change, less the overlap (none yet: at the start).
        Cursor c;
        if (!records->empty()) {
            const auto &row = (*records)[0];
            const auto stamp = row.is_object() && row.contains("SystemModstamp") && row["SystemModstamp"].is_string() ? recsync::sdk::rfc3339_ms(row["SystemModstamp"].get<std::string>()) : std::nullopt;
            if (!stamp) throw InvalidInput("Salesforce query row without a readable SystemModstamp");
            c.second_ms = floor_second(*stamp - s.poll.overlap_ms);
        }
        return {{"events", json::array()}, {"cursor", cursor_text(c)}, {"more", true}};
    }
    json events = json::array();
    for (const auto &row : *records) {
        if (!row.is_object()) throw InvalidInput("Salesforce query row is not an object");
        const std::string id = id_text(row);
        const auto stamp_text = row.value("SystemModstamp", std::string());
        const auto stamp = recsync::sdk::rfc3339_ms(stamp_text);
        if (!stamp) throw InvalidInput("Salesforce row " + id + " without a readable SystemModstamp");
        // Ordered by (SystemModstamp, Id): what is not after the last delivered row was delivered.
        if (cursor->last_ms >= 0 && (*stamp < cursor->last_ms || (*stamp == cursor->last_ms && id <= cursor->last_id))) continue;
        cursor->last_ms = *stamp;
        cursor->last_id = id;
        cursor->second_ms = floor_second(*stamp);
        const bool deleted = row.value("IsDeleted", false);
        if (!deleted && !echo_user_id.empty() && row.value("LastModifiedById", std::string()) == echo_user_id) continue;  // our own write
        json e = {{"object", object.type},
                  {"event", deleted ? "deleted" : row.value("CreatedDate", std::string()) == stamp_text ? "created" : "updated"},
                  {"external_id", id},
                  {"id", "sf:" + id + ":" + std::to_string(*stamp)},
                  {"occurred_at", *stamp}};
        if (!deleted) {
            json data = row;
            data.erase("attributes");
            e["data"] = std::move(data);
        }
        events.push_back(std::move(e));
    }
    const bool done = body.value("done", true);
    std::string next = done ? std::string() : body.value("nextRecordsUrl", std::string());
    if (!done && next.empty()) throw InvalidInput("Salesforce answered a query with done: false and no nextRecordsUrl");
    cursor->next = std::move(next);
    return {{"events", std::move(events)}, {"cursor", cursor_text(*cursor)}, {"more", !cursor->next.empty()}};
}

}  // namespace salesforce
