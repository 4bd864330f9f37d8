// The built-in http connector (System A's service as a target), through its descriptor as
// the engine calls it: requests, signatures, verdicts, and the settings it refuses.
#include "connectors/http/http_target.hpp"
#include "plugin/provider_instance.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

namespace {

using recsync::plugin::CallInput;
using recsync::plugin::Header;
using recsync::plugin::PluginError;
using recsync::plugin::ProviderInstance;
using recsync::plugin::ProviderLibrary;
using recsync::plugin::ResponseView;
namespace http = recsync::connectors::http;
using json = nlohmann::json;

std::unique_ptr<ProviderInstance> instance(const json &config) {
    return ProviderInstance::create(ProviderLibrary::builtin(http::descriptor()), config);
}

const json kConfig = {{"base_url", "https://erp.internal:8443/api/v2/"}, {"objects", {"contacts"}}, {"credentials", {{"signing_secret", "s3cret"}}}};

const Header *find(const std::vector<Header> &hs, const std::string &name) {
    for (const auto &h : hs)
        if (h.name == name) return &h;
    return nullptr;
}

TEST(HttpTarget, PutsTheRecordUnderItsKeySigned) {
    const auto p = instance(kConfig);
    const std::string payload = R"({"email":"a@b.c"})";
    const auto req = p->build_request(CallInput{RECSYNC_ACTION_UPSERT, "contacts", "a/1 x", "", payload, ""});
    EXPECT_EQ(req.method, "PUT");
    EXPECT_EQ(req.path, "/contacts/a%2F1%20x") << "a key never adds a path segment";
    EXPECT_EQ(req.body, payload);
    const auto *ts = find(req.headers, "X-Recsync-Timestamp");
    const auto *sig = find(req.headers, "X-Recsync-Signature");
    ASSERT_TRUE(ts && sig);
    // Over the path System A sees: the base URL's own path first.
    EXPECT_EQ(sig->value, http::signature("s3cret", ts->value, "PUT", "/api/v2/contacts/a%2F1%20x", payload));
    EXPECT_NE(sig->value, http::signature("other", ts->value, "PUT", "/api/v2/contacts/a%2F1%20x", payload));
    EXPECT_EQ(sig->value.rfind("v1=", 0), 0u);
    EXPECT_EQ(sig->value.size(), 3u + 64u);
    // A create and an update are the same PUT; a delete has no body.
    EXPECT_EQ(p->build_request(CallInput{RECSYNC_ACTION_CREATE, "contacts", "k", "", payload, ""}).method, "PUT");
    const auto del = p->build_request(CallInput{RECSYNC_ACTION_DELETE, "contacts", "k", "k", "", ""});
    EXPECT_EQ(del.method, "DELETE");
    EXPECT_TRUE(del.body.empty());
    EXPECT_THROW(p->build_request(CallInput{RECSYNC_ACTION_UPSERT, "accounts", "k", "", payload, ""}), PluginError);
}

TEST(HttpTarget, VerdictsFollowTheStatus) {
    const auto p = instance(kConfig);
    const CallInput put{RECSYNC_ACTION_UPSERT, "contacts", "k", "", "{}", ""}, del{RECSYNC_ACTION_DELETE, "contacts", "k", "k", "", ""};
    const std::vector<Header> none;
    auto judge = [&](const CallInput &c, int status, const std::string &body = "") { return p->parse_response(c, ResponseView{status, &none, body}); };
    const auto ok = judge(put, 200);
    EXPECT_EQ(ok.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(ok.external_id, "k") << "System A keeps the record under our key";
    EXPECT_EQ(judge(del, 404).kind, RECSYNC_RESULT_OK) << "already gone";
    EXPECT_EQ(judge(put, 404).kind, RECSYNC_RESULT_FAIL);
    EXPECT_EQ(judge(put, 429).kind, RECSYNC_RESULT_RETRY);
    EXPECT_EQ(judge(put, 503).kind, RECSYNC_RESULT_RETRY);
    const auto refused = judge(put, 422, "email missing\x01");
    EXPECT_EQ(refused.kind, RECSYNC_RESULT_FAIL);
    EXPECT_NE(refused.error.find("System A returned 422: email missing?"), std::string::npos) << refused.error;
}

TEST(HttpTarget, DescribesItsObjectsAsUpsertedAndRefusesIncompleteSettings) {
    const auto d = instance(kConfig)->describe();
    EXPECT_EQ(d["objects"]["contacts"]["create_retry"], "upsert");
    try {
        instance({{"base_url", "http://x"}, {"objects", {"contacts"}}});
        FAIL() << "no signing secret accepted";
    } catch (const PluginError &e) {
        EXPECT_NE(std::string(e.what()).find("signing_secret_env"), std::string::npos) << e.what();
    }
    EXPECT_THROW(instance({{"base_url", "http://x"}, {"credentials", {{"signing_secret", "s"}}}}), PluginError);
    EXPECT_THROW(instance({{"base_url", "http://x"}, {"objects", {"a/b"}}, {"credentials", {{"signing_secret", "s"}}}}), PluginError);
}

}  // namespace
