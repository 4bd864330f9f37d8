// recsync-mock-crm: serves the mock CRM until SIGINT/SIGTERM. See usage() and README.md.
#include "mock_crm.hpp"
#include "personality.hpp"
#include "server/http_listener.hpp"

#include <spdlog/spdlog.h>

#include <charconv>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

namespace {

void usage(std::ostream &out) {
    out << "usage: recsync-mock-crm [--listen HOST:PORT] [--token T] [--rate N [--burst B]] [--latency-ms N] [--delay-ms N]\n"
           "                        [--threads N] [--port-file F] [--no-log] [--max-log N] [--seed N] [--verbose]\n"
           "                        [--reset-ratio R] [--hang-ratio R [--hang-ms N]]\n"
           "                        [--throttle-status 429|503] [--retry-after-http-date]\n"
           "  --listen HOST:PORT  address to serve on (default 127.0.0.1:18080; port 0 = any free port)\n"
           "  --token T           require \"Authorization: Bearer T\" on the API (default: no auth)\n"
           "  --rate N            token bucket: N requests per second (default 0 = unlimited)\n"
           "  --burst B           bucket size (default max(1, N))\n"
           "  --throttle-status S what the rate limiter answers when the bucket is empty: 429 (default) or 503\n"
           "  --retry-after-http-date  send Retry-After as an HTTP-date (IMF-fixdate) instead of seconds\n"
           "  --latency-ms N      delay every API answer by N ms (blocks an I/O thread; raise --threads)\n"
           "  --delay-ms N        answer every request N ms after it came, holding no thread (a slow CRM that scales)\n"
           "  --threads N         I/O threads (default 2)\n"
           "  --port-file F       write the bound port to F once listening (atomically)\n"
           "  --no-log            do not keep the request log (GET /_mock/requests), for benchmarks\n"
           "  --max-log N         request log cap (default 100000)\n"
           "  --seed N            random seed for the fault ratios (default: random)\n"
           "  --reset-ratio R     reset the connection, unanswered, on this share of API requests (0..1)\n"
           "  --hang-ratio R      leave this share of API requests unanswered, then reset (0..1)\n"
           "  --hang-ms N         how long a hung request waits before the reset (default 5000)\n"
           "  --verbose           log every request (debug level)\n"
           "  --personality rest  serve a core-banking style REST API instead (--personality rest --help)\n"
           "  --personality salesforce  serve a Salesforce org instead (--personality salesforce --help)\n";
}

template <class T>
std::optional<T> parse_number(std::string_view s) {
    T v{};
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

}  // namespace

int main(int argc, char **argv) {
    const std::string kind = recsync::mock::personality(argc, argv);
    if (kind == "rest") return recsync::mock::rest_mock_main(argc, argv);
    if (kind == "salesforce") return recsync::mock::salesforce_mock_main(argc, argv);
    if (kind != "hubspot") {
        std::cerr << "recsync-mock-crm: --personality must be hubspot, rest or salesforce, not '" << kind << "'\n";
        return 2;
    }
    recsync::mock::MockCrmOptions opts;
    opts.port = 18080;
    std::string port_file;
    bool verbose = false;
    double reset_ratio = 0, hang_ratio = 0;
    int hang_ms = 5000;

    auto fail = [](const std::string &message) {
        std::cerr << "recsync-mock-crm: " << message << "\n";
        usage(std::cerr);
        return 2;
    };
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        std::string_view value;
        bool has_inline = false;
        if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
            value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
            has_inline = true;
        }
        auto need = [&](std::string_view &out) {
            if (has_inline) {
                out = value;
                return true;
            }
            if (i + 1 >= argc) return false;
            out = argv[++i];
            return true;
        };
        std::string_view v;
        if (arg == "-h" || arg == "--help") {
            usage(std::cout);
            return 0;
        } else if (arg == "--no-log") {
            opts.log_requests = false;
        } else if (arg == "--verbose") {
            verbose = true;
        } else if (arg == "--retry-after-http-date") {
            opts.retry_after_http_date = true;
        } else if (arg == "--throttle-status") {
            std::optional<int> n;
            if (!need(v) || !(n = parse_number<int>(v)) || (*n != 429 && *n != 503)) return fail("--throttle-status needs 429 or 503");
            opts.throttle_status = *n;
        } else if (arg == "--listen") {
            if (!need(v)) return fail("--listen needs HOST:PORT");
            try {
                auto [host, port] = recsync::server::parse_host_port(std::string(v));
                opts.address = host;
                opts.port = port;
            } catch (const std::exception &e) {
                return fail(e.what());
            }
        } else if (arg == "--token") {
            if (!need(v) || v.empty()) return fail("--token needs a value");
            opts.token = v;
        } else if (arg == "--port-file") {
            if (!need(v) || v.empty()) return fail("--port-file needs a path");
            port_file = v;
        } else if (arg == "--rate" || arg == "--burst") {
            std::optional<double> n;
            if (!need(v) || !(n = parse_number<double>(v)) || *n < 0) return fail(std::string(arg) + " needs a number >= 0");
            (arg == "--rate" ? opts.rate_per_second : opts.rate_burst) = *n;
        } else if (arg == "--delay-ms") {
            std::optional<int> n;
            if (!need(v) || !(n = parse_number<int>(v)) || *n < 0) return fail("--delay-ms needs a whole number >= 0");
            opts.delay_ms = *n;
        } else if (arg == "--latency-ms" || arg == "--threads") {
            std::optional<int> n;
            if (!need(v) || !(n = parse_number<int>(v)) || *n < 0 || (arg == "--threads" && *n < 1))
                return fail(std::string(arg) + " needs a whole number" + (arg == "--threads" ? " >= 1" : " >= 0"));
            (arg == "--latency-ms" ? opts.latency_ms : opts.threads) = *n;
        } else if (arg == "--max-log") {
            std::optional<size_t> n;
            if (!need(v) || !(n = parse_number<size_t>(v))) return fail("--max-log needs a whole number");
            opts.max_log_entries = *n;
        } else if (arg == "--seed") {
            std::optional<uint64_t> n;
            if (!need(v) || !(n = parse_number<uint64_t>(v))) return fail("--seed needs a whole number");
            opts.seed = *n;
        } else if (arg == "--reset-ratio" || arg == "--hang-ratio") {
            std::optional<double> n;
            if (!need(v) || !(n = parse_number<double>(v)) || *n < 0 || *n > 1) return fail(std::string(arg) + " needs a number in [0, 1]");
            (arg == "--reset-ratio" ? reset_ratio : hang_ratio) = *n;
        } else if (arg == "--hang-ms") {
            std::optional<int> n;
            if (!need(v) || !(n = parse_number<int>(v)) || *n < 1) return fail("--hang-ms needs a whole number >= 1");
            hang_ms = *n;
        } else {
            return fail("unknown argument '" + std::string(argv[i]) + "'");
        }
    }
    if (opts.rate_burst > 0 && opts.rate_per_second == 0) return fail("--burst needs --rate");
    if (verbose) spdlog::set_level(spdlog::level::debug);

    recsync::mock::MockCrm crm(opts);
    return recsync::mock::serve_until_signalled(
        "hubspot",
        [&] {
            if (reset_ratio > 0) crm.reset_ratio(reset_ratio);
            if (hang_ratio > 0) crm.hang_ratio(hang_ratio, std::chrono::milliseconds(hang_ms));
            crm.start();
            spdlog::info("recsync-mock-crm listening on {} (threads {}, rate {}/s burst {}, latency {} ms, auth {}, request log {})", crm.base_url(), opts.threads,
                         opts.rate_per_second, crm.faults().rate_burst, opts.latency_ms, opts.token.empty() ? "off" : "on", opts.log_requests ? "on" : "off");
        },
        [&] { crm.stop(); }, [&] { return crm.port(); }, [&] { return crm.base_url(); }, port_file);
}
