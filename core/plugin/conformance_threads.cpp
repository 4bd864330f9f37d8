// Two threads at once: the host calls one instance from many threads (provider_abi.h), so
// the same calls made concurrently must give byte for byte what one thread got.
#include "plugin/conformance_checks.hpp"

#include <atomic>
#include <functional>
#include <thread>

namespace recsync::plugin {

namespace {

constexpr int kIterationsPerThread = 200;

std::string request_text(const BuiltRequest &r) {
    std::string s = r.method + ' ' + r.path + '\n' + r.body;
    for (const auto &h : r.headers) s += '\n' + h.name + (h.secret ? "(secret): " : ": ") + h.value;
    return s;
}

// One call's whole output as text, errors included.
std::string outcome(const std::function<std::string()> &call) {
    try {
        return call();
    } catch (const std::exception &e) {
        return std::string("error: ") + e.what();
    }
}

std::vector<std::function<std::string()>> calls_of(const ProviderInstance &inst, const std::vector<PlannedCall> &calls) {
    std::vector<std::function<std::string()>> out;
    const std::vector<std::pair<int, std::string>> answers = {{201, R"({"id":"conformance-id-1"})"}, {200, "{}"}, {500, "<html>"}, {429, ""}};
    for (const auto &c : calls) {
        out.push_back([&inst, &c] { return request_text(inst.build_request(c.input())); });
        for (const auto &answer : answers)
            out.push_back([&inst, &c, status = answer.first, body = answer.second] {
                const auto r = inst.parse_response(c.input(), ResponseView{status, nullptr, body});
                return std::to_string(r.kind) + ' ' + r.external_id + ' ' + std::to_string(r.retry_after_ms) + ' ' + r.error + ' ' + r.record + ' ' + r.modified;
            });
        if (!c.payload.empty()) out.push_back([&inst, &c] { return inst.transform(RECSYNC_INBOUND, c.object, c.payload); });
    }
    return out;
}

}  // namespace

void check_two_threads(const ProviderInstance &inst, CheckRecorder &rec, const std::string &object, const std::vector<PlannedCall> &calls) {
    const std::string name = object + ": two threads at once give the single-threaded answers";
    if (calls.empty()) {
        rec.add(name, Verdict::skipped("no call could be built"));
        return;
    }
    rec.run(name, [&] {
        const auto work = calls_of(inst, calls);
        std::vector<std::string> expected;
        for (const auto &w : work) expected.push_back(outcome(w));
        std::atomic<size_t> mismatches{0};
        std::atomic<size_t> first_mismatch{SIZE_MAX};
        auto worker = [&] {
            for (int i = 0; i < kIterationsPerThread; ++i)
                for (size_t k = 0; k < work.size(); ++k)
                    if (outcome(work[k]) != expected[k]) {
                        ++mismatches;
                        size_t none = SIZE_MAX;
                        first_mismatch.compare_exchange_strong(none, k);
                    }
        };
        std::thread a(worker), b(worker);
        a.join();
        b.join();
        const std::string counts = std::to_string(work.size()) + " calls x " + std::to_string(kIterationsPerThread) + " x 2 threads";
        if (mismatches == 0) return Verdict::ok(counts);
        return Verdict::bad(std::to_string(mismatches.load()) + " of " + counts + " differed from the single-threaded run, first call #" + std::to_string(first_mismatch.load()) +
                            " (expected '" + expected[first_mismatch.load()].substr(0, 200) + "')");
    });
}

}  // namespace recsync::plugin
