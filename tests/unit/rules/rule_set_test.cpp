// RuleSet::load over a temporary rules directory, and RuleSet::evaluate's order, fan-out,
// skip/stop and filtering. Every load error names file:line:col, all in one ConfigErrors.
#include "config/yaml_source.hpp"
#include "rules/rule_set.hpp"
#include "unit/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using nlohmann::json;
using recsync::config::ConfigErrors;
using recsync::rules::ActionKind;
using recsync::rules::kCreated;
using recsync::rules::kDeleted;
using recsync::rules::kUpdated;
using recsync::rules::Rule;
using recsync::rules::RuleSet;
using recsync::testing::any_contains;
using recsync::testing::at;
using recsync::testing::TempDir;

const char *kObjectSchema = R"({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"})";

std::vector<std::string> names(const std::vector<const Rule *> &rules) {
    std::vector<std::string> out;
    for (const auto *r : rules) out.push_back(r->name);
    return out;
}

std::vector<std::string> load_errors(const std::string &dir) {
    try {
        RuleSet::load(dir);
    } catch (const ConfigErrors &e) {
        return e.errors();
    } catch (const std::exception &e) {
        ADD_FAILURE() << "expected ConfigErrors, got: " << e.what();
        return {};
    }
    ADD_FAILURE() << "expected ConfigErrors loading " << dir;
    return {};
}

class RuleSetValid : public ::testing::Test {
protected:
    void SetUp() override {
        dir_.write("schemas/contact.json", kObjectSchema);
        dir_.write("schemas/deal.json", kObjectSchema);
        dir_.write("schemas/README.txt", "not a schema: ignored");
        // Deliberately written out of order: files are read sorted by name.
        dir_.write("30-late.yaml",
                   "mappings:\n"
                   "  m-late:\n"
                   "    fields:\n"
                   "      - { from: id, to: ref }\n"
                   "rules:\n"
                   "  - name: late-create\n"
                   "    on: { entity: contact, event: created }\n"
                   "    do: { action: create, target: conn-c, object: contacts, mapping: m-contact }\n");
        dir_.write("20-main.yaml",
                   "mappings:\n"
                   "  m-contact:\n"
                   "    fields:\n"
                   "      - { from: email, to: email }\n"
                   "rules:\n"
                   "  - name: create-in-a\n"
                   "    on: { entity: contact, event: created }\n"
                   "    do: { action: create, target: conn-a, object: contacts, mapping: m-contact }\n"
                   "  - name: upsert-in-b\n"
                   "    on: { entity: contact, events: [created, updated] }\n"
                   "    do: { action: upsert, target: conn-b, object: people, mapping: m-contact }\n"
                   "  - name: update-vip-stop\n"
                   "    on: { entity: contact, event: updated }\n"
                   "    when: { field: vip, eq: true }\n"
                   "    do: { action: update, target: conn-a, object: contacts, mapping: m-contact, stop: true }\n"
                   "  - name: update-after-stop\n"
                   "    on: { entity: contact, event: updated }\n"
                   "    do: { action: update, target: conn-c, object: contacts, mapping: m-contact }\n"
                   "  - name: delete-contact\n"
                   "    on: { entity: contact, event: deleted }\n"
                   "    do: { action: delete, target: conn-a, object: contacts }\n"
                   "  - name: from-crm\n"
                   "    on: { source: conn-a, entity: company, event: updated }\n"
                   "    do: { action: update, target: conn-b, object: companies, mapping: m-late }\n");
        dir_.write("10-skip.yaml",
                   "# Test accounts never leave.\n"
                   "rules:\n"
                   "  - name: skip-test\n"
                   "    on: { entity: contact, event: [created, updated] }\n"
                   "    when: { field: status, eq: test }\n"
                   "    do: { action: skip }\n");
        dir_.write("05-early.yml",
                   "rules:\n"
                   "  - name: early-create\n"
                   "    on: { source: internal, entity: contact, event: created }\n"
                   "    do: { action: create, target: conn-a, object: audit, mapping: m-late }\n"
                   "  - name: deal-created\n"
                   "    on: { entity: deal, event: created }\n"
                   "    do: { action: create, target: conn-b, object: deals, mapping: m-late }\n");
        dir_.write("00-empty.yaml", "# nothing yet\n");
        dir_.write("notes.txt", "rules: [this is not read]\n");
        dir_.write("sub.yaml/ignored.yaml", "garbage: [\n");  // a directory named *.yaml
        set_ = RuleSet::load(dir_.str());
    }

    std::vector<std::string> fire(std::string_view source, std::string_view entity, uint8_t event, const json &data,
                                  const json *previous = nullptr) const {
        return names(set_->evaluate(source, entity, event, data, previous));
    }

    TempDir dir_;
    std::shared_ptr<const RuleSet> set_;
};

TEST_F(RuleSetValid, LoadsFilesInNameOrder) {
    ASSERT_EQ(set_->files.size(), 5u);
    EXPECT_EQ(set_->files[0], (dir_.path() / "00-empty.yaml").string());
    EXPECT_EQ(set_->files[1], (dir_.path() / "05-early.yml").string());
    EXPECT_EQ(set_->files[2], (dir_.path() / "10-skip.yaml").string());
    EXPECT_EQ(set_->files[3], (dir_.path() / "20-main.yaml").string());
    EXPECT_EQ(set_->files[4], (dir_.path() / "30-late.yaml").string());

    std::vector<std::string> all;
    for (const auto &r : set_->rules) all.push_back(r.name);
    EXPECT_EQ(all, (std::vector<std::string>{"early-create", "deal-created", "skip-test", "create-in-a", "upsert-in-b", "update-vip-stop",
                                             "update-after-stop", "delete-contact", "from-crm", "late-create"}));
    EXPECT_EQ(set_->mappings.size(), 2u);
    EXPECT_EQ(set_->entity_schemas.size(), 2u);
    EXPECT_NE(set_->entity_schema("contact"), nullptr);
    EXPECT_NE(set_->entity_schema("deal"), nullptr);
    EXPECT_EQ(set_->entity_schema("README"), nullptr);
    EXPECT_EQ(set_->entity_schema("company"), nullptr);
}

TEST_F(RuleSetValid, CompiledRuleFields) {
    const Rule *create = nullptr, *del = nullptr, *skip = nullptr, *stop = nullptr, *crm = nullptr;
    for (const auto &r : set_->rules) {
        if (r.name == "create-in-a") create = &r;
        if (r.name == "delete-contact") del = &r;
        if (r.name == "skip-test") skip = &r;
        if (r.name == "update-vip-stop") stop = &r;
        if (r.name == "from-crm") crm = &r;
    }
    ASSERT_TRUE(create && del && skip && stop && crm);
    const std::string main = (dir_.path() / "20-main.yaml").string();
    EXPECT_EQ(create->where, at(main, 6, 5));
    EXPECT_EQ(create->target_where, at(main, 8, 35));
    EXPECT_EQ(create->source, "internal");
    EXPECT_EQ(create->entity, "contact");
    EXPECT_EQ(create->events, kCreated);
    EXPECT_EQ(create->action, ActionKind::Create);
    EXPECT_EQ(create->target, "conn-a");
    EXPECT_EQ(create->object, "contacts");
    ASSERT_NE(create->mapping, nullptr);
    EXPECT_EQ(create->mapping, &set_->mappings.at("m-contact"));
    EXPECT_FALSE(create->when.has_value());
    EXPECT_FALSE(create->stop);

    EXPECT_EQ(del->action, ActionKind::Delete);
    EXPECT_EQ(del->mapping, nullptr);
    EXPECT_EQ(skip->action, ActionKind::Skip);
    EXPECT_EQ(skip->events, kCreated | kUpdated);
    EXPECT_TRUE(skip->when.has_value());
    EXPECT_TRUE(stop->stop);
    EXPECT_EQ(crm->source, "conn-a");
    // A mapping from a later file is resolved for a rule in an earlier one.
    EXPECT_EQ(crm->mapping, &set_->mappings.at("m-late"));
}

TEST_F(RuleSetValid, FanOutInFileOrder) {
    EXPECT_EQ(fire("internal", "contact", kCreated, {{"status", "lead"}}),
              (std::vector<std::string>{"early-create", "create-in-a", "upsert-in-b", "late-create"}));
}

TEST_F(RuleSetValid, SkipEndsEvaluationAndIsReturned) {
    const auto fired = set_->evaluate("internal", "contact", kCreated, {{"status", "test"}}, nullptr);
    ASSERT_EQ(names(fired), (std::vector<std::string>{"early-create", "skip-test"}));
    EXPECT_EQ(fired.back()->action, ActionKind::Skip);
    EXPECT_EQ(fire("internal", "contact", kUpdated, {{"status", "test"}, {"vip", true}}), (std::vector<std::string>{"skip-test"}));
}

TEST_F(RuleSetValid, StopEndsEvaluation) {
    EXPECT_EQ(fire("internal", "contact", kUpdated, {{"vip", true}}), (std::vector<std::string>{"upsert-in-b", "update-vip-stop"}));
    EXPECT_EQ(fire("internal", "contact", kUpdated, {{"vip", false}}), (std::vector<std::string>{"upsert-in-b", "update-after-stop"}));
}

TEST_F(RuleSetValid, EventFiltering) {
    EXPECT_EQ(fire("internal", "contact", kDeleted, json::object()), (std::vector<std::string>{"delete-contact"}));
    // The skip rule does not listen to deletes, so a test record's delete still goes out.
    EXPECT_EQ(fire("internal", "contact", kDeleted, {{"status", "test"}}), (std::vector<std::string>{"delete-contact"}));
    EXPECT_EQ(fire("internal", "deal", kCreated, json::object()), (std::vector<std::string>{"deal-created"}));
    EXPECT_TRUE(fire("internal", "deal", kUpdated, json::object()).empty());
    EXPECT_TRUE(fire("internal", "contact", 0, json::object()).empty());
    EXPECT_TRUE(fire("internal", "invoice", kCreated, json::object()).empty());
}

TEST_F(RuleSetValid, SourceFiltering) {
    EXPECT_EQ(fire("conn-a", "company", kUpdated, json::object()), (std::vector<std::string>{"from-crm"}));
    EXPECT_TRUE(fire("internal", "company", kUpdated, json::object()).empty());
    EXPECT_TRUE(fire("conn-b", "company", kUpdated, json::object()).empty());
    EXPECT_TRUE(fire("conn-a", "contact", kCreated, json::object()).empty());  // internal rules only for internal
}

// evaluate looks each field up once per event in data and once in previous (memoized
// slots shared by `field:` and `changed:`): the two documents must never be mixed up, and
// nothing may carry over from one event to the next.
TEST(RuleSetEvaluate, FieldsSharedByConditionsAndChangedAreLookedUpPerDocumentAndEvent) {
    TempDir dir;
    dir.write("schemas/contact.json", kObjectSchema);
    dir.write("rules.yaml",
              "mappings:\n"
              "  m: { fields: [ { from: email, to: email } ] }\n"
              "rules:\n"
              "  - name: email-is-new\n"
              "    on: { entity: contact, event: updated }\n"
              "    when: { all: [ { field: email, eq: new@x }, { changed: [email] } ] }\n"
              "    do: { action: update, target: c, object: contacts, mapping: m }\n"
              "  - name: email-or-phone-changed\n"
              "    on: { entity: contact, event: updated }\n"
              "    when: { changed: [phone, email] }\n"
              "    do: { action: update, target: c, object: contacts, mapping: m }\n"
              "  - name: phone-changed-deep\n"
              "    on: { entity: contact, event: updated }\n"
              "    when: { not: { any: [ { changed: [a.b] }, { field: phone, exists: false } ] } }\n"
              "    do: { action: update, target: c, object: contacts, mapping: m }\n");
    const auto set = RuleSet::load(dir.str());
    const auto fire = [&](const json &data, const json &previous) {
        return names(set->evaluate("internal", "contact", kUpdated, data, previous.is_null() ? nullptr : &previous));
    };
    const json now = {{"email", "new@x"}, {"phone", "1"}, {"a", {{"b", 1}}}};
    EXPECT_EQ(fire(now, {{"email", "old@x"}, {"phone", "1"}, {"a", {{"b", 1}}}}),
              (std::vector<std::string>{"email-is-new", "email-or-phone-changed", "phone-changed-deep"}));
    EXPECT_EQ(fire(now, now), (std::vector<std::string>{"phone-changed-deep"}));
    EXPECT_EQ(fire(now, {{"email", "new@x"}, {"phone", "2"}, {"a", {{"b", 2}}}}), (std::vector<std::string>{"email-or-phone-changed"}));
    EXPECT_EQ(fire({{"email", "new@x"}}, {{"email", "new@x"}, {"phone", "1"}}), (std::vector<std::string>{"email-or-phone-changed"}));
    EXPECT_EQ(fire(now, nullptr), (std::vector<std::string>{"email-is-new", "email-or-phone-changed"}));  // no previous: all changed
}

// in/not_in over the same field and the same strings are looked up once per event and
// shared; the same list on another field, or another list, is a test of its own.
TEST(RuleSetEvaluate, InListsSharedOnlyByTheSameFieldAndStrings) {
    TempDir dir;
    dir.write("schemas/contact.json", kObjectSchema);
    dir.write("rules.yaml",
              "mappings:\n"
              "  m: { fields: [ { from: email, to: email } ] }\n"
              "rules:\n"
              "  - { name: eu-1, on: { entity: contact, event: created }, when: { field: country, in: [DE, FR] },\n"
              "      do: { action: create, target: c, object: contacts, mapping: m } }\n"
              "  - { name: eu-2, on: { entity: contact, event: created }, when: { field: country, in: [FR, DE] },\n"
              "      do: { action: create, target: c, object: contacts, mapping: m } }\n"
              "  - { name: not-eu, on: { entity: contact, event: created }, when: { field: country, not_in: [DE, FR] },\n"
              "      do: { action: create, target: c, object: contacts, mapping: m } }\n"
              "  - { name: billing-eu, on: { entity: contact, event: created }, when: { field: billing, in: [DE, FR] },\n"
              "      do: { action: create, target: c, object: contacts, mapping: m } }\n"
              "  - { name: us, on: { entity: contact, event: created }, when: { field: country, in: [US, DE] },\n"
              "      do: { action: create, target: c, object: contacts, mapping: m } }\n");
    const auto set = RuleSet::load(dir.str());
    EXPECT_EQ(set->in_slots, 3u);  // country [DE, FR] (in and not_in alike), billing [DE, FR], country [DE, US]
    const auto fire = [&](const json &data) { return names(set->evaluate("internal", "contact", kCreated, data, nullptr)); };
    EXPECT_EQ(fire({{"country", "FR"}, {"billing", "US"}}), (std::vector<std::string>{"eu-1", "eu-2"}));
    EXPECT_EQ(fire({{"country", "US"}, {"billing", "DE"}}), (std::vector<std::string>{"not-eu", "billing-eu", "us"}));
    EXPECT_EQ(fire({{"country", "DE"}}), (std::vector<std::string>{"eu-1", "eu-2", "us"}));
    EXPECT_EQ(fire({{"country", 5}, {"billing", "FR"}}), (std::vector<std::string>{"not-eu", "billing-eu"}));
    EXPECT_EQ(fire(json::object()), (std::vector<std::string>{"not-eu"}));
}

TEST(RuleSetLoad, EventTypeNames) {
    using recsync::rules::event_type_name;
    using recsync::rules::parse_event_type;
    EXPECT_EQ(parse_event_type("created"), kCreated);
    EXPECT_EQ(parse_event_type("updated"), kUpdated);
    EXPECT_EQ(parse_event_type("deleted"), kDeleted);
    EXPECT_EQ(parse_event_type("Created"), 0);
    EXPECT_EQ(parse_event_type(""), 0);
    EXPECT_STREQ(event_type_name(kUpdated), "updated");
    EXPECT_STREQ(recsync::rules::action_name(ActionKind::Upsert), "upsert");
    EXPECT_EQ(recsync::rules::to_abi(ActionKind::Delete), RECSYNC_ACTION_DELETE);
}

TEST(RuleSetLoad, MissingDirectory) {
    TempDir dir;
    const auto errs = load_errors((dir.path() / "nope").string());
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_NE(errs[0].find("does not exist"), std::string::npos) << errs[0];
}

TEST(RuleSetLoad, EmptyDirectoryIsAnEmptyRuleSet) {
    TempDir dir;
    const auto set = RuleSet::load(dir.str());
    EXPECT_TRUE(set->rules.empty());
    EXPECT_TRUE(set->files.empty());
}

TEST(RuleSetLoad, YamlSyntaxErrorWithLine) {
    TempDir dir;
    const std::string f = dir.write("a.yaml",
                                    "rules:\n"
                                    "  - name: r1\n"
                                    "    on: : x\n");
    const auto errs = load_errors(dir.str());
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_EQ(errs[0].rfind(at(f, 3, 9) + ": invalid YAML", 0), 0u) << errs[0];
}

TEST(RuleSetLoad, UnknownActionWithLineAndColumn) {
    TempDir dir;
    dir.write("schemas/contact.json", kObjectSchema);
    const std::string f = dir.write("a.yaml",
                                    "rules:\n"
                                    "  - name: r1\n"
                                    "    on: { entity: contact, event: created }\n"
                                    "    do: { action: sync, target: a, object: b, mapping: m }\n");
    const auto errs = load_errors(dir.str());
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_EQ(errs[0].rfind(at(f, 4, 19) + ": rule 'r1': unknown action 'sync'", 0), 0u) << errs[0];
}

TEST(RuleSetLoad, UnknownMappingReference) {
    TempDir dir;
    dir.write("schemas/contact.json", kObjectSchema);
    const std::string f = dir.write("a.yaml",
                                    "rules:\n"
                                    "  - name: r1\n"
                                    "    on: { entity: contact, event: created }\n"
                                    "    do: { action: create, target: a, object: b, mapping: ghost }\n");
    const auto errs = load_errors(dir.str());
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_EQ(errs[0], at(f, 2, 5) + ": rule 'r1': unknown mapping 'ghost'");
}

TEST(RuleSetLoad, DuplicateRuleNameAcrossFiles) {
    TempDir dir;
    dir.write("schemas/contact.json", kObjectSchema);
    const std::string rule = "    on: { entity: contact, event: created }\n    do: { action: skip }\n";
    const std::string a = dir.write("a.yaml", "rules:\n  - name: dup\n" + rule);
    const std::string b = dir.write("b.yaml", "rules:\n  - name: dup\n" + rule);
    const auto errs = load_errors(dir.str());
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_EQ(errs[0], at(b, 2, 11) + ": rule 'dup' is already defined at " + at(a, 2, 5));
}

TEST(RuleSetLoad, DuplicateMappingName) {
    TempDir dir;
    const std::string m = "    fields: [ { from: a, to: b } ]\n";
    const std::string a = dir.write("a.yaml", "mappings:\n  m1:\n" + m);
    const std::string b = dir.write("b.yaml", "mappings:\n  m1:\n" + m);
    const auto errs = load_errors(dir.str());
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_EQ(errs[0], at(b, 2, 3) + ": mapping 'm1' is already defined at " + at(a, 2, 3));
}

TEST(RuleSetLoad, RuleForEntityWithoutSchema) {
    TempDir dir;
    dir.write("schemas/contact.json", kObjectSchema);
    const std::string f = dir.write("a.yaml",
                                    "rules:\n"
                                    "  - name: r1\n"
                                    "    on: { entity: invoice, event: created }\n"
                                    "    do: { action: skip }\n");
    const auto errs = load_errors(dir.str());
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_EQ(errs[0].rfind(at(f, 2, 5) + ": rule 'r1': entity 'invoice' has no schema", 0), 0u) << errs[0];
    EXPECT_NE(errs[0].find((dir.path() / "schemas" / "invoice.json").string()), std::string::npos) << errs[0];
}

TEST(RuleSetLoad, InvalidJsonSchemaFileReportsLineAndColumn) {
    TempDir dir;
    const std::string f = dir.write("schemas/contact.json",
                                    "{\n"
                                    "  \"type\": \"object\",\n"
                                    "  \"properties\": ,\n"  // the ',' is at line 3, column 17
                                    "}\n");
    const auto errs = load_errors(dir.str());
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_EQ(errs[0].rfind(at(f, 3, 17) + ": invalid JSON", 0), 0u) << errs[0];
}

TEST(RuleSetLoad, InvalidJsonOnFirstLine) {
    TempDir dir;
    const std::string f = dir.write("schemas/deal.json", "{\"type\": \"object\",}");  // the '}' at col 19
    const auto errs = load_errors(dir.str());
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_EQ(errs[0].rfind(at(f, 1, 19) + ": invalid JSON", 0), 0u) << errs[0];
}

TEST(RuleSetLoad, SchemaThatIsNotAnObject) {
    TempDir dir;
    const std::string f = dir.write("schemas/deal.json", "[1, 2]");
    const auto errs = load_errors(dir.str());
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_EQ(errs[0], at(f, 1, 1) + ": at '/': expected a schema (an object, or true/false), got array");
}

// valijson used to abort() the process on such schemas: `recsync check` died with 134
// and a reload would have taken the running engine down.
TEST(RuleSetLoad, MisspeltOrMistypedSchemaKeywordsArePositionedErrors) {
    TempDir dir;
    const std::string f = dir.write("schemas/contact.json",
                                    "{\n"
                                    "  \"type\": \"object\",\n"
                                    "  \"requird\": [\"email\"],\n"
                                    "  \"properties\": {\n"
                                    "    \"email\": { \"type\": \"strang\", \"minLength\": \"x\" },\n"
                                    "    \"tags\": { \"enum\": 5, \"x-owner\": \"crm team\" }\n"
                                    "  }\n"
                                    "}\n");
    dir.write("a.yaml", "rules:\n  - name: r1\n    on: { entity: contact, event: created }\n    do: { action: skip }\n");
    const auto errs = load_errors(dir.str());
    ASSERT_EQ(errs.size(), 4u) << ::testing::PrintToString(errs);  // and no "has no schema" for the rule
    EXPECT_EQ(errs[0], at(f, 5, 47) + ": at '/properties/email/minLength': 'minLength' expects a whole number of 0 or more, got \"x\"");
    EXPECT_EQ(errs[1], at(f, 5, 24) + ": at '/properties/email/type': 'type' \"strang\" is not a type (expected one of: null, boolean, object, array, number, string, integer)");
    EXPECT_EQ(errs[2], at(f, 6, 23) + ": at '/properties/tags/enum': 'enum' expects a list, got number");
    EXPECT_EQ(errs[3], at(f, 3, 14) + ": at '/requird': unknown keyword 'requird' (did you mean 'required'?)");
}

TEST(RuleSetLoad, SchemaKeysWrittenTwiceAndManyErrorsAreReportedOnce) {
    TempDir dir;
    const std::string f = dir.write("schemas/contact.json", "{\"type\": \"object\",\n \"type\": \"array\"}");
    auto errs = load_errors(dir.str());
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_EQ(errs[0], at(f, 2, 2) + ": key 'type' is already set at " + at(f, 1, 2) + " (a key may appear once)");

    std::string many = "{\"properties\": {";  // 60 misspelt keywords: 50 shown, then a count
    for (int i = 0; i < 60; ++i) many += std::string(i ? ", " : "") + "\"p" + std::to_string(i) + "\": {\"typ\": \"string\"}";
    many += "}}";
    dir.write("schemas/contact.json", many);
    errs = load_errors(dir.str());
    ASSERT_EQ(errs.size(), 51u);
    EXPECT_EQ(errs.back(), f + ": 10 more error(s) not shown");
}

TEST(RuleSetLoad, ASchemaValijsonCannotUseIsAnErrorNotAnAbort) {
    TempDir dir;
    const std::string f = dir.write("schemas/contact.json", R"({"type": "object", "properties": {"a": {"$ref": "#/definitions/missing"}}})");
    const auto errs = load_errors(dir.str());
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_EQ(errs[0].rfind(f + ": invalid JSON Schema: ", 0), 0u) << errs[0];
}

TEST(RuleSetLoad, UnknownKeyInRule) {
    TempDir dir;
    dir.write("schemas/contact.json", kObjectSchema);
    const std::string f = dir.write("a.yaml",
                                    "rules:\n"
                                    "  - name: r1\n"
                                    "    on: { entity: contact, event: created }\n"
                                    "    do: { action: skip }\n"
                                    "    priority: 1\n");
    const auto errs = load_errors(dir.str());
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_EQ(errs[0].rfind(at(f, 5, 5) + ": unknown key 'priority'", 0), 0u) << errs[0];
}

TEST(RuleSetLoad, OtherRuleErrors) {
    TempDir dir;
    dir.write("schemas/contact.json", kObjectSchema);
    const std::string f = dir.write("a.yaml",
                                    "rules:\n"
                                    "  - name: no-mapping\n"                                               // 2
                                    "    on: { entity: contact, event: created }\n"
                                    "    do: { action: create, target: a, object: b }\n"                  // 4: '{' col 9
                                    "  - name: skip-with-target\n"                                         // 5
                                    "    on: { entity: contact, event: created }\n"
                                    "    do: { action: skip, target: a }\n"                               // 7: target value col 33
                                    "  - name: bad-event\n"                                                // 8
                                    "    on: { entity: contact, event: [created, renamed] }\n"            // 9: 'renamed' col 45
                                    "  - name: no-do\n"                                                    // 10
                                    "    on: { entity: contact, event: created }\n"
                                    "  - name: bad-when\n"                                                 // 12
                                    "    on: { entity: contact, event: created }\n"
                                    "    when: { field: x, eq: 1, ne: 2 }\n"                              // 14: '{' col 11
                                    "    do: { action: skip }\n"
                                    "  - name: bad-on-key\n"                                               // 16
                                    "    on: { entity: contact, event: created, entities: [x] }\n"        // 17: col 44
                                    "    do: { action: skip }\n");
    const auto errs = load_errors(dir.str());
    ASSERT_EQ(errs.size(), 6u);
    EXPECT_EQ(errs[0], at(f, 4, 9) + ": rule 'no-mapping': a create rule needs a 'mapping'");
    EXPECT_EQ(errs[1], at(f, 7, 33) + ": rule 'skip-with-target': a skip rule takes no 'target'");
    EXPECT_EQ(errs[2].rfind(at(f, 9, 45) + ": rule 'bad-event': unknown event 'renamed'", 0), 0u) << errs[2];
    EXPECT_EQ(errs[3].rfind(at(f, 10, 5) + ": rule 'no-do': missing 'do'", 0), 0u) << errs[3];
    EXPECT_EQ(errs[4].rfind(at(f, 14, 11) + ": condition on 'x' needs exactly one operator", 0), 0u) << errs[4];
    EXPECT_EQ(errs[5].rfind(at(f, 17, 44) + ": unknown key 'entities'", 0), 0u) << errs[5];
}

// A bad path inside `changed:` must be reported like every other rule error (collected,
// with file:line:col), not escape RuleSet::load as some other exception.
TEST(RuleSetLoad, BadPathInChangedIsAPositionedError) {
    TempDir dir;
    dir.write("schemas/contact.json", kObjectSchema);
    const std::string f = dir.write("a.yaml",
                                    "rules:\n"
                                    "  - name: r1\n"
                                    "    on: { entity: contact, event: updated }\n"
                                    "    when: { changed: [email, company..name] }\n"  // path at 4:30
                                    "    do: { action: skip }\n"
                                    "  - name: r2\n"
                                    "    on: { entity: contact, event: updated }\n"
                                    "    do: { action: sync }\n");
    try {
        RuleSet::load(dir.str());
        FAIL() << "expected ConfigErrors";
    } catch (const ConfigErrors &e) {
        EXPECT_EQ(e.errors().size(), 2u) << e.what();
        EXPECT_TRUE(any_contains(e.errors(), at(f, 4, 30) + ": invalid field path 'company..name'"));
        EXPECT_TRUE(any_contains(e.errors(), "unknown action 'sync'"));
    } catch (const std::exception &e) {
        FAIL() << "regression: core/rules/condition.cpp compile_condition (changed:) throws std::invalid_argument, which escapes "
                  "RuleSet::load uncollected and without a position: "
               << e.what();
    }
}

TEST(RuleSetLoad, MultipleErrorsReportedTogether) {
    TempDir dir;
    dir.write("schemas/contact.json", kObjectSchema);
    const std::string bad_schema = dir.write("schemas/deal.json", "{ \"type\": }");
    const std::string a = dir.write("a.yaml",
                                    "rules:\n"
                                    "  - name: r1\n"
                                    "    on: { entity: contact, event: created }\n"
                                    "    do: { action: sync }\n"                                  // 4:19
                                    "  - name: r2\n"                                               // 5
                                    "    on: { entity: contact, event: created }\n"
                                    "    do: { action: create, target: a, object: b, mapping: ghost }\n"
                                    "  - name: r3\n"                                               // 8
                                    "    on: { entity: lead, event: created }\n"
                                    "    do: { action: skip }\n");
    const std::string b = dir.write("b.yaml", "rules:\n  - name: r4\n    on: { entity: contact, event: created }\n    do: { action: skip }\n    extra: 1\n");
    const std::string c = dir.write("c.yaml", "rules: [\n");
    const std::string d = dir.write("d.yaml", "mappings:\n  m:\n    fields:\n      - { from: a, to: b, convert: shout }\n");  // 4:36

    const auto errs = load_errors(dir.str());
    EXPECT_EQ(errs.size(), 7u);
    EXPECT_TRUE(any_contains(errs, at(a, 4, 19) + ": rule 'r1': unknown action 'sync'"));
    EXPECT_TRUE(any_contains(errs, at(a, 5, 5) + ": rule 'r2': unknown mapping 'ghost'"));
    EXPECT_TRUE(any_contains(errs, at(a, 8, 5) + ": rule 'r3': entity 'lead' has no schema"));
    EXPECT_TRUE(any_contains(errs, at(b, 5, 5) + ": unknown key 'extra'"));
    EXPECT_TRUE(any_contains(errs, c + ":"));
    EXPECT_TRUE(any_contains(errs, "invalid YAML"));
    EXPECT_TRUE(any_contains(errs, at(d, 4, 36) + ": unknown conversion 'shout'"));
    EXPECT_TRUE(any_contains(errs, at(bad_schema, 1, 11) + ": invalid JSON"));
}

}  // namespace

namespace {

// ---- the documentation's examples load ---------------------------------------------------

std::string readme_section(const std::string &heading) {
    std::ifstream in(std::string(RECSYNC_SOURCE_DIR) + "/rules/README.md");
    std::stringstream text;
    text << in.rdbuf();
    const std::string doc = text.str();
    const size_t begin = doc.find("\n## " + heading + "\n"), end = doc.find("\n## ", begin + 1);
    return begin == std::string::npos ? std::string() : doc.substr(begin, end - begin);
}

std::vector<std::string> yaml_blocks(const std::string &section) {
    std::vector<std::string> out;
    for (size_t at = section.find("```yaml\n"); at != std::string::npos; at = section.find("```yaml\n", at + 1)) {
        const size_t body = at + 8;
        out.push_back(section.substr(body, section.find("```", body) - body));
    }
    return out;
}

// Every ```yaml block of "## Rules" loads as a rules file (beside the mappings it names),
// and every block of "## Conditions" and every example in its table compiles.
TEST(RulesDocs, ReadmeRulesAndConditionsCompile) {
    const auto rules = yaml_blocks(readme_section("Rules"));
    ASSERT_GE(rules.size(), 2u);
    TempDir dir;
    dir.write("schemas/contact.json", kObjectSchema);
    dir.write("00-mappings.yaml", "mappings:\n  contact-to-hubspot: { fields: [ { from: email, to: email } ] }\n"
                                  "  contact-to-finance: { fields: [ { from: email, to: email } ] }\n");
    for (size_t i = 0; i < rules.size(); ++i) dir.write("doc-" + std::to_string(i) + ".yaml", rules[i]);
    std::shared_ptr<const RuleSet> set;
    try {
        set = RuleSet::load(dir.str());
    } catch (const ConfigErrors &e) {
        FAIL() << e.what();
    }
    EXPECT_GE(set->rules.size(), 5u);

    const std::string conditions = readme_section("Conditions");
    const auto blocks = yaml_blocks(conditions);
    ASSERT_GE(blocks.size(), 1u);
    for (const auto &b : blocks) {
        SCOPED_TRACE(b);
        EXPECT_NO_THROW(recsync::rules::compile_condition("README.md", YAML::Load(b)["when"]));
    }
    int examples = 0;  // the table: `{ ... }` in its second column
    std::istringstream lines(conditions);
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("| `", 0) != 0) continue;
        const size_t col = line.find(" | ", 2), end = line.find(" | ", col + 3);
        const std::string cell = line.substr(col + 3, end - col - 3);
        for (size_t at = cell.find("`{"); at != std::string::npos; at = cell.find("`{", at + 1)) {
            const std::string example = cell.substr(at + 1, cell.find("}`", at) - at);
            SCOPED_TRACE(example);
            EXPECT_NO_THROW(recsync::rules::compile_condition("README.md", YAML::Load(example)));
            ++examples;
        }
    }
    EXPECT_GE(examples, 13);
}

}  // namespace
