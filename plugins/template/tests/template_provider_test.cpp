// Tests of the built template.so, driven only through the C ABI as the engine drives it:
// dlopen, the entry function, and a host_api of our own that records every output.
// When you copy the template, keep the harness (up to "entry and descriptor") and rewrite
// the tests for your API.
#include <recsync/provider_abi.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>

#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::string_view kToken = "tok-SECRETSECRET";

// ---- host side: records what the plugin outputs ------------------------------------------

struct HeaderOut {
    std::string name, value;
    uint32_t flags = 0;
};

struct Output {
    bool has_json = false;
    std::string json_text, error;
    bool has_request = false;
    std::string method, path, body;
    std::vector<HeaderOut> headers;
    bool has_result = false;
    recsync_result_kind kind = RECSYNC_RESULT_OK;
    std::string external_id;
    int64_t retry_after_ms = -1;

    json parsed() const { return json::parse(json_text); }
    const HeaderOut *header(std::string_view name) const {
        for (const auto &h : headers)
            if (h.name == name) return &h;
        return nullptr;
    }
};

std::string to_string(recsync_str s) { return s.ptr ? std::string(s.ptr, s.len) : std::string(); }
recsync_str rs(std::string_view s) { return recsync_str{s.data(), s.size()}; }
Output &out_of(recsync_output *o) { return *reinterpret_cast<Output *>(o); }
recsync_output *as_out(Output &o) { return reinterpret_cast<recsync_output *>(&o); }

const recsync_host_api kHost = {
    sizeof(recsync_host_api),
    RECSYNC_ABI_VERSION,
    [](recsync_output *o, recsync_str j) {
        out_of(o).has_json = true;
        out_of(o).json_text = to_string(j);
    },
    [](recsync_output *o, recsync_str m) { out_of(o).error = to_string(m); },
    [](recsync_output *o, recsync_str method, recsync_str path, recsync_str body) {
        auto &out = out_of(o);
        out.has_request = true;
        out.method = to_string(method);
        out.path = to_string(path);
        out.body = to_string(body);
    },
    [](recsync_output *o, recsync_str name, recsync_str value, uint32_t flags) {
        out_of(o).headers.push_back({to_string(name), to_string(value), flags});
    },
    [](recsync_output *o, recsync_result_kind kind, recsync_str id, int64_t after) {
        auto &out = out_of(o);
        out.has_result = true;
        out.kind = kind;
        out.external_id = to_string(id);
        out.retry_after_ms = after;
    },
    [](const recsync_host_api *, int, recsync_str) {},
    nullptr,  // set_rate_limit (ABI 1.1): the template reports no rate limits
};

struct Outcome {
    recsync_status status = RECSYNC_ERR_INTERNAL;
    Output out;
};

struct CallSpec {
    recsync_action action = RECSYNC_ACTION_CREATE;
    std::string external_id;
    std::string payload;
    std::string object = "records";
    std::string token = std::string(kToken);
};

std::string read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// ---- the plugin, loaded once per test binary ---------------------------------------------

class TemplateTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        handle_ = dlopen(RECSYNC_PLUGIN_DIR "/template.so", RTLD_NOW | RTLD_LOCAL);
        ASSERT_NE(handle_, nullptr) << dlerror();
        entry_ = reinterpret_cast<recsync_entry_fn>(dlsym(handle_, RECSYNC_ENTRY_SYMBOL));
        ASSERT_NE(entry_, nullptr) << dlerror();
        provider_ = entry_(RECSYNC_ABI_VERSION, RECSYNC_ABI_VERSION);
        ASSERT_NE(provider_, nullptr);
    }

    void SetUp() override {
        ASSERT_NE(provider_, nullptr) << "plugin failed to load";
        const Outcome created = create("{}");
        ASSERT_EQ(created.status, RECSYNC_OK) << created.out.error;
    }

    void TearDown() override {
        for (void *i : instances_) provider_->destroy_instance(i);
        instances_.clear();
    }

    Outcome create(std::string_view config) {
        Outcome o;
        void *inst = nullptr;
        o.status = provider_->create_instance(&kHost, rs(config), as_out(o.out), &inst);
        if (o.status == RECSYNC_OK) {
            instances_.push_back(inst);
            if (!instance_) instance_ = inst;
        }
        return o;
    }

    Outcome describe() {
        Outcome o;
        o.status = provider_->describe(instance_, as_out(o.out));
        return o;
    }

    Outcome transform(std::string_view record, recsync_direction dir = RECSYNC_OUTBOUND, std::string_view object = "records") {
        Outcome o;
        o.status = provider_->transform(instance_, dir, rs(object), rs(record), as_out(o.out));
        return o;
    }

    Outcome validate(std::string_view payload, std::string_view object = "records") {
        Outcome o;
        o.status = provider_->validate(instance_, rs(object), rs(payload), as_out(o.out));
        return o;
    }

    static recsync_call to_call(const CallSpec &c) {
        return recsync_call{sizeof(recsync_call), c.action, rs(c.object), rs("crm-a:42"), rs(c.external_id), rs(c.payload), rs(c.token)};
    }

    Outcome build(const CallSpec &c) {
        Outcome o;
        const recsync_call call = to_call(c);
        o.status = provider_->build_request(instance_, &call, as_out(o.out));
        return o;
    }

    Outcome parse(const CallSpec &c, int status, std::string_view body, const std::vector<std::pair<std::string, std::string>> &headers = {}) {
        Outcome o;
        const recsync_call call = to_call(c);
        std::vector<recsync_header> hs;
        for (const auto &[n, v] : headers) hs.push_back({rs(n), rs(v)});
        const recsync_response resp{sizeof(recsync_response), status, hs.data(), hs.size(), rs(body)};
        o.status = provider_->parse_response(instance_, &call, &resp, as_out(o.out));
        return o;
    }

    static inline void *handle_ = nullptr;
    static inline recsync_entry_fn entry_ = nullptr;
    static inline const recsync_provider *provider_ = nullptr;
    void *instance_ = nullptr;
    std::vector<void *> instances_;
};

const std::string kRecord = R"({"name":"Ada","age":36,"active":true,"note":null})";

CallSpec create_call(std::string payload = kRecord) { return {RECSYNC_ACTION_CREATE, "", std::move(payload)}; }
CallSpec update_call(std::string id = "r-1", std::string payload = kRecord) { return {RECSYNC_ACTION_UPDATE, std::move(id), std::move(payload)}; }
CallSpec delete_call(std::string id = "r-1") { return {RECSYNC_ACTION_DELETE, std::move(id), ""}; }
CallSpec read_call(std::string id = "r-1") { return {RECSYNC_ACTION_READ, std::move(id), ""}; }

// ---- entry and descriptor ----------------------------------------------------------------

TEST_F(TemplateTest, DescriptorIsSane) {
    EXPECT_EQ(provider_->struct_size, sizeof(recsync_provider));
    EXPECT_EQ(RECSYNC_ABI_MAJOR_OF(provider_->abi_version), RECSYNC_ABI_MAJOR);
    EXPECT_STREQ(provider_->id, "template");  // must equal the file stem: template.so
    EXPECT_STREQ(provider_->version, "0.1.0");
    EXPECT_EQ(provider_->capabilities, 0u);
    EXPECT_NE(provider_->parse_response, nullptr);
    EXPECT_EQ(provider_->parse_webhook, nullptr);
    EXPECT_EQ(provider_->build_poll_request, nullptr);
    EXPECT_EQ(provider_->build_auth_request, nullptr);
}

TEST_F(TemplateTest, EntryRefusesHostsOfAnotherMajor) {
    EXPECT_EQ(entry_(RECSYNC_ABI_MAKE(RECSYNC_ABI_MAJOR + 1, 0), RECSYNC_ABI_MAKE(RECSYNC_ABI_MAJOR + 1, 9)), nullptr);
    EXPECT_EQ(entry_(RECSYNC_ABI_MAKE(0, 0), RECSYNC_ABI_MAKE(0, 9)), nullptr);
}

// Hot reload needs dlclose to really unmap the plugin. A copy under another path gets a
// handle of its own, independent of the suite's.
TEST_F(TemplateTest, PluginUnloadsOnDlclose) {
    const std::string copy = ::testing::TempDir() + "template_unload_" + std::to_string(::getpid()) + ".so";
    std::ofstream(copy, std::ios::binary) << read_file(RECSYNC_PLUGIN_DIR "/template.so");
    void *h = dlopen(copy.c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(h, nullptr) << dlerror();
    const auto entry = reinterpret_cast<recsync_entry_fn>(dlsym(h, RECSYNC_ENTRY_SYMBOL));
    ASSERT_NE(entry, nullptr);
    const recsync_provider *p = entry(RECSYNC_ABI_VERSION, RECSYNC_ABI_VERSION);
    ASSERT_NE(p, nullptr);
    Output out;
    void *inst = nullptr;
    ASSERT_EQ(p->create_instance(&kHost, rs("{}"), as_out(out), &inst), RECSYNC_OK);
    EXPECT_EQ(p->describe(inst, as_out(out)), RECSYNC_OK);
    p->destroy_instance(inst);
    EXPECT_EQ(dlclose(h), 0);
    EXPECT_EQ(dlopen(copy.c_str(), RTLD_NOW | RTLD_NOLOAD), nullptr) << "template.so stays mapped after dlclose";
    std::remove(copy.c_str());
}

// ---- configuration and describe ----------------------------------------------------------

TEST_F(TemplateTest, ConfigMustBeAnObjectWithObjectSettings) {
    EXPECT_EQ(create("[1]").status, RECSYNC_ERR_CONFIG);
    const Outcome o = create(R"({"settings": 3})");
    EXPECT_EQ(o.status, RECSYNC_ERR_CONFIG);
    EXPECT_THAT(o.out.error, HasSubstr("settings"));
    EXPECT_EQ(create(R"({"base_url": "https://api.example.com", "connection": "c", "settings": {}})").status, RECSYNC_OK);
}

TEST_F(TemplateTest, DescribeListsRecordsWithTheShippedSchema) {
    const Outcome o = describe();
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    const json d = o.out.parsed();
    ASSERT_EQ(d["objects"].size(), 1u);
    EXPECT_EQ(d["objects"]["records"]["schema"], json::parse(read_file(TEMPLATE_SCHEMA_DIR "/records.json")));
    EXPECT_GT(d["rate_limit"]["per_second"].get<int>(), 0);
}

// ---- transform and validate --------------------------------------------------------------

TEST_F(TemplateTest, TransformPassesFlatObjectsThroughBothWays) {
    for (const auto dir : {RECSYNC_OUTBOUND, RECSYNC_INBOUND}) {
        const Outcome o = transform(kRecord, dir);
        ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
        EXPECT_EQ(o.out.parsed(), json::parse(kRecord));
    }
}

TEST_F(TemplateTest, TransformRejectsNestedValuesNonObjectsAndBrokenJson) {
    Outcome o = transform(R"({"address": {"city": "Paris"}})");
    EXPECT_EQ(o.status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_THAT(o.out.error, HasSubstr("'address'"));
    EXPECT_EQ(transform(R"({"tags": []})").status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_EQ(transform("[1,2]").status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_EQ(transform("{not json").status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_EQ(transform("{}", static_cast<recsync_direction>(7)).status, RECSYNC_ERR_UNSUPPORTED);
}

TEST_F(TemplateTest, UnknownObjectsAreUnsupported) {
    EXPECT_EQ(transform("{}", RECSYNC_OUTBOUND, "contacts").status, RECSYNC_ERR_UNSUPPORTED);
    EXPECT_EQ(validate("{}", "contacts").status, RECSYNC_ERR_UNSUPPORTED);
    CallSpec c = create_call();
    c.object = "contacts";
    EXPECT_EQ(build(c).status, RECSYNC_ERR_UNSUPPORTED);
}

TEST_F(TemplateTest, ValidateRequiresAnObject) {
    EXPECT_EQ(validate(kRecord).status, RECSYNC_OK);
    EXPECT_EQ(validate("{}").status, RECSYNC_OK);
    const Outcome o = validate("[]");
    EXPECT_EQ(o.status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_THAT(o.out.error, HasSubstr("object"));
    EXPECT_EQ(validate("\x01\x02garbage").status, RECSYNC_ERR_INVALID_INPUT);
}

// ---- build_request -----------------------------------------------------------------------

TEST_F(TemplateTest, BuildCreatePostsTheRecord) {
    const Outcome o = build(create_call());
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    EXPECT_EQ(o.out.method, "POST");
    EXPECT_EQ(o.out.path, "/records");
    EXPECT_EQ(json::parse(o.out.body), json::parse(kRecord));
    ASSERT_NE(o.out.header("Content-Type"), nullptr);
    EXPECT_EQ(o.out.header("Content-Type")->value, "application/json");
}

TEST_F(TemplateTest, BuildUpdateDeleteAndReadAddressTheRecord) {
    Outcome o = build(update_call());
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    EXPECT_EQ(o.out.method + " " + o.out.path, "PATCH /records/r-1");
    EXPECT_EQ(json::parse(o.out.body), json::parse(kRecord));
    o = build(delete_call());
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    EXPECT_EQ(o.out.method + " " + o.out.path, "DELETE /records/r-1");
    EXPECT_EQ(o.out.body, "");
    EXPECT_EQ(o.out.header("Content-Type"), nullptr);
    o = build(read_call());
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    EXPECT_EQ(o.out.method + " " + o.out.path, "GET /records/r-1");
}

TEST_F(TemplateTest, BuildNeedsTheExternalIdAndPercentEncodesIt) {
    for (const auto &c : {update_call(""), delete_call(""), read_call("")}) {
        const Outcome o = build(c);
        EXPECT_EQ(o.status, RECSYNC_ERR_INVALID_INPUT);
        EXPECT_FALSE(o.out.error.empty());
    }
    EXPECT_EQ(build(read_call("a/b?x=1 %")).out.path, "/records/a%2Fb%3Fx%3D1%20%25");
}

TEST_F(TemplateTest, BuildRejectsUpsertsAndBadPayloads) {
    EXPECT_EQ(build({RECSYNC_ACTION_UPSERT, "", kRecord}).status, RECSYNC_ERR_UNSUPPORTED);
    EXPECT_EQ(build(create_call("{broken")).status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_EQ(build(create_call("[1]")).status, RECSYNC_ERR_INVALID_INPUT);
}

TEST_F(TemplateTest, TheTokenGoesOnlyIntoASecretHeader) {
    Outcome o = build(create_call());
    const HeaderOut *auth = o.out.header("Authorization");
    ASSERT_NE(auth, nullptr);
    EXPECT_EQ(auth->value, "Bearer " + std::string(kToken));
    EXPECT_EQ(auth->flags, RECSYNC_HEADER_SECRET);
    EXPECT_THAT(o.out.path + o.out.body, Not(HasSubstr(std::string(kToken))));

    CallSpec no_token = create_call();
    no_token.token = "";
    EXPECT_EQ(build(no_token).out.header("Authorization"), nullptr);

    CallSpec injecting = create_call();
    injecting.token = "abc\r\nX-Evil: 1";
    o = build(injecting);
    EXPECT_EQ(o.status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_THAT(o.out.error, Not(HasSubstr("abc")));
}

// ---- parse_response ----------------------------------------------------------------------

TEST_F(TemplateTest, ParseCreateTakesTheIdFromTheBody) {
    Outcome o = parse(create_call(), 201, R"({"id": "r-9", "name": "Ada"})");
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    ASSERT_TRUE(o.out.has_result);
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(o.out.external_id, "r-9");
    o = parse(create_call(), 200, R"({"id": 12345})");
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(o.out.external_id, "12345");
}

TEST_F(TemplateTest, ParseCreateWithoutAnIdFails) {
    for (const char *body : {"{}", "", "<html>", R"({"id": ""})", R"({"id": null})"}) {
        const Outcome o = parse(create_call(), 201, body);
        ASSERT_EQ(o.status, RECSYNC_OK) << body;
        EXPECT_EQ(o.out.kind, RECSYNC_RESULT_FAIL) << body;
        EXPECT_THAT(o.out.error, HasSubstr("id")) << body;
    }
}

TEST_F(TemplateTest, ParseOtherSuccessesKeepTheKnownId) {
    for (const auto &c : {update_call(), delete_call(), read_call()}) {
        const Outcome o = parse(c, 204, "");
        ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
        EXPECT_EQ(o.out.kind, RECSYNC_RESULT_OK);
        EXPECT_EQ(o.out.external_id, "r-1");
    }
    EXPECT_EQ(parse(read_call(), 200, R"({"id": "r-2"})").out.external_id, "r-2");
}

TEST_F(TemplateTest, Parse429And5xxRetryAfterRetryAfterSeconds) {
    Outcome o = parse(create_call(), 429, "slow down", {{"retry-after", " 7 "}});
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_RETRY);
    EXPECT_EQ(o.out.retry_after_ms, 7000);
    EXPECT_THAT(o.out.error, HasSubstr("429"));
    o = parse(create_call(), 503, "", {{"Retry-After", "2"}});
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_RETRY);
    EXPECT_EQ(o.out.retry_after_ms, 2000);
    for (int status : {500, 502, 599}) {
        o = parse(update_call(), status, "<html>oops</html>");
        EXPECT_EQ(o.out.kind, RECSYNC_RESULT_RETRY) << status;
        EXPECT_EQ(o.out.retry_after_ms, 0) << status;
    }
    // An HTTP-date: the time until then (a date in the past: now).
    const std::time_t in_ten_s = std::time(nullptr) + 10;
    std::tm tm{};
    gmtime_r(&in_ten_s, &tm);
    char date[64];
    std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);  // the C locale: English names
    const int64_t wait = parse(create_call(), 503, "", {{"Retry-After", date}}).out.retry_after_ms;
    EXPECT_GT(wait, 8000) << date;
    EXPECT_LE(wait, 10000) << date;
    EXPECT_EQ(parse(create_call(), 429, "", {{"Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT"}}).out.retry_after_ms, 0);
    // Unreadable: the host's backoff decides.
    EXPECT_EQ(parse(create_call(), 429, "", {{"Retry-After", "-5"}}).out.retry_after_ms, 0);
    EXPECT_EQ(parse(create_call(), 429, "", {{"Retry-After", "Sunday, 06-Nov-94 08:49:37 GMT"}}).out.retry_after_ms, 0);
    // Absurd values are capped at a day.
    EXPECT_EQ(parse(create_call(), 429, "", {{"Retry-After", "99999999999999999999999"}}).out.retry_after_ms, 24LL * 3600 * 1000);
}

TEST_F(TemplateTest, Parse4xxFailsWithTheBodyText) {
    for (int status : {400, 401, 404, 409, 422}) {
        const Outcome o = parse(create_call(), status, R"({"error":"name is required"})");
        ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
        EXPECT_EQ(o.out.kind, RECSYNC_RESULT_FAIL) << status;
        EXPECT_THAT(o.out.error, HasSubstr(std::to_string(status)));
        EXPECT_THAT(o.out.error, HasSubstr("name is required"));
    }
}

TEST_F(TemplateTest, ParseErrorTextIsPrintableShortAndNeverHoldsTheToken) {
    Outcome o = parse(create_call(), 400, "\xff\xfe\x01 bad");
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_FAIL);
    EXPECT_THAT(o.out.error, HasSubstr("??? bad"));
    o = parse(create_call(), 401, "invalid token " + std::string(kToken));
    EXPECT_THAT(o.out.error, Not(HasSubstr(std::string(kToken))));
    EXPECT_THAT(o.out.error, HasSubstr("[redacted]"));
    o = parse(create_call(), 400, std::string(10000, 'x'));
    EXPECT_LT(o.out.error.size(), 400u);
}

TEST_F(TemplateTest, ParseOddStatusesFail) {
    for (int status : {0, 101, 302, 600}) {
        const Outcome o = parse(create_call(), status, "");
        ASSERT_EQ(o.status, RECSYNC_OK) << status;
        EXPECT_EQ(o.out.kind, RECSYNC_RESULT_FAIL) << status;
        EXPECT_FALSE(o.out.error.empty()) << status;
    }
}

}  // namespace
