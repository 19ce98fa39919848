/* The admin ops of sb_dataops.h, each a chain of store requests. */
#include "sb_dataops.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_pbjson.h"

#define EXPORT_PAGE 500

struct sb_dataops {
    sb_storeq *q;
    sb_gw *gw;
    sb_dataops_erase_hook erase_hook;
    void *erase_ud;
};

/* An export under way: the pages read so far. */
typedef struct export_job {
    sb_dataops *d;
    uint64_t conn;
    uint32_t rid;
    char user[SB_ID_BYTES_MAX + 1];
    json_t *convs, *msgs;  /* arrays */
    Sbp__Cursor **cursors; /* one per conversation seen: its last seq */
    size_t n_cursors, cap;
    size_t n_msgs;
} export_job;

int sb_dataops_new(sb_storeq *storeq, sb_dataops **out)
{
    sb_dataops *d = calloc(1, sizeof *d);
    if (!d) return -ENOMEM;
    d->q = storeq;
    *out = d;
    return 0;
}

void sb_dataops_set_gw(sb_dataops *d, sb_gw *gw)
{
    d->gw = gw;
}

void sb_dataops_set_erase_hook(sb_dataops *d, sb_dataops_erase_hook hook,
                               void *ud)
{
    d->erase_hook = hook;
    d->erase_ud = ud;
}

void sb_dataops_free(sb_dataops *d)
{
    free(d);
}

/* Answers with j (taken) as its text, or with rc. */
static void answer(sb_dataops *d, uint64_t conn, uint32_t rid, int rc,
                   json_t *j)
{
    char *text = rc == 0 && j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (rc == 0 && !text) rc = -ENOMEM;
    if (rc)
        sb_gw_admin_done(d->gw, conn, rid, rc, NULL);
    else
        sb_gw_admin_text(d->gw, conn, rid, text);
    free(text);
}

static json_t *pb_json(const ProtobufCMessage *m)
{
    json_t *j = sb_pbjson_from_msg(m);
    return j ? j : json_null();
}

static sb_req *req_new(sb_dataops *d, sb_req_kind kind, uint64_t conn,
                       uint32_t rid, sb_req_done_cb done)
{
    sb_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->kind = kind;
    r->done = done;
    r->ctx = d;
    r->owner = conn;
    r->rid = rid;
    return r;
}

/* ---- conv-get -------------------------------------------------------------
 */

static void conv_get_done(sb_req *r)
{
    sb_dataops *d = r->ctx;
    Sbp__Conversation *c = r->u.conv_get.conv;
    answer(d, r->owner, r->rid, r->rc,
           r->rc == 0 && c ? pb_json(&c->base) : NULL);
    if (c) sbp__conversation__free_unpacked(c, NULL);
    free(r);
}

/* ---- user-export ----------------------------------------------------------
 */

static void export_free(export_job *x)
{
    json_decref(x->convs);
    json_decref(x->msgs);
    for (size_t i = 0; i < x->n_cursors; i++)
        free(x->cursors[i]);
    free(x->cursors);
    free(x);
}

/* Raises (or adds) the cursor of conv to seq. */
static int cursor_raise(export_job *x, uint64_t conv, uint64_t seq)
{
    for (size_t i = 0; i < x->n_cursors; i++)
        if (x->cursors[i]->conv_id == conv) {
            if (seq > x->cursors[i]->seq) x->cursors[i]->seq = seq;
            return 0;
        }
    if (x->n_cursors == x->cap) {
        size_t cap = x->cap ? 2 * x->cap : 16;
        Sbp__Cursor **c = realloc(x->cursors, cap * sizeof *c);
        if (!c) return -ENOMEM;
        x->cursors = c;
        x->cap = cap;
    }
    Sbp__Cursor *c = malloc(sizeof *c);
    if (!c) return -ENOMEM;
    sbp__cursor__init(c);
    c->conv_id = conv;
    c->seq = seq;
    x->cursors[x->n_cursors++] = c;
    return 0;
}

static void export_page(export_job *x);

static void export_done(sb_req *r)
{
    export_job *x = r->data;
    Sbp__SyncResp *resp = r->u.sync.resp;
    int rc = r->rc;
    bool more = false;
    for (size_t i = 0; rc == 0 && resp && i < resp->n_convs; i++) {
        Sbp__Conversation *c = resp->convs[i];
        bool seen = false;
        for (size_t k = 0; k < x->n_cursors; k++)
            seen |= x->cursors[k]->conv_id == c->conv_id;
        if (!seen) {
            json_array_append_new(x->convs, pb_json(&c->base));
            rc = cursor_raise(x, c->conv_id, 0);
        }
    }
    for (size_t i = 0; rc == 0 && resp && i < resp->n_messages; i++) {
        Sbp__Message *m = resp->messages[i];
        json_array_append_new(x->msgs, pb_json(&m->base));
        x->n_msgs++;
        rc = cursor_raise(x, m->conv_id, m->seq);
    }
    if (resp) {
        more = resp->more;
        sbp__sync_resp__free_unpacked(resp, NULL);
    }
    free(r);
    if (rc) {
        answer(x->d, x->conn, x->rid, rc, NULL);
        export_free(x);
    } else if (more && x->n_msgs < SB_DATAOPS_EXPORT_MSGS_MAX) {
        export_page(x);
    } else {
        json_t *j =
            json_pack("{s:s,s:O,s:O,s:b,s:s}", "user", x->user, "conversations",
                      x->convs, "messages", x->msgs, "truncated", more, "note",
                      "messages of the conversations the user is a "
                      "member of, in the protocol's JSON encoding; "
                      "messages the user erased have empty bodies");
        answer(x->d, x->conn, x->rid, 0, j);
        export_free(x);
    }
}

static void export_page(export_job *x)
{
    sb_req *r = req_new(x->d, SB_REQ_SYNC, x->conn, x->rid, export_done);
    if (!r) {
        answer(x->d, x->conn, x->rid, -ENOMEM, NULL);
        export_free(x);
        return;
    }
    r->data = x;
    snprintf(r->u.sync.user_id, sizeof r->u.sync.user_id, "%s", x->user);
    r->u.sync.cursors = x->cursors;
    r->u.sync.n_cursors = x->n_cursors;
    r->u.sync.limit = EXPORT_PAGE;
    sb_storeq_submit(x->d->q, r);
}

/* ---- user-erase -----------------------------------------------------------
 */

static void erase_done(sb_req *r)
{
    sb_dataops *d = r->ctx;
    if (r->rc) {
        answer(d, r->owner, r->rid, r->rc, NULL);
        free(r);
        return;
    }
    const sb_store_erased *e = &r->u.erase.erased;
    json_t *att = d->erase_hook
                      ? d->erase_hook(d->erase_ud, r->u.erase.user_id, e)
                      : NULL;
    json_t *j = json_pack(
        "{s:s,s:{s:I,s:I,s:I,s:I},s:o,s:[s,s,s,s,s]}", "user",
        r->u.erase.user_id, "erased", "message_bodies", (json_int_t)e->messages,
        "device_cursors", (json_int_t)e->cursors, "webhook_events",
        (json_int_t)e->outbox_events, "rating_comments",
        (json_int_t)e->csat_comments, "attachments",
        att ? (json_t *)att
            : json_string("none: this server stores no attachments"),
        "kept",
        "each message's id, conversation, seq, time, type and sender id, so "
        "that every conversation keeps its dense seqs",
        "the user's membership of conversations and read positions",
        "the user's id and role in the user record",
        "messages of others in the same conversations, and system events",
        "the ratings (1-5) of the user's conversations, without comments");
    answer(d, r->owner, r->rid, 0, j);
    free(r);
}

/* ---- the ops --------------------------------------------------------------
 */

int sb_dataops_admin(sb_dataops *d, uint64_t conn_id, uint32_t rid,
                     const char *op, const char *body)
{
    if (strcmp(op, "conv-get") != 0 && strcmp(op, "user-export") != 0 &&
        strcmp(op, "user-erase") != 0)
        return SB_E_INVALID;
    json_t *args = json_loads(body ? body : "", 0, NULL);
    const char *user = json_string_value(json_object_get(args, "user"));
    json_t *conv = json_object_get(args, "conv_id");
    int rc = 0;
    sb_req *r = NULL;
    if (strcmp(op, "conv-get") == 0) {
        if (!json_is_integer(conv) || json_integer_value(conv) < 1) {
            rc = SB_E_INVALID;
        } else if (!(r = req_new(d, SB_REQ_CONV_GET, conn_id, rid,
                                 conv_get_done))) {
            rc = -ENOMEM;
        } else {
            r->u.conv_get.conv_id = (uint64_t)json_integer_value(conv);
        }
    } else if (!user || !user[0] || strlen(user) > SB_ID_BYTES_MAX) {
        rc = SB_E_INVALID;
    } else if (strcmp(op, "user-erase") == 0) {
        if (!(r = req_new(d, SB_REQ_USER_ERASE, conn_id, rid, erase_done)))
            rc = -ENOMEM;
        else
            snprintf(r->u.erase.user_id, sizeof r->u.erase.user_id, "%s", user);
    } else {
        export_job *x = calloc(1, sizeof *x);
        if (!x || !(x->convs = json_array()) || !(x->msgs = json_array())) {
            if (x) export_free(x);
            rc = -ENOMEM;
        } else {
            x->d = d;
            x->conn = conn_id;
            x->rid = rid;
            snprintf(x->user, sizeof x->user, "%s", user);
            export_page(x);
        }
    }
    json_decref(args);
    if (rc == SB_E_INVALID) {
        sb_gw_admin_done(d->gw, conn_id, rid, rc,
                         strcmp(op, "conv-get") == 0
                             ? "want {\"conv_id\": N}"
                             : "want {\"user\": \"ID\"}");
        return 0;
    }
    if (rc) return rc;
    if (r) sb_storeq_submit(d->q, r);
    return 0;
}
