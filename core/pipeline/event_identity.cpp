#include "pipeline/event_identity.hpp"

#include "mapping/date_format.hpp"
#include "pipeline/plan.hpp"

namespace recsync::pipeline {

namespace {

// RFC 3339 date-time: the ISO 8601 parser's full form, with seconds and an offset (a bare
// date or a local time would order events by a guess).
bool full_date_time(const std::string &s) {
    if (s.size() < 20 || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':') return false;
    const char last = s.back();
    if (last == 'Z' || last == 'z') return true;
    return s.size() >= 25 && (s[s.size() - 6] == '+' || s[s.size() - 6] == '-') && s[s.size() - 3] == ':';
}

}  // namespace

EventIdentity read_identity(const nlohmann::json &event) {
    EventIdentity id;
    if (const auto it = event.find("id"); it != event.end() && !it->is_null()) {
        if (it->is_string()) id.id = it->get<std::string>();
        else if (it->is_number_integer() || it->is_number_unsigned()) id.id = it->dump();
        else throw EventError(422, "'id' must be a string or an integer (the event's idempotency key)");
        if (id.id.empty()) throw EventError(422, "'id' must not be empty");
        if (id.id.size() > kMaxEventIdBytes) throw EventError(422, "'id' is longer than " + std::to_string(kMaxEventIdBytes) + " bytes");
    }
    if (const auto it = event.find("version"); it != event.end() && !it->is_null()) {
        if (!it->is_number_integer() && !it->is_number_unsigned()) throw EventError(422, "'version' must be an integer (the record's version in System A)");
        if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) throw EventError(422, "'version' is larger than 2^63-1");
        const int64_t v = it->get<int64_t>();
        if (v < 0) throw EventError(422, "'version' must not be negative");
        id.order = {model::Order::Version, v};
    }
    if (const auto it = event.find("occurred_at"); it != event.end() && !it->is_null()) {
        if (!it->is_string() || !full_date_time(it->get_ref<const std::string &>()))
            throw EventError(422, "'occurred_at' must be an RFC 3339 date-time with an offset, e.g. 2026-12-01T09:30:00.250Z");
        static const auto format = mapping::DateFormat::compile("iso8601", mapping::DateFormat::Role::Parse);
        mapping::TimePoint t;
        try {
            t = format.parse(*it);
        } catch (const mapping::DateError &e) {
            throw EventError(422, std::string("'occurred_at': ") + e.what());
        }
        if (id.order.kind == model::Order::None) id.order = {model::Order::Time, t.time_since_epoch().count()};
    }
    return id;
}

std::optional<ChangeRef> peek_change(const nlohmann::json &event) {
    if (!event.is_object()) return std::nullopt;
    ChangeRef c;
    const auto entity = event.find("entity");
    if (entity == event.end() || !entity->is_string()) return std::nullopt;
    c.entity = entity->get<std::string>();
    const auto key = event.find("key");
    if (key == event.end()) return std::nullopt;
    if (key->is_string() && !key->get_ref<const std::string &>().empty()) c.key = key->get<std::string>();
    else if (key->is_number_integer() || key->is_number_unsigned()) c.key = key->dump();  // as plan_event reads it
    else return std::nullopt;
    try {
        c.identity = read_identity(event);
    } catch (const EventError &) {
        return std::nullopt;
    }
    return c;
}

}  // namespace recsync::pipeline
