// recsync-mock-crm --personality NAME: which mock the process serves (hubspot by default;
// rest, salesforce), and the part every personality shares: serve until SIGINT/SIGTERM,
// with the bound port written to a file for scripts.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace recsync::mock {

// The --personality argument's value; "hubspot" when absent.
std::string personality(int argc, char **argv);

// Blocks SIGINT/SIGTERM (before `start` makes the listener's threads, which inherit the
// mask), calls `start`, writes `port()` to `port_file` (if not empty; renamed into place,
// so a script never reads half of it), logs "<name> listening on <url()>", waits for a
// signal and calls `stop`. Returns the process's exit code.
int serve_until_signalled(const std::string &name, const std::function<void()> &start, const std::function<void()> &stop,
                          const std::function<uint16_t()> &port, const std::function<std::string()> &url, const std::string &port_file);

// The same for a mock with start(), stop(), port() and base_url().
template <typename Mock>
int serve_until_signalled(const std::string &name, Mock &mock, const std::string &port_file) {
    return serve_until_signalled(name, [&] { mock.start(); }, [&] { mock.stop(); }, [&] { return mock.port(); }, [&] { return mock.base_url(); }, port_file);
}

// A personality's flags in order: "--name value" or "--name=value", each with its value
// ("-h" and "--help" as {"--help", ""}). nullopt, with `error` set, for a flag missing its
// value.
using Flags = std::vector<std::pair<std::string, std::string>>;
std::optional<Flags> personality_flags(int argc, char **argv, std::string &error);
// --listen HOST:PORT into `address` and `port` (server::parse_host_port); false with
// `error` set when it is not one.
bool listen_flag(const std::string &value, std::string &address, uint16_t &port, std::string &error);

int rest_mock_main(int argc, char **argv);
int salesforce_mock_main(int argc, char **argv);

}  // namespace recsync::mock
