#include "support/test_support.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

extern char **environ;

namespace recsync::testkit {

namespace fs = std::filesystem;

TempDir::TempDir() {
    const char *base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/recsync-test-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
}

std::string TempDir::write(const std::string &name, const std::string &content) const {
    const fs::path p = fs::path(path_) / name;
    fs::create_directories(p.parent_path());
    std::ofstream out(p);
    out << content;
    return p.string();
}

namespace {
size_t collect(char *data, size_t size, size_t n, void *user) {
    static_cast<std::string *>(user)->append(data, size * n);
    return size * n;
}
}  // namespace

HttpReply http_request(const std::string &method, const std::string &url, const std::string &body, const std::vector<std::string> &headers, const TlsClient &tls) {
    HttpReply reply;
    CURL *c = curl_easy_init();
    curl_slist *h = nullptr;
    for (const auto &line : headers) h = curl_slist_append(h, line.c_str());
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (!body.empty() || method == "POST") {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply.body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &reply.headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (!tls.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, tls.ca_file.c_str());
    if (!tls.cert_file.empty()) curl_easy_setopt(c, CURLOPT_SSLCERT, tls.cert_file.c_str());
    if (!tls.key_file.empty()) curl_easy_setopt(c, CURLOPT_SSLKEY, tls.key_file.c_str());
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return reply;
}

std::string make_test_certificates(const std::string &dir) {
    const std::string sign = " -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -sha256";
    const auto [rc, out] = run_command("cd '" + dir + "' && "
                                       "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=recsync-test-ca && "
                                       "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 && "
                                       "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext && "
                                       "openssl x509 -req -in server.csr -out server.pem -extfile server.ext" + sign + " && "
                                       "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=test-client && "
                                       "openssl x509 -req -in client.csr -out client.pem" + sign);
    return rc == 0 ? std::string() : out.empty() ? "openssl failed" : out;
}

bool wait_until(const std::function<bool()> &pred, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return pred();
}

std::pair<int, std::string> run_command(const std::string &command) {
    std::string out;
    FILE *p = popen((command + " 2>&1").c_str(), "r");
    if (!p) throw std::runtime_error("popen failed: " + command);
    std::array<char, 4096> buf{};
    size_t n = 0;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
    const int status = pclose(p);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

ChildProcess::ChildProcess(const std::vector<std::string> &argv, bool quiet) {
    std::vector<std::string> args = argv;
    std::vector<char *> ptrs;
    for (auto &a : args) ptrs.push_back(a.data());
    ptrs.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (quiet) {
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    }
    pid_t pid = 0;
    if (posix_spawnp(&pid, ptrs[0], &actions, nullptr, ptrs.data(), environ) == 0) pid_ = pid;
    posix_spawn_file_actions_destroy(&actions);
}

ChildProcess::~ChildProcess() {
    if (pid_ > 0) kill(pid_, SIGKILL), waitpid(pid_, nullptr, 0);
}

bool ChildProcess::alive() const { return pid_ > 0 && kill(pid_, 0) == 0; }

void ChildProcess::signal(int sig) const {
    if (pid_ > 0) kill(pid_, sig);
}

bool ChildProcess::stop() {
    if (pid_ <= 0) return false;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = 0;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int spawn_recsync_run(const std::string &bin, const std::string &config_path, const std::string &log_path, const std::string &base_url,
                      std::chrono::milliseconds ready_timeout) {
    const char *argv[] = {bin.c_str(), "run", "-c", config_path.c_str(), nullptr};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, bin.c_str(), &fa, nullptr, const_cast<char **>(argv), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return 0;
    if (wait_until([&] { return http_request("GET", base_url + "/readyz").status == 200; }, ready_timeout)) return pid;
    kill(pid, SIGKILL);  // never ready: leave nothing running
    waitpid(pid, nullptr, 0);
    return 0;
}

uint16_t free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 || getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) != 0)
        throw std::runtime_error("free_port: cannot bind a loopback socket");
    close(fd);
    return ntohs(a.sin_port);
}

void copy_plugin(const std::string &from_dir, const std::string &id, const std::string &to_dir, const std::string &as_id) {
    fs::create_directories(to_dir);
    fs::permissions(to_dir, fs::perms::owner_all, fs::perm_options::replace);
    const fs::path dst = fs::path(to_dir) / ((as_id.empty() ? id : as_id) + ".so");
    fs::copy_file(fs::path(from_dir) / (id + ".so"), dst, fs::copy_options::overwrite_existing);
    fs::permissions(dst, fs::perms::owner_read | fs::perms::owner_write | fs::perms::owner_exec, fs::perm_options::replace);
}

}  // namespace recsync::testkit
