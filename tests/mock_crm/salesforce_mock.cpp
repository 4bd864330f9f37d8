#include "salesforce_mock.hpp"

#include "mock_text.hpp"
#include "server/http_listener.hpp"
#include "util/clock.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <regex>

namespace recsync::mock {

using nlohmann::json;
using server::HttpRequest;
using server::HttpResponse;

namespace {

constexpr const char *kInstancePath = "/instance";
constexpr const char *kUserId = "005000000000001AAA";
constexpr const char *kHumanUserId = "005000000000002AAA";
constexpr const char *kOrgId = "00D000000000001AAA";


// Salesforce's answer form: "2026-12-02T10:20:30.123+0000".
std::string sf_datetime(int64_t ms) {
    using namespace std::chrono;
    const auto tp = sys_time<milliseconds>(milliseconds(ms));
    const auto days = floor<std::chrono::days>(tp);
    const year_month_day ymd{days};
    const hh_mm_ss hms{tp - days};
    char buf[40];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03d+0000", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                  static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                  static_cast<int>(hms.seconds().count()), static_cast<int>(hms.subseconds().count()));
    return buf;
}

// SOQL's "2026-12-02T10:20:30Z".
std::optional<int64_t> soql_datetime_ms(const std::string &t) {
    int y, mo, d, h, mi, s;
    char z = 0;
    if (std::sscanf(t.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &s, &z) != 7 || z != 'Z') return std::nullopt;
    using namespace std::chrono;
    const sys_days day = year_month_day{year{y}, month{static_cast<unsigned>(mo)}, std::chrono::day{static_cast<unsigned>(d)}};
    return duration_cast<milliseconds>((day + hours{h} + minutes{mi} + seconds{s}).time_since_epoch()).count();
}

std::string base64url_decode(std::string_view in) {
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    for (const char c : in) {
        int v = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26 : c >= '0' && c <= '9' ? c - '0' + 52 : c == '-' ? 62 : c == '_' ? 63 : -1;
        if (v < 0) return {};
        acc = acc << 6 | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xFF);
        }
    }
    return out;
}

bool rs256_verifies(const std::string &public_pem, std::string_view data, const std::string &signature) {
    BIO *bio = BIO_new_mem_buf(public_pem.data(), static_cast<int>(public_pem.size()));
    EVP_PKEY *key = bio ? PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr) : nullptr;
    BIO_free(bio);
    if (!key) return false;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    const bool ok = ctx && EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
                    EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char *>(signature.data()), signature.size(), reinterpret_cast<const unsigned char *>(data.data()),
                                     data.size()) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return ok;
}

HttpResponse sf_error(int status, std::string_view code, std::string_view message, json fields = json::array()) {
    json e = {{"errorCode", code}, {"message", message}};
    if (!fields.empty()) e["fields"] = std::move(fields);
    return HttpResponse::json(status, json::array({e}).dump());
}

bool api_name(std::string_view s) {
    static const std::regex re("[A-Za-z][A-Za-z0-9_]*");
    return std::regex_match(s.begin(), s.end(), re);
}

std::string key_prefix(std::string_view type) { return type == "Account" ? "001" : type == "Contact" ? "003" : "a00"; }

}  // namespace

struct SalesforceMock::Impl {
    SalesforceMockOptions options;
    std::unique_ptr<server::HttpListener> listener;
    uint16_t port = 0;

    mutable std::mutex mu;
    std::map<std::string, SalesforceRecord> records;  // id -> record (ids are unique across types)
    std::vector<std::string> order;                   // ids in creation order
    uint64_t next_id = 1;
    std::map<std::string, bool> tokens;  // token -> live
    uint64_t next_token = 1;
    std::map<std::string, std::vector<json>> locators;  // the rows a query still has to return
    uint64_t next_locator = 1;
    std::vector<SalesforceRequest> log;
    SalesforceCounters counters;
    std::optional<int64_t> fixed_modstamp;
    int64_t api_used = 0;
    int64_t api_limit = 0;
    int fail_count = 0;
    int fail_status = 503;
    std::string fail_code, fail_message;
    int lose_count = 0;
    double lose_ratio = 0;
    std::mt19937_64 rng{std::random_device{}()};

    std::string api_path() const { return "/services/data/v" + options.api_version; }  // as the API names its own resources
    std::string data_path() const { return kInstancePath + api_path(); }                 // where this mock serves them
    std::string base() const { return "http://" + options.address + ":" + std::to_string(port); }
    int64_t stamp() const { return fixed_modstamp.value_or(util::epoch_ms()); }

    std::string external_field(std::string_view type) const {
        for (const auto &[t, f] : options.external_id_fields)
            if (t == type) return f;
        return {};
    }

    json row(const SalesforceRecord &r, const std::vector<std::string> &fields) const {
        json out = {{"attributes", {{"type", r.type}, {"url", api_path() + "/sobjects/" + r.type + "/" + r.id}}}};
        for (const auto &f : fields) {
            if (f == "Id") out["Id"] = r.id;
            else if (f == "IsDeleted") out["IsDeleted"] = r.deleted;
            else if (f == "SystemModstamp" || f == "LastModifiedDate") out[f] = sf_datetime(r.modstamp_ms);
            else if (f == "CreatedDate") out[f] = sf_datetime(r.created_ms);
            else if (f == "LastModifiedById") out[f] = r.last_modified_by;
            else out[f] = r.fields.contains(f) ? r.fields[f] : json(nullptr);
        }
        return out;
    }

    // Fields a write may set: API names with scalar values, never Id or system fields.
    std::optional<HttpResponse> bad_fields(const json &body) const {
        if (!body.is_object()) return sf_error(400, "JSON_PARSER_ERROR", "The body must be a JSON object of fields");
        for (const auto &[name, value] : body.items()) {
            if (!api_name(name)) return sf_error(400, "INVALID_FIELD", "No such column '" + name + "'", json::array({name}));
            if (value.is_structured()) return sf_error(400, "JSON_PARSER_ERROR", "Cannot deserialize a structured value for field " + name, json::array({name}));
            if (name == "Id" || name == "SystemModstamp" || name == "CreatedDate" || name == "IsDeleted")
                return sf_error(400, "INVALID_FIELD_FOR_INSERT_UPDATE", "Unable to create/update fields: " + name, json::array({name}));
        }
        return std::nullopt;
    }

    std::optional<HttpResponse> missing_required(std::string_view type, const json &fields) const {
        const char *required = type == "Account" ? "Name" : type == "Contact" ? "LastName" : nullptr;
        if (required && (!fields.contains(required) || fields[required].is_null() || fields[required] == ""))
            return sf_error(400, "REQUIRED_FIELD_MISSING", std::string("Required fields are missing: [") + required + "]", json::array({required}));
        return std::nullopt;
    }

    std::vector<SalesforceRecord *> live_with(std::string_view type, const std::string &field, const json &value) {
        std::vector<SalesforceRecord *> out;
        for (const auto &id : order) {
            auto &r = records.at(id);
            if (!r.deleted && r.type == type && r.fields.contains(field) && r.fields[field] == value) out.push_back(&r);
        }
        return out;
    }

    SalesforceRecord &insert(std::string_view type, const json &fields, const std::string &by) {
        char num[16];
        std::snprintf(num, sizeof num, "%012llu", static_cast<unsigned long long>(next_id++));
        SalesforceRecord r{std::string(type), key_prefix(type) + num + "AAA", fields, stamp(), 0, by, false};
        r.modstamp_ms = r.created_ms;
        order.push_back(r.id);
        ++counters.created;
        return records[r.id] = std::move(r);
    }

    void modify(SalesforceRecord &r, const json &fields, const std::string &by) {
        for (const auto &[k, v] : fields.items()) r.fields[k] = v;
        r.modstamp_ms = std::max(stamp(), r.modstamp_ms);
        r.last_modified_by = by;
        ++counters.updated;
    }

    HttpResponse token(const HttpRequest &req) {
        const auto form = form_fields(req.body);
        const auto grant = form.count("grant_type") ? form.at("grant_type") : std::string();
        const auto refuse = [&](std::string_view error, std::string_view why) {
            ++counters.token_refusals;
            return HttpResponse::json(400, json{{"error", error}, {"error_description", why}}.dump());
        };
        if (grant == "client_credentials") {
            if (!form.count("client_id") || form.at("client_id") != options.client_id || !form.count("client_secret") || form.at("client_secret") != options.client_secret)
                return refuse("invalid_client", "invalid client credentials");
        } else if (grant == "urn:ietf:params:oauth:grant-type:jwt-bearer") {
            const std::string assertion = form.count("assertion") ? form.at("assertion") : std::string();
            const auto dot1 = assertion.find('.');
            const auto dot2 = assertion.find('.', dot1 == std::string::npos ? 0 : dot1 + 1);
            if (options.jwt_public_key_pem.empty() || dot1 == std::string::npos || dot2 == std::string::npos) return refuse("invalid_grant", "invalid assertion");
            const auto header = json::parse(base64url_decode(assertion.substr(0, dot1)), nullptr, false);
            const auto claims = json::parse(base64url_decode(assertion.substr(dot1 + 1, dot2 - dot1 - 1)), nullptr, false);
            if (!header.is_object() || header.value("alg", "") != "RS256") return refuse("invalid_grant", "the assertion must be RS256");
            if (!rs256_verifies(options.jwt_public_key_pem, std::string_view(assertion).substr(0, dot2), base64url_decode(assertion.substr(dot2 + 1))))
                return refuse("invalid_grant", "invalid assertion signature");
            const int64_t now_s = util::epoch_ms() / 1000;
            if (!claims.is_object() || claims.value("iss", "") != options.client_id) return refuse("invalid_client_id", "client identifier invalid");
            if (claims.value("sub", "") != options.jwt_username) return refuse("invalid_grant", "user hasn't approved this consumer");
            if (claims.value("aud", "") != base()) return refuse("invalid_grant", "audience is invalid");
            if (!claims.contains("exp") || !claims["exp"].is_number_integer() || claims["exp"].get<int64_t>() < now_s || claims["exp"].get<int64_t>() > now_s + 300)
                return refuse("invalid_grant", "expired or too distant exp");
        } else {
            return refuse("unsupported_grant_type", "grant type not supported");
        }
        const std::string t = "00D000000000001!mock-token-" + std::to_string(next_token++);
        tokens[t] = true;
        ++counters.tokens_issued;
        // Like Salesforce's: no expires_in, no refresh token.
        return HttpResponse::json(200, json{{"access_token", t},
                                            {"instance_url", base() + kInstancePath},
                                            {"id", base() + "/id/" + kOrgId + "/" + kUserId},
                                            {"token_type", "Bearer"},
                                            {"issued_at", std::to_string(util::epoch_ms())},
                                            {"signature", "mock"}}
                                           .dump());
    }

    HttpResponse query(const HttpRequest &req, bool all) {
        const std::string soql = percent_decode(req.query_param("q"), true);
        std::smatch m;
        std::vector<const SalesforceRecord *> rows;
        std::vector<std::string> fields;
        const auto split_fields = [&](const std::string &list) {
            static const std::regex field_re("\\s*([A-Za-z][A-Za-z0-9_]*)\\s*(,|$)");
            for (auto it = std::sregex_iterator(list.begin(), list.end(), field_re); it != std::sregex_iterator(); ++it) fields.push_back((*it)[1].str());
        };
        const auto visible = [&](const SalesforceRecord &r, const std::string &type) { return r.type == type && (all || !r.deleted); };
        static const std::regex lookup_re("SELECT (.+) FROM ([A-Za-z0-9_]+) WHERE ([A-Za-z0-9_]+) = '((?:[^'\\\\]|\\\\.)*)' LIMIT ([0-9]+)");
        static const std::regex newest_re("SELECT SystemModstamp FROM ([A-Za-z0-9_]+) ORDER BY SystemModstamp DESC LIMIT 1");
        static const std::regex window_re("SELECT (.+) FROM ([A-Za-z0-9_]+) WHERE SystemModstamp >= ([0-9T:Z-]+) AND SystemModstamp <= ([0-9T:Z-]+) ORDER BY SystemModstamp, Id");
        if (std::regex_match(soql, m, lookup_re)) {
            split_fields(m[1].str());
            std::string value;
            const std::string raw = m[4].str();
            for (size_t i = 0; i < raw.size(); ++i) value += raw[i] == '\\' && i + 1 < raw.size() ? raw[++i] : raw[i];
            const size_t limit = std::stoul(m[5].str());
            for (const auto &id : order) {
                const auto &r = records.at(id);
                if (visible(r, m[2].str()) && r.fields.contains(m[3].str()) && r.fields[m[3].str()] == value && rows.size() < limit) rows.push_back(&r);
            }
        } else if (std::regex_match(soql, m, newest_re)) {
            fields = {"SystemModstamp"};
            for (const auto &id : order) {
                const auto &r = records.at(id);
                if (visible(r, m[1].str()) && (rows.empty() || r.modstamp_ms > rows[0]->modstamp_ms)) rows = {&r};
            }
        } else if (std::regex_match(soql, m, window_re)) {
            split_fields(m[1].str());
            const auto from = soql_datetime_ms(m[3].str()), to = soql_datetime_ms(m[4].str());
            if (!from || !to) return sf_error(400, "MALFORMED_QUERY", "bad dateTime literal in: " + soql);
            for (const auto &id : order) {
                const auto &r = records.at(id);
                if (visible(r, m[2].str()) && r.modstamp_ms >= *from && r.modstamp_ms <= *to) rows.push_back(&r);
            }
            std::sort(rows.begin(), rows.end(), [](const auto *a, const auto *b) { return std::tie(a->modstamp_ms, a->id) < std::tie(b->modstamp_ms, b->id); });
        } else {
            return sf_error(400, "MALFORMED_QUERY", "the mock does not know this query: " + soql);
        }
        std::vector<json> out;
        for (const auto *r : rows) out.push_back(row(*r, fields));
        return page(std::move(out), all, batch_size(req));
    }

    static size_t batch_size(const HttpRequest &req) {
        const std::string_view opts = req.header("Sforce-Query-Options");
        const auto pos = opts.find("batchSize=");
        return pos == std::string_view::npos ? 2000 : std::clamp<size_t>(std::stoul(std::string(opts.substr(pos + 10))), 200, 2000);
    }

    HttpResponse page(std::vector<json> rows, bool all, size_t batch) {
        const size_t total = rows.size();
        json body = {{"totalSize", total}, {"done", true}, {"records", json::array()}};
        for (size_t i = 0; i < std::min(batch, rows.size()); ++i) body["records"].push_back(std::move(rows[i]));
        if (rows.size() > batch) {
            const std::string locator = "01g" + std::to_string(next_locator++) + "-" + std::to_string(batch);
            locators[locator] = std::vector<json>(std::make_move_iterator(rows.begin() + static_cast<long>(batch)), std::make_move_iterator(rows.end()));
            body["done"] = false;
            body["nextRecordsUrl"] = api_path() + (all ? "/queryAll/" : "/query/") + locator;
        }
        return HttpResponse::json(200, body.dump());
    }

    HttpResponse more_rows(std::string_view locator, bool all, const HttpRequest &req) {
        const auto it = locators.find(std::string(locator));
        if (it == locators.end()) return sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator");
        auto rows = std::move(it->second);
        locators.erase(it);
        return page(std::move(rows), all, batch_size(req));
    }

    HttpResponse sobjects(const HttpRequest &req, std::string_view rest) {
        std::vector<std::string> segs;
        for (size_t pos = 0; pos <= rest.size();) {
            const size_t end = std::min(rest.find('/', pos), rest.size());
            segs.push_back(percent_decode(rest.substr(pos, end - pos), false));
            pos = end + 1;
        }
        if (!segs.empty() && segs.back().empty()) segs.pop_back();  // "sobjects/Account/"
        if (segs.empty() || !api_name(segs[0])) return sf_error(404, "NOT_FOUND", "The requested resource does not exist");
        const std::string &type = segs[0];
        const json body = req.body.empty() ? json::object() : json::parse(req.body, nullptr, false);
        if (segs.size() == 1 && req.method == "POST") {
            if (auto bad = bad_fields(body)) return *bad;
            if (auto missing = missing_required(type, body)) return *missing;
            const std::string ext = external_field(type);
            if (options.external_ids_unique && !ext.empty() && body.contains(ext) && !live_with(type, ext, body[ext]).empty())
                return sf_error(400, "DUPLICATE_VALUE", "duplicate value found: " + ext + " duplicates value on record with id: " + live_with(type, ext, body[ext])[0]->id,
                                json::array({ext}));
            const auto &r = insert(type, body, kUserId);
            return HttpResponse::json(201, json{{"id", r.id}, {"success", true}, {"errors", json::array()}}.dump());
        }
        if (segs.size() == 2) {
            const auto it = records.find(segs[1]);
            if (it == records.end() || it->second.type != type) return sf_error(404, "NOT_FOUND", "Provided external ID field does not exist or is not accessible: " + segs[1]);
            auto &r = it->second;
            if (r.deleted) return sf_error(404, "ENTITY_IS_DELETED", "entity is deleted");
            if (req.method == "PATCH") {
                if (auto bad = bad_fields(body)) return *bad;
                modify(r, body, kUserId);
                HttpResponse ok;
                ok.status = 204;
                return ok;
            }
            if (req.method == "DELETE") {
                r.deleted = true;
                r.modstamp_ms = std::max(stamp(), r.modstamp_ms);
                ++counters.deleted;
                HttpResponse ok;
                ok.status = 204;
                return ok;
            }
            if (req.method == "GET") {
                std::vector<std::string> fields = {"Id"};
                const std::string list = percent_decode(req.query_param("fields"), true);
                for (size_t pos = 0; pos < list.size();) {
                    size_t end = std::min(list.find(',', pos), list.size());
                    std::string f = list.substr(pos, end - pos);
                    f.erase(0, f.find_first_not_of(' '));
                    if (!f.empty() && f != "Id") fields.push_back(f);
                    pos = end + 1;
                }
                if (list.empty())
                    for (const auto &[k, _] : r.fields.items()) fields.push_back(k);
                return HttpResponse::json(200, row(r, fields).dump());
            }
        }
        if (segs.size() == 3 && req.method == "PATCH") {
            const std::string &field = segs[1], &value = segs[2];
            if (external_field(type) != field) return sf_error(404, "NOT_FOUND", "Provided external ID field does not exist or is not accessible: " + field);
            if (auto bad = bad_fields(body)) return *bad;
            if (body.contains(field)) return sf_error(400, "INVALID_FIELD", "External ID field " + field + " must not be in the request body", json::array({field}));
            auto matches = live_with(type, field, value);
            if (matches.size() > 1) {
                ++counters.multiple_choices;
                json urls = json::array();
                for (const auto *r : matches) urls.push_back(api_path() + "/sobjects/" + type + "/" + r->id);
                return HttpResponse::json(300, urls.dump());
            }
            if (matches.empty()) {
                json fields = body;
                fields[field] = value;
                if (auto missing = missing_required(type, fields)) return *missing;
                const auto &r = insert(type, fields, kUserId);
                return HttpResponse::json(201, json{{"id", r.id}, {"success", true}, {"errors", json::array()}, {"created", true}}.dump());
            }
            modify(*matches[0], body, kUserId);
            return HttpResponse::json(200, json{{"id", matches[0]->id}, {"success", true}, {"errors", json::array()}, {"created", false}}.dump());
        }
        return sf_error(404, "NOT_FOUND", "The requested resource does not exist");
    }

    // One record's result in an sObject Collections answer, from what the single call
    // (`one`, answered by sobjects()) said: {"id", "success", "errors": [{"statusCode",
    // "message", "fields"}]} (+ "created" for upserts).
    static json collection_item(const HttpResponse &one, const std::string &id_if_none) {
        const json body = one.body.empty() ? json() : json::parse(one.body, nullptr, false);
        if (one.status >= 200 && one.status < 300) {
            json item = {{"id", body.is_object() && body.contains("id") ? body["id"] : json(id_if_none)}, {"success", true}, {"errors", json::array()}};
            if (body.is_object() && body.contains("created")) item["created"] = body["created"];
            return item;
        }
        json errors = json::array();
        if (body.is_array())
            for (const auto &e : body)
                if (e.is_object()) errors.push_back({{"statusCode", e.value("errorCode", "UNKNOWN_EXCEPTION")}, {"message", e.value("message", "")}, {"fields", e.value("fields", json::array())}});
        if (errors.empty()) errors.push_back({{"statusCode", one.status == 300 ? "DUPLICATE_EXTERNAL_ID" : "UNKNOWN_EXCEPTION"}, {"message", one.status == 300 ? "more than one record found for external id field" : "failed"}, {"fields", json::array()}});
        json item = {{"success", false}, {"errors", std::move(errors)}};
        if (!id_if_none.empty()) item["id"] = id_if_none;
        return item;
    }

    // sObject Collections: POST (create), PATCH (update by id), PATCH {type}/{field}
    // (upsert by External ID), DELETE ?ids= ; at most 200 records of one type, allOrNone
    // false only (the mock does not roll back); results in the request's order.
    HttpResponse collections(const HttpRequest &req, std::string_view rest) {
        ++counters.collection_calls;
        const auto sub = [&](std::string method, std::string target, std::string body) {
            HttpRequest one;
            one.method = std::move(method);
            one.target = std::move(target);
            one.body = std::move(body);
            one.headers = req.headers;
            return one;
        };
        if (req.method == "DELETE" && rest.empty()) {
            if (percent_decode(req.query_param("allOrNone")) != "false") return sf_error(400, "INVALID_FIELD", "the mock supports allOrNone=false only");
            const std::string ids = percent_decode(req.query_param("ids"));
            std::vector<std::string> list;
            for (size_t pos = 0; pos <= ids.size() && !ids.empty();) {
                const size_t end = std::min(ids.find(',', pos), ids.size());
                list.push_back(ids.substr(pos, end - pos));
                pos = end + 1;
            }
            if (list.empty()) return sf_error(400, "MISSING_ARGUMENT", "ids is required");
            if (list.size() > 200) return sf_error(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call");
            json out = json::array();
            for (const auto &id : list) {
                const auto it = records.find(id);
                if (it == records.end()) {
                    out.push_back({{"id", id}, {"success", false}, {"errors", json::array({{{"statusCode", "INVALID_CROSS_REFERENCE_KEY"}, {"message", "invalid cross reference id"}, {"fields", json::array()}}})}});
                    continue;
                }
                out.push_back(collection_item(sobjects(sub("DELETE", "", ""), it->second.type + "/" + id), id));
            }
            return HttpResponse::json(200, out.dump());
        }
        if (req.method != "POST" && req.method != "PATCH") return sf_error(405, "METHOD_NOT_ALLOWED", "POST, PATCH or DELETE");
        std::string upsert_type, upsert_field;
        if (!rest.empty()) {
            const auto slash = rest.find('/');
            if (req.method != "PATCH" || slash == std::string_view::npos) return sf_error(404, "NOT_FOUND", "The requested resource does not exist");
            upsert_type = std::string(rest.substr(0, slash));
            upsert_field = std::string(rest.substr(slash + 1));
            if (external_field(upsert_type) != upsert_field) return sf_error(404, "NOT_FOUND", "Provided external ID field does not exist or is not accessible: " + upsert_field);
        }
        const json body = json::parse(req.body, nullptr, false);
        if (!body.is_object() || !body.contains("records") || !body["records"].is_array()) return sf_error(400, "JSON_PARSER_ERROR", "the body must be {\"allOrNone\": ..., \"records\": [...]}");
        if (body.value("allOrNone", false) != false) return sf_error(400, "INVALID_FIELD", "the mock supports allOrNone false only");
        const json &list = body["records"];
        if (list.empty()) return sf_error(400, "MISSING_ARGUMENT", "records is required");
        if (list.size() > 200) return sf_error(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call");
        json out = json::array();
        for (const auto &rec : list) {
            const auto bad = [&](std::string code, std::string message) {
                out.push_back({{"success", false}, {"errors", json::array({{{"statusCode", code}, {"message", message}, {"fields", json::array()}}})}});
            };
            if (!rec.is_object() || !rec.contains("attributes") || !rec["attributes"].is_object() || !rec["attributes"].contains("type") || !rec["attributes"]["type"].is_string()) {
                bad("INVALID_TYPE", "each record needs attributes.type");
                continue;
            }
            const std::string type = rec["attributes"]["type"].get<std::string>();
            json fields = rec;
            fields.erase("attributes");
            if (!upsert_type.empty()) {
                if (type != upsert_type) {
                    bad("INVALID_TYPE", "records must be of the type in the URI: " + upsert_type);
                    continue;
                }
                if (fields.contains("id") || fields.contains("Id")) {
                    bad("INVALID_FIELD", "only external ids are supported, not record ids");
                    continue;
                }
                const auto v = fields.find(upsert_field);
                if (v == fields.end() || !v->is_string() || v->get_ref<const std::string &>().empty()) {
                    bad("MISSING_ARGUMENT", upsert_field + " not specified");
                    continue;
                }
                const std::string value = v->get<std::string>();
                fields.erase(upsert_field);
                out.push_back(collection_item(sobjects(sub("PATCH", "", fields.dump()), type + "/" + upsert_field + "/" + value), ""));
            } else if (req.method == "PATCH") {
                const auto id = fields.find("id");
                if (id == fields.end() || !id->is_string()) {
                    bad("MISSING_ARGUMENT", "Id not specified in an update call");
                    continue;
                }
                const std::string rid = id->get<std::string>();
                fields.erase("id");
                out.push_back(collection_item(sobjects(sub("PATCH", "", fields.dump()), type + "/" + rid), rid));
            } else {
                if (fields.contains("id") || fields.contains("Id")) {
                    bad("INVALID_FIELD", "cannot specify Id in an insert call");
                    continue;
                }
                out.push_back(collection_item(sobjects(sub("POST", "", fields.dump()), type + "/"), ""));
            }
        }
        return HttpResponse::json(200, out.dump());
    }

    HttpResponse api(const HttpRequest &req, std::string_view path) {
        ++counters.api_requests;
        const std::string_view auth = req.header("Authorization");
        const auto t = auth.starts_with("Bearer ") ? tokens.find(std::string(auth.substr(7))) : tokens.end();
        if (t == tokens.end() || !t->second) {
            ++counters.unauthorized;
            return sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid");
        }
        if (api_limit > 0 && api_used >= api_limit) {
            ++counters.limit_exceeded;
            return with_usage(sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."));
        }
        ++api_used;
        if (fail_count > 0) {
            --fail_count;
            return with_usage(sf_error(fail_status, fail_code, fail_message));
        }
        const std::string data = data_path();
        if (!path.starts_with(data + "/")) return sf_error(404, "NOT_FOUND", "The requested resource does not exist (API version v" + options.api_version + " only)");
        const std::string_view rest = path.substr(data.size() + 1);
        HttpResponse r;
        if (rest.starts_with("sobjects/")) r = sobjects(req, rest.substr(9));
        else if (rest == "composite/sobjects" || rest.starts_with("composite/sobjects/")) r = collections(req, rest.size() > 18 ? rest.substr(19) : std::string_view());
        else if (rest == "query/" || rest == "query") r = req.method == "GET" ? query(req, false) : sf_error(405, "METHOD_NOT_ALLOWED", "GET only");
        else if (rest == "queryAll/" || rest == "queryAll") r = req.method == "GET" ? query(req, true) : sf_error(405, "METHOD_NOT_ALLOWED", "GET only");
        else if (rest.starts_with("query/")) r = more_rows(rest.substr(6), false, req);
        else if (rest.starts_with("queryAll/")) r = more_rows(rest.substr(9), true, req);
        else r = sf_error(404, "NOT_FOUND", "The requested resource does not exist");
        return with_usage(std::move(r));
    }

    HttpResponse with_usage(HttpResponse r) const {
        if (api_limit > 0) r.headers.emplace_back("Sforce-Limit-Info", "api-usage=" + std::to_string(api_used) + "/" + std::to_string(api_limit));
        return r;
    }

    // GET /_mock/records[?type=T]: the live records as JSON; GET /_mock/stats: the counters.
    HttpResponse inspect(const HttpRequest &req, std::string_view path) {
        if (req.method != "GET") return sf_error(405, "METHOD_NOT_ALLOWED", "GET only");
        if (path == "/_mock/records") {
            const std::string type(req.query_param("type"));
            json out = json::array();
            for (const auto &id : order) {
                const auto &r = records.at(id);
                if (r.deleted || (!type.empty() && r.type != type)) continue;
                json fields = r.fields;
                fields["Id"] = r.id;
                out.push_back({{"type", r.type}, {"fields", std::move(fields)}});
            }
            return HttpResponse::json(200, out.dump());
        }
        if (path == "/_mock/stats")
            return HttpResponse::json(200, json{{"api_requests", counters.api_requests}, {"created", counters.created}, {"updated", counters.updated},
                                                {"deleted", counters.deleted}, {"tokens_issued", counters.tokens_issued}, {"unauthorized", counters.unauthorized}}
                                               .dump());
        return sf_error(404, "NOT_FOUND", "the mock has /_mock/records and /_mock/stats");
    }

    bool lose_answer() {
        if (lose_count > 0) {
            --lose_count;
            return true;
        }
        return lose_ratio > 0 && std::uniform_real_distribution<double>(0, 1)(rng) < lose_ratio;
    }
};

SalesforceMock::SalesforceMock(SalesforceMockOptions options) : impl_(std::make_unique<Impl>()) {
    impl_->options = std::move(options);
    impl_->api_limit = impl_->options.daily_api_limit;
}

SalesforceMock::~SalesforceMock() { stop(); }

void SalesforceMock::start() {
    if (impl_->listener) return;
    server::ListenerOptions lo;
    lo.address = impl_->options.address;
    lo.port = impl_->options.port;
    lo.threads = impl_->options.threads;
    lo.max_body_bytes = 4 << 20;
    impl_->listener = std::make_unique<server::HttpListener>(lo, [this](const HttpRequest &r) { return handle(r); });
    impl_->listener->start();
    std::lock_guard l(impl_->mu);
    impl_->port = impl_->listener->port();
}

void SalesforceMock::stop() {
    if (!impl_->listener) return;
    impl_->listener->stop();
    impl_->listener.reset();
}

uint16_t SalesforceMock::port() const {
    std::lock_guard l(impl_->mu);
    return impl_->port;
}
std::string SalesforceMock::base_url() const {
    std::lock_guard l(impl_->mu);
    return impl_->base();
}
std::string SalesforceMock::instance_url() const { return base_url() + kInstancePath; }
std::string SalesforceMock::user_id() const { return kUserId; }

HttpResponse SalesforceMock::handle(const HttpRequest &req) {
    std::lock_guard l(impl_->mu);
    const std::string_view path = req.path();
    HttpResponse r;
    if (path.starts_with("/_mock/")) return impl_->inspect(req, path);  // for scripts: not logged, never faulted
    if (path == "/services/oauth2/token" && req.method == "POST") r = impl_->token(req);
    else if (path.starts_with(kInstancePath)) r = impl_->api(req, path);
    else r = sf_error(404, "NOT_FOUND", "No such resource on the login host (the API is at the token answer's instance_url)");
    const bool lost = path.starts_with(kInstancePath) && r.status < 400 && impl_->lose_answer();
    if (lost) {
        ++impl_->counters.lost_answers;
        r = HttpResponse{};
        r.status = 0;
        r.drop_connection = true;
    }
    if (impl_->options.log_requests) impl_->log.push_back({req.method, req.target, req.body, std::string(req.header("Sforce-Call-Options")), r.status});
    return r;
}

std::vector<SalesforceRecord> SalesforceMock::records(std::string_view type, bool with_deleted) const {
    std::lock_guard l(impl_->mu);
    std::vector<SalesforceRecord> out;
    for (const auto &id : impl_->order) {
        const auto &r = impl_->records.at(id);
        if ((type.empty() || r.type == type) && (with_deleted || !r.deleted)) out.push_back(r);
    }
    return out;
}

std::optional<SalesforceRecord> SalesforceMock::record(std::string_view type, std::string_view id) const {
    std::lock_guard l(impl_->mu);
    const auto it = impl_->records.find(std::string(id));
    if (it == impl_->records.end() || it->second.type != type) return std::nullopt;
    return it->second;
}

size_t SalesforceMock::record_count(std::string_view type) const { return records(type).size(); }

std::vector<SalesforceRequest> SalesforceMock::requests() const {
    std::lock_guard l(impl_->mu);
    return impl_->log;
}

SalesforceCounters SalesforceMock::counters() const {
    std::lock_guard l(impl_->mu);
    return impl_->counters;
}

std::string SalesforceMock::create_as_user(std::string_view type, const json &fields) {
    std::lock_guard l(impl_->mu);
    return impl_->insert(type, fields, kHumanUserId).id;
}

void SalesforceMock::update_as_user(std::string_view type, std::string_view id, const json &fields) {
    std::lock_guard l(impl_->mu);
    auto &r = impl_->records.at(std::string(id));
    if (r.type != type) throw std::invalid_argument("no " + std::string(type) + " " + std::string(id));
    impl_->modify(r, fields, kHumanUserId);
}

void SalesforceMock::delete_as_user(std::string_view type, std::string_view id) {
    std::lock_guard l(impl_->mu);
    auto &r = impl_->records.at(std::string(id));
    if (r.type != type) throw std::invalid_argument("no " + std::string(type) + " " + std::string(id));
    r.deleted = true;
    r.modstamp_ms = std::max(impl_->stamp(), r.modstamp_ms);
    r.last_modified_by = kHumanUserId;
    ++impl_->counters.deleted;
}

void SalesforceMock::set_fixed_modstamp(std::optional<int64_t> epoch_ms) {
    std::lock_guard l(impl_->mu);
    impl_->fixed_modstamp = epoch_ms;
}

void SalesforceMock::fail_next(int count, int status, std::string error_code, std::string message) {
    std::lock_guard l(impl_->mu);
    impl_->fail_count = count;
    impl_->fail_status = status;
    impl_->fail_code = std::move(error_code);
    impl_->fail_message = std::move(message);
}

void SalesforceMock::lose_answer_next(int count) {
    std::lock_guard l(impl_->mu);
    impl_->lose_count = count;
}

void SalesforceMock::lose_answer_ratio(double ratio) {
    std::lock_guard l(impl_->mu);
    impl_->lose_ratio = ratio;
}

void SalesforceMock::expire_tokens() {
    std::lock_guard l(impl_->mu);
    for (auto &[_, live] : impl_->tokens) live = false;
}

void SalesforceMock::expire_query_locators() {
    std::lock_guard l(impl_->mu);
    impl_->locators.clear();
}

void SalesforceMock::set_api_usage(int64_t used, int64_t limit) {
    std::lock_guard l(impl_->mu);
    impl_->api_used = used;
    impl_->api_limit = limit;
}

int64_t SalesforceMock::api_usage() const {
    std::lock_guard l(impl_->mu);
    return impl_->api_used;
}

}  // namespace recsync::mock
