#include "model/runtime.hpp"

#include <algorithm>

namespace recsync::model {

const schema::JsonSchema *ConnectionRuntime::object_schema(const std::string &object) const {
    auto it = object_schemas.find(object);
    return it == object_schemas.end() ? nullptr : it->second.get();
}

int ConnectionRuntime::batch_size_of(std::string_view object, recsync_action action) const {
    const auto it = batch_sizes.find(object);
    if (it == batch_sizes.end() || action < 0 || static_cast<size_t>(action) >= it->second.size()) return 1;
    return std::max(1, it->second[static_cast<size_t>(action)]);
}

CreateRetry ConnectionRuntime::create_retry_of(std::string_view object) const {
    auto it = create_retry.find(object);
    return it == create_retry.end() ? CreateRetry::Resend : it->second;
}

const ConnectionRuntime *Runtime::connection(const std::string &name) const {
    auto it = connections.find(name);
    return it == connections.end() ? nullptr : it->second.get();
}

bool Runtime::from_system_a(const std::string &source) const {
    return source == "internal" || std::binary_search(system_a_connections.begin(), system_a_connections.end(), source);
}

}  // namespace recsync::model
