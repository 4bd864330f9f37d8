// Polling a REST listing for changes (settings `objects.<name>.poll`):
//     GET <path>?<since_param>=<updated-at>&<after_id_param>=<id>&<page_size_param>=<n>
// The cursor is the last item's (updated-at, id), as compact JSON: with after_id_param the
// server pages past records that share a timestamp ((updated_at, id) > (since, after_id)),
// so equal timestamps never loop however many share one. Without it the since is taken as
// inclusive (a repeat is dropped by its event id), and a full page all at one timestamp
// is an error, since asking again would return that same page. The listing must be sorted
// by (updated-at, id), ascending.
#pragma once

#include "rest_settings.hpp"

#include <string_view>

namespace rest {

// The request for `poll`'s changes after `cursor` (empty: from poll.start, or the beginning),
// without the credential's headers. Throws sdk::InvalidInput for a cursor this code did not make.
recsync::sdk::Request poll_request(const PollSpec &poll, std::string_view cursor);

// {"events", "cursor", "more"} from the answer to the request built from response.cursor.
// Throws sdk::InvalidInput for an answer with no page (an error status, no items array,
// an item without an id or updated-at), worded with `message` and secrets redacted.
json poll_page(const PollSpec &poll, std::string_view object, const recsync::sdk::Response &response, const Pointer &message, const std::vector<std::string> &secrets);

}  // namespace rest
