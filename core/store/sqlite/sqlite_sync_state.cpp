#include "store/sqlite/sqlite_sync_state.hpp"

namespace recsync::store::sqlite {

model::LinkState SqliteSyncState::link(const model::LinkKey &k) {
    auto l = reader_.lock();
    return read(k);
}

std::vector<model::LinkState> SqliteSyncState::links(const std::vector<model::LinkKey> &keys) {
    std::vector<model::LinkState> out;
    out.reserve(keys.size());
    // One read transaction for all of them: read one by one, they were a tenth of the
    // dispatcher's time (bench/run e2e).
    reader_.read_transaction([&] {
        for (const auto &k : keys) out.push_back(read(k));
    });
    return out;
}

std::optional<model::SideChange> SqliteSyncState::side_change(const std::string &record_key, const std::string &side) {
    auto l = reader_.lock();
    auto st = reader_.prepare("SELECT changed_seq, changed_ms FROM record_changes WHERE record_key = ? AND side = ?");
    st.bind(1, record_key).bind(2, side);
    if (!st.step()) return std::nullopt;
    return model::SideChange{st.column_int(0), st.column_int(1)};
}

model::LinkState SqliteSyncState::read(const model::LinkKey &k) {
    auto st = reader_.prepare(
        "SELECT external_id, written_hash, applied_seq, order_kind, order_value, deleted, maybe_exists, written_modified FROM links"
        " WHERE record_key = ? AND connection = ? AND object = ?");
    st.bind(1, k.record_key).bind(2, k.connection).bind(3, k.object);
    model::LinkState s;
    if (!st.step()) return s;
    s.external_id = st.column_text(0);
    s.written_hash = static_cast<uint64_t>(st.column_int(1));
    s.applied_seq = st.column_int(2);
    const auto kind = st.column_int(3);
    s.applied_order.kind = kind == model::Order::Version || kind == model::Order::Time ? static_cast<model::Order::Kind>(kind) : model::Order::None;
    s.applied_order.value = st.column_int(4);
    s.deleted = st.column_int(5) != 0;
    s.maybe_exists = st.column_int(6) != 0;
    s.written_modified = st.column_text(7);
    return s;
}

}  // namespace recsync::store::sqlite
