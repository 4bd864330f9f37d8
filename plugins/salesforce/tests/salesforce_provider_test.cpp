// Tests of the built salesforce.so through the C ABI (tests/support/provider_harness.hpp):
// every request it builds is checked against specs/sobject-rest-v60.json, the contract
// written from Salesforce's REST API reference; every answer class it judges; its settings'
// errors; the JWT assertion; the poll cursor.
#include "support/provider_harness.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validator.hpp>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>

namespace {

using nlohmann::json;
using testkit::PluginCall;
using testkit::PluginOutput;
using testkit::PluginResponse;
using testkit::ProviderHarness;

constexpr const char *kToken = "00D000000000001!SECRET-SESSION-TOKEN";

json contract() {
    std::ifstream in(SALESFORCE_SPEC);
    std::stringstream ss;
    ss << in.rdbuf();
    return json::parse(ss.str());
}

std::string url_decode(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        } else {
            out += s[i] == '+' ? ' ' : s[i];
        }
    }
    return out;
}

// Empty if the request is one the contract describes; else every reason it is not.
std::string contract_violations(const PluginOutput &r) {
    static const json spec = contract();
    std::string why;
    for (const auto &e : spec["endpoints"]) {
        if (e["method"] != r.method || !std::regex_match(r.path, std::regex(e["path"].get<std::string>()))) continue;
        for (const auto &h : e["headers"])
            if (!r.header(h.get<std::string>())) why += std::string(e["name"]) + ": no " + h.get<std::string>() + " header; ";
        if (e.contains("body")) {
            const json body = json::parse(r.body, nullptr, false);
            // The body's schema with its "$ref" to the contract's definitions put in place
            // (siblings of a $ref are ignored in draft 7, so they are merged in instead).
            json schema_doc = e["body"];
            if (schema_doc.contains("$ref")) {
                const std::string ref = schema_doc["$ref"].get<std::string>();
                schema_doc.erase("$ref");
                json merged = spec["definitions"][ref.substr(ref.rfind('/') + 1)];
                merged.merge_patch(schema_doc);
                schema_doc = std::move(merged);
            }
            valijson::Schema schema;
            valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
            valijson::adapters::NlohmannJsonAdapter schema_adapter(schema_doc);
            parser.populateSchema(schema_adapter, schema);
            valijson::Validator validator;
            valijson::adapters::NlohmannJsonAdapter target(body);
            if (body.is_discarded() || !validator.validate(schema, target, nullptr)) why += std::string(e["name"]) + ": the body breaks the schema: " + r.body + "; ";
            if (e.contains("body_excludes_path_segment")) {
                std::vector<std::string> segs;
                std::stringstream ps(r.path);
                for (std::string seg; std::getline(ps, seg, '/');) segs.push_back(seg);
                const size_t i = e["body_excludes_path_segment"].get<size_t>();
                if (i < segs.size() && body.is_object() && body.contains(segs[i])) why += "upsert: the External ID field " + segs[i] + " is in the body; ";
            }
        }
        if (e.contains("form")) {
            std::map<std::string, std::string> form;
            std::stringstream fs(r.body);
            for (std::string pair; std::getline(fs, pair, '&');) {
                const auto eq = pair.find('=');
                form[url_decode(pair.substr(0, eq))] = eq == std::string::npos ? "" : url_decode(pair.substr(eq + 1));
            }
            const auto grant = e["form"].find(form["grant_type"]);
            if (grant == e["form"].end()) why += "token: unknown grant_type '" + form["grant_type"] + "'; ";
            else
                for (const auto &f : *grant)
                    if (form[f.get<std::string>()].empty()) why += "token: no " + f.get<std::string>() + "; ";
        }
        return why;
    }
    return "no endpoint of the contract is " + r.method + " " + r.path;
}

json config(json extra = json::object()) {
    json c = {{"base_url", "https://login.salesforce.com"},
              {"credentials", {{"client_id", "consumer-key"}, {"client_secret", "consumer-secret"}}},
              {"objects", {{"Contact", {{"external_id_field", "Recsync_Key__c"}, {"fields", {"Email", "LastName"}}}}, {"Lead", {{"lookup_field", "Email"}}}}}};
    c.merge_patch(extra);
    return c;
}

class SalesforcePlugin : public ::testing::Test {
protected:
    void SetUp() override {
        const auto made = plugin_.create(config());
        ASSERT_EQ(made.status, RECSYNC_OK) << made.error;
    }
    PluginOutput build(recsync_action a, std::string object, std::string payload = "", std::string external_id = "") {
        return plugin_.build({a, std::move(object), "key-1", std::move(external_id), std::move(payload), kToken});
    }
    PluginOutput judge(recsync_action a, int status, std::string body, std::vector<std::pair<std::string, std::string>> headers = {}) {
        return plugin_.parse({a, "Contact", "key-1", a == RECSYNC_ACTION_CREATE || a == RECSYNC_ACTION_UPSERT ? "" : "003000000000001AAA", "{}", kToken},
                             {status, std::move(headers), std::move(body), ""});
    }
    ProviderHarness plugin_{RECSYNC_PLUGIN_DIR "/salesforce.so"};
};

TEST_F(SalesforcePlugin, EveryRecordCallIsARequestTheContractDescribes) {
    const auto create = build(RECSYNC_ACTION_CREATE, "Contact", R"({"Email":"a@b.c","LastName":"L"})");
    ASSERT_EQ(create.status, RECSYNC_OK) << create.error;
    EXPECT_EQ(contract_violations(create), "");
    EXPECT_EQ(json::parse(create.body)["Recsync_Key__c"], "key-1") << "the key goes into the External ID field, so a retry can upsert";
    PluginOutput forged = create;  // the check itself can fail: Id in a body, a path the API does not have
    forged.body = R"({"Id":"003000000000001AAA","LastName":"L"})";
    EXPECT_NE(contract_violations(forged), "");
    forged.path = "/services/data/v60.0/sobject/Contact/";
    EXPECT_NE(contract_violations(forged), "");

    const auto update = build(RECSYNC_ACTION_UPDATE, "Contact", R"({"LastName":"M"})", "003000000000001AAA");
    EXPECT_EQ(contract_violations(update), "");
    EXPECT_EQ(update.path, "/services/data/v60.0/sobjects/Contact/003000000000001AAA");

    const auto upsert = build(RECSYNC_ACTION_UPSERT, "Contact", R"({"LastName":"M","Recsync_Key__c":"key/with?odd chars"})");
    EXPECT_EQ(contract_violations(upsert), "");
    EXPECT_EQ(upsert.path, "/services/data/v60.0/sobjects/Contact/Recsync_Key__c/key%2Fwith%3Fodd%20chars");
    EXPECT_FALSE(json::parse(upsert.body).contains("Recsync_Key__c"));

    const auto del = build(RECSYNC_ACTION_DELETE, "Contact", "", "003000000000001AAA");
    EXPECT_EQ(contract_violations(del), "");
    const auto read = build(RECSYNC_ACTION_READ, "Contact", "", "003000000000001AAA");
    EXPECT_EQ(contract_violations(read), "");
    EXPECT_NE(url_decode(read.path).find("fields=Id, Email, LastName"), std::string::npos) << read.path;

    const auto find = plugin_.build({RECSYNC_ACTION_FIND, "Lead", "key-1", "", R"({"Email":"o'hara@b.c"})", kToken});
    ASSERT_EQ(find.status, RECSYNC_OK) << find.error;
    EXPECT_EQ(contract_violations(find), "");
    EXPECT_NE(url_decode(find.path).find(R"(WHERE Email = 'o\'hara@b.c' LIMIT 2)"), std::string::npos) << url_decode(find.path);

    for (const auto *r : {&create, &update, &upsert, &del}) {
        ASSERT_NE(r->header("Sforce-Call-Options"), nullptr) << r->method << " " << r->path;
        EXPECT_EQ(r->header("Sforce-Call-Options")->value, "client=recsync");
    }
    for (const auto *r : {&create, &update, &upsert, &del, &read, &find}) {
        ASSERT_NE(r->header("Authorization"), nullptr);
        EXPECT_EQ(r->header("Authorization")->flags, RECSYNC_HEADER_SECRET);
    }
}

TEST_F(SalesforcePlugin, PollAndTokenRequestsAreOnesTheContractDescribes) {
    const auto probe = plugin_.build_poll("Contact", "");
    EXPECT_EQ(contract_violations(probe), "");
    EXPECT_NE(url_decode(probe.path).find("ORDER BY SystemModstamp DESC LIMIT 1"), std::string::npos);
    const auto window = plugin_.build_poll("Contact", R"({"s":1700000000000})");
    EXPECT_EQ(contract_violations(window), "");
    EXPECT_NE(url_decode(window.path).find("SystemModstamp >= 2023-11-14T22:13:20Z AND SystemModstamp <= "), std::string::npos) << url_decode(window.path);
    ASSERT_NE(window.header("Sforce-Query-Options"), nullptr);
    const auto next = plugin_.build_poll("Contact", R"({"s":1700000000000,"next":"/services/data/v60.0/queryAll/01gD0000002HU6KIAW-2000"})");
    EXPECT_EQ(contract_violations(next), "");
    EXPECT_NE(plugin_.build_poll("Contact", R"({"s":1,"next":"/services/data/v60.0/../../evil"})").status, RECSYNC_OK);
    const auto token = plugin_.build_auth();
    EXPECT_EQ(contract_violations(token), "");
}

TEST_F(SalesforcePlugin, AnswersAreJudgedByStatusAndErrorCode) {
    const auto created = judge(RECSYNC_ACTION_CREATE, 201, R"({"id":"003000000000009AAA","success":true,"errors":[]})");
    EXPECT_EQ(created.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(created.external_id, "003000000000009AAA");
    const auto refused = judge(RECSYNC_ACTION_CREATE, 400, R"([{"message":"Required fields are missing: [LastName]","errorCode":"REQUIRED_FIELD_MISSING","fields":["LastName"]}])");
    EXPECT_EQ(refused.kind, RECSYNC_RESULT_FAIL);
    EXPECT_NE(refused.error.find("REQUIRED_FIELD_MISSING: Required fields are missing: [LastName] (fields: LastName)"), std::string::npos) << refused.error;
    const auto locked = judge(RECSYNC_ACTION_UPDATE, 400, R"([{"message":"unable to obtain exclusive access to this record","errorCode":"UNABLE_TO_LOCK_ROW"}])");
    EXPECT_EQ(locked.kind, RECSYNC_RESULT_RETRY);
    EXPECT_EQ(judge(RECSYNC_ACTION_UPDATE, 503, "<html>down</html>").kind, RECSYNC_RESULT_RETRY);
    EXPECT_EQ(judge(RECSYNC_ACTION_UPDATE, 401, R"([{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}])").kind, RECSYNC_RESULT_RETRY);
    EXPECT_EQ(judge(RECSYNC_ACTION_DELETE, 404, R"([{"message":"entity is deleted","errorCode":"ENTITY_IS_DELETED"}])").kind, RECSYNC_RESULT_OK);
    const auto several = judge(RECSYNC_ACTION_UPSERT, 300, R"(["/services/data/v60.0/sobjects/Contact/003A","/services/data/v60.0/sobjects/Contact/003B"])");
    EXPECT_EQ(several.kind, RECSYNC_RESULT_FAIL);
    EXPECT_NE(several.error.find("003A, 003B"), std::string::npos) << several.error;
    const auto upserted = judge(RECSYNC_ACTION_UPSERT, 200, R"({"id":"003000000000002AAA","success":true,"errors":[],"created":false})");
    EXPECT_EQ(upserted.external_id, "003000000000002AAA");

    const auto spent = judge(RECSYNC_ACTION_CREATE, 403, R"([{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}])",
                             {{"Sforce-Limit-Info", "api-usage=15001/15000"}});
    EXPECT_EQ(spent.kind, RECSYNC_RESULT_RETRY);
    EXPECT_EQ(spent.retry_after_ms, 15 * 60'000);
    ASSERT_EQ(spent.rate_limits.size(), 1u);
    EXPECT_EQ(spent.rate_limits[0], (std::vector<int64_t>{15000, 0, 0, 15 * 60'000}));
    const auto usage = judge(RECSYNC_ACTION_UPDATE, 204, "", {{"Sforce-Limit-Info", "api-usage=25/15000"}});
    ASSERT_EQ(usage.rate_limits.size(), 1u);
    EXPECT_EQ(usage.rate_limits[0][1], 14975);

    const auto echoed = judge(RECSYNC_ACTION_UPDATE, 400, std::string(R"([{"message":"bad token )") + kToken + R"(","errorCode":"X"}])");
    EXPECT_EQ(echoed.error.find(kToken), std::string::npos) << "the session token reached an error";

    const auto none = plugin_.parse({RECSYNC_ACTION_FIND, "Lead", "k", "", "{}", kToken}, {200, {}, R"({"totalSize":0,"done":true,"records":[]})", ""});
    EXPECT_EQ(none.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(none.external_id, "");
    const auto two = plugin_.parse({RECSYNC_ACTION_FIND, "Lead", "k", "", "{}", kToken},
                                   {200, {}, R"({"totalSize":2,"done":true,"records":[{"Id":"00Q1"},{"Id":"00Q2"}]})", ""});
    EXPECT_EQ(two.kind, RECSYNC_RESULT_FAIL);

    const auto read = judge(RECSYNC_ACTION_READ, 200, R"({"attributes":{"type":"Contact"},"Id":"003000000000001AAA","Email":"a@b.c"})");
    ASSERT_EQ(read.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(json::parse(read.json_text)["record"], json::parse(R"({"Id":"003000000000001AAA","Email":"a@b.c"})"));
}

TEST_F(SalesforcePlugin, SettingsErrorsNameTheSetting) {
    const auto fails = [&](json extra, const std::string &needle) {
        ProviderHarness p(RECSYNC_PLUGIN_DIR "/salesforce.so");
        const auto o = p.create(config(std::move(extra)));
        EXPECT_NE(o.status, RECSYNC_OK) << needle;
        EXPECT_NE(o.error.find(needle), std::string::npos) << o.error;
    };
    fails({{"api_version", "45.0"}}, "api_version");
    fails({{"objects", {{"Bad-Name", json::object()}}}}, "'Bad-Name' is not an sObject API name");
    fails({{"objects", {{"Contact", {{"fields", {"Email; DROP"}}}}}}}, "objects.Contact.fields");
    fails({{"objects", {{"Contact", {{"lookup_field", "Email"}}}}}}, "not both");
    fails({{"credentials", {{"client_secret", nullptr}}}}, "client_secret_env");
    fails({{"auth", "jwt_bearer"}, {"username", "u@x"}}, "private_key_file");
    fails({{"auth", "jwt_bearer"}, {"username", "u@x"}, {"credentials", {{"private_key", "not a key"}}}}, "not a PEM RSA private key");
    fails({{"auth", "password"}}, "client_credentials or jwt_bearer");
    fails({{"poll_batch_size", 50}}, "poll_batch_size");
}

TEST_F(SalesforcePlugin, TheJwtAssertionIsSignedForTheConfiguredUserAndExpiresSoon) {
    EVP_PKEY *key = EVP_RSA_gen(2048);
    BIO *priv = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(priv, key, nullptr, nullptr, 0, nullptr, nullptr);
    char *data = nullptr;
    const std::string pem(data, static_cast<size_t>(BIO_get_mem_data(priv, &data)));
    BIO_free(priv);
    ProviderHarness p(RECSYNC_PLUGIN_DIR "/salesforce.so");
    ASSERT_EQ(p.create(config({{"auth", "jwt_bearer"}, {"username", "int@example.com"}, {"credentials", {{"private_key", pem}}}})).status, RECSYNC_OK);
    const auto req = p.build_auth();
    ASSERT_EQ(req.status, RECSYNC_OK) << req.error;
    EXPECT_EQ(contract_violations(req), "");
    const std::string assertion = url_decode(req.body.substr(req.body.find("assertion=") + 10));
    const auto d1 = assertion.find('.'), d2 = assertion.rfind('.');
    const auto b64 = [](std::string s) {
        for (auto &c : s) c = c == '-' ? '+' : c == '_' ? '/' : c;
        while (s.size() % 4) s += '=';
        std::string out(s.size(), '\0');
        const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char *>(out.data()), reinterpret_cast<const unsigned char *>(s.data()), static_cast<int>(s.size()));
        out.resize(static_cast<size_t>(n) - std::count(s.end() - 2, s.end(), '='));
        return out;
    };
    const json claims = json::parse(b64(assertion.substr(d1 + 1, d2 - d1 - 1)));
    EXPECT_EQ(json::parse(b64(assertion.substr(0, d1)))["alg"], "RS256");
    EXPECT_EQ(claims["iss"], "consumer-key");
    EXPECT_EQ(claims["sub"], "int@example.com");
    EXPECT_EQ(claims["aud"], "https://login.salesforce.com");
    const int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    EXPECT_GT(claims["exp"].get<int64_t>(), now_s);
    EXPECT_LE(claims["exp"].get<int64_t>(), now_s + 300) << "Salesforce refuses an exp more than a few minutes ahead";
    const std::string sig = b64(assertion.substr(d2 + 1));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EXPECT_EQ(EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key), 1);
    EXPECT_EQ(EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char *>(sig.data()), sig.size(), reinterpret_cast<const unsigned char *>(assertion.data()), d2), 1)
        << "the signature does not verify with the key's public half";
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
}

TEST_F(SalesforcePlugin, ATokenAnswerNamesTheInstanceAndNoLifetime) {
    const auto t = plugin_.parse_auth({200, {}, R"({"access_token":"00D!x","instance_url":"https://acme.my.salesforce.com","id":"https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA","token_type":"Bearer"})", ""});
    ASSERT_EQ(t.status, RECSYNC_OK) << t.error;
    EXPECT_EQ(t.parsed(), json::parse(R"({"access_token":"00D!x","instance_url":"https://acme.my.salesforce.com"})"));
    const auto bad = plugin_.parse_auth({400, {}, R"({"error":"invalid_client","error_description":"invalid client credentials"})", ""});
    EXPECT_NE(bad.status, RECSYNC_OK);
    EXPECT_NE(bad.error.find("invalid_client: invalid client credentials"), std::string::npos) << bad.error;
    EXPECT_EQ(bad.error.find("consumer-secret"), std::string::npos);
}

TEST_F(SalesforcePlugin, APollPageSkipsWhatTheCursorDeliveredAndDropsOurOwnWrites) {
    // The token answer taught the plugin its integration user (005...1AAA).
    ASSERT_EQ(plugin_.parse_auth({200, {}, R"({"access_token":"t","instance_url":"https://x.my.salesforce.com","id":"https://l/id/00D000000000001AAA/005000000000001AAA"})", ""}).status, RECSYNC_OK);
    const std::string row = R"({"attributes":{"type":"Contact"},"Id":"%ID%","IsDeleted":%DEL%,"CreatedDate":"2023-11-14T22:13:20.000+0000","SystemModstamp":"%STAMP%","LastModifiedById":"%BY%","LastName":"L"})";
    const auto make = [&](std::string id, bool del, std::string stamp, std::string by) {
        std::string r = row;
        r.replace(r.find("%ID%"), 4, id);
        r.replace(r.find("%DEL%"), 5, del ? "true" : "false");
        r.replace(r.find("%STAMP%"), 7, stamp);
        r.replace(r.find("%BY%"), 4, by);
        return r;
    };
    const std::string body = R"({"totalSize":4,"done":false,"nextRecordsUrl":"/services/data/v60.0/queryAll/01gX-200","records":[)" +
                             make("003A", false, "2023-11-14T22:13:20.000+0000", "005000000000002AAA") + "," +  // delivered before
                             make("003B", false, "2023-11-14T22:13:20.000+0000", "005000000000002AAA") + "," +  // new, created
                             make("003C", false, "2023-11-14T22:13:21.500+0000", "005000000000001AAA") + "," +  // ours
                             make("003D", true, "2023-11-14T22:13:22.250+0000", "005000000000002AAA") + "]}";
    const auto page = plugin_.parse_poll("Contact", {200, {}, body, R"({"s":1700000000000,"ms":1700000000000,"id":"003A"})"});
    ASSERT_EQ(page.status, RECSYNC_OK) << page.error;
    const json p = page.parsed();
    ASSERT_EQ(p["events"].size(), 2u) << p.dump();
    EXPECT_EQ(p["events"][0]["external_id"], "003B");
    EXPECT_EQ(p["events"][0]["event"], "created");
    EXPECT_EQ(p["events"][0]["id"], "sf:003B:1700000000000");
    EXPECT_FALSE(p["events"][0]["data"].contains("attributes"));
    EXPECT_EQ(p["events"][1]["external_id"], "003D");
    EXPECT_EQ(p["events"][1]["event"], "deleted");
    EXPECT_TRUE(p["more"].get<bool>());
    EXPECT_EQ(json::parse(p["cursor"].get<std::string>()), json::parse(R"({"s":1700000002000,"ms":1700000002250,"id":"003D","next":"/services/data/v60.0/queryAll/01gX-200"})"));

    const auto expired = plugin_.parse_poll("Contact", {400, {}, R"([{"errorCode":"INVALID_QUERY_LOCATOR","message":"invalid query locator"}])", p["cursor"].get<std::string>()});
    ASSERT_EQ(expired.status, RECSYNC_OK) << expired.error;
    EXPECT_EQ(json::parse(expired.parsed()["cursor"].get<std::string>()), json::parse(R"({"s":1700000002000,"ms":1700000002250,"id":"003D"})"));

    const auto probe = plugin_.parse_poll("Contact", {200, {}, R"({"totalSize":1,"done":true,"records":[{"SystemModstamp":"2023-11-14T22:15:00.400+0000"}]})", ""});
    EXPECT_EQ(json::parse(probe.parsed()["cursor"].get<std::string>())["s"], 1700000100000 - 60'000) << "the newest change, less the overlap";
    EXPECT_NE(plugin_.parse_poll("Contact", {500, {}, "oops", R"({"s":1})"}).status, RECSYNC_OK);
}

TEST_F(SalesforcePlugin, TransformKeepsFieldsFlatAndInboundDropsAttributes) {
    const auto in = plugin_.transform(RECSYNC_INBOUND, "Contact", R"({"attributes":{"type":"Contact"},"Id":"003A","Email":"a@b.c"})");
    ASSERT_EQ(in.status, RECSYNC_OK) << in.error;
    EXPECT_EQ(in.parsed(), json::parse(R"({"Id":"003A","Email":"a@b.c"})"));
    EXPECT_EQ(plugin_.transform(RECSYNC_OUTBOUND, "Contact", R"({"Email":{"nested":1}})").status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_EQ(plugin_.transform(RECSYNC_OUTBOUND, "Account", R"({"Name":"x"})").status, RECSYNC_ERR_UNSUPPORTED);
    EXPECT_EQ(plugin_.validate("Contact", R"({"Id":"003A"})").status, RECSYNC_ERR_INVALID_INPUT);
}

}  // namespace

// ---- Batches (ABI 1.6): sObject Collections (composite/sobjects) ----

std::vector<PluginCall> batch_of(recsync_action a, int n) {
    std::vector<PluginCall> calls;
    for (int i = 0; i < n; ++i) {
        char id[24];
        std::snprintf(id, sizeof id, "0030000000000%02dAAA", i);
        const bool has_id = a == RECSYNC_ACTION_UPDATE || a == RECSYNC_ACTION_DELETE;
        calls.push_back({a, "Contact", "key-" + std::to_string(i), has_id ? id : "",
                         a == RECSYNC_ACTION_DELETE ? "" : json{{"LastName", "L" + std::to_string(i)}}.dump(), kToken});
    }
    return calls;
}

TEST_F(SalesforcePlugin, DescribeDeclaresCollectionBatchesWhereCreatesStayIdempotent) {
    const auto d = plugin_.describe();
    ASSERT_EQ(d.status, RECSYNC_OK) << d.error;
    const json objects = d.parsed()["objects"];
    for (const char *action : {"create", "update", "upsert", "delete"}) EXPECT_EQ(objects["Contact"]["batch"][action], 200) << action;
    EXPECT_FALSE(objects["Contact"]["batch"].contains("read"));
    // Lead has no External ID field: a batched create whose answer was lost could not be
    // retried as an upsert, so creates (and upserts) of Leads go one by one.
    EXPECT_EQ(objects["Lead"]["batch"]["update"], 200);
    EXPECT_EQ(objects["Lead"]["batch"]["delete"], 200);
    EXPECT_FALSE(objects["Lead"]["batch"].contains("create"));
    EXPECT_FALSE(objects["Lead"]["batch"].contains("upsert"));
    EXPECT_NE(plugin_.provider().capabilities & RECSYNC_CAP_BATCH, 0u);
}

TEST_F(SalesforcePlugin, CollectionRequestsAreOnesTheContractDescribes) {
    const auto create = plugin_.build_batch(batch_of(RECSYNC_ACTION_CREATE, 3));
    ASSERT_EQ(create.status, RECSYNC_OK) << create.error;
    EXPECT_EQ(create.method, "POST");
    EXPECT_EQ(create.path, "/services/data/v60.0/composite/sobjects");
    EXPECT_EQ(contract_violations(create), "");
    const json cb = json::parse(create.body);
    EXPECT_EQ(cb["allOrNone"], false);
    ASSERT_EQ(cb["records"].size(), 3u);
    EXPECT_EQ(cb["records"][2]["attributes"]["type"], "Contact");
    EXPECT_EQ(cb["records"][2]["Recsync_Key__c"], "key-2") << "each record's key in the External ID field, so a retry can upsert";
    EXPECT_EQ(cb["records"][2]["LastName"], "L2");

    const auto update = plugin_.build_batch(batch_of(RECSYNC_ACTION_UPDATE, 2));
    ASSERT_EQ(update.status, RECSYNC_OK) << update.error;
    EXPECT_EQ(update.method, "PATCH");
    EXPECT_EQ(update.path, "/services/data/v60.0/composite/sobjects");
    EXPECT_EQ(contract_violations(update), "");
    EXPECT_EQ(json::parse(update.body)["records"][1]["id"], "003000000000001AAA");

    auto upserts = batch_of(RECSYNC_ACTION_UPSERT, 2);
    upserts[1].payload = R"({"LastName":"M","Recsync_Key__c":"own-key"})";
    const auto upsert = plugin_.build_batch(upserts);
    ASSERT_EQ(upsert.status, RECSYNC_OK) << upsert.error;
    EXPECT_EQ(upsert.path, "/services/data/v60.0/composite/sobjects/Contact/Recsync_Key__c");
    EXPECT_EQ(contract_violations(upsert), "");
    const json ub = json::parse(upsert.body);
    EXPECT_EQ(ub["records"][0]["Recsync_Key__c"], "key-0");
    EXPECT_EQ(ub["records"][1]["Recsync_Key__c"], "own-key");

    const auto del = plugin_.build_batch(batch_of(RECSYNC_ACTION_DELETE, 3));
    ASSERT_EQ(del.status, RECSYNC_OK) << del.error;
    EXPECT_EQ(del.path, "/services/data/v60.0/composite/sobjects?ids=003000000000000AAA,003000000000001AAA,003000000000002AAA&allOrNone=false");
    EXPECT_EQ(contract_violations(del), "");

    const auto full = plugin_.build_batch(batch_of(RECSYNC_ACTION_CREATE, 200));
    EXPECT_EQ(contract_violations(full), "");
    for (const auto *r : {&create, &update, &upsert, &del}) {
        ASSERT_NE(r->header("Authorization"), nullptr);
        EXPECT_EQ(r->header("Authorization")->flags, RECSYNC_HEADER_SECRET);
        ASSERT_NE(r->header("Sforce-Call-Options"), nullptr);
    }
    // The check itself can fail: more than 200 records, a record without its type.
    EXPECT_NE(contract_violations(plugin_.build_batch(batch_of(RECSYNC_ACTION_CREATE, 201))), "");
    PluginOutput forged = create;
    json fb = cb;
    fb["records"][0].erase("attributes");
    forged.body = fb.dump();
    EXPECT_NE(contract_violations(forged), "");

    // Lead has no External ID field: no batched create (the host sends them one by one).
    std::vector<PluginCall> leads = {{RECSYNC_ACTION_CREATE, "Lead", "k1", "", R"({"LastName":"A"})", kToken},
                                     {RECSYNC_ACTION_CREATE, "Lead", "k2", "", R"({"LastName":"B"})", kToken}};
    EXPECT_NE(plugin_.build_batch(leads).status, RECSYNC_OK);
}

TEST_F(SalesforcePlugin, CollectionAnswersGiveEachRecordItsOwnVerdictInOrder) {
    const auto creates = batch_of(RECSYNC_ACTION_CREATE, 3);
    auto o = plugin_.parse_batch(creates, {200, {{"Sforce-Limit-Info", "api-usage=30/15000"}},
                                           R"([{"id":"003000000000010AAA","success":true,"errors":[]},{"id":"003000000000011AAA","success":true,"errors":[]},{"id":"003000000000012AAA","success":true,"errors":[]}])", ""});
    ASSERT_EQ(o.status, RECSYNC_OK) << o.error;
    EXPECT_FALSE(o.has_result) << "no verdict for the call as a whole";
    for (int i = 0; i < 3; ++i) {
        EXPECT_TRUE(o.items[i].has_result);
        EXPECT_EQ(o.items[i].kind, RECSYNC_RESULT_OK);
        EXPECT_EQ(o.items[i].external_id, "00300000000001" + std::to_string(i) + "AAA");
    }
    ASSERT_EQ(o.rate_limits.size(), 1u);
    EXPECT_EQ(o.rate_limits[0][1], 14970);

    // Mixed: the second refused (its own message), the third locked (retried).
    o = plugin_.parse_batch(creates, {200, {},
                                      R"([{"id":"003000000000010AAA","success":true,"errors":[]},)"
                                      R"({"success":false,"errors":[{"statusCode":"REQUIRED_FIELD_MISSING","message":"Required fields are missing: [LastName]","fields":["LastName"]}]},)"
                                      R"({"success":false,"errors":[{"statusCode":"UNABLE_TO_LOCK_ROW","message":"unable to obtain exclusive access to this record","fields":[]}]}])", ""});
    ASSERT_EQ(o.status, RECSYNC_OK) << o.error;
    EXPECT_EQ(o.items[0].kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(o.items[1].kind, RECSYNC_RESULT_FAIL);
    EXPECT_NE(o.items[1].error.find("REQUIRED_FIELD_MISSING: Required fields are missing: [LastName] (fields: LastName)"), std::string::npos) << o.items[1].error;
    EXPECT_EQ(o.items[2].kind, RECSYNC_RESULT_RETRY);
    EXPECT_NE(o.items[2].error.find("UNABLE_TO_LOCK_ROW"), std::string::npos) << o.items[2].error;

    // Upserts: "created" either way, ids in order.
    const auto upserts = batch_of(RECSYNC_ACTION_UPSERT, 2);
    o = plugin_.parse_batch(upserts, {200, {}, R"([{"id":"003000000000020AAA","success":true,"errors":[],"created":true},{"id":"003000000000021AAA","success":true,"errors":[],"created":false}])", ""});
    EXPECT_EQ(o.items[0].external_id, "003000000000020AAA");
    EXPECT_EQ(o.items[1].external_id, "003000000000021AAA");

    // Updates: one record deleted in the org meanwhile fails alone.
    const auto updates = batch_of(RECSYNC_ACTION_UPDATE, 2);
    o = plugin_.parse_batch(updates, {200, {}, R"([{"id":"003000000000000AAA","success":true,"errors":[]},{"success":false,"errors":[{"statusCode":"ENTITY_IS_DELETED","message":"entity is deleted","fields":[]}]}])", ""});
    EXPECT_EQ(o.items[0].kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(o.items[0].external_id, "003000000000000AAA");
    EXPECT_EQ(o.items[1].kind, RECSYNC_RESULT_FAIL);
    EXPECT_EQ(o.items[1].status, 404);
    EXPECT_NE(o.items[1].error.find("ENTITY_IS_DELETED: entity is deleted"), std::string::npos) << o.items[1].error;

    // Deletes: a record already gone is done.
    const auto deletes = batch_of(RECSYNC_ACTION_DELETE, 2);
    o = plugin_.parse_batch(deletes, {200, {}, R"([{"id":"003000000000000AAA","success":true,"errors":[]},{"id":"003000000000001AAA","success":false,"errors":[{"statusCode":"ENTITY_IS_DELETED","message":"entity is deleted","fields":[]}]}])", ""});
    EXPECT_EQ(o.items[0].kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(o.items[1].kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(o.items[1].external_id, "003000000000001AAA");

    // A short answer: the records it does not name are retried, not taken as done.
    o = plugin_.parse_batch(creates, {200, {}, R"([{"id":"003000000000010AAA","success":true,"errors":[]}])", ""});
    EXPECT_EQ(o.items[0].kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(o.items[2].kind, RECSYNC_RESULT_RETRY);
}

TEST_F(SalesforcePlugin, CollectionCallsRefusedAsAWholeAreJudgedAsSingleCalls) {
    const auto creates = batch_of(RECSYNC_ACTION_CREATE, 2);
    auto o = plugin_.parse_batch(creates, {401, {}, R"([{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}])", ""});
    ASSERT_EQ(o.status, RECSYNC_OK) << o.error;
    EXPECT_TRUE(o.has_result);
    EXPECT_EQ(o.kind, RECSYNC_RESULT_RETRY);
    for (const auto &item : o.items) EXPECT_FALSE(item.has_result);

    o = plugin_.parse_batch(creates, {403, {{"Sforce-Limit-Info", "api-usage=15000/15000"}}, R"([{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}])", ""});
    EXPECT_EQ(o.kind, RECSYNC_RESULT_RETRY);
    EXPECT_GT(o.retry_after_ms, 0);
    ASSERT_FALSE(o.rate_limits.empty());
    EXPECT_EQ(o.rate_limits[0][1], 0);

    o = plugin_.parse_batch(creates, {503, {{"Retry-After", "7"}}, "<html>down</html>", ""});
    EXPECT_EQ(o.kind, RECSYNC_RESULT_RETRY);
    EXPECT_EQ(o.retry_after_ms, 7000);

    o = plugin_.parse_batch(creates, {400, {}, R"([{"message":"Json Deserialization failed )" + std::string(kToken) + R"(","errorCode":"JSON_PARSER_ERROR"}])", ""});
    EXPECT_EQ(o.kind, RECSYNC_RESULT_FAIL);
    EXPECT_EQ(o.error.find(kToken), std::string::npos) << "the token never reaches an error";

    // Garbage with a 200: no per-record verdicts; the call is retried as a whole.
    o = plugin_.parse_batch(creates, {200, {}, "<html>not json</html>", ""});
    ASSERT_EQ(o.status, RECSYNC_OK) << o.error;
    EXPECT_TRUE(o.has_result);
    EXPECT_EQ(o.kind, RECSYNC_RESULT_RETRY);
    for (const auto &item : o.items) EXPECT_FALSE(item.has_result);
    o = plugin_.parse_batch(creates, {200, {}, R"([7, "x"])", ""});
    EXPECT_EQ(o.items[0].kind, RECSYNC_RESULT_RETRY);
    EXPECT_EQ(o.items[1].kind, RECSYNC_RESULT_RETRY);
}
