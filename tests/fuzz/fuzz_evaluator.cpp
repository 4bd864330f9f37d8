// libFuzzer target: bytes as the JSON of an event against a fixed rule set.
//
// The rule set (every operator, skip, stop, fan-out, mappings with every conversion,
// defaults, constants, required and nested paths) is loaded once with RuleSet::load. Each
// input is parsed as JSON; an object with "data" is an event ({"data": ..., "previous":
// ...}), any other object is the record itself (with no previous). Like plan_event, data
// must be an object and previous an object or absent; then for each event type:
// entity schema -> evaluate -> apply the mapping of every fired rule -> dump the result.
// Expected: mapping::MappingError from apply. Anything else escaping, a crash, a
// sanitizer report, a leak or a hang is a finding. See tests/fuzz/README.md.
#include "mapping/mapping.hpp"
#include "pipeline/plan.hpp"
#include "rules/rule_set.hpp"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

namespace fs = std::filesystem;
using nlohmann::json;
using namespace recsync;

namespace {

const char *kRules = R"yaml(
mappings:
  contact:
    fields:
      - { from: email, to: email, convert: [trim, lower], required: true }
      - { from: first_name, to: firstname, convert: trim }
      - { from: last_name, to: lastname, convert: upper }
      - { from: status, to: lifecyclestage, default: lead }
      - { from: company.name, to: company.name, convert: [to_string, trim] }
      - { from: company.size, to: numemployees, convert: to_number }
      - { from: lifetime_value, to: total_revenue, convert: to_string }
      - { from: newsletter, to: opt_in, convert: to_bool }
      - { from: a.b.c.d, to: deep.x.y, default: none }
      - { from: tags, to: tags }
      - { from: phone, to: phone }
      - { to: source, value: recsync }
  loose:
    fields:
      - { from: score, to: score, convert: [to_number, to_string, to_number] }
      - { from: vip, to: vip, convert: [to_bool, to_string, upper, lower, to_bool] }
      - { from: country, to: country, convert: [trim, upper] }
      - { from: company, to: company }
rules:
  - name: skip-tests
    on: { entity: contact, event: [created, updated] }
    when:
      any:
        - { field: status, eq: test }
        - { field: email, matches: "@(example\\.invalid|test\\.local)$" }
    do: { action: skip }
  - name: eu-create
    on: { entity: contact, event: created }
    when:
      all:
        - { field: country, in: [DE, FR, 1, 2.5, true, null] }
        - { field: status, ne: other }
        - { not: { field: vip, eq: false } }
    do: { action: create, target: c1, object: contacts, mapping: contact }
  - name: big
    on: { entity: contact, events: [created, updated] }
    when:
      any:
        - { field: lifetime_value, gt: 1000 }
        - { field: lifetime_value, gte: 1000.5 }
        - { field: signed_up, lt: "2020-01-01" }
        - { field: score, lte: -1 }
        - { field: company.size, gte: 9007199254740993 }
    do: { action: upsert, target: c2, object: contacts, mapping: loose }
  - name: changed
    on: { entity: contact, event: updated }
    when: { changed: [email, last_name, company.name, company, tags, a.b.c] }
    do: { action: update, target: c1, object: contacts, mapping: contact }
  - name: exists-and-regex
    on: { entity: contact, event: [created, updated, deleted] }
    when:
      all:
        - { field: phone, exists: true }
        - { field: a.b, exists: false }
        - { field: first_name, matches: "(?i)^(a|b)[a-z]*\\s*$" }
        - { field: country, not_in: [XX, YY] }
    do: { action: update, target: c3, object: contacts, mapping: loose, stop: true }
  - name: deleted
    on: { entity: contact, event: deleted }
    do: { action: delete, target: c1, object: contacts }
  - name: everyone
    on: { entity: contact, event: [created, updated] }
    do: { action: upsert, target: c3, object: contacts, mapping: loose }
)yaml";

const char *kSchema = R"json({
  "type": "object",
  "properties": {
    "email": {"type": "string", "pattern": "^\\s*[^@\\s]+@[^@\\s]+\\s*$"},
    "status": {"enum": ["lead", "customer", "other", "test"]},
    "lifetime_value": {"type": ["number", "null"], "minimum": 0},
    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
    "company": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}}
  }
})json";

std::shared_ptr<const rules::RuleSet> g_rules;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    std::string base = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
    std::string tmpl = base + "/recsync-fuzz-eval-XXXXXX";
    if (!mkdtemp(tmpl.data())) std::abort();
    const std::string dir = tmpl;
    fs::create_directories(dir + "/schemas");
    std::ofstream(dir + "/rules.yaml") << kRules;
    std::ofstream(dir + "/schemas/contact.json") << kSchema;
    try {
        g_rules = rules::RuleSet::load(dir);
    } catch (const std::exception &e) {
        std::cerr << "fuzz_evaluator: the fixed rule set does not load: " << e.what() << "\n";
        std::abort();
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
    // As in production: parse_events refuses deeper nesting before parsing (finding F3).
    if (pipeline::nesting_depth(std::string_view(reinterpret_cast<const char *>(bytes), size)) > pipeline::kMaxEventDepth) return 0;
    const json doc = json::parse(bytes, bytes + size, nullptr, /*allow_exceptions=*/false);
    if (!doc.is_object()) return 0;
    const json *data = &doc;
    const json *previous = nullptr;
    if (const auto it = doc.find("data"); it != doc.end()) {
        data = &*it;
        if (const auto p = doc.find("previous"); p != doc.end() && !p->is_null()) previous = &*p;
    }
    if (!data->is_object() || (previous && !previous->is_object())) return 0;

    // The entity schema is consulted (as plan_event does), but its verdict does not gate
    // the rules here: the evaluator and the mappings must survive any object.
    const auto *schema = g_rules->entity_schema("contact");
    size_t n = schema->validate(*data).size();
    for (uint8_t ev : {rules::kCreated, rules::kUpdated, rules::kDeleted}) {
        for (const auto *r : g_rules->evaluate("internal", "contact", ev, *data, previous)) {
            if (!r->mapping) continue;
            try {
                n += r->mapping->apply(*data).dump().size();
            } catch (const mapping::MappingError &) {
            }
        }
    }
    static volatile size_t sink;
    sink = sink + n;
    return 0;
}
