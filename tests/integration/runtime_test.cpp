// build_runtime with the real HubSpot plugin: what a connection keeps of its provider's
// describe(), and what its connections share.
#include "config/config.hpp"
#include "config/yaml_source.hpp"
#include "dispatch/lane.hpp"
#include "engine/runtime_builder.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

using namespace recsync;

namespace {

class Runtime : public ::testing::Test {
protected:
    void SetUp() override {
        testkit::copy_plugin(RECSYNC_PLUGIN_DIR, "hubspot", dir_.file("plugins"));
        dir_.write("rules/schemas/contact.json", R"({"type": "object"})");
        dir_.write("rules/r.yaml", "mappings:\n  m: { fields: [ { from: email, to: email } ] }\n"
                                   "rules:\n  - name: c\n    on: { entity: contact, event: created }\n"
                                   "    do: { action: create, target: a, object: contacts, mapping: m }\n");
    }
    std::shared_ptr<const model::Runtime> build(const std::string &connections) {
        const auto cfg = dir_.write("recsync.yaml", "plugins_dir: plugins\nrules_dir: rules\nstate: { path: state/r.db }\n"
                                                    "server: { listen: '127.0.0.1:0' }\nlog_level: warn\nconnections:\n" + connections);
        return engine::build_runtime(config::load_config(cfg));
    }
    static std::string connection(const std::string &name, const std::string &settings = "") {
        return "  " + name + ":\n    provider: hubspot\n    base_url: 'http://127.0.0.1:1'\n" + (settings.empty() ? "" : "    settings: " + settings + "\n");
    }
    testkit::TempDir dir_;
};

// One compiled schema per provider and object, however many connections use it: a
// compiled schema was most of a connection's memory.
TEST_F(Runtime, ConnectionsOfOneProviderShareTheirCompiledSchemas) {
    const auto rt = build(connection("a") + connection("b") + connection("c", "{ objects: [contacts, deals], key_properties: { deals: deal_key } }"));
    const auto *a = rt->connection("a"), *b = rt->connection("b"), *c = rt->connection("c");
    ASSERT_TRUE(a && b && c);
    for (const char *object : {"contacts", "companies", "deals"}) {
        ASSERT_NE(a->object_schema(object), nullptr) << object;
        EXPECT_EQ(a->object_schema(object), b->object_schema(object)) << object;
    }
    EXPECT_EQ(a->object_schema("contacts"), c->object_schema("contacts"));
    EXPECT_EQ(a->object_schema("deals"), c->object_schema("deals"));
    EXPECT_NE(a->object_schema("contacts"), a->object_schema("deals"));
    EXPECT_EQ(c->object_schema("companies"), nullptr) << "c does not sync companies";
    EXPECT_EQ(a->objects, (std::vector<std::string>{"companies", "contacts", "deals"}));
    EXPECT_EQ(c->objects, (std::vector<std::string>{"contacts", "deals"}));
    EXPECT_EQ(c->create_retry_of("deals"), model::CreateRetry::Upsert);
    EXPECT_EQ(a->create_retry_of("deals"), model::CreateRetry::Resend);
}

// A connection without rate_limit takes its provider's (describe().rate_limit: HubSpot's
// 10/s, burst 10), and its lane's token bucket runs at it; one in the config wins.
TEST_F(Runtime, ALaneTakesItsRateFromThePluginUnlessTheConfigSetsOne) {
    const auto rt = build(connection("a") + connection("b") + "    rate_limit: { per_second: 3, burst: 7 }\n" + connection("c") +
                          "    rate_limit: { per_second: 4 }\n");
    const auto *a = rt->connection("a"), *b = rt->connection("b"), *c = rt->connection("c");
    ASSERT_TRUE(a && b && c);
    const auto defaults = a->provider->describe().at("rate_limit");
    const double plugin_rate = defaults.at("per_second").get<double>(), plugin_burst = defaults.at("burst").get<double>();
    EXPECT_DOUBLE_EQ(plugin_rate, 10) << "HubSpot's documented default changed: " << defaults.dump();
    EXPECT_DOUBLE_EQ(plugin_burst, 10);

    const auto now = util::SteadyClock::now();
    model::Backlog backlog;
    dispatch::Lane from_plugin(rt->connections.at("a"), backlog, now);
    EXPECT_DOUBLE_EQ(a->rate_per_second, plugin_rate);
    EXPECT_DOUBLE_EQ(a->burst, plugin_burst);
    EXPECT_DOUBLE_EQ(from_plugin.bucket().rate(), plugin_rate);
    EXPECT_DOUBLE_EQ(from_plugin.bucket().burst(), plugin_burst);

    dispatch::Lane from_config(rt->connections.at("b"), backlog, now);
    EXPECT_DOUBLE_EQ(b->rate_per_second, 3);
    EXPECT_DOUBLE_EQ(b->burst, 7);
    EXPECT_DOUBLE_EQ(from_config.bucket().rate(), 3);
    EXPECT_DOUBLE_EQ(from_config.bucket().burst(), 7);
    // A configured rate without a burst bursts at that rate, not at the plugin's burst.
    EXPECT_DOUBLE_EQ(c->rate_per_second, 4);
    EXPECT_DOUBLE_EQ(c->burst, 4);
}

TEST_F(Runtime, ARuleForAnObjectTheProviderLacksNamesWhatItHas) {
    dir_.write("rules/r.yaml", "mappings:\n  m: { fields: [ { from: email, to: email } ] }\n"
                               "rules:\n  - name: c\n    on: { entity: contact, event: created }\n"
                               "    do: { action: create, target: a, object: companies, mapping: m }\n");
    try {
        build(connection("a", "{ objects: [contacts, deals] }"));
        FAIL() << "a rule for an object connection 'a' does not have was accepted";
    } catch (const config::ConfigErrors &e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("provider 'hubspot' has no object 'companies' (it has: contacts, deals)"), std::string::npos) << msg;
        EXPECT_NE(msg.find("r.yaml:"), std::string::npos) << "names the rule's file: " << msg;
    }
}

}  // namespace

// describe's per-object "batch" sizes (ABI 1.6), capped by the connection's batch.max_size;
// 1 turns batches off, and a size the plugin got wrong is refused at load, naming it.
TEST_F(Runtime, BatchSizesComeFromDescribeCappedByTheConfig) {
    testkit::copy_plugin(RECSYNC_FIXTURE_PLUGIN_DIR, "batching", dir_.file("plugins"));
    testkit::copy_plugin(RECSYNC_FIXTURE_PLUGIN_DIR, "batch_bad_describe", dir_.file("plugins"));
    auto batching = [](const std::string &name, const std::string &batch) {
        return "  " + name + ":\n    provider: batching\n    base_url: 'http://127.0.0.1:1'\n" + (batch.empty() ? "" : "    batch: " + batch + "\n");
    };
    const auto rt = build(connection("a") + batching("plain", "") + batching("capped", "{ max_size: 2 }") + batching("off", "{ max_size: 1 }"));
    const auto *plain = rt->connection("plain"), *capped = rt->connection("capped"), *off = rt->connection("off");
    ASSERT_TRUE(plain && capped && off);
    EXPECT_TRUE(plain->batches());
    EXPECT_EQ(plain->batch_size_of("things", RECSYNC_ACTION_CREATE), 3);
    EXPECT_EQ(plain->batch_size_of("things", RECSYNC_ACTION_UPSERT), 50);
    EXPECT_EQ(plain->batch_size_of("things", RECSYNC_ACTION_UPDATE), 1) << "an action describe leaves out is never batched";
    EXPECT_EQ(plain->batch_size_of("other", RECSYNC_ACTION_CREATE), 1);
    EXPECT_EQ(capped->batch_size_of("things", RECSYNC_ACTION_CREATE), 2);
    EXPECT_EQ(capped->batch_size_of("things", RECSYNC_ACTION_UPSERT), 2);
    EXPECT_FALSE(off->batches());
    EXPECT_EQ(off->batch_size_of("things", RECSYNC_ACTION_UPSERT), 1);
    EXPECT_EQ(rt->connection("a")->batch_size_of("contacts", RECSYNC_ACTION_CREATE), 100) << "HubSpot's batch endpoints take 100 inputs";

    try {
        build(connection("a") + "  bad:\n    provider: batch_bad_describe\n    base_url: 'http://127.0.0.1:1'\n");
        FAIL() << "a batch size of 0 must be refused";
    } catch (const std::exception &e) {  // build_runtime gathers every connection's errors
        const std::string msg = e.what();
        EXPECT_NE(msg.find("connection 'bad'"), std::string::npos) << msg;
        EXPECT_NE(msg.find("object 'things': batch .create is not a size between 1 and 10000"), std::string::npos) << msg;
    }
}
