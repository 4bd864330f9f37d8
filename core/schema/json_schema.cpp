#include "schema/json_schema.hpp"

#include <nlohmann/json.hpp>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validator.hpp>

#include <stdexcept>

namespace recsync::schema {

struct JsonSchema::Impl {
    valijson::Schema schema;
};

JsonSchema::JsonSchema() : impl_(std::make_unique<Impl>()) {}
JsonSchema::~JsonSchema() = default;

std::shared_ptr<const JsonSchema> JsonSchema::compile(const nlohmann::json &schema, const std::string &name) {
    if (!schema.is_object() && !schema.is_boolean()) throw std::runtime_error(name + ": a JSON Schema must be an object");
    auto s = std::shared_ptr<JsonSchema>(new JsonSchema());
    s->name_ = name;
    try {
        valijson::SchemaParser parser;
        valijson::adapters::NlohmannJsonAdapter adapter(schema);
        parser.populateSchema(adapter, s->impl_->schema);
    } catch (const std::exception &e) {
        throw std::runtime_error(name + ": invalid JSON Schema: " + e.what());
    }
    return s;
}

std::vector<std::string> JsonSchema::validate(const nlohmann::json &doc) const {
    // One Validator per thread, kept: it caches compiled `pattern` regexes, and building
    // one per call recompiled every pattern for every event (80% of planning time in
    // bench/run rules). Fast path without ValidationResults: valijson stops at the first
    // failure and builds no context strings; only invalid data pays for the messages.
    thread_local valijson::Validator validator;
    valijson::adapters::NlohmannJsonAdapter target(doc);
    std::vector<std::string> errors;
    if (validator.validate(impl_->schema, target, nullptr)) return errors;
    valijson::ValidationResults results;
    validator.validate(impl_->schema, target, &results);
    valijson::ValidationResults::Error e;
    while (results.popError(e)) {
        std::string path;
        for (const auto &c : e.context) path += c;  // valijson's context reads like "<root>[email]"
        errors.push_back(path + ": " + e.description);
    }
    if (errors.empty()) errors.push_back("<root>: does not match the schema");
    return errors;
}

}  // namespace recsync::schema
