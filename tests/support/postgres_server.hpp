// A real PostgreSQL 15 server (Debian's, /usr/lib/postgresql/15/bin) for integration
// tests: initdb in a fresh directory under /tmp, listening on 127.0.0.1 only at a free
// port, with its unix socket in that directory. Starting one takes about a second, so
// start it ONCE per test executable (postgres_environment.hpp's ::testing::Environment,
// and register the test with recsync_add_test(... ONE_PROCESS ...)). Header-only; link
// recsync_test_support.
//
// fsync stays on (tests of crash safety rely on it); only initdb runs with --no-sync.
// PostgreSQL refuses to run as root: as root, initdb/pg_ctl run as the `postgres` system
// user (runuser), which owns the directory. If the test process dies without running the
// destructor (a crash, a ctest timeout), a watchdog outside its process tree stops the
// server and removes the directory.
#pragma once

#include "support/test_support.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace recsync::testkit {

namespace pg_detail {

inline const char *const kBinDir = "/usr/lib/postgresql/15/bin";

inline std::string read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

inline std::string shell_quote(const std::string &s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

// In a just-forked child: closes every descriptor from 3 up (so nothing the test process
// holds open, e.g. ctest's pipes, leaks into postgres). Async-signal-safe.
inline void close_from_3() {
    if (close_range(3, ~0U, 0) != 0)
        for (int fd = 3; fd < 4096; ++fd) close(fd);
}

// Where a program's stdout and stderr go: appended to one file for both, or each to its
// own file, emptied first.
struct Output {
    std::string out;
    std::string err;  // empty: stderr appended to `out` with stdout
};

// Runs argv (argv[0] an absolute path) in `cwd` with stdin from /dev/null and its output
// to `to`; returns its exit status (128+signal if killed, -1 if it could not be started).
inline int run(const std::vector<std::string> &argv, const std::string &cwd, const Output &to) {
    std::vector<std::string> args = argv;
    std::vector<char *> ptrs;
    for (auto &a : args) ptrs.push_back(a.data());
    ptrs.push_back(nullptr);
    const bool separate = !to.err.empty();
    const pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        const int in = open("/dev/null", O_RDONLY);
        const int o = open(to.out.c_str(), O_WRONLY | O_CREAT | (separate ? O_TRUNC : O_APPEND), 0600);
        const int e = separate ? open(to.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600) : o;
        if (in < 0 || o < 0 || e < 0 || chdir(cwd.c_str()) != 0) _exit(126);
        dup2(in, 0);
        dup2(o, 1);
        dup2(e, 2);
        close_from_3();
        execv(ptrs[0], ptrs.data());
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace pg_detail

class PostgresServer {
public:
    // initdb in a fresh directory under /tmp, start postgres and wait (at most 30 s) until
    // it accepts connections on 127.0.0.1:port(); throws std::runtime_error (with the
    // server log's tail) if it does not.
    PostgresServer() {
        using namespace pg_detail;
        if (access((std::string(kBinDir) + "/initdb").c_str(), X_OK) != 0)
            throw std::runtime_error(std::string("PostgresServer: no PostgreSQL 15 in ") + kBinDir + " (scripts/deps installs postgresql-15)");
        std::string tmpl = "/tmp/recsync-pg-XXXXXX";  // short: the socket path must fit in 107 bytes
        if (!mkdtemp(tmpl.data())) throw std::runtime_error("PostgresServer: mkdtemp failed");
        dir_ = tmpl;
        try {
            if (geteuid() == 0) {
                const passwd *pw = getpwnam("postgres");
                if (!pw) throw std::runtime_error("PostgresServer: running as root, but there is no `postgres` user to run PostgreSQL as");
                if (chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) throw std::runtime_error("PostgresServer: cannot chown " + dir_);
                as_postgres_ = true;
            }
            start_watchdog();
            port_ = free_port();
            const int rc = ctl({std::string(kBinDir) + "/initdb", "-D", data_dir(), "-U", "recsync", "--auth=trust", "-E", "UTF8",
                                "--locale=C", "--no-sync"},
                               dir_ + "/initdb.log");
            if (rc != 0) throw std::runtime_error("PostgresServer: initdb failed (exit " + std::to_string(rc) + "):\n" + read_file(dir_ + "/initdb.log"));
            // Appended to the postgresql.conf initdb wrote (as root the file stays the postgres
            // user's). In the file rather than pg_ctl -o, so restart() and start() keep them.
            std::ofstream conf(data_dir() + "/postgresql.conf", std::ios::app);
            conf << "\n# PostgresServer (tests/support/postgres_server.hpp)\n"
                 << "listen_addresses = '127.0.0.1'\n"
                 << "port = " << port_ << "\n"
                 << "unix_socket_directories = '" << dir_ << "'\n"
                 << "max_connections = 100\n"
                 << "shared_buffers = 64MB\n"
                 << "fsync = on\n";
            conf.close();
            if (!conf) throw std::runtime_error("PostgresServer: cannot write " + data_dir() + "/postgresql.conf");
            start();
        } catch (...) {
            cleanup();
            throw;
        }
    }

    // Stops the server (pg_ctl stop -m immediate, -m fast if that fails, SIGKILL as a last
    // resort) and removes the directory with its data.
    ~PostgresServer() { cleanup(); }

    PostgresServer(const PostgresServer &) = delete;
    PostgresServer &operator=(const PostgresServer &) = delete;

    int port() const { return port_; }
    // libpq keyword form.
    std::string dsn() const { return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=postgres user=recsync"; }
    // The temporary directory: data/ (PGDATA), server.log, and the unix socket .s.PGSQL.<port>.
    const std::string &dir() const { return dir_; }
    std::string data_dir() const { return dir_ + "/data"; }
    std::string log_path() const { return dir_ + "/server.log"; }
    // False between stop() and start().
    bool running() const { return running_; }

    // pg_ctl restart -m fast: same port, same data; waits until it accepts connections again.
    void restart() {
        const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
        const int rc = pg_ctl({"-l", log_path(), "-w", "-t", "30", "-m", "fast", "restart"});
        running_ = true;  // whatever happened, the destructor must look
        if (rc != 0) fail("pg_ctl restart failed (exit " + std::to_string(rc) + ")");
        wait_ready(deadline);
    }
    // pg_ctl stop -m fast (a clean shutdown: nothing committed is lost).
    void stop() {
        const int rc = pg_ctl({"-w", "-t", "30", "-m", "fast", "stop"});
        if (rc != 0) fail("pg_ctl stop failed (exit " + std::to_string(rc) + ")");
        running_ = false;
    }
    // pg_ctl start; waits (at most 30 s) until it accepts connections on 127.0.0.1:port().
    void start() {
        const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
        running_ = true;  // even if it fails: the destructor must stop whatever did start
        const int rc = pg_ctl({"-l", log_path(), "-w", "-t", "30", "start"});
        if (rc != 0) fail("pg_ctl start failed (exit " + std::to_string(rc) + ")");
        wait_ready(deadline);
    }

    // Runs `sql` (any number of statements) through psql -X -q -v ON_ERROR_STOP=1 -At
    // against dsn(); returns its stdout without the trailing newline(s) (rows one a line,
    // columns separated by '|'). Throws std::runtime_error with psql's stderr if it fails.
    // Safe to call from several threads.
    std::string psql(const std::string &sql) const {
        static std::atomic<unsigned> counter{0};
        const std::string base = dir_ + "/psql-" + std::to_string(getpid()) + "-" + std::to_string(++counter);
        {
            std::ofstream f(base + ".sql", std::ios::binary);
            f << sql;
        }
        const int rc = psql_file(base + ".sql", base + ".out", base + ".err");
        std::string out = pg_detail::read_file(base + ".out");
        const std::string err = pg_detail::read_file(base + ".err");
        for (const char *ext : {".sql", ".out", ".err"}) std::remove((base + ext).c_str());
        if (rc != 0) throw std::runtime_error("psql failed (exit " + std::to_string(rc) + "): " + err + "SQL: " + sql);
        while (!out.empty() && out.back() == '\n') out.pop_back();
        return out;
    }

    // The last `lines` lines of the server log.
    std::string log_tail(size_t lines = 40) const {
        std::ifstream in(log_path());
        std::deque<std::string> tail;
        for (std::string line; std::getline(in, line);) {
            tail.push_back(line);
            if (tail.size() > lines) tail.pop_front();
        }
        std::string s;
        for (const auto &l : tail) s += l + "\n";
        return s;
    }

private:
    static constexpr std::chrono::seconds kStartTimeout{30};

    std::vector<std::string> as_user(std::vector<std::string> argv) const {
        if (as_postgres_) argv.insert(argv.begin(), {runuser(), "-u", "postgres", "--"});
        return argv;
    }
    static std::string runuser() { return access("/usr/sbin/runuser", X_OK) == 0 ? "/usr/sbin/runuser" : "/sbin/runuser"; }

    // Runs a PostgreSQL program (as the postgres user when we are root) in dir_.
    int ctl(std::vector<std::string> argv, const std::string &out) const { return pg_detail::run(as_user(std::move(argv)), dir_, {out, ""}); }

    int pg_ctl(std::vector<std::string> args) const {
        std::vector<std::string> argv{std::string(pg_detail::kBinDir) + "/pg_ctl", "-D", data_dir()};
        argv.insert(argv.end(), args.begin(), args.end());
        std::remove((dir_ + "/pg_ctl.out").c_str());
        return ctl(argv, dir_ + "/pg_ctl.out");
    }

    int psql_file(const std::string &sql_file, const std::string &out, const std::string &err) const {
        const std::string own = std::string(pg_detail::kBinDir) + "/psql";
        return pg_detail::run({access(own.c_str(), X_OK) == 0 ? own : "/usr/bin/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-d", dsn(), "-f", sql_file}, dir_,
                              {out, err});
    }

    // Polls pg_isready over TCP until the server accepts connections or the deadline passes.
    void wait_ready(std::chrono::steady_clock::time_point deadline) const {
        const std::vector<std::string> argv{std::string(pg_detail::kBinDir) + "/pg_isready", "-q", "-h", "127.0.0.1", "-p", std::to_string(port_),
                                            "-d", "postgres", "-U", "recsync", "-t", "2"};
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (!wait_until([&] { return pg_detail::run(argv, dir_, {"/dev/null", ""}) == 0; }, std::max(left, std::chrono::milliseconds(0))))
            fail("postgres does not accept connections on 127.0.0.1:" + std::to_string(port_) + " after 30 s");
    }

    [[noreturn]] void fail(const std::string &what) const {
        throw std::runtime_error("PostgresServer (" + dir_ + "): " + what + "\npg_ctl: " + pg_detail::read_file(dir_ + "/pg_ctl.out") +
                                 "server log (tail):\n" + log_tail());
    }

    // A detached `sh` (its own session, so outside the test's process tree, which ctest kills
    // on a timeout) that waits on a socket: "done" from the destructor lets it exit; EOF
    // (the test process died) makes it stop the server and remove the directory.
    void start_watchdog() {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw std::runtime_error("PostgresServer: socketpair failed");
        std::string stop;
        for (const auto &a : as_user({std::string(pg_detail::kBinDir) + "/pg_ctl", "-D", data_dir(), "-m", "immediate", "-w", "-t", "10", "stop"}))
            stop += pg_detail::shell_quote(a) + " ";
        std::vector<std::string> args{"/bin/sh", "-c",
                                      "read -r line; [ \"$line\" = done ] && exit 0; " + stop + "; rm -rf " + pg_detail::shell_quote(dir_)};
        std::vector<char *> ptrs;
        for (auto &a : args) ptrs.push_back(a.data());
        ptrs.push_back(nullptr);
        const pid_t pid = fork();
        if (pid < 0) {
            close(sv[0]), close(sv[1]);
            throw std::runtime_error("PostgresServer: fork failed");
        }
        if (pid == 0) {
            setsid();
            if (fork() != 0) _exit(0);
            const int null = open("/dev/null", O_RDWR);
            dup2(sv[1], 0);
            dup2(null, 1);
            dup2(null, 2);
            pg_detail::close_from_3();
            if (chdir("/") != 0) _exit(126);
            execv(ptrs[0], ptrs.data());
            _exit(127);
        }
        while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
        }
        close(sv[1]);
        watchdog_ = sv[0];
    }

    void cleanup() noexcept {
        if (getpid() != owner_) return;  // a forked child (e.g. a death test) leaves the server alone
        try {
            if (!dir_.empty() && running_) {
                const std::string pidfile = data_dir() + "/postmaster.pid";
                if (access(pidfile.c_str(), F_OK) == 0 && pg_ctl({"-m", "immediate", "-w", "-t", "10", "stop"}) != 0)
                    pg_ctl({"-m", "fast", "-w", "-t", "10", "stop"});
                if (access(pidfile.c_str(), F_OK) == 0) {
                    // Still there: kill the postmaster, if that pid is still ours (its command line names our data dir).
                    std::ifstream in(pidfile);
                    pid_t pid = 0;
                    in >> pid;
                    if (pid > 0 && pg_detail::read_file("/proc/" + std::to_string(pid) + "/cmdline").find(data_dir()) != std::string::npos) {
                        kill(pid, SIGKILL);
                        wait_until([&] { return kill(pid, 0) != 0 || pg_detail::read_file("/proc/" + std::to_string(pid) + "/stat").find(") Z") != std::string::npos; },
                                   std::chrono::seconds(5));
                    }
                }
                running_ = false;
            }
            if (!dir_.empty()) {
                std::error_code ec;
                std::filesystem::remove_all(dir_, ec);
            }
        } catch (...) {
        }
        if (watchdog_ >= 0) {
            send(watchdog_, "done\n", 5, MSG_NOSIGNAL);
            close(watchdog_);
            watchdog_ = -1;
        }
    }

    std::string dir_;
    int port_ = 0;
    bool as_postgres_ = false;
    bool running_ = false;
    int watchdog_ = -1;
    pid_t owner_ = getpid();
};

}  // namespace recsync::testkit
