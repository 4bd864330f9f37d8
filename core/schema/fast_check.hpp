// A JSON Schema compiled into a direct checker for the keywords schemas commonly use
// (type, enum, const, required, properties, additionalProperties, propertyNames, items,
// min/max of numbers, lengths, item and property counts, pattern), answering only
// "valid or not". Why not valijson alone: its generic adapter and visitor cost about
// 14 µs for a 30-field record (bench/run rules), most of the planning budget; this walk
// does the same work in a fraction of that. valijson stays the reference: a schema using
// any other keyword is not compiled here (compile returns null) and valijson checks it,
// and invalid data is always re-checked by valijson to produce the messages.
// tests/unit/schema/fast_check_test.cpp compares the verdicts of both on generated data.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace recsync::schema {

class FastCheck {
public:
    // Null if `schema` uses a keyword (or a form of one) this checker does not implement.
    // Throws std::runtime_error for an invalid `pattern`, naming `name` and where.
    static std::unique_ptr<const FastCheck> compile(const nlohmann::json &schema, const std::string &name);
    ~FastCheck();

    bool valid(const nlohmann::json &doc) const;
    // The same check straight from JSON text, parsed with simdjson (about ten times faster
    // than building an nlohmann document). Unparsed: simdjson refused the text (not JSON,
    // or numbers beyond 64 bits that nlohmann accepts as doubles): parse it the slow way.
    enum class TextVerdict { Valid, Invalid, Unparsed };
    TextVerdict check_text(std::string_view text) const;

    struct Node;

private:
    FastCheck();
    std::unique_ptr<Node> root_;
};

}  // namespace recsync::schema
