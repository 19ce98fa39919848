/* The SQLite backend's webhook outbox and erasure of a user's data
 * (sb_store.h): statements prepared for each call, as neither runs on the
 * message path's hot loop but once per event or per admin's request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_sqlite_int.h"

#define HOOK_COLS                                                              \
    "id, event, endpoint, subject, payload, state, attempts, next_ts,"         \
    " created_ts, last_error"

static int prep(sb_sqlite *s, const char *sql, sqlite3_stmt **st)
{
    return sqlite3_prepare_v2(s->db, sql, -1, st, NULL) == SQLITE_OK
               ? 0
               : SB_E_STORE;
}

static void col_copy(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
    const char *t = (const char *)sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", t ? t : "");
}

/* The rows of st (selecting HOOK_COLS) into *out. */
static int hooks_read(sqlite3_stmt *st, sb_store_hook **out, size_t *n)
{
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            sb_store_hook *h = realloc(*out, cap * sizeof *h);
            if (!h) return -ENOMEM;
            *out = h;
        }
        sb_store_hook *h = &(*out)[*n];
        memset(h, 0, sizeof *h);
        h->id = sqlite3_column_int64(st, 0);
        col_copy(st, 1, h->event, sizeof h->event);
        col_copy(st, 2, h->endpoint, sizeof h->endpoint);
        col_copy(st, 3, h->subject, sizeof h->subject);
        const char *p = (const char *)sqlite3_column_text(st, 4);
        if (!(h->payload = strdup(p ? p : ""))) return -ENOMEM;
        (*n)++;
        h->state = (sb_hook_state)sqlite3_column_int(st, 5);
        h->attempts = (uint32_t)sqlite3_column_int64(st, 6);
        h->next_ts = sqlite3_column_int64(st, 7);
        h->created_ts = sqlite3_column_int64(st, 8);
        col_copy(st, 9, h->last_error, sizeof h->last_error);
    }
    return rc == SQLITE_DONE ? 0 : SB_E_STORE;
}

static int hooks_query(sb_sqlite *s, sqlite3_stmt *st, sb_store_hook **out,
                       size_t *n)
{
    (void)s;
    int rc = hooks_read(st, out, n);
    if (rc) {
        sb_store_hooks_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int sb__sqlite_outbox_add(sb_store *base, const char *event,
                          const char *endpoint, const char *subject,
                          const char *payload, int64_t now_ms)
{
    sb_sqlite *s = sb__sqlite(base);
    sqlite3_stmt *st;
    int rc = prep(s,
                  "INSERT INTO webhook_outbox(event, endpoint, subject,"
                  " payload, next_ts, created_ts) VALUES(?1, ?2, ?3, ?4, ?5,"
                  " ?5)",
                  &st);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, event, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, endpoint, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, subject, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, payload, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now_ms);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : SB_E_STORE;
    sqlite3_finalize(st);
    return rc;
}

int sb__sqlite_outbox_claim(sb_store *base, int64_t now_ms, int64_t lease_ms,
                            uint32_t limit, sb_store_hook **out, size_t *n)
{
    sb_sqlite *s = sb__sqlite(base);
    sqlite3_stmt *st;
    /* One writer: the rows read are the rows leased, in one transaction. */
    int rc = prep(s,
                  "UPDATE webhook_outbox SET next_ts = ?2 WHERE id IN"
                  " (SELECT id FROM webhook_outbox WHERE state = 0 AND"
                  " next_ts <= ?1 ORDER BY next_ts, id LIMIT ?3)"
                  " RETURNING " HOOK_COLS,
                  &st);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, now_ms + lease_ms);
    sqlite3_bind_int64(st, 3, limit);
    rc = hooks_query(s, st, out, n);
    sqlite3_finalize(st);
    return rc;
}

int sb__sqlite_outbox_result(sb_store *base, int64_t id, bool delivered,
                             bool give_up, uint32_t attempts, int64_t next_ts,
                             const char *error)
{
    sb_sqlite *s = sb__sqlite(base);
    sqlite3_stmt *st;
    int rc = prep(s,
                  delivered ? "DELETE FROM webhook_outbox WHERE id = ?1"
                            : "UPDATE webhook_outbox SET state = ?2,"
                              " attempts = ?3, next_ts = ?4, last_error = ?5"
                              " WHERE id = ?1",
                  &st);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, id);
    if (!delivered) {
        sqlite3_bind_int(st, 2, give_up ? SB_HOOK_FAILED : SB_HOOK_PENDING);
        sqlite3_bind_int64(st, 3, attempts);
        sqlite3_bind_int64(st, 4, next_ts);
        sqlite3_bind_text(st, 5, error, -1, SQLITE_STATIC);
    }
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : SB_E_STORE;
    if (rc == 0 && sqlite3_changes(s->db) == 0) rc = SB_E_NOT_FOUND;
    sqlite3_finalize(st);
    return rc;
}

int sb__sqlite_outbox_failed(sb_store *base, uint32_t limit,
                             sb_store_hook **out, size_t *n)
{
    sb_sqlite *s = sb__sqlite(base);
    sqlite3_stmt *st;
    int rc = prep(s,
                  "SELECT " HOOK_COLS " FROM webhook_outbox WHERE state = 2"
                  " ORDER BY id LIMIT ?1",
                  &st);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, limit);
    rc = hooks_query(s, st, out, n);
    sqlite3_finalize(st);
    return rc;
}

int sb__sqlite_outbox_replay(sb_store *base, int64_t id, int64_t now_ms,
                             uint64_t *n)
{
    sb_sqlite *s = sb__sqlite(base);
    sqlite3_stmt *st;
    int rc = prep(s,
                  "UPDATE webhook_outbox SET state = 0, attempts = 0,"
                  " next_ts = ?2, last_error = '' WHERE state = 2 AND"
                  " (?1 = 0 OR id = ?1)",
                  &st);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now_ms);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : SB_E_STORE;
    if (rc == 0) *n = (uint64_t)sqlite3_changes(s->db);
    sqlite3_finalize(st);
    return rc;
}

/* Runs sql with user_id as ?1; *changes (if set) gets the rows changed. */
static int run_user(sb_sqlite *s, const char *sql, const char *user_id,
                    uint64_t *changes)
{
    sqlite3_stmt *st;
    int rc = prep(s, sql, &st);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : SB_E_STORE;
    if (rc == 0 && changes) *changes = (uint64_t)sqlite3_changes(s->db);
    sqlite3_finalize(st);
    return rc;
}

int sb__sqlite_user_erase(sb_store *base, const char *user_id,
                          sb_store_erased *out)
{
    sb_sqlite *s = sb__sqlite(base);
    /* No index leads with the sender: the user's messages are found by one
     * pass over messages_idem, which holds every message's sender and is a
     * fraction of the table's size. The search index keeps its own copy of
     * indexed bodies: their words leave it first (an external-content
     * index deletes by the old text). */
#define USER_MSGS "msg_id IN (SELECT msg_id FROM messages WHERE sender = ?1)"
    int rc = run_user(s,
                      "INSERT INTO msg_fts(msg_fts, rowid, body)"
                      " SELECT 'delete', msg_id, body FROM messages"
                      " WHERE " USER_MSGS " AND body <> '' AND msg_id <="
                      " (SELECT value FROM meta WHERE key = 'fts_upto')",
                      user_id, NULL);
    if (!rc)
        rc = run_user(s,
                      "UPDATE messages SET body = '', extra = NULL"
                      " WHERE " USER_MSGS " AND (body <> '' OR extra IS NOT"
                      " NULL)",
                      user_id, &out->messages);
#undef USER_MSGS
    if (!rc)
        rc = run_user(s,
                      "DELETE FROM media_refs WHERE media_id IN"
                      " (SELECT media_id FROM media WHERE owner = ?1)",
                      user_id, NULL);
    if (!rc)
        rc = run_user(s, "DELETE FROM media WHERE owner = ?1", user_id,
                      &out->uploads);
    if (!rc)
        rc = run_user(s, "DELETE FROM device_cursors WHERE user_id = ?1",
                      user_id, &out->cursors);
    if (!rc)
        rc = run_user(s, "DELETE FROM webhook_outbox WHERE subject = ?1",
                      user_id, &out->outbox_events);
    if (!rc)
        rc = run_user(s,
                      "UPDATE convs SET csat_comment = ''"
                      " WHERE customer = ?1 AND csat_comment <> ''",
                      user_id, &out->csat_comments);
    if (!rc)
        rc = run_user(s, "DELETE FROM contacts WHERE user_id = ?1", user_id,
                      &out->contacts);
    return rc;
}
