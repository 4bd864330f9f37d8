#include "dispatch/dispatcher.hpp"

#include "dispatch/auth_refresh.hpp"
#include "log/log_context.hpp"

#include <spdlog/spdlog.h>
#include <strings.h>

#include <algorithm>
#include <cassert>

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

// The record key in a model::record_id (object \x1f key).
std::string_view key_of(const std::string &record_id) { return std::string_view(record_id).substr(record_id.find('\x1f') + 1); }

bool makes_record(recsync_action a) { return a == RECSYNC_ACTION_CREATE || a == RECSYNC_ACTION_UPSERT; }
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
    Verdict verdict;
    Skip skip = Skip::None;  // finished without a call, for this reason
    HttpCall call;           // as it was made (from the executor), for a dead letter's request text
    std::string response_body;
    recsync_action action = RECSYNC_ACTION_CREATE;  // what was sent
    bool in_doubt = false;
    model::SendState send_before = model::SendState::Unsent;
    uint64_t payload_hash = 0;
    // Its call's answer paces the lane (apply_flow_control): false for a batch's records
    // but the first, as the batch was one call.
    bool flow = true;
};

Dispatcher::Dispatcher(store::TaskLog &log, store::DeliveryLog &deliveries, store::SyncState &state, model::Backlog &backlog, model::Metrics &metrics,
                       DispatcherOptions options)
    : limit_(options.max_calls_in_flight),
      log_(log),
      deliveries_(deliveries),
      state_(state),
      backlog_(backlog),
      metrics_(metrics),
      options_(options),
      http_(std::max<size_t>(1024, options.max_calls_in_flight_ceiling)) {
    metrics_.calls_in_flight_limit.store(limit_.current());
}

Dispatcher::~Dispatcher() { stop(std::chrono::milliseconds(0)); }

Lane &Dispatcher::add_lane(const std::string &name, std::shared_ptr<model::ConnectionRuntime> conn, TimePoint now) {
    http_.configure(conn->config);
    auto &lane = lanes_[name];
    lane = std::make_unique<Lane>(std::move(conn), backlog_, now);
    share_limit(name, *lane);
    return *lane;
}

void Dispatcher::share_limit(const std::string &name, Lane &lane) {
    const auto &c = lane.connection();
    // An unlimited connection has nothing to share.
    if (!options_.shared_limits || c.rate_per_second <= 0) return lane.share(nullptr);
    if (!lane.shared()) lane.share(options_.shared_limits->tokens(name, c.rate_per_second, c.burst));
}

void Dispatcher::size_windows() {
    const auto n = static_cast<int64_t>(std::max<size_t>(1, lanes_.size()));
    const auto w = static_cast<size_t>(std::clamp<int64_t>(options_.tasks_in_memory / n, kMinWindow, kMaxWindow));
    for (auto &[_, lane] : lanes_) lane->set_window(w);
}

void Dispatcher::start(const Connections &connections) {
    const auto now = SteadyClock::now();
    last_id_at_start_ = log_.last_id();
    {
        std::lock_guard l(lanes_mutex_);
        for (const auto &[name, conn] : connections) note_refill(add_lane(name, conn, now));
        size_windows();
    }
    spdlog::info("{} task(s) waiting in the task log", backlog_.total());
    running_ = true;
    thread_ = std::thread([this] { run(); });
}

void Dispatcher::submit(std::vector<model::Task> tasks) {
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

void Dispatcher::update_connections(const Connections &connections) {
    {
        std::lock_guard l(inbox_mutex_);
        pending_connections_ = connections;
    }
    http_.wakeup();
}

void Dispatcher::forget_links(std::vector<model::LinkKey> keys) {
    if (keys.empty()) return;
    {
        std::lock_guard l(inbox_mutex_);
        std::move(keys.begin(), keys.end(), std::back_inserter(forgotten_links_));
    }
    http_.wakeup();
}

void Dispatcher::take_inbox() {
    take_inbound_outcomes();
    std::vector<model::Task> batch;
    std::optional<Connections> connections;
    std::vector<model::LinkKey> forgotten;
    {
        std::lock_guard l(inbox_mutex_);
        batch.swap(inbox_);
        connections.swap(pending_connections_);
        forgotten.swap(forgotten_links_);
    }
    for (const auto &k : forgotten) {
        const auto it = lanes_.find(k.connection);
        if (it != lanes_.end()) it->second->forget_link(model::record_id(k.object, k.record_key));
    }
    const auto now = SteadyClock::now();
    // First: tasks taken with them may be for a connection they add.
    if (connections) apply_connections(std::move(*connections), now);
    if (batch.empty()) return;
    const int64_t epoch = util::epoch_ms();
    size_t folded = 0;
    for (auto &t : batch) {
        auto it = lanes_.find(t.connection);
        if (it == lanes_.end()) continue;  // not configured: it waits in the log for a reload that adds its connection
        Lane &lane = *it->second;
        const auto at = now + std::chrono::milliseconds(std::max<int64_t>(0, t.not_before_ms - epoch));
        bool f = false;
        if (!lane.offer(std::move(t), at, f)) note_refill(lane);
        folded += f;
        note_unlinked(lane);
        scheduler_.ready(&lane);
    }
    metrics_.tasks_coalesced.fetch_add(folded, std::memory_order_relaxed);
}

void Dispatcher::note_unlinked(Lane &lane) {
    auto &s = lane.schedule_state();
    if (s.unlinked_listed || !lane.has_unlinked()) return;
    s.unlinked_listed = true;
    unlinked_.push_back(&lane);
}

void Dispatcher::read_links() {
    if (unlinked_.empty()) return;
    struct Wanted {
        Lane *lane;
        std::string record_id;
    };
    std::vector<Wanted> wanted;
    std::vector<model::LinkKey> keys;
    auto flush = [&] {
        if (keys.empty()) return;
        try {
            auto states = state_.links(keys);
            for (size_t i = 0; i < wanted.size(); ++i) wanted[i].lane->link(wanted[i].record_id) = std::move(states[i]);
        } catch (const std::exception &e) {
            // Left unread: begin() reads each one by itself (and retries if that fails too).
            spdlog::error("cannot read the sync state of {} record(s): {}", keys.size(), e.what());
        }
        wanted.clear();
        keys.clear();
    };
    for (Lane *lane : unlinked_) {
        lane->schedule_state().unlinked_listed = false;
        for (auto &id : lane->take_unlinked()) {
            const auto &t = lane->head(id);
            keys.push_back({t.connection, t.object, t.record_key});
            wanted.push_back({lane, std::move(id)});
            if (keys.size() == kLinksPerRead) flush();
        }
    }
    unlinked_.clear();
    flush();
}

void Dispatcher::apply_connections(Connections connections, TimePoint now) {
    std::lock_guard l(lanes_mutex_);  // status() reads lanes_
    for (auto &[name, lane] : lanes_) {
        if (connections.count(name) || lane->removed()) continue;
        lane->set_removed(true);
        spdlog::warn("connection '{}' was removed: it starts no more calls (those in flight finish); its {} queued task(s) stay in the task log until it "
                     "is configured again",
                     name, lane->queued().load());
    }
    bool added = false;
    for (auto &[name, conn] : connections) {
        auto it = lanes_.find(name);
        if (it == lanes_.end()) {
            Lane &lane = add_lane(name, std::move(conn), now);
            spdlog::info("connection '{}' was added{}", name, lane.queued().load() ? ": " + std::to_string(lane.queued().load()) + " task(s) wait for it" : std::string());
            note_refill(lane);
            added = true;
            continue;
        }
        Lane &lane = *it->second;
        if (lane.removed()) {
            spdlog::info("connection '{}' is configured again: its queued tasks go on", name);
            // Its credentials may be new: no stale token, no back-off from old failures.
            if (auto &auth = lane.auth(); !auth.refreshing) auth = Lane::AuthState{};
        }
        lane.set_removed(false);
        http_.configure(conn->config);
        lane.set_connection(std::move(conn), now);
        share_limit(name, lane);
        note_refill(lane);
        scheduler_.ready(&lane);
    }
    if (added) size_windows();
}

void Dispatcher::note_refill(Lane &lane) {
    auto &s = lane.schedule_state();
    if (s.refill_listed || lane.wanted() == 0) return;
    s.refill_listed = true;
    refill_.push_back(&lane);
}

void Dispatcher::adopt_from_earlier_run(model::Task &t, const model::ConnectionRuntime &conn) const {
    if (t.id > last_id_at_start_ || t.send != model::SendState::Unsent) return;
    if (t.action == RECSYNC_ACTION_UPSERT || (t.action == RECSYNC_ACTION_CREATE && conn.create_retry_of(t.object) != model::CreateRetry::Find))
        t.send = model::SendState::SentUnmarked;
}

void Dispatcher::refill(TimePoint now) {
    if (refill_.empty() || now < refill_retry_at_) return;
    size_t done = 0, folded = 0;
    std::vector<Lane *> again;  // still short after their read (it folded into what they held)
    auto it = refill_.begin();
    for (; it != refill_.end() && done < kRefillsPerTurn; ++it, ++done) {
        Lane &lane = **it;
        const size_t n = lane.removed() ? 0 : lane.wanted();
        if (n == 0) {
            lane.schedule_state().refill_listed = false;
            continue;
        }
        std::vector<model::Task> tasks;
        try {
            tasks = log_.read(lane.connection().config.name, lane.loaded_upto(), n);
        } catch (const std::exception &e) {
            // Kept in the list: the next read is in a second.
            spdlog::error("connection '{}': cannot read its queued tasks from the task log: {}; trying again in 1 s", lane.connection().config.name, e.what());
            refill_retry_at_ = now + std::chrono::seconds(1);
            break;
        }
        for (auto &t : tasks) adopt_from_earlier_run(t, lane.connection());
        const bool all = tasks.size() < n;
        folded += lane.loaded(std::move(tasks), all, now);
        note_unlinked(lane);
        lane.schedule_state().refill_listed = false;
        if (lane.wanted() > 0) again.push_back(&lane);
        scheduler_.ready(&lane);
    }
    refill_.erase(refill_.begin(), it);
    for (Lane *lane : again) note_refill(*lane);
    metrics_.tasks_coalesced.fetch_add(folded, std::memory_order_relaxed);
}

void Dispatcher::run() {
    while (true) {
        take_inbox();
        auto now = SteadyClock::now();
        refill(now);
        read_links();
        if (stopping_ && (in_flight_.empty() || now >= drain_deadline_)) break;
        record_results_if_due(now);
        if (now >= next_oldest_at_) {
            next_oldest_at_ = now + std::chrono::seconds(1);
            for (auto &[name, lane] : lanes_) lane->note_oldest();
        }
        auto wake = now + std::chrono::milliseconds(200);
        if (!stopping_) start_calls(now, wake);
        // Results not yet due, or due (like marks still waiting) while ingest held the
        // database: look again then, or in a millisecond.
        constexpr auto kSoon = std::chrono::milliseconds(1);
        note_unrecorded(now);
        if (!unrecorded_.empty()) wake = std::min(wake, std::max({now + kSoon, unrecorded_since_ + kResultsDelay, record_retry_at_}));
        if (!awaiting_mark_.empty()) wake = std::min(wake, now + kSoon);
        if (!refill_.empty()) wake = std::min(wake, std::max(now, refill_retry_at_));
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
                token_answered(f.lane->auth(), *f.connection, o, SteadyClock::now(), lanes_mutex_);
                scheduler_.ready(f.lane);  // with a token (or a retry time) it can go on
                continue;
            }
            answered(std::move(f), std::move(o), polled);
        }
        // Once every answer of this round is off the in-flight counts: a lane's count then
        // holds only calls its server may not have counted when it answered (those it
        // counted later are covered by their own, lower, reports).
        const auto after = SteadyClock::now();
        for (size_t i = first_new; i < unrecorded_.size(); ++i) apply_flow_control(*unrecorded_[i].lane, unrecorded_[i], after);
        // Reads handed to the inbound sink this round are answers like any (their rate
        // reports, a success that climbs back after a throttle).
        for (const Completion *c : inbound_this_round_) apply_flow_control(*c->lane, *c, after);
        inbound_this_round_.clear();
        record_results_if_due(after);
    }
    record_results(true);
}

void Dispatcher::note_answer(Lane &lane, const InFlight &f, TimePoint at) {
    lane.stats().answer.observe_ms(std::chrono::duration_cast<std::chrono::milliseconds>(at - f.started).count());
    if (!lane.note_answer(at - f.started, at)) return;
    const int growth = lane.in_flight_target() - lane.connection().config.max_in_flight;
    int &reported = lane_growth_[&lane];
    growth_ += growth - reported;
    reported = growth;
    const auto base = static_cast<int64_t>(options_.max_calls_in_flight);
    limit_.set_max(static_cast<size_t>(std::clamp<int64_t>(base + growth_, base, static_cast<int64_t>(options_.max_calls_in_flight_ceiling))));
    metrics_.calls_in_flight_limit.store(limit_.current());
}

Dispatcher::Completion Dispatcher::completion_of(const InFlight &f, InFlight::Member &&m) {
    Completion c;
    c.lane = f.lane;
    c.record_id = std::move(m.record_id);
    c.action = f.action;
    c.in_doubt = m.in_doubt;
    c.send_before = m.send_before;
    c.payload_hash = m.payload_hash;
    return c;
}

void Dispatcher::answered(InFlight &&f, HttpOutcome &&o, TimePoint at) {
    if (!f.batch.empty()) return answered_batch(std::move(f), std::move(o), at);
    Completion c = completion_of(f, {std::move(f.record_id), f.external_id, f.in_doubt, f.send_before, f.payload_hash});
    const auto &task = f.lane->head(c.record_id);
    // The task stays at its record's head until its result is recorded (complete()).
    log::ScopedLogContext log_context(f.connection->config.name, task.record_key, {}, task.attempts + 1);
    const plugin::CallInput in{f.action, task.object, task.record_key, f.external_id, task.payload, f.access_token};
    c.verdict = judge(*f.connection, in, o);
    if (o.lost_conflict) {
        // System A's database holds a later change than this one (not captured when this
        // was sent): resolved as a conflict the plan would have found had it known.
        spdlog::info("connection '{}': {} '{}': {} ({})", f.connection->config.name, task.object, task.record_key, o.body,
                     config::conflict_policy_text(static_cast<config::ConflictPolicy>(task.conflict)));
        c.verdict = {};
        c.verdict.kind = RECSYNC_RESULT_OK;
        c.verdict.reason = o.body;
        c.skip = Skip::Conflict;
    }
    if (c.verdict.token_refused) token_refused(f.lane->auth(), f.access_token);
    c.call = std::move(o.call);
    c.response_body = truncate(std::move(o.body));
    f.lane->end_call(c.record_id, at);
    note_answer(*f.lane, f, at);
    scheduler_.ready(f.lane);  // its call slot is free now, before the result is recorded
    if (f.action == RECSYNC_ACTION_READ && c.verdict.kind == RECSYNC_RESULT_OK && inbound_sink_) return hand_inbound(std::move(c), *f.connection);
    unrecorded_.push_back(std::move(c));
}

void Dispatcher::answered_batch(InFlight &&f, HttpOutcome &&o, TimePoint at) {
    std::vector<plugin::CallInput> inputs;
    inputs.reserve(f.batch.size());
    for (const auto &m : f.batch) {
        const auto &task = f.lane->head(m.record_id);
        inputs.push_back({f.action, task.object, task.record_key, m.external_id, task.payload, f.access_token});
    }
    auto verdicts = judge_batch(*f.connection, inputs, o);
    if (verdicts.front().token_refused) token_refused(f.lane->auth(), f.access_token);
    for (size_t i = 0; i < f.batch.size(); ++i) {
        Completion c = completion_of(f, std::move(f.batch[i]));
        c.verdict = std::move(verdicts[i]);
        c.flow = i == 0;
        if (c.verdict.kind != RECSYNC_RESULT_OK) {
            // A dead letter shows the call it rode in.
            metrics_.batch_record_failures.fetch_add(1, std::memory_order_relaxed);
            c.call = o.call;
            c.response_body = truncate(o.body);
        }
        f.lane->end_call(c.record_id, at);  // the first's slot; nothing for the others
        if (f.action == RECSYNC_ACTION_READ && c.verdict.kind == RECSYNC_RESULT_OK && inbound_sink_) hand_inbound(std::move(c), *f.connection);
        else unrecorded_.push_back(std::move(c));
    }
    note_answer(*f.lane, f, at);  // one call
    scheduler_.ready(f.lane);
}

void Dispatcher::hand_inbound(Completion &&c, const model::ConnectionRuntime &conn) {
    if (c.verdict.record.empty()) {
        c.verdict.kind = RECSYNC_RESULT_FAIL;
        c.verdict.reason = conn.config.provider + " answered the read without the record (a provider of ABI 1.3 or later sets it)";
        unrecorded_.push_back(std::move(c));
        return;
    }
    const uint64_t n = next_inbound_++;
    const model::Task &task = c.lane->head(c.record_id);
    const ReadRecord record{c.verdict.external_id, std::move(c.verdict.record), c.verdict.modified};
    c.verdict.record.clear();
    // Node-based: the pointer stays valid until take_inbound_outcomes erases it, a turn later.
    inbound_this_round_.push_back(&awaiting_inbound_.emplace(n, std::move(c)).first->second);
    // `done` may run at once (a refusal), on this thread: it only queues the outcome.
    inbound_sink_(conn, task, record, [this, n](InboundOutcome o) {
        bool was_empty;
        {
            std::lock_guard l(inbox_mutex_);
            was_empty = inbound_outcomes_.empty();
            inbound_outcomes_.emplace_back(n, std::move(o));
        }
        if (was_empty) http_.wakeup();
    });
}

void Dispatcher::take_inbound_outcomes() {
    std::vector<std::pair<uint64_t, InboundOutcome>> outcomes;
    {
        std::lock_guard l(inbox_mutex_);
        outcomes.swap(inbound_outcomes_);
    }
    for (auto &[n, o] : outcomes) {
        auto it = awaiting_inbound_.find(n);
        if (it == awaiting_inbound_.end()) continue;
        Completion c = std::move(it->second);
        awaiting_inbound_.erase(it);
        if (o.kind != RECSYNC_RESULT_OK) {
            c.verdict.kind = o.kind;
            c.verdict.status = 0;
            c.verdict.reason = "the record read could not be accepted: " + o.reason;
            // A full backlog is flow control, not this record's failure: no attempt used.
            if (o.retry_after_ms > 0) {
                c.verdict.status = 429;
                c.verdict.retry_after_ms = o.retry_after_ms;
            }
        }
        unrecorded_.push_back(std::move(c));
    }
}

void Dispatcher::start_marked() {
    for (auto &a : awaiting_mark_) {
        a.lane->head(a.record_id).send = model::SendState::Sent;
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
        c.verdict.kind = RECSYNC_RESULT_RETRY;
        c.verdict.reason = std::string("state database: ") + e.what();
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
    if (!complete(batch, wait)) {
        // Kept for the next try, with what complete() added meanwhile (marks that failed).
        std::move(unrecorded_.begin(), unrecorded_.end(), std::back_inserter(batch));
        unrecorded_ = std::move(batch);
    }
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
        const auto hold = can_call && lane.connection().batches() ? batch_hold_until(lane, now) : now;
        if (hold > now) lane_wake = std::min(lane_wake, hold);
        else if (can_call && lane.connection().batches()) more = start_some(lane, now, budget, lane_wake, [&](model::Task &t) { begin_batch(lane, t, now); });
        else if (can_call) more = start_some(lane, now, budget, lane_wake, [&](model::Task &t) { begin(lane, t, unrecorded_); });
        else lane_wake = std::min(lane_wake, lane.next_retry());
        if (more) scheduler_.ready(&lane);  // round robin: the rest on its next turn
        if (lane_wake != TimePoint::max()) scheduler_.wake_at(&lane, lane_wake);
        const auto paused = lane.paused_until(now);
        // Held only by calls in flight (TimePoint::max()) is not a pause: an answer ends it.
        const bool timed = paused > now && paused != TimePoint::max();
        lane.stats().paused_until_ms.store(timed ? util::epoch_ms() + std::chrono::duration_cast<std::chrono::milliseconds>(paused - now).count() : 0);
        lane.stats().server_remaining.store(lane.quota().remaining(now));
    }
    record_results_if_due(now);  // the marks of the creates begun, and tasks that ended before being sent
    // Lanes still in the ring go on at once, after the network has been polled; at the cap
    // they wait for a call to complete (the poll returns on that).
    capped = capped || in_flight_.size() >= limit;
    if (capped && scheduler_.has_ready()) limit_.note_capped();  // lanes wait for a slot
    wake = scheduler_.has_ready() && !capped ? now : std::min(wake, scheduler_.next_timer());
}

bool Dispatcher::ensure_token(Lane &lane, TimePoint now, TimePoint &wake) {
    auto need = token_need(lane.auth(), lane.connection(), now, wake, lanes_mutex_);
    if (need.request) {
        HttpCall call = std::move(*need.request);
        call.tag = next_tag_++;
        InFlight f;
        f.lane = &lane;
        f.connection = lane.connection_ptr();
        f.auth = true;
        in_flight_.emplace(call.tag, std::move(f));
        http_.start(std::move(call));
    }
    return need.usable;
}

void Dispatcher::begin(Lane &lane, model::Task &task, std::vector<Completion> &immediate) {
    log::ScopedLogContext log_context(lane.connection().config.name, task.record_key, {}, task.attempts + 1);
    if (auto p = plan_task(lane, task, immediate)) send_single(lane, std::move(*p));
}

std::optional<Dispatcher::Planned> Dispatcher::plan_task(Lane &lane, model::Task &task, std::vector<Completion> &immediate) {
    const auto &conn = lane.connection();
    Completion early;
    early.lane = &lane;
    early.record_id = task.record_id();
    // Decided without a call (nothing to do, no id to act on, the state database failed):
    // the slot is free again and the verdict is recorded with the rest.
    auto end_early = [&](recsync_result_kind kind, std::string reason) -> std::optional<Planned> {
        early.verdict.kind = kind;
        early.verdict.reason = std::move(reason);
        lane.cancel_call(early.record_id);
        immediate.push_back(std::move(early));
        return std::nullopt;
    };
    auto &link = lane.link(early.record_id);
    if (!link) {
        try {
            link = state_.link({task.connection, task.object, task.record_key});
        } catch (const std::exception &e) {
            return end_early(RECSYNC_RESULT_RETRY, std::string("state database: ") + e.what());
        }
    }
    if (task.action == RECSYNC_ACTION_READ && !link->linked() && lane.creating(task.object) > 0 &&
        util::epoch_ms() - task.created_ms < kFirstSightingMaxWaitMs && !model::read_target(task.payload).empty()) {
        // A record the CRM names for the first time while a create of ours there is not
        // yet recorded may be that record: read it once those are done (their ids are then
        // known, and its change is keyed by System A's record, its echo recognised).
        lane.cancel_call(early.record_id);
        lane.retry_at(early.record_id, SteadyClock::now() + kFirstSightingRecheck, SteadyClock::now());
        return std::nullopt;
    }
    // System A's own service or database: records there are named by our key.
    const bool to_system_a = conn.system_a;
    if (task.conflict) {
        // A two-way task: the side it goes to may have changed the record meanwhile.
        std::optional<model::SideChange> there;
        try {
            there = state_.side_change(task.record_key, to_system_a ? "internal" : task.connection);
        } catch (const std::exception &e) {
            return end_early(RECSYNC_RESULT_RETRY, std::string("state database: ") + e.what());
        }
        if (auto why = conflict_loss(task, there, to_system_a); !why.empty()) {
            spdlog::info("connection '{}': {} '{}': {} ({}); not written", conn.config.name, task.object, task.record_key, why,
                         config::conflict_policy_text(static_cast<config::ConflictPolicy>(task.conflict)));
            early.skip = Skip::Conflict;
            return end_early(RECSYNC_RESULT_OK, std::move(why));
        }
    }
    Planned p;
    p.task = &task;
    p.record_id = early.record_id;
    p.create_retry = conn.create_retry_of(task.object);
    p.payload_hash = early.payload_hash = model::payload_hash(task.payload);
    p.plan = plan_call(task, *link, p.create_retry, p.payload_hash, to_system_a);
    if (p.plan.kind == CallPlan::Kind::Skip) {
        early.skip = p.plan.skip;
        return end_early(RECSYNC_RESULT_OK, p.plan.reason);
    }
    if (p.plan.kind == CallPlan::Kind::Fail) return end_early(RECSYNC_RESULT_FAIL, p.plan.reason);
    return p;
}

bool Dispatcher::note_sending(Lane &lane, const Planned &p, recsync_action sent) {
    model::Task &task = *p.task;
    if (!makes_record(task.action) || !makes_record(sent)) return false;
    // From now on the record may exist there, whatever becomes of this call. After a FIND
    // the task was marked before it (if its own doubt led there) or the link still says
    // the record may exist (if that did): either way the doubt survives a crash.
    if (task.send == model::SendState::Absent) task.send = model::SendState::Sent;
    if (task.send != model::SendState::Unsent) return false;
    // Retried by a FIND: the mark must be durable before the call goes out.
    if (sent == RECSYNC_ACTION_CREATE && p.create_retry == model::CreateRetry::Find) return true;
    // An upsert retry is right whether or not this create went out, so the call does not
    // wait for its mark: that goes with the next results (lazy_marks_), and a task from an
    // earlier run is in doubt anyway (adopt_from_earlier_run). The mark matters if the
    // object's retry becomes a FIND before it is done.
    if (sent == RECSYNC_ACTION_CREATE && p.create_retry == model::CreateRetry::Upsert) lazy_marks_.push_back(task.id);
    task.send = model::SendState::SentUnmarked;
    (void)lane;
    return false;
}

void Dispatcher::send_single(Lane &lane, Planned &&p) {
    auto conn_ptr = lane.connection_ptr();
    const auto &conn = *conn_ptr;
    model::Task &task = *p.task;
    recsync_action action = p.plan.action;
    HttpCall call;
    auto build = [&](recsync_action a) {
        const plugin::CallInput in{a, task.object, task.record_key, p.plan.external_id, task.payload, lane.access_token()};
        call = connection_call(conn.provider->build_request(in), conn.config, lane.base_url());
    };
    try {
        try {
            build(action);
        } catch (const std::exception &e) {
            if (!p.plan.in_doubt) throw;
            // E.g. this record's payload lacks the key property: the best left is the create.
            spdlog::warn("connection '{}': create of {} '{}' may already have been made, but cannot be sent as {} ({}): sent again as a create, "
                         "which may make a duplicate",
                         conn.config.name, task.object, task.record_key, model::action_text(action), e.what());
            action = RECSYNC_ACTION_CREATE;
            build(action);
        }
    } catch (const std::exception &e) {
        // The plugin refused to build it.
        Completion c;
        c.lane = &lane;
        c.record_id = p.record_id;
        c.payload_hash = p.payload_hash;
        c.verdict.kind = RECSYNC_RESULT_FAIL;
        c.verdict.reason = e.what();
        lane.cancel_call(p.record_id);
        unrecorded_.push_back(std::move(c));
        return;
    }
    call.tag = next_tag_++;
    call.send_once = action == RECSYNC_ACTION_CREATE;
    if (conn.system_a) call.lose_to_changes_since_ms = loses_to_system_a_changes_since_ms(task);
    InFlight f{&lane, std::move(conn_ptr), p.record_id, p.plan.external_id, lane.access_token(), false, action, p.plan.in_doubt, task.send, p.payload_hash, {}, SteadyClock::now()};
    in_flight_.emplace(call.tag, std::move(f));
    metrics_.http_calls.fetch_add(1, std::memory_order_relaxed);
    if (note_sending(lane, p, action)) {
        awaiting_mark_.push_back({std::move(call), &lane, p.record_id, task.id});
        return;
    }
    http_.start(std::move(call));
}

TimePoint Dispatcher::batch_hold_until(Lane &lane, TimePoint now) {
    const int wait_ms = lane.connection().config.batch.max_wait_ms;
    // With a token to spare after this call, what is ready goes now: a wait would only add
    // latency. Short of tokens, a part-full batch would spend the last one on few records.
    if (wait_ms <= 0 || !lane.below_concurrency_cap() || !lane.has_ready() || lane.spare_tokens(now) >= 2.0) return now;
    const model::Task &next = lane.next_ready();
    if (lane.ready_size() >= static_cast<size_t>(lane.connection().batch_size_of(next.object, next.action))) return now;
    return std::max(now, lane.ready_since() + std::chrono::milliseconds(wait_ms));
}

size_t Dispatcher::batch_size_for(const Lane &lane, const Planned &p) const {
    const recsync_action a = p.plan.action;
    // A create retried by a FIND waits for its durable mark before it goes: alone.
    if (a == RECSYNC_ACTION_CREATE && p.create_retry == model::CreateRetry::Find && p.task->send == model::SendState::Unsent) return 1;
    if (a == RECSYNC_ACTION_FIND || lane.solo(p.record_id)) return 1;
    return static_cast<size_t>(lane.connection().batch_size_of(p.task->object, a));
}

void Dispatcher::begin_batch(Lane &lane, model::Task &first, TimePoint now) {
    log::ScopedLogContext log_context(lane.connection().config.name);  // a batch has many records
    auto p = plan_task(lane, first, unrecorded_);
    if (!p) return;
    const size_t size = batch_size_for(lane, *p);
    if (size <= 1) return send_single(lane, std::move(*p));
    std::vector<Planned> group;
    group.push_back(std::move(*p));
    std::vector<std::string> put_back;
    // Ready records only: a batch never waits to fill while this lane has nothing else to
    // send (what is ready now goes now; the rest goes in the next call).
    for (size_t looked = 0; group.size() < size && looked < 2 * size && lane.has_ready(); ++looked) {
        model::Task &t = lane.start_next(false);
        auto q = plan_task(lane, t, unrecorded_);
        if (!q) continue;  // ended without a call
        if (q->plan.action == group.front().plan.action && t.object == group.front().task->object && batch_size_for(lane, *q) > 1) group.push_back(std::move(*q));
        else put_back.push_back(q->record_id);
    }
    for (const auto &id : put_back) lane.again_at(id, now, now);
    if (group.size() == 1) return send_single(lane, std::move(group.front()));
    send_batch(lane, std::move(group), now);
}

void Dispatcher::send_batch(Lane &lane, std::vector<Planned> &&group, TimePoint now) {
    auto conn_ptr = lane.connection_ptr();
    const auto &conn = *conn_ptr;
    const recsync_action action = group.front().plan.action;
    std::vector<plugin::CallInput> inputs;
    inputs.reserve(group.size());
    for (const auto &p : group) inputs.push_back({action, p.task->object, p.task->record_key, p.plan.external_id, p.task->payload, lane.access_token()});
    HttpCall call;
    try {
        call = connection_call(conn.provider->build_batch_request(inputs), conn.config, lane.base_url());
    } catch (const std::exception &e) {
        // Each goes alone, where the plugin's own refusal (or an in-doubt create's
        // fallback) is that record's.
        spdlog::warn("connection '{}': {} batch of {} {} could not be built ({}): each goes alone", conn.config.name, model::action_text(action), group.size(),
                     group.front().task->object, e.what());
        lane.cancel_call(group.front().record_id);
        for (const auto &p : group) {
            lane.set_solo(p.record_id);
            lane.again_at(p.record_id, now, now);
        }
        scheduler_.ready(&lane);
        return;
    }
    call.tag = next_tag_++;
    call.send_once = action == RECSYNC_ACTION_CREATE;
    const auto &first = group.front();
    InFlight f{&lane, std::move(conn_ptr), first.record_id, first.plan.external_id, lane.access_token(), false, action, first.plan.in_doubt, first.task->send,
               first.payload_hash, {}, SteadyClock::now()};
    f.batch.reserve(group.size());
    for (const auto &p : group) {
        f.batch.push_back({p.record_id, p.plan.external_id, p.plan.in_doubt, p.task->send, p.payload_hash});
        [[maybe_unused]] const bool must_wait = note_sending(lane, p, action);
        assert(!must_wait);  // batch_size_for keeps such creates alone
    }
    in_flight_.emplace(call.tag, std::move(f));
    metrics_.http_calls.fetch_add(1, std::memory_order_relaxed);
    metrics_.batch_calls.fetch_add(1, std::memory_order_relaxed);
    metrics_.batched_records.fetch_add(group.size(), std::memory_order_relaxed);
    http_.start(std::move(call));
}

bool Dispatcher::complete(std::vector<Completion> &batch, bool wait) {
    const auto now = SteadyClock::now();
    if (now < record_retry_at_ && !stopping_) return false;  // the last commit failed: not yet
    const int64_t epoch = util::epoch_ms();
    // What becomes of each task, once the commit succeeds.
    enum class Then : uint8_t { Finish, Retry, Again };
    struct After {
        Then then = Then::Finish;
        TimePoint at;
        std::optional<model::LinkState> link;  // the record's state to cache
        bool forget_link = false;  // the store's may be newer than the lane's: read it again
        Fate fate;
    };
    std::vector<After> after(batch.size());
    store::DeliveryBatch out;
    std::vector<int64_t> finishing;
    for (size_t i = 0; i < batch.size(); ++i) {
        auto &c = batch[i];
        auto &a = after[i];
        auto &task = c.lane->head(c.record_id);
        const auto &conn = c.lane->connection().config;
        const auto &cached = c.lane->link(c.record_id);
        const model::LinkState known = cached.value_or(model::LinkState{});
        const model::LinkKey key{task.connection, task.object, task.record_key};
        if (c.action == RECSYNC_ACTION_READ && c.verdict.kind == RECSYNC_RESULT_FAIL && c.verdict.status == 404) {
            // Gone there since it was announced (its deletion is announced too): nothing to
            // hydrate, and no dead letter; the link there becomes a tombstone.
            c.skip = Skip::NotSynced;
            c.verdict.kind = RECSYNC_RESULT_OK;
            c.verdict.reason = "gone there (its read found no record)";
        }
        auto write_link = [&](model::LinkState s) {
            if (cached && s == *cached) return;
            out.links.push_back({key, s, !s.external_id.empty() && s.external_id != known.external_id});
            a.link = std::move(s);
        };
        auto finish = [&] {
            out.finished.push_back(task.id);
            out.finished.insert(out.finished.end(), task.absorbed.begin(), task.absorbed.end());
            finishing.push_back(task.id);
        };
        if (c.skip != Skip::None) {
            write_link(state_after_skip(known, task, c.skip));
            finish();
            continue;
        }
        if (c.verdict.split) {
            // Its batch was refused as a whole: it goes again alone, as the same attempt.
            a.then = Then::Again;
            a.at = now;
            continue;
        }
        if (c.action == RECSYNC_ACTION_FIND && c.verdict.kind == RECSYNC_RESULT_OK) {
            // Found (its id is ours now: the create goes as an update) or absent (it goes
            // as a create); either way at once, as the same attempt.
            write_link(state_after_success(known, task, RECSYNC_ACTION_FIND, c.verdict.external_id, c.payload_hash));
            a.then = Then::Again;
            a.at = now;
            continue;
        }
        a.fate = decide(task, c.verdict, conn.retry, conn.name, epoch, rng_);
        if (a.fate.kind == Fate::Kind::Dead && c.verdict.status == 404 && c.action == RECSYNC_ACTION_UPDATE &&
            (task.action == RECSYNC_ACTION_CREATE || task.action == RECSYNC_ACTION_UPSERT)) {
            // A create (or upsert) of a record recsync had linked, whose update found it
            // gone: the intent is a record there, so it is made again (at once, not a retry).
            auto s = known;
            s.external_id.clear();
            s.written_hash = 0;
            write_link(std::move(s));
            a.then = Then::Again;
            a.at = now;
            continue;
        }
        switch (a.fate.kind) {
            case Fate::Kind::Done: {
                if (c.action == RECSYNC_ACTION_READ) {
                    // A read changes nothing there. Its record's commit may have linked it
                    // meanwhile (a record first seen there): the next task reads the store.
                    a.forget_link = true;
                    finish();
                    break;
                }
                auto s = state_after_success(known, task, c.action, c.verdict.external_id, c.payload_hash);
                // The stamp of our own write there: its echo will carry it.
                if (c.action == RECSYNC_ACTION_DELETE) s.written_modified.clear();
                else s.written_modified = c.verdict.modified;
                write_link(std::move(s));
                finish();
                break;
            }
            case Fate::Kind::Retry:
                out.retries.push_back({task.id, a.fate.attempts, epoch + a.fate.delay_ms, a.fate.reason});
                a.then = Then::Retry;
                a.at = now + std::chrono::milliseconds(a.fate.delay_ms);
                break;
            case Fate::Kind::Dead: {
                store::DeadLetter dl;
                dl.task = task;
                dl.task.absorbed.clear();
                dl.task.attempts = task.attempts + 1;
                dl.request = c.call.method.empty() ? std::string() : describe_request(c.call);
                dl.response_status = c.verdict.status;
                dl.response_body = c.response_body;
                dl.reason = a.fate.reason;
                dl.failed_ms = epoch;
                out.dead_letters.push_back(std::move(dl));
                // A refusal with a reason (a 4xx) says the record was not made; giving up
                // on transient errors says nothing.
                const bool definite = c.verdict.kind == RECSYNC_RESULT_FAIL && c.verdict.status != 0;
                if (auto s = state_after_dead_letter(known, task, definite)) write_link(std::move(*s));
                finish();
                break;
            }
        }
    }
    // The creates begun meanwhile get their marks in the same transaction: one commit per
    // round, not two (bench/run e2e). Crash-safe like the results: a kill -9 cannot lose
    // the mark of a call that went out (a power cut could; the create then goes out as a
    // plain create again). A task finishing in this batch needs none.
    std::sort(finishing.begin(), finishing.end());
    for (const auto &m : awaiting_mark_) out.sent_marks.push_back(m.task_id);
    for (const int64_t id : lazy_marks_)
        if (!std::binary_search(finishing.begin(), finishing.end(), id)) out.sent_marks.push_back(id);
    try {
        if (!deliveries_.record(out, wait)) return false;
    } catch (const std::exception &e) {
        // Nothing was recorded. The verdicts are kept and recorded later (making the calls
        // again instead would duplicate a create whose success is only unrecorded); their
        // records wait meanwhile. The calls waiting for their marks are not sent: tried
        // again like any failed attempt.
        fail_marked(e);
        record_retry_at_ = now + std::chrono::seconds(1);
        spdlog::error("cannot record {} delivery result(s) in the state database: {}; trying again in 1 s", batch.size(), e.what());
        return false;
    }
    record_retry_at_ = {};
    lazy_marks_.clear();
    // At exit the marked calls are not started: nobody would read their answers (the
    // marks put them in doubt for the next start).
    if (stopping_) awaiting_mark_.clear();
    else start_marked();
    for (size_t i = 0; i < batch.size(); ++i) {
        auto &c = batch[i];
        auto &a = after[i];
        auto &lane = *c.lane;
        auto &task = lane.head(c.record_id);
        // Views of what outlives this turn (lane.finish() below ends the task).
        log::ScopedLogContext log_context(lane.connection().config.name, key_of(c.record_id), {}, task.attempts + 1);
        if (a.link) lane.link(c.record_id) = std::move(a.link);
        if (a.forget_link) lane.link(c.record_id).reset();
        if (c.skip != Skip::None) {
            spdlog::debug("connection '{}': {} {} needs no call: {}", task.connection, model::action_text(task.action), task.record_key, c.verdict.reason);
            auto &counter = c.skip == Skip::Unchanged ? lane.stats().unchanged : lane.stats().skipped;
            counter.fetch_add(1, std::memory_order_relaxed);
            switch (c.skip) {
                case Skip::Unchanged: metrics_.tasks_unchanged.fetch_add(1, std::memory_order_relaxed); break;
                case Skip::Stale: metrics_.tasks_stale.fetch_add(1, std::memory_order_relaxed); break;
                case Skip::AfterDelete: metrics_.tasks_after_delete.fetch_add(1, std::memory_order_relaxed); break;
                case Skip::NotSynced: metrics_.tasks_not_synced.fetch_add(1, std::memory_order_relaxed); break;
                case Skip::Conflict:
                    metrics_.tasks_conflict.fetch_add(1, std::memory_order_relaxed);
                    metrics_.conflicts.fetch_add(1, std::memory_order_relaxed);
                    break;
                case Skip::None: break;
            }
            lane.finish(c.record_id, now);
            note_refill(lane);
            continue;
        }
        if (a.then == Then::Again) {
            if (c.verdict.split) {
                // Its send state stays as the batch left it: a create in it may have been
                // made (a refusal of a whole batch proves nothing of each record).
                lane.set_solo(c.record_id);
                spdlog::info("connection '{}': {} of {} '{}' goes alone: its batch was refused as a whole: {}", task.connection, model::action_text(c.action),
                             task.object, task.record_key, c.verdict.reason);
            } else if (c.action == RECSYNC_ACTION_FIND) {
                task.send = c.verdict.external_id.empty() ? model::SendState::Absent : task.send;
                spdlog::info("connection '{}': create of {} '{}' may already have been made: {}", task.connection, task.object, task.record_key,
                             c.verdict.external_id.empty() ? std::string("not found there, creating it") : "found as id " + c.verdict.external_id + ", updating it");
            } else {
                // A 404 is the CRM's word that the id is gone, not proof that no record of
                // ours is there (a merge, a lagging replica): made again as in doubt, so an
                // object with an upsert or a lookup cannot get a second one.
                task.send = model::SendState::SentUnmarked;
                spdlog::info("connection '{}': {} '{}' is gone there (404 on its update): making it again", task.connection, task.object, task.record_key);
            }
            lane.again_at(c.record_id, a.at, now);
            continue;
        }
        if (a.then == Then::Retry) {
            // Refused for its rate, the create was not made: no need to look for it. Only a
            // 429 proves that: a 503 may come from a gateway after the CRM made it.
            if (c.verdict.status == 429 && c.action == RECSYNC_ACTION_CREATE && !c.in_doubt) task.send = c.send_before;
            task.attempts = a.fate.attempts;
            spdlog::debug("connection '{}': {} {} retry #{}: {}", task.connection, model::action_text(task.action), task.record_key, task.attempts, a.fate.reason);
            lane.stats().retried.fetch_add(1, std::memory_order_relaxed);
            lane.stats().note_error(a.fate.reason, util::epoch_ms());
            metrics_.tasks_retried.fetch_add(1, std::memory_order_relaxed);
            lane.retry_at(c.record_id, a.at, now);
            note_refill(lane);  // a record waiting for its retry leaves room in the window
            continue;
        }
        if (a.fate.kind == Fate::Kind::Done) {
            spdlog::debug("connection '{}': {} {} ok{}", task.connection, model::action_text(c.action), task.record_key,
                          c.verdict.external_id.empty() ? "" : " id=" + c.verdict.external_id);
            lane.stats().succeeded.fetch_add(1, std::memory_order_relaxed);
            if (c.skip == Skip::None) lane.stats().delivery.observe_ms(util::epoch_ms() - task.created_ms);
            metrics_.tasks_succeeded.fetch_add(1, std::memory_order_relaxed);
        } else {
            spdlog::warn("connection '{}': {} {} dead-lettered: {}", task.connection, model::action_text(task.action), task.record_key, a.fate.reason);
            lane.stats().dead_lettered.fetch_add(1, std::memory_order_relaxed);
            lane.stats().note_error(a.fate.reason, util::epoch_ms());
            metrics_.tasks_dead_lettered.fetch_add(1, std::memory_order_relaxed);
        }
        lane.finish(c.record_id, now);
        note_refill(lane);
    }
    for (const auto &c : batch) scheduler_.ready(c.lane);  // the record's next task may be queued
    return true;
}

void Dispatcher::apply_flow_control(Lane &lane, const Completion &c, TimePoint now) {
    // The server's reports first, with this call already off the lane's in-flight count:
    // the calls still counted are those the server may not have counted yet.
    if (!c.flow) return;  // a batch's other records: its first paced the lane
    const auto &v = c.verdict;
    for (const auto &r : v.rate_limits) lane.on_rate_limit(r, now);
    if (!v.rate_limits.empty() && spdlog::should_log(spdlog::level::debug)) {
        if (const auto until = lane.quota().blocked_until(now); until == TimePoint::max())
            spdlog::debug("connection '{}': the server's rate limit is used up until a call in flight is answered", lane.connection().config.name);
        else if (until > now)
            spdlog::debug("connection '{}': the server's rate limit is used up; lane paused for {} ms", lane.connection().config.name,
                          std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count());
    }
    if (c.skip != Skip::None) return;  // no call was made
    if (v.kind == RECSYNC_RESULT_OK) lane.on_success(now);
    if (!v.throttled()) return;
    lane.on_throttled(now);
    lane.stats().throttled.fetch_add(1, std::memory_order_relaxed);
    if (v.retry_after_ms > 0) {
        lane.stats().throttled_ms.fetch_add(v.retry_after_ms, std::memory_order_relaxed);
        // The server told us to slow down: pause the whole lane, not just this record.
        lane.bucket().pause_until(now + std::chrono::milliseconds(v.retry_after_ms));
        if (auto *shared = lane.shared()) shared->pause_all(v.retry_after_ms);  // every instance waits too
        spdlog::info("connection '{}': HTTP {} with Retry-After {} ms: lane paused, rate now {:.2f}/s", lane.connection().config.name, v.status, v.retry_after_ms,
                     lane.bucket().rate());
    }
}

std::vector<model::LaneStatus> Dispatcher::status() const {
    std::lock_guard l(lanes_mutex_);
    std::vector<model::LaneStatus> out;
    out.reserve(lanes_.size());
    for (const auto &[name, lane] : lanes_) {
        auto &s = const_cast<Lane &>(*lane).stats();
        model::LaneStatus st;
        st.connection = name;
        st.provider = lane->connection().config.provider;
        st.queued = lane->queued().load(std::memory_order_relaxed);
        st.in_memory = s.in_memory.load();
        st.in_flight = s.in_flight.load();
        st.in_flight_target = s.in_flight_target.load();
        st.answer_ms = s.answer_ms.load();
        st.paused_until_ms = s.paused_until_ms.load();
        st.server_remaining = s.server_remaining.load();
        st.rate_per_second = lane->connection().rate_per_second;
        st.current_rate_per_second = s.current_rate.load();  // lowered by throttling (AIMD)
        st.succeeded = s.succeeded.load();
        st.retried = s.retried.load();
        st.dead_lettered = s.dead_lettered.load();
        st.unchanged = s.unchanged.load();
        st.skipped = s.skipped.load();
        st.throttled = s.throttled.load();
        st.throttled_ms = s.throttled_ms.load();
        if (const auto oldest = s.oldest_created_ms.load(); oldest > 0 && st.queued > 0) st.oldest_age_ms = std::max<int64_t>(0, util::epoch_ms() - oldest);
        st.delivery = s.delivery.snapshot();
        st.answer = s.answer.snapshot();
        std::tie(st.last_error, st.last_error_ms) = s.error();
        st.auth_error = const_cast<Lane &>(*lane).auth().last_error;
        st.removed = lane->removed();
        out.push_back(std::move(st));
    }
    return out;
}

}  // namespace recsync::dispatch
