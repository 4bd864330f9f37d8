// HubSpot polling: a search on the modification date per object, with a cursor that pages
// any number of records sharing one timestamp (provider_abi.h, build/parse_poll_*).
// developers.hubspot.com, "CRM search": filters AND within a group, one sort, at most 200
// per page, and no page past the 10,000th result of a query.
//
// The cursor is (time, id, tie) as compact JSON. In time mode the query is
// `modified GT time AND modified LTE now - overlap`, sorted by modified: staying `overlap`
// behind now is what catches a record the index shows late (its change is older than the
// upper bound by the time it is visible). A short page moves time to its last record's;
// a full one continues in tie mode at its last timestamp: `modified EQ time AND
// hs_object_id GT id` sorted by id, a keyset that pages any number of records sharing a
// timestamp and never reaches 10,000 offsets. The ids a tie page repeats from the time
// page before it are dropped by their event ids (`poll:<id>:<modified ms>`).
//
// Deletions: search sees live records only. Once the change search has caught up (a short
// time-mode page) and poll_deletions_every_s has passed, the cursor sweeps the archived
// listing (`GET /crm/v3/objects/{object}?archived=true`, by id, 100 a page: it has no time
// filter), and each record archived since the last sweep is a `deleted` event
// (`archived:<id>:<archivedAt ms>`). The sweep's place is in the cursor, so a crash goes
// on from its page.
#pragma once

#include <recsync/provider_sdk.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace hubspot {

struct PollSettings {
    int64_t overlap_ms = 30'000;  // poll_overlap_s: how far behind now the time window ends
    int page_size = 200;          // poll_page_size (HubSpot's maximum)
    // poll_deletions_every_s: how often the archived (deleted) records are listed, once the
    // change search has caught up (0: never; deletions then come from webhooks only).
    int64_t archived_every_ms = 300'000;
    // poll_since: where an empty cursor starts. "now" (default): at the newest record's
    // change, minus the overlap; "beginning": every record; or an RFC 3339 time.
    bool since_now = true;
    int64_t since_ms = 0;
    // read_properties: what the search asks for per object (empty: HubSpot's defaults).
    std::map<std::string, std::vector<std::string>, std::less<>> properties;

    // Throws sdk::ConfigError naming the setting.
    static PollSettings from_config(const recsync::sdk::json &config);
};

// The property that holds an object's modification date: lastmodifieddate on contacts,
// hs_lastmodifieddate on every other object.
std::string_view modified_property(std::string_view object);

// The search request for `object` (its path segment after /crm/v3/objects/) after `cursor`.
// `now_ms`: the current time, epoch ms. Throws sdk::InvalidInput for a cursor this code
// did not make.
recsync::sdk::Request poll_request(const PollSettings &s, std::string_view object, std::string_view path_segment, std::string_view cursor,
                                   std::string_view access_token, int64_t now_ms);

// {"events", "cursor", "more"} from the search's answer to the request poll_request built
// from `response.cursor`. Throws sdk::InvalidInput for an answer with no page (an error
// status, a body that is not a search result).
recsync::sdk::json poll_page(const PollSettings &s, std::string_view object, const recsync::sdk::Response &response, int64_t now_ms);

// "2026-12-02T03:04:05.678Z" (or with an offset, or epoch ms digits) -> epoch ms.
std::optional<int64_t> parse_time_ms(std::string_view text);

}  // namespace hubspot
