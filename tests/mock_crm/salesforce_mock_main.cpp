// recsync-mock-crm --personality salesforce: the Salesforce mock (salesforce_mock.hpp) as a
// process, for scripts (scripts/quickstart --provider salesforce).
#include "personality.hpp"
#include "salesforce_mock.hpp"

#include <iostream>
#include <string>
#include <string_view>

namespace recsync::mock {

namespace {

constexpr const char *kUsage =
    "usage: recsync-mock-crm --personality salesforce [--listen HOST:PORT] [--port-file F] [--threads N]\n"
    "                        [--client-id I] [--client-secret S] [--daily-limit N]\n"
    "  Serves one Salesforce org (tests/mock_crm/salesforce_mock.hpp): the token endpoint at\n"
    "  /services/oauth2/token (client credentials; the secret may come from SALESFORCE_MOCK_CLIENT_SECRET),\n"
    "  the API under the token's instance_url, GET /_mock/records[?type=T] and /_mock/stats.\n";

}  // namespace

int salesforce_mock_main(int argc, char **argv) {
    SalesforceMockOptions o;
    o.port = 18082;
    if (const char *s = std::getenv("SALESFORCE_MOCK_CLIENT_SECRET")) o.client_secret = s;
    std::string port_file;
    const auto refuse = [](const std::string &why) {
        std::cerr << "recsync-mock-crm: " << why << "\n" << kUsage;
        return 2;
    };
    std::string error;
    const auto flags = personality_flags(argc, argv, error);
    if (!flags) return refuse(error);
    try {
        for (const auto &[name, value] : *flags) {
            if (name == "--help") {
                std::cout << kUsage;
                return 0;
            }
            if (name == "--personality") continue;
            if (name == "--listen") {
                if (!listen_flag(value, o.address, o.port, error)) return refuse(error);
            } else if (name == "--port-file") port_file = value;
            else if (name == "--threads") o.threads = std::stoi(value);
            else if (name == "--client-id") o.client_id = value;
            else if (name == "--client-secret") o.client_secret = value;
            else if (name == "--daily-limit") o.daily_api_limit = std::stoll(value);
            else return refuse("unknown argument '" + name + "'");
        }
    } catch (const std::exception &) {
        return refuse("a number is not a number");
    }
    SalesforceMock mock(o);
    return serve_until_signalled("salesforce", mock, port_file);
}

}  // namespace recsync::mock
