// Tests of the built rest.so and rest_oauth.so, loaded and driven through the C ABI by the
// engine's own loader (plugin::ProviderLibrary / ProviderInstance), as the engine does:
// every action's request, each classification, the settings' errors, the auth kinds and
// the poll's cursor.
#include "plugin/plugin_error.hpp"
#include "plugin/provider_instance.hpp"
#include "plugin/provider_library.hpp"
#include "support/test_support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

namespace {

using json = nlohmann::json;
using recsync::plugin::BuiltRequest;
using recsync::plugin::CallInput;
using recsync::plugin::CallResult;
using recsync::plugin::Header;
using recsync::plugin::PluginError;
using recsync::plugin::ProviderInstance;
using recsync::plugin::ProviderLibrary;
using recsync::plugin::ResponseView;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char *kToken = "tok-SECRET-bearer-1234";

// The plugins, copied once into a private directory (the loader refuses a group-writable one).
std::shared_ptr<ProviderLibrary> library(const std::string &id) {
    static recsync::testkit::TempDir dir;
    static std::map<std::string, std::shared_ptr<ProviderLibrary>> loaded;
    auto &lib = loaded[id];
    if (!lib) {
        recsync::testkit::copy_plugin(RECSYNC_PLUGIN_DIR, id, dir.file("plugins"));
        lib = ProviderLibrary::load(dir.file("plugins/" + id + ".so"));
    }
    return lib;
}

// The core-banking API of the README: customers (found by external_ref, a 409 names the
// existing one) and accounts (upserted by external_ref).
json banking() {
    return json::parse(R"({
      "base_url": "https://bank.example", "connection": "bank",
      "auth": {"kind": "bearer"},
      "rate_limit_headers": {"limit": "X-RateLimit-Limit", "remaining": "X-RateLimit-Remaining", "reset": "X-RateLimit-Reset"},
      "objects": {
        "customers": {
          "key_field": "external_ref", "id": "/data/id", "body": {"wrap": "data"}, "modified": "/data/updated_at",
          "create": {"path": "/v1/customers", "status": {"409": "exists"}, "exists_id": "/error/existing_id"},
          "update": {"method": "PATCH", "path": "/v1/customers/{external_id}"},
          "delete": {"path": "/v1/customers/{external_id}"},
          "read": {"path": "/v1/customers/{external_id}", "record": "/data"},
          "find": {"path": "/v1/customers?external_ref={field:external_ref}", "results": "/data"},
          "poll": {"path": "/v1/customers", "since_param": "updated_since", "after_id_param": "after_id", "page_size_param": "page_size",
                   "page_size": 2, "items": "/data", "deleted": "/deleted", "created_at": "/created_at"}
        },
        "accounts": {
          "id": "/data/id",
          "schema": {"type": "object", "properties": {"owner": {"type": "object"}}},
          "create": {"path": "/v1/accounts"},
          "upsert": {"method": "PUT", "path": "/v1/accounts/by-ref/{field:external_ref}"},
          "update": {"method": "PUT", "path": "/v1/accounts/{external_id}"}
        }
      }
    })");
}

std::unique_ptr<ProviderInstance> make(const json &config, const std::string &id = "rest") { return ProviderInstance::create(library(id), config); }

// The message create_instance refuses `config` with ("" if it does not).
std::string refusal(const json &config, const std::string &id = "rest") {
    try {
        make(config, id);
    } catch (const PluginError &e) {
        return e.what();
    }
    return "";
}

const Header *header(const BuiltRequest &r, const std::string &name) {
    for (const auto &h : r.headers)
        if (h.name == name) return &h;
    return nullptr;
}

struct Call {
    recsync_action action = RECSYNC_ACTION_CREATE;
    std::string object = "customers";
    std::string external_id;
    std::string payload = R"({"external_ref":"K-1","name":"Ada"})";
    std::string token = kToken;
    std::string key = "c-1";
    CallInput input() const { return {action, object, key, external_id, payload, token}; }
};

Call with_token(std::string token) {
    Call c;
    c.token = std::move(token);
    return c;
}

struct Answer {
    Answer(int s, std::string b, std::vector<Header> h = {}) : status(s), body(std::move(b)), headers(std::move(h)) {}
    int status;
    std::string body;
    std::vector<Header> headers;
};

CallResult judge(const ProviderInstance &p, const Call &c, const Answer &a) { return p.parse_response(c.input(), ResponseView{a.status, &a.headers, a.body}); }

class RestPlugin : public ::testing::Test {
protected:
    std::unique_ptr<ProviderInstance> p_ = make(banking());
    BuiltRequest build(const Call &c) { return p_->build_request(c.input()); }
};

// ---- describe ------------------------------------------------------------------------

TEST_F(RestPlugin, DescribeListsEachObjectWithItsSchemaAndHowACreateIsRetried) {
    const json d = p_->describe();
    EXPECT_EQ(d["objects"]["customers"]["create_retry"], "find");   // a find action, no upsert
    EXPECT_EQ(d["objects"]["accounts"]["create_retry"], "upsert");  // an upsert action
    EXPECT_EQ(d["objects"]["customers"]["key_property"], "external_ref");
    EXPECT_EQ(d["objects"]["customers"]["schema"]["type"], "object");
    EXPECT_TRUE(d["objects"]["customers"]["schema"].contains("additionalProperties"));  // flat scalars
    EXPECT_EQ(d["objects"]["accounts"]["schema"], banking()["objects"]["accounts"]["schema"]);
    EXPECT_EQ(d["rate_limit"]["per_second"], 10);
    json only_create = banking();
    only_create["objects"].erase("accounts");
    only_create["objects"]["customers"].erase("find");
    EXPECT_FALSE(make(only_create)->describe()["objects"]["customers"].contains("create_retry"));
}

TEST_F(RestPlugin, AFlatObjectRefusesNestedFieldsAndASchemaAllowsThem) {
    EXPECT_THROW(p_->transform(RECSYNC_OUTBOUND, "customers", R"({"address":{"city":"Oslo"}})"), PluginError);
    EXPECT_EQ(json::parse(p_->transform(RECSYNC_OUTBOUND, "accounts", R"({"owner":{"id":"1"}})")), json::parse(R"({"owner":{"id":"1"}})"));
    EXPECT_EQ(json::parse(p_->transform(RECSYNC_INBOUND, "customers", R"({"id":"cus_1","name":"Ada"})"))["id"], "cus_1");
    EXPECT_THROW(p_->transform(RECSYNC_OUTBOUND, "loans", "{}"), PluginError);
}

// ---- requests ------------------------------------------------------------------------

TEST_F(RestPlugin, CreatePostsTheRecordWrappedUnderData) {
    const auto r = build({});
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.path, "/v1/customers");
    EXPECT_EQ(json::parse(r.body), json::parse(R"({"data":{"external_ref":"K-1","name":"Ada"}})"));
    ASSERT_NE(header(r, "Authorization"), nullptr);
    EXPECT_EQ(header(r, "Authorization")->value, std::string("Bearer ") + kToken);
    EXPECT_TRUE(header(r, "Authorization")->secret);
    EXPECT_EQ(header(r, "Content-Type")->value, "application/json");
}

TEST_F(RestPlugin, UpdatePatchesTheIdPercentEncoded) {
    Call c;
    c.action = RECSYNC_ACTION_UPDATE;
    c.external_id = "cus/1 ?x";
    const auto r = build(c);
    EXPECT_EQ(r.method, "PATCH");
    EXPECT_EQ(r.path, "/v1/customers/cus%2F1%20%3Fx");
    EXPECT_EQ(json::parse(r.body)["data"]["name"], "Ada");
    c.external_id.clear();
    EXPECT_THAT([&] { build(c); }, ::testing::ThrowsMessage<PluginError>(HasSubstr("{external_id}")));
}

TEST_F(RestPlugin, UpsertPutsByTheFieldFromThePayload) {
    Call c;
    c.action = RECSYNC_ACTION_UPSERT;
    c.object = "accounts";
    c.payload = R"({"external_ref":"ACC/7&x","balance":10})";
    const auto r = build(c);
    EXPECT_EQ(r.method, "PUT");
    EXPECT_EQ(r.path, "/v1/accounts/by-ref/ACC%2F7%26x");
    EXPECT_EQ(json::parse(r.body), json::parse(c.payload));  // accounts: the record as it is
    c.payload = R"({"balance":10})";
    EXPECT_THAT([&] { build(c); }, ::testing::ThrowsMessage<PluginError>(HasSubstr("needs a non-empty field 'external_ref'")));
}

TEST_F(RestPlugin, DeleteAndReadSendNoBody) {
    Call c;
    c.action = RECSYNC_ACTION_DELETE;
    c.external_id = "cus_9";
    c.payload.clear();
    auto r = build(c);
    EXPECT_EQ(r.method + " " + r.path, "DELETE /v1/customers/cus_9");
    EXPECT_TRUE(r.body.empty());
    EXPECT_EQ(header(r, "Content-Type"), nullptr);
    c.action = RECSYNC_ACTION_READ;
    r = build(c);
    EXPECT_EQ(r.method + " " + r.path, "GET /v1/customers/cus_9");
    EXPECT_TRUE(r.body.empty());
}

TEST_F(RestPlugin, FindQueriesByOurKeyEncoded) {
    Call c;
    c.action = RECSYNC_ACTION_FIND;
    c.payload = R"({"external_ref":"K 1&page=2","name":"Ada"})";
    const auto r = build(c);
    EXPECT_EQ(r.method + " " + r.path, "GET /v1/customers?external_ref=K%201%26page%3D2");
    EXPECT_TRUE(r.body.empty());
}

TEST_F(RestPlugin, AnActionTheSettingsLeaveOutIsUnsupported) {
    Call c;
    c.action = RECSYNC_ACTION_UPSERT;  // customers have none
    EXPECT_THAT([&] { build(c); }, ::testing::ThrowsMessage<PluginError>(HasSubstr("objects.customers has no upsert action")));
}

// ---- classification -------------------------------------------------------------------

TEST_F(RestPlugin, ACreateIsDoneWithTheIdAtItsPointer) {
    const auto r = judge(*p_, {}, {201, R"({"data":{"id":"cus_42","updated_at":"2026-01-01T00:00:00.000Z"}})"});
    EXPECT_EQ(r.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(r.external_id, "cus_42");
    EXPECT_EQ(r.modified, "2026-01-01T00:00:00.000Z");
    const auto numeric = judge(*p_, {}, {201, R"({"data":{"id":42}})"});
    EXPECT_EQ(numeric.external_id, "42");
    const auto none = judge(*p_, {}, {201, R"({"id":"top-level"})"});
    EXPECT_EQ(none.kind, RECSYNC_RESULT_FAIL);
    EXPECT_THAT(none.error, HasSubstr("no id at /data/id"));
}

TEST_F(RestPlugin, A409OnCreateAdoptsTheExistingIdOrFails) {
    const auto adopted = judge(*p_, {}, {409, R"({"error":{"code":"duplicate","message":"exists","existing_id":"cus_7"}})"});
    EXPECT_EQ(adopted.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(adopted.external_id, "cus_7");
    const auto failed = judge(*p_, {}, {409, R"({"error":{"message":"external_ref taken"}})"});
    EXPECT_EQ(failed.kind, RECSYNC_RESULT_FAIL);
    EXPECT_THAT(failed.error, HasSubstr("HTTP 409: external_ref taken"));
    EXPECT_THAT(failed.error, HasSubstr("no id at /error/existing_id"));
    Call update;
    update.action = RECSYNC_ACTION_UPDATE;
    update.external_id = "cus_7";
    EXPECT_EQ(judge(*p_, update, {409, R"({"error":{"existing_id":"cus_8"}})"}).kind, RECSYNC_RESULT_FAIL);  // only the create says exists
}

TEST_F(RestPlugin, ThrottlesAndServerErrorsAreRetriedHonouringRetryAfter) {
    const auto throttled = judge(*p_, {}, {429, R"({"error":{"message":"slow down"}})", {{"Retry-After", "7", false}}});
    EXPECT_EQ(throttled.kind, RECSYNC_RESULT_RETRY);
    EXPECT_EQ(throttled.retry_after_ms, 7000);
    EXPECT_THAT(throttled.error, HasSubstr("slow down"));
    for (const int status : {408, 500, 502, 503}) {
        const auto r = judge(*p_, {}, {status, "<html>gateway</html>"});
        EXPECT_EQ(r.kind, RECSYNC_RESULT_RETRY) << status;
        EXPECT_EQ(r.retry_after_ms, 0) << status;
        EXPECT_THAT(r.error, HasSubstr("<html>gateway</html>")) << status;
    }
}

TEST_F(RestPlugin, OtherStatusesFailWithTheBodysMessageAndNoSecret) {
    const auto r = judge(*p_, {}, {400, json{{"error", {{"message", std::string("bad token ") + kToken}}}}.dump()});
    EXPECT_EQ(r.kind, RECSYNC_RESULT_FAIL);
    EXPECT_THAT(r.error, HasSubstr("HTTP 400: bad token [redacted]"));
    EXPECT_THAT(r.error, Not(HasSubstr(kToken)));
    const auto raw = judge(*p_, {}, {403, std::string("denied for ") + kToken + "\x01"});
    EXPECT_THAT(raw.error, HasSubstr("HTTP 403: denied for [redacted]?"));
    EXPECT_THAT(raw.error, Not(HasSubstr(kToken)));
}

TEST_F(RestPlugin, TheErrorMessagePointerAndPerStatusOutcomesAreConfigurable) {
    json s = banking();
    s["error_message"] = "/detail";
    s["objects"]["customers"]["create"]["status"] = {{"422", "retry"}, {"503", "fail"}, {"409", "exists"}};
    const auto p = make(s);
    EXPECT_EQ(judge(*p, {}, {422, R"({"detail":"locked"})"}).kind, RECSYNC_RESULT_RETRY);
    const auto failed = judge(*p, {}, {503, R"({"detail":"maintenance"})"});
    EXPECT_EQ(failed.kind, RECSYNC_RESULT_FAIL);
    EXPECT_THAT(failed.error, HasSubstr("HTTP 503: maintenance"));
}

TEST_F(RestPlugin, ADeleteOfAMissingRecordIsDone) {
    Call c;
    c.action = RECSYNC_ACTION_DELETE;
    c.external_id = "cus_9";
    c.payload.clear();
    EXPECT_EQ(judge(*p_, c, {204, ""}).kind, RECSYNC_RESULT_OK);
    const auto gone = judge(*p_, c, {404, R"({"error":{"message":"no such customer"}})"});
    EXPECT_EQ(gone.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(gone.external_id, "cus_9");
    EXPECT_EQ(judge(*p_, c, {410, ""}).kind, RECSYNC_RESULT_FAIL);
}

TEST_F(RestPlugin, AReadAnswersWithTheRecordAtItsPointer) {
    Call c;
    c.action = RECSYNC_ACTION_READ;
    c.external_id = "cus_9";
    c.payload.clear();
    const auto r = judge(*p_, c, {200, R"({"data":{"id":"cus_9","name":"Ada","updated_at":"2026-02-02T00:00:00.000Z"}})"});
    EXPECT_EQ(r.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(r.external_id, "cus_9");
    EXPECT_EQ(json::parse(r.record)["name"], "Ada");
    EXPECT_EQ(r.modified, "2026-02-02T00:00:00.000Z");
    EXPECT_EQ(judge(*p_, c, {200, R"({"data":[]})"}).kind, RECSYNC_RESULT_FAIL);
    EXPECT_EQ(judge(*p_, c, {404, ""}).kind, RECSYNC_RESULT_FAIL);
}

TEST_F(RestPlugin, AFindTellsNoneOneAndSeveral) {
    Call c;
    c.action = RECSYNC_ACTION_FIND;
    const auto none = judge(*p_, c, {200, R"({"data":[]})"});
    EXPECT_EQ(none.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(none.external_id, "");
    const auto one = judge(*p_, c, {200, R"({"data":[{"id":"cus_3"}]})"});
    EXPECT_EQ(one.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(one.external_id, "cus_3");
    const auto several = judge(*p_, c, {200, R"({"data":[{"id":"cus_3"},{"id":"cus_4"}]})"});
    EXPECT_EQ(several.kind, RECSYNC_RESULT_FAIL);
    EXPECT_THAT(several.error, HasSubstr("matched 2 records"));
    EXPECT_EQ(judge(*p_, c, {200, R"({"data":{}})"}).kind, RECSYNC_RESULT_FAIL);
    json s = banking();
    s["objects"]["customers"]["find"]["status"] = {{"404", "none"}};
    EXPECT_EQ(judge(*make(s), c, {404, ""}).kind, RECSYNC_RESULT_OK);
}

TEST_F(RestPlugin, RateLimitHeadersAreReported) {
    const auto r = judge(*p_, {}, {201, R"({"data":{"id":"cus_1"}})", {{"X-RateLimit-Limit", "100", false}, {"X-RateLimit-Remaining", "3", false}, {"X-RateLimit-Reset", "2", false}}});
    ASSERT_EQ(r.rate_limits.size(), 1u);
    EXPECT_EQ(r.rate_limits[0].limit, 100);
    EXPECT_EQ(r.rate_limits[0].remaining, 3);
    EXPECT_EQ(r.rate_limits[0].reset_after_ms, 2000);
    EXPECT_TRUE(judge(*p_, {}, {201, R"({"data":{"id":"cus_1"}})"}).rate_limits.empty());
    json s = banking();
    s["rate_limit_headers"] = {{"remaining", "X-Left"}, {"reset", "X-Reset-At"}, {"reset_is", "epoch_seconds"}};
    const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    const auto e = judge(*make(s), {}, {201, R"({"data":{"id":"cus_1"}})", {{"X-Left", "0", false}, {"X-Reset-At", std::to_string(now_s + 30), false}}});
    ASSERT_EQ(e.rate_limits.size(), 1u);
    EXPECT_GT(e.rate_limits[0].reset_after_ms, 28'000);
    EXPECT_LE(e.rate_limits[0].reset_after_ms, 30'000);
}

// ---- settings errors --------------------------------------------------------------------

struct BadSettings {
    const char *what;
    std::function<void(json &)> edit;
    const char *message;
};

TEST(RestSettings, EveryMistakeIsRefusedNamingTheSetting) {
    const std::vector<BadSettings> cases = {
        {"unknown placeholder", [](json &s) { s["objects"]["accounts"]["create"]["path"] = "/v1/{foo}"; }, "rest settings objects.accounts.create.path: unknown placeholder {foo}"},
        {"unclosed brace", [](json &s) { s["objects"]["accounts"]["create"]["path"] = "/v1/{external_id"; }, "objects.accounts.create.path: '{' without a '}'"},
        {"relative path", [](json &s) { s["objects"]["accounts"]["create"]["path"] = "v1/accounts"; }, "objects.accounts.create.path: must start with '/'"},
        {"no path", [](json &s) { s["objects"]["accounts"]["create"].erase("path"); }, "objects.accounts.create.path: is required"},
        {"id in a create", [](json &s) { s["objects"]["accounts"]["create"]["path"] = "/v1/accounts/{external_id}"; }, "{external_id} is unknown for a create"},
        {"field in a delete", [](json &s) { s["objects"]["customers"]["delete"]["path"] = "/v1/c/{field:x}"; }, "objects.customers.delete.path: {field:...} takes a value from the payload"},
        {"find of everything", [](json &s) { s["objects"]["customers"]["find"]["path"] = "/v1/customers"; }, "objects.customers.find.path: a find must name the record"},
        {"unknown key", [](json &s) { s["objects"]["customers"]["craete"] = json::object(); }, "rest settings objects.customers: unknown key 'craete'"},
        {"unknown top-level key", [](json &s) { s["objcts"] = json::object(); }, "rest settings: unknown key 'objcts'"},
        {"bad method", [](json &s) { s["objects"]["accounts"]["update"]["method"] = "FETCH"; }, "objects.accounts.update.method: 'FETCH' is not GET"},
        {"bad pointer", [](json &s) { s["objects"]["customers"]["id"] = "data/id"; }, "objects.customers.id: 'data/id' is not a JSON pointer"},
        {"bad status", [](json &s) { s["objects"]["customers"]["create"]["status"] = {{"4xx", "fail"}}; }, "objects.customers.create.status.4xx: '4xx' is not an HTTP status"},
        {"exists on update", [](json &s) { s["objects"]["accounts"]["update"]["status"] = {{"409", "exists"}}; }, "objects.accounts.update.status.409: exists is for create and upsert only"},
        {"unknown outcome", [](json &s) { s["objects"]["customers"]["create"]["status"] = {{"409", "adopt"}}; }, "'adopt' is not one of ok, retry, fail"},
        {"exists_id without exists", [](json &s) { s["objects"]["customers"]["create"]["status"] = json::object(); }, "objects.customers.create.exists_id: is read only for a status marked exists"},
        {"bad body", [](json &s) { s["objects"]["customers"]["body"] = "wrapped"; }, "must be record, none or { wrap: MEMBER }"},
        {"no action", [](json &s) { s["objects"]["loans"] = {{"key_field", "x"}}; }, "objects.loans: configures no action"},
        {"no objects", [](json &s) { s.erase("objects"); }, "rest settings objects: map each object"},
        {"no auth", [](json &s) { s.erase("auth"); }, "rest settings auth: is required"},
        {"unknown auth kind", [](json &s) { s["auth"]["kind"] = "digest"; }, "auth.kind: 'digest' is not bearer, basic"},
        {"basic without credentials", [](json &s) { s["auth"] = {{"kind", "basic"}}; }, "auth: auth kind basic needs credentials: { username_env: VAR }"},
        {"api key header", [](json &s) { s["auth"] = {{"kind", "api_key"}, {"header", "X Key"}}; s["credentials"] = {{"api_key", "k"}}; }, "auth.header: 'X Key' is not an HTTP header name"},
        {"oauth in rest", [](json &s) { s["auth"] = {{"kind", "oauth_client_credentials"}, {"token_path", "/t"}}; s["credentials"] = {{"client_id", "a"}, {"client_secret", "b"}}; }, "oauth_client_credentials needs provider: rest_oauth"},
        {"hydrate without read", [](json &s) { s["objects"]["customers"].erase("read"); s["objects"]["customers"]["poll"]["hydrate"] = true; }, "objects.customers.poll.hydrate: reads each record, and customers has no read action"},
        {"poll page size", [](json &s) { s["objects"]["customers"]["poll"]["page_size"] = 0; }, "objects.customers.poll.page_size: must be a whole number from 1 to 10000"},
        {"poll placeholder", [](json &s) { s["objects"]["customers"]["poll"]["path"] = "/v1/{record_key}"; }, "objects.customers.poll.path: takes no placeholders"},
        {"rate headers without time", [](json &s) { s["rate_limit_headers"] = {{"remaining", "X-Left"}}; }, "rate_limit_headers: needs reset (a header) or window_s"},
    };
    for (const auto &c : cases) {
        json s = banking();
        c.edit(s);
        const std::string error = refusal(s);
        EXPECT_THAT(error, HasSubstr(c.message)) << c.what;
        EXPECT_THAT(error, HasSubstr("rest.create_instance: configuration error: rest settings")) << c.what;
    }
    EXPECT_EQ(refusal(banking()), "");
}

TEST(RestSettings, RestOauthTakesOnlyClientCredentials) {
    EXPECT_THAT(refusal(banking(), "rest_oauth"), HasSubstr("auth.kind: provider rest_oauth takes oauth_client_credentials only; use provider: rest for bearer"));
}

// ---- auth kinds ---------------------------------------------------------------------------

TEST(RestAuth, BasicSendsTheEncodedPairMarkedSecret) {
    json s = banking();
    s["auth"] = {{"kind", "basic"}};
    s["credentials"] = {{"username", "svc"}, {"password", "p@ss-SECRET"}};
    const auto p = make(s);
    const auto r = p->build_request(with_token("").input());
    ASSERT_NE(header(r, "Authorization"), nullptr);
    EXPECT_EQ(header(r, "Authorization")->value, "Basic c3ZjOnBAc3MtU0VDUkVU");  // base64("svc:p@ss-SECRET")
    EXPECT_TRUE(header(r, "Authorization")->secret);
    // An echoed password never reaches a dead letter.
    EXPECT_THAT(judge(*p, {}, {401, R"({"error":{"message":"bad password p@ss-SECRET"}})"}).error, Not(HasSubstr("p@ss-SECRET")));
}

TEST(RestAuth, AnApiKeyGoesInItsHeaderMarkedSecret) {
    json s = banking();
    s["auth"] = {{"kind", "api_key"}, {"header", "X-Bank-Key"}};
    s["credentials"] = {{"api_key", "key-SECRET-9"}};
    const auto r = make(s)->build_request(with_token("").input());
    ASSERT_NE(header(r, "X-Bank-Key"), nullptr);
    EXPECT_EQ(header(r, "X-Bank-Key")->value, "key-SECRET-9");
    EXPECT_TRUE(header(r, "X-Bank-Key")->secret);
    EXPECT_EQ(header(r, "Authorization"), nullptr);
    s["credentials"]["api_key"] = "bad\r\nX-Injected: 1";
    EXPECT_THAT(refusal(s), HasSubstr("control characters"));
}

TEST(RestAuth, NoneSendsNoCredentialAndBearerNeedsAToken) {
    json s = banking();
    s["auth"] = {{"kind", "none"}};
    const auto r = make(s)->build_request(Call{}.input());
    EXPECT_EQ(header(r, "Authorization"), nullptr);
    EXPECT_THAT([&] { make(banking())->build_request(with_token("").input()); }, ::testing::ThrowsMessage<PluginError>(HasSubstr("credentials: { token_env: VAR }")));
}

json oauth_settings() {
    json s = banking();
    s["auth"] = {{"kind", "oauth_client_credentials"}, {"token_path", "/oauth/token"}, {"scope", "accounts customers"}};
    s["credentials"] = {{"client_id", "client-1"}, {"client_secret", "cs-SECRET/+"}};
    return s;
}

TEST(RestAuth, OauthBuildsTheClientCredentialsRequestAndReadsTheToken) {
    const auto p = make(oauth_settings(), "rest_oauth");
    ASSERT_TRUE(p->has_auth_refresh());
    const auto req = p->build_auth_request();
    EXPECT_EQ(req.method + " " + req.path, "POST /oauth/token");
    EXPECT_EQ(req.body, "grant_type=client_credentials&client_id=client-1&client_secret=cs-SECRET%2F%2B&scope=accounts%20customers");
    EXPECT_EQ(header(req, "Content-Type")->value, "application/x-www-form-urlencoded");
    const std::vector<Header> none;
    const auto t = p->parse_auth_response(ResponseView{200, &none, R"({"access_token":"at-1","token_type":"Bearer","expires_in":120})"});
    EXPECT_EQ(t.token, "at-1");
    EXPECT_EQ(t.expires_in_seconds, 120);
    EXPECT_EQ(p->parse_auth_response(ResponseView{200, &none, R"({"access_token":"at-2"})"}).expires_in_seconds, 3600);
    try {
        p->parse_auth_response(ResponseView{401, &none, R"({"error":"invalid_client","error_description":"bad secret cs-SECRET/+"})"});
        ADD_FAILURE() << "a 401 is not a token";
    } catch (const PluginError &e) {
        EXPECT_THAT(e.what(), HasSubstr("HTTP 401: bad secret [redacted]"));
        EXPECT_THAT(e.what(), Not(HasSubstr("cs-SECRET")));
    }
    EXPECT_THROW(p->parse_auth_response(ResponseView{200, &none, R"({"token":"x"})"}), PluginError);
    // Calls carry the host's token as a bearer.
    const auto call = p->build_request(with_token("at-1").input());
    EXPECT_EQ(header(call, "Authorization")->value, "Bearer at-1");
}

TEST(RestAuth, OauthClientAuthBasicPutsTheClientInTheHeader) {
    json s = oauth_settings();
    s["auth"]["client_auth"] = "basic";
    s["auth"].erase("scope");
    const auto req = make(s, "rest_oauth")->build_auth_request();
    EXPECT_EQ(req.body, "grant_type=client_credentials");
    ASSERT_NE(header(req, "Authorization"), nullptr);
    EXPECT_EQ(header(req, "Authorization")->value, "Basic Y2xpZW50LTE6Y3MtU0VDUkVUJTJGJTJC");  // base64("client-1:cs-SECRET%2F%2B")
    EXPECT_TRUE(header(req, "Authorization")->secret);
}

TEST(RestAuth, OnlyRestOauthRefreshesTokens) {
    EXPECT_FALSE(make(banking())->has_auth_refresh());
    EXPECT_TRUE(make(banking())->has_polling());
}

// rest_oauth polls as rest does (the same settings, the same request), with the token the
// host fetched as its bearer.
TEST(RestAuth, RestOauthPollsLikeRestWithTheHostsToken) {
    const auto oauth = make(oauth_settings(), "rest_oauth");
    ASSERT_TRUE(oauth->has_polling());
    const auto polled = oauth->build_poll_request("customers", R"({"t":"2026-03-01T10:00:00.000Z","id":"cus_1"})", "at-1");
    const auto plain = make(banking())->build_poll_request("customers", R"({"t":"2026-03-01T10:00:00.000Z","id":"cus_1"})", kToken);
    EXPECT_EQ(polled.method + " " + polled.path, plain.method + " " + plain.path);
    EXPECT_EQ(polled.path, "/v1/customers?updated_since=2026-03-01T10%3A00%3A00.000Z&after_id=cus_1&page_size=2");
    ASSERT_NE(header(polled, "Authorization"), nullptr);
    EXPECT_EQ(header(polled, "Authorization")->value, "Bearer at-1");
    EXPECT_TRUE(header(polled, "Authorization")->secret);
    EXPECT_THROW(oauth->build_poll_request("customers", "", ""), PluginError);  // no token from the host: no poll
    const std::vector<Header> none;
    const auto page = oauth->parse_poll_response("customers", "", ResponseView{200, &none, R"({"data":[{"id":"cus_2","updated_at":"2026-03-01T10:00:01.000Z"}]})"});
    ASSERT_EQ(page.events.size(), 1u);
    EXPECT_EQ(page.events[0]["external_id"], "cus_2");
}

// ---- polling --------------------------------------------------------------------------------

class RestPoll : public RestPlugin {
protected:
    ProviderInstance::PollPage page(const std::string &cursor, int status, const std::string &body) {
        const std::vector<Header> none;
        return p_->parse_poll_response("customers", cursor, ResponseView{status, &none, body});
    }
};

TEST_F(RestPoll, TheFirstPollAsksFromTheStartWithThePageSize) {
    const auto r = p_->build_poll_request("customers", "", kToken);
    EXPECT_EQ(r.method + " " + r.path, "GET /v1/customers?page_size=2");
    EXPECT_EQ(header(r, "Authorization")->value, std::string("Bearer ") + kToken);
    json s = banking();
    s["objects"]["customers"]["poll"]["start"] = "2026-01-01T00:00:00Z";
    s["objects"]["customers"]["poll"]["path"] = "/v1/customers?status=active";
    EXPECT_EQ(make(s)->build_poll_request("customers", "", kToken).path, "/v1/customers?status=active&updated_since=2026-01-01T00%3A00%3A00Z&page_size=2");
    EXPECT_THROW(p_->build_poll_request("accounts", "", kToken), PluginError);  // no poll configured
    EXPECT_THROW(p_->build_poll_request("customers", "garbage", kToken), PluginError);
}

TEST_F(RestPoll, TheCursorIsTheLastItemsTimeAndIdSoEqualTimestampsPageOn) {
    const std::string t = "2026-03-01T10:00:00.000Z";
    const auto first = page("", 200, json{{"data", {{{"id", "cus_1"}, {"updated_at", t}, {"created_at", t}, {"name", "A"}}, {{"id", "cus_2"}, {"updated_at", t}, {"created_at", "2026-01-01T00:00:00.000Z"}}}}}.dump());
    ASSERT_EQ(first.events.size(), 2u);
    EXPECT_EQ(first.events[0]["event"], "created");
    EXPECT_EQ(first.events[1]["event"], "updated");
    EXPECT_EQ(first.events[0]["external_id"], "cus_1");
    EXPECT_EQ(first.events[0]["data"]["name"], "A");
    EXPECT_EQ(first.events[0]["id"], "poll:cus_1:" + t);
    EXPECT_EQ(first.events[0]["modified"], t);
    EXPECT_EQ(first.events[0]["occurred_at"], 1772359200000);
    EXPECT_TRUE(first.more);  // a full page
    EXPECT_EQ(json::parse(first.cursor), json({{"t", t}, {"id", "cus_2"}}));
    // The next request asks after (t, cus_2): the server pages on within the timestamp.
    const auto next = p_->build_poll_request("customers", first.cursor, kToken);
    EXPECT_EQ(next.path, "/v1/customers?updated_since=2026-03-01T10%3A00%3A00.000Z&after_id=cus_2&page_size=2");
    const auto second = page(first.cursor, 200, json{{"data", {{{"id", "cus_3"}, {"updated_at", t}, {"deleted", true}}}}}.dump());
    ASSERT_EQ(second.events.size(), 1u);
    EXPECT_EQ(second.events[0]["event"], "deleted");
    EXPECT_FALSE(second.events[0].contains("data"));
    EXPECT_FALSE(second.more);
    EXPECT_EQ(json::parse(second.cursor)["id"], "cus_3");
    // Nothing new: the cursor stays.
    const auto empty = page(second.cursor, 200, R"({"data":[]})");
    EXPECT_TRUE(empty.events.empty());
    EXPECT_EQ(empty.cursor, second.cursor);
}

TEST_F(RestPoll, WithoutAnAfterIdAFullPageAtOneTimestampIsAnErrorNotALoop) {
    json s = banking();
    s["objects"]["customers"]["poll"].erase("after_id_param");
    const auto p = make(s);
    const std::vector<Header> none;
    const std::string t = "2026-03-01T10:00:00.000Z";
    const std::string same = json{{"data", {{{"id", "cus_1"}, {"updated_at", t}}, {{"id", "cus_2"}, {"updated_at", t}}}}}.dump();
    EXPECT_THAT([&] { p->parse_poll_response("customers", "", ResponseView{200, &none, same}); },
                ::testing::ThrowsMessage<PluginError>(HasSubstr("set poll.after_id_param")));
    const std::string moving = json{{"data", {{{"id", "cus_1"}, {"updated_at", "2026-03-01T09:00:00.000Z"}}, {{"id", "cus_2"}, {"updated_at", t}}}}}.dump();
    const auto ok = p->parse_poll_response("customers", "", ResponseView{200, &none, moving});
    EXPECT_TRUE(ok.more);
    EXPECT_EQ(p->build_poll_request("customers", ok.cursor, kToken).path, "/v1/customers?updated_since=2026-03-01T10%3A00%3A00.000Z&page_size=2");
}

TEST_F(RestPoll, HydrateLeavesTheRecordToARead) {
    json s = banking();
    s["objects"]["customers"]["poll"]["hydrate"] = true;
    const std::vector<Header> none;
    const auto pg = make(s)->parse_poll_response("customers", "", ResponseView{200, &none, R"({"data":[{"id":"cus_1","updated_at":"2026-03-01T10:00:00Z"}]})"});
    ASSERT_EQ(pg.events.size(), 1u);
    EXPECT_TRUE(pg.events[0]["hydrate"]);
    EXPECT_FALSE(pg.events[0].contains("data"));
}

TEST_F(RestPoll, AnAnswerWithoutAPageIsAnError) {
    EXPECT_THAT([&] { page("", 503, R"({"error":{"message":"down"}})"); }, ::testing::ThrowsMessage<PluginError>(HasSubstr("HTTP 503 to the poll of customers: down")));
    EXPECT_THAT([&] { page("", 200, R"({"items":[]})"); }, ::testing::ThrowsMessage<PluginError>(HasSubstr("no items array at /data")));
    EXPECT_THAT([&] { page("", 200, R"({"data":[{"id":"cus_1"}]})"); }, ::testing::ThrowsMessage<PluginError>(HasSubstr("item cus_1 has no updated-at at /updated_at")));
}

}  // namespace
