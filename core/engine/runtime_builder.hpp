// Builds a model::Runtime from the config: loads plugins, creates one instance per
// connection, compiles rules and checks every cross-reference (a rule's target connection
// and object, the provider of a connection).
#pragma once

#include "model/runtime.hpp"

#include <memory>

namespace recsync::engine {

// Throws config::ConfigErrors listing every problem, each naming its file and line.
std::shared_ptr<const model::Runtime> build_runtime(const config::EngineConfig &cfg);

}  // namespace recsync::engine
