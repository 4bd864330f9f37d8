// The built-in `postgres` provider: a PostgreSQL database of System A as a target (B -> A).
// Like connectors/http, a provider compiled in: its calls are PUT / DELETE / GET
// /<object>/<record key> with the mapped record, on a lane like any CRM's (rate, retries,
// dead letters), but they go to the connection's Applier (pg_applier.hpp: SQL in a
// transaction marked as recsync's) instead of over HTTP: the connection's base_url is
// postgres://<connection>, which the dispatcher's executor routes.
#pragma once

#include <recsync/provider_abi.h>

namespace recsync::connectors::postgres {

inline constexpr const char *kProviderId = "postgres";
inline constexpr const char *kUrlScheme = "postgres://";

const recsync_provider &descriptor();

}  // namespace recsync::connectors::postgres
