// An in-process engine over the hubspot plugin and mock CRMs, for integration tests that
// link recsync_core and mock_crm (header-only: recsync_test_support links neither).
#pragma once

#include "engine/engine.hpp"
#include "store/state_backend.hpp"
#include "mock_crm.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace recsync::testkit {

// The built hubspot plugin in dir/plugins and the source tree's contact schema in
// dir/rules/schemas; the test writes its own rules next to it.
inline void stage_hubspot(const TempDir &dir) {
    copy_plugin(RECSYNC_PLUGIN_DIR, "hubspot", dir.file("plugins"));
    std::filesystem::create_directories(dir.file("rules/schemas"));
    std::filesystem::copy_file(RECSYNC_SOURCE_DIR "/rules/schemas/contact.json", dir.file("rules/schemas/contact.json"));
}

// Writes dir/recsync.yaml (plugins/, rules/, state/r.db, a free port, errors only) with
// `connections` (indented "  name: { ... }\n" lines) and `top_level` (more top-level
// sections, e.g. "delivery: { ... }\n"); returns its path.
inline std::string write_engine_config(const TempDir &dir, const std::string &connections, const std::string &top_level = "") {
    return dir.write("recsync.yaml",
                     "plugins_dir: plugins\nrules_dir: rules\nstate: { path: state/r.db, synchronous: normal }\n"
                     "server: { listen: '127.0.0.1:0' }\nlog_level: error\n" + top_level + "connections:\n" + connections);
}

// write_engine_config, and an engine started on it.
inline std::unique_ptr<engine::Engine> start_engine(const TempDir &dir, const std::string &connections, const std::string &top_level = "") {
    auto e = std::make_unique<engine::Engine>(config::load_config(write_engine_config(dir, connections, top_level)));
    e->start();
    return e;
}

inline std::string base_url(const engine::Engine &e) { return "http://127.0.0.1:" + std::to_string(e.port()); }

// The record's id at the connection, from the engine's sync state; none if not linked.
inline std::optional<std::string> external_id(engine::Engine &e, const std::string &connection, const std::string &object, const std::string &key) {
    auto link = e.state().sync_state().link({connection, object, key});
    if (!link.linked()) return std::nullopt;
    return link.external_id;
}

// POSTs an NDJSON body to /v1/events and expects it accepted.
inline void post_events(const std::string &base, const std::string &body) {
    ASSERT_EQ(http_request("POST", base + "/v1/events", body, {"Content-Type: application/x-ndjson"}).status, 202);
}

// One mock CRM (4 threads) behind connection "crm", staged by stage_hubspot; the test writes
// its rules, then calls start_engine with what the connection adds to provider and base_url.
class OneCrmEngineTest : public ::testing::Test {
protected:
    void SetUp() override {
        mock::MockCrmOptions options;
        options.threads = 4;
        crm_ = std::make_unique<mock::MockCrm>(options);
        crm_->start();
        stage_hubspot(dir_);
    }
    void start_engine(const std::string &connection_extra, const std::string &top_level = "") {
        engine_ = testkit::start_engine(dir_, crm_connection(connection_extra), top_level);
        base_ = base_url(*engine_);
    }
    // The "crm" connection's line of the config.
    std::string crm_connection(const std::string &connection_extra) const {
        return "  crm: { provider: hubspot, base_url: '" + crm_->base_url() + "', " + connection_extra + " }\n";
    }
    void TearDown() override {
        if (engine_) engine_->stop(std::chrono::seconds(2));
        crm_->stop();
    }
    void post(const std::string &body) { post_events(base_, body); }

    TempDir dir_;
    std::unique_ptr<mock::MockCrm> crm_;
    std::unique_ptr<engine::Engine> engine_;
    std::string base_;
};

}  // namespace recsync::testkit
