// Polling a salesforce sObject type for changes and deletions: SOQL through queryAll (it
// also returns deleted rows, IsDeleted = true, for as long as they are in the Recycle Bin),
// on SystemModstamp, paged by nextRecordsUrl.
//
// The cursor is {"s": second, "ms": stamp, "id": Id, "next": locator} as compact JSON. A
// query reads `SystemModstamp >= s AND SystemModstamp <= now - overlap ORDER BY
// SystemModstamp, Id`, whole seconds both (SOQL's dateTime literals have none smaller):
// staying `overlap` behind now is the lookback that catches a change whose transaction
// committed after a younger one's. Rows up to the last delivered (ms, id) are skipped, so
// the second the cursor rests on is read again without being reported again; a query
// locator pages any number of rows that share one timestamp. A locator Salesforce has
// dropped (INVALID_QUERY_LOCATOR) starts a new query from the cursor's place.
//
// An empty cursor with poll_since "now" first asks for the newest SystemModstamp and
// starts there, less the overlap.
#pragma once

#include "salesforce_settings.hpp"

#include <string>
#include <string_view>

namespace salesforce {

recsync::sdk::Request poll_request(const Settings &s, const ObjectSettings &object, std::string_view cursor, std::string_view access_token, int64_t now_ms);

// {"events", "cursor", "more"}. `echo_user_id`: rows it changed last are not reported
// (our own writes). Throws sdk::InvalidInput for an answer with no page.
recsync::sdk::json poll_page(const Settings &s, const ObjectSettings &object, const recsync::sdk::Response &response, const std::string &echo_user_id);

// The SOQL field list a read or a poll of `object` asks for (Id first).
std::string select_list(const ObjectSettings &object, bool for_poll);

}  // namespace salesforce
