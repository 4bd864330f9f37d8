#include "store/state_backend.hpp"

#include "store/sqlite/sqlite_backend.hpp"

namespace recsync::store {

// The one place outside store/<backend>/ that names a backend: the config chooses.
std::unique_ptr<StateBackend> open_state_backend(const config::StateConfig &config) { return sqlite::open_backend(config); }

}  // namespace recsync::store
