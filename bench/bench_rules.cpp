// bench_rules: events/s through plan_event (envelope -> entity JSON Schema -> 50 rules ->
// mapping -> HubSpot plugin transform -> provider JSON Schema -> plugin validate) for a
// generated, realistic set: 3 HubSpot connections, 50 rules over entity `contact`, four
// mappings of up to 30 fields, a 30-field entity schema. One thread; nothing is sent.
//
// Prints one JSON object per line (see bench/README.md for the fields):
//   {"bench":"rules", ...}                 the whole plan_event, with the baseline and ratio
//   {"bench":"rules.entity_schema", ...}   the entity JSON Schema validation alone
//   {"bench":"rules.evaluate", ...}        RuleSet::evaluate alone
//   {"bench":"rules.evaluate_map", ...}    evaluate + Mapping::apply_text of every fired rule
//   {"bench":"whatif.entity_schema_cached", ...}  the same schema through valijson with one
//                                          long-lived Validator (regex cache kept) and no
//                                          ValidationResults: what a fix could give
//   {"bench":"json_roundtrip", ...}        the baseline: nlohmann parse + dump of each event
//
// Usage: bench_rules [--events N] [--seed S] [--repeat R] [--plugins DIR]
#include "config/config.hpp"
#include "config/yaml_source.hpp"
#include "engine/runtime_builder.hpp"
#include "pipeline/plan.hpp"

#include "delivery_common.hpp"

#include <nlohmann/json.hpp>
#include "schema/valijson.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using nlohmann::json;
using namespace recsync;

namespace {

#ifndef RECSYNC_PLUGIN_DIR
#define RECSYNC_PLUGIN_DIR "build/plugins"
#endif

struct Region {
    std::string name;
    std::vector<std::string> countries;
};

const std::vector<Region> kRegions = {
    {"eu", {"DE", "FR", "ES", "IT", "NL", "PL", "SE", "AT", "BE", "IE"}},
    {"us", {"US", "CA", "MX", "BR"}},
    {"apac", {"JP", "AU", "SG", "IN", "KR", "NZ"}},
};
// Countries no region claims: such events fire no connection rule.
const std::vector<std::string> kOtherCountries = {"ZA", "AE", "EG"};

using bench::TempDir;  // delivery_common.hpp: a private temp dir, removed at exit

std::string yaml_list(const std::vector<std::string> &v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
    return s + "]";
}

// The entity schema: 30 top-level fields (company is one object with 3), typed, with the
// enums, formats-as-patterns and lengths an operator would write.
const char *kContactSchema = R"json({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "title": "contact (bench)",
  "type": "object",
  "required": ["email", "country", "status"],
  "properties": {
    "email": {"type": "string", "minLength": 3, "maxLength": 254, "pattern": "^\\s*[^@\\s]+@[^@\\s]+\\s*$"},
    "first_name": {"type": "string", "maxLength": 200},
    "last_name": {"type": "string", "maxLength": 200},
    "phone": {"type": ["string", "null"], "maxLength": 50},
    "mobile": {"type": ["string", "null"], "maxLength": 50},
    "status": {"type": "string", "enum": ["lead", "customer", "other", "test"]},
    "lifecycle_stage": {"type": "string", "enum": ["subscriber", "lead", "opportunity", "customer", "evangelist"]},
    "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
    "region": {"type": "string", "maxLength": 100},
    "city": {"type": "string", "maxLength": 100},
    "postal_code": {"type": ["string", "integer"]},
    "street": {"type": "string", "maxLength": 200},
    "company": {
      "type": "object",
      "properties": {
        "name": {"type": "string", "maxLength": 200},
        "domain": {"type": "string", "maxLength": 253},
        "size": {"type": "integer", "minimum": 0}
      }
    },
    "job_title": {"type": "string", "maxLength": 200},
    "department": {"type": "string", "enum": ["sales", "engineering", "marketing", "finance", "operations", "support", "legal"]},
    "lifetime_value": {"type": ["number", "null"], "minimum": 0},
    "orders_count": {"type": "integer", "minimum": 0},
    "last_order_at": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}"},
    "signed_up_at": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}"},
    "newsletter": {"type": "boolean"},
    "language": {"type": "string", "minLength": 2, "maxLength": 5},
    "timezone": {"type": "string", "maxLength": 64},
    "lead_source": {"type": "string", "enum": ["web", "import", "partner", "reseller", "event", "referral"]},
    "score": {"type": "number", "minimum": 0, "maximum": 100},
    "tier": {"type": "string", "enum": ["gold", "silver", "bronze"]},
    "account_manager": {"type": "string", "maxLength": 254},
    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
    "website": {"type": "string", "maxLength": 500},
    "vip": {"type": "boolean"},
    "birthday": {"type": ["string", "null"]}
  }
}
)json";

// Four mappings: the full contact (30 fields, one per region so each can stamp its own
// constant), a 10-field core contact, a company and a deal.
std::string mappings_yaml() {
    std::string y = "mappings:\n";
    for (const auto &r : kRegions) {
        y += "  contact-full-" + r.name + ":\n    fields:\n";
        y += "      - { from: email, to: email, convert: [trim, lower], required: true }\n"
             "      - { from: first_name, to: firstname, convert: trim }\n"
             "      - { from: last_name, to: lastname, convert: trim }\n"
             "      - { from: phone, to: phone }\n"
             "      - { from: mobile, to: mobilephone }\n"
             "      - { from: status, to: lifecyclestage, default: lead }\n"
             "      - { from: lifecycle_stage, to: hs_lifecycle_detail }\n"
             "      - { from: country, to: country, convert: upper, required: true }\n"
             "      - { from: region, to: state, convert: trim }\n"
             "      - { from: city, to: city, convert: trim }\n"
             "      - { from: postal_code, to: zip, convert: to_string }\n"
             "      - { from: street, to: address, convert: trim }\n"
             "      - { from: company.name, to: company, convert: trim }\n"
             "      - { from: company.size, to: numemployees, convert: to_string }\n"
             "      - { from: job_title, to: jobtitle, convert: trim }\n"
             "      - { from: department, to: department }\n"
             "      - { from: lifetime_value, to: total_revenue, convert: to_string, default: 0 }\n"
             "      - { from: orders_count, to: num_orders, convert: to_string }\n"
             "      - { from: last_order_at, to: last_order_date }\n"
             "      - { from: signed_up_at, to: signup_date }\n"
             "      - { from: newsletter, to: newsletter_opt_in, convert: to_string, default: false }\n"
             "      - { from: language, to: hs_language, convert: lower }\n"
             "      - { from: timezone, to: hs_timezone }\n"
             "      - { from: lead_source, to: lead_source, default: web }\n"
             "      - { from: score, to: hubspotscore, convert: to_string }\n"
             "      - { from: tier, to: customer_tier, convert: upper, default: bronze }\n"
             "      - { from: account_manager, to: owner_email, convert: [trim, lower] }\n"
             "      - { from: website, to: website, convert: trim }\n"
             "      - { from: vip, to: vip, convert: to_string, default: false }\n"
             "      - { from: birthday, to: date_of_birth }\n"
             "      - { to: sync_region, value: " + r.name + " }\n"
             "      - { to: sync_source, value: recsync }\n";
    }
    y += "  contact-core:\n    fields:\n"
         "      - { from: email, to: email, convert: [trim, lower], required: true }\n"
         "      - { from: first_name, to: firstname, convert: trim }\n"
         "      - { from: last_name, to: lastname, convert: trim }\n"
         "      - { from: phone, to: phone }\n"
         "      - { from: mobile, to: mobilephone }\n"
         "      - { from: status, to: lifecyclestage, default: lead }\n"
         "      - { from: lifetime_value, to: total_revenue, convert: to_string, default: 0 }\n"
         "      - { from: score, to: hubspotscore, convert: to_string }\n"
         "      - { from: tier, to: customer_tier, convert: upper, default: bronze }\n"
         "      - { to: sync_source, value: recsync }\n";
    y += "  company:\n    fields:\n"
         "      - { from: company.name, to: name, convert: trim, required: true }\n"
         "      - { from: company.domain, to: domain, convert: [trim, lower] }\n"
         "      - { from: company.size, to: numberofemployees, convert: to_string }\n"
         "      - { from: city, to: city, convert: trim }\n"
         "      - { from: country, to: country }\n"
         "      - { to: sync_source, value: recsync }\n";
    y += "  deal:\n    fields:\n"
         "      - { from: company.name, to: dealname, default: unnamed }\n"
         "      - { from: lifetime_value, to: amount, convert: to_string }\n"
         "      - { from: last_order_at, to: closedate }\n"
         "      - { to: pipeline, value: default }\n"
         "      - { to: dealstage, value: appointmentscheduled }\n";
    return y;
}

// Two global skip rules, then 16 rules per region (48): 50 rules over `contact`.
std::string global_rules_yaml() {
    return "rules:\n"
           "  - name: skip-test-contacts\n"
           "    on: { entity: contact, event: [created, updated] }\n"
           "    when:\n"
           "      any:\n"
           "        - { field: status, eq: test }\n"
           "        - { field: email, matches: \"@(example\\\\.invalid|test\\\\.local)$\" }\n"
           "    do: { action: skip }\n"
           "  - name: skip-internal-staff\n"
           "    on: { entity: contact, event: [created, updated, deleted] }\n"
           "    when:\n"
           "      all:\n"
           "        - { field: company.domain, eq: recsync.internal }\n"
           "        - { not: { field: vip, eq: true } }\n"
           "    do: { action: skip }\n";
}

std::string region_rules_yaml(const Region &r) {
    const std::string in = "{ field: country, in: " + yaml_list(r.countries) + " }";
    const std::string conn = "hubspot-" + r.name;
    const std::string n = r.name;
    auto rule = [&](const std::string &name, const std::string &events, const std::string &when, const std::string &doo) {
        std::string y = "  - name: " + n + "-" + name + "\n    on: { entity: contact, event: " + events + " }\n";
        if (!when.empty()) y += "    when:\n      all:\n        - " + in + "\n" + when;
        else y += "    when: " + in + "\n";
        return y + "    do: { " + doo + " }\n";
    };
    auto to = [&](const std::string &action, const std::string &object, const std::string &mapping, bool stop = false) {
        std::string s = "action: " + action + ", target: " + conn + ", object: " + object;
        if (!mapping.empty()) s += ", mapping: " + mapping;
        if (stop) s += ", stop: true";
        return s;
    };
    const std::string full = "contact-full-" + n;
    std::string y = "rules:\n";
    y += rule("contact-created", "created", "        - { field: status, ne: other }\n", to("create", "contacts", full));
    y += rule("contact-updated", "updated",
              "        - { changed: [email, first_name, last_name, phone, mobile, company.name, status, lifetime_value, tier, job_title] }\n",
              to("update", "contacts", full));
    y += rule("contact-deleted", "deleted", "", to("delete", "contacts", ""));
    y += rule("vip-upsert", "[created, updated]", "        - { field: vip, eq: true }\n        - { field: lifetime_value, gte: 10000 }\n",
              to("upsert", "contacts", "contact-core"));
    y += rule("company-upsert", "[created, updated]",
              "        - { field: company.size, gt: 200 }\n"
              "        - { field: company.domain, matches: \"^[a-z0-9-]+\\\\.(com|de|fr|jp|io)$\" }\n"
              "        - { changed: [company.name, company.domain, company.size] }\n",
              to("upsert", "companies", "company"));
    y += rule("enterprise-deal", "created", "        - { field: tier, eq: gold }\n        - { field: orders_count, gte: 20 }\n", to("create", "deals", "deal"));
    y += rule("moved-in", "updated", "        - { changed: [country] }\n", to("create", "contacts", full));
    y += rule("reactivated", "updated",
              "        - { field: status, eq: customer }\n        - { field: last_order_at, gt: \"2025-06-01\" }\n        - { changed: [last_order_at] }\n",
              to("update", "contacts", "contact-core"));
    y += rule("churn-risk", "updated",
              "        - { field: score, lt: 20 }\n        - { field: lifetime_value, gt: 5000 }\n        - { not: { field: newsletter, eq: true } }\n",
              to("update", "contacts", "contact-core"));
    y += rule("partner", "[created, updated]",
              "        - { field: lead_source, in: [partner, reseller] }\n        - { field: company.name, exists: true }\n"
              "        - { any: [ { field: tier, eq: gold }, { field: tier, eq: silver } ] }\n",
              to("upsert", "companies", "company"));
    y += rule("unsubscribed", "updated",
              "        - { field: newsletter, eq: false }\n        - { changed: [newsletter] }\n        - { field: status, eq: lead }\n",
              to("update", "contacts", "contact-core", true));
    y += rule("bounced", "[created, updated]", "        - { field: email, matches: \"^(bounce|noreply|no-reply)@\" }\n", "action: skip");
    y += rule("big-spender-deal", "updated", "        - { field: lifetime_value, gt: 50000 }\n        - { changed: [lifetime_value] }\n",
              to("create", "deals", "deal"));
    y += rule("phone-fix", "updated",
              "        - { field: phone, exists: false }\n        - { field: mobile, exists: true }\n        - { changed: [mobile] }\n",
              to("update", "contacts", "contact-core"));
    y += rule("executive", "[created, updated]",
              "        - { field: job_title, matches: \"(?i)^(ceo|cto|cfo|vp|head of)\" }\n        - { field: company.size, gte: 1000 }\n",
              to("upsert", "contacts", "contact-core"));
    y += rule("long-time-tier-change", "updated",
              "        - { field: signed_up_at, lte: \"2016-01-01\" }\n        - { field: tier, ne: bronze }\n        - { changed: [tier] }\n",
              to("update", "contacts", full));
    return y;
}

// Deterministic, varied 30-field contacts and created/updated/deleted events about them.
class EventGen {
public:
    explicit EventGen(uint64_t seed) : rng_(seed) {}

    json event(size_t i) {
        json e;
        e["entity"] = "contact";
        e["key"] = "c-" + std::to_string(i);
        e["id"] = "evt-" + std::to_string(i);
        e["occurred_at"] = date(2025, 2026) + "T" + two(pick(24)) + ":" + two(pick(60)) + ":" + two(pick(60)) + "Z";
        const unsigned kind = pick(100);
        json data = contact();
        if (kind < 30) {
            e["event"] = "created";
        } else if (kind < 92) {
            e["event"] = "updated";
            json prev = data;
            // Half of the updates touch a field no rule cares about (no action), the rest
            // change one or two that some rule watches.
            const unsigned what = pick(100);
            if (what < 50) prev["timezone"] = "UTC";
            else if (what < 65) prev["last_name"] = pick_of(kLast);
            else if (what < 75) prev["lifetime_value"] = static_cast<double>(pick(100000)) / 4.0;
            else if (what < 82) prev["tier"] = pick_of({"gold", "silver", "bronze"});
            else if (what < 88) prev["newsletter"] = !data["newsletter"].get<bool>();
            else if (what < 92) prev["last_order_at"] = "2024-01-01";
            else if (what < 96) prev["mobile"] = nullptr;
            else prev["country"] = pick_of(kOtherCountries);
            e["previous"] = std::move(prev);
        } else {
            e["event"] = "deleted";
        }
        // About 1% are rejected by the entity schema (a status outside the enum).
        if (pick(100) == 0 && e["event"] != "deleted") data["status"] = "prospect";
        e["data"] = std::move(data);
        return e;
    }

private:
    static inline const std::vector<std::string> kFirst = {"Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Linus", "Hedy", "Tim", "Radia", "Donald"};
    static inline const std::vector<std::string> kLast = {"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Hamilton", "Torvalds", "Lamarr", "Berners-Lee", "Perlman", "Knuth"};
    static inline const std::vector<std::string> kCities = {"Berlin", "Paris", "Madrid", "Austin", "Toronto", "Tokyo", "Sydney", "Singapore", "Dublin", "Seoul", "Mumbai", "Cape Town"};
    static inline const std::vector<std::string> kCompanies = {"Analytical Engines", "Compiler Co", "Enigma Ltd", "Semaphore GmbH", "Kernel AG", "Orbit Inc", "Spanning Tree", "TeX Works"};
    static inline const std::vector<std::string> kTlds = {"com", "de", "fr", "jp", "io", "co.uk", "org"};
    static inline const std::vector<std::string> kTitles = {"CEO", "CTO", "Head of Sales", "Engineer", "Account Executive", "VP Marketing", "Analyst", "Designer", "Office Manager"};

    unsigned pick(unsigned n) { return static_cast<unsigned>(rng_() % n); }
    std::string pick_of(const std::vector<std::string> &v) { return v[pick(static_cast<unsigned>(v.size()))]; }
    static std::string two(unsigned v) { return (v < 10 ? "0" : "") + std::to_string(v); }
    std::string date(int from, int to) {
        return std::to_string(from + static_cast<int>(pick(static_cast<unsigned>(to - from + 1)))) + "-" + two(1 + pick(12)) + "-" + two(1 + pick(28));
    }

    json contact() {
        json d = json::object();
        const std::string first = pick_of(kFirst), last = pick_of(kLast);
        const unsigned r = pick(100);
        std::string email_user = first + "." + last + std::to_string(pick(1000));
        if (r == 0) email_user = "noreply";
        std::string domain = "mail" + std::to_string(pick(50)) + "." + pick_of(kTlds);
        if (r == 1) domain = "example.invalid";  // hits the global skip rule
        // Mixed case and blanks: the mapping trims and lowers.
        d["email"] = (pick(4) == 0 ? "  " : "") + email_user + "@" + (pick(3) == 0 ? "Mail.EXAMPLE.com" : domain);
        d["first_name"] = first + (pick(5) == 0 ? " " : "");
        d["last_name"] = last;
        d["phone"] = pick(4) == 0 ? json(nullptr) : json("+49 30 " + std::to_string(1000000 + pick(8999999)));
        d["mobile"] = pick(3) == 0 ? json(nullptr) : json("+1 555 " + std::to_string(1000000 + pick(8999999)));
        static const std::vector<std::string> statuses = {"lead", "lead", "customer", "customer", "customer", "other"};
        d["status"] = pick(200) == 0 ? std::string("test") : pick_of(statuses);
        d["lifecycle_stage"] = pick_of({"subscriber", "lead", "opportunity", "customer", "evangelist"});
        const unsigned where = pick(100);
        const std::string country = where < 45 ? pick_of(kRegions[0].countries) : where < 75 ? pick_of(kRegions[1].countries) : where < 95 ? pick_of(kRegions[2].countries) : pick_of(kOtherCountries);
        d["country"] = country;
        d["region"] = "Region " + std::to_string(pick(20));
        d["city"] = pick_of(kCities);
        d["postal_code"] = pick(2) ? json(std::to_string(10000 + pick(89999))) : json(10000 + pick(89999));
        d["street"] = std::to_string(1 + pick(200)) + " Main Street";
        json company = json::object();
        company["name"] = pick_of(kCompanies) + (pick(6) == 0 ? " " : "");
        company["domain"] = pick(100) == 0 ? std::string("recsync.internal") : "corp" + std::to_string(pick(500)) + "." + pick_of(kTlds);
        company["size"] = static_cast<int>(pick(5) == 0 ? pick(20000) : pick(500));
        d["company"] = std::move(company);
        d["job_title"] = pick_of(kTitles);
        d["department"] = pick_of({"sales", "engineering", "marketing", "finance", "operations", "support", "legal"});
        d["lifetime_value"] = pick(10) == 0 ? json(nullptr) : json(static_cast<double>(pick(8000000)) / 100.0);
        d["orders_count"] = pick(60);
        d["last_order_at"] = date(2023, 2026);
        d["signed_up_at"] = date(2012, 2025);
        d["newsletter"] = pick(2) == 0;
        d["language"] = pick_of({"en", "de", "FR", "ja", "es", "en-GB"});
        d["timezone"] = pick_of({"Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "UTC"});
        d["lead_source"] = pick_of({"web", "import", "partner", "reseller", "event", "referral"});
        d["score"] = pick(101);
        d["tier"] = pick_of({"gold", "silver", "bronze", "bronze"});
        d["account_manager"] = " " + pick_of(kFirst) + "@Our-Company.com";
        d["tags"] = json::array({"t" + std::to_string(pick(10)), "t" + std::to_string(pick(10))});
        d["website"] = "https://www." + d["company"]["domain"].get<std::string>() + "/";
        d["vip"] = pick(10) == 0;
        d["birthday"] = pick(3) == 0 ? json(nullptr) : json(date(1950, 2004));
        return d;
    }

    std::mt19937_64 rng_;
};

struct Options {
    size_t events = 100'000;
    uint64_t seed = 42;
    int repeat = 3;
    std::string plugins = RECSYNC_PLUGIN_DIR;
};

Options parse_args(int argc, char **argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
            return argv[++i];
        };
        if (a == "--events") o.events = std::stoul(next());
        else if (a == "--seed") o.seed = std::stoull(next());
        else if (a == "--repeat") o.repeat = std::stoi(next());
        else if (a == "--plugins") o.plugins = next();
        else if (a == "-h" || a == "--help") {
            std::cout << "usage: bench_rules [--events N] [--seed S] [--repeat R] [--plugins DIR]\n";
            std::exit(0);
        } else throw std::runtime_error("unknown argument " + a);
    }
    if (o.events == 0 || o.repeat < 1) throw std::runtime_error("--events and --repeat must be positive");
    return o;
}

// Best (shortest) of `repeat` timed passes; the first pass of each also warms caches.
template <class F>
double best_seconds(int repeat, F &&pass) {
    double best = 1e300;
    for (int r = 0; r < repeat; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        pass();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::min(best, s);
    }
    return best;
}

// Keeps the optimizer from dropping a result.
volatile size_t g_sink = 0;

}  // namespace

int main(int argc, char **argv) {
    try {
        const Options opt = parse_args(argc, argv);

        // --- the generated configuration (not timed) ---
        TempDir dir;
        bench::prepare_plugins(dir, opt.plugins);
        dir.write("rules/schemas/contact.json", kContactSchema);
        dir.write("rules/00-mappings.yaml", mappings_yaml());
        dir.write("rules/01-global.yaml", global_rules_yaml());
        for (size_t i = 0; i < kRegions.size(); ++i) dir.write("rules/1" + std::to_string(i) + "-" + kRegions[i].name + ".yaml", region_rules_yaml(kRegions[i]));
        std::string cfg = "plugins_dir: plugins\nrules_dir: rules\nstate: { path: state/recsync.db }\nlog_level: warn\nconnections:\n";
        for (const auto &r : kRegions) cfg += "  hubspot-" + r.name + ": { provider: hubspot, base_url: \"http://127.0.0.1:9\" }\n";
        dir.write("recsync.yaml", cfg);

        const auto rt = engine::build_runtime(config::load_config(dir.path() + "/recsync.yaml"));
        const auto &rules = *rt->rules;
        if (rules.rules.size() != 50) throw std::runtime_error("expected 50 rules, compiled " + std::to_string(rules.rules.size()));

        // --- the events (not timed) ---
        EventGen gen(opt.seed);
        std::vector<json> events;
        std::vector<std::string> texts;
        events.reserve(opt.events);
        texts.reserve(opt.events);
        size_t bytes = 0;
        for (size_t i = 0; i < opt.events; ++i) {
            events.push_back(gen.event(i));
            texts.push_back(events.back().dump());
            bytes += texts.back().size();
        }
        const json meta = {{"events", opt.events},
                           {"rules", rules.rules.size()},
                           {"connections", rt->connections.size()},
                           {"avg_event_bytes", bytes / opt.events},
                           {"repeat", opt.repeat}};

        auto line = [&](const std::string &name, double seconds, json extra) {
            json out = {{"bench", name}, {"events", opt.events}, {"seconds", seconds}, {"events_per_sec", static_cast<double>(opt.events) / seconds}};
            for (auto &[k, v] : extra.items()) out[k] = v;
            return out;
        };

        // --- baseline: read and write each event once with nlohmann::json ---
        const double base_s = best_seconds(opt.repeat, [&] {
            size_t n = 0;
            for (const auto &t : texts) n += json::parse(t).dump().size();
            g_sink = g_sink + n;
        });
        const double base_eps = static_cast<double>(opt.events) / base_s;

        // --- the whole plan_event ---
        size_t actions = 0, rejected = 0, skips = 0, tasks = 0;
        const double plan_s = best_seconds(opt.repeat, [&] {
            actions = rejected = skips = tasks = 0;
            for (const auto &e : events) {
                try {
                    const auto plan = pipeline::plan_event(*rt, e);
                    actions += plan.actions.size();
                    for (const auto &a : plan.actions) (a.action == "skip" ? skips : tasks) += 1;
                } catch (const pipeline::EventError &) {
                    ++rejected;
                }
            }
        });
        const double plan_eps = static_cast<double>(opt.events) / plan_s;

        // --- components, to see where the time goes ---
        std::vector<const json *> datas(events.size()), prevs(events.size());
        std::vector<uint8_t> types(events.size());
        for (size_t i = 0; i < events.size(); ++i) {
            datas[i] = &events[i]["data"];
            const auto p = events[i].find("previous");
            prevs[i] = p == events[i].end() ? nullptr : &*p;
            types[i] = rules::parse_event_type(events[i]["event"].get<std::string>());
        }
        const auto *schema = rules.entity_schema("contact");
        const double schema_s = best_seconds(opt.repeat, [&] {
            size_t n = 0;
            for (const auto *d : datas) n += schema->validate(*d).size();
            g_sink = g_sink + n;
        });
        const double eval_s = best_seconds(opt.repeat, [&] {
            size_t n = 0;
            for (size_t i = 0; i < events.size(); ++i) n += rules.evaluate("internal", "contact", types[i], *datas[i], prevs[i]).size();
            g_sink = g_sink + n;
        });
        const double map_s = best_seconds(opt.repeat, [&] {
            size_t n = 0;
            std::string mapped;  // as plan_event maps: straight to text, into a reused string
            for (size_t i = 0; i < events.size(); ++i)
                for (const auto *r : rules.evaluate("internal", "contact", types[i], *datas[i], prevs[i]))
                    if (r->mapping) {
                        try {
                            r->mapping->apply_text(*datas[i], mapped);
                            n += mapped.size();
                        } catch (const mapping::MappingError &) {
                        }
                    }
            g_sink = g_sink + n;
        });

        // What-if: the entity schema as core/schema/json_schema.cpp could run it: one
        // long-lived valijson::Validator (its std::regex cache survives between events; in
        // the engine it would be one per thread) and no ValidationResults (valijson then
        // stops at the first failure and builds no context strings; errors would be
        // collected in a second pass only for the rejected events).
        valijson::Schema cached_schema;
        {
            valijson::SchemaParser parser;
            const json sj = json::parse(kContactSchema);
            valijson::adapters::NlohmannJsonAdapter sa(sj);
            parser.populateSchema(sa, cached_schema);
        }
        valijson::Validator cached_validator;
        size_t cached_invalid = 0;
        const double cached_s = best_seconds(opt.repeat, [&] {
            cached_invalid = 0;
            for (const auto *d : datas) {
                valijson::adapters::NlohmannJsonAdapter target(*d);
                if (!cached_validator.validate(cached_schema, target, nullptr)) ++cached_invalid;
            }
        });

        const double n = static_cast<double>(opt.events);
        std::cout << line("rules", plan_s,
                          {{"actions_per_event", static_cast<double>(actions) / n},
                           {"tasks_per_event", static_cast<double>(tasks) / n},
                           {"skips_per_event", static_cast<double>(skips) / n},
                           {"rejected", rejected},
                           {"us_per_event", plan_s / n * 1e6},
                           {"baseline", "json_roundtrip: nlohmann::json::parse + dump of the same event text"},
                           {"baseline_events_per_sec", base_eps},
                           {"ratio", plan_eps / base_eps},
                           {"target_events_per_sec", 100000},
                           {"meets_target", plan_eps >= 100000},
                           {"setup", meta}})
                         .dump()
                  << "\n";
        std::cout << line("rules.entity_schema", schema_s, {{"us_per_event", schema_s / n * 1e6}, {"share_of_rules", schema_s / plan_s}}).dump() << "\n";
        std::cout << line("rules.evaluate", eval_s, {{"us_per_event", eval_s / n * 1e6}, {"share_of_rules", eval_s / plan_s}}).dump() << "\n";
        std::cout << line("rules.evaluate_map", map_s, {{"us_per_event", map_s / n * 1e6}, {"share_of_rules", map_s / plan_s}}).dump() << "\n";
        const double projected_us = (plan_s - schema_s + cached_s) / n * 1e6;
        std::cout << line("whatif.entity_schema_cached", cached_s,
                          {{"us_per_event", cached_s / n * 1e6},
                           {"invalid", cached_invalid},
                           {"projected_rules_us_per_event", projected_us},
                           {"projected_rules_events_per_sec", 1e6 / projected_us}})
                         .dump()
                  << "\n";
        std::cout << line("json_roundtrip", base_s, {{"us_per_event", base_s / n * 1e6}}).dump() << "\n";
        return 0;
    } catch (const config::ConfigErrors &e) {
        std::cerr << "bench_rules: configuration errors:\n";
        for (const auto &m : e.errors()) std::cerr << "  " << m << "\n";
    } catch (const std::exception &e) {
        std::cerr << "bench_rules: " << e.what() << "\n";
    }
    return 1;
}
