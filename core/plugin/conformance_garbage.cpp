// Garbage answers: parse_response of every built call, with bodies no server should send,
// under every status. Any verdict is allowed; a crash, an OK create without an id, a
// 429/5xx not retried, or a different verdict for the same answer twice is not.
#include "plugin/conformance_checks.hpp"

namespace recsync::plugin {

namespace {

std::string random_bytes(size_t n) {
    std::string s(n, '\0');
    uint32_t x = 0x9E3779B9u;  // fixed seed: the same bytes every run
    for (auto &c : s) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        c = static_cast<char>(x & 0xFF);
    }
    return s;
}

std::string deeply_nested(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

const char *kind_name(recsync_result_kind k) {
    switch (k) {
        case RECSYNC_RESULT_OK: return "OK";
        case RECSYNC_RESULT_RETRY: return "RETRY";
        case RECSYNC_RESULT_FAIL: return "FAIL";
        default: return "kind?";
    }
}

struct Answer {
    std::string verdict;  // compared between repeats
    std::string problem;  // empty: an acceptable answer
};

Answer answer(const ProviderInstance &inst, const PlannedCall &call, int status, const std::string &body) {
    try {
        const CallResult r = inst.parse_response(call.input(), ResponseView{status, &json_headers(), body});
        Answer a{std::string(kind_name(r.kind)) + " id=" + r.external_id + " retry_after_ms=" + std::to_string(r.retry_after_ms) + " record=" + r.record +
                     " modified=" + r.modified + " error=" + r.error,
                 {}};
        const bool needs_id = call.action == RECSYNC_ACTION_CREATE || call.action == RECSYNC_ACTION_UPSERT;
        if (r.kind == RECSYNC_RESULT_OK && needs_id && r.external_id.empty()) a.problem = "OK without an external id (inconsistent: the host cannot link the record)";
        else if ((status == 429 || status >= 500) && r.kind == RECSYNC_RESULT_OK) a.problem = "OK for HTTP " + std::to_string(status) + " (the server did not do it)";
        return a;
    } catch (const PluginContractError &e) {
        return {"broken output", e.what()};
    } catch (const PluginError &e) {
        return {std::string("error ") + status_name(e.status()) + ": " + e.what(), {}};
    }
}

}  // namespace

const std::vector<GarbageBody> &garbage_bodies(bool full) {
    static const std::vector<GarbageBody> light = {
        {"an empty body", ""},
        {"random bytes", random_bytes(256)},
        {"HTML", "<html><body><h1>502 Bad Gateway</h1></body></html>"},
        {"truncated JSON", R"({"id": "conformance-id-1", "properties": {"email": "a@)"},
        {"a JSON array", R"([{"id": "conformance-id-1"}])"},
    };
    static const std::vector<GarbageBody> all = [] {
        auto v = light;
        v.push_back({"a 1 MB JSON string", "\"" + std::string(1 << 20, 'a') + "\""});
        v.push_back({"JSON nested 10,000 deep", deeply_nested(10000)});
        return v;
    }();
    return full ? all : light;
}

const std::vector<Header> &json_headers() {
    static const std::vector<Header> headers = {{"Content-Type", "application/json", false}};
    return headers;
}

const std::vector<int> &garbage_statuses(bool full) {
    static const std::vector<int> light = {200, 201, 204, 404, 429, 500};
    static const std::vector<int> all = {200, 201, 204, 400, 401, 404, 409, 429, 500, 503};
    return full ? all : light;
}

void check_garbage_answers(const ProviderInstance &inst, CheckRecorder &rec, const std::vector<PlannedCall> &calls) {
    for (const auto &call : calls) {
        for (const auto &garbage : garbage_bodies(rec.full())) {
            rec.run(call.object + ": parse_response(" + call.action_name + ") of " + garbage.name + ", each status twice", [&] {
                for (const int status : garbage_statuses(rec.full())) {
                    const Answer first = answer(inst, call, status, garbage.body);
                    if (!first.problem.empty()) return Verdict::bad("HTTP " + std::to_string(status) + ": " + first.problem);
                    const Answer again = answer(inst, call, status, garbage.body);
                    if (again.verdict != first.verdict)
                        return Verdict::bad("HTTP " + std::to_string(status) + ": answered differently the second time (inconsistent): '" + first.verdict.substr(0, 200) +
                                            "', then '" + again.verdict.substr(0, 200) + "'");
                }
                return Verdict::ok();
            });
        }
    }
}

}  // namespace recsync::plugin
