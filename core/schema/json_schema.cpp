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
    // valijson's Validator keeps per-run state (regex cache), so one per call: cheap.
    valijson::Validator validator;
    valijson::ValidationResults results;
    valijson::adapters::NlohmannJsonAdapter target(doc);
    std::vector<std::string> errors;
    if (validator.validate(impl_->schema, target, &results)) return errors;
    valijson::ValidationResults::Error e;
    while (results.popError(e)) {
        std::string path;
        for (const auto &c : e.context) path += c;
        // valijson's context reads like "<root>[email]".
        errors.push_back(path + ": " + e.description);
    }
    return errors;
}

}  // namespace recsync::schema
