/* The gateway's delivery core: sessions, the frame table and its
 * dispatcher, replies, storing messages and the conversation cache (the
 * pushes, their retries, receipts and cursors are in sb_gwpush.c), driven
 * by events and answering through sb_gw_io. No sockets, no clock: every entry
 * point is given the current time. Every frame kind comes in through the table,
 * from the modules above; the events they hear go out through sb_gw_hooks. */
#include "sb_gwcore.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_i18n.h"
#include "sb_sysmsg.h"
#include "sb_ws.h"

/* ---- small helpers ---------------------------------------------------------
 */

void sb__gw_gmsg_unref(gmsg *g)
{
    if (!g || --g->refs > 0) return;
    sbp__message__free_unpacked(g->m, NULL);
    sb_buf_free(&g->enc[0]);
    sb_buf_free(&g->enc[1]);
    free(g);
}

sb_req *sb__gw_req_new(sb_gw *gw, sb_req_kind kind, const sess *s, uint32_t rid,
                       sb_req_done_cb done)
{
    sb_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->kind = kind;
    r->done = done;
    r->ctx = gw;
    r->owner = s ? s->id : 0;
    r->rid = rid;
    r->now_ms = gw->now_ms;
    return r;
}

sess *sb__gw_req_back(sb_gw *gw, const sb_req *r, bool closing_too)
{
    gw->now_ms = gw->io.now(gw->io.ud);
    assert(gw->inflight > 0);
    gw->inflight--;
    sess *s = r->owner ? sb__gw_sess_get(gw, r->owner) : NULL;
    if (s && s->state == SESS_CLOSING && !closing_too) s = NULL;
    return s;
}

void sb__gw_submit(sb_gw *gw, sb_req *r)
{
    gw->inflight++;
    gw->io.store(gw->io.ud, r);
}

void sb__gw_quiet_done(sb_req *r)
{
    sb__gw_req_back(r->ctx, r, false);
    free(r);
}

void sb__gw_copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The ids of a session before its HELLO: no user, no device. Never
 * written. */
static char no_ids[2] = "";

int sb__gw_sess_set_ids(sess *s, const char *user_id, const char *device_id)
{
    size_t nu = strnlen(user_id, SB_ID_BYTES_MAX);
    size_t nd = strnlen(device_id, SB_ID_BYTES_MAX);
    char *ids = malloc(nu + nd + 2);
    if (!ids) return -ENOMEM;
    memcpy(ids, user_id, nu);
    ids[nu] = '\0';
    memcpy(ids + nu + 1, device_id, nd);
    ids[nu + 1 + nd] = '\0';
    if (s->user_id != no_ids) free(s->user_id);
    s->user_id = ids;
    return 0;
}

bool sb__gw_valid_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= SB_ID_BYTES_MAX;
}

sess *sb__gw_sess_get(sb_gw *gw, uint64_t id)
{
    return sb_map_get(&gw->sessions, id);
}

user *sb__gw_user_get(sb_gw *gw, const char *id)
{
    uint64_t h = sb_map_hash_str(id);
    for (user *u = sb_map_get(&gw->users, h); u; u = u->hash_next)
        if (strcmp(u->id, id) == 0) return u;
    return NULL;
}

member *sb__gw_conv_member(conv *c, const char *user_id)
{
    for (size_t i = 0; i < c->n_members; i++)
        if (strcmp(c->members[i].user_id, user_id) == 0) return &c->members[i];
    return NULL;
}

void sb__gw_conv_member_drop(conv *c, const char *user_id)
{
    member *m = sb__gw_conv_member(c, user_id);
    if (!m) return;
    size_t i = (size_t)(m - c->members);
    memmove(m, m + 1, (c->n_members - i - 1) * sizeof *m);
    c->n_members--;
}

bool sb__gw_may_access(const sess *s, conv *c)
{
    return s->role == SBP__ROLE__ROLE_ADMIN ||
           sb__gw_conv_member(c, s->user_id);
}

/* ---- sending frames --------------------------------------------------------
 */

/* Where a frame keeps its body of kind k: every body of the oneof shares
 * one place, a pointer, which the descriptor locates. */
static void *frame_body_at(const Sbp__Frame *f, Sbp__Frame__BodyCase k)
{
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field(&sbp__frame__descriptor,
                                                (unsigned)k);
    assert(fd && fd->type == PROTOBUF_C_TYPE_MESSAGE);
    return (char *)f + fd->offset;
}

/* Every frame but PUSH goes out at once, after the messages queued for
 * the session: the device sees frames in the order they were made (a
 * SEND_ACK with seq n after the PUSH of n-1, which it surfaces first). */
void sb__gw_send(sb_gw *gw, sess *s, uint32_t rid, Sbp__Frame__BodyCase k,
                 void *body)
{
    if (!s || s->state == SESS_CLOSING) return;
    if (s->proxy) {
        sb__gw_proxy_send(gw, s, rid, k, body);
        return;
    }
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = rid;
    f.body_case = k;
    memcpy(frame_body_at(&f, k), &body, sizeof body);
    sb__gw_push_flush(gw, s);
    gw->scratch.len = 0;
    if (sb_frame_encode(s->enc, &f, &gw->scratch) != 0) return;
    gw->stats.frames_out[k < SB_GW_FRAME_KINDS ? k : 0]++;
    gw->io.send(gw->io.ud, s->id, gw->scratch.data, gw->scratch.len);
}

/* Tells the shell of a session event (sb_gw_event), when it listens. */
static void gw_event(sb_gw *gw, const char *event, const sess *s,
                     uint64_t conv_id, uint32_t rid, int code, const char *text)
{
    if (!gw->io.event) return;
    sb_gw_event e = {.event = event,
                     .session = s->id,
                     .user = s->user_id,
                     .device = sb__gw_sess_device(s),
                     .conv = conv_id,
                     .rid = rid,
                     .code = code,
                     .text = text ? text : ""};
    gw->io.event(gw->io.ud, &e);
}

/* ERROR for rc, saying text (rc's own words when NULL or empty), about
 * the SEND client_msg_id (NULL: none) to conversation conv_id (0: none,
 * for the log). */
static void send_error(sb_gw *gw, sess *s, uint32_t rid, int rc,
                       const char *text,
                       const ProtobufCBinaryData *client_msg_id,
                       uint64_t conv_id)
{
    if (!s) return;
    gw->stats.errors++;
    Sbp__Error e = SBP__ERROR__INIT;
    e.code = sb_error_code(rc);
    e.text = (char *)(text && *text ? text : sb_strerror(rc));
    gw->stats
        .errors_by_code[(unsigned)e.code < SB_GW_ERROR_CODES ? e.code : 0]++;
    gw_event(gw, "request_refused", s, conv_id, rid, (int)e.code, e.text);
    if (client_msg_id) e.client_msg_id = *client_msg_id;
    sb__gw_send(gw, s, rid, SBP__FRAME__BODY_ERROR, &e);
}

void sb__gw_error(sb_gw *gw, sess *s, uint32_t rid, int rc)
{
    send_error(gw, s, rid, rc, NULL, NULL, 0);
}

void sb__gw_error_text(sb_gw *gw, sess *s, uint32_t rid, int rc,
                       const char *text)
{
    send_error(gw, s, rid, rc, text, NULL, 0);
}

void sb__gw_reply_rc(sb_gw *gw, sess *s, uint32_t rid, int rc)
{
    Sbp__Ok ok = SBP__OK__INIT;
    if (rc)
        send_error(gw, s, rid, rc, NULL, NULL, 0);
    else
        sb__gw_send(gw, s, rid, SBP__FRAME__BODY_OK, &ok);
}

/* A SEND's client_msg_id, by which the device matches an ERROR to its
 * message; one too long to be an id is not echoed. */
static const ProtobufCBinaryData *frame_cid(const Sbp__Frame *f)
{
    if (f->body_case != SBP__FRAME__BODY_SEND) return NULL;
    const ProtobufCBinaryData *cid = &f->send->client_msg_id;
    return cid->len && cid->len <= 64 ? cid : NULL;
}

static uint64_t body_conv_id(const Sbp__Frame *f, const gw_entry *e);

void sb__gw_frame_error(sb_gw *gw, sess *s, const Sbp__Frame *f, int rc)
{
    const gw_entry *e =
        f->body_case < GW_BODY_CASES ? &gw->table[f->body_case] : NULL;
    uint64_t conv_id =
        e && e->row && (e->row->flags & SB_GW_CONV) ? body_conv_id(f, e) : 0;
    send_error(gw, s, f->rid, rc, NULL, frame_cid(f), conv_id);
}

void sb__gw_send_members(sb_gw *gw, conv *c, Sbp__Frame__BodyCase k, void *body,
                         const sess *skip)
{
    for (size_t i = 0; i < c->n_members; i++) {
        user *u = sb__gw_user_get(gw, c->members[i].user_id);
        for (sess *s = u ? u->sessions : NULL; s; s = s->user_next)
            if (s != skip && s->state == SESS_READY)
                sb__gw_send(gw, s, 0, k, body);
        if (sb__gw_clustered(gw))
            sb__gw_cluster_frame(gw, c->members[i].user_id, k, body);
    }
}

void sb__gw_send_user(sb_gw *gw, const char *user_id, Sbp__Frame__BodyCase k,
                      void *body)
{
    user *u = sb__gw_user_get(gw, user_id);
    for (sess *s = u ? u->sessions : NULL; s; s = s->user_next)
        if (s->state == SESS_READY) sb__gw_send(gw, s, 0, k, body);
    if (sb__gw_clustered(gw)) sb__gw_cluster_frame(gw, user_id, k, body);
}

/* ---- sessions --------------------------------------------------------------
 */

void sb__gw_retry_unlink(sb_gw *gw, sess *s)
{
    if (!s->in_retry) return;
    if (s->retry_prev)
        s->retry_prev->retry_next = s->retry_next;
    else
        gw->retry_head = s->retry_next;
    if (s->retry_next) s->retry_next->retry_prev = s->retry_prev;
    s->retry_prev = s->retry_next = NULL;
    s->in_retry = false;
}

/* Moves s to state st, keeping the count of ready sessions. */
static void sess_state(sb_gw *gw, sess *s, enum sess_state st)
{
    unsigned role = (unsigned)s->role < SB_GW_ROLES ? (unsigned)s->role : 0;
    if (s->state == SESS_READY && st != SESS_READY)
        gw->stats.ready[s->enc][role]--;
    else if (s->state != SESS_READY && st == SESS_READY)
        gw->stats.ready[s->enc][role]++;
    s->state = st;
}

static void presence(sb_gw *gw, const sess *s, bool online)
{
    if (sb__gw_clustered(gw))
        sb__gw_presence_local(gw, s->user_id, s->role, online);
    else if (gw->hooks.presence)
        gw->hooks.presence(gw->hooks.ud, s->user_id, s->role, online);
}

/* Links ready session s to its user, made on its first session. Returns
 * 0 or -ENOMEM. */
static int user_link(sb_gw *gw, sess *s)
{
    user *u = sb__gw_user_get(gw, s->user_id);
    if (!u) {
        size_t n = strlen(s->user_id);
        u = calloc(1, sizeof *u + n + 1);
        if (!u) return -ENOMEM;
        memcpy(u->id, s->user_id, n + 1);
        u->hash = sb_map_hash_str(u->id);
        u->hash_next = sb_map_get(&gw->users, u->hash);
        if (sb_map_put(&gw->users, u->hash, u) != 0) {
            free(u);
            return -ENOMEM;
        }
    }
    bool first = u->sessions == NULL;
    s->user = u;
    s->user_next = u->sessions;
    u->sessions = s;
    if (first && sb__gw_clustered(gw))
        gw->io.subscribe(gw->io.ud, SB_GW_TOPIC_USER, u->id, true);
    if (first) presence(gw, s, true);
    return 0;
}

static void user_unlink(sb_gw *gw, sess *s)
{
    user *u = s->user;
    if (!u) return;
    for (sess **pp = &u->sessions; *pp; pp = &(*pp)->user_next) {
        if (*pp == s) {
            *pp = s->user_next;
            break;
        }
    }
    s->user = NULL;
    s->user_next = NULL;
    if (u->sessions) return;
    presence(gw, s, false);
    if (sb__gw_clustered(gw))
        gw->io.subscribe(gw->io.ud, SB_GW_TOPIC_USER, u->id, false);
    /* Last session of the user: drop the user from its hash chain. */
    user *head = sb_map_get(&gw->users, u->hash);
    if (head == u) {
        if (u->hash_next)
            sb_map_put(&gw->users, u->hash, u->hash_next);
        else
            sb_map_del(&gw->users, u->hash);
    } else {
        for (user *p = head; p; p = p->hash_next)
            if (p->hash_next == u) {
                p->hash_next = u->hash_next;
                break;
            }
    }
    free(u);
}

void sb__gw_close(sb_gw *gw, sess *s, uint16_t code, const char *why)
{
    if (s->state == SESS_CLOSING) return;
    if (s->proxy) {
        sb__gw_proxy_close(gw, s);
        return;
    }
    sb__gw_push_flush(gw, s); /* what was queued goes before the close */
    if (s->state == SESS_READY)
        gw_event(gw, "session_closed", s, 0, 0, code, why);
    sess_state(gw, s, SESS_CLOSING);
    user_unlink(gw, s);
    sb__gw_retry_unlink(gw, s);
    gw->io.close(gw->io.ud, s->id, code, why);
}

int sb__gw_sess_ready(sb_gw *gw, sess *s)
{
    /* One session per device: a reconnecting device replaces its old,
     * possibly half-dead, connection. Newer by when the connection
     * opened, not by when its HELLO came: the HELLO of a connection the
     * device gave up on may come after the one of the connection it uses
     * now, which it must not close. */
    user *u = sb__gw_user_get(gw, s->user_id);
    sess *next;
    for (sess *o = u ? u->sessions : NULL; o; o = o->user_next)
        if (strcmp(sb__gw_sess_device(o), sb__gw_sess_device(s)) == 0 &&
            o->open_seq > s->open_seq) {
            sb__gw_close(gw, s, SB_WS_CLOSE_NORMAL,
                         "replaced by a newer connection");
            return -EEXIST;
        }
    for (sess *o = u ? u->sessions : NULL; o; o = next) {
        next = o->user_next;
        if (strcmp(sb__gw_sess_device(o), sb__gw_sess_device(s)) == 0)
            sb__gw_close(gw, o, SB_WS_CLOSE_NORMAL,
                         "replaced by a newer connection");
    }
    sess_state(gw, s, SESS_READY);
    gw_event(gw, "session_ready", s, 0, 0, 0, sb_role_name(s->role));
    return user_link(gw, s);
}

/* ---- conversation cache ----------------------------------------------------
 */

static void conv_free(conv *c)
{
    if (!c) return;
    sb__gw_cluster_conv_free(c);
    free(c->members);
    free(c->note);
    free(c);
}

/* Copies the stored form's fields and members into c. Members that stay
 * keep their receipts; with keep_routing, c keeps its state, group, agent
 * and transfer note. Returns 0 or -ENOMEM (c unchanged). */
static int conv_fill(conv *c, const Sbp__Conversation *pc, bool keep_routing)
{
    member *ms = calloc(pc->n_members ? pc->n_members : 1, sizeof *ms);
    bool take_note = !keep_routing && pc->transfer_note[0];
    char *note = take_note ? strdup(pc->transfer_note) : NULL;
    if (!ms || (take_note && !note)) {
        free(ms);
        free(note);
        return -ENOMEM;
    }
    for (size_t i = 0; i < pc->n_members; i++) {
        const Sbp__Member *pm = pc->members[i];
        sb__gw_copy_str(ms[i].user_id, sizeof ms[i].user_id, pm->user_id);
        ms[i].role = pm->role;
        /* Receipts only move forward: the stored ones, or those this
         * gateway heard since (ahead of the store). */
        ms[i].delivered_seq = pm->delivered_seq;
        ms[i].read_seq = pm->read_seq;
        ms[i].read_seq_notified = pm->read_seq;
        member *old = c->members ? sb__gw_conv_member(c, ms[i].user_id) : NULL;
        if (old) {
            if (old->delivered_seq > ms[i].delivered_seq)
                ms[i].delivered_seq = old->delivered_seq;
            if (old->read_seq > ms[i].read_seq) ms[i].read_seq = old->read_seq;
            ms[i].read_seq_notified = old->read_seq_notified;
        }
    }
    free(c->members);
    c->members = ms;
    c->n_members = pc->n_members;
    c->id = pc->conv_id;
    c->created_ms = pc->created_ts;
    c->kind = pc->kind;
    if (!keep_routing) {
        c->state = pc->state;
        sb__gw_copy_str(c->group, sizeof c->group, pc->group);
        sb__gw_copy_str(c->agent, sizeof c->agent, pc->agent);
        free(c->note);
        c->note = note;
        sb__gw_copy_str(c->note_from, sizeof c->note_from, pc->transfer_from);
    }
    /* A stored form read before the latest messages were delivered may
     * be behind the cache. */
    if (pc->last_seq > c->last_seq) c->last_seq = pc->last_seq;
    sb__gw_copy_str(c->desk, sizeof c->desk, pc->desk);
    sb__gw_copy_str(c->customer, sizeof c->customer, pc->customer);
    if (pc->first_response_ms) c->first_response = true;
    c->csat_rating = pc->csat_rating;
    c->notes_of = pc->notes_of;
    if (!c->cs.known) c->cs.base = pc->last_seq;
    /* Dirty receipts of members that left are simply dropped. */
    return 0;
}

conv *sb__gw_conv_cache(sb_gw *gw, const Sbp__Conversation *pc)
{
    conv *c = sb_map_get(&gw->convs, pc->conv_id);
    if (c) return c;
    c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (conv_fill(c, pc, false) != 0 ||
        sb_map_put(&gw->convs, pc->conv_id, c) != 0) {
        conv_free(c);
        return NULL;
    }
    return c;
}

conv *sb__gw_conv_refresh(sb_gw *gw, const Sbp__Conversation *pc)
{
    conv *c = sb_map_get(&gw->convs, pc->conv_id);
    if (!c) return sb__gw_conv_cache(gw, pc);
    /* Routing is decided in memory where the desks are (here, unless
     * another node owns them) and the store follows: a stored form read
     * before the latest decision was written (a resumed service
     * conversation's) must not take it back. Elsewhere the owner's word
     * is taken whole. Out of memory leaves the cached form as it was. */
    (void)conv_fill(c, pc, !sb__gw_desk_elsewhere(gw));
    return c;
}

conv *sb__gw_conv_reload(sb_gw *gw, const Sbp__Conversation *pc)
{
    conv *c = sb_map_get(&gw->convs, pc->conv_id);
    if (!c) return sb__gw_conv_cache(gw, pc);
    (void)conv_fill(c, pc, false);
    return c;
}

/* ---- storing messages ------------------------------------------------------
 */

/* A message (a SEND's, or a server-made one with no session) is stored,
 * or refused: the sender hears which; the members get it. */
static void append_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, true);
    Sbp__Message *m = r->u.append.msg;
    if (s) s->pending_sends--;
    if (r->rc != 0) {
        if (s)
            send_error(gw, s, r->rid, r->rc, NULL, &m->client_msg_id,
                       m->conv_id);
        sbp__message__free_unpacked(m, NULL);
        free(r);
        return;
    }
    if (s) {
        Sbp__SendAck a = SBP__SEND_ACK__INIT;
        a.client_msg_id = m->client_msg_id;
        a.msg_id = m->msg_id;
        a.conv_id = m->conv_id;
        a.seq = m->seq;
        a.server_ts = m->server_ts;
        a.duplicate = r->u.append.duplicate;
        /* The sender's device shows what the others see. */
        if (r->u.append.masked) a.body = m->body;
        gw->stats.send_acks++;
        sb_hist_add(&gw->stats.send_ack_ms,
                    gw->now_ms > r->now_ms ? (uint64_t)(gw->now_ms - r->now_ms)
                                           : 0);
        sb__gw_send(gw, s, r->rid, SBP__FRAME__BODY_SEND_ACK, &a);
    }
    if (r->u.append.duplicate) {
        gw->stats.duplicates++;
        sbp__message__free_unpacked(m, NULL);
    } else {
        conv *c = sb_map_get(&gw->convs, m->conv_id);
        if (c && r->owner != 0 && c->kind == SBP__CONV_KIND__CONV_SERVICE &&
            sb__gw_desk_elsewhere(gw)) {
            sb__gw_desk_stored(gw, c, m);
        } else if (c && r->owner != 0 && gw->hooks.stored) {
            gw->hooks.stored(gw->hooks.ud, c, m);
        }
        sb__gw_deliver(gw, m, s);
    }
    free(r);
}

int sb__gw_append(sb_gw *gw, sess *s, uint32_t rid, Sbp__Message *m)
{
    return sb__gw_append_send(gw, s, rid, m, false);
}

int sb__gw_append_send(sb_gw *gw, sess *s, uint32_t rid, Sbp__Message *m,
                       bool masked)
{
    sb_req *r = sb__gw_req_new(gw, SB_REQ_MSG_APPEND, s, rid, append_done);
    if (!r) return -ENOMEM;
    r->u.append.msg = m;
    r->u.append.masked = masked;
    const conv *c = sb_map_get(&gw->convs, m->conv_id);
    r->u.append.note = c && c->kind == SBP__CONV_KIND__CONV_NOTES;
    if (s) s->pending_sends++;
    sb__gw_submit(gw, r);
    return 0;
}

/* ---- the frame table -------------------------------------------------------
 */

void sb__gw_handle(sb_gw *gw, const sb_gw_row *rows, size_t n, void *ud)
{
    for (size_t i = 0; i < n; i++) {
        const sb_gw_row *row = &rows[i];
        assert(row->body > 0 && row->body < GW_BODY_CASES && row->handle);
        gw_entry *e = &gw->table[row->body];
        assert(!e->row);
        e->row = row;
        e->ud = ud;
        if (!(row->flags & SB_GW_CONV)) continue;
        /* The body's conv_id, found once in its descriptor. */
        const ProtobufCFieldDescriptor *body =
            protobuf_c_message_descriptor_get_field(&sbp__frame__descriptor,
                                                    (unsigned)row->body);
        const ProtobufCFieldDescriptor *id =
            protobuf_c_message_descriptor_get_field_by_name(body->descriptor,
                                                            "conv_id");
        assert(id && id->type == PROTOBUF_C_TYPE_UINT64);
        e->conv_off = id->offset;
    }
}

void sb__gw_hooks_set(sb_gw *gw, const sb_gw_hooks *h)
{
    assert(!gw->hooks.ud && !gw->hooks.free);
    gw->hooks = *h;
}

static void dispatch(sb_gw *gw, sess *s, Sbp__Frame *f, bool parked);

/* Frames parked for one conversation, in the order they came. */
typedef struct parked {
    struct parked *next;
    uint64_t sess_id;
    Sbp__Frame *f;
} parked;

typedef struct parkq {
    parked *head, *tail;
} parkq;

/* The conversation the parked frames need is loaded (or not found): they
 * go on in the order they came, so that a session's SENDs to it are
 * stored in the order it sent them. */
static void conv_got(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sb__gw_req_back(gw, r, false);
    parkq *q = sb_map_del(&gw->parked, r->u.conv_get.conv_id);
    if (r->rc == 0) sb__gw_conv_cache(gw, r->u.conv_get.conv);
    if (r->u.conv_get.conv)
        sbp__conversation__free_unpacked(r->u.conv_get.conv, NULL);
    for (parked *p = q ? q->head : NULL, *next; p; p = next) {
        next = p->next;
        sess *s = sb__gw_sess_get(gw, p->sess_id);
        if (!s) {
            sb_frame_free(p->f);
        } else if (r->rc != 0) {
            sb__gw_frame_error(gw, s, p->f, r->rc);
            sb_frame_free(p->f);
        } else {
            dispatch(gw, s, p->f, true);
        }
        free(p);
    }
    free(q);
    free(r);
}

/* Parks f (taken) until the store has looked up conversation conv_id,
 * behind the frames already parked for it. */
static void park(sb_gw *gw, sess *s, Sbp__Frame *f, uint64_t conv_id)
{
    parkq *q = sb_map_get(&gw->parked, conv_id);
    parked *p = malloc(sizeof *p);
    if (p && !q) {
        sb_req *r = sb__gw_req_new(gw, SB_REQ_CONV_GET, NULL, 0, conv_got);
        q = r ? calloc(1, sizeof *q) : NULL;
        if (!q || sb_map_put(&gw->parked, conv_id, q) != 0) {
            free(r);
            free(q);
            q = NULL;
        } else {
            r->u.conv_get.conv_id = conv_id;
            sb__gw_submit(gw, r);
        }
    }
    if (!p || !q) {
        free(p);
        sb__gw_frame_error(gw, s, f, -ENOMEM);
        sb_frame_free(f);
        return;
    }
    p->next = NULL;
    p->sess_id = s->id;
    p->f = f;
    if (q->tail)
        q->tail->next = p;
    else
        q->head = p;
    q->tail = p;
}

/* ---- desk requests before the routing state is ready -----------------------
 */

/* Desk requests held at most; more are answered ERR_UNAVAILABLE. */
#define GW_DESK_WAIT_MAX 4096

typedef struct held_frame {
    struct held_frame *next;
    uint64_t sess_id;
    size_t len;
    uint8_t data[]; /* the frame, protobuf */
} held_frame;

void sb__gw_desk_hold(sb_gw *gw, sess *s, const Sbp__Frame *f)
{
    size_t n = sbp__frame__get_packed_size(f);
    held_frame *h =
        gw->n_desk_wait < GW_DESK_WAIT_MAX ? malloc(sizeof *h + n) : NULL;
    if (!h) {
        sb__gw_error(gw, s, f->rid, SB_E_UNAVAILABLE);
        return;
    }
    h->next = NULL;
    h->sess_id = s->id;
    h->len = sbp__frame__pack(f, h->data);
    if (gw->desk_wait_tail)
        gw->desk_wait_tail->next = h;
    else
        gw->desk_wait = h;
    gw->desk_wait_tail = h;
    gw->n_desk_wait++;
}

void sb__gw_desk_ready(sb_gw *gw, bool ready)
{
    gw->desk_ready = ready;
    /* What waited goes on in order (or, on a node that no longer owns the
     * desks, to the one that does). Requests held again meanwhile queue
     * behind. */
    held_frame *h = ready || sb__gw_desk_elsewhere(gw) ? gw->desk_wait : NULL;
    if (!h) return;
    gw->desk_wait = gw->desk_wait_tail = NULL;
    gw->n_desk_wait = 0;
    while (h) {
        held_frame *next = h->next;
        sess *s = sb__gw_sess_get(gw, h->sess_id);
        Sbp__Frame *f = s ? sbp__frame__unpack(NULL, h->len, h->data) : NULL;
        if (f) dispatch(gw, s, f, true);
        free(h);
        h = next;
    }
}

static void desk_wait_free(sb_gw *gw)
{
    while (gw->desk_wait) {
        held_frame *h = gw->desk_wait;
        gw->desk_wait = h->next;
        free(h);
    }
}

/* Takes one token from s's SEND bucket, refilled for the time since the
 * last refill; false when the bucket is empty. */
static bool send_token_take(sb_gw *gw, sess *s)
{
    if (gw->cfg.sends_per_s == 0) return true;
    uint64_t cap = (uint64_t)gw->cfg.send_burst * 1000;
    if (gw->now_ms > s->send_refill_ms) {
        uint64_t add = (uint64_t)(gw->now_ms - s->send_refill_ms) *
                       gw->cfg.sends_per_s; /* thousandths per ms */
        s->send_mtokens =
            add >= cap - s->send_mtokens ? cap : s->send_mtokens + add;
        s->send_refill_ms = gw->now_ms;
    }
    if (s->send_mtokens < 1000) return false;
    s->send_mtokens -= 1000;
    return true;
}

/* The conversation id in f's body, where e's row says it is. */
static uint64_t body_conv_id(const Sbp__Frame *f, const gw_entry *e)
{
    void *body;
    uint64_t id;
    memcpy(&body, frame_body_at(f, f->body_case), sizeof body);
    memcpy(&id, (char *)body + e->conv_off, sizeof id);
    return id;
}

/* Checks f's row's preconditions in order and runs its handler; the first
 * that fails is answered instead. Takes f. A frame parked for its
 * conversation comes back with parked set: its token is already taken. */
static void dispatch(sb_gw *gw, sess *s, Sbp__Frame *f, bool parked)
{
    const gw_entry *e =
        &gw->table[f->body_case < GW_BODY_CASES ? f->body_case
                                                : SBP__FRAME__BODY__NOT_SET];
    const sb_gw_row *row = e->row;
    uint32_t flags = row ? row->flags : SB_GW_READY;
    conv *c = NULL;
    int rc = 0;
    if (s->state == SESS_CLOSING) goto out;
    if ((flags & SB_GW_READY) && s->state != SESS_READY) {
        sb__gw_error(gw, s, f->rid,
                     s->state == SESS_NEW ? SB_E_UNAUTHENTICATED
                                          : SB_E_UNAVAILABLE);
        if (s->state == SESS_NEW)
            sb__gw_close(gw, s, SB_WS_CLOSE_POLICY, "HELLO required first");
        goto out;
    }
    if (!row)
        rc = SB_E_UNKNOWN_TYPE;
    else if ((flags & SB_GW_RATED) && !parked && !send_token_take(gw, s)) {
        rc = SB_E_RATE_LIMITED;
        gw->stats.rate_limited++;
    } else if (row->check)
        rc = row->check(gw, s, f);
    if (rc) goto refuse;
    if ((flags & SB_GW_DESK) && sb__gw_desk_elsewhere(gw)) {
        sb__gw_desk_forward(gw, s, f);
        goto out;
    }
    if ((flags & SB_GW_DESK) && !gw->desk_ready) {
        sb__gw_desk_hold(gw, s, f);
        goto out;
    }
    if (flags & SB_GW_CONV) {
        uint64_t id = body_conv_id(f, e);
        if (!(c = sb_map_get(&gw->convs, id)) ||
            (!parked && sb_map_get(&gw->parked, id))) {
            park(gw, s, f, id);
            return;
        }
    }
    /* Membership first: an outsider learns nothing more of the
     * conversation, not even which roles may act in it. */
    if (((flags & SB_GW_MEMBER) && !sb__gw_conv_member(c, s->user_id)) ||
        ((flags & SB_GW_ACCESS) && !sb__gw_may_access(s, c))) {
        send_error(gw, s, f->rid, SB_E_FORBIDDEN, SB_GW_NOT_MEMBER,
                   frame_cid(f), c->id);
        goto out;
    }
    if (row->roles && !(row->roles & SB_GW_ROLE(s->role))) {
        sb__gw_error_text(gw, s, f->rid, SB_E_FORBIDDEN,
                          row->why ? row->why : "not allowed for this role");
        goto out;
    }
    row->handle(gw, s, f, c, e->ud);
    goto out;
refuse:
    sb__gw_frame_error(gw, s, f, rc);
out:
    sb_frame_free(f);
}

/* ---- public entry points ---------------------------------------------------
 */

/* The stats have a counter for every frame kind, error code and role. */
_Static_assert(GW_BODY_CASES <= SB_GW_FRAME_KINDS, "frame kinds");
_Static_assert(SBP__ERROR_CODE__ERR_TOO_LATE < SB_GW_ERROR_CODES, "codes");
_Static_assert(SBP__ROLE__ROLE_ADMIN < SB_GW_ROLES, "roles");

int sb__gw_new(const sb_gw_config *c, const sb_gw_io *io, sb_gw **out)
{
    *out = NULL;
    if (c->secret_len == 0 || c->secret_len > GW_SECRET_BYTES_MAX)
        return -EINVAL;
    if (c->sends_per_s && c->send_burst == 0) return -EINVAL;
    if (c->push_batch_max == 0 || c->push_batch_bytes_max == 0 ||
        c->unacked_max == 0)
        return -EINVAL;
    if ((c->token_iss && strlen(c->token_iss) > SB_TOKEN_ISS_BYTES_MAX) ||
        (c->token_aud && strlen(c->token_aud) > SB_TOKEN_ISS_BYTES_MAX))
        return -EINVAL;
    /* Every frame kind has its place in the table. */
    assert(
        sbp__frame__descriptor.fields[sbp__frame__descriptor.n_fields - 1].id <
        GW_BODY_CASES);
    sb_gw *gw = calloc(1, sizeof *gw);
    if (!gw) return -ENOMEM;
    gw->cfg = *c;
    memcpy(gw->secret, c->secret, c->secret_len);
    gw->cfg.secret = gw->secret;
    sb__gw_copy_str(gw->token_iss, sizeof gw->token_iss,
                    c->token_iss ? c->token_iss : "");
    sb__gw_copy_str(gw->token_aud, sizeof gw->token_aud,
                    c->token_aud ? c->token_aud : "");
    gw->cfg.token_iss = gw->token_iss;
    gw->cfg.token_aud = gw->token_aud;
    if (c->node && strlen(c->node) > SB_ID_BYTES_MAX) {
        free(gw);
        return -EINVAL;
    }
    sb__gw_copy_str(gw->node, sizeof gw->node, c->node ? c->node : "");
    gw->cfg.node = gw->node;
    gw->io = *io;
    sb_hist_init(&gw->stats.send_ack_ms, &SB_HIST_MS);
    sb_hist_init(&gw->stats.queue_wait_ms, &SB_HIST_HUMAN_MS);
    sb_hist_init(&gw->stats.first_response_ms, &SB_HIST_HUMAN_MS);
    sb_hist_init(&gw->stats.resolution_ms, &SB_HIST_HUMAN_MS);
    *out = gw;
    return 0;
}

static void hello_wait_unlink(sb_gw *gw, sess *s)
{
    if (!s->in_hello_wait) return;
    if (s->hello_prev)
        s->hello_prev->hello_next = s->hello_next;
    else
        gw->hello_head = s->hello_next;
    if (s->hello_next)
        s->hello_next->hello_prev = s->hello_prev;
    else
        gw->hello_tail = s->hello_prev;
    s->hello_prev = s->hello_next = NULL;
    s->in_hello_wait = false;
}

/* Closes the connections whose HELLO deadline has passed; those that
 * said HELLO (or closed) meanwhile just leave the list. */
static void hello_deadlines(sb_gw *gw)
{
    sess *s;
    while ((s = gw->hello_head)) {
        if (s->state == SESS_NEW &&
            gw->now_ms - s->opened_ms < gw->cfg.hello_timeout_ms)
            break;
        hello_wait_unlink(gw, s);
        if (s->state == SESS_NEW)
            /* Try again, not policy: a slow client whose HELLO was late
             * has its token still, and comes back. */
            sb__gw_close(gw, s, SB_WS_CLOSE_TRY_AGAIN, "HELLO timeout");
    }
}

static void sess_free(sb_gw *gw, sess *s)
{
    hello_wait_unlink(gw, s);
    user_unlink(gw, s);
    sb__gw_retry_unlink(gw, s);
    for (size_t i = 0; i < s->ua_len; i++)
        sb__gw_gmsg_unref(s->ua[i].g);
    free(s->ua);
    if (s->in_flushq) {
        for (sess **pp = &gw->flushq; *pp; pp = &(*pp)->flush_next)
            if (*pp == s) {
                *pp = s->flush_next;
                break;
            }
    }
    for (size_t i = 0; i < s->pend_len; i++)
        sb__gw_gmsg_unref(s->pend[i]);
    free(s->pend);
    free(s->acks);
    if (s->user_id != no_ids) free(s->user_id);
    free(s);
}

void sb_gw_free(sb_gw *gw)
{
    if (!gw) return;
    for (size_t i = 0; i < gw->sessions.cap; i++)
        if (gw->sessions.slots[i].val) {
            sess *s = gw->sessions.slots[i].val;
            s->state = SESS_CLOSING;
            sess_free(gw, s);
        }
    for (size_t i = 0; i < gw->convs.cap; i++)
        if (gw->convs.slots[i].val) conv_free(gw->convs.slots[i].val);
    for (size_t i = 0; i < gw->parked.cap; i++) {
        parkq *q = gw->parked.slots[i].val;
        for (parked *p = q ? q->head : NULL, *next; p; p = next) {
            next = p->next;
            sb_frame_free(p->f);
            free(p);
        }
        free(q);
    }
    sb_map_free(&gw->parked);
    sb_map_free(&gw->sessions);
    sb_map_free(&gw->users);
    sb_map_free(&gw->convs);
    sb_buf_free(&gw->scratch);
    sb_buf_free(&gw->event_scratch);
    sb_buf_free(&gw->push_out);
    sb__gw_cluster_free(gw);
    sb__gw_desk_free(gw);
    desk_wait_free(gw);
    if (gw->hooks.free) gw->hooks.free(gw->hooks.ud);
    free(gw);
}

int sb_gw_conn_open(sb_gw *gw, uint64_t conn_id, sb_encoding enc,
                    int64_t now_ms)
{
    gw->now_ms = now_ms;
    if (gw->draining || gw->sessions.len >= gw->cfg.sessions_max)
        return SB_E_UNAVAILABLE;
    assert(!sb__gw_sess_get(gw, conn_id));
    sess *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->id = conn_id;
    s->enc = enc;
    s->user_id = no_ids;
    s->state = SESS_NEW;
    s->opened_ms = now_ms;
    s->open_seq = ++gw->open_seq;
    s->send_mtokens = (uint64_t)gw->cfg.send_burst * 1000;
    s->send_refill_ms = now_ms;
    if (sb_map_put(&gw->sessions, conn_id, s) != 0) {
        free(s);
        return -ENOMEM;
    }
    s->in_hello_wait = true;
    s->hello_prev = gw->hello_tail;
    if (gw->hello_tail)
        gw->hello_tail->hello_next = s;
    else
        gw->hello_head = s;
    gw->hello_tail = s;
    gw->stats.sessions = gw->sessions.len;
    return 0;
}

int sb_gw_api_open(sb_gw *gw, uint64_t conn_id, const char *user_id,
                   Sbp__Role role, const char *locale, int64_t now_ms)
{
    assert(role == SBP__ROLE__ROLE_ADMIN || role == SBP__ROLE__ROLE_AGENT ||
           role == SBP__ROLE__ROLE_BOT);
    if (!sb__gw_valid_id(user_id)) return SB_E_INVALID;
    int rc = sb_gw_conn_open(gw, conn_id, SB_ENC_JSON, now_ms);
    if (rc) return rc;
    sess *s = sb__gw_sess_get(gw, conn_id);
    char device[SB_ID_BYTES_MAX + 1];
    snprintf(device, sizeof device, "api:%llu", (unsigned long long)conn_id);
    rc = sb__gw_sess_set_ids(s, user_id, device);
    if (rc) {
        sb_gw_conn_closed(gw, conn_id);
        return rc;
    }
    sb__gw_copy_str(s->locale, sizeof s->locale,
                    locale && locale[0] ? locale : "en");
    s->role = role;
    /* Ready, but linked to no user: no PUSH, receipt or presence reaches
     * it, and it replaces no device's session. */
    sess_state(gw, s, SESS_READY);
    return 0;
}

void sb_gw_conn_frame(sb_gw *gw, uint64_t conn_id, const uint8_t *p, size_t n,
                      int64_t now_ms)
{
    gw->now_ms = now_ms;
    sess *s = sb__gw_sess_get(gw, conn_id);
    if (!s || s->state == SESS_CLOSING) return;
    Sbp__Frame *f = NULL;
    int rc = n > gw->cfg.frame_bytes_max
                 ? SB_E_TOO_LARGE
                 : sb_frame_decode_checked(s->enc, p, n, &f);
    if (rc != 0 && f) {
        sb__gw_frame_error(gw, s, f, rc); /* its rid and client_msg_id */
        sb_frame_free(f);
    } else if (rc != 0) {
        sb__gw_error(gw, s, 0, rc);
    }
    if (rc != 0) {
        if (++s->bad_frames > GW_BAD_FRAMES_MAX)
            sb__gw_close(gw, s, SB_WS_CLOSE_POLICY, "too many bad frames");
        else if (s->state == SESS_NEW)
            sb__gw_close(gw, s, SB_WS_CLOSE_POLICY, sb_strerror(rc));
        return;
    }
    gw->stats.frames_in[f->body_case < SB_GW_FRAME_KINDS ? f->body_case : 0]++;
    dispatch(gw, s, f, false);
}

void sb_gw_conn_closed(sb_gw *gw, uint64_t conn_id)
{
    sess *s = sb_map_del(&gw->sessions, conn_id);
    if (!s) return;
    if (s->acks_dirty) {
        /* Take it off the dirty list, persisting what it acked. */
        sess *prev = NULL;
        for (sess **pp = &gw->dirty_sessions; *pp;
             prev = *pp, pp = &(*pp)->dirty_next)
            if (*pp == s) {
                *pp = s->dirty_next;
                if (gw->dirty_sessions_tail == s)
                    gw->dirty_sessions_tail = prev;
                break;
            }
        sb__gw_flush_cursors(gw, s);
    }
    sess_state(gw, s, SESS_CLOSING);
    sess_free(gw, s);
    gw->stats.sessions = gw->sessions.len;
}

void sb_gw_tick(sb_gw *gw, int64_t now_ms)
{
    gw->now_ms = now_ms;
    sess *next;
    for (sess *s = gw->retry_head; s; s = next) {
        next = s->retry_next;
        if (s->next_due_ms <= now_ms) sb__gw_retry_session(gw, s);
        if (s->ua_len == 0) sb__gw_retry_unlink(gw, s);
    }
    hello_deadlines(gw);
    sb__gw_flush_dirty(gw, false);
    if (sb__gw_clustered(gw)) {
        sb__gw_cluster_tick(gw);
        sb__gw_desk_tick(gw);
    }
    if (gw->hooks.tick) gw->hooks.tick(gw->hooks.ud);
}

void sb_gw_flush(sb_gw *gw)
{
    /* Receipts due go out with this round's pushes. */
    sb__gw_flush_dirty(gw, false);
    while (gw->flushq) {
        sess *s = gw->flushq;
        gw->flushq = s->flush_next;
        s->flush_next = NULL;
        s->in_flushq = false;
        sb__gw_push_flush(gw, s);
    }
}

void sb_gw_start(sb_gw *gw, int64_t now_ms)
{
    gw->now_ms = now_ms;
    if (sb__gw_clustered(gw))
        sb__gw_desk_join(gw);
    else if (gw->hooks.start)
        gw->hooks.start(gw->hooks.ud);
}

int sb_gw_desk_swap(sb_gw *gw, struct sb_desk *desk, struct sb_desk **old)
{
    assert(gw && desk && old && gw->hooks.desk_swap);
    return gw->hooks.desk_swap(gw->hooks.ud, desk, old);
}

void sb_gw_drain(sb_gw *gw)
{
    gw->draining = true;
}

size_t sb_gw_store_inflight(const sb_gw *gw)
{
    return gw->inflight;
}

void sb_gw_close_all(sb_gw *gw, uint16_t code, const char *reason)
{
    sb__gw_flush_dirty(gw, true);
    for (size_t i = 0; i < gw->sessions.cap; i++) {
        sess *s = gw->sessions.slots[i].val;
        if (s) sb__gw_close(gw, s, code, reason);
    }
}

void sb_gw_get_stats(const sb_gw *gw, sb_gw_stats *out)
{
    *out = gw->stats;
}

const struct sb_desk *sb_gw_desk(const sb_gw *gw)
{
    return gw->cfg.desk;
}
