/* The PostgreSQL backend's messages: append with its idempotency record
 * and dense seq (one at a time, or a run of them in a few statements: the
 * writer's group commit), the reads (SYNC pages, HISTORY pages, one
 * message), recall and full-text search (a trigram index over the bodies,
 * for English and Chinese alike). */
#include "sb_pg_int.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"

/* ---- rows ------------------------------------------------------------------
 */

/* What a message shows of the message it quotes (see sb_store.h). */
static int quote_load(sb_pg *s, uint64_t conv_id, uint64_t seq,
                      Sbp__Quote **out)
{
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    sb__pg_u64(&p, seq);
    PGresult *r;
    int rc = sb__pg_exec(s, PS_QUOTE_GET, &p, &r);
    if (rc || PQntuples(r) == 0) {
        PQclear(r);
        return rc;
    }
    Sbp__Quote *q = malloc(sizeof *q);
    rc = -ENOMEM;
    if (!q) goto out;
    sbp__quote__init(q);
    q->seq = seq;
    q->type = (Sbp__MsgType)sb__pg_get_i64(r, 0, 1);
    q->recalled = sb__pg_get_bool(r, 0, 3);
    if (sb__pg_get_text(r, 0, 0, &q->sender)) goto out;
    const char *body = PQgetvalue(r, 0, 2);
    size_t n = (size_t)PQgetlength(r, 0, 2);
    if (!q->recalled && n) {
        char *b = sb__store_strndup(
            body, sb__store_utf8_cut(body, n, SB_QUOTE_BYTES));
        if (!b) goto out;
        q->body = b;
    }
    *out = q;
    q = NULL;
    rc = 0;
out:
    PQclear(r);
    if (q) sbp__quote__free_unpacked(q, NULL);
    return rc;
}

int sb__pg_msg_from_row(sb_pg *s, const PGresult *r, int row,
                        Sbp__Message **out)
{
    Sbp__Message *m = malloc(sizeof *m);
    if (!m) return -ENOMEM;
    sbp__message__init(m);
    m->msg_id = (uint64_t)sb__pg_get_i64(r, row, PM_MSG_ID);
    m->conv_id = (uint64_t)sb__pg_get_i64(r, row, PM_CONV_ID);
    m->seq = (uint64_t)sb__pg_get_i64(r, row, PM_SEQ);
    m->type = (Sbp__MsgType)sb__pg_get_i64(r, row, PM_TYPE);
    m->quote_seq = (uint64_t)sb__pg_get_i64(r, row, PM_QUOTE_SEQ);
    m->server_ts = sb__pg_get_i64(r, row, PM_SERVER_TS);
    m->recalled = sb__pg_get_bool(r, row, PM_RECALLED);
    m->review = sb__pg_get_bool(r, row, PM_REVIEW);
    ProtobufCBinaryData extra = {0, NULL};
    int rc = -ENOMEM;
    if (sb__pg_get_text(r, row, PM_SENDER, &m->sender) ||
        sb__pg_get_text(r, row, PM_SENDER_DEVICE, &m->sender_device) ||
        sb__pg_get_bytes(r, row, PM_CLIENT_MSG_ID, &m->client_msg_id) ||
        sb__pg_get_text(r, row, PM_BODY, &m->body) ||
        sb__pg_get_text(r, row, PM_LANG, &m->lang) ||
        sb__pg_get_bytes(r, row, PM_EXTRA, &extra))
        goto err;
    rc = sb__store_extra_merge(extra.data, extra.len, m);
    free(extra.data);
    if (rc) goto err;
    if (m->recalled) sb__store_recall_blank(m);
    if (sb__pg_get_bool(r, row, PM_TAGGED) &&
        (rc = sb__pg_tags_load(s, m->conv_id, m->seq, &m->tags, &m->n_tags)))
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

int sb__pg_msg_load(sb_pg *s, uint64_t conv_id, uint64_t seq,
                    Sbp__Message **out)
{
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    sb__pg_u64(&p, seq);
    PGresult *r;
    int rc = sb__pg_exec(s, PS_MSG_GET, &p, &r);
    if (rc == 0)
        rc = PQntuples(r) ? sb__pg_msg_from_row(s, r, 0, out) : SB_E_NOT_FOUND;
    PQclear(r);
    return rc;
}

/* ---- one append -------------------------------------------------------------
 */

/* Finds the message stored under (sender, client_msg_id). Returns 1 and
 * fills msg if there is one, 0 if not, or a negative code. */
static int dup_find(sb_pg *s, Sbp__Message *msg)
{
    sb_pg_params p = {0};
    sb__pg_str(&p, msg->sender);
    sb__pg_bin(&p, msg->client_msg_id.data, msg->client_msg_id.len);
    PGresult *r;
    int rc = sb__pg_exec(s, PS_DUP_FIND, &p, &r);
    if (rc == 0 && PQntuples(r)) {
        msg->msg_id = (uint64_t)sb__pg_get_i64(r, 0, 0);
        msg->conv_id = (uint64_t)sb__pg_get_i64(r, 0, 1);
        msg->seq = (uint64_t)sb__pg_get_i64(r, 0, 2);
        msg->server_ts = sb__pg_get_i64(r, 0, 3);
        rc = 1;
    }
    PQclear(r);
    return rc;
}

/* The same steps as the SQLite store's append: read last_seq (the batch
 * holds the conversation's row lock, so it cannot move), insert (the
 * unique (sender, client_msg_id) index doubles as the duplicate check),
 * raise last_seq. Refusals are decided before the first write. */
int sb__pg_append(sb_store *base, Sbp__Message *msg, int64_t now_ms,
                  bool *duplicate)
{
    sb_pg *s = sb__pg(base);
    bool keyed = msg->client_msg_id.len != 0;
    sb_pg_params p = {0};
    sb__pg_u64(&p, msg->conv_id);
    PGresult *r;
    int rc = sb__pg_exec(s, PS_CONV_SEQ, &p, &r);
    if (rc) return rc;
    bool found = PQntuples(r) > 0;
    int64_t seq = found ? sb__pg_get_i64(r, 0, 0) + 1 : 0;
    PQclear(r);
    int refused = !found                            ? SB_E_NOT_FOUND
                  : msg->quote_seq >= (uint64_t)seq ? SB_E_INVALID
                                                    : 0;
    if (refused) {
        /* A retry is answered with the original whatever else it says. */
        rc = keyed ? dup_find(s, msg) : 0;
        if (rc == 1) *duplicate = true;
        return rc == 1 ? 0 : rc < 0 ? rc : refused;
    }
    uint8_t xbuf[512], *x;
    size_t xlen;
    if ((rc = sb__store_extra_pack(msg, xbuf, sizeof xbuf, &x, &xlen)))
        return rc;
    p = (sb_pg_params){0};
    sb__pg_u64(&p, msg->conv_id);
    sb__pg_int(&p, seq);
    sb__pg_str(&p, msg->sender);
    sb__pg_str(&p, msg->sender_device);
    sb__pg_bin(&p, keyed ? msg->client_msg_id.data : NULL,
               keyed ? msg->client_msg_id.len : 0);
    sb__pg_int(&p, msg->type);
    sb__pg_str(&p, msg->body);
    sb__pg_u64(&p, msg->quote_seq);
    sb__pg_str(&p, msg->lang);
    sb__pg_int(&p, now_ms);
    sb__pg_bin(&p, x, xlen);
    sb__pg_bool(&p, msg->review);
    rc = sb__pg_exec(s, PS_MSG_INSERT, &p, &r);
    if (x != xbuf) free(x);
    if (rc) return rc;
    bool inserted = PQntuples(r) > 0;
    int64_t msg_id = inserted ? sb__pg_get_i64(r, 0, 0) : 0;
    PQclear(r);
    if (!inserted) {
        /* (sender, client_msg_id) was taken: a retry. Nothing written. */
        rc = dup_find(s, msg);
        if (rc != 1) return rc < 0 ? rc : SB_E_STORE;
        *duplicate = true;
        return 0;
    }
    p = (sb_pg_params){0};
    sb__pg_u64(&p, msg->conv_id);
    sb__pg_int(&p, now_ms);
    sb__pg_int(&p, seq);
    if ((rc = sb__pg_exec(s, PS_CONV_BUMP, &p, NULL))) return rc;
    sb_pg_seq *locked = sb__pg_locked_find(s, msg->conv_id);
    if (locked) locked->last_seq = seq;
    msg->msg_id = (uint64_t)msg_id;
    msg->seq = (uint64_t)seq;
    msg->server_ts = now_ms;
    /* The live PUSH carries the quote too, as every read does. */
    if (msg->quote_seq && !msg->quote)
        return quote_load(s, msg->conv_id, msg->quote_seq, &msg->quote);
    return 0;
}

/* ---- many appends
 * ------------------------------------------------------------ */

/* The sorted, distinct conversations of a set of ids, as a bigint[]
 * literal ("{1,2,3}", malloc'd). */
static char *id_array(const uint64_t *ids, size_t n)
{
    char *a = malloc(n * 21 + 3), *o = a;
    if (!a) return NULL;
    *o++ = '{';
    for (size_t i = 0; i < n; i++)
        o += sprintf(o, "%s%llu", i ? "," : "", (unsigned long long)ids[i]);
    *o++ = '}';
    *o = '\0';
    return a;
}

static int seq_cmp(const void *a, const void *b)
{
    uint64_t x = ((const sb_pg_seq *)a)->id, y = ((const sb_pg_seq *)b)->id;
    return x < y ? -1 : x > y;
}

sb_pg_seq *sb__pg_locked_find(sb_pg *s, uint64_t id)
{
    sb_pg_seq key = {.id = id};
    return s->n_locked ? bsearch(&key, s->locked, s->n_locked,
                                 sizeof *s->locked, seq_cmp)
                       : NULL;
}

void sb__pg_locked_clear(sb_pg *s)
{
    s->n_locked = 0;
}

/* Locks the conversations ids (sorted, distinct) in that order, and keeps
 * their last_seq as the transaction's locked ones. */
int sb__pg_lock_convs(sb_store *base, const uint64_t *ids, size_t n)
{
    sb_pg *s = sb__pg(base);
    sb__pg_locked_clear(s);
    if (n > s->locked_cap) {
        sb_pg_seq *a = realloc(s->locked, n * sizeof *a);
        if (!a) return -ENOMEM;
        s->locked = a;
        s->locked_cap = n;
    }
    char *a = id_array(ids, n);
    if (!a) return -ENOMEM;
    sb_pg_params p = {0};
    sb__pg_str(&p, a);
    PGresult *r;
    int rc = sb__pg_exec(s, PS_LOCK_CONVS, &p, &r);
    free(a);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++)
        s->locked[i] = (sb_pg_seq){.id = ids[i]};
    s->n_locked = n;
    for (int i = 0; i < PQntuples(r); i++) {
        sb_pg_seq *x = sb__pg_locked_find(s, (uint64_t)sb__pg_get_i64(r, i, 0));
        if (!x) continue;
        x->found = true;
        x->last_seq = sb__pg_get_i64(r, i, 1);
    }
    PQclear(r);
    return 0;
}

static void hex(char *o, const uint8_t *p, size_t n)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        o[2 * i] = d[p[i] >> 4];
        o[2 * i + 1] = d[p[i] & 15];
    }
    o[2 * n] = '\0';
}

/* A conversation of a run of appends: its last_seq as it grows. */
typedef struct run_conv {
    uint64_t id;
    int64_t last_seq, ts;
    bool found, bumped;
} run_conv;

static int run_conv_cmp(const void *a, const void *b)
{
    uint64_t x = ((const run_conv *)a)->id, y = ((const run_conv *)b)->id;
    return x < y ? -1 : x > y;
}

static run_conv *run_conv_find(run_conv *c, size_t n, uint64_t id)
{
    run_conv key = {.id = id};
    return bsearch(&key, c, n, sizeof *c, run_conv_cmp);
}

/* The run's conversations, locked, with their last_seq: those the
 * transaction locked already (the batch locks all it writes at its start),
 * or locked now. */
static int run_convs_load(sb_pg *s, sb_store_append_item *items, size_t n,
                          run_conv **out, size_t *n_out)
{
    run_conv *c = calloc(n ? n : 1, sizeof *c);
    uint64_t *ids = malloc((n ? n : 1) * sizeof *ids);
    size_t k = 0;
    int rc = -ENOMEM;
    if (!c || !ids) goto err;
    for (size_t i = 0; i < n; i++)
        if (items[i].rc == 0) c[k++].id = items[i].msg->conv_id;
    qsort(c, k, sizeof *c, run_conv_cmp);
    size_t w = 0;
    bool locked = true;
    for (size_t i = 0; i < k; i++)
        if (w == 0 || c[w - 1].id != c[i].id) {
            c[w] = c[i];
            ids[w] = c[i].id;
            locked = locked && sb__pg_locked_find(s, c[w].id);
            w++;
        }
    if (!locked && (rc = sb__pg_lock_convs(&s->base, ids, w))) goto err;
    for (size_t i = 0; i < w; i++) {
        const sb_pg_seq *x = sb__pg_locked_find(s, c[i].id);
        assert(x);
        c[i].found = x->found;
        c[i].last_seq = x->last_seq;
    }
    free(ids);
    *out = c;
    *n_out = w;
    return 0;
err:
    free(ids);
    free(c);
    return rc;
}

/* Marks the run's messages already stored under their idempotency key as
 * duplicates, with the original's answer. */
static int run_dups_find(sb_pg *s, sb_store_append_item *items, size_t n)
{
    json_t *keys = json_array();
    if (!keys) return -ENOMEM;
    char c[2 * SB_CLIENT_MSG_ID_BYTES + 1];
    for (size_t i = 0; i < n; i++) {
        Sbp__Message *m = items[i].msg;
        if (items[i].rc || m->client_msg_id.len == 0) continue;
        hex(c, m->client_msg_id.data, m->client_msg_id.len);
        if (json_array_append_new(
                keys, json_pack("{s:s, s:s}", "s", m->sender, "c", c))) {
            json_decref(keys);
            return -ENOMEM;
        }
    }
    if (json_array_size(keys) == 0) {
        json_decref(keys);
        return 0;
    }
    char *js = json_dumps(keys, JSON_COMPACT);
    json_decref(keys);
    if (!js) return -ENOMEM;
    sb_pg_params p = {0};
    sb__pg_str(&p, js);
    PGresult *r;
    int rc = sb__pg_exec(s, PS_DUPS_FIND, &p, &r);
    free(js);
    if (rc) return rc;
    for (int row = 0; row < PQntuples(r); row++) {
        const char *sender = PQgetvalue(r, row, 0),
                   *cid = PQgetvalue(r, row, 1);
        for (size_t i = 0; i < n; i++) {
            Sbp__Message *m = items[i].msg;
            if (items[i].rc || items[i].duplicate ||
                m->client_msg_id.len == 0 || strcmp(m->sender, sender) != 0)
                continue;
            hex(c, m->client_msg_id.data, m->client_msg_id.len);
            if (strcmp(c, cid) != 0) continue;
            items[i].duplicate = true;
            m->msg_id = (uint64_t)sb__pg_get_i64(r, row, 2);
            m->conv_id = (uint64_t)sb__pg_get_i64(r, row, 3);
            m->seq = (uint64_t)sb__pg_get_i64(r, row, 4);
            m->server_ts = sb__pg_get_i64(r, row, 5);
        }
    }
    PQclear(r);
    return 0;
}

/* An index over a run's items, built once instead of a scan of the run for
 * each item (runs are thousands long under load): open addressing, each
 * slot an item's index + 1 (0: empty), the caller's hash and equality. */
typedef struct run_index {
    uint32_t *slot;
    size_t mask;
} run_index;

static int run_index_init(run_index *x, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    x->slot = calloc(cap, sizeof *x->slot);
    x->mask = cap - 1;
    return x->slot ? 0 : -ENOMEM;
}

static void run_index_add(run_index *x, uint64_t h, size_t i)
{
    size_t k = h & x->mask;
    while (x->slot[k])
        k = (k + 1) & x->mask;
    x->slot[k] = (uint32_t)i + 1;
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* The idempotency key's hash: sender and client_msg_id. */
static uint64_t key_hash(const Sbp__Message *m)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = m->sender; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    h = (h ^ 0xff) * 0x100000001b3ull;
    for (size_t i = 0; i < m->client_msg_id.len; i++)
        h = (h ^ m->client_msg_id.data[i]) * 0x100000001b3ull;
    return mix(h);
}

static bool same_key(const Sbp__Message *a, const Sbp__Message *b)
{
    return a->client_msg_id.len == b->client_msg_id.len &&
           memcmp(a->client_msg_id.data, b->client_msg_id.data,
                  a->client_msg_id.len) == 0 &&
           strcmp(a->sender, b->sender) == 0;
}

/* The item of the run, stored by it (in keys), whose idempotency key m
 * repeats (m is then that one's duplicate), or NULL. */
static sb_store_append_item *run_earlier(const run_index *keys,
                                         sb_store_append_item *items,
                                         const Sbp__Message *m)
{
    if (m->client_msg_id.len == 0) return NULL;
    for (size_t k = key_hash(m) & keys->mask; keys->slot[k];
         k = (k + 1) & keys->mask) {
        sb_store_append_item *o = &items[keys->slot[k] - 1];
        if (o->msg != m && same_key(o->msg, m)) return o;
    }
    return NULL;
}

static uint64_t seq_hash(uint64_t conv, uint64_t seq)
{
    return mix(conv * 0x9e3779b97f4a7c15ull + seq);
}

/* One row of the run's INSERT. */
static json_t *row_json(const Sbp__Message *m, int64_t now_ms)
{
    char cid[2 * SB_CLIENT_MSG_ID_BYTES + 1];
    uint8_t xbuf[512], *x;
    size_t xlen;
    if (sb__store_extra_pack(m, xbuf, sizeof xbuf, &x, &xlen)) return NULL;
    char *xs = xlen ? malloc(2 * xlen + 1) : NULL;
    if (xlen && !xs) {
        if (x != xbuf) free(x);
        return NULL;
    }
    if (xlen) hex(xs, x, xlen);
    if (x != xbuf) free(x);
    if (m->client_msg_id.len) hex(cid, m->client_msg_id.data, 16);
    json_t *o = json_pack(
        "{s:I, s:I, s:s, s:s, s:s?, s:i, s:s, s:I, s:s, s:I, s:s?, s:i}",
        "conv_id", (json_int_t)m->conv_id, "seq", (json_int_t)m->seq, "sender",
        m->sender, "dev", m->sender_device ? m->sender_device : "", "cid",
        m->client_msg_id.len ? cid : NULL, "type", (int)m->type, "body",
        m->body ? m->body : "", "quote_seq", (json_int_t)m->quote_seq, "lang",
        m->lang ? m->lang : "", "ts", (json_int_t)now_ms, "extra", xs, "review",
        (int)m->review);
    free(xs);
    return o;
}

/* The run in one statement: its conversations are locked (in conv_id
 * order, by the batch or now) with their last_seq known; its messages
 * get their seqs in order and one statement inserts them all and raises
 * the conversations' last_seq. A retry (a message whose idempotency key is
 * stored already) makes the insert skip it, which would leave a hole in the
 * seqs: the transaction then runs again (SB_E_RETRY), and that run looks for
 * the stored keys first and answers their messages as duplicates. Retries are
 * rare (a client that lost its acks), so the common run does not look. */
int sb__pg_append_many(sb_store *base, sb_store_append_item *items, size_t n)
{
    sb_pg *s = sb__pg(base);
    run_conv *c = NULL;
    size_t nc = 0;
    json_t *rows = NULL, *bumps = NULL;
    char *js = NULL, *jb = NULL;
    PGresult *r = NULL;
    run_index keys = {0}, seqs = {0};
    bool check = s->dups_expected;
    int rc = run_convs_load(s, items, n, &c, &nc);
    if (rc == 0 && check) rc = run_dups_find(s, items, n);
    if (rc) goto out;
    rc = -ENOMEM;
    if (!(rows = json_array()) || !(bumps = json_array())) goto out;
    if (run_index_init(&keys, n) || run_index_init(&seqs, n)) goto out;
    size_t n_rows = 0;
    for (size_t i = 0; i < n; i++) {
        sb_store_append_item *a = &items[i];
        Sbp__Message *m = a->msg;
        if (a->rc || a->duplicate) continue;
        /* A retry of a message stored earlier in this run answers with
         * it, once it has its msg_id. */
        if (run_earlier(&keys, items, m)) {
            a->duplicate = true;
            continue;
        }
        run_conv *x = run_conv_find(c, nc, m->conv_id);
        bool refused =
            !x || !x->found || m->quote_seq >= (uint64_t)x->last_seq + 1;
        if (refused && !check && m->client_msg_id.len) {
            /* A retry is answered with the original whatever else it
             * says: look for one, in the batch's next run. */
            s->dups_expected = true;
            rc = SB_E_RETRY;
            goto out;
        }
        if (!x || !x->found) {
            a->rc = SB_E_NOT_FOUND;
        } else if (refused) {
            a->rc = SB_E_INVALID;
        } else {
            m->seq = (uint64_t)++x->last_seq;
            m->server_ts = a->now_ms;
            x->ts = a->now_ms;
            x->bumped = true;
            if (json_array_append_new(rows, row_json(m, a->now_ms))) goto out;
            n_rows++;
            if (m->client_msg_id.len) run_index_add(&keys, key_hash(m), i);
            run_index_add(&seqs, seq_hash(m->conv_id, m->seq), i);
        }
    }
    if (n_rows) {
        for (size_t i = 0; i < nc; i++)
            if (c[i].bumped && json_array_append_new(
                                   bumps, json_pack("{s:I, s:I, s:I}", "c",
                                                    (json_int_t)c[i].id, "s",
                                                    (json_int_t)c[i].last_seq,
                                                    "t", (json_int_t)c[i].ts)))
                goto out;
        if (!(js = json_dumps(rows, JSON_COMPACT)) ||
            !(jb = json_dumps(bumps, JSON_COMPACT)))
            goto out;
        sb_pg_params p = {0};
        sb__pg_str(&p, js);
        sb__pg_str(&p, jb);
        if ((rc = sb__pg_exec(s, PS_MSGS_INSERT, &p, &r))) goto out;
        if ((size_t)PQntuples(r) != n_rows) {
            s->dups_expected = true;
            rc = SB_E_RETRY;
            goto out;
        }
        for (int row = 0; row < PQntuples(r); row++) {
            uint64_t conv = (uint64_t)sb__pg_get_i64(r, row, 1);
            uint64_t seq = (uint64_t)sb__pg_get_i64(r, row, 2);
            for (size_t k = seq_hash(conv, seq) & seqs.mask; seqs.slot[k];
                 k = (k + 1) & seqs.mask) {
                Sbp__Message *m = items[seqs.slot[k] - 1].msg;
                if (m->conv_id == conv && m->seq == seq) {
                    m->msg_id = (uint64_t)sb__pg_get_i64(r, row, 0);
                    break;
                }
            }
        }
        for (size_t i = 0; i < nc; i++) {
            sb_pg_seq *x = sb__pg_locked_find(s, c[i].id);
            if (x && c[i].bumped) x->last_seq = c[i].last_seq;
        }
    }
    for (size_t j = 0; j < n; j++) {
        sb_store_append_item *first =
            items[j].rc == 0 && items[j].duplicate && items[j].msg->seq == 0
                ? run_earlier(&keys, items, items[j].msg)
                : NULL;
        if (!first) continue;
        Sbp__Message *m = items[j].msg, *o = first->msg;
        m->msg_id = o->msg_id;
        m->conv_id = o->conv_id;
        m->seq = o->seq;
        m->server_ts = o->server_ts;
    }
    rc = 0;
    s->dups_expected = false;
    /* The live PUSH carries the quote too, as every read does. */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        Sbp__Message *m = items[i].msg;
        if (items[i].rc == 0 && !items[i].duplicate && m->quote_seq &&
            !m->quote)
            rc = quote_load(s, m->conv_id, m->quote_seq, &m->quote);
    }
out:
    PQclear(r);
    free(js);
    free(jb);
    json_decref(rows);
    json_decref(bumps);
    free(keys.slot);
    free(seqs.slot);
    free(c);
    return rc;
}

/* ---- reads
 * --------------------------------------------------------------------- */

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

/* Adds to the page the messages of one conversation after seq cur (as the
 * SQLite store's sync_conv). */
static int sync_conv(sb_pg *s, uint64_t conv_id, uint64_t cur, uint32_t limit,
                     size_t bytes_max, size_t *bytes, Sbp__SyncResp *r,
                     bool *added, bool *stop)
{
    *added = false;
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    sb__pg_u64(&p, cur);
    sb__pg_int(&p, (int64_t)(limit - r->n_messages) + 1);
    PGresult *res;
    int rc = sb__pg_exec(s, PS_MSGS_AFTER, &p, &res);
    if (rc) return rc;
    for (int row = 0; row < PQntuples(res); row++) {
        size_t len = (size_t)PQgetlength(res, row, PM_BODY);
        if (r->n_messages == limit ||
            (bytes_max && r->n_messages > 0 && *bytes + len > bytes_max)) {
            r->more = true;
            *stop = true;
            break;
        }
        Sbp__Message *m;
        if ((rc = sb__pg_msg_from_row(s, res, row, &m))) break;
        r->messages[r->n_messages++] = m;
        *bytes += len;
        *added = true;
    }
    PQclear(res);
    if (rc == 0 && r->n_messages == limit) *stop = true;
    return rc;
}

/* The walk of the SQLite store's sync, on the same rules. */
int sb__pg_sync(sb_store *base, const char *user_id, bool all,
                const sb_store_cursor *cur, size_t n_cur, uint32_t limit,
                size_t bytes_max, Sbp__SyncResp **out)
{
    sb_pg *s = sb__pg(base);
    size_t convs_cap = 0, bytes = 0, unknown = 0;
    bool own = false, full = false;
    PGresult *walk = NULL;
    Sbp__SyncResp *r = malloc(sizeof *r);
    int rc = -ENOMEM;
    if (!r) goto err;
    sbp__sync_resp__init(r);
    r->messages = malloc(limit * sizeof *r->messages);
    if (!r->messages) goto err;
    if ((rc = sb__pg_read_begin(s, &own))) goto err;
    sb_pg_params p = {0};
    if (!all) sb__pg_str(&p, user_id);
    if ((rc = sb__pg_exec(s, all ? PS_CONVS_ALL : PS_CONVS_OF_USER, &p, &walk)))
        goto err;
    for (int row = 0; row < PQntuples(walk); row++) {
        uint64_t conv_id = (uint64_t)sb__pg_get_i64(walk, row, 0);
        uint64_t last_seq = (uint64_t)sb__pg_get_i64(walk, row, 1);
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
            if ((rc = sb__pg_conv_load(s, conv_id, &conv))) goto err;
            if ((rc = convs_push(r, &convs_cap, conv))) {
                sbp__conversation__free_unpacked(conv, NULL);
                goto err;
            }
        }
        if (r->more) break;
    }
    PQclear(walk);
    sb__pg_read_end(s, own);
    *out = r;
    return 0;
err:
    PQclear(walk);
    sb__pg_read_end(s, own);
    if (r) sbp__sync_resp__free_unpacked(r, NULL);
    return rc;
}

int sb__pg_history(sb_store *base, uint64_t conv_id, uint64_t before_seq,
                   uint32_t limit, Sbp__HistoryResp **out)
{
    sb_pg *s = sb__pg(base);
    bool own = false;
    PGresult *res = NULL;
    Sbp__HistoryResp *r = malloc(sizeof *r);
    int rc = -ENOMEM;
    if (!r) return rc;
    sbp__history_resp__init(r);
    r->conv_id = conv_id;
    r->messages = malloc(limit * sizeof *r->messages);
    if (!r->messages) goto err;
    if ((rc = sb__pg_read_begin(s, &own))) goto err;
    uint64_t last_seq;
    bool member;
    if ((rc = sb__pg_conv_member(s, conv_id, "", &last_seq, &member))) goto err;
    /* Newest first, one row past the page to tell whether older remain. */
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    sb__pg_u64(&p, before_seq);
    sb__pg_int(&p, (int64_t)limit + 1);
    if ((rc = sb__pg_exec(s, PS_MSGS_BEFORE, &p, &res))) goto err;
    for (int row = 0; row < PQntuples(res); row++) {
        if (r->n_messages == limit) {
            r->more = true;
            break;
        }
        Sbp__Message *m;
        if ((rc = sb__pg_msg_from_row(s, res, row, &m))) goto err;
        r->messages[r->n_messages++] = m;
    }
    PQclear(res);
    sb__pg_read_end(s, own);
    for (size_t i = 0, j = r->n_messages; i + 1 < j; i++, j--) {
        Sbp__Message *t = r->messages[i];
        r->messages[i] = r->messages[j - 1];
        r->messages[j - 1] = t;
    }
    *out = r;
    return 0;
err:
    PQclear(res);
    sb__pg_read_end(s, own);
    sbp__history_resp__free_unpacked(r, NULL);
    return rc;
}

int sb__pg_msg_get(sb_store *base, uint64_t conv_id, uint64_t seq,
                   Sbp__Message **out)
{
    sb_pg *s = sb__pg(base);
    bool own;
    int rc = sb__pg_read_begin(s, &own);
    if (rc) return rc;
    rc = sb__pg_msg_load(s, conv_id, seq, out);
    sb__pg_read_end(s, own);
    return rc;
}

/* The body stays in the table (for review and audit); reads blank it, and
 * a search never matches it. */
int sb__pg_recall(sb_store *base, uint64_t conv_id, uint64_t seq)
{
    sb_pg *s = sb__pg(base);
    sb_pg_params p = {0};
    sb__pg_u64(&p, conv_id);
    sb__pg_u64(&p, seq);
    PGresult *r;
    int rc = sb__pg_exec(s, PS_RECALL_GET, &p, &r);
    if (rc) return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return SB_E_NOT_FOUND;
    }
    int64_t msg_id = sb__pg_get_i64(r, 0, 0);
    bool recalled = sb__pg_get_bool(r, 0, 1);
    PQclear(r);
    if (recalled) return 0;
    p = (sb_pg_params){0};
    sb__pg_int(&p, msg_id);
    return sb__pg_exec(s, PS_RECALL_SET, &p, NULL);
}

/* ---- search
 * ---------------------------------------------------------------------- */

/* Every word as an ILIKE on the body (letters of any case match, as
 * SQLite's LIKE does for ASCII; a trigram index serves it for words of
 * three characters or more, Chinese as English), in the user's
 * conversations (or one, or all), newest first. Parameters: $1 the
 * conversation or the user, $2 rows, $3... the patterns. */
int sb__pg_search(sb_store *base, const char *user_id, bool all,
                  uint64_t conv_id, const sb_store_words *w, uint32_t limit,
                  Sbp__SearchResp **out)
{
    sb_pg *s = sb__pg(base);
    const char *pat[SB_STORE_SEARCH_WORDS_MAX];
    char *pats = sb__store_like_patterns(w, pat);
    Sbp__SearchResp *r = malloc(sizeof *r);
    PGresult *res = NULL;
    bool own = false;
    int rc = -ENOMEM;
    if (r) sbp__search_resp__init(r);
    if (!pats || !r || !(r->messages = malloc(limit * sizeof *r->messages)))
        goto out;
    if ((rc = sb__pg_read_begin(s, &own))) goto out;
    if (conv_id) {
        uint64_t last_seq;
        bool member = false;
        rc = sb__pg_conv_member(s, conv_id, all ? "" : user_id, &last_seq,
                                &member);
        if (rc == 0 && !all && !member) rc = SB_E_FORBIDDEN;
        if (rc) goto out;
    }
    char sql[1024 + SB_STORE_SEARCH_WORDS_MAX * 48];
    int n = snprintf(sql, sizeof sql,
                     "SELECT " SB_PG_MSG_COLS_M " FROM messages m"
                     " WHERE m.recalled = 0%s",
                     conv_id ? " AND m.conv_id = $1"
                     : all   ? ""
                             : " AND m.conv_id IN (SELECT conv_id FROM members"
                               " WHERE user_id = $1)");
    for (size_t i = 0; i < w->n; i++)
        n += snprintf(sql + n, sizeof sql - (size_t)n,
                      " AND m.body ILIKE $%zu ESCAPE '\\'", i + 3);
    snprintf(sql + n, sizeof sql - (size_t)n,
             " ORDER BY m.msg_id DESC LIMIT $2");
    sb_pg_params p = {0};
    if (conv_id)
        sb__pg_u64(&p, conv_id);
    else
        sb__pg_str(&p, user_id);
    sb__pg_int(&p, limit);
    for (size_t i = 0; i < w->n; i++)
        sb__pg_str(&p, pat[i]);
    /* Typed: with all, $1 appears nowhere to infer its type from. */
    Oid types[SB_PG_PARAMS_MAX] = {conv_id ? 20 : 25, 20};
    for (int i = 2; i < p.n; i++)
        types[i] = 25;
    if ((rc = sb__pg_exec_params(s, sql, p.n, types, p.v, p.len, p.fmt, &res)))
        goto out;
    for (int row = 0; row < PQntuples(res) && r->n_messages < limit; row++) {
        Sbp__Message *m;
        if ((rc = sb__pg_msg_from_row(s, res, row, &m))) goto out;
        r->messages[r->n_messages++] = m;
    }
out:
    PQclear(res);
    sb__pg_read_end(s, own);
    free(pats);
    if (rc) {
        if (r) sbp__search_resp__free_unpacked(r, NULL);
        return rc;
    }
    *out = r;
    return 0;
}
