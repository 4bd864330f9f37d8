// A real redis-server (Debian's) for integration tests: loopback only, a free port, no
// persistence, in a fresh temporary directory, run under `timeout` so that it cannot
// outlive a test process that died without stopping it. Start it once per test
// executable (ONE_PROCESS). Header-only; link recsync_test_support and hiredis.
#pragma once

#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <signal.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

namespace recsync::testkit {

class RedisServer {
public:
    RedisServer() : port_(free_port()) { start(); }
    ~RedisServer() { stop(); }

    uint16_t port() const { return port_; }
    std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

    // Starts it (again, on the same port) and waits until it answers PING.
    void start() {
        proc_ = std::make_unique<ChildProcess>(std::vector<std::string>{"timeout", "900", "redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                                                        "--save", "", "--appendonly", "no", "--dir", dir_.path()},
                                               true);
        if (!wait_until([&] { return command("PING") == "PONG"; }, std::chrono::seconds(10)))
            throw std::runtime_error("RedisServer: redis-server did not answer on " + address() + " (scripts/deps installs redis-server)");
    }
    // SIGTERM (timeout passes it on), waits for the port to close.
    void stop() {
        if (!proc_) return;
        proc_->stop();
        proc_.reset();
    }
    // One command's answer as text (a status, a string or an integer); "" if none.
    std::string command(const std::string &cmd) const {
        const timeval tv{1, 0};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port_, tv);
        if (!c || c->err) {
            if (c) redisFree(c);
            return {};
        }
        redisSetTimeout(c, tv);
        auto *r = static_cast<redisReply *>(redisCommand(c, cmd.c_str()));
        std::string out;
        if (r) {
            if (r->type == REDIS_REPLY_INTEGER) out = std::to_string(r->integer);
            else if (r->str) out.assign(r->str, r->len);
            freeReplyObject(r);
        }
        redisFree(c);
        return out;
    }

private:
    TempDir dir_;
    uint16_t port_;
    std::unique_ptr<ChildProcess> proc_;
};

class RedisEnvironment : public ::testing::Environment {
public:
    static RedisServer *server() { return server_.get(); }
    void SetUp() override { server_ = std::make_unique<RedisServer>(); }
    void TearDown() override { server_.reset(); }

private:
    static inline std::unique_ptr<RedisServer> server_;
};

inline ::testing::Environment *const kRedisEnvironment = ::testing::AddGlobalTestEnvironment(new RedisEnvironment);

inline RedisServer *shared_redis() { return RedisEnvironment::server(); }

}  // namespace recsync::testkit
