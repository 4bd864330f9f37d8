#include "store/sqlite/sqlite_task_log.hpp"

#include "config/config.hpp"
#include "store/sqlite/sqlite_delivery_log.hpp"

#include "store/sqlite/rows.hpp"
#include "util/clock.hpp"

#include <spdlog/spdlog.h>
#include <xxhash.h>

#include <algorithm>
#include <climits>
#include <stdexcept>

namespace recsync::store::sqlite {

SqliteTaskLog::SqliteTaskLog(SqliteDb &writer, SqliteDb &reader, SqliteDb &intake_reader, Options options)
    : db_(writer), reader_(reader), intake_reader_(intake_reader), options_(options) {
    committer_ = std::thread([this] { commit_loop(); });
}

SqliteTaskLog::~SqliteTaskLog() {
    {
        std::lock_guard lock(group_mutex_);
        stopping_ = true;
    }
    group_ready_.notify_one();
    committer_.join();
}

void SqliteTaskLog::append(AppendBatch batch, Done done) {
    {
        std::lock_guard lock(group_mutex_);
        if (group_.empty()) group_since_ = std::chrono::steady_clock::now();
        group_.push_back({std::move(batch), std::move(done), {}});
        ++appended_;
    }
    group_ready_.notify_one();
}

void SqliteTaskLog::flush() {
    if (CommitCallbackScope::active()) throw std::logic_error("TaskLog::flush called from a commit callback: it would wait for itself");
    std::unique_lock lock(group_mutex_);
    const uint64_t target = appended_;
    group_done_.wait(lock, [&] { return finished_ >= target; });
}

void SqliteTaskLog::commit_loop() {
    std::unique_lock lock(group_mutex_);
    for (;;) {
        group_ready_.wait(lock, [&] { return stopping_ || !group_.empty(); });
        if (group_.empty()) return;  // stopping, nothing left
        // Let others join this commit until its first append has waited the window (work
        // that piled up during the last commit may have waited that long already).
        if (const auto deadline = group_since_ + options_.commit_window; !stopping_ && std::chrono::steady_clock::now() < deadline) {
            lock.unlock();
            std::this_thread::sleep_until(deadline);
            lock.lock();
        }
        std::vector<Pending> group;
        group.swap(group_);
        lock.unlock();
        try {
            const int64_t now = util::epoch_ms();
            db_.transaction([&] { write(group, now); });
        } catch (...) {
            const auto error = std::current_exception();
            for (auto &p : group) {
                p.result = Appended{};  // rolled back: nothing of it stored
                p.result.error = error;
            }
        }
        {
            CommitCallbackScope scope;
            for (auto &p : group) {
                try {
                    p.done(std::move(p.result));
                } catch (const std::exception &e) {
                    spdlog::error("after a commit of queued tasks: {}", e.what());
                }
            }
        }
        lock.lock();
        finished_ += group.size();
        group_done_.notify_all();
    }
}

void SqliteTaskLog::write(std::vector<Pending> &group, int64_t now) {
    size_t ids_seen = 0;
    for (auto &p : group) {
        auto &r = p.result;
        for (auto &c : p.batch.changes) {
            if (!c.event_id.empty()) {
                ++ids_seen;
                if (!first_sighting(c.source, c.event_id, now)) {
                    ++r.duplicates;
                    spdlog::debug("{} '{}' from {}: event {} seen before", c.entity, c.record_key, c.source, c.event_id);
                    continue;
                }
            }
            if (c.order.kind != model::Order::None && !in_order(c)) {
                ++r.stale;
                spdlog::debug("{} '{}' from {}: stale (order {})", c.entity, c.record_key, c.source, c.order.value);
                continue;
            }
            if (!c.external_id.empty() && !link_inbound(c, now, r.changed_links)) {
                ++r.echoes;
                spdlog::debug("{} '{}' from {}: an echo (stamp {})", c.entity, c.record_key, c.source, c.modified);
                continue;
            }
            if (c.conflict && !c.deletes && !c.external_id.empty() && !inbound_stands(c, now, r.changed_links)) {
                ++r.conflicts;
                continue;
            }
            if (c.data_hash && !c.echo_connections.empty() && !system_a_change(c, r.changed_links)) {
                ++r.echoes;
                continue;
            }
            if (c.from_system_a || c.source == "internal") {
                r.conflicts += resolve_internal(c, now);
                if (c.deletes) tombstone_system_a(c, r.changed_links);
            }
            for (auto &t : c.tasks) {
                if (t.from_dead_letter) {
                    db_.prepare("DELETE FROM dead_letters WHERE id = ?").bind(1, t.from_dead_letter).step();
                    if (db_.changes() == 0) {  // replayed or dropped meanwhile
                        ++r.replays_gone;
                        continue;
                    }
                }
                insert(t, now);
                if (t.conflict) note_incoming(t, c.source);
                r.tasks.push_back(std::move(t));
            }
        }
        if (const auto &cur = p.batch.cursor) {
            db_.prepare(
                   "INSERT INTO cursors(connection, object, value, updated_at) VALUES(?,?,?,?)"
                   " ON CONFLICT(connection, object) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at")
                .bind(1, cur->connection)
                .bind(2, cur->object)
                .bind(3, cur->value)
                .bind(4, now)
                .step();
        }
    }
    if (ids_seen) {
        // Expired ids leave as new ones come: at most twice as many per commit (plus a few),
        // so pruning keeps pace with any rate without a pass over the table.
        db_.prepare("DELETE FROM event_ids WHERE id_hash IN (SELECT id_hash FROM event_ids WHERE seen_at < ? ORDER BY seen_at LIMIT ?)")
            .bind(1, now - options_.event_id_retention_ms)
            .bind(2, static_cast<int64_t>(2 * ids_seen + 16))
            .step();
    }
}

namespace {

// 128 bits: among the 2 billion ids of a week at 3,500 events/s, a collision (an event
// wrongly taken for a repeat) has a chance of about 1e-20.
XXH128_canonical_t id_key(const std::string &source, const std::string &event_id) {
    thread_local std::string key_text;
    key_text.assign(source).append(1, '\x1f').append(event_id);
    XXH128_canonical_t key;
    XXH128_canonicalFromHash(&key, XXH3_128bits(key_text.data(), key_text.size()));
    return key;
}

// How far within the retention a sighting must be for known() to call it a repeat: the
// commit that follows must still see it (else the change would be acknowledged unplanned
// and then found new: lost).
constexpr int64_t kKnownMarginMs = 60'000;

}  // namespace

bool SqliteTaskLog::first_sighting(const std::string &source, const std::string &event_id, int64_t now) {
    const auto key = id_key(source, event_id);
    // An id seen before the retention is new again, whether or not pruning got to it yet.
    db_.prepare(
           "INSERT INTO event_ids(id_hash, seen_at) VALUES(?1, ?2) ON CONFLICT(id_hash) DO UPDATE SET seen_at = excluded.seen_at"
           " WHERE event_ids.seen_at < ?3")
        .bind_blob(1, key.digest, sizeof key.digest)
        .bind(2, now)
        .bind(3, now - options_.event_id_retention_ms)
        .step();
    return db_.changes() == 1;
}

// What recsync last wrote at a link stays "what is there" only until that side changes the
// record itself: then an update carrying the same payload is no longer "unchanged".
static void forget_written(SqliteDb &db, const std::string &key, const std::string &connection, const std::string &object,
                           std::vector<model::LinkKey> &changed) {
    db.prepare("UPDATE links SET written_hash = 0 WHERE record_key = ? AND connection = ? AND object = ? AND written_hash != 0")
        .bind(1, key)
        .bind(2, connection)
        .bind(3, object)
        .step();
    if (db.changes() > 0) changed.push_back({connection, object, key});
}

// The record is gone at that link: no id, nothing written, a tombstone. True if it was not one.
static bool tombstone_link(SqliteDb &db, const std::string &key, const std::string &connection, const std::string &object) {
    db.prepare("UPDATE links SET external_id = '', written_hash = 0, deleted = 1, maybe_exists = 0 WHERE record_key = ? AND connection = ? AND object = ?")
        .bind(1, key)
        .bind(2, connection)
        .bind(3, object)
        .step();
    return db.changes() > 0;
}

void SqliteTaskLog::tombstone_system_a(const PlannedChange &c, std::vector<model::LinkKey> &changed) {
    // Deleted in System A: a CRM change on its way there (sent before it heard of the
    // delete) does not make it again; only System A having it again does (system_a_change).
    for (const auto &conn : c.echo_connections) {
        std::vector<std::string> objects;
        auto st = db_.prepare("SELECT object FROM links WHERE record_key = ? AND connection = ? AND deleted = 0");
        st.bind(1, c.record_key).bind(2, conn);
        while (st.step()) objects.push_back(st.column_text(0));
        for (const auto &object : objects)
            if (tombstone_link(db_, c.record_key, conn, object)) changed.push_back({conn, object, c.record_key});
    }
}

bool SqliteTaskLog::system_a_change(const PlannedChange &c, std::vector<model::LinkKey> &changed) {
    std::vector<std::pair<std::string, std::string>> written;  // (connection, object) that hold a write of ours
    std::vector<std::pair<std::string, std::string>> revived;  // ... tombstoned by an earlier delete in System A
    for (const auto &conn : c.echo_connections) {
        auto st = db_.prepare("SELECT object, written_hash, deleted FROM links WHERE record_key = ? AND connection = ?");
        st.bind(1, c.record_key).bind(2, conn);
        while (st.step()) {
            if (static_cast<uint64_t>(st.column_int(1)) == c.data_hash) return false;
            if (st.column_int(1) != 0) written.emplace_back(conn, st.column_text(0));
            if (st.column_int(2) != 0) revived.emplace_back(conn, st.column_text(0));
        }
    }
    for (const auto &[conn, object] : written) forget_written(db_, c.record_key, conn, object, changed);
    for (const auto &[conn, object] : revived) {
        // System A has the record again (made anew after its delete): the CRM's changes
        // of it go there again.
        db_.prepare("UPDATE links SET deleted = 0 WHERE record_key = ? AND connection = ? AND object = ?").bind(1, c.record_key).bind(2, conn).bind(3, object).step();
        changed.push_back({conn, object, c.record_key});
    }
    return true;
}

bool SqliteTaskLog::link_inbound(PlannedChange &c, int64_t now, std::vector<model::LinkKey> &changed) {
    auto find = db_.prepare("SELECT record_key FROM external_ids WHERE connection = ? AND object = ? AND external_id = ?");
    find.bind(1, c.source).bind(2, c.entity).bind(3, c.external_id);
    const bool known = find.step();
    const std::string key = known ? find.column_text(0) : c.external_id;
    if (!c.modified.empty()) {
        auto st = db_.prepare("SELECT written_modified FROM links WHERE record_key = ? AND connection = ? AND object = ?");
        st.bind(1, key).bind(2, c.source).bind(3, c.entity);
        if (st.step() && st.column_text(0) == c.modified) return false;
    }
    bool writes = false, only_reads = !c.tasks.empty();
    for (auto &t : c.tasks) {
        t.record_key = key;
        if (t.action == RECSYNC_ACTION_READ) continue;  // a first sighting's read waits for our creates there (Dispatcher::begin)
        only_reads = false;
        writes = writes || t.action != RECSYNC_ACTION_DELETE;
    }
    c.record_key = key;
    if (!known && c.deletes) {
        // Never linked: nothing of it was written anywhere (a System A connection would
        // otherwise delete by key, and the key is only its id here).
        c.tasks.clear();
        return true;
    }
    if (known && c.deletes) {
        // A tombstone there already: recsync's own delete coming back, or the deletion
        // told again (by its webhook and by a poll of the archived records).
        auto st = db_.prepare("SELECT deleted FROM links WHERE record_key = ? AND connection = ? AND object = ?");
        st.bind(1, key).bind(2, c.source).bind(3, c.entity);
        if (st.step() && st.column_int(0) != 0) return false;
        // Deleted there: its link there is a tombstone, so that a stale change of System A
        // does not make it again (only a `created` does), as after a delete by recsync.
        if (tombstone_link(db_, key, c.source, c.entity)) changed.push_back({c.source, c.entity, key});
    } else if (known && !only_reads) {
        // A change made there (not our echo; a read only announces one): what we last
        // wrote there is not what it holds any more.
        forget_written(db_, key, c.source, c.entity, changed);
        if (writes) {
            // Made again there (restored): linked again.
            db_.prepare("UPDATE links SET external_id = ?, deleted = 0 WHERE record_key = ? AND connection = ? AND object = ? AND deleted = 1")
                .bind(1, c.external_id)
                .bind(2, key)
                .bind(3, c.source)
                .bind(4, c.entity)
                .step();
            if (db_.changes() > 0) changed.push_back({c.source, c.entity, key});
        }
    }
    if (!known && writes) {
        // Born there: linked to its id, so that System A's changes of it go back as updates.
        write_external_id(db_, c.source, c.entity, c.external_id, key);
        db_.prepare("INSERT INTO links(record_key, connection, object, external_id, updated_at) VALUES(?,?,?,?,?) ON CONFLICT DO NOTHING")
            .bind(1, key)
            .bind(2, c.source)
            .bind(3, c.entity)
            .bind(4, c.external_id)
            .bind(5, now)
            .step();
    }
    return true;
}

namespace {

// When a change happened at its source, for last-writer-wins: its occurred_at, else now.
int64_t change_time(const model::Order &order, int64_t now) { return order.kind == model::Order::Time ? order.value : now; }

}  // namespace

int64_t SqliteTaskLog::last_task_id() {
    auto st = db_.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'tasks'");
    return st.step() ? st.column_int(0) : 0;
}

void SqliteTaskLog::record_side_change(const std::string &key, const std::string &side, int64_t at_ms) {
    db_.prepare("INSERT INTO record_changes(record_key, side, changed_seq, changed_ms) VALUES(?,?,?,?)"
                " ON CONFLICT(record_key, side) DO UPDATE SET changed_seq = excluded.changed_seq, changed_ms = excluded.changed_ms")
        .bind(1, key)
        .bind(2, side)
        .bind(3, last_task_id())
        .bind(4, at_ms)
        .step();
}

void SqliteTaskLog::note_incoming(const model::Task &t, const std::string &source) {
    db_.prepare("INSERT INTO links(record_key, connection, object, updated_at, incoming_seq, incoming_ms, incoming_from) VALUES(?,?,?,?,?,?,?)"
                " ON CONFLICT(record_key, connection, object) DO UPDATE SET incoming_seq = excluded.incoming_seq, incoming_ms = excluded.incoming_ms,"
                " incoming_from = excluded.incoming_from")
        .bind(1, t.record_key)
        .bind(2, t.connection)
        .bind(3, t.object)
        .bind(4, t.created_ms)
        .bind(5, t.id)
        .bind(6, t.change_time_ms())
        .bind(7, source)
        .step();
}

std::optional<int64_t> SqliteTaskLog::pending_incoming(const std::string &key, const std::string &connection, const std::string *object, const std::string *from) {
    // The last two-way task toward the link, if it has not finished (it is still in the
    // task log: queued, or in flight), and its change's time.
    auto st = object ? db_.prepare("SELECT l.incoming_ms, l.incoming_from FROM links l JOIN tasks t ON t.id = l.incoming_seq"
                                   " WHERE l.record_key = ? AND l.connection = ? AND l.object = ? AND l.incoming_seq != 0")
                     : db_.prepare("SELECT l.incoming_ms, l.incoming_from FROM links l JOIN tasks t ON t.id = l.incoming_seq"
                                   " WHERE l.record_key = ? AND l.connection = ? AND l.incoming_seq != 0");
    st.bind(1, key).bind(2, connection);
    if (object) st.bind(3, *object);
    std::optional<int64_t> newest;
    while (st.step()) {
        if (from && st.column_text(1) != *from) continue;  // another pair's change
        newest = std::max(newest.value_or(INT64_MIN), st.column_int(0));
    }
    return newest;
}

bool SqliteTaskLog::inbound_stands(const PlannedChange &c, int64_t now, std::vector<model::LinkKey> &changed) {
    const auto policy = static_cast<config::ConflictPolicy>(c.conflict);
    const int64_t at = change_time(c.order, c.accepted_ms ? c.accepted_ms : now);
    if (const auto pending = pending_incoming(c.record_key, c.source, &c.entity, nullptr)) {
        // A change of System A is on its way there (not written yet): the two are
        // concurrent. Within one millisecond System A's wins (call_plan.cpp, conflict_loss).
        const bool loses = policy == config::ConflictPolicy::PreferInternal || (policy == config::ConflictPolicy::LastWriterWins && *pending >= at);
        const bool announces = std::all_of(c.tasks.begin(), c.tasks.end(), [](const model::Task &t) { return t.action == RECSYNC_ACTION_READ; });
        if (loses && announces) {
            // A webhook that only says the record changed: its read, on the lane System A's
            // write is on, comes after that write and finds what the CRM holds then (that
            // write's echo if it landed last, or an edit made after it, which then stands).
            return true;
        }
        if (loses) {
            spdlog::info("conflict on {} '{}': its change at connection '{}' (at {} ms) lost to System A's (at {} ms) under {}; System A's is written there",
                         c.entity, c.record_key, c.source, at, *pending, config::conflict_policy_text(policy));
            // It changed there all the same: System A's write must go out even if it
            // equals what recsync wrote there last.
            forget_written(db_, c.record_key, c.source, c.entity, changed);
            return false;
        }
        spdlog::info("conflict on {} '{}': its change at connection '{}' (at {} ms) won over System A's (at {} ms) under {}; System A's is not written there",
                     c.entity, c.record_key, c.source, at, *pending, config::conflict_policy_text(policy));
    }
    record_side_change(c.record_key, c.source, at);
    return true;
}

size_t SqliteTaskLog::resolve_internal(PlannedChange &c, int64_t now) {
    size_t lost = 0;
    bool two_way = false;
    const int64_t at = change_time(c.order, c.accepted_ms ? c.accepted_ms : now);
    for (auto it = c.tasks.begin(); it != c.tasks.end();) {
        if (!it->conflict || it->action == RECSYNC_ACTION_DELETE) {  // deletes stand
            ++it;
            continue;
        }
        two_way = true;
        // A change of this task's CRM on its way to System A (not another CRM's).
        std::optional<int64_t> pending;
        for (const auto &conn : c.echo_connections)
            if (const auto p = pending_incoming(c.record_key, conn, nullptr, &it->connection)) pending = std::max(pending.value_or(INT64_MIN), *p);
        const auto policy = static_cast<config::ConflictPolicy>(it->conflict);
        if (pending && (policy == config::ConflictPolicy::PreferExternal || (policy == config::ConflictPolicy::LastWriterWins && *pending > at))) {
            spdlog::info("conflict on {} '{}': System A's change (at {} ms) lost to the change at connection '{}' (at {} ms) under {}; that one is written to System A",
                         it->object, c.record_key, at, it->connection, *pending, config::conflict_policy_text(policy));
            ++lost;
            it = c.tasks.erase(it);
            continue;
        }
        ++it;
    }
    if (two_way) record_side_change(c.record_key, "internal", at);
    return lost;
}

bool SqliteTaskLog::in_order(const PlannedChange &c) {
    // Versions and occurrence times are kept apart: each is compared with its own kind only
    // (a sender that mixes them cannot push an older version in behind a time).
    auto st = c.order.kind == model::Order::Version
                  ? db_.prepare("INSERT INTO record_orders(record_key, source, entity, version) VALUES(?,?,?,?)"
                                " ON CONFLICT(record_key, source, entity) DO UPDATE SET version = excluded.version"
                                " WHERE record_orders.version IS NULL OR excluded.version >= record_orders.version")
                  : db_.prepare("INSERT INTO record_orders(record_key, source, entity, occurred_ms) VALUES(?,?,?,?)"
                                " ON CONFLICT(record_key, source, entity) DO UPDATE SET occurred_ms = excluded.occurred_ms"
                                " WHERE record_orders.occurred_ms IS NULL OR excluded.occurred_ms >= record_orders.occurred_ms");
    st.bind(1, c.record_key).bind(2, c.source).bind(3, c.entity).bind(4, c.order.value).step();
    return db_.changes() == 1;
}

std::vector<Known> SqliteTaskLog::known(const std::vector<PlannedChange> &changes) {
    std::vector<Known> out(changes.size(), Known::New);
    const int64_t repeat_after = util::epoch_ms() - options_.event_id_retention_ms + kKnownMarginMs;
    intake_reader_.read_transaction([&] {
        for (size_t i = 0; i < changes.size(); ++i) {
            const auto &c = changes[i];
            if (!c.event_id.empty()) {
                const auto key = id_key(c.source, c.event_id);
                auto st = intake_reader_.prepare("SELECT seen_at FROM event_ids WHERE id_hash = ?");
                st.bind_blob(1, key.digest, sizeof key.digest);
                if (st.step() && st.column_int(0) >= repeat_after) {
                    out[i] = Known::Duplicate;
                    continue;
                }
            }
            if (c.order.kind == model::Order::None) continue;
            auto st = intake_reader_.prepare("SELECT version, occurred_ms FROM record_orders WHERE record_key = ? AND source = ? AND entity = ?");
            st.bind(1, c.record_key).bind(2, c.source).bind(3, c.entity);
            if (!st.step()) continue;
            const int col = c.order.kind == model::Order::Version ? 0 : 1;
            if (!st.column_is_null(col) && c.order.value < st.column_int(col)) out[i] = Known::Stale;  // orders only move forward: the commit agrees
        }
    });
    return out;
}

void SqliteTaskLog::insert(model::Task &t, int64_t now) {
    if (!t.created_ms) t.created_ms = now;
    auto st = db_.prepare("INSERT INTO tasks(" RECSYNC_TASK_COLUMNS ", not_before) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    bind_task_columns(st, 1, t);
    st.bind(14, t.not_before_ms);
    st.step();
    t.id = db_.last_insert_id();
    t.from_dead_letter = 0;
}

std::vector<model::Task> SqliteTaskLog::read(const std::string &connection, int64_t after_id, size_t limit) {
    auto l = reader_.lock();
    auto st = reader_.prepare("SELECT id, not_before, " RECSYNC_TASK_COLUMNS " FROM tasks WHERE connection = ? AND id > ? ORDER BY id LIMIT ?");
    st.bind(1, connection).bind(2, after_id).bind(3, static_cast<int64_t>(limit));
    std::vector<model::Task> out;
    while (st.step()) {
        model::Task t;
        t.id = st.column_int(0);
        t.not_before_ms = st.column_int(1);
        read_task_columns(st, 2, t);
        out.push_back(std::move(t));
    }
    return out;
}

std::map<std::string, int64_t> SqliteTaskLog::count_by_connection() {
    auto l = reader_.lock();
    auto st = reader_.prepare("SELECT connection, COUNT(*) FROM tasks GROUP BY connection");
    std::map<std::string, int64_t> out;
    while (st.step()) out[st.column_text(0)] = st.column_int(1);
    return out;
}

int64_t SqliteTaskLog::count() {
    auto l = reader_.lock();
    auto st = reader_.prepare("SELECT COUNT(*) FROM tasks");
    st.step();
    return st.column_int(0);
}

int64_t SqliteTaskLog::last_id() {
    auto l = reader_.lock();
    // AUTOINCREMENT's high-water mark: the newest id ever given, finished or not.
    auto st = reader_.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'tasks'");
    return st.step() ? st.column_int(0) : 0;
}

}  // namespace recsync::store::sqlite
