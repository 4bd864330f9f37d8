// recsync-mock-crm --personality NAME: which mock the process serves (hubspot by default;
// rest, salesforce), and the part every personality shares: serve until SIGINT/SIGTERM,
// with the bound port written to a file for scripts.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace recsync::mock {

// The --personality argument's value; "hubspot" when absent.
std::string personality(int argc, char **argv);

// Blocks SIGINT/SIGTERM (before `start` makes the listener's threads, which inherit the
// mask), calls `start`, writes `port()` to `port_file` (if not empty; renamed into place,
// so a script never reads half of it), logs "<name> listening on <url()>", waits for a
// signal and calls `stop`. Returns the process's exit code.
int serve_until_signalled(const std::string &name, const std::function<void()> &start, const std::function<void()> &stop,
                          const std::function<uint16_t()> &port, const std::function<std::string()> &url, const std::string &port_file);

int rest_mock_main(int argc, char **argv);
int salesforce_mock_main(int argc, char **argv);

}  // namespace recsync::mock
