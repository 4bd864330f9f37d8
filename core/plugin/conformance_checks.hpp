// The conformance kit's check groups (each in its own file), run by run_conformance.
#pragma once

#include "plugin/conformance_recorder.hpp"

#include <nlohmann/json.hpp>

#include <vector>

namespace recsync::plugin {

// conformance_actions.cpp: one object's sample through transform, validate and its schema,
// then build_request for every action it supports. Returns the calls that were built.
std::vector<PlannedCall> check_object_actions(const ProviderInstance &inst, CheckRecorder &rec, const std::string &object, const nlohmann::json &description);

// conformance_garbage.cpp: parse_response of every built call with garbage answers.
void check_garbage_answers(const ProviderInstance &inst, CheckRecorder &rec, const std::vector<PlannedCall> &calls);

// conformance_threads.cpp (full depth): the same calls from two threads at once.
void check_two_threads(const ProviderInstance &inst, CheckRecorder &rec, const std::string &object, const std::vector<PlannedCall> &calls);

// conformance_capabilities.cpp: webhooks, polling and auth refresh, as declared.
void check_capabilities(const ProviderInstance &inst, CheckRecorder &rec, const std::vector<std::string> &objects);

// The garbage answer bodies for `rec`'s depth, with a short name each.
struct GarbageBody {
    std::string name;
    std::string body;
};
const std::vector<GarbageBody> &garbage_bodies(bool full);
const std::vector<int> &garbage_statuses(bool full);
// "Content-Type: application/json", the headers of every garbage answer.
const std::vector<Header> &json_headers();

}  // namespace recsync::plugin
