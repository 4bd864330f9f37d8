#include "sources/accept_batch.hpp"

#include <future>
#include <memory>

namespace recsync::sources {

using namespace std::chrono_literals;

std::optional<IntakeAnswer> accept_and_wait(Intake &intake, const model::Runtime &rt, const std::string &source, const std::vector<nlohmann::json> &events,
                                            std::optional<store::Cursor> cursor, const StopRequested &stop_requested) {
    // Shared with the callback, which the commit thread may run after a stop gave up on it.
    auto answered = std::make_shared<std::promise<IntakeAnswer>>();
    auto future = answered->get_future();
    intake.accept(rt, source, events, std::move(cursor), [answered](IntakeAnswer a) { answered->set_value(std::move(a)); });
    while (future.wait_for(200ms) != std::future_status::ready)
        if (stop_requested()) return std::nullopt;
    return future.get();
}

std::optional<IntakeAnswer> accept_each(Intake &intake, const model::Runtime &rt, const std::string &source, const std::vector<nlohmann::json> &events,
                                        const StopRequested &stop_requested, const std::function<void(size_t, const IntakeAnswer &)> &on_refused) {
    for (size_t i = 0; i < events.size(); ++i) {
        auto one = accept_and_wait(intake, rt, source, {events[i]}, std::nullopt, stop_requested);
        if (!one) return std::nullopt;
        if (one->status == 202) continue;
        if (!is_refusal(*one)) return one;
        on_refused(i, *one);
    }
    return IntakeAnswer{};
}

}  // namespace recsync::sources
