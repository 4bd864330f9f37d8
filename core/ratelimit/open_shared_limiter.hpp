// The shared rate limits the config's `ratelimit` section names: none for `local` (each
// lane's own bucket is the limit), else the backend (ratelimit/redis/).
#pragma once

#include "config/config.hpp"
#include "ratelimit/shared_limiter.hpp"

#include <memory>

namespace recsync::ratelimit {

std::shared_ptr<SharedLimiter> open_shared_limiter(const config::SharedRateLimitConfig &config);

}  // namespace recsync::ratelimit
