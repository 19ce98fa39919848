/* The SQLite backend's satisfaction ratings and report scans: a rating is
 * a conditional update of the conversation's row (asked for, not yet
 * given), a report a walk of the index of service conversations by their
 * opening. Both are rare next to messages: their statements are prepared
 * per call rather than kept. */
#include "sb_sqlite_int.h"

#include <string.h>

#include "sb_error.h"

/* Runs sql (no rows wanted) with conv_id as ?1 and now_ms as ?2, and says
 * how many rows it changed. */
static int update_conv(sb_sqlite *s, const char *sql, uint64_t conv_id,
                       int64_t now_ms, int *changed)
{
    sqlite3_stmt *st;
    int rc = sb__sqlite_prepare(s, sql, strlen(sql), &st);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    sqlite3_bind_int64(st, 2, now_ms);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : SB_E_STORE;
    sqlite3_finalize(st);
    *changed = sqlite3_changes(s->db);
    return rc;
}

int sb__sqlite_csat_ask(sb_store *base, uint64_t conv_id, int64_t now_ms,
                        bool *asked)
{
    sb_sqlite *s = sb__sqlite(base);
    int changed;
    int rc = update_conv(s,
                         "UPDATE convs SET csat_asked_ts = ?2"
                         " WHERE conv_id = ?1 AND kind = 2 AND csat_rating = 0",
                         conv_id, now_ms, &changed);
    if (rc) return rc;
    *asked = changed > 0;
    if (changed) return 0;
    uint64_t last_seq;
    bool member;
    return sb__sqlite_conv_member(s, conv_id, "", &last_seq, &member);
}

int sb__sqlite_csat_set(sb_store *base, uint64_t conv_id, uint32_t rating,
                        const char *comment, int64_t now_ms)
{
    sb_sqlite *s = sb__sqlite(base);
    static const char SQL[] =
        "UPDATE convs SET csat_rating = ?3, csat_comment = ?4, csat_ts = ?2"
        " WHERE conv_id = ?1 AND csat_asked_ts <> 0 AND csat_rating = 0";
    sqlite3_stmt *st;
    int rc = sb__sqlite_prepare(s, SQL, sizeof SQL - 1, &st);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    sqlite3_bind_int64(st, 2, now_ms);
    sqlite3_bind_int(st, 3, (int)rating);
    sb__sqlite_bind_str(st, 4, comment);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : SB_E_STORE;
    sqlite3_finalize(st);
    if (rc || sqlite3_changes(s->db) > 0) return rc;
    /* Nothing changed: say why. */
    static const char WHY[] =
        "SELECT csat_rating, csat_asked_ts FROM convs WHERE conv_id = ?1";
    if ((rc = sb__sqlite_prepare(s, WHY, sizeof WHY - 1, &st))) return rc;
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    int step = sqlite3_step(st);
    rc = step == SQLITE_DONE                ? SB_E_NOT_FOUND
         : step != SQLITE_ROW               ? SB_E_STORE
         : sqlite3_column_int64(st, 0) != 0 ? SB_E_ALREADY
                                            : SB_E_STATE;
    sqlite3_finalize(st);
    return rc;
}

static const char *col_str(sqlite3_stmt *st, int i)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    return t ? t : "";
}

int sb__sqlite_report_scan(sb_store *base, int64_t from_ms, int64_t to_ms,
                           const char *desk, const char *group,
                           const char *agent,
                           int (*each)(void *ud, const sb_store_report_row *r),
                           void *ud)
{
    sb_sqlite *s = sb__sqlite(base);
    /* kind = 2 as a literal: the partial index convs_report applies. */
    static const char SQL[] =
        "SELECT conv_id, desk, grp, last_agent, created_ts, queued_ts,"
        " assigned_ts, first_response_ts, closed_ts, csat_asked_ts,"
        " csat_rating FROM convs INDEXED BY convs_report"
        " WHERE kind = 2 AND created_ts >= ?1 AND created_ts < ?2"
        " AND (?3 = '' OR desk = ?3) AND (?4 = '' OR grp = ?4)"
        " AND (?5 = '' OR last_agent = ?5)"
        " ORDER BY created_ts, conv_id";
    bool own;
    int rc = sb__sqlite_read_begin(s, &own);
    if (rc) return rc;
    sqlite3_stmt *st;
    if ((rc = sb__sqlite_prepare(s, SQL, sizeof SQL - 1, &st))) {
        sb__sqlite_read_end(s, own);
        return rc;
    }
    sqlite3_bind_int64(st, 1, from_ms);
    sqlite3_bind_int64(st, 2, to_ms);
    sb__sqlite_bind_str(st, 3, desk);
    sb__sqlite_bind_str(st, 4, group);
    sb__sqlite_bind_str(st, 5, agent);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        sb_store_report_row r = {
            .conv_id = (uint64_t)sqlite3_column_int64(st, 0),
            .desk = col_str(st, 1),
            .group = col_str(st, 2),
            .agent = col_str(st, 3),
            .created_ts = sqlite3_column_int64(st, 4),
            .queued_ts = sqlite3_column_int64(st, 5),
            .assigned_ts = sqlite3_column_int64(st, 6),
            .first_response_ts = sqlite3_column_int64(st, 7),
            .closed_ts = sqlite3_column_int64(st, 8),
            .csat_asked_ts = sqlite3_column_int64(st, 9),
            .csat_rating = (uint32_t)sqlite3_column_int(st, 10),
        };
        if ((rc = each(ud, &r))) break;
    }
    if (!rc && step != SQLITE_DONE) rc = SB_E_STORE;
    sqlite3_finalize(st);
    sb__sqlite_read_end(s, own);
    return rc;
}
