#include "poll/poller.hpp"

#include "dispatch/auth_refresh.hpp"
#include "dispatch/http_executor.hpp"
#include "ratelimit/token_bucket.hpp"
#include "sources/accept_batch.hpp"
#include "sources/webhook.hpp"
#include "util/clock.hpp"

#include <recsync/provider_sdk.hpp>
#include <spdlog/spdlog.h>

#include <strings.h>

namespace recsync::poll {

using util::SteadyClock;
using util::TimePoint;
using namespace std::chrono_literals;

// What status() shows is the target's own state: the poller thread writes it (under
// mutex_, for status()) and reads it without the lock.
struct Poller::Target {
    model::PollStatus status;  // connection, object, interval, the durable cursor, counts
    bool loaded = false;       // cursor read from the store (never poll before: a start from scratch would pass changes)
    TimePoint due{};
    int failures = 0;          // in a row; backs the next request off
    const std::string &connection() const { return status.connection; }
    const std::string &object() const { return status.object; }
    const std::string &cursor() const { return status.cursor; }
};

struct Poller::Connection {
    double rate = 0;
    ratelimit::TokenBucket bucket;
    // The poller's own token for providers that refresh theirs (its calls never wait on
    // the dispatcher's thread for one).
    dispatch::AuthState auth;
};

namespace {

// An answer with no page, or a refused one: try again from the same cursor after a
// back-off (1 s doubling, at most the interval), or when the server said.
TimePoint retry_time(int failures, int64_t interval_ms, int64_t asked_ms, TimePoint now) {
    const int64_t backoff = std::min<int64_t>(interval_ms, 1000LL << std::min(failures, 6));
    return now + std::chrono::milliseconds(std::max(backoff, asked_ms));
}

// The answer's Retry-After (seconds or an HTTP-date, as the SDK reads it for plugins); 0 if none.
int64_t retry_after_ms(const dispatch::HttpOutcome &o) {
    for (const auto &h : o.headers)
        if (strcasecmp(h.name.c_str(), "retry-after") == 0) return sdk::retry_after_ms(h.value).value_or(0);
    return 0;
}

}  // namespace

Poller::Poller(RuntimeSource runtime, sources::Intake &intake, store::CursorStore &cursors, model::Metrics &metrics)
    : runtime_(std::move(runtime)), intake_(intake), cursors_(cursors), metrics_(metrics) {}

Poller::~Poller() { stop(); }

void Poller::start() {
    if (thread_.joinable()) return;
    thread_ = std::thread([this] { run(); });
}

void Poller::stop() {
    {
        std::lock_guard l(mutex_);
        stopping_ = true;
    }
    wakeup_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void Poller::wake() {
    {
        std::lock_guard l(mutex_);
        refresh_ = true;
    }
    wakeup_.notify_all();
}

std::vector<model::PollStatus> Poller::status() const {
    std::lock_guard l(mutex_);
    std::vector<model::PollStatus> out;
    out.reserve(targets_.size());
    for (const auto &[_, t] : targets_) out.push_back(t->status);
    return out;
}

void Poller::refresh_targets(const model::Runtime &rt) {
    // Under the lock throughout: status() must never see a target half moved. The
    // cursors of new targets are read on their first poll, not here.
    std::lock_guard l(mutex_);
    std::map<std::pair<std::string, std::string>, std::unique_ptr<Target>> next;
    std::map<std::string, std::unique_ptr<Connection>> conns;
    const auto now = SteadyClock::now();
    for (const auto &[name, conn] : rt.connections) {
        const auto &polling = conn->config.polling;
        if (polling.objects.empty()) continue;
        auto &c = conns[name];
        if (auto old = connections_.find(name); old != connections_.end() && old->second->rate == polling.requests_per_second) c = std::move(old->second);
        else c.reset(new Connection{polling.requests_per_second, ratelimit::TokenBucket(polling.requests_per_second, std::max(1.0, polling.requests_per_second), now)});
        for (const auto &p : polling.objects) {
            const auto key = std::make_pair(name, p.object);
            std::unique_ptr<Target> t;
            if (auto old = targets_.find(key); old != targets_.end()) t = std::move(old->second);
            if (!t) {
                t = std::make_unique<Target>();
                t->due = now;  // a new target polls at once, from its stored cursor
                t->status.connection = name;
                t->status.object = p.object;
            }
            t->status.interval_ms = p.interval_ms;
            next[key] = std::move(t);
        }
    }
    targets_ = std::move(next);
    connections_ = std::move(conns);
}

void Poller::run() {
    dispatch::HttpExecutor http(4);
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        if (refresh_) {
            refresh_ = false;
            lock.unlock();
            auto rt = runtime_();
            if (rt != seen_) {
                refresh_targets(*rt);
                seen_ = std::move(rt);
            }
            lock.lock();
            continue;
        }
        // The target due first, and when its connection's rate lets it go.
        Target *next = nullptr;
        TimePoint at = TimePoint::max();
        const auto now = SteadyClock::now();
        for (auto &[_, t] : targets_) {
            TimePoint when = t->due;
            if (when <= now) when = now + connections_.at(t->connection())->bucket.wait_time(now);
            if (when < at) {
                at = when;
                next = t.get();
            }
        }
        if (!next || at > now) {
            // Reloads wake us; the second look also catches a missed one.
            wakeup_.wait_until(lock, std::min(at, now + 1s));
            refresh_ = refresh_ || runtime_() != seen_;
            continue;
        }
        if (!connections_.at(next->connection())->bucket.try_acquire(now)) continue;
        const auto rt = seen_;
        lock.unlock();
        const auto conn = rt->connections.find(next->connection());
        const TimePoint due = conn == rt->connections.end() ? now + 1s : poll_once(*next, *conn->second, *rt, http);
        lock.lock();
        next->due = due;
        next->status.next_poll_ms = util::epoch_ms() + std::chrono::duration_cast<std::chrono::milliseconds>(due - SteadyClock::now()).count();
    }
}

std::optional<dispatch::HttpOutcome> Poller::await_answer(dispatch::HttpExecutor &http) {
    while (!stop_requested()) {
        auto done = http.poll(100);
        if (!done.empty()) return std::move(done.front());
    }
    return std::nullopt;
}

bool Poller::ensure_token(dispatch::AuthState &auth, const model::ConnectionRuntime &conn, dispatch::HttpExecutor &http) {
    TimePoint wake = TimePoint::max();
    auto need = dispatch::token_need(auth, conn, SteadyClock::now(), wake, mutex_);
    if (!need.request) return need.usable;
    http.start(std::move(*need.request));
    const auto answer = await_answer(http);
    if (!answer) {
        auth.refreshing = false;
        return false;
    }
    dispatch::token_answered(auth, conn, *answer, SteadyClock::now(), mutex_);
    return !auth.token.empty();
}

TimePoint Poller::poll_once(Target &t, const model::ConnectionRuntime &conn, const model::Runtime &rt, dispatch::HttpExecutor &http) {
    const auto fail = [&](const std::string &why, int64_t asked_ms) {
        metrics_.poll_failures.fetch_add(1, std::memory_order_relaxed);
        const int n = t.failures++;
        {
            std::lock_guard l(mutex_);
            ++t.status.failures;
            t.status.last_error = why;
        }
        if (n < 3 || n % 100 == 0) spdlog::warn("connection '{}': polling '{}' brought no page ({} in a row): {}", t.connection(), t.object(), n + 1, why);
        return retry_time(n, t.status.interval_ms, asked_ms, SteadyClock::now());
    };
    if (!t.loaded) {
        try {
            auto stored = cursors_.get(t.connection(), t.object()).value_or("");
            std::lock_guard l(mutex_);
            t.status.cursor = std::move(stored);
            t.loaded = true;
        } catch (const std::exception &e) {
            return fail(std::string("cannot read the stored poll cursor: ") + e.what(), 0);
        }
    }
    const std::string *token = &conn.config.access_token;
    const std::string *base_url = &conn.config.base_url;
    dispatch::AuthState *auth = nullptr;
    if (conn.provider->has_auth_refresh()) {
        auth = &connections_.at(t.connection())->auth;
        if (!ensure_token(*auth, conn, http)) {
            if (stop_requested()) return SteadyClock::now();
            const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(auth->retry_at - SteadyClock::now()).count();
            return fail("no access token yet: " + auth->last_error, std::max<int64_t>(0, wait));
        }
        token = &auth->token;
        if (!auth->base_url.empty()) base_url = &auth->base_url;
    }
    dispatch::HttpCall call;
    try {
        call = dispatch::connection_call(conn.provider->build_poll_request(t.object(), t.cursor(), *token), conn.config, *base_url);
    } catch (const std::exception &e) {
        return fail(std::string("cannot build the poll request: ") + e.what(), 0);
    }
    metrics_.polls.fetch_add(1, std::memory_order_relaxed);
    http.start(std::move(call));
    auto answer = await_answer(http);
    if (!answer) return SteadyClock::now();  // abandoned: the cursor did not move
    if (answer->status == 0) return fail("no answer: " + answer->transport_error, 0);
    if (answer->status == 401 && auth) {
        dispatch::token_refused(*auth, *token);  // revoked or expired: the next poll fetches a new one
        return fail("HTTP 401: the access token was refused; fetching a new one", 0);
    }
    if (const int64_t asked = retry_after_ms(*answer); asked > 0) {
        // The CRM asked the connection to wait: its other objects' searches wait too.
        std::lock_guard l(mutex_);
        if (const auto c = connections_.find(t.connection()); c != connections_.end())
            c->second->bucket.pause_until(SteadyClock::now() + std::chrono::milliseconds(asked));
    }
    plugin::ProviderInstance::PollPage page;
    std::vector<nlohmann::json> events;
    try {
        page = conn.provider->parse_poll_response(t.object(), t.cursor(), plugin::ResponseView{answer->status, &answer->headers, answer->body});
        events = sources::inbound_events(conn, std::move(page.events));
    } catch (const std::exception &e) {
        return fail(e.what(), retry_after_ms(*answer));
    }
    // Durable with its cursor, or neither.
    auto a = commit(rt, t, events, page.cursor);
    if (a && sources::is_refusal(*a) && events.size() > 0) {
        // An event the rules or the provider's schema refuse would hold the cursor (and
        // every later change of the object) for good: a webhook's sender gives up, a
        // poller must not stall. The page's events go one by one; the refused ones are
        // logged and counted, and the cursor moves with the rest.
        size_t refused = 0;
        a = sources::accept_each(intake_, rt, t.connection(), events, [this] { return stop_requested(); }, [&](size_t i, const sources::IntakeAnswer &one) {
            ++refused;
            metrics_.poll_events_refused.fetch_add(1, std::memory_order_relaxed);
            spdlog::error("connection '{}': polled change {} of '{}' refused, skipped: {}", t.connection(), events[i].value("id", std::string("?")), t.object(), one.error);
        });
        if (a && a->status == 202) a = commit(rt, t, {}, page.cursor);
        if (a && a->status == 202) {
            std::lock_guard l(mutex_);
            t.status.refused += refused;
        }
    }
    if (!a) return SteadyClock::now();  // stopping: the commit answers into nothing, the cursor is what it stored
    if (a->status != 202) return fail("the page's events were not accepted (" + std::to_string(a->status) + "): " + a->error, int64_t{a->retry_after_s} * 1000);
    t.failures = 0;
    metrics_.poll_events.fetch_add(events.size(), std::memory_order_relaxed);
    {
        std::lock_guard l(mutex_);
        t.status.cursor = std::move(page.cursor);
        t.status.last_page_ms = util::epoch_ms();
        ++t.status.pages;
        t.status.events += events.size();
        t.status.last_error.clear();
    }
    const auto now = SteadyClock::now();
    return page.more ? now : now + std::chrono::milliseconds(t.status.interval_ms);
}


std::optional<sources::IntakeAnswer> Poller::commit(const model::Runtime &rt, Target &t, const std::vector<nlohmann::json> &events, std::optional<std::string> cursor) {
    std::optional<store::Cursor> moved;
    if (cursor) moved = store::Cursor{t.connection(), t.object(), std::move(*cursor)};
    return sources::accept_and_wait(intake_, rt, t.connection(), events, std::move(moved), [this] { return stop_requested(); });
}

bool Poller::stop_requested() const {
    std::lock_guard l(mutex_);
    return stopping_;
}

}  // namespace recsync::poll
