// recsync: thin main; every command lives in cli/.
#include "cli/commands.hpp"

#include <exception>
#include <iostream>

int main(int argc, char **argv) {
    try {
        return recsync::cli::run_command(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const std::exception &e) {
        std::cerr << "recsync: " << e.what() << "\n";
        return 1;
    }
}
