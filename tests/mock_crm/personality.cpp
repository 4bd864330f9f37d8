#include "personality.hpp"

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string_view>

namespace recsync::mock {

std::string personality(int argc, char **argv) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a.starts_with("--personality=")) return std::string(a.substr(14));
        if (a == "--personality" && i + 1 < argc) return argv[i + 1];
    }
    return "hubspot";
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
