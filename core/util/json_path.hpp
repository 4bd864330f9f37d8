// Dotted field paths ("address.city") compiled once into segments, resolved without
// allocation. Shared by rules (conditions) and mappings (from/to).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace recsync::util {

class JsonPath {
public:
    JsonPath() = default;
    explicit JsonPath(const std::string &dotted);

    // The value at this path, or nullptr if any segment is missing / not an object.
    const nlohmann::json *find(const nlohmann::json &doc) const {
        const nlohmann::json *cur = &doc;
        for (const auto &seg : segments_) {
            if (!cur->is_object()) return nullptr;
            auto it = cur->find(seg);
            if (it == cur->end()) return nullptr;
            cur = &*it;
        }
        return cur;
    }
    // Sets the value at this path, creating intermediate objects.
    void set(nlohmann::json &doc, nlohmann::json value) const;

    const std::string &text() const { return text_; }
    bool empty() const { return segments_.empty(); }

private:
    std::vector<std::string> segments_;
    std::string text_;
};

}  // namespace recsync::util
