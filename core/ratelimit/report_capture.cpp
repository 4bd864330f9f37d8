#include "ratelimit/report_capture.hpp"

#include <utility>

namespace recsync::ratelimit {

namespace {
thread_local ReportCapture *t_capture = nullptr;
}

ReportCapture::ReportCapture() : outer_(t_capture) { t_capture = this; }

ReportCapture::~ReportCapture() { t_capture = outer_; }

std::vector<ServerReport> ReportCapture::take() { return std::exchange(reports_, {}); }

void host_set_rate_limit(recsync_output *, int64_t limit, int64_t remaining, int64_t window_ms, int64_t reset_after_ms) {
    // A plugin calling this from another thread (or outside parse_response) has no capture:
    // dropping the report is the safe reading of "the host relies on 429s alone".
    if (ReportCapture *c = t_capture; c && c->reports_.size() < 16) c->reports_.push_back({limit, remaining, window_ms, reset_after_ms});
}

}  // namespace recsync::ratelimit
