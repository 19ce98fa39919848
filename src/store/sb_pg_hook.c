/* The PostgreSQL backend's webhook outbox and erasure of a user's data
 * (sb_store.h). Gateways sharing the database claim events with SKIP
 * LOCKED, so that each event goes out through one of them at a time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_pg_int.h"

#define HOOK_COLS                                                              \
    "id, event, endpoint, subject, payload, state, attempts, next_ts,"         \
    " created_ts, last_error"

static void col_copy(const PGresult *r, int row, int col, char *dst, size_t cap)
{
    snprintf(dst, cap, "%s", PQgetvalue(r, row, col));
}

/* The rows of r (selecting HOOK_COLS) into *out. */
static int hooks_read(const PGresult *r, sb_store_hook **out, size_t *n)
{
    int rows = PQntuples(r);
    *out = NULL;
    *n = 0;
    if (rows == 0) return 0;
    sb_store_hook *h = calloc((size_t)rows, sizeof *h);
    if (!h) return -ENOMEM;
    for (int i = 0; i < rows; i++) {
        h[i].id = sb__pg_get_i64(r, i, 0);
        col_copy(r, i, 1, h[i].event, sizeof h[i].event);
        col_copy(r, i, 2, h[i].endpoint, sizeof h[i].endpoint);
        col_copy(r, i, 3, h[i].subject, sizeof h[i].subject);
        if (!(h[i].payload = strdup(PQgetvalue(r, i, 4)))) {
            sb_store_hooks_free(h, (size_t)i);
            return -ENOMEM;
        }
        h[i].state = (sb_hook_state)sb__pg_get_i64(r, i, 5);
        h[i].attempts = (uint32_t)sb__pg_get_i64(r, i, 6);
        h[i].next_ts = sb__pg_get_i64(r, i, 7);
        h[i].created_ts = sb__pg_get_i64(r, i, 8);
        col_copy(r, i, 9, h[i].last_error, sizeof h[i].last_error);
    }
    *out = h;
    *n = (size_t)rows;
    return 0;
}

int sb__pg_outbox_add(sb_store *base, const char *event, const char *endpoint,
                      const char *subject, const char *payload, int64_t now_ms)
{
    sb_pg_params p = {0};
    sb__pg_str(&p, event);
    sb__pg_str(&p, endpoint);
    sb__pg_str(&p, subject);
    sb__pg_str(&p, payload);
    sb__pg_int(&p, now_ms);
    return sb__pg_exec_sql(sb__pg(base),
                           "INSERT INTO webhook_outbox(event, endpoint,"
                           " subject, payload, next_ts, created_ts)"
                           " VALUES($1, $2, $3, $4, $5, $5)",
                           &p, NULL);
}

int sb__pg_outbox_claim(sb_store *base, int64_t now_ms, int64_t lease_ms,
                        uint32_t limit, sb_store_hook **out, size_t *n)
{
    sb_pg_params p = {0};
    sb__pg_int(&p, now_ms);
    sb__pg_int(&p, now_ms + lease_ms);
    sb__pg_int(&p, limit);
    PGresult *r;
    int rc = sb__pg_exec_sql(
        sb__pg(base),
        "UPDATE webhook_outbox SET next_ts = $2 WHERE id IN"
        " (SELECT id FROM webhook_outbox WHERE state = 0 AND next_ts <= $1"
        " ORDER BY next_ts, id LIMIT $3 FOR UPDATE SKIP LOCKED)"
        " RETURNING " HOOK_COLS,
        &p, &r);
    if (rc) return rc;
    rc = hooks_read(r, out, n);
    PQclear(r);
    return rc;
}

int sb__pg_outbox_result(sb_store *base, int64_t id, bool delivered,
                         bool give_up, uint32_t attempts, int64_t next_ts,
                         const char *error)
{
    sb_pg_params p = {0};
    sb__pg_int(&p, id);
    if (!delivered) {
        sb__pg_int(&p, give_up ? SB_HOOK_FAILED : SB_HOOK_PENDING);
        sb__pg_int(&p, attempts);
        sb__pg_int(&p, next_ts);
        sb__pg_str(&p, error);
    }
    PGresult *r;
    int rc =
        sb__pg_exec_sql(sb__pg(base),
                        delivered ? "DELETE FROM webhook_outbox WHERE id = $1"
                                  : "UPDATE webhook_outbox SET state = $2,"
                                    " attempts = $3, next_ts = $4,"
                                    " last_error = $5 WHERE id = $1",
                        &p, &r);
    if (rc) return rc;
    if (strcmp(PQcmdTuples(r), "0") == 0) rc = SB_E_NOT_FOUND;
    PQclear(r);
    return rc;
}

int sb__pg_outbox_failed(sb_store *base, uint32_t limit, sb_store_hook **out,
                         size_t *n)
{
    sb_pg *s = sb__pg(base);
    sb_pg_params p = {0};
    sb__pg_int(&p, limit);
    bool own;
    int rc = sb__pg_read_begin(s, &own);
    if (rc) return rc;
    PGresult *r;
    rc = sb__pg_exec_sql(s,
                         "SELECT " HOOK_COLS " FROM webhook_outbox"
                         " WHERE state = 2 ORDER BY id LIMIT $1",
                         &p, &r);
    if (rc == 0) {
        rc = hooks_read(r, out, n);
        PQclear(r);
    }
    sb__pg_read_end(s, own);
    return rc;
}

/* Runs sql with p; *changes (if set) gets the rows it changed. */
static int run_count(sb_pg *s, const char *sql, const sb_pg_params *p,
                     uint64_t *changes)
{
    PGresult *r;
    int rc = sb__pg_exec_sql(s, sql, p, &r);
    if (rc) return rc;
    if (changes) *changes = strtoull(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return 0;
}

int sb__pg_outbox_replay(sb_store *base, int64_t id, int64_t now_ms,
                         uint64_t *n)
{
    sb_pg_params p = {0};
    sb__pg_int(&p, id);
    sb__pg_int(&p, now_ms);
    return run_count(sb__pg(base),
                     "UPDATE webhook_outbox SET state = 0, attempts = 0,"
                     " next_ts = $2, last_error = '' WHERE state = 2 AND"
                     " ($1 = 0 OR id = $1)",
                     &p, n);
}

int sb__pg_user_erase(sb_store *base, const char *user_id, sb_store_erased *out)
{
    sb_pg *s = sb__pg(base);
    sb_pg_params p = {0};
    sb__pg_str(&p, user_id);
    /* The trigram index follows the bodies by itself. */
    int rc = run_count(s,
                       "UPDATE messages SET body = '', extra = NULL"
                       " WHERE sender = $1 AND (body <> '' OR extra IS NOT"
                       " NULL)",
                       &p, &out->messages);
    if (!rc)
        rc = run_count(s,
                       "DELETE FROM media_refs WHERE media_id IN"
                       " (SELECT media_id FROM media WHERE owner = $1)",
                       &p, NULL);
    if (!rc)
        rc = run_count(s, "DELETE FROM media WHERE owner = $1", &p,
                       &out->uploads);
    if (!rc)
        rc = run_count(s, "DELETE FROM device_cursors WHERE user_id = $1", &p,
                       &out->cursors);
    if (!rc)
        rc = run_count(s, "DELETE FROM webhook_outbox WHERE subject = $1", &p,
                       &out->outbox_events);
    if (!rc)
        rc = run_count(s,
                       "UPDATE convs SET csat_comment = ''"
                       " WHERE customer = $1 AND csat_comment <> ''",
                       &p, &out->csat_comments);
    if (!rc)
        rc = run_count(s, "DELETE FROM contacts WHERE user_id = $1", &p,
                       &out->contacts);
    return rc;
}
