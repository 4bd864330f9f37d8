#include "server/http_listener.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
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

class Session : public std::enable_shared_from_this<Session> {
public:
    Session(tcp::socket socket, const ListenerOptions &opts, const AsyncHttpHandler &handler)
        : stream_(std::move(socket)), opts_(opts), handler_(handler) {}

    void start() { read(); }

private:
    void read() {
        parser_.emplace();
        parser_->body_limit(opts_.max_body_bytes);
        parser_->header_limit(64 * 1024);
        stream_.expires_after(std::chrono::seconds(opts_.read_timeout_seconds));
        http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
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
            if (ec != http::error::end_of_stream && ec != beast::error::timeout && ec != asio::error::connection_reset && ec != asio::error::operation_aborted)
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
        const auto ep = stream_.socket().remote_endpoint(rec);
        if (!rec) req.remote = ep.address().to_string();
        const std::string what = req.method + " " + std::string(req.path());
        auto answer = std::make_shared<Answer>(shared_from_this(), msg.keep_alive(), msg.version());
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
            asio::dispatch(session->stream_.get_executor(), [session, r = std::move(r), keep_alive = keep_alive_, version = version_]() mutable {
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
        stream_.expires_never();
        if (after_ms <= 0) return reset();
        timer_.expires_after(std::chrono::milliseconds(after_ms));
        timer_.async_wait([self = shared_from_this()](beast::error_code) { self->reset(); });
    }

    void reset() {
        beast::error_code ec;
        stream_.socket().set_option(asio::socket_base::linger(true, 0), ec);  // RST, not FIN
        stream_.socket().close(ec);
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
        stream_.expires_after(std::chrono::seconds(opts_.read_timeout_seconds));
        http::async_write(stream_, *res, [self = shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
            if (ec || !keep_alive) return self->close();
            self->read();
        });
    }

    void close() {
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
        stream_.socket().close(ec);
    }

    beast::tcp_stream stream_;
    asio::steady_timer timer_{stream_.get_executor()};  // drop(after_ms)
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
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

    void accept() {
        acceptor.async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
            if (ec) {
                if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
                spdlog::warn("accept failed: {}", ec.message());
            } else {
                socket.set_option(tcp::no_delay(true), ec);
                if (opts.on_accept) opts.on_accept();
                std::make_shared<Session>(std::move(socket), opts, handler)->start();
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
