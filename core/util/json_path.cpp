#include "util/json_path.hpp"

#include <stdexcept>

namespace recsync::util {

JsonPath::JsonPath(const std::string &dotted) : text_(dotted) {
    size_t start = 0;
    while (true) {
        const size_t dot = dotted.find('.', start);
        std::string seg = dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        if (seg.empty()) throw std::invalid_argument("invalid field path '" + dotted + "': empty segment");
        segments_.push_back(std::move(seg));
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
}

void JsonPath::set(nlohmann::json &doc, nlohmann::json value) const {
    nlohmann::json *cur = &doc;
    for (size_t i = 0; i + 1 < segments_.size(); ++i) {
        if (!cur->is_object()) *cur = nlohmann::json::object();
        cur = &(*cur)[segments_[i]];
    }
    if (!cur->is_object()) *cur = nlohmann::json::object();
    (*cur)[segments_.back()] = std::move(value);
}

}  // namespace recsync::util
