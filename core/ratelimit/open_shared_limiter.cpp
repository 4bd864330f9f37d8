#include "ratelimit/open_shared_limiter.hpp"

#ifdef RECSYNC_WITH_REDIS
#include "ratelimit/redis/redis_limiter.hpp"
#endif

#include <stdexcept>

namespace recsync::ratelimit {

std::shared_ptr<SharedLimiter> open_shared_limiter(const config::SharedRateLimitConfig &config) {
    if (!config.shared()) return nullptr;
#ifdef RECSYNC_WITH_REDIS
    if (config.backend == "redis") return std::make_shared<RedisLimiter>(config);
#endif
    // load_config refuses a backend this build lacks; this is for a config built in code.
    throw std::runtime_error("ratelimit.backend " + config.backend + " is not in this build");
}

}  // namespace recsync::ratelimit
