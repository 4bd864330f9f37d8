#include "dispatch/http_executor.hpp"

#include <curl/curl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <utility>

namespace recsync::dispatch {

namespace {

struct Transfer {
    CURL *easy = nullptr;
    curl_slist *headers = nullptr;
    HttpCall call;
    HttpOutcome outcome;
    char error[CURL_ERROR_SIZE] = {0};
    int attempts = 0;  // times libcurl was about to send the request (send_once: at most 1)
};

// Called each time libcurl is about to send the request on a connection, its own silent
// re-send included; for a send_once call a second time aborts it (see HttpCall::send_once).
// Cheaper than handing the body over by a read callback that refuses to rewind: that
// sends headers and body apart (bench/run e2e: 0.45 of wrk instead of 0.56).
int before_send(void *user, char *, char *, int, int) {
    auto *t = static_cast<Transfer *>(user);
    return ++t->attempts > 1 && t->call.send_once ? CURL_PREREQFUNC_ABORT : CURL_PREREQFUNC_OK;
}

size_t on_body(char *data, size_t size, size_t n, void *user) {
    static_cast<Transfer *>(user)->outcome.body.append(data, size * n);
    return size * n;
}

size_t on_header(char *data, size_t size, size_t n, void *user) {
    auto *t = static_cast<Transfer *>(user);
    std::string_view line(data, size * n);
    // A new status line (after 100 Continue or a redirect) starts a new header set.
    if (line.rfind("HTTP/", 0) == 0) {
        t->outcome.headers.clear();
        return size * n;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return size * n;
    auto trim = [](std::string_view s) {
        while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
        while (!s.empty() && (s.back() == '\r' || s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
        return s;
    };
    t->outcome.headers.push_back({std::string(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1))), false});
    return size * n;
}

}  // namespace

// Driven by libcurl's socket interface (curl_multi_socket_action over epoll) rather than
// curl_multi_perform, which walks every transfer on every call: with hundreds of calls in
// flight (10,000 lanes, or real CRMs answering in 100 ms at thousands of calls a second)
// that walk was the dispatcher's largest cost. Here each wakeup touches only the sockets
// that are ready.
struct HttpExecutor::Impl {
    CURLM *multi = nullptr;
    int epoll_fd = -1;
    int wake_fd = -1;  // an eventfd in the epoll set: wakeup() from any thread
    // When libcurl next wants curl_multi_socket_action(CURL_SOCKET_TIMEOUT): connect and
    // total timeouts, and "now" for transfers just added.
    std::optional<std::chrono::steady_clock::time_point> timer;
    std::chrono::steady_clock::duration waited{};  // blocked in epoll_wait (take_waited)
    std::unordered_map<CURL *, std::unique_ptr<Transfer>> active;
    std::vector<CURL *> idle;  // reused easy handles (saves allocation; connections live in the multi)

    // What each socket is registered for in the epoll set, and whether libcurl wants it.
    // A kept-alive connection goes REMOVE (its transfer is done) then IN again (the next
    // transfer on it) for every call; mirroring that with epoll_ctl DEL and ADD cost two
    // system calls per call, more than the walk this replaces at 16 calls in flight. So a
    // REMOVE only marks the socket unwanted; it leaves the epoll set when it reports an
    // event nobody wants (an idle connection the server closed) or when libcurl closes it
    // (on_close: a new socket may get the same number).
    struct Registration {
        uint32_t events = 0;
        bool wanted = false;
    };
    std::unordered_map<int, Registration> sockets;

    // CURLMOPT_SOCKETFUNCTION: what libcurl wants to hear about each socket.
    static int on_socket(CURL *, curl_socket_t fd, int what, void *user, void *) {
        auto &impl = *static_cast<Impl *>(user);
        auto &reg = impl.sockets[fd];
        if (what == CURL_POLL_REMOVE) {
            reg.wanted = false;
            return 0;
        }
        const uint32_t events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
        reg.wanted = true;
        if (reg.events == events) return 0;
        epoll_event ev{};
        ev.data.fd = fd;
        ev.events = events;
        if (epoll_ctl(impl.epoll_fd, reg.events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) != 0)
            epoll_ctl(impl.epoll_fd, reg.events ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);  // the kernel dropped it, or still had it
        reg.events = events;
        return 0;
    }
    // CURLOPT_CLOSESOCKETFUNCTION: forget the socket before its number can be reused (the
    // kernel takes a closed socket out of the epoll set by itself).
    static int on_close(void *user, curl_socket_t fd) {
        static_cast<Impl *>(user)->sockets.erase(fd);
        return close(fd);
    }
    // An event on a socket libcurl did not want when it came (an idle connection the
    // server closed): out of the epoll set, or a level-triggered event would wake every
    // poll. Asked before the event is handed to libcurl: the answer that ends a transfer
    // makes its socket unwanted too, and that one stays registered for the next call.
    bool unwanted(int fd) const {
        auto it = sockets.find(fd);
        return it != sockets.end() && !it->second.wanted;
    }
    void drop(int fd) {
        auto it = sockets.find(fd);
        if (it == sockets.end()) return;
        epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
        it->second.events = 0;
    }
    // CURLMOPT_TIMERFUNCTION: -1 cancels the timer.
    static int on_timer(CURLM *, long timeout_ms, void *user) {
        auto *impl = static_cast<Impl *>(user);
        if (timeout_ms < 0) impl->timer.reset();
        else impl->timer = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        return 0;
    }
    // Runs libcurl's timeouts while they are due (running one may set the next at 0).
    void run_due_timers() {
        int running = 0;
        for (int i = 0; i < 8 && timer && *timer <= std::chrono::steady_clock::now(); ++i) {
            timer.reset();
            curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }
    }
};

HttpExecutor::HttpExecutor(size_t max_connections) : impl_(std::make_unique<Impl>()) {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    impl_->multi = curl_multi_init();
    if (!impl_->multi) throw std::runtime_error("curl_multi_init failed");
    impl_->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    impl_->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (impl_->epoll_fd < 0 || impl_->wake_fd < 0) throw std::runtime_error(std::string("HTTP executor: cannot create epoll/eventfd: ") + std::strerror(errno));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = impl_->wake_fd;
    epoll_ctl(impl_->epoll_fd, EPOLL_CTL_ADD, impl_->wake_fd, &ev);
    curl_multi_setopt(impl_->multi, CURLMOPT_SOCKETFUNCTION, &Impl::on_socket);
    curl_multi_setopt(impl_->multi, CURLMOPT_SOCKETDATA, impl_.get());
    curl_multi_setopt(impl_->multi, CURLMOPT_TIMERFUNCTION, &Impl::on_timer);
    curl_multi_setopt(impl_->multi, CURLMOPT_TIMERDATA, impl_.get());
    curl_multi_setopt(impl_->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(impl_->multi, CURLMOPT_MAXCONNECTS, static_cast<long>(max_connections));
}

HttpExecutor::~HttpExecutor() {
    for (auto &[easy, t] : impl_->active) {
        curl_multi_remove_handle(impl_->multi, easy);
        curl_slist_free_all(t->headers);
        curl_easy_cleanup(easy);
    }
    for (CURL *e : impl_->idle) curl_easy_cleanup(e);
    curl_multi_cleanup(impl_->multi);
    close(impl_->wake_fd);
    close(impl_->epoll_fd);
}

namespace {
// libcurl's built-in CA bundle (Debian: /etc/ssl/certs/ca-certificates.crt), what a handle
// uses until CURLOPT_CAINFO says otherwise; null if it was built without one.
const char *system_ca_file() {
    static const char *const file = curl_version_info(CURLVERSION_NOW)->cainfo;
    return file;
}
}  // namespace

void HttpExecutor::start(HttpCall call) {
    auto t = std::make_unique<Transfer>();
    t->call = std::move(call);
    t->outcome.tag = t->call.tag;
    CURL *e = nullptr;
    if (!impl_->idle.empty()) {
        e = impl_->idle.back();
        impl_->idle.pop_back();
    } else {
        e = curl_easy_init();
        if (!e) throw std::runtime_error("curl_easy_init failed");
        // The same for every call. A reused handle keeps these; everything a call may
        // change is set below on every call, so no curl_easy_reset (a few percent of the
        // dispatcher's time: it frees and rebuilds the handle's whole state).
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);  // a CRM API does not redirect writes
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(e, CURLOPT_USERAGENT, "recsync/0.1");
        curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, &Impl::on_close);
        curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, impl_.get());
        curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, before_send);  // counts attempts on every call
    }
    t->easy = e;
    const auto &c = t->call;
    curl_easy_setopt(e, CURLOPT_URL, c.url.c_str());
    if (!c.body.empty() || c.method == "POST" || c.method == "PUT" || c.method == "PATCH") {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c.body.data());
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(c.body.size()));
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);  // forgets an earlier call's body
    }
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c.method.c_str());
    curl_easy_setopt(e, CURLOPT_NOBODY, c.method == "HEAD" ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, t.get());
    std::string line;
    for (const auto &h : c.headers) {
        line.assign(h.name).append(": ").append(h.value);
        t->headers = curl_slist_append(t->headers, line.c_str());
    }
    t->headers = curl_slist_append(t->headers, "Expect:");  // no 100-continue round trip
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    // Set on every call: a reused handle would keep another connection's CA. Verification
    // (CURLOPT_SSL_VERIFYPEER/HOST) stays at libcurl's default, on; only whom to trust changes.
    curl_easy_setopt(e, CURLOPT_CAINFO, c.ca_file.empty() ? system_ca_file() : c.ca_file.c_str());
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(c.connect_timeout_ms));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(c.timeout_ms));
    // Waiting to learn whether a connection can multiplex is worth it where HTTP/2 may be
    // offered (TLS: ALPN answers during the handshake). Over plain HTTP it cannot be, and
    // libcurl then holds every new call behind the first answer on a fresh connection:
    // one hung call stalled its lane's others until it timed out.
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, c.url.rfind("https://", 0) == 0 ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
    curl_multi_add_handle(impl_->multi, e);
    impl_->active.emplace(e, std::move(t));
}

std::vector<HttpOutcome> HttpExecutor::poll(int timeout_ms) {
    auto &i = *impl_;
    i.run_due_timers();  // starts the transfers added since the last poll
    // Calls that ended without waiting (refused at once, or answered within the timer run)
    // go back now rather than after a sleep.
    std::vector<HttpOutcome> done = collect();
    if (!done.empty()) return done;
    int wait = std::max(0, timeout_ms);
    if (i.timer) wait = static_cast<int>(std::min<int64_t>(wait, std::max<int64_t>(0, std::chrono::ceil<std::chrono::milliseconds>(*i.timer - std::chrono::steady_clock::now()).count())));
    epoll_event events[128];
    const auto before = std::chrono::steady_clock::now();
    const int n = epoll_wait(i.epoll_fd, events, 128, wait);
    // A call that found events ready returns in a few microseconds: not idle time.
    if (const auto blocked = std::chrono::steady_clock::now() - before; wait > 0 && blocked > std::chrono::microseconds(20)) i.waited += blocked;
    int running = 0;
    for (int k = 0; k < n; ++k) {
        const int fd = events[k].data.fd;
        if (fd == i.wake_fd) {
            uint64_t count = 0;
            while (read(i.wake_fd, &count, sizeof count) > 0) {
            }
            continue;
        }
        const uint32_t e = events[k].events;
        const int flags = ((e & EPOLLIN) ? CURL_CSELECT_IN : 0) | ((e & EPOLLOUT) ? CURL_CSELECT_OUT : 0) | ((e & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
        const bool unwanted = i.unwanted(fd);
        curl_multi_socket_action(i.multi, fd, flags, &running);
        if (unwanted && i.unwanted(fd)) i.drop(fd);  // still unwanted: libcurl did not take it up
    }
    i.run_due_timers();
    return collect();
}

std::vector<HttpOutcome> HttpExecutor::collect() {
    std::vector<HttpOutcome> done;
    int left = 0;
    while (CURLMsg *m = curl_multi_info_read(impl_->multi, &left)) {
        if (m->msg != CURLMSG_DONE) continue;
        CURL *e = m->easy_handle;
        auto it = impl_->active.find(e);
        if (it == impl_->active.end()) continue;
        auto &t = *it->second;
        if (m->data.result == CURLE_OK) {
            long code = 0;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
            t.outcome.status = static_cast<int>(code);
            curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &t.outcome.http_version);
        } else {
            t.outcome.status = 0;
            t.outcome.transport_error = t.call.send_once && t.attempts > 1 ? "the connection died before an answer; not sent again by libcurl (the server may have processed it)"
                                                       : t.error[0] ? t.error : curl_easy_strerror(m->data.result);
        }
        curl_multi_remove_handle(impl_->multi, e);
        curl_slist_free_all(t.headers);
        t.outcome.call = std::move(t.call);
        done.push_back(std::move(t.outcome));
        // libcurl counts its silent re-sends on dead kept-alive connections per handle and
        // only curl_easy_reset clears the count: a handle that re-sent is not reused, or
        // after five such calls over its life the sixth would fail ("tried 5 times").
        if (t.attempts > 1) curl_easy_cleanup(e);
        else impl_->idle.push_back(e);
        impl_->active.erase(it);
    }
    return done;
}

void HttpExecutor::wakeup() {
    const uint64_t one = 1;
    [[maybe_unused]] const auto written = write(impl_->wake_fd, &one, sizeof one);  // fails only when the counter is full: already awake
}

size_t HttpExecutor::in_flight() const { return impl_->active.size(); }

std::chrono::steady_clock::duration HttpExecutor::take_waited() { return std::exchange(impl_->waited, {}); }

}  // namespace recsync::dispatch
