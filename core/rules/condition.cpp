#include "rules/condition.hpp"

#include "config/yaml_source.hpp"
#include "mapping/date_format.hpp"

#include <re2/re2.h>

#include <algorithm>

namespace recsync::rules {

using nlohmann::json;
using config::fail;

namespace {

// An ISO-8601 date ("2026-11-24", midnight UTC) or date-time with optional fraction and
// offset, as UTC epoch ms; nullopt for anything else. The shape test first keeps ordinary
// strings away from the parser and its error messages.
std::optional<int64_t> instant_of(const json &v) {
    if (!v.is_string()) return std::nullopt;
    const std::string &s = v.get_ref<const std::string &>();
    if (s.size() < 10 || s[4] != '-' || s[7] != '-' || s[0] < '0' || s[0] > '9') return std::nullopt;
    static const auto iso = mapping::DateFormat::compile("iso8601", mapping::DateFormat::Role::Parse);
    try {
        return iso.parse(v).time_since_epoch().count();
    } catch (const mapping::DateError &) {
        return std::nullopt;
    }
}

// Ordering for gt/gte/lt/lte: numbers with numbers, strings with strings. Anything else
// does not compare: false. (Dates are compared as instants before this; see eval.)
bool ordered(const json &a, const json &b, int &cmp) {
    if (a.is_number_integer() && b.is_number_integer()) {  // exact beyond 2^53
        const int64_t x = a.get<int64_t>(), y = b.get<int64_t>();
        cmp = x < y ? -1 : (x > y ? 1 : 0);
        return true;
    }
    if (a.is_number() && b.is_number()) {
        const double x = a.get<double>(), y = b.get<double>();
        cmp = x < y ? -1 : (x > y ? 1 : 0);
        return true;
    }
    if (a.is_string() && b.is_string()) {
        const int c = a.get_ref<const std::string &>().compare(b.get_ref<const std::string &>());
        cmp = c < 0 ? -1 : (c > 0 ? 1 : 0);
        return true;
    }
    return false;
}

// Equality without coercion, except that 1 and 1.0 are equal.
bool same(const json &a, const json &b) {
    if (a.is_number_integer() && b.is_number_integer()) return a.get<int64_t>() == b.get<int64_t>();  // exact beyond 2^53
    if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
    return a == b;
}

const json kUnresolvedMarker;

// `path` in `doc`, looked up once per slot when there is a memo.
const json *find(const util::JsonPath &path, int slot, const json &doc, const json **memo) {
    if (!memo || slot < 0) return path.find(doc);
    if (memo[slot] == &kUnresolvedMarker) memo[slot] = path.find(doc);
    return memo[slot];
}

}  // namespace

const json *const Condition::kUnresolved = &kUnresolvedMarker;

bool Condition::eval(const json &data, const json *previous, const EvalMemo *memo) const {
    switch (op) {
        case Op::All:
            for (const auto &c : children)
                if (!c.eval(data, previous, memo)) return false;
            return true;
        case Op::Any:
            for (const auto &c : children)
                if (c.eval(data, previous, memo)) return true;
            return false;
        case Op::Not: return !children.front().eval(data, previous, memo);
        case Op::Changed: {
            // With no previous version every listed field counts as changed.
            if (!previous || previous->is_null()) return true;
            for (size_t i = 0; i < changed.size(); ++i) {
                const int s = i < changed_slots.size() ? changed_slots[i] : -1;
                const json *now = find(changed[i], s, data, memo ? memo->data : nullptr);
                const json *before = find(changed[i], s, *previous, memo ? memo->previous : nullptr);
                if ((now == nullptr) != (before == nullptr)) return true;
                if (now && !same(*now, *before)) return true;
            }
            return false;
        }
        default: break;
    }
    const json *v = find(field, slot, data, memo ? memo->data : nullptr);
    switch (op) {
        case Op::Exists: return (v != nullptr && !v->is_null()) == exists;
        case Op::Eq: return v && same(*v, value);
        case Op::Ne: return !v || !same(*v, value);
        case Op::In:
        case Op::NotIn: {
            bool found = false;
            if (v && strings) {
                int8_t *known = memo && memo->in_tests && in_slot >= 0 ? &memo->in_tests[in_slot] : nullptr;
                if (known && *known >= 0) {
                    found = *known;
                } else {
                    found = v->is_string() && strings->count(v->get_ref<const std::string &>()) > 0;
                    if (known) *known = found;
                }
            }
            else if (v) found = std::any_of(value.begin(), value.end(), [&](const json &x) { return same(*v, x); });
            return op == Op::In ? found : !found;
        }
        case Op::Gt:
        case Op::Gte:
        case Op::Lt:
        case Op::Lte: {
            int cmp = 0;
            if (!v) return false;
            if (instant_ms) {  // a date operand: only a date compares, as an instant
                const auto t = instant_of(*v);
                if (!t) return false;
                cmp = *t < *instant_ms ? -1 : (*t > *instant_ms ? 1 : 0);
            } else if (!ordered(*v, value, cmp)) {
                return false;
            }
            return op == Op::Gt ? cmp > 0 : op == Op::Gte ? cmp >= 0 : op == Op::Lt ? cmp < 0 : cmp <= 0;
        }
        case Op::Matches: return v && v->is_string() && re2::RE2::PartialMatch(v->get_ref<const std::string &>(), *regex);
        default: return false;
    }
}

Condition compile_condition(const std::string &file, const YAML::Node &node) {
    config::require_map(file, node, "condition");
    Condition c;
    auto list = [&](const YAML::Node &n, const char *what) {
        if (!n.IsSequence() || n.size() == 0) fail(file, n, std::string(what) + ": expected a non-empty list of conditions");
        for (const auto &child : n) c.children.push_back(compile_condition(file, child));
    };
    if (node["all"] || node["any"] || node["not"] || node["changed"]) {
        if (node.size() != 1) fail(file, node, "a condition with all/any/not/changed must have no other keys");
        if (node["all"]) {
            c.op = Condition::Op::All;
            list(node["all"], "all");
        } else if (node["any"]) {
            c.op = Condition::Op::Any;
            list(node["any"], "any");
        } else if (node["not"]) {
            c.op = Condition::Op::Not;
            c.children.push_back(compile_condition(file, node["not"]));
        } else {
            c.op = Condition::Op::Changed;
            const auto ch = node["changed"];
            auto add = [&](const YAML::Node &f) {
                try {
                    c.changed.emplace_back(config::get_string(file, f, "changed"));
                } catch (const std::invalid_argument &e) {
                    fail(file, f, e.what());
                }
            };
            if (ch.IsScalar()) add(ch);
            else if (ch.IsSequence() && ch.size() > 0)
                for (const auto &f : ch) add(f);
            else fail(file, ch, "changed: expected a field or a list of fields");
        }
        return c;
    }
    config::check_keys(file, node, {"field", "eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "exists", "matches"});
    if (!node["field"]) fail(file, node, "condition needs 'field' and one operator (eq, ne, in, not_in, gt, gte, lt, lte, exists, matches), or all/any/not/changed");
    try {
        c.field = util::JsonPath(config::get_string(file, node["field"], "field"));
    } catch (const std::invalid_argument &e) {
        fail(file, node["field"], e.what());
    }
    if (node.size() != 2) fail(file, node, "condition on '" + c.field.text() + "' needs exactly one operator");
    static const std::pair<const char *, Condition::Op> ops[] = {
        {"eq", Condition::Op::Eq}, {"ne", Condition::Op::Ne}, {"in", Condition::Op::In}, {"not_in", Condition::Op::NotIn}, {"gt", Condition::Op::Gt},
        {"gte", Condition::Op::Gte}, {"lt", Condition::Op::Lt}, {"lte", Condition::Op::Lte}, {"exists", Condition::Op::Exists}, {"matches", Condition::Op::Matches},
    };
    for (const auto &[key, op] : ops) {
        const YAML::Node operand = node[key];
        if (!operand) continue;
        c.op = op;
        switch (op) {
            case Condition::Op::Exists: c.exists = config::get_bool(file, operand, "exists"); break;
            case Condition::Op::Matches:
            {
                re2::RE2::Options opts;
                opts.set_log_errors(false);
                auto re = std::make_shared<const re2::RE2>(config::get_string(file, operand, "matches"), opts);
                if (!re->ok()) fail(file, operand, "matches: invalid regular expression: " + re->error());
                c.regex = std::move(re);
                break;
            }
            case Condition::Op::In:
            case Condition::Op::NotIn:
                if (!operand.IsSequence()) fail(file, operand, std::string(key) + ": expected a list of values");
                c.value = config::yaml_value_to_json(operand);
                if (std::all_of(c.value.begin(), c.value.end(), [](const json &x) { return x.is_string(); })) {
                    auto set = std::make_shared<std::unordered_set<std::string>>();
                    for (const auto &x : c.value) set->insert(x.get<std::string>());
                    c.strings = std::move(set);
                }
                break;
            default:
                // `eq: null` / `ne: null` are allowed: YAML gives them as null nodes.
                if (!operand.IsScalar() && !(operand.IsNull() && (op == Condition::Op::Eq || op == Condition::Op::Ne)))
                    fail(file, operand, std::string(key) + ": expected a single value");
                c.value = config::yaml_value_to_json(operand);
                if (op == Condition::Op::Gt || op == Condition::Op::Gte || op == Condition::Op::Lt || op == Condition::Op::Lte) {
                    if (!c.value.is_number() && !c.value.is_string())
                        fail(file, operand, std::string(key) + ": expected a number or a string (an ISO-8601 date orders as a date)");
                    c.instant_ms = instant_of(c.value);
                }
        }
    }
    return c;
}

}  // namespace recsync::rules
