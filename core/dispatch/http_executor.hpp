// The host's HTTP client: libcurl multi, driven by the dispatcher thread. One multi
// handle shares its connection cache across calls (keep-alive), negotiates HTTP/2 over
// TLS where offered, and keeps libcurl's TLS verification on (never disabled here).
#pragma once

#include "plugin/provider_instance.hpp"

#include <cstdint>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace recsync::dispatch {

struct HttpCall {
    uint64_t tag = 0;  // the caller's handle for the completion
    std::string method;
    std::string url;
    std::string body;
    std::vector<plugin::Header> headers;
    int connect_timeout_ms = 3000;
    int timeout_ms = 15000;
    std::string ca_file;  // PEM of the CAs to trust for https; empty: the system's bundle
    // The server must not see this request twice unless the caller sends it again (a
    // create). libcurl re-sends a request by itself when a reused connection dies before
    // any answer; if the server had processed it, that is a duplicate nobody sees. With
    // send_once such a re-send is aborted before it goes out (a transport error), and the
    // caller's retry, which knows the create may have been made, decides.
    bool send_once = false;
    // A two-way change toward System A's own database: not written if someone else changed
    // the row there at or after this time (epoch ms), a change recsync may not have
    // captured yet, which the conflict policy makes the winner. 0: written. HTTP calls
    // ignore it.
    int64_t lose_to_changes_since_ms = 0;
};

struct HttpOutcome {
    uint64_t tag = 0;
    int status = 0;               // HTTP status; 0 if the exchange failed
    std::string transport_error;  // curl's reason when status == 0
    std::vector<plugin::Header> headers;
    std::string body;
    long http_version = 0;  // CURL_HTTP_VERSION_* the answer came with (2: HTTP/2)
    HttpCall call;  // the call, handed back (a dead letter records its request)
    bool lost_conflict = false;  // not written: lose_to_changes_since_ms found a later change (body: which)
};

class HttpExecutor {
public:
    // max_connections: how many connections libcurl keeps open for reuse (at least the
    // calls that may be in flight at once, or it closes and reopens them).
    explicit HttpExecutor(size_t max_connections = 1024);
    ~HttpExecutor();
    HttpExecutor(const HttpExecutor &) = delete;
    HttpExecutor &operator=(const HttpExecutor &) = delete;

    // Starts a call. Owner thread only.
    void start(HttpCall call);
    // Waits up to timeout_ms for network activity or wakeup(), runs transfers, and
    // returns those that finished. Owner thread only.
    std::vector<HttpOutcome> poll(int timeout_ms);
    // Interrupts a poll() from any thread.
    void wakeup();
    size_t in_flight() const;
    // Time poll() spent blocked waiting for the network since the last call (the
    // dispatcher's idle time: ConcurrencyLimit). Owner thread only.
    std::chrono::steady_clock::duration take_waited();

private:
    // Removes the finished transfers from the multi handle and returns their outcomes.
    std::vector<HttpOutcome> collect();
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace recsync::dispatch
