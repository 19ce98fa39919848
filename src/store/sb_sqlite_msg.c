/* The SQLite backend's messages: append with its idempotency record and
 * dense seq, the reads (SYNC pages, HISTORY pages, one message), recall,
 * and full-text search.
 *
 * Search runs on an FTS5 trigram index over message bodies that is filled
 * behind the appends (sb_store_index), not by them: FTS5 costs more per
 * message than the whole append does. A search scans the few messages past
 * the index mark instead, so it never misses one. */
#include "sb_sqlite_int.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"

/* ---- rows -------------------------------------------------------------- */

/* The tags of a conversation (seq 0) or of one of its messages, into a
 * repeated string field (left empty when there are none). */
int sb__sqlite_tags_load(sb_sqlite *s, uint64_t conv_id, uint64_t seq,
                         char ***tags, size_t *n_tags)
{
    sqlite3_stmt *st = s->st[ST_TAGS_GET];
    char **a = NULL;
    size_t n = 0;
    int rc;
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    sqlite3_bind_int64(st, 2, sb__sqlite_i64(seq));
    /* The statement's LIMIT keeps n within SB_TAGS_MAX. */
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!a && !(a = calloc(SB_TAGS_MAX, sizeof *a))) goto nomem;
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (!t) continue;
        if (!(a[n] = sb__store_strndup(t, (size_t)sqlite3_column_bytes(st, 0))))
            goto nomem;
        n++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        rc = SB_E_STORE;
        goto err;
    }
    *tags = a;
    *n_tags = n;
    return 0;
nomem:
    sqlite3_reset(st);
    rc = -ENOMEM;
err:
    for (size_t i = 0; i < n; i++)
        free(a[i]);
    free(a);
    return rc;
}

/* What a message shows of the message it quotes: sender, type, recall and
 * the first SB_QUOTE_BYTES bytes of its body. Nothing if it is not
 * there (append lets no message quote one that is not). */
static int quote_load(sb_sqlite *s, uint64_t conv_id, uint64_t seq,
                      Sbp__Quote **out)
{
    sqlite3_stmt *st = s->st[ST_QUOTE_GET];
    Sbp__Quote *q = NULL;
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    sqlite3_bind_int64(st, 2, sb__sqlite_i64(seq));
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        rc = rc == SQLITE_DONE ? 0 : SB_E_STORE;
        goto out;
    }
    rc = -ENOMEM;
    if (!(q = malloc(sizeof *q))) goto out;
    sbp__quote__init(q);
    q->seq = seq;
    q->type = (Sbp__MsgType)sqlite3_column_int(st, 1);
    q->recalled = sqlite3_column_int(st, 3) != 0;
    if (sb__sqlite_col_text(st, 0, &q->sender)) goto out;
    const char *body = (const char *)sqlite3_column_text(st, 2);
    size_t n = (size_t)sqlite3_column_bytes(st, 2);
    if (!q->recalled && body && n) {
        char *b = sb__store_strndup(
            body, sb__store_utf8_cut(body, n, SB_QUOTE_BYTES));
        if (!b) goto out;
        q->body = b;
    }
    *out = q;
    q = NULL;
    rc = 0;
out:
    sqlite3_reset(st);
    if (q) sbp__quote__free_unpacked(q, NULL);
    return rc;
}

/* Builds a message from a row of SB_SQLITE_MSG_COLS: structured parts merged
 * in, a recall applied (no body, card or media). Tags and the quote cost a
 * lookup each, made only for a message that has them. */
int sb__sqlite_msg_from_row(sb_sqlite *s, sqlite3_stmt *st, Sbp__Message **out)
{
    Sbp__Message *m = malloc(sizeof *m);
    if (!m) return -ENOMEM;
    sbp__message__init(m);
    m->msg_id = (uint64_t)sqlite3_column_int64(st, MC_MSG_ID);
    m->conv_id = (uint64_t)sqlite3_column_int64(st, MC_CONV_ID);
    m->seq = (uint64_t)sqlite3_column_int64(st, MC_SEQ);
    m->type = (Sbp__MsgType)sqlite3_column_int(st, MC_TYPE);
    m->quote_seq = (uint64_t)sqlite3_column_int64(st, MC_QUOTE_SEQ);
    m->server_ts = sqlite3_column_int64(st, MC_SERVER_TS);
    m->recalled = sqlite3_column_int(st, MC_RECALLED) != 0;
    m->review = sqlite3_column_int(st, MC_REVIEW) != 0;
    int rc = -ENOMEM;
    if (sb__sqlite_col_text(st, MC_SENDER, &m->sender) ||
        sb__sqlite_col_text(st, MC_SENDER_DEVICE, &m->sender_device) ||
        sb__sqlite_col_blob(st, MC_CLIENT_MSG_ID, &m->client_msg_id) ||
        sb__sqlite_col_text(st, MC_BODY, &m->body) ||
        sb__sqlite_col_text(st, MC_LANG, &m->lang))
        goto err;
    if ((rc = sb__store_extra_merge(sqlite3_column_blob(st, MC_EXTRA),
                                    (size_t)sqlite3_column_bytes(st, MC_EXTRA),
                                    m)))
        goto err;
    if (m->recalled) sb__store_recall_blank(m);
    if (sqlite3_column_int(st, MC_TAGGED) &&
        (rc =
             sb__sqlite_tags_load(s, m->conv_id, m->seq, &m->tags, &m->n_tags)))
        goto err;
    if (m->quote_seq &&
        (rc = quote_load(s, m->conv_id, m->quote_seq, &m->quote)))
        goto err;
    *out = m;
    return 0;
err:
    sbp__message__free_unpacked(m, NULL);
    return rc;
}

/* ---- writes ------------------------------------------------------------ */

/* Finds the message stored under (sender, client_msg_id). Returns 1 and
 * fills msg if there is one, 0 if not, or SB_E_STORE. */
static int dup_find(sb_sqlite *s, Sbp__Message *msg)
{
    sqlite3_stmt *st = s->st[ST_DUP_FIND];
    sb__sqlite_bind_str(st, 1, msg->sender);
    sqlite3_bind_blob(st, 2, msg->client_msg_id.data,
                      (int)msg->client_msg_id.len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        msg->msg_id = (uint64_t)sqlite3_column_int64(st, 0);
        msg->conv_id = (uint64_t)sqlite3_column_int64(st, 1);
        msg->seq = (uint64_t)sqlite3_column_int64(st, 2);
        msg->server_ts = sqlite3_column_int64(st, 3);
        rc = 1;
    } else {
        rc = rc == SQLITE_DONE ? 0 : SB_E_STORE;
    }
    sqlite3_reset(st);
    return rc;
}

/* Three statements on the hot path: read last_seq, insert (the unique
 * index messages_idem doubles as the duplicate check), raise
 * last_seq. Refusals are decided before the first write, so they leave
 * nothing; the one writer holds the write lock, so last_seq cannot move
 * between the read and the update. A message without client_msg_id (len 0)
 * has no idempotency key: for messages the server makes itself. */
int sb__sqlite_append(sb_store *base, Sbp__Message *msg, int64_t now_ms,
                      bool *duplicate)
{
    sb_sqlite *s = sb__sqlite(base);
    bool keyed = msg->client_msg_id.len != 0;

    sqlite3_stmt *st = s->st[ST_CONV_SEQ];
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(msg->conv_id));
    int rc = sqlite3_step(st);
    int64_t seq = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) + 1 : 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SB_E_STORE;
    int refused = rc == SQLITE_DONE                 ? SB_E_NOT_FOUND
                  : msg->quote_seq >= (uint64_t)seq ? SB_E_INVALID
                                                    : 0;
    if (refused) {
        /* A retry is answered with the original whatever else it says. */
        rc = keyed ? dup_find(s, msg) : 0;
        if (rc == 1) *duplicate = true;
        return rc == 1 ? 0 : rc < 0 ? rc : refused;
    }

    st = s->st[ST_MSG_INSERT];
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(msg->conv_id));
    sqlite3_bind_int64(st, 2, seq);
    sb__sqlite_bind_str(st, 3, msg->sender);
    sb__sqlite_bind_str(st, 4, msg->sender_device);
    if (keyed)
        sqlite3_bind_blob(st, 5, msg->client_msg_id.data,
                          (int)msg->client_msg_id.len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 5);
    sqlite3_bind_int(st, 6, (int)msg->type);
    sb__sqlite_bind_str(st, 7, msg->body);
    sqlite3_bind_int64(st, 8, sb__sqlite_i64(msg->quote_seq));
    sb__sqlite_bind_str(st, 9, msg->lang);
    sqlite3_bind_int64(st, 10, now_ms);
    uint8_t xbuf[512], *x;
    size_t xlen;
    if ((rc = sb__store_extra_pack(msg, xbuf, sizeof xbuf, &x, &xlen)))
        return rc;
    if (xlen)
        sqlite3_bind_blob(st, 11, x, (int)xlen, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 11);
    sqlite3_bind_int(st, 12, msg->review);
    rc = sb__sqlite_step_reset(st);
    if (x != xbuf) free(x);
    if (rc) return SB_E_STORE;
    if (sqlite3_changes(s->db) == 0) {
        /* (sender, client_msg_id) was taken: a retry. Nothing written. */
        rc = dup_find(s, msg);
        if (rc != 1) return rc < 0 ? rc : SB_E_STORE;
        *duplicate = true;
        return 0;
    }
    int64_t msg_id = sqlite3_last_insert_rowid(s->db);

    st = s->st[ST_CONV_BUMP];
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(msg->conv_id));
    sqlite3_bind_int64(st, 2, now_ms);
    sqlite3_bind_int64(st, 3, seq);
    if (sb__sqlite_step_reset(st))
        return SB_E_STORE; /* the insert stays: roll back */
    msg->msg_id = (uint64_t)msg_id;
    msg->seq = (uint64_t)seq;
    msg->server_ts = now_ms;
    /* The live PUSH carries the quote too, as every read does. */
    if (msg->quote_seq && !msg->quote &&
        (rc = quote_load(s, msg->conv_id, msg->quote_seq, &msg->quote)))
        return rc;
    return 0;
}

/* ---- reads ------------------------------------------------------------- */

static int convs_push(Sbp__SyncResp *r, size_t *cap, Sbp__Conversation *c)
{
    if (r->n_convs == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        Sbp__Conversation **a = realloc(r->convs, ncap * sizeof *a);
        if (!a) return -ENOMEM;
        r->convs = a;
        *cap = ncap;
    }
    r->convs[r->n_convs++] = c;
    return 0;
}

/* Adds to the page the messages of one conversation after seq cur. Sets
 * *stop when the page is full or over its bytes (with *more when a message
 * was left out for it), and *added when a message went in. */
static int sync_conv(sb_sqlite *s, uint64_t conv_id, uint64_t cur,
                     uint32_t limit, size_t bytes_max, size_t *bytes,
                     Sbp__SyncResp *r, bool *added, bool *stop)
{
    sqlite3_stmt *st = s->st[ST_MSGS_AFTER];
    int rc;
    *added = false;
    /* One row past the page tells whether it is full. */
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    sqlite3_bind_int64(st, 2, sb__sqlite_i64(cur));
    sqlite3_bind_int64(st, 3, (sqlite3_int64)(limit - r->n_messages) + 1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        size_t len = (size_t)sqlite3_column_bytes(st, MC_BODY);
        if (r->n_messages == limit ||
            (bytes_max && r->n_messages > 0 && *bytes + len > bytes_max)) {
            r->more = true;
            *stop = true;
            break;
        }
        Sbp__Message *m;
        if ((rc = sb__sqlite_msg_from_row(s, st, &m))) goto out;
        r->messages[r->n_messages++] = m;
        *bytes += len;
        *added = true;
    }
    rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : SB_E_STORE;
    if (r->n_messages == limit) *stop = true;
out:
    sqlite3_reset(st);
    return rc;
}

/* The walk goes through the user's conversations in conv_id order. It stops
 * once the page is full and a conversation with more messages is found, or
 * once SB_STORE_PAGE_MAX conversations unknown to the cursors (and without
 * messages in the page) have been listed and another is found; either way
 * `more` is set. A client that pages on with its cursors advanced (and a
 * cursor for every conversation listed) gets everything exactly once. */
int sb__sqlite_sync(sb_store *base, const char *user_id, bool all,
                    const sb_store_cursor *cur, size_t n_cur, uint32_t limit,
                    size_t bytes_max, Sbp__SyncResp **out)
{
    sb_sqlite *s = sb__sqlite(base);
    size_t convs_cap = 0, bytes = 0, unknown = 0;
    bool own = false, full = false;
    sqlite3_stmt *walk = NULL;
    Sbp__SyncResp *r = malloc(sizeof *r);
    int rc = -ENOMEM;
    if (!r) goto err;
    sbp__sync_resp__init(r);
    r->messages = malloc(limit * sizeof *r->messages);
    if (!r->messages) goto err;
    if ((rc = sb__sqlite_read_begin(s, &own))) goto err;

    walk = s->st[all ? ST_CONVS_ALL : ST_CONVS_OF_USER];
    if (!all) sb__sqlite_bind_str(walk, 1, user_id);
    int step;
    while ((step = sqlite3_step(walk)) == SQLITE_ROW) {
        uint64_t conv_id = (uint64_t)sqlite3_column_int64(walk, 0);
        uint64_t last_seq = (uint64_t)sqlite3_column_int64(walk, 1);
        const sb_store_cursor *c = sb__store_cursor_find(cur, n_cur, conv_id);
        uint64_t from = c ? c->seq : 0;
        bool added = false, list = false;
        if (last_seq > from) {
            if (full) {
                r->more = true;
                break;
            }
            rc = sync_conv(s, conv_id, from, limit, bytes_max, &bytes, r,
                           &added, &full);
            if (rc) goto err;
            list = added;
        }
        if (!c && !added) {
            if (unknown == SB_STORE_PAGE_MAX) {
                r->more = true;
                break;
            }
            unknown++;
            list = true;
        }
        if (list) {
            Sbp__Conversation *conv;
            if ((rc = sb__sqlite_conv_load(s, conv_id, &conv))) goto err;
            if ((rc = convs_push(r, &convs_cap, conv))) {
                sbp__conversation__free_unpacked(conv, NULL);
                goto err;
            }
        }
        if (r->more) break;
    }
    if (step != SQLITE_DONE && step != SQLITE_ROW) {
        rc = SB_E_STORE;
        goto err;
    }
    sqlite3_reset(walk);
    sb__sqlite_read_end(s, own);
    *out = r;
    return 0;
err:
    if (walk) sqlite3_reset(walk);
    sb__sqlite_read_end(s, own);
    if (r) sbp__sync_resp__free_unpacked(r, NULL);
    return rc;
}

int sb__sqlite_history(sb_store *base, uint64_t conv_id, uint64_t before_seq,
                       uint32_t limit, Sbp__HistoryResp **out)
{
    sb_sqlite *s = sb__sqlite(base);
    bool own = false;
    sqlite3_stmt *st = s->st[ST_MSGS_BEFORE];
    Sbp__HistoryResp *r = malloc(sizeof *r);
    int rc = -ENOMEM;
    if (!r) return rc;
    sbp__history_resp__init(r);
    r->conv_id = conv_id;
    r->messages = malloc(limit * sizeof *r->messages);
    if (!r->messages) goto err;
    if ((rc = sb__sqlite_read_begin(s, &own))) goto err;

    uint64_t last_seq;
    bool member;
    if ((rc = sb__sqlite_conv_member(s, conv_id, "", &last_seq, &member)))
        goto err;
    /* Newest first, one row past the page to tell whether older remain. */
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    sqlite3_bind_int64(st, 2, sb__sqlite_i64(before_seq));
    sqlite3_bind_int64(st, 3, (sqlite3_int64)limit + 1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (r->n_messages == limit) {
            r->more = true;
            break;
        }
        Sbp__Message *m;
        if ((rc = sb__sqlite_msg_from_row(s, st, &m))) goto err;
        r->messages[r->n_messages++] = m;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        rc = SB_E_STORE;
        goto err;
    }
    sqlite3_reset(st);
    sb__sqlite_read_end(s, own);
    for (size_t i = 0, j = r->n_messages; i + 1 < j; i++, j--) {
        Sbp__Message *t = r->messages[i];
        r->messages[i] = r->messages[j - 1];
        r->messages[j - 1] = t;
    }
    *out = r;
    return 0;
err:
    sqlite3_reset(st);
    sb__sqlite_read_end(s, own);
    sbp__history_resp__free_unpacked(r, NULL);
    return rc;
}

/* One message by (conv, seq), no transaction of its own. */
int sb__sqlite_msg_load(sb_sqlite *s, uint64_t conv_id, uint64_t seq,
                        Sbp__Message **out)
{
    sqlite3_stmt *st = s->st[ST_MSG_GET];
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    sqlite3_bind_int64(st, 2, sb__sqlite_i64(seq));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        rc = sb__sqlite_msg_from_row(s, st, out);
    else
        rc = rc == SQLITE_DONE ? SB_E_NOT_FOUND : SB_E_STORE;
    sqlite3_reset(st);
    return rc;
}

int sb__sqlite_msg_get(sb_store *base, uint64_t conv_id, uint64_t seq,
                       Sbp__Message **out)
{
    sb_sqlite *s = sb__sqlite(base);
    bool own;
    int rc = sb__sqlite_read_begin(s, &own);
    if (rc) return rc;
    rc = sb__sqlite_msg_load(s, conv_id, seq, out);
    sb__sqlite_read_end(s, own);
    return rc;
}

/* The body stays in the table (for review and audit); reads blank it. It
 * leaves the search index, which needs the very text it indexed to forget
 * it: recall is the only change a body ever sees. */
int sb__sqlite_recall(sb_store *base, uint64_t conv_id, uint64_t seq)
{
    sb_sqlite *s = sb__sqlite(base);
    int64_t upto;
    int rc = sb__sqlite_int_query(s->st[ST_FTS_UPTO], &upto);
    if (rc) return rc;
    sqlite3_stmt *st = s->st[ST_RECALL_GET];
    sqlite3_bind_int64(st, 1, sb__sqlite_i64(conv_id));
    sqlite3_bind_int64(st, 2, sb__sqlite_i64(seq));
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? SB_E_NOT_FOUND : SB_E_STORE;
    }
    int64_t msg_id = sqlite3_column_int64(st, 0);
    bool recalled = sqlite3_column_int(st, 1) != 0;
    sqlite3_stmt *del = s->st[ST_FTS_DELETE];
    if (!recalled && msg_id <= upto) {
        sqlite3_bind_int64(del, 1, msg_id);
        sqlite3_bind_text(del, 2, (const char *)sqlite3_column_text(st, 2),
                          sqlite3_column_bytes(st, 2), SQLITE_TRANSIENT);
    }
    sqlite3_reset(st);
    if (recalled) return 0;
    if (msg_id <= upto) {
        rc = sb__sqlite_step_reset(del);
        sqlite3_bind_null(del, 2); /* drop the copy of the body */
        if (rc) return rc;
    }
    st = s->st[ST_RECALL_SET];
    sqlite3_bind_int64(st, 1, msg_id);
    return sb__sqlite_step_reset(st);
}

/* ---- search ------------------------------------------------------------ */

/* The FTS5 expression: every indexed word as a quoted string ("" inside
 * doubled), so the query is never FTS syntax; strings side by side AND. */
static char *match_expr(const sb_store_words *w)
{
    size_t size = 1;
    for (size_t i = 0; i < w->n; i++)
        size += 2 * w->len[i] + 3;
    char *m = malloc(size), *o = m;
    if (!m) return NULL;
    for (size_t i = 0; i < w->n; i++) {
        if (!w->indexed[i]) continue;
        if (o != m) *o++ = ' ';
        *o++ = '"';
        for (size_t k = 0; k < w->len[i]; k++) {
            if (w->p[i][k] == '"') *o++ = '"';
            *o++ = w->p[i][k];
        }
        *o++ = '"';
    }
    *o = '\0';
    return m;
}

typedef struct search_ctx {
    const char *user_id;
    bool all;
    uint64_t conv_id;
    const sb_store_words *w;
    const char *match;
    const char **pat;
    uint32_t limit;
} search_ctx;

/* Runs one half of a search, adding to r, newest first. Parameters: ?1
 * the lowest msg_id (exclusive) of a scan, ?2 the conversation or the
 * user, ?3 the FTS expression, ?4 rows, ?5... LIKE patterns. fts: the
 * indexed words through the index, the short ones by LIKE on its hits.
 * Otherwise a scan of the messages past msg_id lo (a query of short words
 * only: lo 0, every message in scope) with every word by LIKE; past the
 * index mark the scan goes by msg_id (the + keeps SQLite off the
 * conversation index there). */
static int search_run(sb_sqlite *s, const search_ctx *x, bool fts, int64_t lo,
                      Sbp__SearchResp *r)
{
    char sql[2048 + SB_STORE_SEARCH_WORDS_MAX * 48];
    size_t n = 0;
    const char *plus = !fts && lo ? "+" : "";
    sb__sqlite_sql_add(sql, sizeof sql, &n,
                       "SELECT " SB_SQLITE_MSG_COLS_M " FROM ");
    if (fts)
        sb__sqlite_sql_add(sql, sizeof sql, &n,
                           "msg_fts f JOIN messages m ON m.msg_id = f.rowid"
                           " WHERE f.msg_fts MATCH ?3");
    else
        sb__sqlite_sql_add(sql, sizeof sql, &n,
                           "messages m WHERE m.msg_id > ?1");
    sb__sqlite_sql_add(sql, sizeof sql, &n, " AND m.recalled = 0");
    if (x->conv_id)
        sb__sqlite_sql_add(sql, sizeof sql, &n, " AND %sm.conv_id = ?2", plus);
    else if (!x->all)
        sb__sqlite_sql_add(sql, sizeof sql, &n,
                           " AND %sm.conv_id IN (SELECT conv_id FROM members"
                           " WHERE user_id = ?2)",
                           plus);
    for (size_t i = 0; i < x->w->n; i++)
        if (!fts || !x->w->indexed[i])
            sb__sqlite_sql_add(sql, sizeof sql, &n,
                               " AND m.body LIKE ?%zu ESCAPE '\\'", 5 + i);
    bool ok =
        sb__sqlite_sql_add(sql, sizeof sql, &n, " ORDER BY %s DESC LIMIT ?4",
                           fts                     ? "f.rowid"
                           : x->conv_id && lo == 0 ? "m.seq"
                                                   : "m.msg_id");
    assert(ok);
    (void)ok;
    sqlite3_stmt *st = NULL;
    if (sb__sqlite_prepare(s, sql, n, &st)) return SB_E_STORE;
    sqlite3_bind_int64(st, 1, lo);
    if (x->conv_id)
        sqlite3_bind_int64(st, 2, sb__sqlite_i64(x->conv_id));
    else
        sb__sqlite_bind_str(st, 2, x->user_id);
    sb__sqlite_bind_str(st, 3, x->match);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)(x->limit - r->n_messages));
    for (size_t i = 0; i < x->w->n; i++)
        sb__sqlite_bind_str(st, 5 + (int)i, x->pat[i]);
    int rc, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW &&
           r->n_messages < x->limit) {
        Sbp__Message *m;
        if ((rc = sb__sqlite_msg_from_row(s, st, &m))) goto out;
        r->messages[r->n_messages++] = m;
    }
    rc = step == SQLITE_ROW || step == SQLITE_DONE ? 0 : SB_E_STORE;
out:
    sqlite3_finalize(st);
    return rc;
}

/* Messages past the index mark are found by a scan; they are newer than
 * any indexed one, so that half comes first. */
int sb__sqlite_search(sb_store *base, const char *user_id, bool all,
                      uint64_t conv_id, const sb_store_words *w, uint32_t limit,
                      Sbp__SearchResp **out)
{
    sb_sqlite *s = sb__sqlite(base);
    const char *pat[SB_STORE_SEARCH_WORDS_MAX];
    search_ctx x = {.user_id = user_id,
                    .all = all,
                    .conv_id = conv_id,
                    .w = w,
                    .pat = pat,
                    .limit = limit};
    char *match = match_expr(w), *pats = sb__store_like_patterns(w, pat);
    int rc;
    bool own = false;
    x.match = match;
    Sbp__SearchResp *r = malloc(sizeof *r);
    rc = -ENOMEM;
    if (r) sbp__search_resp__init(r);
    if (!r || !match || !pats ||
        !(r->messages = malloc(limit * sizeof *r->messages)))
        goto out;
    if ((rc = sb__sqlite_read_begin(s, &own))) goto out;
    if (conv_id) {
        uint64_t last_seq;
        bool member = false;
        rc = sb__sqlite_conv_member(s, conv_id, all ? "" : user_id, &last_seq,
                                    &member);
        if (rc == 0 && !all && !member) rc = SB_E_FORBIDDEN;
        if (rc) goto out;
    }
    int64_t upto = 0;
    if (w->n_indexed && (rc = sb__sqlite_int_query(s->st[ST_FTS_UPTO], &upto)))
        goto out;
    if ((rc = search_run(s, &x, false, upto, r))) goto out;
    if (w->n_indexed && r->n_messages < limit)
        rc = search_run(s, &x, true, 0, r);
out:
    sb__sqlite_read_end(s, own);
    free(match);
    free(pats);
    if (rc) {
        if (r) sbp__search_resp__free_unpacked(r, NULL);
        return rc;
    }
    *out = r;
    return 0;
}

int sb__sqlite_index(sb_store *base, uint32_t max_msgs, uint64_t *left)
{
    sb_sqlite *s = sb__sqlite(base);
    bool own = false;
    int64_t upto, top;
    int rc = max_msgs ? 0 : sb__sqlite_read_begin(s, &own);
    if (rc) return rc;
    if ((rc = sb__sqlite_int_query(s->st[ST_FTS_UPTO], &upto)) ||
        (rc = sb__sqlite_int_query(s->st[ST_MSG_MAX], &top)))
        goto out;
    if (max_msgs && top > upto) {
        int64_t hi = top - upto > (int64_t)max_msgs ? upto + max_msgs : top;
        sqlite3_stmt *st = s->st[ST_FTS_FILL];
        sqlite3_bind_int64(st, 1, upto);
        sqlite3_bind_int64(st, 2, hi);
        if ((rc = sb__sqlite_step_reset(st))) goto out;
        st = s->st[ST_FTS_SET];
        sqlite3_bind_int64(st, 1, hi);
        if ((rc = sb__sqlite_step_reset(st))) goto out;
        upto = hi;
    }
    if (left) *left = top > upto ? (uint64_t)(top - upto) : 0;
out:
    sb__sqlite_read_end(s, own);
    return rc;
}
