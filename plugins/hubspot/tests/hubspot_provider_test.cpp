// Tests of the built hubspot.so, driven only through the C ABI as the engine drives it:
// dlopen, the entry function, and a host_api of our own that collects every output.
#include <recsync/provider_abi.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validator.hpp>

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <random>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

// Looks like a HubSpot private-app token; must never show up in any error or log line.
constexpr std::string_view kToken = "pat-na1-11111111-2222-3333-4444-SECRETSECRET";

// ---- host side: collects what the plugin outputs -------------------------------------

struct HeaderOut {
    std::string name;
    std::string value;
    uint32_t flags = 0;
};

struct Output {
    bool has_json = false;
    std::string json_text;
    std::string error;
    bool has_request = false;
    std::string method, path, body;
    std::vector<HeaderOut> headers;
    bool has_result = false;
    recsync_result_kind kind = RECSYNC_RESULT_OK;
    std::string external_id;
    int64_t retry_after_ms = -1;
    std::vector<std::vector<int64_t>> rate_limits;  // {limit, remaining, window_ms, reset_after_ms} per call
    // parse_batch_response (ABI 1.6): each record's own verdict, by its index.
    struct Item {
        recsync_result_kind kind = RECSYNC_RESULT_OK;
        std::string external_id, error, json_text;
        int64_t retry_after_ms = 0;
        int32_t status = 0;
    };
    std::map<size_t, Item> items;

    json parsed() const { return json::parse(json_text); }
    json parsed_body() const { return json::parse(body); }
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

std::mutex g_log_mutex;
std::vector<std::string> g_logs;

std::vector<std::string> logs() {
    std::lock_guard lock(g_log_mutex);
    return g_logs;
}

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
    [](const recsync_host_api *, int level, recsync_str m) {
        std::lock_guard lock(g_log_mutex);
        g_logs.push_back(std::to_string(level) + " " + to_string(m));
    },
    [](recsync_output *o, int64_t limit, int64_t remaining, int64_t window_ms, int64_t reset_after_ms) {
        out_of(o).rate_limits.push_back({limit, remaining, window_ms, reset_after_ms});
    },
    [](recsync_output *o, size_t index, recsync_result_kind kind, recsync_str id, int64_t after, int32_t status) {
        auto &item = out_of(o).items[index];
        item.kind = kind;
        item.external_id = to_string(id);
        item.retry_after_ms = after;
        item.status = status;
    },
    [](recsync_output *o, size_t index, recsync_str m) { out_of(o).items[index].error = to_string(m); },
    [](recsync_output *o, size_t index, recsync_str j) { out_of(o).items[index].json_text = to_string(j); },
};

// The same host as ABI 1.0 built it: the table ends before set_rate_limit (whose pointer is
// still there, so a plugin that ignored struct_size would call it and be caught).
const recsync_host_api kHost10 = [] {
    recsync_host_api h = kHost;
    h.struct_size = offsetof(recsync_host_api, set_rate_limit);
    h.abi_version = RECSYNC_ABI_MAKE(1, 0);
    return h;
}();

struct Outcome {
    recsync_status status = RECSYNC_ERR_INTERNAL;
    Output out;
};

struct CallSpec {
    recsync_action action = RECSYNC_ACTION_CREATE;
    std::string object = "contacts";
    std::string external_id;
    std::string payload;
    std::string token = std::string(kToken);
    std::string record_key = "crm-a:42";
};

std::string read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// ---- the plugin, loaded once per test binary ------------------------------------------

class HubSpotTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        handle_ = dlopen(RECSYNC_PLUGIN_DIR "/hubspot.so", RTLD_NOW | RTLD_LOCAL);
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

    // Creates an instance; the first successful one becomes instance_.
    Outcome create(std::string_view config, const recsync_host_api *host = &kHost) {
        Outcome o;
        void *inst = nullptr;
        o.status = provider_->create_instance(host, rs(config), as_out(o.out), &inst);
        if (o.status == RECSYNC_OK) {
            instances_.push_back(inst);
            if (!instance_ || instances_.size() == 1) instance_ = inst;
            last_ = inst;
        }
        return o;
    }

    Outcome describe(void *inst = nullptr) {
        Outcome o;
        o.status = provider_->describe(inst ? inst : instance_, as_out(o.out));
        return o;
    }

    Outcome transform(recsync_direction dir, std::string_view object, std::string_view record, void *inst = nullptr) {
        Outcome o;
        o.status = provider_->transform(inst ? inst : instance_, dir, rs(object), rs(record), as_out(o.out));
        return o;
    }
    Outcome outbound(std::string_view record, std::string_view object = "contacts") {
        return transform(RECSYNC_OUTBOUND, object, record);
    }

    Outcome validate(std::string_view payload, std::string_view object = "contacts") {
        Outcome o;
        o.status = provider_->validate(instance_, rs(object), rs(payload), as_out(o.out));
        return o;
    }

    static recsync_call to_call(const CallSpec &c) {
        return recsync_call{sizeof(recsync_call), c.action, rs(c.object), rs(c.record_key), rs(c.external_id), rs(c.payload), rs(c.token)};
    }

    Outcome build(const CallSpec &c, void *inst = nullptr) {
        Outcome o;
        const recsync_call call = to_call(c);
        o.status = provider_->build_request(inst ? inst : instance_, &call, as_out(o.out));
        return o;
    }

    Outcome parse(const CallSpec &c, int status, std::string_view body,
                  const std::vector<std::pair<std::string, std::string>> &headers = {}, void *inst = nullptr) {
        Outcome o;
        const recsync_call call = to_call(c);
        std::vector<recsync_header> hs;
        for (const auto &[n, v] : headers) hs.push_back({rs(n), rs(v)});
        const recsync_response resp{sizeof(recsync_response), status, hs.data(), hs.size(), rs(body)};
        o.status = provider_->parse_response(inst ? inst : instance_, &call, &resp, as_out(o.out));
        return o;
    }

    // Batches (ABI 1.6): the calls as the host passes them, an array of pointers.
    Outcome build_batch(const std::vector<CallSpec> &cs, void *inst = nullptr) {
        Outcome o;
        std::vector<recsync_call> calls;
        for (const auto &c : cs) calls.push_back(to_call(c));
        std::vector<const recsync_call *> ptrs;
        for (const auto &c : calls) ptrs.push_back(&c);
        o.status = provider_->build_batch_request(inst ? inst : instance_, ptrs.data(), ptrs.size(), as_out(o.out));
        return o;
    }
    Outcome parse_batch(const std::vector<CallSpec> &cs, int status, std::string_view body, const std::vector<std::pair<std::string, std::string>> &headers = {}) {
        Outcome o;
        std::vector<recsync_call> calls;
        for (const auto &c : cs) calls.push_back(to_call(c));
        std::vector<const recsync_call *> ptrs;
        for (const auto &c : calls) ptrs.push_back(&c);
        std::vector<recsync_header> hs;
        for (const auto &[n, v] : headers) hs.push_back({rs(n), rs(v)});
        const recsync_response resp{sizeof(recsync_response), status, hs.data(), hs.size(), rs(body)};
        o.status = provider_->parse_batch_response(instance_, ptrs.data(), ptrs.size(), &resp, as_out(o.out));
        return o;
    }

    static inline void *handle_ = nullptr;
    static inline recsync_entry_fn entry_ = nullptr;
    static inline const recsync_provider *provider_ = nullptr;
    void *instance_ = nullptr;
    void *last_ = nullptr;
    std::vector<void *> instances_;
};

const std::string kContact = R"({"properties":{"email":"ada@example.com","firstname":"Ada"}})";

CallSpec create_call(std::string payload = kContact) { return {RECSYNC_ACTION_CREATE, "contacts", "", std::move(payload)}; }
CallSpec update_call(std::string id = "501", std::string payload = kContact) {
    return {RECSYNC_ACTION_UPDATE, "contacts", std::move(id), std::move(payload)};
}
CallSpec upsert_call(std::string payload = kContact) { return {RECSYNC_ACTION_UPSERT, "contacts", "", std::move(payload)}; }
CallSpec delete_call(std::string id = "501") { return {RECSYNC_ACTION_DELETE, "contacts", std::move(id), ""}; }
CallSpec read_call(std::string id = "501") { return {RECSYNC_ACTION_READ, "contacts", std::move(id), ""}; }

// ---- entry and descriptor --------------------------------------------------------------

TEST_F(HubSpotTest, DescriptorIsSane) {
    EXPECT_EQ(provider_->struct_size, sizeof(recsync_provider));
    EXPECT_GE(provider_->struct_size, RECSYNC_PROVIDER_MIN_SIZE);
    EXPECT_EQ(RECSYNC_ABI_MAJOR_OF(provider_->abi_version), RECSYNC_ABI_MAJOR);
    EXPECT_STREQ(provider_->id, "hubspot");
    EXPECT_STREQ(provider_->version, "0.3.0");
    EXPECT_EQ(provider_->capabilities, RECSYNC_CAP_NATIVE_UPSERT | RECSYNC_CAP_WEBHOOKS | RECSYNC_CAP_POLLING | RECSYNC_CAP_BATCH);
    EXPECT_NE(provider_->build_batch_request, nullptr);
    EXPECT_NE(provider_->parse_batch_response, nullptr);
    EXPECT_NE(provider_->create_instance, nullptr);
    EXPECT_NE(provider_->destroy_instance, nullptr);
    EXPECT_NE(provider_->describe, nullptr);
    EXPECT_NE(provider_->transform, nullptr);
    EXPECT_NE(provider_->validate, nullptr);
    EXPECT_NE(provider_->build_request, nullptr);
    EXPECT_NE(provider_->parse_response, nullptr);
    // Optional members must agree with the capabilities.
    EXPECT_NE(provider_->parse_webhook, nullptr);
    EXPECT_NE(provider_->build_poll_request, nullptr);
    EXPECT_NE(provider_->parse_poll_response, nullptr);
    EXPECT_EQ(provider_->build_auth_request, nullptr);
    EXPECT_EQ(provider_->parse_auth_response, nullptr);
}

TEST_F(HubSpotTest, EntryRefusesHostsThatExcludeItsVersion) {
    EXPECT_EQ(entry_(RECSYNC_ABI_MAKE(RECSYNC_ABI_MAJOR + 1, 0), RECSYNC_ABI_MAKE(RECSYNC_ABI_MAJOR + 1, 9)), nullptr);
    EXPECT_EQ(entry_(RECSYNC_ABI_MAKE(0, 0), RECSYNC_ABI_MAKE(0, 9)), nullptr);
    EXPECT_EQ(entry_(RECSYNC_ABI_MAKE(0, 0), RECSYNC_ABI_MAKE(RECSYNC_ABI_MAJOR + 1, 0)), provider_);
}

// Hot reload needs dlclose to really unmap the plugin (e.g. no STB_GNU_UNIQUE symbols).
// A copy under another path gets its own handle, independent of the suite's.
TEST_F(HubSpotTest, PluginUnloadsOnDlclose) {
    const std::string copy = ::testing::TempDir() + "hubspot_unload_" + std::to_string(::getpid()) + ".so";
    {
        std::ofstream(copy, std::ios::binary) << read_file(RECSYNC_PLUGIN_DIR "/hubspot.so");
    }
    void *h = dlopen(copy.c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(h, nullptr) << dlerror();
    auto entry = reinterpret_cast<recsync_entry_fn>(dlsym(h, RECSYNC_ENTRY_SYMBOL));
    ASSERT_NE(entry, nullptr);
    const recsync_provider *p = entry(RECSYNC_ABI_VERSION, RECSYNC_ABI_VERSION);
    ASSERT_NE(p, nullptr);
    Output out;
    void *inst = nullptr;
    ASSERT_EQ(p->create_instance(&kHost, rs("{}"), as_out(out), &inst), RECSYNC_OK);
    Output described;
    EXPECT_EQ(p->describe(inst, as_out(described)), RECSYNC_OK);
    p->destroy_instance(inst);
    EXPECT_EQ(dlclose(h), 0);
    EXPECT_EQ(dlopen(copy.c_str(), RTLD_NOW | RTLD_NOLOAD), nullptr) << "hubspot.so stays mapped after dlclose";
    std::remove(copy.c_str());
}

// ---- configuration ----------------------------------------------------------------------

TEST_F(HubSpotTest, BadJsonConfigFailsWithMessage) {
    const Outcome o = create("{\"objects\": [");
    EXPECT_NE(o.status, RECSYNC_OK);
    EXPECT_FALSE(o.out.error.empty());
}

TEST_F(HubSpotTest, ConfigMustBeAnObject) {
    const Outcome o = create("[\"contacts\"]");
    EXPECT_EQ(o.status, RECSYNC_ERR_CONFIG);
    EXPECT_THAT(o.out.error, HasSubstr("object"));
}

TEST_F(HubSpotTest, ConfigRejectsUnknownObjectsAndBadLists) {
    Outcome o = create(R"({"objects": ["contacts", "tickets"]})");
    EXPECT_EQ(o.status, RECSYNC_ERR_CONFIG);
    EXPECT_THAT(o.out.error, HasSubstr("'tickets'"));
    EXPECT_EQ(create(R"({"objects": []})").status, RECSYNC_ERR_CONFIG);
    EXPECT_EQ(create(R"({"objects": "contacts"})").status, RECSYNC_ERR_CONFIG);
    EXPECT_EQ(create(R"({"objects": [7]})").status, RECSYNC_ERR_CONFIG);
    o = create(R"({"key_properties": {"deals": ""}})");
    EXPECT_EQ(o.status, RECSYNC_ERR_CONFIG);
    EXPECT_THAT(o.out.error, HasSubstr("key_properties.deals"));
}

TEST_F(HubSpotTest, ConfigIgnoresUnknownKeys) {
    const Outcome o = create(R"({"base_url": "https://api.hubapi.com", "settings": {"x": 1}, "portal": 123})");
    EXPECT_EQ(o.status, RECSYNC_OK) << o.out.error;
}

// ---- describe ---------------------------------------------------------------------------

TEST_F(HubSpotTest, DescribeListsObjectsLimitsAndSchemas) {
    const Outcome o = describe();
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    const json d = o.out.parsed();
    ASSERT_TRUE(d["objects"].is_object());
    EXPECT_EQ(d["objects"].size(), 3u);
    EXPECT_EQ(d["objects"]["contacts"]["key_property"], "email");
    EXPECT_EQ(d["objects"]["companies"]["key_property"], "domain");
    EXPECT_TRUE(d["objects"]["deals"]["key_property"].is_string());
    for (const char *name : {"contacts", "companies", "deals"}) {
        const json on_disk = json::parse(read_file(std::string(HUBSPOT_SCHEMA_DIR "/") + name + ".json"));
        EXPECT_EQ(d["objects"][name]["schema"], on_disk) << name;
    }
    EXPECT_EQ(d["rate_limit"]["per_second"], 10);
    EXPECT_EQ(d["rate_limit"]["burst"], 10);
    for (const char *name : {"contacts", "companies", "deals"})
        for (const char *action : {"create", "update", "upsert", "delete", "read"}) EXPECT_EQ(d["objects"][name]["batch"][action], 100) << name << " " << action;
}

TEST_F(HubSpotTest, ObjectsConfigRestrictsEverything) {
    ASSERT_EQ(create(R"({"objects": ["contacts"], "key_properties": {"contacts": "external_key"}})").status, RECSYNC_OK);
    void *only_contacts = last_;
    const json d = describe(only_contacts).out.parsed();
    EXPECT_EQ(d["objects"].size(), 1u);
    EXPECT_EQ(d["objects"]["contacts"]["key_property"], "external_key");

    const Outcome t = transform(RECSYNC_OUTBOUND, "deals", R"({"dealname":"x"})", only_contacts);
    EXPECT_EQ(t.status, RECSYNC_ERR_UNSUPPORTED);
    EXPECT_THAT(t.out.error, HasSubstr("'deals'"));
    CallSpec c = create_call(R"({"properties":{"dealname":"x"}})");
    c.object = "deals";
    EXPECT_EQ(build(c, only_contacts).status, RECSYNC_ERR_UNSUPPORTED);

    // The configured key property drives upserts.
    const Outcome u = build(upsert_call(R"({"properties":{"external_key":"K-1","email":"a@b.c"}})"), only_contacts);
    ASSERT_EQ(u.status, RECSYNC_OK) << u.out.error;
    EXPECT_EQ(u.out.parsed_body()["inputs"][0]["idProperty"], "external_key");
    EXPECT_EQ(u.out.parsed_body()["inputs"][0]["id"], "K-1");
}

// The schemas the host validates payloads with must load in valijson (no remote $refs) and
// accept exactly what transform produces.
TEST_F(HubSpotTest, DescribedSchemasAcceptTransformOutput) {
    const json d = describe().out.parsed();
    for (const auto &[name, obj] : d["objects"].items()) {
        valijson::Schema schema;
        valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
        valijson::adapters::NlohmannJsonAdapter schema_doc(obj["schema"]);
        ASSERT_NO_THROW(parser.populateSchema(schema_doc, schema)) << name;
        valijson::Validator validator;

        const Outcome t = outbound(R"({"email":"a@b.c","n":5,"f":1.5,"b":false,"z":null,"s":"x"})", name);
        ASSERT_EQ(t.status, RECSYNC_OK) << t.out.error;
        const json payload = t.out.parsed();
        valijson::adapters::NlohmannJsonAdapter good(payload);
        EXPECT_TRUE(validator.validate(schema, good, nullptr)) << name << ": " << payload.dump();

        const json bad = {{"properties", {{"n", 5}}}};
        valijson::adapters::NlohmannJsonAdapter bad_doc(bad);
        EXPECT_FALSE(validator.validate(schema, bad_doc, nullptr)) << name;
        const json extra = {{"properties", json::object()}, {"associations", json::array()}};
        valijson::adapters::NlohmannJsonAdapter extra_doc(extra);
        EXPECT_FALSE(validator.validate(schema, extra_doc, nullptr)) << name;
    }
}

// ---- transform --------------------------------------------------------------------------

TEST_F(HubSpotTest, OutboundTurnsEveryValueIntoText) {
    const Outcome o = outbound(R"({
        "firstname": "Ada", "empty": "", "int": 42, "neg": -7, "big": 18446744073709551615,
        "float": 2.5, "whole_float": 3.0, "neg_zero": -0.0, "huge": 1e20, "tiny": 0.000125,
        "yes": true, "no": false, "cleared": null, "unicode": "Zoë"})");
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    const json expected = {{"properties",
                            {{"firstname", "Ada"},
                             {"empty", ""},
                             {"int", "42"},
                             {"neg", "-7"},
                             {"big", "18446744073709551615"},
                             {"float", "2.5"},
                             {"whole_float", "3"},
                             {"neg_zero", "0"},
                             {"huge", "100000000000000000000"},
                             {"tiny", "0.000125"},
                             {"yes", "true"},
                             {"no", "false"},
                             {"cleared", ""},
                             {"unicode", "Zoë"}}}};
    EXPECT_EQ(o.out.parsed(), expected);
}

TEST_F(HubSpotTest, OutboundRejectsNestedValuesNamingTheField) {
    Outcome o = outbound(R"({"email":"a@b.c","address":{"city":"Oslo"}})");
    EXPECT_EQ(o.status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_THAT(o.out.error, HasSubstr("'address'"));
    EXPECT_FALSE(o.out.has_json);
    o = outbound(R"({"tags":["a","b"]})");
    EXPECT_EQ(o.status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_THAT(o.out.error, HasSubstr("'tags'"));
}

TEST_F(HubSpotTest, OutboundRejectsNonObjectsAndBrokenJson) {
    EXPECT_EQ(outbound("[1,2]").status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_EQ(outbound("\"x\"").status, RECSYNC_ERR_INVALID_INPUT);
    const Outcome o = outbound("{\"email\":");
    EXPECT_EQ(o.status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_FALSE(o.out.error.empty());
    EXPECT_EQ(outbound("").status, RECSYNC_ERR_INVALID_INPUT);
}

TEST_F(HubSpotTest, InboundFlattensAHubSpotObject) {
    const Outcome o = transform(RECSYNC_INBOUND, "contacts", R"({
        "id": "512", "archived": false, "createdAt": "2019-10-30T03:30:17.883Z",
        "updatedAt": "2019-12-07T16:50:06.678Z",
        "properties": {"email": "ada@example.com", "firstname": "Ada", "phone": null, "id": "not-the-id"}})");
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    EXPECT_EQ(o.out.parsed(), json({{"id", "512"}, {"email", "ada@example.com"}, {"firstname", "Ada"}, {"phone", nullptr}}));
}

TEST_F(HubSpotTest, InboundNeedsIdAndProperties) {
    Outcome o = transform(RECSYNC_INBOUND, "contacts", R"({"properties": {"email": "a@b.c"}})");
    EXPECT_EQ(o.status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_THAT(o.out.error, HasSubstr("'id'"));
    o = transform(RECSYNC_INBOUND, "contacts", R"({"id": "1"})");
    EXPECT_EQ(o.status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_THAT(o.out.error, HasSubstr("'properties'"));
    // A numeric id is tolerated and reported as text.
    o = transform(RECSYNC_INBOUND, "contacts", R"({"id": 77, "properties": {}})");
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    EXPECT_EQ(o.out.parsed()["id"], "77");
}

TEST_F(HubSpotTest, TransformOfUnknownObjectIsUnsupported) {
    for (auto dir : {RECSYNC_OUTBOUND, RECSYNC_INBOUND}) {
        const Outcome o = transform(dir, "tickets", R"({"id":"1","properties":{}})");
        EXPECT_EQ(o.status, RECSYNC_ERR_UNSUPPORTED);
        EXPECT_THAT(o.out.error, HasSubstr("'tickets'"));
    }
    // 3: the largest value the C enum can hold (loading 9 would be UB in the plugin).
    EXPECT_EQ(transform(static_cast<recsync_direction>(3), "contacts", "{}").status, RECSYNC_ERR_UNSUPPORTED);
}

// The SDK's fast paths (provider_sdk.hpp): a record whose keys come sorted, as the host
// writes them, takes HubSpot's fast transform; the same members in reverse order are
// declined and go through transform(). Both must give the same bytes or the same error,
// and validate must give the same verdicts whichever path judges the payload.
std::string object_text(const std::vector<std::pair<std::string, std::string>> &members) {
    std::string text = "{";
    for (const auto &[key, value] : members) text += (text.size() > 1 ? "," : "") + json(key).dump() + ":" + value;
    return text + "}";
}

// The members as object text in key order (a fast path takes it) and in reverse order (a
// fast path declines it), each inside `before` ... `after`.
std::pair<std::string, std::string> in_and_out_of_order(const std::map<std::string, std::string> &members, std::string_view before = "",
                                                        std::string_view after = "") {
    std::vector<std::pair<std::string, std::string>> list(members.begin(), members.end());
    const std::string sorted = std::string(before) + object_text(list) + std::string(after);
    std::reverse(list.begin(), list.end());
    return {sorted, std::string(before) + object_text(list) + std::string(after)};
}

TEST_F(HubSpotTest, FastPathsAgreeWithTheDocumentPaths) {
    std::mt19937 rng(20261125);
    const std::vector<std::string> keys = {"email", "firstname", "lastname", "a", "b", "Zoë", "東京", "with space", "quote\"d", "x_1", "X_1", "", "z"};
    const std::vector<std::string> values = {
        R"("")", R"("Ada")", R"("ada@example.com")", R"("say \"hi\" \\ \t\n\u0001\u001f")", R"("Zoë 東京 \ud83d\ude00")", "0", "-0", "42", "-7",
        "9223372036854775807", "-9223372036854775808", "18446744073709551615", "123456789012345678901234567890", "2.5", "3.0", "-0.0", "1e20",
        "1e308", "5e-324", "0.000125", "-1.5e-7", "true", "false", "null", "\"" + std::string(3000, 'x') + "\"", R"({"city":"Oslo"})", "[1]"};
    size_t compared_ok = 0, compared_error = 0;
    for (int n = 0; n < 600; ++n) {
        std::map<std::string, std::string> record;
        const size_t fields = 2 + rng() % 10;
        while (record.size() < fields) record[keys[rng() % keys.size()]] = values[rng() % (n % 4 == 0 ? values.size() : values.size() - 3)];
        const auto [sorted, reversed] = in_and_out_of_order(record);
        // The document path first: the SDK keeps its output parsed for a validate of the same
        // text, which would otherwise judge the fast path's text below without the fast path.
        const Outcome document = outbound(reversed);
        const Outcome fast = outbound(sorted);
        ASSERT_EQ(fast.status, document.status) << sorted << "\n" << fast.out.error << "\n" << document.out.error;
        if (fast.status != RECSYNC_OK) {
            EXPECT_EQ(fast.out.error, document.out.error) << sorted;
            ++compared_error;
            continue;
        }
        ASSERT_EQ(fast.out.json_text, document.out.json_text) << sorted;
        ++compared_ok;
        // Validate that text (fast) and the same properties in reverse order (document).
        std::vector<std::pair<std::string, std::string>> props;
        const json transformed = json::parse(fast.out.json_text);
        for (const auto &[k, v] : transformed.at("properties").items()) props.emplace_back(k, v.dump());
        if (rng() % 5 == 0) props.emplace_back("zz_number", "1");  // not a string: refused
        if (rng() % 3 == 0) props.emplace_back("email", rng() % 2 ? R"("not an address")" : R"("ok@example.com")");
        std::sort(props.begin(), props.end());
        props.erase(std::unique(props.begin(), props.end(), [](const auto &x, const auto &y) { return x.first == y.first; }), props.end());
        const std::string payload_sorted = R"({"properties":)" + object_text(props) + "}";
        std::reverse(props.begin(), props.end());
        const std::string payload_reversed = R"({"properties":)" + object_text(props) + "}";
        const Outcome v_fast = validate(payload_sorted), v_document = validate(payload_reversed);
        ASSERT_EQ(v_fast.status, v_document.status) << payload_sorted << "\n" << v_fast.out.error << "\n" << v_document.out.error;
        EXPECT_EQ(v_fast.out.error, v_document.out.error) << payload_sorted;
    }
    // Both outcomes were compared, many times each.
    EXPECT_GT(compared_ok, 200u);
    EXPECT_GT(compared_error, 50u);
}

// build_request's fast path (create, update, upsert of a payload as the host writes it:
// {"properties":{...}}, names in order) against its document path (the same members in reverse order, declined):
// method, path, body bytes, headers and errors must all be the same.
TEST_F(HubSpotTest, FastBuildRequestAgreesWithTheDocumentPath) {
    std::mt19937 rng(20261126);
    const std::vector<std::string> keys = {"email", "firstname", "lastname", "a", "Zoë", "東京", "with space", "quote\"d", "", "z"};
    const std::vector<std::string> values = {R"("")", R"("Ada")", R"("ada@example.com")", R"("say \"hi\" \\ \t\n\u0001\u001f")",
                                             R"("Zoë 東京 \ud83d\ude00")", "\"" + std::string(3000, 'x') + "\"", "1", "null", R"({"x":"y"})"};
    size_t compared_ok = 0, compared_error = 0;
    for (int n = 0; n < 400; ++n) {
        std::map<std::string, std::string> props;
        const size_t fields = 1 + rng() % 8;
        // Mostly strings (accepted), now and then a number, null or object (refused).
        while (props.size() < fields) props[keys[rng() % keys.size()]] = values[rng() % (n % 3 == 0 ? values.size() : values.size() - 3)];
        const auto [sorted, reversed] = in_and_out_of_order(props, R"({"properties":)", "}");
        CallSpec c = n % 3 == 0 ? create_call(sorted) : n % 3 == 1 ? update_call(n % 7 == 0 ? "" : "50" + std::to_string(n), sorted) : upsert_call(sorted);
        if (n % 5 == 0) c.token.clear();
        if (n % 11 == 0) c.object = "companies";
        const Outcome fast = build(c);
        c.payload = reversed;
        const Outcome document = build(c);
        ASSERT_EQ(fast.status, document.status) << sorted << "\n" << fast.out.error << "\n" << document.out.error;
        if (fast.status != RECSYNC_OK) {
            EXPECT_EQ(fast.out.error, document.out.error) << sorted;
            ++compared_error;
            continue;
        }
        EXPECT_EQ(fast.out.method, document.out.method);
        EXPECT_EQ(fast.out.path, document.out.path);
        ASSERT_EQ(fast.out.body, document.out.body) << sorted;
        ASSERT_EQ(fast.out.headers.size(), document.out.headers.size());
        for (size_t h = 0; h < fast.out.headers.size(); ++h) {
            EXPECT_EQ(fast.out.headers[h].name, document.out.headers[h].name);
            EXPECT_EQ(fast.out.headers[h].value, document.out.headers[h].value);
            EXPECT_EQ(fast.out.headers[h].flags, document.out.headers[h].flags);
        }
        ++compared_ok;
    }
    EXPECT_GT(compared_ok, 150u);
    EXPECT_GT(compared_error, 30u);
    // Payloads the fast path must decline, judged as before.
    EXPECT_EQ(build(create_call(R"({"properties":{"email":"a@b.c"},"extra":1})")).out.parsed_body(), json::parse(R"({"associations":[],"properties":{"email":"a@b.c"}})"));
    EXPECT_EQ(build(create_call(R"({"properties":{"b":"1","a":"2","a":"3"}})")).out.parsed_body(), json::parse(R"({"associations":[],"properties":{"a":"3","b":"1"}})"));
    EXPECT_EQ(build(create_call(R"([1])")).status, RECSYNC_ERR_INVALID_INPUT);
}

// parse_response's fast path takes a create's or an upsert's id from the body without a
// document; what it declines goes to the document path. Either way the verdicts are these.
TEST_F(HubSpotTest, ParseCreateAndUpsertIdsTheFastWayAndTheDocumentWay) {
    struct Case {
        int status;
        const char *body;
        recsync_result_kind kind;
        const char *id;
    };
    const Case cases[] = {
        {201, R"({"id":"9001","properties":{"email":"a@b.c"},"archived":false})", RECSYNC_RESULT_OK, "9001"},
        {200, R"({"properties":{},"id":"77"})", RECSYNC_RESULT_OK, "77"},
        {201, R"({"id":42})", RECSYNC_RESULT_OK, "42"},
        {201, R"({"id":18446744073709551615})", RECSYNC_RESULT_OK, "18446744073709551615"},
        {201, R"({"id":-3})", RECSYNC_RESULT_OK, "-3"},
        {201, R"({"id":"1","id":"2"})", RECSYNC_RESULT_OK, "2"},  // the last wins, as in the document
        {201, R"({"id":""})", RECSYNC_RESULT_FAIL, ""},
        {201, R"({"id":1.5})", RECSYNC_RESULT_FAIL, ""},
        {201, R"({"id":null})", RECSYNC_RESULT_FAIL, ""},
        {201, R"({"properties":{}})", RECSYNC_RESULT_FAIL, ""},
        {201, R"(["id"])", RECSYNC_RESULT_FAIL, ""},
        {201, "not json", RECSYNC_RESULT_FAIL, ""},
        {201, "", RECSYNC_RESULT_FAIL, ""},
        {500, R"({"id":"9001"})", RECSYNC_RESULT_RETRY, ""},
    };
    const Case upserts[] = {
        {200, R"({"status":"COMPLETE","results":[{"id":"31","properties":{}}]})", RECSYNC_RESULT_OK, "31"},
        {207, R"({"results":[{"id":5},{"id":6}],"errors":[]})", RECSYNC_RESULT_OK, "5"},
        {200, R"({"results":[{"id":"1"}],"results":[{"id":"2"}]})", RECSYNC_RESULT_OK, "2"},
        {200, R"({"results":[]})", RECSYNC_RESULT_FAIL, ""},
        {200, R"({"results":[{"id":""}]})", RECSYNC_RESULT_FAIL, ""},
        {200, R"({"results":{"id":"1"}})", RECSYNC_RESULT_FAIL, ""},
        {207, R"({"results":[],"errors":[{"message":"Property values were not valid"}]})", RECSYNC_RESULT_FAIL, ""},
        {429, R"({"results":[{"id":"1"}]})", RECSYNC_RESULT_RETRY, ""},
    };
    for (const auto &c : upserts) {
        const Outcome o = parse(upsert_call(), c.status, c.body);
        ASSERT_EQ(o.status, RECSYNC_OK) << c.body;
        EXPECT_EQ(o.out.kind, c.kind) << c.status << " " << c.body << ": " << o.out.error;
        EXPECT_EQ(o.out.external_id, c.id) << c.body;
    }
    for (const auto &c : cases) {
        const Outcome o = parse(create_call(), c.status, c.body, {{"X-HubSpot-RateLimit-Remaining", "9"}, {"X-HubSpot-RateLimit-Interval-Milliseconds", "10000"}});
        ASSERT_EQ(o.status, RECSYNC_OK) << c.body;
        EXPECT_EQ(o.out.kind, c.kind) << c.status << " " << c.body << ": " << o.out.error;
        EXPECT_EQ(o.out.external_id, c.id) << c.body;
        EXPECT_EQ(o.out.rate_limits, (std::vector<std::vector<int64_t>>{{0, 9, 10000, 0}})) << "reported on either path: " << c.body;
    }
}

// The SDK's per-thread scratch is shared by every instance of the plugin: a validate may
// reuse the document of the text another instance's transform just wrote, but the verdict
// is still its own instance's.
TEST_F(HubSpotTest, InstancesShareTheThreadsScratchButJudgeForThemselves) {
    ASSERT_EQ(create(R"({"objects":["companies"]})").status, RECSYNC_OK);
    void *companies_only = last_;
    ASSERT_NE(companies_only, instance_);
    // Out of order: the document path, which keeps its output parsed in the scratch.
    const Outcome t = outbound(R"({"lastname":"Lovelace","email":"ada@example.com"})");  // instance_: every object
    ASSERT_EQ(t.status, RECSYNC_OK) << t.out.error;
    Outcome v;
    v.status = provider_->validate(companies_only, rs("contacts"), rs(t.out.json_text), as_out(v.out));
    EXPECT_EQ(v.status, RECSYNC_ERR_UNSUPPORTED);
    EXPECT_THAT(v.out.error, HasSubstr("'contacts'"));
    EXPECT_EQ(validate(t.out.json_text).status, RECSYNC_OK);
}

// ---- validate ---------------------------------------------------------------------------

TEST_F(HubSpotTest, ValidateAcceptsGoodPayloads) {
    EXPECT_EQ(validate(kContact).status, RECSYNC_OK);
    EXPECT_EQ(validate(R"({"properties":{"email":""}})").status, RECSYNC_OK);  // clearing is fine
    EXPECT_EQ(validate(R"({"properties":{}})").status, RECSYNC_OK);
    EXPECT_EQ(validate(R"({"properties":{"name":"Acme"}})", "companies").status, RECSYNC_OK);
}

TEST_F(HubSpotTest, ValidateRejectsBadShapes) {
    Outcome o = validate(R"({"props":{}})");
    EXPECT_EQ(o.status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_THAT(o.out.error, HasSubstr("properties"));
    EXPECT_EQ(validate(R"({"properties":[]})").status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_EQ(validate(R"([])").status, RECSYNC_ERR_INVALID_INPUT);
    o = validate(R"({"properties":{"age":42}})");
    EXPECT_EQ(o.status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_THAT(o.out.error, HasSubstr("'age'"));
    EXPECT_EQ(validate("not json").status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_EQ(validate(kContact, "tickets").status, RECSYNC_ERR_UNSUPPORTED);
}

TEST_F(HubSpotTest, ValidateRejectsBadEmails) {
    for (const std::string bad : {"Ada Lovelace", "@example.com", "ada@", "a@b@c", "@"}) {
        const Outcome o = validate(json{{"properties", {{"email", bad}}}}.dump());
        EXPECT_EQ(o.status, RECSYNC_ERR_INVALID_INPUT) << bad;
        EXPECT_EQ(o.out.error, "property 'email': '" + bad + "' is not an email address");
    }
}

// ---- build_request ----------------------------------------------------------------------

void expect_standard_headers(const Output &out, bool with_body) {
    const HeaderOut *ct = out.header("Content-Type");
    if (with_body) {
        ASSERT_NE(ct, nullptr);
        EXPECT_EQ(ct->value, "application/json");
        EXPECT_EQ(ct->flags, 0u);
    } else {
        EXPECT_EQ(ct, nullptr);
    }
    const HeaderOut *accept = out.header("Accept");
    ASSERT_NE(accept, nullptr);
    EXPECT_EQ(accept->value, "application/json");
    EXPECT_EQ(accept->flags, 0u);
    const HeaderOut *auth = out.header("Authorization");
    ASSERT_NE(auth, nullptr);
    EXPECT_EQ(auth->value, "Bearer " + std::string(kToken));
    EXPECT_EQ(auth->flags, RECSYNC_HEADER_SECRET);
}

TEST_F(HubSpotTest, BuildCreate) {
    const Outcome o = build(create_call());
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    EXPECT_EQ(o.out.method, "POST");
    EXPECT_EQ(o.out.path, "/crm/v3/objects/contacts");
    EXPECT_EQ(o.out.parsed_body(), json::parse(R"({"properties":{"email":"ada@example.com","firstname":"Ada"},"associations":[]})"));
    expect_standard_headers(o.out, true);
}

TEST_F(HubSpotTest, BuildUpdate) {
    const Outcome o = build(update_call("501"));
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    EXPECT_EQ(o.out.method, "PATCH");
    EXPECT_EQ(o.out.path, "/crm/v3/objects/contacts/501");
    EXPECT_EQ(o.out.parsed_body(), json::parse(R"({"properties":{"email":"ada@example.com","firstname":"Ada"}})"));
    expect_standard_headers(o.out, true);
}

TEST_F(HubSpotTest, BuildUpdateNeedsTheHubSpotId) {
    const Outcome o = build(update_call(""));
    EXPECT_EQ(o.status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_EQ(o.out.error, "update needs the record's HubSpot id");
    EXPECT_FALSE(o.out.has_request);
    EXPECT_EQ(build(delete_call("")).status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_EQ(build(read_call("")).status, RECSYNC_ERR_INVALID_INPUT);
}

TEST_F(HubSpotTest, BuildDeleteAndRead) {
    Outcome o = build(delete_call("501"));
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    EXPECT_EQ(o.out.method, "DELETE");
    EXPECT_EQ(o.out.path, "/crm/v3/objects/contacts/501");
    EXPECT_TRUE(o.out.body.empty());
    expect_standard_headers(o.out, false);

    o = build(read_call("501"));
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    EXPECT_EQ(o.out.method, "GET");
    EXPECT_EQ(o.out.path, "/crm/v3/objects/contacts/501");
    EXPECT_TRUE(o.out.body.empty());
    expect_standard_headers(o.out, false);
}

TEST_F(HubSpotTest, BuildUpsert) {
    const Outcome o = build(upsert_call());
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    EXPECT_EQ(o.out.method, "POST");
    EXPECT_EQ(o.out.path, "/crm/v3/objects/contacts/batch/upsert");
    EXPECT_EQ(o.out.parsed_body(), json::parse(R"({"inputs":[{"idProperty":"email","id":"ada@example.com",
        "properties":{"email":"ada@example.com","firstname":"Ada"}}]})"));
    expect_standard_headers(o.out, true);
}

TEST_F(HubSpotTest, BuildUpsertNeedsTheKeyProperty) {
    for (const char *payload : {R"({"properties":{"firstname":"Ada"}})", R"({"properties":{"email":""}})"}) {
        const Outcome o = build(upsert_call(payload));
        EXPECT_EQ(o.status, RECSYNC_ERR_INVALID_INPUT) << payload;
        EXPECT_THAT(o.out.error, HasSubstr("'email'"));
    }
}

TEST_F(HubSpotTest, BuildRejectsBadPayloads) {
    EXPECT_EQ(build(create_call("")).status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_EQ(build(create_call("{")).status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_EQ(build(create_call(R"({"properties":{"n":1}})")).status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_EQ(build(update_call("1", R"({"nope":{}})")).status, RECSYNC_ERR_INVALID_INPUT);
    CallSpec c = create_call();
    c.object = "tickets";
    const Outcome o = build(c);
    EXPECT_EQ(o.status, RECSYNC_ERR_UNSUPPORTED);
    EXPECT_THAT(o.out.error, HasSubstr("'tickets'"));
    c = create_call();
    c.action = static_cast<recsync_action>(6);  // a future action; within the enum's range
    EXPECT_EQ(build(c).status, RECSYNC_ERR_UNSUPPORTED);
}

TEST_F(HubSpotTest, BuildPercentEncodesTheId) {
    const Outcome o = build(update_call("a b/c?d%e#f&Zoë~._-"));
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    EXPECT_EQ(o.out.path, "/crm/v3/objects/contacts/a%20b%2Fc%3Fd%25e%23f%26Zo%C3%AB~._-");
    EXPECT_EQ(build(delete_call("../../x")).out.path, "/crm/v3/objects/contacts/..%2F..%2Fx");
}

TEST_F(HubSpotTest, BuildWithoutTokenSendsNoAuthorization) {
    CallSpec c = create_call();
    c.token.clear();
    const Outcome o = build(c);
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    EXPECT_EQ(o.out.header("Authorization"), nullptr);
    EXPECT_NE(o.out.header("Accept"), nullptr);
}

TEST_F(HubSpotTest, BuildRefusesTokensThatWouldInjectHeaders) {
    CallSpec c = create_call();
    c.token = "abc\r\nX-Evil: 1";
    const Outcome o = build(c);
    EXPECT_EQ(o.status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_THAT(o.out.error, Not(HasSubstr("abc")));
    EXPECT_FALSE(o.out.has_request);
}

TEST_F(HubSpotTest, BuildUsesEachObjectsPath) {
    CallSpec c = create_call(R"({"properties":{"name":"Acme"}})");
    c.object = "companies";
    EXPECT_EQ(build(c).out.path, "/crm/v3/objects/companies");
    c.object = "deals";
    EXPECT_EQ(build(c).out.path, "/crm/v3/objects/0-3");  // deals' object type id, as in the spec
}

// ---- parse_response ---------------------------------------------------------------------

TEST_F(HubSpotTest, ParseCreateTakesTheIdFromTheBody) {
    // The SimplePublicObject example from HubSpot's spec.
    const json spec = json::parse(read_file(HUBSPOT_SPEC_DIR "/crm-contacts-v3.json"));
    const Outcome o = parse(create_call(), 201, spec["components"]["schemas"]["SimplePublicObject"]["example"].dump());
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    ASSERT_TRUE(o.out.has_result);
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(o.out.external_id, "512");
}

TEST_F(HubSpotTest, ParseCreateWithoutIdFails) {
    for (const char *body : {"", "{}", R"({"id": ""})", R"({"id": null})", "[]", "<html>", R"({"id": {"x":1}})"}) {
        const Outcome o = parse(create_call(), 201, body);
        ASSERT_EQ(o.status, RECSYNC_OK) << body;
        EXPECT_EQ(o.out.kind, RECSYNC_RESULT_FAIL) << body;
        EXPECT_THAT(o.out.error, HasSubstr("response has no id")) << body;
    }
}

TEST_F(HubSpotTest, ParseUpsertTakesTheFirstResult) {
    Outcome o = parse(upsert_call(), 200, R"({"status":"COMPLETE","results":[{"id":"9001","new":true,"properties":{}}],
        "startedAt":"2024-01-01T00:00:00Z","completedAt":"2024-01-01T00:00:01Z"})");
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(o.out.external_id, "9001");

    o = parse(upsert_call(), 207, R"({"status":"COMPLETE","results":[],"numErrors":1,
        "errors":[{"status":"error","category":"VALIDATION_ERROR","message":"Property values were not valid"}]})");
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_FAIL);
    EXPECT_THAT(o.out.error, HasSubstr("Property values were not valid"));

    o = parse(upsert_call(), 200, R"({"results":[{"new":true}]})");
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_FAIL);
    EXPECT_THAT(o.out.error, HasSubstr("response has no id"));
}

TEST_F(HubSpotTest, ParseUpdateDeleteReadSuccess) {
    Outcome o = parse(update_call("501"), 200, R"({"id":"501","properties":{}})");
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(o.out.external_id, "501");
    o = parse(delete_call("501"), 204, "");
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(o.out.external_id, "501");
    o = parse(read_call("501"), 200, R"({"id":"501","properties":{"email":"a@b.c"}})");
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(o.out.external_id, "501");
}

TEST_F(HubSpotTest, ParseDelete404MeansAlreadyGone) {
    const Outcome o = parse(delete_call("501"), 404, R"({"status":"error","message":"resource not found"})");
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(o.out.external_id, "501");
    // ...but a missing record is a real failure for an update.
    const Outcome u = parse(update_call("501"), 404, R"({"status":"error","message":"resource not found"})");
    EXPECT_EQ(u.out.kind, RECSYNC_RESULT_FAIL);
    EXPECT_THAT(u.out.error, HasSubstr("404"));
    EXPECT_THAT(u.out.error, HasSubstr("resource not found"));
}

// ---- creates that may already have been made (describe "create_retry", FIND) ----------

TEST_F(HubSpotTest, CreateRetryIsUpsertForUniqueKeysAndFindForLookupProperties) {
    // Built in: only the contact's email is unique, so only contacts can upsert.
    json d = describe().out.parsed();
    EXPECT_EQ(d["objects"]["contacts"]["create_retry"], "upsert");
    EXPECT_FALSE(d["objects"]["companies"].contains("create_retry"));
    EXPECT_FALSE(d["objects"]["deals"].contains("create_retry"));

    ASSERT_EQ(create(R"({"key_properties": {"companies": "acme_id"}, "lookup_properties": {"deals": "recsync_key", "contacts": "ext"}})").status, RECSYNC_OK);
    d = describe(last_).out.parsed();
    EXPECT_EQ(d["objects"]["companies"]["create_retry"], "upsert");
    EXPECT_EQ(d["objects"]["deals"]["create_retry"], "find");
    EXPECT_EQ(d["objects"]["contacts"]["create_retry"], "find");  // an explicit lookup wins
}

TEST_F(HubSpotTest, LookupPropertiesConfigErrorsNameTheProblem) {
    Outcome o = create(R"({"lookup_properties": ["deals"]})");
    EXPECT_EQ(o.status, RECSYNC_ERR_CONFIG);
    EXPECT_THAT(o.out.error, HasSubstr("'lookup_properties' must be an object"));
    o = create(R"({"lookup_properties": {"tickets": "x"}})");
    EXPECT_EQ(o.status, RECSYNC_ERR_CONFIG);
    EXPECT_THAT(o.out.error, HasSubstr("unknown object 'tickets'"));
    o = create(R"({"lookup_properties": {"deals": ""}})");
    EXPECT_EQ(o.status, RECSYNC_ERR_CONFIG);
    EXPECT_THAT(o.out.error, HasSubstr("lookup_properties.deals"));
    o = create(R"({"key_properties": {"deals": "a"}, "lookup_properties": {"deals": "b"}})");
    EXPECT_EQ(o.status, RECSYNC_ERR_CONFIG);
    EXPECT_THAT(o.out.error, HasSubstr("not both"));
}

TEST_F(HubSpotTest, FindSearchesForTheLookupPropertysValue) {
    ASSERT_EQ(create(R"({"lookup_properties": {"deals": "recsync_key"}})").status, RECSYNC_OK);
    void *inst = last_;
    const std::string deal = R"({"properties":{"dealname":"Big one","recsync_key":"erp:7"}})";
    const Outcome o = build(CallSpec{RECSYNC_ACTION_FIND, "deals", "", deal}, inst);
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    EXPECT_EQ(o.out.method, "POST");
    EXPECT_EQ(o.out.path, "/crm/v3/objects/0-3/search");
    const json body = o.out.parsed_body();
    EXPECT_EQ(body["filterGroups"][0]["filters"][0], (json{{"propertyName", "recsync_key"}, {"operator", "EQ"}, {"value", "erp:7"}}));
    EXPECT_EQ(body["limit"], 2);

    // The record has no value to look for: refused (the host then re-sends the create).
    const Outcome missing = build(CallSpec{RECSYNC_ACTION_FIND, "deals", "", R"({"properties":{"dealname":"x"}})"}, inst);
    EXPECT_EQ(missing.status, RECSYNC_ERR_INVALID_INPUT);
    EXPECT_THAT(missing.out.error, HasSubstr("'recsync_key'"));
    // An object without a lookup property cannot be found.
    EXPECT_EQ(build(CallSpec{RECSYNC_ACTION_FIND, "companies", "", R"({"properties":{"name":"x"}})"}, inst).status, RECSYNC_ERR_UNSUPPORTED);
}

TEST_F(HubSpotTest, FindAnswersFoundAbsentOrAmbiguous) {
    ASSERT_EQ(create(R"({"lookup_properties": {"deals": "recsync_key"}})").status, RECSYNC_OK);
    void *inst = last_;
    const CallSpec find{RECSYNC_ACTION_FIND, "deals", "", R"({"properties":{"recsync_key":"erp:7"}})"};
    Outcome o = parse(find, 200, R"({"total":0,"results":[]})", {}, inst);
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(o.out.external_id, "");
    o = parse(find, 200, R"({"total":1,"results":[{"id":"9001","properties":{"recsync_key":"erp:7"}}]})", {}, inst);
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(o.out.external_id, "9001");
    o = parse(find, 200, R"({"total":2,"results":[{"id":"1"},{"id":"2"}]})", {}, inst);
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_FAIL);
    EXPECT_THAT(o.out.error, HasSubstr("cannot tell which one"));
    EXPECT_EQ(parse(find, 200, R"({"total":1})", {}, inst).out.kind, RECSYNC_RESULT_FAIL);
    EXPECT_EQ(parse(find, 200, R"({"results":[{"properties":{}}]})", {}, inst).out.kind, RECSYNC_RESULT_FAIL);
    // Errors are classified as for any call.
    EXPECT_EQ(parse(find, 429, R"({"message":"slow down"})", {{"Retry-After", "1"}}, inst).out.kind, RECSYNC_RESULT_RETRY);
    EXPECT_EQ(parse(find, 502, "bad gateway", {}, inst).out.kind, RECSYNC_RESULT_RETRY);
    EXPECT_EQ(parse(find, 400, R"({"message":"bad filter"})", {}, inst).out.kind, RECSYNC_RESULT_FAIL);
}

TEST_F(HubSpotTest, ParseCreateConflictAdoptsTheExistingId) {
    const Outcome o = parse(create_call(), 409,
                            R"({"status":"error","message":"Contact already exists. Existing ID: 123","correlationId":"c1","category":"CONFLICT"})");
    ASSERT_EQ(o.status, RECSYNC_OK);
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(o.out.external_id, "123");

    const Outcome other = parse(create_call(), 409, R"({"status":"error","message":"Conflict on property"})");
    EXPECT_EQ(other.out.kind, RECSYNC_RESULT_FAIL);
    EXPECT_THAT(other.out.error, HasSubstr("409"));
    EXPECT_THAT(other.out.error, HasSubstr("Conflict on property"));
    EXPECT_EQ(parse(create_call(), 409, R"({"message":"Existing ID: "})").out.kind, RECSYNC_RESULT_FAIL);
    // Only creates are made idempotent this way.
    EXPECT_EQ(parse(update_call(), 409, R"({"message":"Existing ID: 123"})").out.kind, RECSYNC_RESULT_FAIL);
}

TEST_F(HubSpotTest, Parse429UsesRetryAfterSeconds) {
    const Outcome o = parse(create_call(), 429, R"({"status":"error","message":"You have reached your ten_secondly_rolling limit."})",
                            {{"retry-after", " 3 "}, {"X-HubSpot-RateLimit-Interval-Milliseconds", "10000"}});
    ASSERT_EQ(o.status, RECSYNC_OK);
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_RETRY);
    EXPECT_EQ(o.out.retry_after_ms, 3000);
    EXPECT_THAT(o.out.error, HasSubstr("429"));
    EXPECT_THAT(o.out.error, HasSubstr("ten_secondly_rolling"));
}

std::string http_date(std::chrono::system_clock::time_point t) {
    const std::time_t tt = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return buf;
}

TEST_F(HubSpotTest, Parse429UsesRetryAfterHttpDate) {
    const auto when = std::chrono::system_clock::now() + std::chrono::seconds(120);
    Outcome o = parse(create_call(), 429, "", {{"Retry-After", http_date(when)}});
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_RETRY);
    EXPECT_GT(o.out.retry_after_ms, 100'000);
    EXPECT_LE(o.out.retry_after_ms, 120'000);
    // A date in the past means "now".
    o = parse(create_call(), 429, "", {{"Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"}});
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_RETRY);
    EXPECT_EQ(o.out.retry_after_ms, 0);
}

TEST_F(HubSpotTest, Parse429FallsBackToTheRateLimitInterval) {
    Outcome o = parse(create_call(), 429, "{}", {{"X-HubSpot-RateLimit-Interval-Milliseconds", "10000"}});
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_RETRY);
    EXPECT_EQ(o.out.retry_after_ms, 10000);
    // An unparsable Retry-After does not hide the interval.
    o = parse(create_call(), 429, "{}", {{"Retry-After", "soon"}, {"X-HubSpot-RateLimit-Interval-Milliseconds", "10000"}});
    EXPECT_EQ(o.out.retry_after_ms, 10000);
    o = parse(create_call(), 429, "");
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_RETRY);
    EXPECT_EQ(o.out.retry_after_ms, 0);
    // Absurd values are capped rather than overflowing.
    o = parse(create_call(), 429, "", {{"Retry-After", "99999999999999999999999999"}});
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_RETRY);
    EXPECT_EQ(o.out.retry_after_ms, 24LL * 3600 * 1000);
    o = parse(create_call(), 429, "", {{"Retry-After", "-5"}, {"X-HubSpot-RateLimit-Interval-Milliseconds", "x"}});
    EXPECT_EQ(o.out.retry_after_ms, 0);
}

// ---- rate-limit headers (ABI 1.1 set_rate_limit) --------------------------------------

using RL = std::vector<int64_t>;

TEST_F(HubSpotTest, ReportsTheRollingWindowFromItsHeaders) {
    const Outcome o = parse(update_call(), 200, R"({"id":"501","properties":{}})",
                            {{"X-HubSpot-RateLimit-Max", "100"},
                             {"x-hubspot-ratelimit-remaining", " 42 "},
                             {"X-HubSpot-RateLimit-Interval-Milliseconds", "10000"}});
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(o.out.rate_limits, (std::vector<RL>{{100, 42, 10000, 0}}));
}

TEST_F(HubSpotTest, ReportsTheSecondlyWindowToo) {
    const Outcome o = parse(create_call(), 429, "{}",
                            {{"X-HubSpot-RateLimit-Max", "190"},
                             {"X-HubSpot-RateLimit-Remaining", "0"},
                             {"X-HubSpot-RateLimit-Interval-Milliseconds", "10000"},
                             {"X-HubSpot-RateLimit-Secondly", "19"},
                             {"X-HubSpot-RateLimit-Secondly-Remaining", "3"}});
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_RETRY);  // reported with any verdict
    EXPECT_EQ(o.out.rate_limits, (std::vector<RL>{{190, 0, 10000, 0}, {19, 3, 1000, 0}}));
}

TEST_F(HubSpotTest, ReportsNothingWithoutUsableHeaders) {
    EXPECT_TRUE(parse(update_call(), 200, "{}").out.rate_limits.empty());
    // A window without its length, garbage, or a negative count: not a usable report.
    EXPECT_TRUE(parse(update_call(), 200, "{}", {{"X-HubSpot-RateLimit-Remaining", "5"}}).out.rate_limits.empty());
    EXPECT_TRUE(parse(update_call(), 200, "{}", {{"X-HubSpot-RateLimit-Remaining", "five"}, {"X-HubSpot-RateLimit-Interval-Milliseconds", "10000"}})
                    .out.rate_limits.empty());
    EXPECT_TRUE(parse(update_call(), 200, "{}", {{"X-HubSpot-RateLimit-Remaining", "-1"}, {"X-HubSpot-RateLimit-Interval-Milliseconds", "10000"}})
                    .out.rate_limits.empty());
    EXPECT_TRUE(parse(update_call(), 200, "{}", {{"X-HubSpot-RateLimit-Remaining", "3"}, {"X-HubSpot-RateLimit-Interval-Milliseconds", "0"}})
                    .out.rate_limits.empty());
    // Max is optional (0: unknown).
    EXPECT_EQ(parse(update_call(), 200, "{}", {{"X-HubSpot-RateLimit-Remaining", "3"}, {"X-HubSpot-RateLimit-Interval-Milliseconds", "10000"}})
                  .out.rate_limits,
              (std::vector<RL>{{0, 3, 10000, 0}}));
}

// On a 1.0 host (a table without set_rate_limit) the plugin still answers, and never calls
// past the end of the table.
TEST_F(HubSpotTest, NeverCallsSetRateLimitOnAnAbi10Host) {
    const Outcome created = create("{}", &kHost10);
    ASSERT_EQ(created.status, RECSYNC_OK) << created.out.error;
    const Outcome o = parse(update_call(), 200, "{}", {{"X-HubSpot-RateLimit-Remaining", "3"}, {"X-HubSpot-RateLimit-Interval-Milliseconds", "10000"}}, last_);
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_OK);
    EXPECT_TRUE(o.out.rate_limits.empty());
}

TEST_F(HubSpotTest, ParseServerErrorsAndTimeoutsRetry) {
    for (int status : {500, 502, 503, 504, 408}) {
        const Outcome o = parse(update_call(), status, "<html><body>Bad gateway</body></html>");
        ASSERT_EQ(o.status, RECSYNC_OK) << status;
        EXPECT_EQ(o.out.kind, RECSYNC_RESULT_RETRY) << status;
        EXPECT_THAT(o.out.error, HasSubstr(std::to_string(status)));
    }
    const Outcome o = parse(update_call(), 503, "", {{"Retry-After", "7"}});
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_RETRY);
    EXPECT_EQ(o.out.retry_after_ms, 7000);
}

TEST_F(HubSpotTest, ParseClientErrorsFailWithHubSpotsMessage) {
    // HubSpot's Error example from the spec.
    const json spec = json::parse(read_file(HUBSPOT_SPEC_DIR "/crm-contacts-v3.json"));
    Outcome o = parse(create_call(), 400, spec["components"]["schemas"]["Error"]["example"].dump());
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_FAIL);
    EXPECT_THAT(o.out.error, HasSubstr("400"));
    EXPECT_THAT(o.out.error, HasSubstr("Invalid input (details will vary based on the error)"));

    o = parse(update_call(), 401, "Unauthorized");
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_FAIL);
    EXPECT_THAT(o.out.error, HasSubstr("401"));
    EXPECT_THAT(o.out.error, HasSubstr("Unauthorized"));

    o = parse(update_call(), 403, R"({"message": 5})");
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_FAIL);
    EXPECT_THAT(o.out.error, HasSubstr("403"));
}

TEST_F(HubSpotTest, ParseOddStatusesFail) {
    for (int status : {0, -1, 100, 302, 304, 600, 999}) {
        const Outcome o = parse(update_call(), status, "");
        ASSERT_EQ(o.status, RECSYNC_OK) << status;
        EXPECT_EQ(o.out.kind, RECSYNC_RESULT_FAIL) << status;
    }
}

// Whatever comes back, parse_response answers with a verdict and valid UTF-8 text.
TEST_F(HubSpotTest, ParseSurvivesGarbageBodies) {
    const std::string binary("\x00\xff\xfe{\"id\":\x80\"", 10);
    const std::string long_message = json{{"message", std::string(5000, 'x') + "Zoë"}}.dump();
    const std::vector<std::string> bodies = {"", " ", "null", "[]", "{", "}", "\"str\"", "42", "{\"id\":[1]}",
                                             "{\"results\":{}}", "{\"results\":[1]}", "{\"errors\":[null]}",
                                             "{\"message\":null}", binary, long_message, std::string(100000, '{')};
    const std::vector<CallSpec> calls = {create_call(), update_call(), upsert_call(), delete_call(), read_call()};
    for (const auto &c : calls) {
        for (int status : {200, 201, 204, 207, 400, 404, 409, 429, 500}) {
            for (const auto &body : bodies) {
                const Outcome o = parse(c, status, body, {{"Retry-After", body}});
                ASSERT_EQ(o.status, RECSYNC_OK) << status << " " << o.out.error;
                ASSERT_TRUE(o.out.has_result);
                EXPECT_NO_THROW((void)json(o.out.error).dump()) << "error text is not valid UTF-8";
                EXPECT_LE(o.out.error.size(), 400u);
            }
        }
    }
}

TEST_F(HubSpotTest, TokenNeverAppearsInErrorsOrLogs) {
    const std::string echo = json{{"message", "bad token " + std::string(kToken) + " (Existing ID: 5)"}}.dump();
    for (int status : {400, 401, 409, 429, 500}) {
        const Outcome o = parse(create_call(), status, echo);
        EXPECT_THAT(o.out.error, Not(HasSubstr(std::string(kToken)))) << status;
    }
    EXPECT_THAT(parse(create_call(), 400, "raw " + std::string(kToken)).out.error, Not(HasSubstr(std::string(kToken))));
    // Truncating a long message must not leave a prefix of the token behind.
    const std::string cut = json{{"message", std::string(280, 'x') + std::string(kToken)}}.dump();
    EXPECT_THAT(parse(update_call(), 400, cut).out.error, Not(HasSubstr("11111111")));
    EXPECT_THAT(parse(update_call(), 502, std::string(285, 'y') + std::string(kToken)).out.error, Not(HasSubstr("11111111")));
    EXPECT_THAT(build(update_call("")).out.error, Not(HasSubstr(std::string(kToken))));
    EXPECT_THAT(build(upsert_call(R"({"properties":{}})")).out.error, Not(HasSubstr(std::string(kToken))));
    for (const auto &line : logs()) EXPECT_THAT(line, Not(HasSubstr(std::string(kToken))));
}

// The ABI lets the host call one instance from many threads at once.
TEST_F(HubSpotTest, ConcurrentCallsOnOneInstanceAgree) {
    const Outcome ref_build = build(upsert_call());
    const Outcome ref_transform = outbound(R"({"email":"a@b.c","n":1.5})");
    const Outcome ref_parse = parse(create_call(), 429, "{}", {{"Retry-After", "2"}});
    std::vector<std::thread> threads;
    std::atomic<int> mismatches{0};
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 300; ++i) {
                if (build(upsert_call()).out.body != ref_build.out.body) ++mismatches;
                if (outbound(R"({"email":"a@b.c","n":1.5})").out.json_text != ref_transform.out.json_text) ++mismatches;
                if (parse(create_call(), 429, "{}", {{"Retry-After", "2"}}).out.retry_after_ms != ref_parse.out.retry_after_ms)
                    ++mismatches;
            }
        });
    }
    for (auto &t : threads) t.join();
    EXPECT_EQ(mismatches.load(), 0);
}

// ---- conformance with HubSpot's published OpenAPI specs ---------------------------------

struct SpecCase {
    const char *object;
    const char *spec_file;
    const char *payload;
};

const SpecCase kSpecCases[] = {
    {"contacts", "crm-contacts-v3.json", R"({"properties":{"email":"ada@example.com","firstname":"Ada","age":"36"}})"},
    {"companies", "crm-companies-v3.json", R"({"properties":{"name":"Acme","domain":"acme.example"}})"},
    {"deals", "crm-deals-v3.json", R"({"properties":{"dealname":"Big one","amount":"1500.5","hs_object_id":"77"}})"},
};

bool path_matches(std::string_view tmpl, std::string_view path) {
    if (const auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
    while (!tmpl.empty() || !path.empty()) {
        if (tmpl.empty() || path.empty() || tmpl[0] != '/' || path[0] != '/') return false;
        tmpl.remove_prefix(1);
        path.remove_prefix(1);
        const auto t_end = std::min(tmpl.find('/'), tmpl.size());
        const auto p_end = std::min(path.find('/'), path.size());
        const std::string_view t = tmpl.substr(0, t_end), p = path.substr(0, p_end);
        const bool param = t.size() > 2 && t.front() == '{' && t.back() == '}';
        if (param ? p.empty() : t != p) return false;
        tmpl.remove_prefix(t_end);
        path.remove_prefix(p_end);
    }
    return true;
}

// The spec's operation for this method + concrete path, or null.
const json *find_operation(const json &spec, std::string method, std::string_view path) {
    for (auto &c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const auto &[tmpl, item] : spec["paths"].items()) {
        if (path_matches(tmpl, path) && item.contains(method)) return &item[method];
    }
    return nullptr;
}

// Validate `body` against the operation's declared JSON request body schema. The schema
// is given to valijson inside a document that also carries the spec's components, so the
// "#/components/schemas/..." $refs resolve locally.
std::vector<std::string> spec_violations(const json &spec, const json &operation, const json &body) {
    const json &schema_node = operation.at("requestBody").at("content").at("application/json").at("schema");
    json root = schema_node;
    root["components"] = spec.at("components");
    valijson::Schema schema;
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    valijson::adapters::NlohmannJsonAdapter root_doc(root);
    parser.populateSchema(root_doc, schema);
    valijson::Validator validator;
    valijson::ValidationResults results;
    valijson::adapters::NlohmannJsonAdapter target(body);
    std::vector<std::string> errors;
    if (!validator.validate(schema, target, &results)) {
        valijson::ValidationResults::Error e;
        while (results.popError(e)) {
            std::string where;
            for (const auto &c : e.context) where += c;
            errors.push_back(where + ": " + e.description);
        }
        if (errors.empty()) errors.push_back("invalid");
    }
    return errors;
}

TEST_F(HubSpotTest, RequestsConformToHubSpotsOpenApiSpec) {
    for (const auto &sc : kSpecCases) {
        SCOPED_TRACE(sc.object);
        const json spec = json::parse(read_file(std::string(HUBSPOT_SPEC_DIR "/") + sc.spec_file));
        ASSERT_EQ(create(R"({"key_properties": {"deals": "dealname"}})").status, RECSYNC_OK);
        void *inst = last_;

        // Every action's method + path is declared; the ones with a body validate against
        // the declared requestBody schema.
        for (recsync_action action : {RECSYNC_ACTION_CREATE, RECSYNC_ACTION_UPDATE, RECSYNC_ACTION_UPSERT, RECSYNC_ACTION_DELETE,
                                      RECSYNC_ACTION_READ}) {
            SCOPED_TRACE(static_cast<int>(action));
            CallSpec c{action, sc.object, "12345", sc.payload};
            if (action == RECSYNC_ACTION_DELETE || action == RECSYNC_ACTION_READ) c.payload.clear();
            const Outcome o = build(c, inst);
            ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
            const json *op = find_operation(spec, o.out.method, o.out.path);
            ASSERT_NE(op, nullptr) << o.out.method << " " << o.out.path << " is not in " << sc.spec_file;
            if (op->contains("requestBody")) {
                ASSERT_FALSE(o.out.body.empty());
                const json body = o.out.parsed_body();
                std::vector<std::string> errors;
                ASSERT_NO_THROW(errors = spec_violations(spec, *op, body));
                EXPECT_TRUE(errors.empty()) << o.out.method << " " << o.out.path << " " << body.dump() << "\n"
                                            << ::testing::PrintToString(errors);
            } else {
                EXPECT_TRUE(o.out.body.empty());
            }
        }
    }
}

TEST_F(HubSpotTest, FindRequestsConformToHubSpotsOpenApiSpec) {
    ASSERT_EQ(create(R"({"lookup_properties": {"contacts": "firstname", "companies": "name", "deals": "dealname"}})").status, RECSYNC_OK);
    void *inst = last_;
    for (const auto &sc : kSpecCases) {
        SCOPED_TRACE(sc.object);
        const json spec = json::parse(read_file(std::string(HUBSPOT_SPEC_DIR "/") + sc.spec_file));
        const Outcome o = build(CallSpec{RECSYNC_ACTION_FIND, sc.object, "", sc.payload}, inst);
        ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
        EXPECT_EQ(o.out.method, "POST");
        const json *op = find_operation(spec, o.out.method, o.out.path);
        ASSERT_NE(op, nullptr) << o.out.path << " is not in " << sc.spec_file;
        const json body = o.out.parsed_body();
        std::vector<std::string> errors;
        ASSERT_NO_THROW(errors = spec_violations(spec, *op, body));
        EXPECT_TRUE(errors.empty()) << body.dump() << "\n" << ::testing::PrintToString(errors);
    }
}

// Every batch endpoint's request (ABI 1.6) is declared in the spec and its body validates.
TEST_F(HubSpotTest, BatchRequestsConformToHubSpotsOpenApiSpec) {
    ASSERT_EQ(create(R"({"key_properties": {"deals": "dealname"}, "read_properties": {"contacts": ["email", "firstname"]}})").status, RECSYNC_OK);
    void *inst = last_;
    for (const auto &sc : kSpecCases) {
        SCOPED_TRACE(sc.object);
        const json spec = json::parse(read_file(std::string(HUBSPOT_SPEC_DIR "/") + sc.spec_file));
        for (recsync_action action : {RECSYNC_ACTION_CREATE, RECSYNC_ACTION_UPDATE, RECSYNC_ACTION_UPSERT, RECSYNC_ACTION_DELETE, RECSYNC_ACTION_READ}) {
            SCOPED_TRACE(static_cast<int>(action));
            std::vector<CallSpec> calls;
            for (int i = 0; i < 3; ++i) {
                CallSpec c{action, sc.object, std::to_string(100 + i), sc.payload};
                if (action == RECSYNC_ACTION_DELETE || action == RECSYNC_ACTION_READ) c.payload.clear();
                calls.push_back(c);
            }
            if (action == RECSYNC_ACTION_UPSERT)  // three different keys, as three records have
                for (int i = 0; i < 3; ++i) {
                    json p = json::parse(calls[i].payload);
                    for (auto &[k, v] : p["properties"].items()) v = v.get<std::string>() + std::to_string(i);
                    calls[i].payload = p.dump();
                }
            const Outcome o = build_batch(calls, inst);
            ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
            EXPECT_EQ(o.out.method, "POST");
            const json *op = find_operation(spec, o.out.method, o.out.path);
            ASSERT_NE(op, nullptr) << o.out.path << " is not in " << sc.spec_file;
            const json body = o.out.parsed_body();
            ASSERT_EQ(body["inputs"].size(), 3u) << body.dump();
            std::vector<std::string> errors;
            ASSERT_NO_THROW(errors = spec_violations(spec, *op, body));
            EXPECT_TRUE(errors.empty()) << o.out.path << " " << body.dump() << "\n" << ::testing::PrintToString(errors);
            ASSERT_NE(o.out.header("Authorization"), nullptr);
            EXPECT_TRUE(o.out.header("Authorization")->flags & RECSYNC_HEADER_SECRET);
        }
    }
}

// A batch's answer becomes one verdict per record, matched by objectWriteTraceId whatever
// the order, by id or key otherwise, with each error's own reason and status.
TEST_F(HubSpotTest, BatchAnswersGiveEachRecordItsOwnVerdict) {
    const std::vector<CallSpec> creates = {create_call(R"({"properties":{"email":"a@example.com"}})"), create_call(R"({"properties":{"email":"b@example.com"}})"),
                                           create_call(R"({"properties":{"email":"c@example.com"}})")};
    // Created, answered in another order; the third has no result (retried by the host).
    Outcome o = parse_batch(creates, 201,
                            R"({"status":"COMPLETE","results":[{"id":"12","objectWriteTraceId":"1","properties":{"email":"b@example.com"},"updatedAt":"2026-01-02T03:04:05Z"},)"
                            R"({"id":"11","objectWriteTraceId":"0","properties":{"email":"a@example.com"}}]})",
                            {{"X-HubSpot-RateLimit-Max", "190"}, {"X-HubSpot-RateLimit-Remaining", "100"}, {"X-HubSpot-RateLimit-Interval-Milliseconds", "10000"}});
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    EXPECT_FALSE(o.out.has_result) << "no verdict for the batch as a whole";
    ASSERT_EQ(o.out.items.count(0) + o.out.items.count(1), 2u);
    EXPECT_EQ(o.out.items[0].external_id, "11");
    EXPECT_EQ(o.out.items[1].external_id, "12");
    EXPECT_NE(o.out.items[1].json_text.find("2026-01-02T03:04:05Z"), std::string::npos) << "its updatedAt, for echo suppression";
    EXPECT_EQ(o.out.items.count(2), 0u);
    ASSERT_FALSE(o.out.rate_limits.empty());
    EXPECT_EQ(o.out.rate_limits[0][1], 100);

    // An upsert's results without trace ids: matched by the key, case-insensitively for email.
    std::vector<CallSpec> upserts = creates;
    for (auto &c : upserts) c.action = RECSYNC_ACTION_UPSERT;
    o = parse_batch(upserts, 207,
                    R"({"status":"COMPLETE","results":[{"id":"7","properties":{"email":"C@Example.com"}}],)"
                    R"("errors":[{"status":"error","category":"CONFLICT","message":"Contact already exists. Existing ID: 9","context":{"id":["a@example.com"]}}]})");
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    EXPECT_EQ(o.out.items[2].external_id, "7");
    EXPECT_EQ(o.out.items[0].kind, RECSYNC_RESULT_FAIL);
    EXPECT_EQ(o.out.items[0].status, 409);
    EXPECT_NE(o.out.items[0].error.find("Existing ID: 9"), std::string::npos) << o.out.items[0].error;
    EXPECT_EQ(o.out.items.count(1), 0u);

    // An update whose second id is gone: that record's 404, the others done.
    const std::vector<CallSpec> updates = {update_call("501"), update_call("502"), update_call("503")};
    o = parse_batch(updates, 207,
                    R"({"status":"COMPLETE","results":[{"id":"501","properties":{}},{"id":"503","properties":{}}],)"
                    R"("errors":[{"status":"error","category":"OBJECT_NOT_FOUND","message":"Object not found.","context":{"ids":["502"]}}]})");
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    EXPECT_EQ(o.out.items[0].kind, RECSYNC_RESULT_OK);
    EXPECT_EQ(o.out.items[1].kind, RECSYNC_RESULT_FAIL);
    EXPECT_EQ(o.out.items[1].status, 404);
    EXPECT_EQ(o.out.items[2].external_id, "503");

    // The batch as a whole: a 409 on create fails it (the host sends each alone), a 429
    // retries it after Retry-After, a 204 archive is every record's success.
    o = parse_batch(creates, 409, R"({"status":"error","message":"Contact already exists. Existing ID: 9","category":"CONFLICT"})");
    ASSERT_TRUE(o.out.has_result);
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_FAIL);
    EXPECT_TRUE(o.out.items.empty());
    o = parse_batch(creates, 429, R"({"status":"error","message":"You have reached your ten_secondly_rolling limit.","category":"RATE_LIMITS"})", {{"Retry-After", "3"}});
    EXPECT_EQ(o.out.kind, RECSYNC_RESULT_RETRY);
    EXPECT_EQ(o.out.retry_after_ms, 3000);
    std::vector<CallSpec> deletes = updates;
    for (auto &c : deletes) c.action = RECSYNC_ACTION_DELETE;
    o = parse_batch(deletes, 204, "");
    ASSERT_EQ(o.out.items.size(), 3u);
    EXPECT_EQ(o.out.items[1].external_id, "502");
    // No secret in any reason, even when the answer echoes it.
    o = parse_batch(creates, 400, R"({"message":"bad token )" + std::string(kToken) + R"("})");
    EXPECT_EQ(o.out.error.find(kToken), std::string::npos) << o.out.error;
}

// Guards the conformance test itself: the validator must really reject what the spec
// forbids, e.g. a create without "associations" or a non-string property value.
TEST_F(HubSpotTest, SpecValidationCatchesViolations) {
    const json spec = json::parse(read_file(HUBSPOT_SPEC_DIR "/crm-contacts-v3.json"));
    const json *create_op = find_operation(spec, "POST", "/crm/v3/objects/contacts");
    ASSERT_NE(create_op, nullptr);
    EXPECT_FALSE(spec_violations(spec, *create_op, json::parse(R"({"properties":{"email":"a@b.c"}})")).empty());
    EXPECT_FALSE(spec_violations(spec, *create_op, json::parse(R"({"properties":{"n":1},"associations":[]})")).empty());
    const json *upsert_op = find_operation(spec, "POST", "/crm/v3/objects/contacts/batch/upsert");
    ASSERT_NE(upsert_op, nullptr);
    EXPECT_FALSE(spec_violations(spec, *upsert_op, json::parse(R"({"inputs":[{"idProperty":"email","properties":{}}]})")).empty());
    EXPECT_EQ(find_operation(spec, "PUT", "/crm/v3/objects/contacts/1"), nullptr);
    EXPECT_EQ(find_operation(spec, "GET", "/crm/v3/objects/contacts/1/extra"), nullptr);
    EXPECT_EQ(find_operation(spec, "GET", "/crm/v3/objects/deals/1"), nullptr);
}


// ---- webhooks (hubspot_webhooks.cpp) -----------------------------------------------------

constexpr std::string_view kSecret = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";  // HubSpot's documentation's example
constexpr std::string_view kHookUrl = "https://www.example.com/webhook_uri";

int64_t now_ms() { return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count(); }

// The v3 signature by an independent implementation: Python's hmac, hashlib and base64,
// with HubSpot's URI rule written out again there.
std::string python_v3(std::string_view secret, std::string_view method, std::string_view uri, std::string_view body, std::string_view ts) {
    char path[] = "/tmp/recsync-hook-XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) throw std::runtime_error("mkstemp");
    const std::string input = json{{"secret", secret}, {"method", method}, {"uri", uri}, {"body", body}, {"ts", ts}}.dump();
    if (write(fd, input.data(), input.size()) != static_cast<ssize_t>(input.size())) throw std::runtime_error("write");
    close(fd);
    const std::string cmd = std::string("python3 -c '") +
                            "import sys,json,hmac,hashlib,base64\n"
                            "d=json.load(open(sys.argv[1]))\n"
                            "uri=d[\"uri\"]\n"
                            "for e,c in [(\"%3A\",\":\"),(\"%2F\",\"/\"),(\"%3F\",\"?\"),(\"%40\",\"@\"),(\"%21\",\"!\"),(\"%24\",\"$\"),(\"%27\",chr(39)),(\"%28\",\"(\"),(\"%29\",\")\"),(\"%2A\",\"*\"),(\"%2C\",\",\"),(\"%3B\",\";\")]:\n"
                            "  uri=uri.replace(e,c)\n"
                            "src=(d[\"method\"]+uri+d[\"body\"]+d[\"ts\"]).encode()\n"
                            "print(base64.b64encode(hmac.new(d[\"secret\"].encode(),src,hashlib.sha256).digest()).decode())\n"
                            "' " + path;
    FILE *p = popen(cmd.c_str(), "r");
    if (!p) throw std::runtime_error("popen python3");
    char buf[256] = {};
    const size_t n = fread(buf, 1, sizeof buf - 1, p);
    const int rc = pclose(p);
    unlink(path);
    if (rc != 0 || n == 0) throw std::runtime_error("python3 failed");
    std::string sig(buf, n);
    while (!sig.empty() && (sig.back() == '\n' || sig.back() == '\r')) sig.pop_back();
    return sig;
}

class HubSpotWebhookTest : public HubSpotTest {
protected:
    void *hooks(std::string_view versions = R"(["v3"])") {
        const std::string cfg = std::string(R"({"webhook_url": ")") + std::string(kHookUrl) + R"(", "webhook_signatures": )" + std::string(versions) +
                                R"(, "credentials": {"client_secret": ")" + std::string(kSecret) + R"("}})";
        const Outcome c = create(cfg);
        EXPECT_EQ(c.status, RECSYNC_OK) << c.out.error;
        return last_;
    }
    Outcome deliver(void *inst, std::string_view method, std::string_view path, std::string_view body, const std::vector<std::pair<std::string, std::string>> &headers) {
        Outcome o;
        std::vector<recsync_header> hs;
        for (const auto &[n, v] : headers) hs.push_back({rs(n), rs(v)});
        const recsync_webhook w{sizeof(recsync_webhook), rs(method), rs(path), hs.data(), hs.size(), rs(body)};
        o.status = provider_->parse_webhook(inst, &w, as_out(o.out));
        return o;
    }
    // A v3-signed POST of `body` to `path_and_query` (signed as kHookUrl + its query).
    Outcome signed_v3(void *inst, std::string_view query, std::string_view body, int64_t ts, std::string_view secret = kSecret,
                      std::string_view sign_query = {}, std::string_view sign_body = {}) {
        const std::string ts_text = std::to_string(ts);
        const std::string sig = python_v3(secret, "POST", std::string(kHookUrl) + std::string(sign_query.empty() ? query : sign_query),
                                          sign_body.empty() ? body : sign_body, ts_text);
        return deliver(inst, "POST", "/v1/webhooks/hubspot-eu" + std::string(query), body,
                       {{"X-HubSpot-Signature-v3", sig}, {"X-HubSpot-Request-Timestamp", ts_text}, {"Content-Type", "application/json"}});
    }
};

const std::string kHookBody =
    R"([{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.propertyChange","attemptNumber":0,)"
    R"("objectId":123,"changeSource":"CRM","propertyName":"email","propertyValue":"ada@example.com","appId":54321}])";

TEST_F(HubSpotWebhookTest, DocumentedV1AndV2ExamplesVerify) {
    void *inst = hooks(R"(["v1", "v2"])");
    // developers.hubspot.com, "v1 request validation": the example body and its hash.
    const std::string v1_body =
        R"([{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}])";
    Outcome o = deliver(inst, "POST", "/v1/webhooks/hubspot-eu", v1_body,
                        {{"X-HubSpot-Signature-Version", "v1"}, {"X-HubSpot-Signature", "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"}});
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    const json events = o.out.parsed()["events"];
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0]["object"], "contacts");
    EXPECT_EQ(events[0]["event"], "created");
    EXPECT_EQ(events[0]["external_id"], "123");
    EXPECT_EQ(events[0]["hydrate"], true);
    // "v2 request validation": a GET of the URI, no body. The signature holds; the empty
    // body is then refused as input, not as a forgery.
    o = deliver(inst, "GET", "/v1/webhooks/hubspot-eu", "",
                {{"X-HubSpot-Signature-Version", "v2"}, {"X-HubSpot-Signature", "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"}});
    EXPECT_EQ(o.status, RECSYNC_ERR_INVALID_INPUT) << o.out.error;
    // One digit off: refused.
    o = deliver(inst, "POST", "/v1/webhooks/hubspot-eu", v1_body,
                {{"X-HubSpot-Signature-Version", "v1"}, {"X-HubSpot-Signature", "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817df"}});
    EXPECT_EQ(o.status, RECSYNC_ERR_UNAUTHENTICATED);
}

TEST_F(HubSpotWebhookTest, V3SignaturesOfPythonsHmacVerify) {
    void *inst = hooks();
    const int64_t ts = now_ms();
    // No query; a query with escapes HubSpot decodes (%3A %2F %40 ...) and one it does not (%20).
    for (const std::string query : {"", "?a=b", "?next=https%3A%2F%2Fx.example%2Fy%3Fz%3D1&who=me%40x&sp=a%20b&p=%21%24%27%28%29%2A%2C%3B"}) {
        SCOPED_TRACE(query);
        const Outcome o = signed_v3(inst, query, kHookBody, ts);
        ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
        EXPECT_EQ(o.out.parsed()["events"].size(), 1u);
    }
}

TEST_F(HubSpotWebhookTest, V3RefusesWhatIsNotExactlySigned) {
    void *inst = hooks();
    const int64_t ts = now_ms();
    struct Case {
        const char *what;
        Outcome o;
    };
    std::vector<Case> cases;
    cases.push_back({"wrong secret", signed_v3(inst, "", kHookBody, ts, "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz")});
    std::string altered = kHookBody;
    altered.replace(altered.find("ada@"), 4, "eve@");
    cases.push_back({"altered body", signed_v3(inst, "", altered, ts, kSecret, {}, kHookBody)});
    cases.push_back({"altered URI", signed_v3(inst, "?a=c", kHookBody, ts, kSecret, "?a=b")});
    cases.push_back({"stale timestamp", signed_v3(inst, "", kHookBody, ts - 301'000)});
    cases.push_back({"future timestamp", signed_v3(inst, "", kHookBody, ts + 120'000)});
    cases.push_back({"no signature", deliver(inst, "POST", "/v1/webhooks/hubspot-eu", kHookBody, {})});
    cases.push_back({"absurd timestamp", deliver(inst, "POST", "/v1/webhooks/hubspot-eu", kHookBody,
                                                 {{"X-HubSpot-Signature-v3", "x"}, {"X-HubSpot-Request-Timestamp", "-9223372036854775808"}})});
    cases.push_back({"v1 not accepted",
                     deliver(inst, "POST", "/v1/webhooks/hubspot-eu", kHookBody, {{"X-HubSpot-Signature-Version", "v1"}, {"X-HubSpot-Signature", "00"}})});
    for (const auto &c : cases) {
        SCOPED_TRACE(c.what);
        EXPECT_EQ(c.o.status, RECSYNC_ERR_UNAUTHENTICATED) << c.o.out.error;
        EXPECT_FALSE(c.o.out.has_json);
        EXPECT_FALSE(c.o.out.error.empty());
        EXPECT_THAT(c.o.out.error, Not(HasSubstr(std::string(kSecret))));
    }
    EXPECT_THAT(cases[3].o.out.error, HasSubstr("old"));
    EXPECT_THAT(cases[4].o.out.error, HasSubstr("future"));
    // Within the five minutes it holds.
    EXPECT_EQ(signed_v3(inst, "", kHookBody, ts - 290'000).status, RECSYNC_OK);
}

TEST_F(HubSpotWebhookTest, ConfigNeedsTheSecretAndKnownVersions) {
    Outcome o = create(R"({"webhook_url": "https://x.example/h"})");
    EXPECT_EQ(o.status, RECSYNC_ERR_CONFIG);
    EXPECT_THAT(o.out.error, HasSubstr("client_secret"));
    o = create(R"({"webhook_url": "https://x.example/h", "credentials": {"client_secret": "s"}, "webhook_signatures": ["v4"]})");
    EXPECT_EQ(o.status, RECSYNC_ERR_CONFIG);
    EXPECT_THAT(o.out.error, HasSubstr("v4"));
    o = create(R"({"webhook_url": "ftp://x.example/h", "credentials": {"client_secret": "s"}})");
    EXPECT_EQ(o.status, RECSYNC_ERR_CONFIG);
    // Without a webhook_url every delivery is refused.
    const Outcome d = deliver(instance_, "POST", "/v1/webhooks/x", kHookBody, {});
    EXPECT_EQ(d.status, RECSYNC_ERR_UNAUTHENTICATED);
    EXPECT_THAT(d.out.error, HasSubstr("webhook_url"));
}

TEST_F(HubSpotWebhookTest, EventsNameTheChangeNotTheDelivery) {
    void *inst = hooks();
    const int64_t ts = now_ms();
    // The same change delivered twice (HubSpot retries with a new eventId and attempt) has
    // one id; another property changed at the same time has another.
    const std::string body =
        R"([{"eventId":7,"attemptNumber":0,"occurredAt":1700000000000,"subscriptionType":"contact.propertyChange","objectId":9,"propertyName":"email","propertyValue":"a@b.c"},)"
        R"({"eventId":8,"attemptNumber":1,"occurredAt":1700000000000,"subscriptionType":"contact.propertyChange","objectId":9,"propertyName":"email","propertyValue":"a@b.c"},)"
        R"({"eventId":9,"occurredAt":1700000000000,"subscriptionType":"contact.propertyChange","objectId":9,"propertyName":"phone","propertyValue":"1"},)"
        R"({"eventId":10,"occurredAt":1700000000001,"subscriptionType":"company.deletion","objectId":"44"},)"
        R"({"eventId":11,"occurredAt":1700000000002,"subscriptionType":"contact.merge","objectId":9,"primaryObjectId":9,"mergedObjectIds":[9,10],"newObjectId":12},)"
        R"({"eventId":12,"occurredAt":1700000000003,"subscriptionType":"object.propertyChange","objectTypeId":"0-3","objectId":5,"propertyName":"amount","propertyValue":"10"},)"
        R"({"eventId":13,"occurredAt":1700000000004,"subscriptionType":"contact.associationChange","objectId":9}])";
    const Outcome o = signed_v3(inst, "", body, ts);
    ASSERT_EQ(o.status, RECSYNC_OK) << o.out.error;
    const json e = o.out.parsed()["events"];
    ASSERT_EQ(e.size(), 8u) << e.dump();
    EXPECT_EQ(e[0]["id"], e[1]["id"]);
    EXPECT_NE(e[0]["id"], e[2]["id"]);
    EXPECT_EQ(e[0]["occurred_at"], 1700000000000);
    EXPECT_EQ(e[0]["data"], json::parse(R"({"id":"9","properties":{"email":"a@b.c"}})"));
    EXPECT_EQ(e[3]["object"], "companies");
    EXPECT_EQ(e[3]["event"], "deleted");
    EXPECT_FALSE(e[3].contains("hydrate"));
    // A merge: the new record changed, both merged ones are gone.
    EXPECT_EQ(e[4]["external_id"], "12");
    EXPECT_EQ(e[4]["event"], "updated");
    EXPECT_EQ(e[5]["external_id"], "9");
    EXPECT_EQ(e[5]["event"], "deleted");
    EXPECT_EQ(e[6]["external_id"], "10");
    EXPECT_NE(e[5]["id"], e[6]["id"]);
    EXPECT_EQ(e[7]["object"], "deals");
}

TEST_F(HubSpotWebhookTest, BodiesThatAreNotHubSpotEventsAreInvalidInput) {
    void *inst = hooks();
    for (const std::string body : {"{}", "not json", "[1]", R"([{"subscriptionType":"contact.creation","occurredAt":1}])", R"([{"subscriptionType":"x","objectId":1,"occurredAt":1}])"}) {
        SCOPED_TRACE(body);
        const Outcome o = signed_v3(inst, "", body, now_ms());
        EXPECT_EQ(o.status, RECSYNC_ERR_INVALID_INPUT) << o.out.error;
    }
}

// Each write's answer carries the record's updatedAt: the stamp its echo will show
// (provider_abi.h, parse_response), by the fast path and the document path alike.
TEST_F(HubSpotTest, WritesReportTheirModificationStamp) {
    const std::string object = R"({"id":"7","properties":{"email":"a@b.c"},"updatedAt":"2026-12-02T03:00:00.000Z"})";
    for (const auto &[call, body] : std::vector<std::pair<CallSpec, std::string>>{
             {create_call(), object},
             {update_call("7"), object},
             {upsert_call(), R"({"status":"COMPLETE","results":[)" + object + "]}"},
             {create_call(), R"({"updatedAt":"2026-12-02T03:00:00.000Z","properties":{},"id":"7"})"}}) {  // keys out of order: the document path
        const Outcome o = parse(call, 200, body);
        ASSERT_EQ(o.out.kind, RECSYNC_RESULT_OK) << o.out.error;
        ASSERT_TRUE(o.out.has_json) << body;
        EXPECT_EQ(o.out.parsed(), json::parse(R"({"modified":"2026-12-02T03:00:00.000Z"})"));
    }
    // No stamp in the answer, or a delete: nothing reported.
    EXPECT_FALSE(parse(create_call(), 201, R"({"id":"7"})").out.has_json);
    EXPECT_FALSE(parse(delete_call("7"), 204, "").out.has_json);
}

TEST_F(HubSpotTest, ReadAnswersWithTheRecordAndAsksForConfiguredProperties) {
    const Outcome o = parse(read_call("501"), 200, R"({"id":"501","properties":{"email":"a@b.c"},"createdAt":"x","updatedAt":"2026-12-02T03:00:00.123Z","archived":false})");
    ASSERT_EQ(o.out.kind, RECSYNC_RESULT_OK);
    ASSERT_TRUE(o.out.has_json);
    EXPECT_EQ(o.out.parsed(), json::parse(R"({"record":{"id":"501","properties":{"email":"a@b.c"}},"modified":"2026-12-02T03:00:00.123Z"})"));
    EXPECT_EQ(parse(read_call("501"), 200, R"({"id":"501"})").out.kind, RECSYNC_RESULT_FAIL);
    ASSERT_EQ(create(R"({"read_properties": {"contacts": ["email", "firstname"]}})").status, RECSYNC_OK);
    const Outcome b = build(read_call("501"), last_);
    ASSERT_EQ(b.status, RECSYNC_OK) << b.out.error;
    EXPECT_EQ(b.out.path, "/crm/v3/objects/contacts/501?properties=email,firstname");
    EXPECT_EQ(create(R"({"read_properties": {"contacts": []}})").status, RECSYNC_ERR_CONFIG);
}


// ---- polling (hubspot_poll.cpp) ----------------------------------------------------------

class HubSpotPollTest : public HubSpotTest {
protected:
    void *poller(std::string_view extra = "") {
        const std::string cfg = std::string(R"({"poll_overlap_s": 30, "poll_page_size": 3, "poll_since": "beginning", "poll_deletions_every_s": 0)") + std::string(extra) + "}";
        const Outcome c = create(cfg);
        EXPECT_EQ(c.status, RECSYNC_OK) << c.out.error;
        return last_;
    }
    Outcome request(void *inst, std::string_view object, std::string_view cursor) {
        Outcome o;
        o.status = provider_->build_poll_request(inst, rs(object), rs(cursor), rs(kToken), as_out(o.out));
        return o;
    }
    Outcome page(void *inst, std::string_view object, std::string_view cursor, int status, std::string_view body) {
        Outcome o;
        const recsync_response resp{sizeof(recsync_response), status, nullptr, 0, rs(body), rs(cursor)};
        o.status = provider_->parse_poll_response(inst, rs(object), &resp, as_out(o.out));
        return o;
    }
    // A search answer with records {id, modified ms}.
    static std::string results(const std::vector<std::pair<std::string, int64_t>> &records, std::string_view modified = "lastmodifieddate") {
        json r = json::array();
        for (const auto &[id, ms] : records) {
            const std::string at = iso(ms);
            r.push_back({{"id", id}, {"properties", {{std::string(modified), at}, {"hs_object_id", id}, {"email", id + "@example.com"}}}, {"createdAt", iso(1000)}, {"updatedAt", at}});
        }
        return json{{"total", records.size()}, {"results", r}}.dump();
    }
    static std::string iso(int64_t ms) {
        const std::time_t secs = ms / 1000;
        std::tm tm{};
        gmtime_r(&secs, &tm);
        char buf[40];
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                      static_cast<int>(ms % 1000));
        return buf;
    }
    static json filters(const Output &o) { return o.parsed_body()["filterGroups"][0]["filters"]; }
};

TEST_F(HubSpotPollTest, TimeModeSearchesAfterTheCursorUpToAnOverlapBehindNow) {
    void *inst = poller(R"(, "read_properties": {"contacts": ["email", "firstname"]})");
    const int64_t before = now_ms();
    const Outcome r = request(inst, "contacts", R"({"t":1700000000000})");
    ASSERT_EQ(r.status, RECSYNC_OK) << r.out.error;
    EXPECT_EQ(r.out.method, "POST");
    EXPECT_EQ(r.out.path, "/crm/v3/objects/contacts/search");
    ASSERT_NE(r.out.header("Authorization"), nullptr);
    EXPECT_EQ(r.out.header("Authorization")->flags, RECSYNC_HEADER_SECRET);
    const json body = r.out.parsed_body();
    const json f = filters(r.out);
    ASSERT_EQ(f.size(), 2u);
    EXPECT_EQ(f[0], json({{"propertyName", "lastmodifieddate"}, {"operator", "GT"}, {"value", "1700000000000"}}));
    EXPECT_EQ(f[1]["operator"], "LTE");
    const int64_t upper = std::stoll(f[1]["value"].get<std::string>());
    EXPECT_GE(upper, before - 30'000);
    EXPECT_LE(upper, now_ms() - 30'000);
    EXPECT_EQ(body["sorts"], json::parse(R"([{"propertyName":"lastmodifieddate","direction":"ASCENDING"}])"));
    EXPECT_EQ(body["limit"], 3);
    EXPECT_EQ(body["properties"], json::parse(R"(["lastmodifieddate","hs_object_id","createdate","email","firstname"])"));
    // Other objects keep their date in hs_lastmodifieddate.
    const Outcome companies = request(inst, "companies", R"({"t":5})");
    ASSERT_EQ(companies.status, RECSYNC_OK) << companies.out.error;
    EXPECT_EQ(filters(companies.out)[0]["propertyName"], "hs_lastmodifieddate");
    EXPECT_FALSE(companies.out.parsed_body().contains("properties"));
}

TEST_F(HubSpotPollTest, AShortPageMovesTheCursorToItsLastRecordWithOneEventEach) {
    void *inst = poller();
    const Outcome p = page(inst, "contacts", R"({"t":1000})", 200, results({{"7", 1000}, {"8", 1'700'000'000'123}}));
    ASSERT_EQ(p.status, RECSYNC_OK) << p.out.error;
    const json j = p.out.parsed();
    EXPECT_EQ(j["more"], false);
    EXPECT_EQ(json::parse(j["cursor"].get<std::string>()), json({{"t", 1'700'000'000'123}}));
    ASSERT_EQ(j["events"].size(), 2u);
    const json &e = j["events"][1];
    EXPECT_EQ(e["object"], "contacts");
    EXPECT_EQ(e["event"], "updated");
    EXPECT_EQ(e["external_id"], "8");
    EXPECT_EQ(e["id"], "poll:8:1700000000123");
    EXPECT_EQ(e["occurred_at"], 1'700'000'000'123);
    EXPECT_EQ(e["modified"], "2023-11-14T22:13:20.123Z");
    EXPECT_EQ(e["data"]["id"], "8");
    EXPECT_EQ(e["data"]["properties"]["email"], "8@example.com");
    EXPECT_FALSE(e.contains("hydrate")) << "a search result is the record: nothing to read";
    EXPECT_EQ(j["events"][0]["event"], "created") << "createdAt == updatedAt";
    // An empty page keeps the cursor.
    const Outcome empty = page(inst, "contacts", R"({"t":1000})", 200, results({}));
    ASSERT_EQ(empty.status, RECSYNC_OK) << empty.out.error;
    EXPECT_EQ(empty.out.parsed()["cursor"], R"({"t":1000})");
    EXPECT_EQ(empty.out.parsed()["more"], false);
}

// A full page may stop inside a timestamp: the rest of it is paged by id (keyset), so
// any number of records sharing one timestamp neither loops nor stops at 10,000.
TEST_F(HubSpotPollTest, AFullPageContinuesByIdWithinItsLastTimestamp) {
    void *inst = poller();
    Outcome p = page(inst, "contacts", R"({"t":1000})", 200, results({{"3", 2000}, {"9", 5000}, {"4", 5000}}));
    ASSERT_EQ(p.status, RECSYNC_OK) << p.out.error;
    json j = p.out.parsed();
    EXPECT_EQ(j["more"], true);
    const std::string tie = j["cursor"];
    EXPECT_EQ(json::parse(tie), json({{"t", 5000}, {"tie", true}, {"id", "0"}})) << "ties come back in any order: the whole timestamp is read again by id";
    const Outcome r = request(inst, "contacts", tie);
    ASSERT_EQ(r.status, RECSYNC_OK) << r.out.error;
    EXPECT_EQ(filters(r.out), json::parse(R"([{"propertyName":"lastmodifieddate","operator":"EQ","value":"5000"},
                                              {"propertyName":"hs_object_id","operator":"GT","value":"0"}])"));
    EXPECT_EQ(r.out.parsed_body()["sorts"], json::parse(R"([{"propertyName":"hs_object_id","direction":"ASCENDING"}])"));
    // A full tie page goes on after its last id; a short one closes the timestamp.
    p = page(inst, "contacts", tie, 200, results({{"4", 5000}, {"9", 5000}, {"12", 5000}}));
    j = p.out.parsed();
    EXPECT_EQ(json::parse(j["cursor"].get<std::string>()), json({{"t", 5000}, {"tie", true}, {"id", "12"}}));
    EXPECT_EQ(j["events"][0]["id"], "poll:4:5000") << "the repeat of the time page's record has the same event id";
    EXPECT_EQ(j["more"], true);
    p = page(inst, "contacts", j["cursor"].get<std::string>(), 200, results({{"15", 5000}}));
    j = p.out.parsed();
    EXPECT_EQ(json::parse(j["cursor"].get<std::string>()), json({{"t", 5000}}));
    EXPECT_EQ(j["more"], true) << "after a tie run the time window is read at once";
}

TEST_F(HubSpotPollTest, StartingAtNowProbesTheNewestChangeAndBacksOffTheOverlap) {
    const Outcome c = create(R"({"poll_overlap_s": 10})");
    ASSERT_EQ(c.status, RECSYNC_OK) << c.out.error;
    const Outcome r = request(last_, "deals", "");
    ASSERT_EQ(r.status, RECSYNC_OK) << r.out.error;
    EXPECT_EQ(r.out.path, "/crm/v3/objects/0-3/search");
    EXPECT_EQ(r.out.parsed_body()["sorts"], json::parse(R"([{"propertyName":"hs_lastmodifieddate","direction":"DESCENDING"}])"));
    EXPECT_EQ(r.out.parsed_body()["limit"], 1);
    const Outcome p = page(last_, "deals", "", 200, results({{"50", 1'000'000}}, "hs_lastmodifieddate"));
    ASSERT_EQ(p.status, RECSYNC_OK) << p.out.error;
    const json started = json::parse(p.out.parsed()["cursor"].get<std::string>());
    EXPECT_EQ(started["t"], 990'000);
    EXPECT_EQ(started["ahw"], 990'000) << "deletions from then on too";
    EXPECT_GE(started["nsw"].get<int64_t>(), now_ms() + 299'000) << "the first sweep of deletions after poll_deletions_every_s (300 s)";
    EXPECT_TRUE(p.out.parsed()["events"].empty());
    // An empty CRM: still at the start.
    EXPECT_EQ(page(last_, "deals", "", 200, results({})).out.parsed()["cursor"], "");
}

TEST_F(HubSpotPollTest, SinceATimeStartsThereAndBadSettingsAreRefused) {
    void *inst = poller(R"(, "poll_since": "2026-01-31T00:00:00Z")");
    const Outcome r = request(inst, "contacts", "");
    ASSERT_EQ(r.status, RECSYNC_OK) << r.out.error;
    EXPECT_EQ(filters(r.out)[0]["value"], std::to_string(1'769'817'600'000 - 1));
    for (const char *bad : {R"({"poll_since": "yesterday"})", R"({"poll_overlap_s": -1})", R"({"poll_page_size": 500})", R"({"poll_deletions_every_s": "5m"})"}) {
        const Outcome c = create(bad);
        EXPECT_EQ(c.status, RECSYNC_ERR_CONFIG) << bad;
        EXPECT_THAT(c.out.error, HasSubstr("poll_")) << bad;
    }
}

TEST_F(HubSpotPollTest, AnswersWithoutAPageAreErrorsNamingWhy) {
    void *inst = poller();
    Outcome p = page(inst, "contacts", R"({"t":1})", 429, R"({"status":"error","message":"You have reached your secondly limit."})");
    EXPECT_NE(p.status, RECSYNC_OK);
    EXPECT_THAT(p.out.error, HasSubstr("429"));
    EXPECT_THAT(p.out.error, HasSubstr("secondly limit"));
    p = page(inst, "contacts", R"({"t":1})", 200, R"({"total": 0})");
    EXPECT_NE(p.status, RECSYNC_OK);
    EXPECT_THAT(p.out.error, HasSubstr("results"));
    p = page(inst, "contacts", "not a cursor", 200, results({}));
    EXPECT_NE(p.status, RECSYNC_OK);
    EXPECT_THAT(p.out.error, HasSubstr("cursor"));
    EXPECT_NE(request(inst, "tickets", R"({"t":1})").status, RECSYNC_OK);
}

// Deletions: once caught up, the archived listing is swept by id; records archived since
// the last sweep are deletions, and the sweep's end records its newest archivedAt.
TEST_F(HubSpotPollTest, CaughtUpThePollSweepsTheArchivedListingForDeletions) {
    const Outcome c = create(R"({"poll_overlap_s": 1, "poll_page_size": 3, "poll_since": "beginning", "poll_deletions_every_s": 60})");
    ASSERT_EQ(c.status, RECSYNC_OK) << c.out.error;
    void *inst = last_;
    // A short change page with a sweep due (never swept): the cursor turns to the listing.
    Outcome p = page(inst, "contacts", R"({"t":1000,"ahw":50000})", 200, results({{"7", 2000}}));
    ASSERT_EQ(p.status, RECSYNC_OK) << p.out.error;
    json j = p.out.parsed();
    EXPECT_EQ(j["more"], true);
    const std::string sweeping = j["cursor"];
    EXPECT_EQ(json::parse(sweeping)["sweep"], json({{"after", ""}, {"max", 50000}}));
    Outcome r = request(inst, "contacts", sweeping);
    ASSERT_EQ(r.status, RECSYNC_OK) << r.out.error;
    EXPECT_EQ(r.out.method, "GET");
    EXPECT_EQ(r.out.path, "/crm/v3/objects/contacts?archived=true&limit=100");
    const auto archived = [](const std::vector<std::pair<std::string, int64_t>> &recs, const std::string &after) {
        json out = {{"results", json::array()}};
        for (const auto &[id, at] : recs) out["results"].push_back({{"id", id}, {"properties", json::object()}, {"archived", true}, {"archivedAt", iso(at)}});
        if (!after.empty()) out["paging"] = {{"next", {{"after", after}}}};
        return out.dump();
    };
    // Page 1: one archived long before the last sweep (49,000 + 1 s overlap < 50,000), one after.
    p = page(inst, "contacts", sweeping, 200, archived({{"3", 48'000}, {"5", 60'000}}, "5"));
    ASSERT_EQ(p.status, RECSYNC_OK) << p.out.error;
    j = p.out.parsed();
    ASSERT_EQ(j["events"].size(), 1u);
    EXPECT_EQ(j["events"][0], json({{"object", "contacts"}, {"event", "deleted"}, {"external_id", "5"}, {"id", "archived:5:60000"}, {"occurred_at", 60000}}));
    const std::string second = j["cursor"];
    EXPECT_EQ(json::parse(second)["sweep"]["after"], "5");
    EXPECT_EQ(request(inst, "contacts", second).out.path, "/crm/v3/objects/contacts?archived=true&limit=100&after=5");
    // The last page: the sweep ends at its newest archivedAt and the change search goes on.
    p = page(inst, "contacts", second, 200, archived({{"9", 70'000}}, ""));
    j = p.out.parsed();
    ASSERT_EQ(j["events"].size(), 1u);
    const json done = json::parse(j["cursor"].get<std::string>());
    EXPECT_FALSE(done.contains("sweep"));
    EXPECT_EQ(done["t"], 2000);
    EXPECT_EQ(done["ahw"], 70'000);
    EXPECT_GE(done["nsw"].get<int64_t>(), now_ms() + 59'000);
    EXPECT_EQ(request(inst, "contacts", j["cursor"].get<std::string>()).out.method, "POST") << "back to the search";
    // Not due yet: a short page does not sweep.
    p = page(inst, "contacts", j["cursor"].get<std::string>(), 200, results({}));
    EXPECT_FALSE(json::parse(p.out.parsed()["cursor"].get<std::string>()).contains("sweep"));
    EXPECT_EQ(p.out.parsed()["more"], false);
}

}  // namespace
