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
    bool truncated;
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
static void export_contact(export_job *x);

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
        x->truncated = more;
        export_contact(x);
    }
}

/* The last part of an export: the user's contact, then the answer. */
static void export_contact_done(sb_req *r)
{
    export_job *x = r->data;
    Sbp__Contact *c = r->u.contact.contact;
    if (r->rc && r->rc != SB_E_NOT_FOUND) {
        answer(x->d, x->conn, x->rid, r->rc, NULL);
    } else {
        json_t *j = json_pack(
            "{s:s,s:O,s:O,s:o,s:b,s:s}", "user", x->user, "conversations",
            x->convs, "messages", x->msgs, "contact",
            r->rc == 0 && c && c->updated_ts ? pb_json(&c->base) : json_null(),
            "truncated", x->truncated, "note",
            "messages of the conversations the user is a "
            "member of, in the protocol's JSON encoding; "
            "messages the user erased have empty bodies");
        answer(x->d, x->conn, x->rid, 0, j);
    }
    if (c) sbp__contact__free_unpacked(c, NULL);
    for (size_t i = 0; i < r->u.contact.n_convs; i++)
        sbp__conversation__free_unpacked(r->u.contact.convs[i], NULL);
    free(r->u.contact.convs);
    export_free(x);
    free(r);
}

static void export_contact(export_job *x)
{
    sb_req *r =
        req_new(x->d, SB_REQ_CONTACT_GET, x->conn, x->rid, export_contact_done);
    if (!r) {
        answer(x->d, x->conn, x->rid, -ENOMEM, NULL);
        export_free(x);
        return;
    }
    r->data = x;
    r->u.contact.all = true;
    snprintf(r->u.contact.user_id, sizeof r->u.contact.user_id, "%s", x->user);
    sb_storeq_submit(x->d->q, r);
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
        "{s:s,s:{s:I,s:I,s:I,s:I,s:I},s:o,s:[s,s,s,s,s]}", "user",
        r->u.erase.user_id, "erased", "message_bodies", (json_int_t)e->messages,
        "device_cursors", (json_int_t)e->cursors, "webhook_events",
        (json_int_t)e->outbox_events, "rating_comments",
        (json_int_t)e->csat_comments, "contacts", (json_int_t)e->contacts,
        "attachments",
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

/* ---- contact-identify ------------------------------------------------------
 */

/* The site's signed identity (POST /api/identify, which checked the
 * hash): what its page says of the user, kept as the user's contact,
 * verified. The change's attributes live in the request's data. */
typedef struct identify_job {
    Sbp__ContactAttr *attrs[SB_CONTACT_ATTRS_MAX];
    Sbp__ContactAttr room[SB_CONTACT_ATTRS_MAX];
    char *name, *email;
    json_t *args; /* holds the strings the attributes point at */
} identify_job;

static void identify_done(sb_req *r)
{
    sb_dataops *d = r->ctx;
    identify_job *j = r->data;
    Sbp__Contact *c = r->u.contact.contact;
    answer(d, r->owner, r->rid, r->rc,
           r->rc == 0 && c ? pb_json(&c->base) : NULL);
    if (c) sbp__contact__free_unpacked(c, NULL);
    for (size_t i = 0; i < r->u.contact.n_convs; i++)
        sbp__conversation__free_unpacked(r->u.contact.convs[i], NULL);
    free(r->u.contact.convs);
    json_decref(j->args);
    free(j);
    free(r);
}

/* {"user", "name", "email", "attributes": {key: "value"}}: SB_E_INVALID
 * for another shape, SB_E_TOO_LARGE for too many attributes. */
static int identify_start(sb_dataops *d, uint64_t conn, uint32_t rid,
                          json_t *args, const char *user)
{
    json_t *attrs = json_object_get(args, "attributes");
    json_t *name = json_object_get(args, "name");
    json_t *email = json_object_get(args, "email");
    if ((attrs && !json_is_object(attrs)) || (name && !json_is_string(name)) ||
        (email && !json_is_string(email)))
        return SB_E_INVALID;
    if (json_object_size(attrs) > SB_CONTACT_ATTRS_MAX) return SB_E_TOO_LARGE;
    identify_job *j = calloc(1, sizeof *j);
    sb_req *r =
        j ? req_new(d, SB_REQ_CONTACT_SET, conn, rid, identify_done) : NULL;
    if (!r) {
        free(j);
        return -ENOMEM;
    }
    j->args = json_incref(args);
    sb_store_contact_change *ch = &r->u.contact.change;
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(attrs, k, v)
    {
        if (!json_is_string(v)) {
            json_decref(j->args);
            free(j);
            free(r);
            return SB_E_INVALID;
        }
        sbp__contact_attr__init(&j->room[n]);
        j->room[n].key = (char *)k;
        j->room[n].value = (char *)json_string_value(v);
        j->attrs[n] = &j->room[n];
        n++;
    }
    ch->name = json_string_value(name);
    ch->email = json_string_value(email);
    ch->attrs = j->attrs;
    ch->n_attrs = n;
    ch->verified = true;
    ch->by = "site";
    r->data = j;
    r->u.contact.all = true;
    snprintf(r->u.contact.user_id, sizeof r->u.contact.user_id, "%s", user);
    snprintf(r->u.contact.asker, sizeof r->u.contact.asker, "site");
    sb_storeq_submit(d->q, r);
    return 0;
}

/* ---- the ops --------------------------------------------------------------
 */

int sb_dataops_admin(sb_dataops *d, uint64_t conn_id, uint32_t rid,
                     const char *op, const char *body)
{
    if (strcmp(op, "conv-get") != 0 && strcmp(op, "user-export") != 0 &&
        strcmp(op, "user-erase") != 0 && strcmp(op, "contact-identify") != 0)
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
    } else if (strcmp(op, "contact-identify") == 0) {
        rc = identify_start(d, conn_id, rid, args, user);
        if (rc == SB_E_TOO_LARGE) {
            json_decref(args);
            sb_gw_admin_done(d->gw, conn_id, rid, rc, "at most 32 attributes");
            return 0;
        }
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
