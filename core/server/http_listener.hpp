// A small HTTP/1.1 server on Boost.Beast: keep-alive, a request body limit (413 with a
// reason past it), read timeouts, N I/O threads. Handlers are called on an I/O thread and
// must be thread-safe; an asynchronous one answers later, from any thread, so a request
// waiting for something (the engine's group commit) holds no thread. Used by the engine's
// API and by the mock CRM.
#pragma once

#include "server/http_types.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace recsync::server {

// Answers one request: once, from any thread, now or later, but before the HttpListener is
// destroyed (after stop() answers are dropped; after destruction it would use freed
// memory: the engine flushes its commit queue between the two). If every copy is dropped
// unanswered the client gets a 500 rather than a connection that hangs.
using Respond = std::function<void(HttpResponse)>;
// Answers at once, on the I/O thread.
using HttpHandler = std::function<HttpResponse(const HttpRequest &)>;
// Answers through `respond` when it can; must not block the I/O thread for long.
using AsyncHttpHandler = std::function<void(HttpRequest &&request, Respond respond)>;

// TLS on the listener: PEM files, read at start() and again by reload_tls().
struct TlsFiles {
    std::string cert_file;       // the certificate chain, leaf first
    std::string key_file;        // its private key
    std::string client_ca_file;  // empty: no client certificate asked; else one it signed is required
};

struct ListenerOptions {
    std::string address = "127.0.0.1";
    uint16_t port = 0;  // 0: pick a free port (see HttpListener::port)
    size_t max_body_bytes = 1 << 20;
    int threads = 2;
    int read_timeout_seconds = 30;
    // Called on an I/O thread for each accepted connection (the mock CRM counts them, to
    // show that clients reuse their connections). Must be thread-safe and quick.
    std::function<void()> on_accept;
    // Set: HTTPS only (a plain HTTP request is answered 400 saying so, and closed).
    std::optional<TlsFiles> tls;
};

class HttpListener {
public:
    HttpListener(ListenerOptions options, AsyncHttpHandler handler);
    HttpListener(ListenerOptions options, HttpHandler handler);
    ~HttpListener();
    HttpListener(const HttpListener &) = delete;
    HttpListener &operator=(const HttpListener &) = delete;

    // Binds and starts the I/O threads. Throws std::runtime_error naming the address on failure.
    void start();
    // Stops accepting, closes connections, joins the threads. Idempotent.
    void stop();
    // The bound port (after start).
    uint16_t port() const;
    // Reads the TLS files again for the connections accepted from now on (certificate
    // rotation on SIGHUP). Throws std::runtime_error naming the file, and the running
    // certificate stays. Without TLS, nothing.
    void reload_tls();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Parses "host:port" (IPv6 as "[::1]:8080"). Throws std::invalid_argument naming the input.
std::pair<std::string, uint16_t> parse_host_port(const std::string &text);

}  // namespace recsync::server
