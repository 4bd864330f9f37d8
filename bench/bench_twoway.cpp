// bench_twoway: the two-way soak at size (tests/support/twoway_soak.hpp): 1,000 records
// edited on both sides at once for 60 s (System A through /v1/events, the CRM through the
// mock's own API, which sends signed webhooks for every change), some deleted, under
// last_writer_wins. Then the same with no conflict policy (arrival order), shorter: the
// baseline that shows what the policy is for.
//
// In one process: the engine, the mock CRM and System A's service, on loopback.
//
// Lines (stdout):
//   {"bench":"twoway.no_policy", ...}   the baseline (arrival order decides)
//   {"bench":"twoway", ...}             records, diverged, resurrected, excess_calls (the three
//                                       must be 0), wrong_winner, echoes_suppressed, conflicts,
//                                       b_to_a_p50_ms, b_to_a_p99_ms, ...
#include "support/twoway_soak.hpp"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <cstring>
#include <iostream>

namespace {

const char *kUsage = "usage: bench_twoway [--records 1000] [--seconds 60] [--rate 200] [--baseline-seconds 20]\n";

}  // namespace

int main(int argc, char **argv) {
    recsync::testkit::SoakOptions o;
    o.records = 1000;
    o.seconds = 60;
    o.edits_per_second = 200;
    double baseline_seconds = 20;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const auto next = [&] {
            if (i + 1 >= argc) {
                std::cerr << kUsage;
                std::exit(2);
            }
            return std::atof(argv[++i]);
        };
        if (a == "--records") o.records = static_cast<int>(next());
        else if (a == "--seconds") o.seconds = next();
        else if (a == "--rate") o.edits_per_second = next();
        else if (a == "--baseline-seconds") baseline_seconds = next();
        else {
            std::cerr << kUsage;
            return 2;
        }
    }
    spdlog::set_level(spdlog::level::warn);  // each conflict is logged at info
    if (baseline_seconds > 0) {
        auto b = o;
        b.seconds = baseline_seconds;
        b.policy = "owners: {}";  // no policy: each change stands, by arrival
        const auto r = recsync::testkit::run_twoway_soak(b);
        auto j = r.to_json();
        j["bench"] = "twoway.no_policy";
        j["seconds"] = b.seconds;
        std::cout << j.dump() << std::endl;
    }
    const auto r = recsync::testkit::run_twoway_soak(o);
    auto j = r.to_json();
    j["bench"] = "twoway";
    j["policy"] = "last_writer_wins";
    j["seconds"] = o.seconds;
    j["edits_per_second"] = o.edits_per_second;
    std::cout << j.dump() << std::endl;
    for (const auto &e : r.examples) std::cerr << "  " << e << "\n";
    return 0;
}
