// Pollers: the connections' objects searched for changes on a schedule (`polling:` in a
// connection's config), through the provider's poll calls (provider_abi.h). One thread
// polls every (connection, object) in turn, each connection under its own request rate
// (polling.requests_per_second, apart from its lane's: HubSpot's search has its own
// limit). A page's events go through Intake like a webhook's, and the cursor after them
// moves in the same commit (store/cursors.hpp): a crash re-reads the page, whose events'
// ids make the repeat harmless. A page the sender refuses (a full backlog) is asked for
// again later from the same cursor; nothing is skipped.
#pragma once

#include "model/metrics.hpp"
#include "model/poll_status.hpp"
#include "model/runtime.hpp"
#include "sources/intake.hpp"
#include "store/cursors.hpp"
#include "util/clock.hpp"

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace recsync::dispatch {
class HttpExecutor;
struct AuthState;
struct HttpOutcome;
}

namespace recsync::poll {

class Poller {
public:
    using RuntimeSource = std::function<std::shared_ptr<const model::Runtime>()>;
    Poller(RuntimeSource runtime, sources::Intake &intake, store::CursorStore &cursors, model::Metrics &metrics);
    ~Poller();
    Poller(const Poller &) = delete;
    Poller &operator=(const Poller &) = delete;

    // Starts the thread (nothing to do without polling configured: it sleeps).
    void start();
    // Stops after the request in flight (abandoned) or the commit being waited for.
    void stop();
    // Looks at the runtime again now (after a reload), not at the next wake-up.
    void wake();
    std::vector<model::PollStatus> status() const;

private:
    struct Target;
    struct Connection;
    void run();
    // Brings the targets in line with the runtime's polling config; keeps their state.
    void refresh_targets(const model::Runtime &rt);
    // One request, its page and its commit. Returns when to poll this target next.
    util::TimePoint poll_once(Target &t, const model::ConnectionRuntime &conn, const model::Runtime &rt, dispatch::HttpExecutor &http);
    // A token for the connection's poll calls (auth refresh): fetched now if due; false if
    // there is none to use (the failure is in auth.last_error) or stop() came first.
    bool ensure_token(dispatch::AuthState &auth, const model::ConnectionRuntime &conn, dispatch::HttpExecutor &http);
    // The answer to the one request started on `http`; nullopt if stop() came first.
    std::optional<dispatch::HttpOutcome> await_answer(dispatch::HttpExecutor &http);
    // Events (and the cursor, if any) through Intake, waiting for the commit's answer;
    // nullopt if stop() came first.
    std::optional<sources::IntakeAnswer> commit(const model::Runtime &rt, Target &t, const std::vector<nlohmann::json> &events, std::optional<std::string> cursor);
    bool stop_requested() const;  // stop() was called

    RuntimeSource runtime_;
    sources::Intake &intake_;
    store::CursorStore &cursors_;
    model::Metrics &metrics_;
    mutable std::mutex mutex_;  // guards targets_' status and stopping_
    std::condition_variable wakeup_;
    bool stopping_ = false;
    bool refresh_ = true;
    std::shared_ptr<const model::Runtime> seen_;  // the runtime targets_ were built from
    std::map<std::pair<std::string, std::string>, std::unique_ptr<Target>> targets_;
    std::map<std::string, std::unique_ptr<Connection>> connections_;  // per connection: its poll rate
    std::thread thread_;
};

}  // namespace recsync::poll
