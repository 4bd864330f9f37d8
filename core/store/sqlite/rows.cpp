#include "store/sqlite/rows.hpp"

namespace recsync::store::sqlite {

void bind_task_columns(Statement &st, int i, const model::Task &t) {
    st.bind(i, t.connection).bind(i + 1, t.object).bind(i + 2, t.record_key).bind(i + 3, static_cast<int64_t>(t.action)).bind(i + 4, t.payload);
    st.bind(i + 5, static_cast<int64_t>(t.attempts)).bind(i + 6, t.created_ms).bind(i + 7, int64_t{t.send == model::SendState::Sent || t.send == model::SendState::Absent});
    st.bind(i + 8, static_cast<int64_t>(t.change)).bind(i + 9, static_cast<int64_t>(t.order.kind)).bind(i + 10, t.order.value);
    if (t.seq) st.bind(i + 11, t.seq);
    else st.bind_null(i + 11);
    st.bind(i + 12, static_cast<int64_t>(t.conflict));
}

void read_task_columns(const Statement &st, int i, model::Task &t) {
    t.connection = st.column_text(i);
    t.object = st.column_text(i + 1);
    t.record_key = st.column_text(i + 2);
    t.action = static_cast<recsync_action>(st.column_int(i + 3));
    t.payload = st.column_text(i + 4);
    t.attempts = static_cast<int>(st.column_int(i + 5));
    t.created_ms = st.column_int(i + 6);
    // Written as 1 for any task whose call may have gone out (a dead letter of a create
    // sent without its mark committed yet keeps its doubt); in the task log the mark is
    // written before a call whose object is retried by a FIND goes out, and after it for
    // the others: either way, a marked task may have gone out.
    t.send = st.column_int(i + 7) ? model::SendState::Sent : model::SendState::Unsent;
    const auto change = st.column_int(i + 8);
    t.change = change >= 0 && change <= 3 ? static_cast<model::Change>(change) : model::Change::Unknown;
    const auto kind = st.column_int(i + 9);
    t.order.kind = kind == model::Order::Version || kind == model::Order::Time ? static_cast<model::Order::Kind>(kind) : model::Order::None;
    t.order.value = st.column_int(i + 10);
    t.seq = st.column_is_null(i + 11) ? 0 : st.column_int(i + 11);
    const auto conflict = st.column_int(i + 12);
    t.conflict = conflict >= 0 && conflict <= 3 ? static_cast<uint8_t>(conflict) : 0;
}

}  // namespace recsync::store::sqlite
