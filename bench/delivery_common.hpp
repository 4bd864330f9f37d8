// Shared plumbing for the delivery benchmarks (bench_e2e, bench_latency, bench_ratelimit,
// bench_lanes): real processes (a `recsync run` and a `recsync-mock-crm`) on loopback,
// a tiny blocking HTTP/1.1 keep-alive client, config generation in a private temp dir,
// a hard time bound, and one-JSON-object-per-line output.
//
// Every child is killed when the bench ends, fails, is interrupted or runs out of time.
#pragma once

#include "store/state_backend.hpp"

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

extern char **environ;

namespace bench {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

#ifndef RECSYNC_BINARY_DIR
#define RECSYNC_BINARY_DIR "build"
#endif
#ifndef RECSYNC_SOURCE_DIR
#define RECSYNC_SOURCE_DIR "."
#endif

inline const std::string kToken = "bench-token";  // the CRM bearer token (the mock does not check it)

inline double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
inline int64_t epoch_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

inline void progress(const std::string &what) {
    std::cerr << "[" << std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count() % 100000 << "] "
              << what << std::endl;
}

inline json load_average() {
    std::ifstream f("/proc/loadavg");
    double a = 0, b = 0, c = 0;
    f >> a >> b >> c;
    return json::array({a, b, c});
}

inline void emit(const json &j) {
    std::cout << j.dump() << std::endl;
}

inline double round_to(double v, int digits) {
    const double p = std::pow(10.0, digits);
    return std::round(v * p) / p;
}

// Percentile (nearest rank) of a sorted vector.
inline double percentile(const std::vector<double> &sorted, double p) {
    if (sorted.empty()) return NAN;
    const size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
    return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

// ---------------------------------------------------------------- children and time bound

inline std::mutex g_children_mu;
inline std::vector<pid_t> g_children;

inline void kill_children_now() {
    // Also called from a signal handler: no locking, no allocation.
    for (pid_t p : g_children)
        if (p > 0) kill(p, SIGKILL);
}

inline void on_fatal_signal(int sig) {
    kill_children_now();
    const char msg[] = "bench: interrupted or out of time; children killed\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(sig == SIGALRM ? 3 : 130);
}

// Kills every child on SIGINT/SIGTERM and after `max_seconds` (SIGALRM).
inline void install_guard(unsigned max_seconds) {
    signal(SIGINT, on_fatal_signal);
    signal(SIGTERM, on_fatal_signal);
    signal(SIGALRM, on_fatal_signal);
    signal(SIGPIPE, SIG_IGN);
    alarm(max_seconds);
    std::atexit([] { kill_children_now(); });
}

// User + system CPU seconds process `pid` has used so far, none if unknown.
inline std::optional<double> cpu_seconds_of(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const auto close = s.rfind(')');  // the command name may hold spaces and parentheses
    if (close == std::string::npos) return std::nullopt;
    std::istringstream in(s.substr(close + 2));
    std::string field;
    double ut = 0, st = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
        if (i == 14) ut = std::stod(field);
        if (i == 15) st = std::stod(field);
    }
    return (ut + st) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// A state database's size on disk: the file and its WAL (0 for what is missing).
inline int64_t database_bytes(const std::string &path) {
    auto size = [](const std::string &p) {
        std::error_code ec;
        const auto s = fs::file_size(p, ec);
        return ec ? int64_t{0} : static_cast<int64_t>(s);
    };
    return size(path) + size(path + "-wal");
}

// "<prefix>-00042": the bench connections' names.
inline std::string numbered_name(const char *prefix, int64_t i) {
    char b[48];
    std::snprintf(b, sizeof b, "%s-%05lld", prefix, static_cast<long long>(i));
    return b;
}

class Child {
public:
    Child() = default;
    // Starts argv[0] with stdout+stderr appended to `log` (stdin /dev/null).
    Child(const std::vector<std::string> &argv, const std::string &log) {
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        std::vector<char *> args;
        for (const auto &a : argv) args.push_back(const_cast<char *>(a.c_str()));
        args.push_back(nullptr);
        pid_t p = 0;
        const int rc = posix_spawnp(&p, args[0], &fa, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
        pid_ = p;
        std::lock_guard l(g_children_mu);
        g_children.push_back(p);
    }
    Child(const Child &) = delete;
    Child &operator=(const Child &) = delete;
    Child(Child &&o) noexcept : pid_(o.pid_) { o.pid_ = 0; }
    Child &operator=(Child &&o) noexcept {
        if (this != &o) {
            stop();
            pid_ = o.pid_;
            o.pid_ = 0;
        }
        return *this;
    }
    ~Child() { stop(); }

    pid_t pid() const { return pid_; }
    bool alive() const {
        if (pid_ <= 0) return false;
        int st = 0;
        return waitpid(pid_, &st, WNOHANG) == 0;
    }
    // SIGTERM, then SIGKILL after `grace`; reaps it.
    void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(10000)) {
        if (pid_ <= 0) return;
        kill(pid_, SIGTERM);
        const auto until = Clock::now() + grace;
        int st = 0;
        while (waitpid(pid_, &st, WNOHANG) == 0) {
            if (Clock::now() > until) {
                kill(pid_, SIGKILL);
                waitpid(pid_, &st, 0);
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        {
            std::lock_guard l(g_children_mu);
            std::replace(g_children.begin(), g_children.end(), pid_, pid_t{0});
        }
        pid_ = 0;
    }
    // Resident set size in bytes (VmRSS, or VmHWM = peak), 0 if unknown.
    int64_t rss_bytes(const char *field = "VmRSS:") const {
        std::ifstream f("/proc/" + std::to_string(pid_) + "/status");
        std::string line;
        while (std::getline(f, line))
            if (line.rfind(field, 0) == 0) return std::stoll(line.substr(std::strlen(field))) * 1024;
        return 0;
    }
    // User + system CPU seconds used so far.
    double cpu_seconds() const { return cpu_seconds_of(pid_).value_or(0); }

private:
    pid_t pid_ = 0;
};

// ---------------------------------------------------------------- HTTP/1.1 client

struct HttpResult {
    int status = 0;  // 0: transport error
    std::string body;
    std::string error;
};

// One keep-alive connection; reconnects on the next request after a failure. Not thread-safe.
class HttpClient {
public:
    HttpClient(std::string host, uint16_t port) : host_(std::move(host)), port_(port) {}
    ~HttpClient() { close_fd(); }
    HttpClient(const HttpClient &) = delete;
    HttpClient &operator=(const HttpClient &) = delete;

    HttpResult request(const std::string &method, const std::string &target, const std::string &body = "",
                       const std::string &content_type = "application/json", const std::string &extra_headers = "") {
        HttpResult r;
        if (fd_ < 0 && !connect_fd(r.error)) return r;
        std::string req;
        req.reserve(256 + body.size());
        req += method + " " + target + " HTTP/1.1\r\nHost: " + host_ + ":" + std::to_string(port_) + "\r\n";
        if (!body.empty() || method == "POST" || method == "PATCH" || method == "PUT") {
            req += "Content-Type: " + content_type + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
        }
        req += extra_headers;
        req += "\r\n";
        req += body;
        if (!send_all(req)) {
            r.error = "send failed";
            close_fd();
            return r;
        }
        if (!read_response(r)) close_fd();
        return r;
    }
    HttpResult get(const std::string &target) { return request("GET", target); }
    json get_json(const std::string &target) {
        auto r = get(target);
        if (r.status != 200) throw std::runtime_error("GET " + target + " -> " + std::to_string(r.status) + " " + r.error + r.body.substr(0, 200));
        return json::parse(r.body);
    }

private:
    bool connect_fd(std::string &error) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) {
            error = std::strerror(errno);
            return false;
        }
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port_);
        inet_pton(AF_INET, host_.c_str(), &a.sin_addr);
        if (::connect(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
            error = std::string("connect: ") + std::strerror(errno);
            close_fd();
            return false;
        }
        int one = 1;
        setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        timeval tv{30, 0};  // an answer that takes longer is a failure, not a hang
        setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        buf_.clear();
        return true;
    }
    void close_fd() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
        buf_.clear();
    }
    bool send_all(const std::string &s) {
        size_t off = 0;
        while (off < s.size()) {
            const ssize_t n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
            if (n <= 0) {
                if (n < 0 && errno == EINTR) continue;
                return false;
            }
            off += static_cast<size_t>(n);
        }
        return true;
    }
    bool fill() {
        char tmp[65536];
        for (;;) {
            const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            buf_.append(tmp, static_cast<size_t>(n));
            return true;
        }
    }
    static std::string lower(std::string s) {
        for (auto &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return s;
    }
    bool read_response(HttpResult &r) {
        size_t end;
        while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
            if (!fill()) {
                r.error = "connection closed before the answer";
                return false;
            }
        const std::string head = lower(buf_.substr(0, end));
        buf_.erase(0, end + 4);
        if (head.size() < 12) {
            r.error = "bad status line";
            return false;
        }
        r.status = std::atoi(head.c_str() + 9);
        const bool close_after = head.find("\r\nconnection: close") != std::string::npos;
        if (const auto cl = head.find("\r\ncontent-length:"); cl != std::string::npos) {
            const size_t len = std::strtoull(head.c_str() + cl + 17, nullptr, 10);
            while (buf_.size() < len)
                if (!fill()) {
                    r.error = "connection closed in the body";
                    return false;
                }
            r.body = buf_.substr(0, len);
            buf_.erase(0, len);
        } else if (head.find("\r\ntransfer-encoding: chunked") != std::string::npos) {
            for (;;) {
                size_t eol;
                while ((eol = buf_.find("\r\n")) == std::string::npos)
                    if (!fill()) return false;
                const size_t len = std::strtoull(buf_.c_str(), nullptr, 16);
                buf_.erase(0, eol + 2);
                while (buf_.size() < len + 2)
                    if (!fill()) return false;
                r.body.append(buf_, 0, len);
                buf_.erase(0, len + 2);
                if (len == 0) break;
            }
        } else if (close_after) {
            while (fill()) {
            }
            r.body = std::move(buf_);
            buf_.clear();
            return false;
        }
        return !close_after;
    }

    std::string host_;
    uint16_t port_;
    int fd_ = -1;
    std::string buf_;
};

// ---------------------------------------------------------------- files, ports, processes

class TempDir {
public:
    TempDir() {
        const char *base = std::getenv("TMPDIR");
        std::string tmpl = std::string(base && *base ? base : "/tmp") + "/recsync-bench-XXXXXX";
        if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempDir() {
        if (std::getenv("BENCH_KEEP_TMP")) {
            std::cerr << "bench: kept " << path_ << "\n";
            return;
        }
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const std::string &path() const { return path_; }
    std::string file(const std::string &name) const { return (fs::path(path_) / name).string(); }
    std::string write(const std::string &name, const std::string &content) const {
        const fs::path p = fs::path(path_) / name;
        fs::create_directories(p.parent_path());
        std::ofstream out(p);
        out << content;
        if (!out) throw std::runtime_error("cannot write " + p.string());
        return p.string();
    }

private:
    std::string path_;
};

inline uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) throw std::runtime_error("bind failed");
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

inline bool port_in_use(uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    const bool used = ::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0;
    ::close(fd);
    return used;
}

inline bool wait_until(const std::function<bool()> &pred, std::chrono::milliseconds timeout, std::chrono::milliseconds step = std::chrono::milliseconds(20)) {
    const auto until = Clock::now() + timeout;
    while (Clock::now() < until) {
        if (pred()) return true;
        std::this_thread::sleep_for(step);
    }
    return pred();
}

inline std::string binary(const std::string &rel) { return std::string(RECSYNC_BINARY_DIR) + "/" + rel; }

inline std::string tail_file(const std::string &path, size_t bytes = 2000) {
    std::ifstream f(path);
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return s.size() > bytes ? s.substr(s.size() - bytes) : s;
}

struct Mock {
    Child proc;
    uint16_t port = 0;
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

// Starts recsync-mock-crm on a free port with `args` (e.g. --no-log, --rate 100).
inline Mock start_mock(const TempDir &dir, const std::vector<std::string> &args, const std::string &name = "mock") {
    const std::string port_file = dir.file(name + ".port");
    std::error_code ec;
    fs::remove(port_file, ec);
    std::vector<std::string> argv = {binary("tests/mock_crm/recsync-mock-crm"), "--listen", "127.0.0.1:0", "--port-file", port_file};
    argv.insert(argv.end(), args.begin(), args.end());
    Mock m;
    const std::string log = dir.file(name + ".log");
    m.proc = Child(argv, log);
    if (!wait_until([&] { return fs::exists(port_file) || !m.proc.alive(); }, std::chrono::seconds(20)) || !fs::exists(port_file))
        throw std::runtime_error("the mock CRM did not start: " + tail_file(log));
    std::ifstream(port_file) >> m.port;
    return m;
}

// The plugin (from the build's plugins dir unless `from` says otherwise), copied into a
// 0700 dir: recsync refuses group/other-writable plugin dirs.
inline std::string prepare_plugins(const TempDir &dir, const std::string &from = binary("plugins")) {
    const fs::path to = fs::path(dir.path()) / "plugins";
    fs::create_directories(to);
    fs::permissions(to, fs::perms::owner_all, fs::perm_options::replace);
    const fs::path src = fs::path(from) / "hubspot.so";
    if (!fs::exists(src)) throw std::runtime_error(src.string() + " not found (build the hubspot target, or pass --plugins DIR)");
    const fs::path dst = to / "hubspot.so";
    fs::copy_file(src, dst, fs::copy_options::overwrite_existing);
    fs::permissions(dst, fs::perms::owner_read | fs::perms::owner_write | fs::perms::owner_exec, fs::perm_options::replace);
    return to.string();
}

// The shipped rules (rules/contacts.yaml, rules/schemas/contact.json) with their target
// connection renamed to `target`.
inline std::string prepare_rules(const TempDir &dir, const std::string &target) {
    const std::string src = std::string(RECSYNC_SOURCE_DIR) + "/rules";
    std::ifstream in(src + "/contacts.yaml");
    std::string y((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (y.empty()) throw std::runtime_error("cannot read " + src + "/contacts.yaml");
    const std::string from = "target: hubspot-main", to = "target: " + target;
    for (size_t p = 0; (p = y.find(from, p)) != std::string::npos; p += to.size()) y.replace(p, from.size(), to);
    dir.write("rules/contacts.yaml", y);
    std::ifstream s(src + "/schemas/contact.json");
    dir.write("rules/schemas/contact.json", std::string((std::istreambuf_iterator<char>(s)), std::istreambuf_iterator<char>()));
    return dir.file("rules");
}

struct ConnSpec {
    std::string name;
    double per_second = 1e6;  // <= 0: no rate_limit (the default: none)
    double burst = 1e4;
    int max_in_flight = 16;  // <= 0: left to the engine's default (which follows answer times)
    // Records per call: 1 (these benchmarks measure the per-call machinery against per-call
    // baselines), 0 for the provider's batch sizes (bench_batch).
    int batch_max_size = 1;
};

struct EngineSpec {
    std::string plugins_dir, rules_dir, state_path;
    uint16_t port = 0;
    std::string mock_url;
    std::string synchronous = "full";
    int server_threads = 0;  // 0: the engine's default (server.threads)
    std::string log_level = "info";
    int retry_max_attempts = 1000;
    int retry_base_ms = 200;
    int retry_max_ms = 10000;
};

// The spec every benchmark starts from: the given plugins and rules, a fresh state database
// in `dir`, a free port, the mock as base_url, warnings only.
inline EngineSpec engine_spec(const TempDir &dir, const std::string &plugins, const std::string &rules, const Mock &mock) {
    EngineSpec spec;
    spec.plugins_dir = plugins;
    spec.rules_dir = rules;
    spec.state_path = dir.file("state/recsync.db");
    spec.port = free_port();
    spec.mock_url = mock.url();
    spec.log_level = "warn";
    return spec;
}

inline std::string config_yaml(const EngineSpec &e, const std::vector<ConnSpec> &conns) {
    std::string y;
    y.reserve(200 + conns.size() * 260);
    y += "plugins_dir: " + e.plugins_dir + "\nrules_dir: " + e.rules_dir + "\nwatch_rules: false\n";
    y += "state: { path: " + e.state_path + ", synchronous: " + e.synchronous + " }\n";
    y += "server: { listen: '127.0.0.1:" + std::to_string(e.port) + "'" +
         (e.server_threads > 0 ? ", threads: " + std::to_string(e.server_threads) : std::string()) + " }\n";
    y += "log_level: " + e.log_level + "\nconnections:\n";
    char buf[512];
    for (const auto &c : conns) {
        std::snprintf(buf, sizeof buf,
                      "  %s:\n    provider: hubspot\n    base_url: '%s'\n    credentials: { token_env: BENCH_CRM_TOKEN }\n"
                      "    retry: { max_attempts: %d, base_delay_ms: %d, max_delay_ms: %d }\n",
                      c.name.c_str(), e.mock_url.c_str(), e.retry_max_attempts, e.retry_base_ms, e.retry_max_ms);
        y += buf;
        if (c.per_second > 0) {
            std::snprintf(buf, sizeof buf, "    rate_limit: { per_second: %g, burst: %g }\n", c.per_second, c.burst);
            y += buf;
        }
        if (c.max_in_flight > 0) y += "    max_in_flight: " + std::to_string(c.max_in_flight) + "\n";
        if (c.batch_max_size > 0) y += "    batch: { max_size: " + std::to_string(c.batch_max_size) + " }\n";
    }
    return y;
}

struct Engine {
    Child proc;
    uint16_t port = 0;
    std::string log;
    double ready_seconds = 0;  // from spawn to /readyz 200
};

// Starts `recsync run -c config` and waits for /readyz.
inline Engine start_recsync(const std::string &config, uint16_t port, const std::string &log, std::chrono::seconds timeout = std::chrono::seconds(60)) {
    setenv("BENCH_CRM_TOKEN", kToken.c_str(), 1);
    Engine e;
    e.port = port;
    e.log = log;
    const auto t0 = Clock::now();
    e.proc = Child({binary("recsync"), "run", "-c", config}, log);
    HttpClient c("127.0.0.1", port);
    if (!wait_until([&] { return !e.proc.alive() || c.get("/readyz").status == 200; }, timeout, std::chrono::milliseconds(50)) || !e.proc.alive())
        throw std::runtime_error("recsync did not become ready: " + tail_file(log));
    e.ready_seconds = seconds_since(t0);
    return e;
}

// A created-contact event as System A would send it (NDJSON line, no newline).
inline std::string contact_event(const std::string &prefix, int64_t i) {
    const std::string n = std::to_string(i);
    return R"({"entity":"contact","event":"created","key":")" + prefix + "-" + n + R"(","data":{"email":")" + prefix + n +
           R"(@example.com","first_name":"F)" + n + R"(","last_name":"L)" + n + R"("}})";
}

// What the HubSpot plugin POSTs for that event (same fields, same key order: nlohmann dumps sorted keys).
inline std::string hubspot_create_body(const std::string &email, int64_t i) {
    const std::string n = std::to_string(i);
    return R"({"associations":[],"properties":{"email":")" + email + R"(","firstname":"F)" + n + R"(","lastname":"L)" + n + R"(","lifecyclestage":"lead"}})";
}

// Minimal flag parsing: --name value.
class Args {
public:
    Args(int argc, char **argv) {
        for (int i = 1; i < argc; ++i) {
            std::string a = argv[i];
            if (a.rfind("--", 0) != 0) throw std::runtime_error("unexpected argument " + a);
            a = a.substr(2);
            if (const auto eq = a.find('='); eq != std::string::npos) {
                kv_.emplace_back(a.substr(0, eq), a.substr(eq + 1));
            } else if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
                kv_.emplace_back(a, argv[++i]);
            } else {
                kv_.emplace_back(a, "1");
            }
        }
    }
    double num(const std::string &k, double def) {
        used_.push_back(k);
        for (auto &[n, v] : kv_)
            if (n == k) return std::stod(v);
        return def;
    }
    std::string str(const std::string &k, const std::string &def) {
        used_.push_back(k);
        for (auto &[n, v] : kv_)
            if (n == k) return v;
        return def;
    }
    bool flag(const std::string &k) {
        used_.push_back(k);
        for (auto &[n, v] : kv_)
            if (n == k) return v != "0";
        return false;
    }
    // Call after reading every option: unknown ones are errors.
    void done(const std::string &usage) {
        for (auto &[n, v] : kv_)
            if (n == "help" || std::find(used_.begin(), used_.end(), n) == used_.end()) {
                std::cerr << (n == "help" ? "" : "unknown option --" + n + "\n") << usage;
                std::exit(n == "help" ? 0 : 2);
            }
    }

private:
    std::vector<std::pair<std::string, std::string>> kv_;
    std::vector<std::string> used_;
};

inline bool have_program(const std::string &name) {
    return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

// Runs a shell command, returns its stdout.
inline std::string capture(const std::string &cmd) {
    std::string out;
    FILE *p = popen(cmd.c_str(), "r");
    if (!p) return out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
    return out;
}

// wrk script: POST /crm/v3/objects/contacts with the plugin's body and headers; a new
// email per request (the mock answers a repeated email 409). Prints one JSON line at the end.
inline const char *kWrkLua = R"lua(
local counter = 0
local next_id = 0
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-token"
function request()
  counter = counter + 1
  local body = string.format('{"associations":[],"properties":{"email":"w%d-%d@example.com","firstname":"F%d","lastname":"L%d","lifecyclestage":"lead"}}', tid, counter, counter, counter)
  return wrk.format(nil, "/crm/v3/objects/contacts", nil, body)
end
function done(summary, latency, requests)
  io.write(string.format('WRK {"requests":%d,"duration_us":%d,"non_2xx_3xx":%d,"socket_errors":%d,"latency_p50_us":%d,"latency_p99_us":%d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
)lua";

inline json run_wrk(const std::string &script, const Mock &mock, int threads, int connections, int seconds) {
    const std::string cmd = "wrk -t" + std::to_string(threads) + " -c" + std::to_string(connections) + " -d" + std::to_string(seconds) +
                            "s -s " + script + " " + mock.url() + "/crm/v3/objects/contacts 2>&1";
    const std::string out = capture(cmd);
    const auto pos = out.find("WRK {");
    if (pos == std::string::npos) throw std::runtime_error("wrk printed no result: " + out);
    json j = json::parse(out.substr(pos + 4, out.find('\n', pos) - pos - 4));
    j["per_sec"] = std::round(j["requests"].get<double>() / (j["duration_us"].get<double>() / 1e6));
    return j;
}

// Sends events prefix-from .. prefix-(from+n-1) to POST /v1/events as NDJSON batches of
// `batch`, from `senders` threads (one keep-alive connection each), as fast as recsync
// accepts them. A batch not answered 202 is sent again after 20 ms. Returns the seconds
// from `t0` to the last 202.
struct SendStats {
    double last_accept_s = 0;
    int64_t resent = 0;
};
inline SendStats send_events(uint16_t port, const std::string &prefix, int64_t from, int64_t n, int batch, int senders, Clock::time_point t0) {
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> resent{0};
    std::vector<std::thread> threads;
    std::mutex mu;
    double last = 0;
    for (int s = 0; s < senders; ++s)
        threads.emplace_back([&] {
            HttpClient c("127.0.0.1", port);
            std::string body;
            for (;;) {
                const int64_t b = next.fetch_add(batch);
                if (b >= n) break;
                body.clear();
                for (int64_t i = b; i < std::min(n, b + batch); ++i) (body += contact_event(prefix, from + i)) += '\n';
                for (int tries = 0;; ++tries) {
                    const auto r = c.request("POST", "/v1/events", body, "application/x-ndjson");
                    if (r.status == 202) break;
                    if (tries == 0 || tries % 100 == 0) progress("POST /v1/events -> " + std::to_string(r.status) + " " + r.error + r.body.substr(0, 200));
                    ++resent;
                    std::this_thread::sleep_for(std::chrono::milliseconds(20));
                }
                std::lock_guard l(mu);
                last = std::max(last, seconds_since(t0));
            }
        });
    for (auto &t : threads) t.join();
    return {last, resent.load()};
}

// Writes `tasks` HubSpot contact creates (~110-byte payloads, one record each) into a
// fresh state database through the engine's own task log, task i for connection
// `connection_of(i)`, not to be sent before `not_before_ms` (epoch; 0: at once).
inline double prefill(const std::string &path, const std::function<std::string(int64_t)> &connection_of, int64_t tasks, int64_t not_before_ms) {
    const auto t0 = Clock::now();
    recsync::config::StateConfig cfg;
    cfg.path = path;
    cfg.synchronous = "normal";
    const auto state = recsync::store::open_state_backend(cfg);
    std::vector<recsync::model::Task> batch;
    const int64_t step = 20000;
    for (int64_t from = 0; from < tasks; from += step) {
        batch.clear();
        for (int64_t i = from; i < std::min(tasks, from + step); ++i) {
            recsync::model::Task t;
            t.connection = connection_of(i);
            t.object = "contacts";
            t.record_key = "k" + std::to_string(i);
            t.action = RECSYNC_ACTION_CREATE;
            const std::string n = std::to_string(i);
            t.payload = R"({"properties":{"email":"t)" + n + R"(@example.com","firstname":"F)" + n + R"(","lastname":"L)" + n + R"(","lifecyclestage":"lead"}})";
            t.not_before_ms = not_before_ms;
            batch.push_back(std::move(t));
        }
        recsync::store::append_and_wait(state->tasks(), recsync::store::batch_of(std::move(batch)));
    }
    return seconds_since(t0);
}

// When the mock received each create of events `prefix`-N (contact_event): N -> its
// request log's `at_ms`, the first receipt of each. Reads the whole log once.
inline std::unordered_map<int64_t, int64_t> receipts_by_event(HttpClient &mock_admin, const std::string &prefix) {
    std::unordered_map<int64_t, int64_t> receipt;
    const std::string marker = "\"email\":\"" + prefix;
    for (const auto &r : mock_admin.get_json("/_mock/requests")) {
        if (r["method"] != "POST") continue;
        const auto &body = r["body"].get_ref<const std::string &>();
        const auto p = body.find(marker);
        if (p == std::string::npos) continue;
        receipt.emplace(std::strtoll(body.c_str() + p + marker.size(), nullptr, 10), r["at_ms"].get<int64_t>());
    }
    return receipt;
}

// Milliseconds -> {"n", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"}.
inline json latency_summary(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return {{"n", v.size()},
            {"p50_ms", round_to(percentile(v, 50), 2)},
            {"p90_ms", round_to(percentile(v, 90), 2)},
            {"p99_ms", round_to(percentile(v, 99), 2)},
            {"p999_ms", round_to(percentile(v, 99.9), 2)},
            {"max_ms", v.empty() ? json(nullptr) : json(round_to(v.back(), 2))}};
}

inline void reset_mock(uint16_t port) {
    HttpClient c("127.0.0.1", port);
    const auto r = c.request("POST", "/_mock/reset", "{}");
    if (r.status != 200) throw std::runtime_error("POST /_mock/reset -> " + std::to_string(r.status));
}

// The BullMQ peer (../shared/peers/bullmq: a BullMQ queue on its own redis-server and a
// Node.js worker POSTing one record per job to `url`), `jobs` jobs, `concurrency` at once,
// its limiter at `rate` jobs/s (0: none). Its JSON line, or nullopt with the reason shown
// (node, redis-server or its npm packages missing: scripts/deps --bench).
inline std::optional<json> run_bullmq_peer(const TempDir &dir, int jobs, int concurrency, const std::string &url, double rate = 0) {
    const std::string peer_dir = std::string(RECSYNC_SOURCE_DIR) + "/../shared/peers/bullmq";
    if (!have_program("node") || !have_program("redis-server") || !std::filesystem::exists(peer_dir + "/node_modules/bullmq")) {
        progress("BullMQ peer skipped: needs node, redis-server and npm install in " + peer_dir + " (scripts/deps --bench)");
        return std::nullopt;
    }
    const uint16_t redis_port = 16379;
    if (port_in_use(redis_port)) {
        progress("BullMQ peer skipped: something already listens on 127.0.0.1:16379 (not ours: left alone)");
        return std::nullopt;
    }
    Child redis({"redis-server", "--port", std::to_string(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir.path()},
                dir.file("redis.log"));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    if (!redis.alive()) {
        progress("BullMQ peer skipped: redis-server did not start on port 16379: " + tail_file(dir.file("redis.log"), 400));
        return std::nullopt;
    }
    char rate_text[32];
    std::snprintf(rate_text, sizeof rate_text, "%g", rate);
    const std::string args = std::to_string(jobs) + " " + std::to_string(concurrency) + " " + url + (rate > 0 ? std::string(" ") + rate_text : "");
    progress("BullMQ peer: node peer.mjs " + args);
    const std::string out = capture("cd " + peer_dir + " && REDIS_PORT=" + std::to_string(redis_port) + " timeout 300 node peer.mjs " + args + " 2>&1");
    const auto open = out.rfind("{\"peer\"");
    if (open == std::string::npos) {
        progress("BullMQ peer printed no result: " + out.substr(0, 1000));
        return std::nullopt;
    }
    return json::parse(out.substr(open, out.find('\n', open) - open));
}

}  // namespace bench
