// Accepting a batch of changes from a thread that waits for them to be durable: the
// pollers' pages and PostgreSQL capture's change-log batches, both of which must move on
// past an event the rules refuse rather than stall behind it.
#pragma once

#include "sources/intake.hpp"

#include <functional>
#include <optional>

namespace recsync::sources {

using StopRequested = std::function<bool()>;

// Whether `a` refuses what was sent (a 4xx other than 429), as opposed to a full backlog
// or a failed store, which a later try of the same events may get past.
inline bool is_refusal(const IntakeAnswer &a) { return a.status >= 400 && a.status < 500 && a.status != 429; }

// Accepts `events` (and moves `cursor` in the same commit) and waits for the answer,
// asking `stop_requested` every 200 ms: nullopt once it says stop (the answer, when it
// comes, goes nowhere).
std::optional<IntakeAnswer> accept_and_wait(Intake &intake, const model::Runtime &rt, const std::string &source, const std::vector<nlohmann::json> &events,
                                            std::optional<store::Cursor> cursor, const StopRequested &stop_requested);

// Accepts each of `events` in a commit of its own, so that the refused ones (told to
// `on_refused` with their index) do not hold the rest. Returns nullopt if stopped, the
// first answer that is neither 202 nor a refusal (the rest is not tried), else a 202.
std::optional<IntakeAnswer> accept_each(Intake &intake, const model::Runtime &rt, const std::string &source, const std::vector<nlohmann::json> &events,
                                        const StopRequested &stop_requested, const std::function<void(size_t, const IntakeAnswer &)> &on_refused);

}  // namespace recsync::sources
