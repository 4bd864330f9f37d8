// Helpers shared by the unit tests: a private temporary directory (mkdtemp, removed on
// destruction), file writing, and assertions on "file:line:col: message" errors.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace recsync::testing {

class TempDir {
public:
    TempDir() {
        const char *base = std::getenv("TMPDIR");
        std::string tmpl = std::string(base && *base ? base : "/tmp") + "/recsync-unit-XXXXXX";
        std::vector<char> buf(tmpl.begin(), tmpl.end());
        buf.push_back('\0');
        if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
        path_ = buf.data();
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;

    const std::filesystem::path &path() const { return path_; }
    std::string str() const { return path_.string(); }

    // Writes `text` to `relative` (creating parent directories); returns the full path.
    std::string write(const std::string &relative, const std::string &text) const {
        const auto p = path_ / relative;
        std::filesystem::create_directories(p.parent_path());
        std::ofstream out(p, std::ios::binary | std::ios::trunc);
        out << text;
        out.close();
        if (!out) throw std::runtime_error("cannot write " + p.string());
        return p.string();
    }

private:
    std::filesystem::path path_;
};

// "file:line:col" as recsync formats positions (1-based).
inline std::string at(const std::string &file, int line, int col) {
    return file + ":" + std::to_string(line) + ":" + std::to_string(col);
}

// Finds `needle` in any of `haystack`; for readable failures.
inline ::testing::AssertionResult any_contains(const std::vector<std::string> &haystack, const std::string &needle) {
    for (const auto &h : haystack)
        if (h.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
    auto r = ::testing::AssertionFailure() << "no message contains '" << needle << "'; messages:";
    for (const auto &h : haystack) r << "\n  " << h;
    return r;
}

// How many times in a row `limiter.try_acquire(now)` succeeds, up to `limit` (TokenBucket,
// ServerQuota: anything with try_acquire(TimePoint)).
template <class Limiter, class Time>
int drain(Limiter &limiter, Time now, int limit = 10'000) {
    int n = 0;
    while (n < limit && limiter.try_acquire(now)) ++n;
    return n;
}

}  // namespace recsync::testing

// Runs `stmt`, expects it to throw `Ex`, and binds the message to `msg` for further checks.
#define RECSYNC_EXPECT_THROW_MSG(stmt, Ex, msg)                                          \
    do {                                                                                 \
        bool recsync_thrown_ = false;                                                    \
        try {                                                                            \
            stmt;                                                                        \
        } catch (const Ex &recsync_e_) {                                                 \
            recsync_thrown_ = true;                                                      \
            msg = recsync_e_.what();                                                     \
        }                                                                                \
        ASSERT_TRUE(recsync_thrown_) << "expected " #Ex " from: " #stmt;                 \
    } while (0)
