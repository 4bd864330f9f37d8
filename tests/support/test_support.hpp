// Shared helpers for integration tests: private temp directories, files, a libcurl HTTP
// client and polling with a deadline (never a fixed sleep: the machine is shared).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace recsync::testkit {

// A fresh 0700 directory under $TMPDIR, removed with everything in it on destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    const std::string &path() const { return path_; }
    std::string file(const std::string &name) const { return path_ + "/" + name; }
    // Writes `content` to path()/name (creating parent directories) and returns the path.
    std::string write(const std::string &name, const std::string &content) const;

private:
    std::string path_;
};

struct HttpReply {
    long status = 0;  // 0: the request failed
    std::string body;
    std::string headers;  // the response's header lines, as received
};

// For https:// URLs: the CA that signed the server's certificate (verification stays on)
// and, optionally, a client certificate and its key.
struct TlsClient {
    std::string ca_file, cert_file, key_file;
};

HttpReply http_request(const std::string &method, const std::string &url, const std::string &body = {},
                       const std::vector<std::string> &headers = {"Content-Type: application/json"}, const TlsClient &tls = {});

// A CA and a certificate it signed for 127.0.0.1, made with the openssl command in `dir`:
// ca.pem (and ca.key), server.pem, server.key, and a client certificate client.pem and
// client.key. Returns "" or the command's output when it failed.
std::string make_test_certificates(const std::string &dir);

// Polls `pred` every 20 ms until it is true or `timeout` passes; returns its last value.
bool wait_until(const std::function<bool()> &pred, std::chrono::milliseconds timeout = std::chrono::seconds(20));

// Runs a shell command; returns (exit status, combined stdout+stderr).
std::pair<int, std::string> run_command(const std::string &command);

// A child process (argv[0] looked up in PATH unless it has a '/'): killed (SIGKILL) and
// reaped on destruction, so a test that ends early leaves nothing running. `quiet`: its
// stdout and stderr go to /dev/null.
class ChildProcess {
public:
    explicit ChildProcess(const std::vector<std::string> &argv, bool quiet = false);
    ~ChildProcess();
    ChildProcess(const ChildProcess &) = delete;
    ChildProcess &operator=(const ChildProcess &) = delete;
    bool started() const { return pid_ > 0; }
    bool alive() const;
    void signal(int sig) const;
    // SIGTERM, then waits for it: true if it exited with status 0.
    bool stop();

private:
    int pid_ = 0;
};

// `bin run -c config_path` (the recsync binary) as a child process, its stdout and stderr
// appended to `log_path`, waited for (at most `ready_timeout`) until base_url/readyz
// answers 200. Returns its pid, for the caller to kill and reap; 0 if it did not start or
// never became ready (then it was killed and reaped: nothing is left running).
int spawn_recsync_run(const std::string &bin, const std::string &config_path, const std::string &log_path, const std::string &base_url,
                      std::chrono::milliseconds ready_timeout = std::chrono::seconds(20));

// A loopback TCP port that was free a moment ago (for a child process that needs a fixed
// listen address; small race, fine for tests).
uint16_t free_port();

// Copies the built plugin `id`.so from `from_dir` into `to_dir` (created 0700).
void copy_plugin(const std::string &from_dir, const std::string &id, const std::string &to_dir, const std::string &as_id = {});

}  // namespace recsync::testkit
