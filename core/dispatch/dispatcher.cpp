#include "dispatch/dispatcher.hpp"

#include "dispatch/backoff.hpp"
#include "ratelimit/report_capture.hpp"

#include <spdlog/spdlog.h>
#include <strings.h>

#include <algorithm>

namespace recsync::dispatch {

using util::SteadyClock;
using util::TimePoint;

namespace {
constexpr size_t kMaxStoredBody = 64 * 1024;  // a dead letter keeps this much of a response

std::string truncate(std::string s) {
    if (s.size() > kMaxStoredBody) {
        s.resize(kMaxStoredBody);
        s += "...[truncated]";
    }
    return s;
}

bool is_secret(const plugin::Header &h) {
    return h.secret || strcasecmp(h.name.c_str(), "authorization") == 0 || strcasecmp(h.name.c_str(), "proxy-authorization") == 0;
}

// What the connection's config says about every call to it (a record's or a token's).
void apply_connection_settings(HttpCall &call, const config::ConnectionConfig &c) {
    call.connect_timeout_ms = c.connect_timeout_ms;
    call.timeout_ms = c.timeout_ms;
    call.ca_file = c.tls_ca_file;
}
}  // namespace

std::string describe_request(const HttpCall &call) {
    std::string out = call.method + " " + call.url + "\n";
    for (const auto &h : call.headers) out += h.name + ": " + (is_secret(h) ? "[redacted]" : h.value) + "\n";
    out += "\n" + call.body;
    return truncate(std::move(out));
}

// The verdict on one task, ready to be recorded.
struct Dispatcher::Completion {
    Lane *lane = nullptr;
    std::string record_id;
    recsync_result_kind kind = RECSYNC_RESULT_FAIL;
    std::string external_id;
    int64_t retry_after_ms = 0;
    std::string reason;
    HttpCall call;  // as it was made (from the executor), for a dead letter's request text
    int status = 0;
    std::string response_body;
    std::vector<ratelimit::ServerReport> rate_limits;  // what the server said about its limit
    recsync_action action = RECSYNC_ACTION_CREATE;      // what was sent
    bool was_in_doubt = false;

    // The server said "slow down": a 429, or a 503 with a Retry-After (an overloaded server
    // or gateway saying when to come back). Flow control, not a failure of this record:
    // the lane pauses and halves its rate, and the record's attempts are not used up. A
    // 503 without Retry-After is a plain transient error (backoff, counted).
    bool throttled() const { return kind == RECSYNC_RESULT_RETRY && (status == 429 || (status == 503 && retry_after_ms > 0)); }
};

Dispatcher::Dispatcher(store::SqliteDb &db, queue::TaskQueue &queue, store::StateStore &state, engine::Metrics &metrics, size_t max_calls_in_flight)
    : limit_(max_calls_in_flight), db_(db), queue_(queue), state_(state), metrics_(metrics), http_(std::max<size_t>(1024, limit_.max())) {
    metrics_.calls_in_flight_limit.store(limit_.current());
}

Dispatcher::~Dispatcher() { stop(std::chrono::milliseconds(0)); }

void Dispatcher::start(const Connections &connections, std::vector<queue::Task> pending) {
    const auto now = SteadyClock::now();
    for (const auto &[name, conn] : connections) lanes_[name] = std::make_unique<Lane>(conn, now);
    if (!pending.empty()) spdlog::info("resuming {} unfinished task(s) from the state database", pending.size());
    enqueue(std::move(pending), true);
    running_ = true;
    thread_ = std::thread([this] { run(); });
}

void Dispatcher::submit(std::vector<queue::Task> tasks) {
    if (tasks.empty()) return;
    bool was_empty;
    {
        std::lock_guard l(inbox_mutex_);
        was_empty = inbox_.empty();
        if (was_empty) inbox_ = std::move(tasks);
        else std::move(tasks.begin(), tasks.end(), std::back_inserter(inbox_));
    }
    // A non-empty inbox has had its wakeup and not been taken yet: one wakeup per take,
    // not per request (each is a syscall and, for a sleeping dispatcher, a context switch).
    if (was_empty) http_.wakeup();
}

void Dispatcher::stop(std::chrono::milliseconds drain) {
    if (!thread_.joinable()) return;
    drain_deadline_ = SteadyClock::now() + drain;
    stopping_ = true;
    http_.wakeup();
    thread_.join();
    running_ = false;
}

void Dispatcher::update_connections(const Connections &connections, std::vector<queue::Task> waiting) {
    {
        std::lock_guard l(inbox_mutex_);
        pending_connections_ = connections;
        // Two reloads before the thread looks: the first one's new lanes are the second's
        // too, or were removed again (their tasks then wait in the database).
        std::move(waiting.begin(), waiting.end(), std::back_inserter(pending_waiting_));
    }
    http_.wakeup();
}

void Dispatcher::take_inbox() {
    std::vector<queue::Task> batch, waiting;
    std::optional<Connections> connections;
    {
        std::lock_guard l(inbox_mutex_);
        batch.swap(inbox_);
        connections.swap(pending_connections_);
        waiting.swap(pending_waiting_);
    }
    const auto now = SteadyClock::now();
    // First: tasks taken with them may be for a connection they add.
    if (connections) apply_connections(std::move(*connections), std::move(waiting), now);
    // Concurrent requests may submit out of their commit order; the ids are that order.
    std::sort(batch.begin(), batch.end(), [](const queue::Task &a, const queue::Task &b) { return a.id < b.id; });
    enqueue(std::move(batch), false);
}

void Dispatcher::apply_connections(Connections connections, std::vector<queue::Task> waiting, TimePoint now) {
    std::vector<std::pair<std::string, Lane *>> added;
    {
        std::lock_guard l(lanes_mutex_);  // status() reads lanes_
        for (auto &[name, lane] : lanes_) {
            if (connections.count(name) || lane->removed()) continue;
            lane->set_removed(true);
            spdlog::warn("connection '{}' was removed: it starts no more calls (those in flight finish); its {} queued task(s) stay in the database until it "
                         "is configured again",
                         name, lane->stats().queued.load());
        }
        for (auto &[name, conn] : connections) {
            auto &lane = lanes_[name];
            if (!lane) {
                lane = std::make_unique<Lane>(std::move(conn), now);
                added.emplace_back(name, lane.get());
                continue;
            }
            if (lane->removed()) {
                spdlog::info("connection '{}' is configured again: its queued tasks go on", name);
                // Its credentials may be new: no stale token, no back-off from old failures.
                if (auto &auth = lane->auth(); !auth.refreshing) auth = Lane::AuthState{};
            }
            lane->set_removed(false);
            lane->set_connection(std::move(conn), now);
            scheduler_.ready(lane.get());
        }
    }
    // The tasks the reload read for the lanes made now (accepted under an earlier config),
    // queued as at a start: they may have gone out before. Others are dropped here: a lane
    // back from removal already holds its tasks, and a connection removed again before
    // this keeps them in the database.
    std::map<std::string, size_t> resumed;  // by added lane
    for (const auto &[name, _] : added) resumed[name] = 0;
    std::erase_if(waiting, [&](const queue::Task &t) {
        auto it = resumed.find(t.connection);
        if (it == resumed.end()) return true;
        ++it->second;
        return false;
    });
    for (const auto &[name, lane] : added) {
        const size_t n = resumed[name];
        spdlog::info("connection '{}' was added{}", name, n ? ": resuming " + std::to_string(n) + " queued task(s)" : std::string());
        scheduler_.ready(lane);
    }
    enqueue(std::move(waiting), true);
}

void Dispatcher::enqueue(std::vector<queue::Task> tasks, bool from_start) {
    if (tasks.empty()) return;
    const auto now = SteadyClock::now();
    const int64_t epoch = util::epoch_ms();
    std::map<std::string, size_t> orphans;
    std::vector<Lane::Coalesced> folded;
    for (auto &t : tasks) {
        auto it = lanes_.find(t.connection);
        if (it == lanes_.end()) {
            ++orphans[t.connection];
            continue;
        }
        const auto at = now + std::chrono::milliseconds(std::max<int64_t>(0, t.not_before_ms - epoch));
        // A create that an upsert can retry carries no durable "sent" mark (begin): after a
        // restart it may have gone out.
        if (from_start && t.action == RECSYNC_ACTION_CREATE && it->second->connection().create_retry_of(t.object) == engine::CreateRetry::Upsert) t.sent = true;
        scheduler_.ready(it->second.get());
        auto c = it->second->push(std::move(t), at);
        if (!c.dropped.empty()) folded.push_back(std::move(c));
    }
    for (const auto &[name, n] : orphans)
        spdlog::warn("{} queued task(s) for connection '{}', which is {}: kept in the database, not sent", n, name, from_start ? "not configured" : "unknown");
    if (folded.empty()) return;
    // Mirror it in the task table, so a restart does not resurrect what was folded away.
    // If this fails the rows stay, and the next start simply folds them again.
    size_t dropped = 0;
    try {
        db_.transaction([&] {
            for (const auto &c : folded) {
                for (const auto id : c.dropped) queue_.remove(id);
                if (c.rewritten) queue_.set_payload(c.rewritten, c.payload);
                dropped += c.dropped.size();
            }
        });
    } catch (const std::exception &e) {
        spdlog::error("cannot record coalesced tasks: {}", e.what());
        return;
    }
    metrics_.tasks_coalesced.fetch_add(dropped, std::memory_order_relaxed);
}

void Dispatcher::run() {
    while (true) {
        take_inbox();
        const auto now = SteadyClock::now();
        if (stopping_ && (in_flight_.empty() || now >= drain_deadline_)) break;
        record_results_if_due(now);
        auto wake = now + std::chrono::milliseconds(200);
        if (!stopping_) start_calls(now, wake);
        // Results not yet due, or due (like marks still waiting) while ingest held the
        // database: look again then, or in a millisecond.
        constexpr auto kSoon = std::chrono::milliseconds(1);
        note_unrecorded(now);
        if (!unrecorded_.empty()) wake = std::min(wake, std::max(now + kSoon, unrecorded_since_ + kResultsDelay));
        if (!awaiting_mark_.empty()) wake = std::min(wake, now + kSoon);
        // Whole milliseconds, rounded up: a poll(0) until then would spin.
        const auto wait = std::chrono::ceil<std::chrono::milliseconds>(wake - SteadyClock::now()).count();
        auto outcomes = http_.poll(static_cast<int>(std::clamp<int64_t>(wait, 0, 200)));
        // When the answers came: a call's place in the server's quota is held from then.
        const auto polled = SteadyClock::now();
        limit_.note_idle(http_.take_waited());
        if (limit_.update(polled)) metrics_.calls_in_flight_limit.store(limit_.current());
        if (outcomes.empty()) continue;
        const size_t first_new = unrecorded_.size();
        for (auto &o : outcomes) {
            auto it = in_flight_.find(o.tag);
            if (it == in_flight_.end()) continue;
            InFlight f = std::move(it->second);
            in_flight_.erase(it);
            if (f.auth) {
                finish_auth(*f.lane, *f.connection, o);
                continue;
            }
            Completion c;
            c.lane = f.lane;
            const auto &conn = *f.connection;
            c.record_id = std::move(f.record_id);
            c.call = std::move(o.call);
            c.action = f.action;
            c.was_in_doubt = f.was_in_doubt;
            c.status = o.status;
            c.response_body = truncate(o.body);
            const auto &task = f.lane->head(c.record_id);
            if (o.status == 0) {
                c.kind = RECSYNC_RESULT_RETRY;
                c.reason = "transport error: " + o.transport_error;
            } else {
                const plugin::CallInput in{f.action, task.object, task.record_key, f.external_id, task.payload, f.access_token};
                try {
                    ratelimit::ReportCapture capture;  // the plugin's set_rate_limit calls
                    auto r = conn.provider->parse_response(in, plugin::ResponseView{o.status, &o.headers, o.body});
                    c.rate_limits = capture.take();
                    c.kind = r.kind;
                    c.external_id = std::move(r.external_id);
                    c.retry_after_ms = r.retry_after_ms;
                    c.reason = r.error.empty() ? ("HTTP " + std::to_string(o.status)) : std::move(r.error);
                } catch (const std::exception &e) {
                    c.kind = RECSYNC_RESULT_FAIL;
                    c.reason = e.what();
                }
                if (o.status == 401 && conn.provider->has_auth_refresh()) {
                    // The token was revoked or expired early: fetch a new one, try again.
                    c.kind = RECSYNC_RESULT_RETRY;
                    c.reason = "HTTP 401 with a refreshed token; refreshing it again";
                    auto &auth = f.lane->auth();
                    if (auth.token == f.access_token) auth.token.clear();
                }
                if (c.kind == RECSYNC_RESULT_OK && c.external_id.empty()) {
                    if (f.action == RECSYNC_ACTION_UPDATE) c.external_id = f.external_id;  // a create found by a FIND
                    if (f.action == RECSYNC_ACTION_CREATE || f.action == RECSYNC_ACTION_UPSERT) {
                        c.kind = RECSYNC_RESULT_FAIL;
                        c.reason = "the provider reported success but no external id for the " + std::string(queue::action_text(f.action));
                    }
                }
            }
            f.lane->end_call(c.record_id, polled);
            scheduler_.ready(f.lane);  // its call slot is free now, before the result is recorded
            unrecorded_.push_back(std::move(c));
        }
        // Once every answer of this round is off the in-flight counts: a lane's count then
        // holds only calls its server may not have counted when it answered (those it
        // counted later are covered by their own, lower, reports).
        const auto answered = SteadyClock::now();
        for (size_t i = first_new; i < unrecorded_.size(); ++i) apply_flow_control(*unrecorded_[i].lane, unrecorded_[i], answered);
        record_results_if_due(answered);
    }
    record_results(true);
}

void Dispatcher::start_marked() {
    for (auto &a : awaiting_mark_) {
        auto &task = a.lane->head(a.record_id);
        task.sent = task.marked = true;
        http_.start(std::move(a.call));
    }
    awaiting_mark_.clear();
}

void Dispatcher::fail_marked(const std::exception &e) {
    // Not marked, so not sent: each task is tried again like any failed attempt.
    for (auto &a : awaiting_mark_) {
        in_flight_.erase(a.call.tag);
        a.lane->cancel_call(a.record_id);
        Completion c;
        c.lane = a.lane;
        c.record_id = std::move(a.record_id);
        c.kind = RECSYNC_RESULT_RETRY;
        c.reason = std::string("state database: ") + e.what();
        unrecorded_.push_back(std::move(c));
    }
    awaiting_mark_.clear();
}

void Dispatcher::note_unrecorded(TimePoint now) {
    if (unrecorded_.empty()) unrecorded_since_ = TimePoint::max();
    else if (unrecorded_since_ == TimePoint::max()) unrecorded_since_ = now;
}

void Dispatcher::record_results_if_due(TimePoint now) {
    note_unrecorded(now);
    const bool waiting = !unrecorded_.empty();
    const auto age = waiting ? now - unrecorded_since_ : util::SteadyClock::duration::zero();
    if (!stopping_ && awaiting_mark_.empty() && (!waiting || (unrecorded_.size() < kResultsBatch && age < kResultsDelay))) return;
    // Results live in memory until then (a crash repeats their calls), and a call's slot
    // is free before its result is recorded: past these bounds, wait for the database
    // (ingest's commits hold it through their fsync) instead of starting more calls.
    const bool must = waiting && (unrecorded_.size() >= kResultsBatch || age >= kResultsMaxWait);
    record_results(must);
}

void Dispatcher::record_results(bool wait) {
    if (unrecorded_.empty() && awaiting_mark_.empty()) return;
    std::vector<Completion> batch = std::move(unrecorded_);
    unrecorded_.clear();
    if (!complete(batch, wait)) unrecorded_ = std::move(batch);
    note_unrecorded(SteadyClock::now());  // complete may have added some (marks that failed)
}

void Dispatcher::start_calls(TimePoint now, TimePoint &wake) {
    scheduler_.promote(now);
    const size_t limit = limit_.current();
    // No more lanes than calls may start: the rest keep their places for the next turn.
    const std::vector<Lane *> turn = scheduler_.take_turn(limit - std::min(limit, in_flight_.size()));
    bool capped = false;
    for (size_t i = 0; i < turn.size(); ++i) {
        Lane &lane = *turn[i];
        if (lane.removed()) continue;  // nothing to start, no token to keep fresh
        if (in_flight_.size() >= limit) {
            scheduler_.ready_first({turn.begin() + static_cast<std::ptrdiff_t>(i), turn.end()});
            capped = true;
            break;
        }
        const int budget = static_cast<int>(std::min<size_t>(LaneScheduler::kStartsPerVisit, limit - in_flight_.size()));
        auto lane_wake = TimePoint::max();
        const bool can_call = !lane.connection().provider->has_auth_refresh() || ensure_token(lane, now, lane_wake);
        bool more = false;
        if (can_call) more = start_some(lane, now, budget, lane_wake, [&](queue::Task &t) { begin(lane, t, unrecorded_); });
        else lane_wake = std::min(lane_wake, lane.next_retry());
        if (more) scheduler_.ready(&lane);  // round robin: the rest on its next turn
        if (lane_wake != TimePoint::max()) scheduler_.wake_at(&lane, lane_wake);
        const auto paused = lane.paused_until(now);
        // Held only by calls in flight (TimePoint::max()) is not a pause: an answer ends it.
        const bool timed = paused > now && paused != TimePoint::max();
        lane.stats().paused_until_ms.store(timed ? util::epoch_ms() + std::chrono::duration_cast<std::chrono::milliseconds>(paused - now).count() : 0);
        lane.stats().server_remaining.store(lane.quota().remaining(now));
    }
    record_results_if_due(now);  // the marks of the creates begun, and calls that ended before being sent
    // Lanes still in the ring go on at once, after the network has been polled; at the cap
    // they wait for a call to complete (the poll returns on that).
    capped = capped || in_flight_.size() >= limit;
    if (capped && scheduler_.has_ready()) limit_.note_capped();  // lanes wait for a slot
    wake = scheduler_.has_ready() && !capped ? now : std::min(wake, scheduler_.next_timer());
}

void Dispatcher::begin(Lane &lane, queue::Task &task, std::vector<Completion> &immediate) {
    auto conn_ptr = lane.connection_ptr();
    const auto &conn = *conn_ptr;
    Completion early;
    early.lane = &lane;
    early.record_id = task.record_id();
    // Decided without a call (no id to act on, the plugin refused to build it, the state
    // database failed): the slot is free again and the verdict is recorded with the rest.
    auto end_early = [&] {
        lane.cancel_call(early.record_id);
        immediate.push_back(std::move(early));
    };
    // A create whose earlier attempt may have made the record is re-sent so that it
    // cannot make a second one (DESIGN "Delivery": idempotent creates), as the provider
    // says for the object: upsert by its unique key, or find it first.
    const auto create_retry = task.action == RECSYNC_ACTION_CREATE ? conn.create_retry_of(task.object) : engine::CreateRetry::Resend;
    const bool in_doubt = create_retry != engine::CreateRetry::Resend && task.sent && !task.verified_absent;
    std::string external_id;
    try {
        // A create in doubt has an id once a FIND found its record: it then goes as an
        // update. One retried as an upsert needs none (the upsert finds the record itself).
        if (task.action != RECSYNC_ACTION_CREATE || (in_doubt && create_retry == engine::CreateRetry::Find))
            external_id = state_.external_id(task.connection, task.object, task.record_key).value_or("");
    } catch (const std::exception &e) {
        early.kind = RECSYNC_RESULT_RETRY;
        early.reason = std::string("state database: ") + e.what();
        return end_early();
    }
    if (external_id.empty() && task.action == RECSYNC_ACTION_DELETE) {
        // Never synced (or already deleted): nothing exists there to delete.
        early.kind = RECSYNC_RESULT_OK;
        early.reason = "no external id: nothing to delete";
        return end_early();
    }
    if (external_id.empty() && (task.action == RECSYNC_ACTION_UPDATE || task.action == RECSYNC_ACTION_READ)) {
        early.kind = RECSYNC_RESULT_FAIL;
        early.reason = "no external id for record '" + task.record_key + "' at connection '" + task.connection +
                       "': it was never created through recsync (use action: upsert to create-or-update)";
        return end_early();
    }
    recsync_action action = task.action;
    if (in_doubt && !external_id.empty()) action = RECSYNC_ACTION_UPDATE;
    else if (in_doubt) action = create_retry == engine::CreateRetry::Upsert ? RECSYNC_ACTION_UPSERT : RECSYNC_ACTION_FIND;
    HttpCall call;
    auto build = [&](recsync_action a) {
        const plugin::CallInput in{a, task.object, task.record_key, external_id, task.payload, lane.access_token()};
        auto req = conn.provider->build_request(in);
        call.method = std::move(req.method);
        call.url = conn.config.base_url + req.path;
        call.body = std::move(req.body);
        call.headers = std::move(req.headers);
    };
    try {
        try {
            build(action);
        } catch (const std::exception &e) {
            if (action != RECSYNC_ACTION_UPSERT && action != RECSYNC_ACTION_FIND) throw;
            // E.g. this record's payload lacks the key property: the best left is the create.
            spdlog::warn("connection '{}': create of {} '{}' may already have been made, but cannot be sent as {} ({}): sent again as a create, "
                         "which may make a duplicate",
                         conn.config.name, task.object, task.record_key, queue::action_text(action), e.what());
            action = RECSYNC_ACTION_CREATE;
            build(action);
        }
    } catch (const std::exception &e) {
        early.kind = RECSYNC_RESULT_FAIL;
        early.reason = e.what();
        return end_early();
    }
    call.tag = next_tag_++;
    apply_connection_settings(call, conn.config);
    call.send_once = action == RECSYNC_ACTION_CREATE;
    InFlight f{&lane, std::move(conn_ptr), early.record_id, std::move(external_id), lane.access_token(), false, action, in_doubt};
    in_flight_.emplace(call.tag, std::move(f));
    metrics_.http_calls.fetch_add(1, std::memory_order_relaxed);
    if (action == RECSYNC_ACTION_CREATE && create_retry != engine::CreateRetry::Resend) {
        task.verified_absent = false;  // once this is out, the task is in doubt again
        if (!task.marked && create_retry == engine::CreateRetry::Find) {
            awaiting_mark_.push_back({std::move(call), &lane, early.record_id, task.id});
            return;
        }
        // An upsert retry is right whether or not this create went out, so the call does
        // not wait for its mark: that goes with the next results (lazy_marks_), and after a
        // restart every pending create of such an object is in doubt anyway (enqueue). The
        // mark matters if the object's retry becomes a FIND before the task is done.
        if (!task.marked) lazy_marks_.push_back(task.id);
        task.sent = true;
    }
    http_.start(std::move(call));
}

void Dispatcher::set_auth_error(Lane::AuthState &auth, std::string error) {
    std::lock_guard l(lanes_mutex_);  // status() reads it
    auth.last_error = std::move(error);
}

bool Dispatcher::ensure_token(Lane &lane, TimePoint now, TimePoint &wake) {
    auto &auth = lane.auth();
    const bool usable = !auth.token.empty() && now < auth.expires;
    if (auth.refreshing) return usable;
    if (usable && now < auth.refresh_at) {
        wake = std::min(wake, auth.refresh_at);
        return true;
    }
    if (now < auth.retry_at) {
        wake = std::min(wake, auth.retry_at);
        return usable;
    }
    const auto conn = lane.connection_ptr();
    HttpCall call;
    try {
        auto req = conn->provider->build_auth_request();
        call.method = std::move(req.method);
        call.url = conn->config.base_url + req.path;
        call.body = std::move(req.body);
        call.headers = std::move(req.headers);
    } catch (const std::exception &e) {
        set_auth_error(auth, e.what());
        auth.retry_at = now + std::chrono::seconds(std::min(60, 1 << std::min(auth.failures++, 6)));
        wake = std::min(wake, auth.retry_at);
        spdlog::error("connection '{}': cannot build the token request: {}", conn->config.name, e.what());
        return usable;
    }
    call.tag = next_tag_++;
    apply_connection_settings(call, conn->config);
    InFlight f;
    f.lane = &lane;
    f.connection = conn;
    f.auth = true;
    in_flight_.emplace(call.tag, std::move(f));
    auth.refreshing = true;
    http_.start(std::move(call));  // the request (it carries client secrets) is never logged or stored
    return usable;
}

void Dispatcher::finish_auth(Lane &lane, const engine::ConnectionRuntime &conn, const HttpOutcome &o) {
    auto &auth = lane.auth();
    auth.refreshing = false;
    scheduler_.ready(&lane);  // with a token (or a retry time) it can go on
    const auto now = SteadyClock::now();
    try {
        if (o.status == 0) throw std::runtime_error("transport error: " + o.transport_error);
        const auto t = conn.provider->parse_auth_response(plugin::ResponseView{o.status, &o.headers, o.body});
        const auto ttl = std::chrono::seconds(std::max<int64_t>(1, t.expires_in_seconds));
        auth.token = t.token;
        auth.expires = now + ttl;
        // Refresh when a tenth of the lifetime (at most a minute) is left.
        auth.refresh_at = auth.expires - std::min<SteadyClock::duration>(ttl / 10, std::chrono::seconds(60));
        auth.failures = 0;
        set_auth_error(auth, "");
        spdlog::info("connection '{}': access token refreshed, valid for {} s", conn.config.name, t.expires_in_seconds);
    } catch (const std::exception &e) {
        set_auth_error(auth, e.what());
        auth.retry_at = now + std::chrono::seconds(std::min(60, 1 << std::min(auth.failures++, 6)));
        spdlog::error("connection '{}': token refresh failed (attempt {}): {}", conn.config.name, auth.failures, e.what());
    }
}

bool Dispatcher::complete(std::vector<Completion> &batch, bool wait) {
    const auto now = SteadyClock::now();
    const int64_t epoch = util::epoch_ms();
    struct After {
        bool retry;
        TimePoint at;
    };
    std::vector<After> after(batch.size());
    try {
        // Crash-safe, not fsynced per batch: a result lost to a power cut means the call is
        // made again, exactly as after a kill -9 between the CRM's answer and this commit;
        // an fsync per poll round was a quarter of the dispatcher's time (bench/run e2e).
        // The creates begun meanwhile get their marks in the same transaction: one
        // commit per round, not two (bench/run e2e). Crash-safe like the results: a kill -9
        // cannot lose the mark of a call that went out (a power cut could; the create then
        // goes out as a plain create again).
        auto record = [&] {
            for (const auto &a : awaiting_mark_) queue_.mark_sent(a.task_id);
            for (const int64_t id : lazy_marks_) queue_.mark_sent(id);
            for (size_t i = 0; i < batch.size(); ++i) {
                auto &c = batch[i];
                auto &task = c.lane->head(c.record_id);
                const auto &conn = c.lane->connection().config;
                const bool throttled = c.throttled();  // does not use up the record's attempts
                if (c.kind == RECSYNC_RESULT_RETRY && !throttled && task.attempts + 1 >= conn.retry.max_attempts) {
                    c.kind = RECSYNC_RESULT_FAIL;
                    c.reason = "gave up after " + std::to_string(task.attempts + 1) + " attempts; last: " + c.reason;
                }
                if (c.action == RECSYNC_ACTION_FIND && c.kind == RECSYNC_RESULT_OK) {
                    // Found (its id is now ours: the create goes as an update) or absent
                    // (it goes as a create); either way at once, not as a retry.
                    if (!c.external_id.empty()) state_.put_external_id(task.connection, task.object, task.record_key, c.external_id);
                    after[i] = {true, now};
                    continue;
                }
                int64_t delay = 0;
                if (c.kind == RECSYNC_RESULT_RETRY) {
                    const int attempts = task.attempts + (throttled ? 0 : 1);
                    delay = std::max(backoff_delay_ms(attempts - 1, conn.retry.base_delay_ms, conn.retry.max_delay_ms, rng_), c.retry_after_ms);
                    // Past its max age a change is stale: dead-letter it rather than send it
                    // late (throttled or not).
                    if (past_max_age(task.created_ms, epoch + delay, conn.retry.max_age_ms)) {
                        c.kind = RECSYNC_RESULT_FAIL;
                        c.reason = "gave up: the next retry would come after the task's retry.max_age (" + conn.retry.max_age_text + ") at connection '" +
                                   conn.name + "'; last: " + c.reason;
                    }
                }
                switch (c.kind) {
                    case RECSYNC_RESULT_OK:
                        if (task.action == RECSYNC_ACTION_CREATE || task.action == RECSYNC_ACTION_UPSERT) state_.put_external_id(task.connection, task.object, task.record_key, c.external_id);
                        else if (task.action == RECSYNC_ACTION_DELETE) state_.erase_external_id(task.connection, task.object, task.record_key);
                        queue_.remove(task.id);
                        after[i] = {false, now};
                        break;
                    case RECSYNC_RESULT_RETRY: {
                        const int attempts = task.attempts + (throttled ? 0 : 1);
                        queue_.reschedule(task.id, attempts, epoch + delay, c.reason);
                        after[i] = {true, now + std::chrono::milliseconds(delay)};
                        break;
                    }
                    default: {
                        store::DeadLetter dl;
                        dl.task = task;
                        dl.task.attempts = task.attempts + 1;
                        dl.request = c.call.method.empty() ? std::string() : describe_request(c.call);
                        dl.response_status = c.status;
                        dl.response_body = c.response_body;
                        dl.reason = c.reason;
                        dl.failed_ms = epoch;
                        state_.add_dead_letter(dl);
                        queue_.remove(task.id);
                        after[i] = {false, now};
                    }
                }
            }
        };
        if (wait) db_.transaction(record, store::SqliteDb::Durability::CrashSafe);
        else if (!db_.try_transaction(record, store::SqliteDb::Durability::CrashSafe)) return false;
    } catch (const std::exception &e) {
        // Nothing was recorded: every task stays as it was and is tried again later.
        fail_marked(e);
        spdlog::error("cannot record {} delivery result(s) in the state database: {}; retrying them in 1s", batch.size(), e.what());
        for (auto &c : batch) {
            c.lane->retry_at(c.record_id, now + std::chrono::seconds(1), now);
            scheduler_.ready(c.lane);
        }
        return true;
    }
    lazy_marks_.clear();
    start_marked();
    for (size_t i = 0; i < batch.size(); ++i) {
        auto &c = batch[i];
        auto &lane = *c.lane;
        auto &task = lane.head(c.record_id);
        if (c.action == RECSYNC_ACTION_FIND && c.kind == RECSYNC_RESULT_OK) {
            task.verified_absent = c.external_id.empty();
            spdlog::info("connection '{}': create of {} '{}' may already have been made: {}", task.connection, task.object, task.record_key,
                         c.external_id.empty() ? std::string("not found there, creating it") : "found as id " + c.external_id + ", updating it");
            lane.retry_at(c.record_id, after[i].at, now);
            continue;
        }
        if (after[i].retry) {
            // Refused for its rate, the create was not made: no need to look for it. Only a
            // 429 proves that: a 503 may come from a gateway after the CRM made it.
            if (c.status == 429 && c.action == RECSYNC_ACTION_CREATE && !c.was_in_doubt) task.verified_absent = true;
            if (!c.throttled()) ++task.attempts;
            spdlog::debug("connection '{}': {} {} retry #{}: {}", task.connection, queue::action_text(task.action), task.record_key, task.attempts, c.reason);
            lane.stats().retried.fetch_add(1, std::memory_order_relaxed);
            metrics_.tasks_retried.fetch_add(1, std::memory_order_relaxed);
            lane.retry_at(c.record_id, after[i].at, now);
            continue;
        }
        if (c.kind == RECSYNC_RESULT_OK) {
            spdlog::debug("connection '{}': {} {} ok{}", task.connection, queue::action_text(task.action), task.record_key, c.external_id.empty() ? "" : " id=" + c.external_id);
            lane.stats().succeeded.fetch_add(1, std::memory_order_relaxed);
            metrics_.tasks_succeeded.fetch_add(1, std::memory_order_relaxed);
        } else {
            spdlog::warn("connection '{}': {} {} dead-lettered: {}", task.connection, queue::action_text(task.action), task.record_key, c.reason);
            lane.stats().dead_lettered.fetch_add(1, std::memory_order_relaxed);
            metrics_.tasks_dead_lettered.fetch_add(1, std::memory_order_relaxed);
        }
        lane.finish(c.record_id, now);
    }
    for (const auto &c : batch) scheduler_.ready(c.lane);  // the record's next task may be queued
    return true;
}

void Dispatcher::apply_flow_control(Lane &lane, const Completion &c, TimePoint now) {
    // The server's reports first, with this call already off the lane's in-flight count:
    // the calls still counted are those the server may not have counted yet.
    for (const auto &r : c.rate_limits) lane.on_rate_limit(r, now);
    if (!c.rate_limits.empty() && spdlog::should_log(spdlog::level::debug)) {
        if (const auto until = lane.quota().blocked_until(now); until == TimePoint::max())
            spdlog::debug("connection '{}': the server's rate limit is used up until a call in flight is answered", lane.connection().config.name);
        else if (until > now)
            spdlog::debug("connection '{}': the server's rate limit is used up; lane paused for {} ms", lane.connection().config.name,
                          std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count());
    }
    if (c.kind == RECSYNC_RESULT_OK) lane.on_success(now);
    if (!c.throttled()) return;
    lane.on_throttled(now);
    if (c.retry_after_ms > 0) {
        // The server told us to slow down: pause the whole lane, not just this record.
        lane.bucket().pause_until(now + std::chrono::milliseconds(c.retry_after_ms));
        spdlog::info("connection '{}': HTTP {} with Retry-After {} ms: lane paused, rate now {:.2f}/s", lane.connection().config.name, c.status, c.retry_after_ms,
                     lane.bucket().rate());
    }
}

nlohmann::json Dispatcher::status() const {
    std::lock_guard l(lanes_mutex_);
    nlohmann::json lanes = nlohmann::json::object();
    for (const auto &[name, lane] : lanes_) {
        auto &s = const_cast<Lane &>(*lane).stats();
        lanes[name] = {
            {"provider", lane->connection().config.provider},
            {"queued", s.queued.load()},
            {"in_flight", s.in_flight.load()},
            {"paused_until_ms", s.paused_until_ms.load()},
            {"server_remaining", s.server_remaining.load()},
            {"rate_per_second", lane->connection().rate_per_second},
            {"current_rate_per_second", s.current_rate.load()},  // lowered by throttling (AIMD)
            {"succeeded", s.succeeded.load()},
            {"retried", s.retried.load()},
            {"dead_lettered", s.dead_lettered.load()},
        };
        if (!lane->auth().last_error.empty()) lanes[name]["auth_error"] = lane->auth().last_error;
        if (lane->removed()) lanes[name]["removed"] = true;  // by a reload: sends nothing, keeps its tasks
    }
    return lanes;
}

}  // namespace recsync::dispatch
