// The embedded backend: every part of the state in one SQLite file (WAL), one writer
// connection shared by the parts (so one transaction can span them) and two read-only
// ones (the dispatcher's, ingest's) for reads that must not wait for a writer's fsync.
#pragma once

#include "config/config.hpp"
#include "store/state_backend.hpp"

#include <memory>

namespace recsync::store::sqlite {

std::unique_ptr<StateBackend> open_backend(const config::StateConfig &config);

}  // namespace recsync::store::sqlite
