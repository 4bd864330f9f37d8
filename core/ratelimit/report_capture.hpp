// The host side of host_api.set_rate_limit (ABI 1.1). A plugin calls it from inside
// parse_response, which the host runs synchronously on the asking thread, so the reports of
// one call land in the ReportCapture that thread keeps alive around it (the dispatcher's).
// Reports with no capture open on the thread (conformance checks, `plugin check`) are
// dropped: nobody there sends on the plugin's behalf.
//
// The host api table (core/plugin/provider_instance.cpp) points its set_rate_limit member
// at host_set_rate_limit.
#pragma once

#include "ratelimit/server_quota.hpp"

#include <recsync/provider_abi.h>

#include <vector>

namespace recsync::ratelimit {

class ReportCapture {
public:
    ReportCapture();
    ~ReportCapture();
    ReportCapture(const ReportCapture &) = delete;
    ReportCapture &operator=(const ReportCapture &) = delete;

    // What was reported since the capture opened (or since the last take), in order.
    std::vector<ServerReport> take();

private:
    friend void host_set_rate_limit(recsync_output *, int64_t, int64_t, int64_t, int64_t);
    std::vector<ServerReport> reports_;
    ReportCapture *outer_;  // captures nest; the innermost one collects
};

// host_api.set_rate_limit. `out` is not used: the capture is per thread.
void host_set_rate_limit(recsync_output *out, int64_t limit, int64_t remaining, int64_t window_ms, int64_t reset_after_ms);

}  // namespace recsync::ratelimit
