#include "server/http_listener.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/core/detect_ssl.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

namespace recsync::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// One connection: plain (Stream = beast::tcp_stream) or TLS (TlsStream, after its handshake).
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
public:
    Session(tcp::socket socket, const ListenerOptions &opts, const AsyncHttpHandler &handler) requires std::is_same_v<Stream, beast::tcp_stream>
        : stream_(std::move(socket)), opts_(opts), handler_(handler) {}
    // `buffer`: what the TLS detection already read (the start of the client's hello).
    // `context`: the certificate this connection was accepted with, kept while it lives.
    Session(beast::tcp_stream stream, std::shared_ptr<asio::ssl::context> context, beast::flat_buffer buffer, const ListenerOptions &opts,
            const AsyncHttpHandler &handler) requires std::is_same_v<Stream, TlsStream>
        : context_(std::move(context)), stream_(std::move(stream), *context_), buffer_(std::move(buffer)), opts_(opts), handler_(handler) {}

    void start() {
        if constexpr (std::is_same_v<Stream, TlsStream>) {
            lowest().expires_after(std::chrono::seconds(opts_.read_timeout_seconds));
            stream_.async_handshake(asio::ssl::stream_base::server, buffer_.data(), [self = this->shared_from_this()](beast::error_code ec, size_t used) {
                if (ec) {
                    // A client that does not trust our certificate, or shows none where one is
                    // required: its TLS library says why; the log says who, at debug level
                    // (anyone can cause it).
                    spdlog::debug("TLS handshake failed: {}", ec.message());
                    return self->reset();
                }
                self->buffer_.consume(used);
                self->read();
            });
        } else {
            read();
        }
    }

private:
    beast::tcp_stream &lowest() { return beast::get_lowest_layer(stream_); }

    void read() {
        parser_.emplace();
        parser_->body_limit(opts_.max_body_bytes);
        parser_->header_limit(64 * 1024);
        lowest().expires_after(std::chrono::seconds(opts_.read_timeout_seconds));
        http::async_read(stream_, buffer_, *parser_, [self = this->shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
    }

    void on_read(beast::error_code ec) {
        if (ec == http::error::body_limit) {
            respond(HttpResponse::error(413, "request body exceeds the limit of " + std::to_string(opts_.max_body_bytes) + " bytes"), false, 11);
            return;
        }
        if (ec == http::error::header_limit) {
            respond(HttpResponse::error(431, "request headers too large"), false, 11);
            return;
        }
        if (ec) {
            if (ec != http::error::end_of_stream && ec != beast::error::timeout && ec != asio::error::connection_reset && ec != asio::error::operation_aborted &&
                ec.category() != asio::error::get_ssl_category() && ec != asio::ssl::error::stream_truncated)
                respond(HttpResponse::error(400, "malformed HTTP request: " + ec.message()), false, 11);
            else
                close();
            return;
        }
        auto &msg = parser_->get();
        HttpRequest req;
        req.method = std::string(msg.method_string());
        req.target = std::string(msg.target());
        for (const auto &f : msg) req.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
        req.body = std::move(msg.body());
        beast::error_code rec;
        const auto ep = lowest().socket().remote_endpoint(rec);
        if (!rec) req.remote = ep.address().to_string();
        const std::string what = req.method + " " + std::string(req.path());
        auto answer = std::make_shared<Answer>(this->shared_from_this(), msg.keep_alive(), msg.version());
        try {
            handler_(std::move(req), [answer](HttpResponse r) { answer->give(std::move(r)); });
        } catch (const std::exception &e) {
            spdlog::error("http handler failed: {}: {}", what, e.what());
            answer->give(HttpResponse::error(500, "internal error"));
        }
    }

    // The one answer to one request, given from any thread: the write runs on the
    // session's strand (at once when given there). Dropped unanswered: a 500.
    class Answer {
    public:
        Answer(std::shared_ptr<Session> session, bool keep_alive, unsigned version) : session_(std::move(session)), keep_alive_(keep_alive), version_(version) {}
        ~Answer() {
            if (given_.exchange(true)) return;
            try {
                deliver(HttpResponse::error(500, "internal error: the request was never answered"));
            } catch (...) {  // out of memory: the connection is dropped with the session
            }
        }
        void give(HttpResponse r) {
            if (!given_.exchange(true)) deliver(std::move(r));
        }

    private:
        void deliver(HttpResponse r) {
            auto session = session_;
            asio::dispatch(session->lowest().get_executor(), [session, r = std::move(r), keep_alive = keep_alive_, version = version_]() mutable {
                if (r.drop_connection) return session->drop(r.drop_after_ms);
                session->respond(std::move(r), keep_alive, version);
            });
        }
        std::shared_ptr<Session> session_;
        bool keep_alive_;
        unsigned version_;
        std::atomic<bool> given_{false};
    };

    // Closes with a TCP reset and no answer, now or after `after_ms`: what a client sees
    // when a server or a middlebox dies mid-request (a hang, then a reset, if after_ms > 0).
    void drop(int after_ms) {
        lowest().expires_never();
        if (after_ms <= 0) return reset();
        timer_.expires_after(std::chrono::milliseconds(after_ms));
        timer_.async_wait([self = this->shared_from_this()](beast::error_code) { self->reset(); });
    }

    void reset() {
        beast::error_code ec;
        lowest().socket().set_option(asio::socket_base::linger(true, 0), ec);  // RST, not FIN
        lowest().socket().close(ec);
    }

    void respond(HttpResponse r, bool keep_alive, unsigned version) {
        auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(r.status), version);
        res->set(http::field::server, "recsync");
        if (!r.content_type.empty()) res->set(http::field::content_type, r.content_type);
        for (auto &[n, v] : r.headers) res->set(n, v);
        res->body() = std::move(r.body);
        res->keep_alive(keep_alive);
        res->prepare_payload();
        // A fresh deadline for the write: the one set before the read may already be spent
        // (slow handler, idle keep-alive), which would cut the response off mid-write.
        lowest().expires_after(std::chrono::seconds(opts_.read_timeout_seconds));
        http::async_write(stream_, *res, [self = this->shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
            if (ec || !keep_alive) return self->close();
            self->read();
        });
    }

    void close() {
        if constexpr (std::is_same_v<Stream, TlsStream>) {
            // close_notify first, so the client can tell our close from a cut connection;
            // bounded by the stream's deadline.
            lowest().expires_after(std::chrono::seconds(5));
            return stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) { self->close_socket(); });
        }
        close_socket();
    }

    void close_socket() {
        beast::error_code ec;
        lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
        lowest().socket().close(ec);
    }

    std::shared_ptr<asio::ssl::context> context_;  // TLS only; before stream_, which uses it
    Stream stream_;
    asio::steady_timer timer_{beast::get_lowest_layer(stream_).get_executor()};  // drop(after_ms)
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    const ListenerOptions &opts_;
    const AsyncHttpHandler &handler_;
};

// The listener's certificate, key and client CAs, read from their files. Throws
// std::runtime_error naming the file that cannot be used.
std::shared_ptr<asio::ssl::context> tls_context(const TlsFiles &files) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                     asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
    const auto use = [](const std::string &what, const std::string &file, const auto &load) {
        beast::error_code ec;
        load(ec);
        if (ec) throw std::runtime_error("TLS " + what + " " + file + ": " + ec.message());
    };
    use("certificate", files.cert_file, [&](beast::error_code &ec) { ctx->use_certificate_chain_file(files.cert_file, ec); });
    use("private key", files.key_file, [&](beast::error_code &ec) { ctx->use_private_key_file(files.key_file, asio::ssl::context::pem, ec); });
    if (!files.client_ca_file.empty()) {
        use("client CA file", files.client_ca_file, [&](beast::error_code &ec) { ctx->load_verify_file(files.client_ca_file, ec); });
        ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
    }
    return ctx;
}

// A TLS listener's first look at a connection: a TLS hello goes on to a TLS session; a
// plain HTTP request gets a 400 saying so, in plain HTTP, so that a client pointed at
// the wrong scheme is told instead of seeing garbage or a hang. Nothing is read past it.
class Detector : public std::enable_shared_from_this<Detector> {
public:
    Detector(tcp::socket socket, std::shared_ptr<asio::ssl::context> context, const ListenerOptions &opts, const AsyncHttpHandler &handler)
        : stream_(std::move(socket)), context_(std::move(context)), opts_(opts), handler_(handler) {}

    void start() {
        stream_.expires_after(std::chrono::seconds(opts_.read_timeout_seconds));
        beast::async_detect_ssl(stream_, buffer_, [self = shared_from_this()](beast::error_code ec, bool tls) {
            if (ec) return;  // closed or timed out before a byte: nothing to answer
            if (tls) {
                std::make_shared<Session<TlsStream>>(std::move(self->stream_), std::move(self->context_), std::move(self->buffer_), self->opts_, self->handler_)->start();
                return;
            }
            static const std::string refusal =
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 71\r\n\r\n"
                "{\"error\":\"this listener takes HTTPS only: connect with TLS (https://)\"}\n";
            asio::async_write(self->stream_, asio::buffer(refusal), [self](beast::error_code, size_t) {
                beast::error_code ignored;
                self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
                self->stream_.socket().close(ignored);
            });
        });
    }

private:
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::shared_ptr<asio::ssl::context> context_;
    const ListenerOptions &opts_;
    const AsyncHttpHandler &handler_;
};

}  // namespace

struct HttpListener::Impl {
    ListenerOptions opts;
    AsyncHttpHandler handler;
    asio::io_context ioc;
    tcp::acceptor acceptor{ioc};
    std::vector<std::thread> threads;
    std::atomic<bool> running{false};
    uint16_t port = 0;
    // TLS: the context new connections are accepted with; reload_tls() swaps it, and
    // connections already open keep theirs.
    mutable std::mutex tls_mutex;
    std::shared_ptr<asio::ssl::context> tls;

    std::shared_ptr<asio::ssl::context> tls_now() const {
        std::lock_guard l(tls_mutex);
        return tls;
    }

    void accept() {
        acceptor.async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
            if (ec) {
                if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
                spdlog::warn("accept failed: {}", ec.message());
            } else {
                socket.set_option(tcp::no_delay(true), ec);
                if (opts.on_accept) opts.on_accept();
                if (auto ctx = tls_now())
                    std::make_shared<Detector>(std::move(socket), std::move(ctx), opts, handler)->start();
                else
                    std::make_shared<Session<beast::tcp_stream>>(std::move(socket), opts, handler)->start();
            }
            accept();
        });
    }
};

HttpListener::HttpListener(ListenerOptions options, AsyncHttpHandler handler) : impl_(std::make_unique<Impl>()) {
    impl_->opts = std::move(options);
    impl_->handler = std::move(handler);
}

HttpListener::HttpListener(ListenerOptions options, HttpHandler handler)
    : HttpListener(std::move(options), AsyncHttpHandler([handler = std::move(handler)](HttpRequest &&req, Respond respond) { respond(handler(req)); })) {}

HttpListener::~HttpListener() { stop(); }

void HttpListener::start() {
    auto &i = *impl_;
    if (i.opts.tls) i.tls = tls_context(*i.opts.tls);
    beast::error_code ec;
    const auto addr = asio::ip::make_address(i.opts.address, ec);
    if (ec) throw std::runtime_error("invalid listen address '" + i.opts.address + "': " + ec.message());
    const tcp::endpoint ep(addr, i.opts.port);
    i.acceptor.open(ep.protocol(), ec);
    if (!ec) i.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) i.acceptor.bind(ep, ec);
    if (!ec) i.acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("cannot listen on " + i.opts.address + ":" + std::to_string(i.opts.port) + ": " + ec.message());
    i.port = i.acceptor.local_endpoint().port();
    i.running = true;
    i.ioc.restart();  // after a stop(), run() would otherwise return at once
    i.accept();
    for (int t = 0; t < std::max(1, i.opts.threads); ++t) i.threads.emplace_back([&i] { i.ioc.run(); });
}

void HttpListener::stop() {
    auto &i = *impl_;
    if (!i.running.exchange(false)) return;
    i.ioc.stop();
    for (auto &t : i.threads) t.join();
    i.threads.clear();
    // Closed here, with no thread running, rather than by a posted handler that ioc.stop()
    // may drop: otherwise the port keeps accepting connections that nobody ever serves.
    beast::error_code ec;
    i.acceptor.close(ec);
}

uint16_t HttpListener::port() const { return impl_->port; }

void HttpListener::reload_tls() {
    auto &i = *impl_;
    if (!i.opts.tls) return;
    auto next = tls_context(*i.opts.tls);  // throws, and the running certificate stays
    std::lock_guard l(i.tls_mutex);
    i.tls = std::move(next);
}

std::pair<std::string, uint16_t> parse_host_port(const std::string &text) {
    std::string host;
    std::string port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
            throw std::invalid_argument("expected [ipv6]:port, got '" + text + "'");
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string::npos) throw std::invalid_argument("expected host:port, got '" + text + "'");
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    try {
        size_t used = 0;
        const int p = std::stoi(port, &used);
        if (used != port.size() || p < 0 || p > 65535) throw std::out_of_range("port");
        return {host.empty() ? "127.0.0.1" : host, static_cast<uint16_t>(p)};
    } catch (const std::exception &) {
        throw std::invalid_argument("invalid port in '" + text + "'");
    }
}

}  // namespace recsync::server
