// log::Formatter: each JSON line parses back with its fields (the thread's context too),
// text lines keep spdlog's default layout, and both redact.
#include "log/log_context.hpp"
#include "log/log_format.hpp"
#include "log/redact.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace {

using recsync::log::Format;
using recsync::log::Formatter;
using recsync::log::ScopedLogContext;

// A logger writing into a string through Formatter(format).
struct Captured {
    std::ostringstream out;
    std::shared_ptr<spdlog::logger> logger;
    explicit Captured(Format format) : logger(std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::ostream_sink_st>(out))) {
        logger->set_formatter(std::make_unique<Formatter>(format));
        logger->set_level(spdlog::level::trace);
    }
    std::vector<std::string> lines() const {
        std::vector<std::string> v;
        std::istringstream in(out.str());
        for (std::string line; std::getline(in, line);) v.push_back(line);
        return v;
    }
    nlohmann::json only_json() const {
        const auto v = lines();
        EXPECT_EQ(v.size(), 1u) << out.str();
        return v.empty() ? nlohmann::json() : nlohmann::json::parse(v.front());
    }
};

TEST(LogFormat, ParsesItsTwoNames) {
    EXPECT_EQ(recsync::log::parse_format("text"), Format::Text);
    EXPECT_EQ(recsync::log::parse_format("json"), Format::Json);
    EXPECT_FALSE(recsync::log::parse_format("JSON"));
    EXPECT_FALSE(recsync::log::parse_format(""));
}

TEST(LogFormat, JsonLineHasTimeLevelAndMessageOnly) {
    Captured c(Format::Json);
    c.logger->warn("connection '{}': {} task(s) waiting", "crm", 3);
    const auto j = c.only_json();
    ASSERT_TRUE(j.is_object());
    EXPECT_EQ(j.at("level"), "warning");
    EXPECT_EQ(j.at("msg"), "connection 'crm': 3 task(s) waiting");
    const std::string ts = j.at("ts");
    EXPECT_TRUE(std::regex_match(ts, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"))) << ts;
    // No context known: no context fields.
    EXPECT_EQ(j.size(), 3u) << j.dump();
}

TEST(LogFormat, JsonTimeIsUtc) {
    Captured c(Format::Json);
    spdlog::details::log_msg msg(spdlog::source_loc{}, "test", spdlog::level::info, "x");
    msg.time = spdlog::log_clock::time_point(std::chrono::milliseconds(1'700'000'000'123));  // 2023-11-14T22:13:20.123Z
    c.logger->sinks().front()->log(msg);
    EXPECT_EQ(c.only_json().at("ts"), "2023-11-14T22:13:20.123Z");
}

TEST(LogFormat, JsonLineCarriesTheThreadsContext) {
    Captured c(Format::Json);
    const std::string conn = "hubspot-eu", key = "cust-42", rule = "contacts to hubspot";
    {
        ScopedLogContext ctx(conn, key, rule, 3);
        c.logger->info("retrying");
    }
    const auto j = c.only_json();
    EXPECT_EQ(j.at("connection"), "hubspot-eu");
    EXPECT_EQ(j.at("record_key"), "cust-42");
    EXPECT_EQ(j.at("rule"), "contacts to hubspot");
    EXPECT_EQ(j.at("attempt"), 3);
    // Order as documented: ts, level, msg, then the context.
    std::vector<std::string> keys;
    const auto ordered = nlohmann::ordered_json::parse(c.lines().front());
    for (const auto &kv : ordered.items()) keys.push_back(kv.key());
    EXPECT_EQ(keys, (std::vector<std::string>{"ts", "level", "msg", "connection", "record_key", "rule", "attempt"}));
}

TEST(LogFormat, JsonEscapesQuotesNewlinesAndBadUtf8) {
    Captured c(Format::Json);
    const std::string key = "say \"hi\"\n";
    ScopedLogContext ctx("crm", key);
    c.logger->error("plugin: {}", "line one\nline \"two\"\t\\ \x01 \xff end");
    const auto lines = c.lines();
    ASSERT_EQ(lines.size(), 1u) << c.out.str();  // one line, whatever the message holds
    const auto j = nlohmann::json::parse(lines.front());
    EXPECT_EQ(j.at("msg"), "plugin: line one\nline \"two\"\t\\ \x01 \xEF\xBF\xBD end");
    EXPECT_EQ(j.at("record_key"), "say \"hi\"\n");
}

TEST(LogFormat, TextKeepsTheDefaultPattern) {
    Captured c(Format::Text);
    ScopedLogContext ctx("crm", "k1");
    c.logger->info("hello {}", "world");
    const auto lines = c.lines();
    ASSERT_EQ(lines.size(), 1u);
    // spdlog's "%+": [2026-01-31 12:34:56.789] [test] [info] hello world (no context added).
    EXPECT_TRUE(std::regex_match(lines.front(), std::regex(R"(\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] \[test\] \[info\] hello world)"))) << lines.front();
}

TEST(LogFormat, BothFormatsRedact) {
    recsync::log::clear_secrets();
    recsync::log::register_secret("tok-SECRET-abc123");
    for (const auto f : {Format::Text, Format::Json}) {
        Captured c(f);
        c.logger->info("sent tok-SECRET-abc123 with Authorization: Bearer xyz.987");
        const auto text = c.out.str();
        EXPECT_EQ(text.find("tok-SECRET-abc123"), std::string::npos) << text;
        EXPECT_EQ(text.find("xyz.987"), std::string::npos) << text;
        EXPECT_NE(text.find("sent [redacted] with Authorization: [redacted]"), std::string::npos) << text;
    }
    recsync::log::clear_secrets();
}

// use_format reaches the default logger, the one spdlog::info() and plugins write to.
TEST(LogFormat, UseFormatSetsTheDefaultLoggersSinks) {
    auto before = spdlog::default_logger();
    std::ostringstream out;
    auto logger = std::make_shared<spdlog::logger>("", std::make_shared<spdlog::sinks::ostream_sink_st>(out));
    spdlog::set_default_logger(logger);
    recsync::log::use_format(Format::Json);
    spdlog::info("a \"quoted\" word");
    spdlog::set_default_logger(before);
    const auto j = nlohmann::json::parse(out.str());
    EXPECT_EQ(j.at("msg"), "a \"quoted\" word");
    EXPECT_EQ(j.at("level"), "info");
}

}  // namespace
