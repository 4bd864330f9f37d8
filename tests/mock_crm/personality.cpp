#include "personality.hpp"

#include "server/http_listener.hpp"

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string_view>
#include <tuple>

namespace recsync::mock {

std::string personality(int argc, char **argv) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a.starts_with("--personality=")) return std::string(a.substr(14));
        if (a == "--personality" && i + 1 < argc) return argv[i + 1];
    }
    return "hubspot";
}

std::optional<Flags> personality_flags(int argc, char **argv, std::string &error) {
    Flags flags;
    for (int i = 1; i < argc; ++i) {
        std::string name = argv[i], value;
        if (name == "-h" || name == "--help") {
            flags.emplace_back("--help", "");
            continue;
        }
        if (const auto eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name.resize(eq);
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            error = name + " needs a value";
            return std::nullopt;
        }
        flags.emplace_back(std::move(name), std::move(value));
    }
    return flags;
}

bool listen_flag(const std::string &value, std::string &address, uint16_t &port, std::string &error) {
    try {
        std::tie(address, port) = server::parse_host_port(value);
        return true;
    } catch (const std::exception &e) {
        error = std::string("--listen: ") + e.what();
        return false;
    }
}

int serve_until_signalled(const std::string &name, const std::function<void()> &start, const std::function<void()> &stop,
                          const std::function<uint16_t()> &port, const std::function<std::string()> &url, const std::string &port_file) {
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    try {
        start();
        if (!port_file.empty()) {
            const std::string partial = port_file + ".partial";
            if (FILE *f = std::fopen(partial.c_str(), "w")) {
                std::fprintf(f, "%u\n", static_cast<unsigned>(port()));
                std::fclose(f);
            }
            std::filesystem::rename(partial, port_file);
        }
        std::cerr << "recsync-mock-crm (" << name << ") listening on " << url() << "\n";
        int received = 0;
        sigwait(&stop_signals, &received);
        stop();
    } catch (const std::exception &e) {
        std::cerr << "recsync-mock-crm (" << name << "): " << e.what() << "\n";
        return 1;
    }
    return 0;
}

}  // namespace recsync::mock
