// A plugin's own log text (host_api()->log) reaches the log redacted like every line.
#include "log/log_format.hpp"
#include "log/redact.hpp"
#include "plugin/provider_instance.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>
#include <string>

namespace {

TEST(HostLog, PluginTextIsRedacted) {
    recsync::log::clear_secrets();
    recsync::log::register_secret("plugin-test-token-4242");
    auto before = spdlog::default_logger();
    std::ostringstream out;
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("", std::make_shared<spdlog::sinks::ostream_sink_st>(out)));
    recsync::log::use_format(recsync::log::Format::Json);
    const std::string text = "GET /v3/objects token=plugin-test-token-4242 Authorization: Bearer abc.def";
    const auto *host = recsync::plugin::host_api();
    host->log(host, 2 /* info */, {text.data(), text.size()});
    spdlog::set_default_logger(before);
    recsync::log::clear_secrets();
    const auto j = nlohmann::json::parse(out.str());
    EXPECT_EQ(j.at("msg"), "plugin: GET /v3/objects token=[redacted] Authorization: [redacted]");
    EXPECT_EQ(out.str().find("plugin-test-token-4242"), std::string::npos) << out.str();
}

}  // namespace
