// recsync-mock-crm --personality rest: the REST mock (rest_mock.hpp) as a process, for
// scripts. main.cpp hands over to rest_mock_main when it sees --personality rest.
#include "personality.hpp"
#include "rest_mock.hpp"

#include <iostream>
#include <map>
#include <string>
#include <string_view>

namespace recsync::mock {

namespace {

constexpr const char *kUsage =
    "usage: recsync-mock-crm --personality rest [--listen HOST:PORT] [--port-file F] [--threads N]\n"
    "                        [--auth none|bearer|basic|api_key|oauth] [--token T] [--username U --password P]\n"
    "                        [--api-key-header H] [--api-key K] [--client-id I --client-secret S] [--token-ttl SECONDS]\n"
    "                        [--rate N [--burst B]]\n"
    "  Serves customers and accounts as a core-banking style REST API (tests/mock_crm/rest_mock.hpp);\n"
    "  secrets may also come from the environment: REST_MOCK_TOKEN, REST_MOCK_PASSWORD, REST_MOCK_API_KEY,\n"
    "  REST_MOCK_CLIENT_SECRET.\n";

int refuse(const std::string &why) {
    std::cerr << "recsync-mock-crm: " << why << "\n" << kUsage;
    return 2;
}

std::string from_env(const char *name) {
    const char *v = std::getenv(name);
    return v ? v : "";
}

}  // namespace

int rest_mock_main(int argc, char **argv) {
    RestMockOptions o;
    o.port = 18081;
    o.token = from_env("REST_MOCK_TOKEN");
    o.password = from_env("REST_MOCK_PASSWORD");
    o.api_key = from_env("REST_MOCK_API_KEY");
    o.client_secret = from_env("REST_MOCK_CLIENT_SECRET");
    std::string port_file;
    std::string error;
    const auto flags = personality_flags(argc, argv, error);
    if (!flags) return refuse(error);
    try {
        for (const auto &[name, value] : *flags) {
            if (name == "--help") {
                std::cout << kUsage;
                return 0;
            } else if (name == "--personality") continue;
            else if (name == "--listen") {
                if (!listen_flag(value, o.address, o.port, error)) return refuse(error);
            } else if (name == "--port-file") port_file = value;
            else if (name == "--threads") o.threads = std::stoi(value);
            else if (name == "--auth") {
                static const std::map<std::string, RestAuth> kinds = {{"none", RestAuth::None}, {"bearer", RestAuth::Bearer}, {"basic", RestAuth::Basic}, {"api_key", RestAuth::ApiKey}, {"oauth", RestAuth::OAuth}};
                if (!kinds.count(value)) return refuse("--auth: '" + value + "' is not none, bearer, basic, api_key or oauth");
                o.auth = kinds.at(value);
            } else if (name == "--token") o.token = value;
            else if (name == "--username") o.username = value;
            else if (name == "--password") o.password = value;
            else if (name == "--api-key-header") o.api_key_header = value;
            else if (name == "--api-key") o.api_key = value;
            else if (name == "--client-id") o.client_id = value;
            else if (name == "--client-secret") o.client_secret = value;
            else if (name == "--token-ttl") o.token_ttl_seconds = std::stoi(value);
            else if (name == "--rate") o.rate_per_second = std::stod(value);
            else if (name == "--burst") o.rate_burst = std::stod(value);
            else return refuse("unknown argument '" + name + "'");
        }
    } catch (const std::exception &) {
        return refuse("a number is not a number");
    }
    RestMock mock(o);
    return serve_until_signalled("rest", mock, port_file);
}

}  // namespace recsync::mock
