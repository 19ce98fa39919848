/* The PostgreSQL backend's satisfaction ratings and report scans (as
 * sb_sqlite_report.c): a rating is a conditional update of the
 * conversation's row; a report reads the index of service conversations
 * by their opening in pages of REPORT_PAGE rows, all in one snapshot, so
 * that no result holds the whole span. Statements are made per call. */
#include "sb_pg_int.h"

#include <stdlib.h>
#include <string.h>

#include "sb_error.h"

#define REPORT_PAGE 5000
#define STR_(x) #x
#define STR(x) STR_(x)

int sb__pg_csat_ask(sb_store *base, uint64_t conv_id, int64_t now_ms,
                    bool *asked)
{
    sb_pg *s = sb__pg(base);
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    sb__pg_int(&p, now_ms);
    PGresult *r;
    int rc = sb__pg_exec_sql(s,
                             "UPDATE convs SET csat_asked_ts = $2::bigint"
                             " WHERE conv_id = $1::bigint AND kind = 2"
                             " AND csat_rating = 0",
                             &p, &r);
    if (rc) return rc;
    *asked = strcmp(PQcmdTuples(r), "0") != 0;
    PQclear(r);
    if (*asked) return 0;
    uint64_t last_seq;
    bool member;
    return sb__pg_conv_member(s, conv_id, "", &last_seq, &member);
}

int sb__pg_csat_set(sb_store *base, uint64_t conv_id, uint32_t rating,
                    const char *comment, int64_t now_ms)
{
    sb_pg *s = sb__pg(base);
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    sb__pg_int(&p, now_ms);
    sb__pg_int(&p, rating);
    sb__pg_str(&p, comment);
    PGresult *r;
    int rc = sb__pg_exec_sql(
        s,
        "UPDATE convs SET csat_rating = $3::int, csat_comment = $4::text,"
        " csat_ts = $2::bigint WHERE conv_id = $1::bigint"
        " AND csat_asked_ts <> 0 AND csat_rating = 0",
        &p, &r);
    if (rc) return rc;
    bool changed = strcmp(PQcmdTuples(r), "0") != 0;
    PQclear(r);
    if (changed) return 0;
    /* Nothing changed: say why. */
    p = (sb_pg_params){0};
    sb__pg_u64(&p, conv_id);
    if ((rc = sb__pg_exec_sql(s,
                              "SELECT csat_rating FROM convs"
                              " WHERE conv_id = $1::bigint",
                              &p, &r)))
        return rc;
    rc = PQntuples(r) == 0         ? SB_E_NOT_FOUND
         : sb__pg_get_i64(r, 0, 0) ? SB_E_ALREADY
                                   : SB_E_STATE;
    PQclear(r);
    return rc;
}

int sb__pg_report_scan(sb_store *base, int64_t from_ms, int64_t to_ms,
                       const char *desk, const char *group, const char *agent,
                       int (*each)(void *ud, const sb_store_report_row *r),
                       void *ud)
{
    sb_pg *s = sb__pg(base);
    /* kind = 2 as a literal: the partial index convs_report applies; a
     * page starts after the last (created_ts, conv_id) of the one before. */
    static const char SQL[] =
        "SELECT conv_id, desk, grp, last_agent, created_ts, queued_ts,"
        " assigned_ts, first_response_ts, closed_ts, csat_asked_ts,"
        " csat_rating FROM convs"
        " WHERE kind = 2 AND (created_ts, conv_id) > ($1::bigint, $2::bigint)"
        " AND created_ts < $3::bigint AND ($4::text = '' OR desk = $4)"
        " AND ($5::text = '' OR grp = $5) AND ($6::text = '' OR last_agent = "
        "$6)"
        " ORDER BY created_ts, conv_id LIMIT " STR(REPORT_PAGE);
    bool own;
    int rc = sb__pg_read_begin(s, &own);
    if (rc) return rc;
    /* The first page starts after (from_ms, 0): created_ts = from_ms is in
     * it, every conv_id being above 0. */
    int64_t after_ts = from_ms;
    uint64_t after_id = 0;
    for (;;) {
        sb_pg_params p = {0};
        sb__pg_int(&p, after_ts);
        sb__pg_u64(&p, after_id);
        sb__pg_int(&p, to_ms);
        sb__pg_str(&p, desk);
        sb__pg_str(&p, group);
        sb__pg_str(&p, agent);
        PGresult *r;
        if ((rc = sb__pg_exec_sql(s, SQL, &p, &r))) break;
        int n = PQntuples(r);
        for (int i = 0; rc == 0 && i < n; i++) {
            sb_store_report_row row = {
                .conv_id = (uint64_t)sb__pg_get_i64(r, i, 0),
                .desk = PQgetvalue(r, i, 1),
                .group = PQgetvalue(r, i, 2),
                .agent = PQgetvalue(r, i, 3),
                .created_ts = sb__pg_get_i64(r, i, 4),
                .queued_ts = sb__pg_get_i64(r, i, 5),
                .assigned_ts = sb__pg_get_i64(r, i, 6),
                .first_response_ts = sb__pg_get_i64(r, i, 7),
                .closed_ts = sb__pg_get_i64(r, i, 8),
                .csat_asked_ts = sb__pg_get_i64(r, i, 9),
                .csat_rating = (uint32_t)sb__pg_get_i64(r, i, 10),
            };
            after_ts = row.created_ts;
            after_id = row.conv_id;
            rc = each(ud, &row);
        }
        PQclear(r);
        if (rc || n < REPORT_PAGE) break;
    }
    sb__pg_read_end(s, own);
    return rc;
}
