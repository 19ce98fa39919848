/* The gateway's delivery core: sessions, the frame table and its
 * dispatcher, replies, storing messages, fan-out, push retry, receipts,
 * cursors and the conversation cache, driven by events and answering
 * through sb_gw_io. No sockets, no clock: every entry point is given the
 * current time. Every frame kind comes in through the table, from the
 * modules above; the events they hear go out through sb_gw_hooks. */
#include "sb_gwcore.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_i18n.h"
#include "sb_ws.h"

/* ---- small helpers ---------------------------------------------------------
 */

static void gmsg_unref(gmsg *g)
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

bool sb__gw_may_access(const sess *s, conv *c)
{
    return s->role == SBP__ROLE__ROLE_ADMIN ||
           sb__gw_conv_member(c, s->user_id);
}

/* ---- sending frames --------------------------------------------------------
 */

static void push_flush(sb_gw *gw, sess *s);

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
    push_flush(gw, s);
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
                     .device = s->device_id,
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

static void retry_unlink(sb_gw *gw, sess *s)
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
        u = calloc(1, sizeof *u);
        if (!u) return -ENOMEM;
        sb__gw_copy_str(u->id, sizeof u->id, s->user_id);
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
    push_flush(gw, s); /* what was queued goes before the close */
    if (s->state == SESS_READY)
        gw_event(gw, "session_closed", s, 0, 0, code, why);
    sess_state(gw, s, SESS_CLOSING);
    user_unlink(gw, s);
    retry_unlink(gw, s);
    gw->io.close(gw->io.ud, s->id, code, why);
}

int sb__gw_sess_ready(sb_gw *gw, sess *s)
{
    /* One session per device: a reconnecting device replaces its old,
     * possibly half-dead, connection. */
    user *u = sb__gw_user_get(gw, s->user_id);
    sess *next;
    for (sess *o = u ? u->sessions : NULL; o; o = next) {
        next = o->user_next;
        if (strcmp(o->device_id, s->device_id) == 0)
            sb__gw_close(gw, o, SB_WS_CLOSE_NORMAL,
                         "replaced by a newer connection");
    }
    sess_state(gw, s, SESS_READY);
    gw_event(gw, "session_ready", s, 0, 0, 0, sb_role_name(s->role));
    return user_link(gw, s);
}

/* ---- push and retry --------------------------------------------------------
 */

/* The bytes of g as an item of a PUSH frame for session s (*p, *n): encoded
 * once per encoding and shared, except for events, which are rendered in
 * each session's locale (valid until the next event). False when out of
 * memory: the message stays unacked, and a retry or SYNC brings it. */
static bool push_item(sb_gw *gw, gmsg *g, const sess *s, const uint8_t **p,
                      size_t *n)
{
    sb_encoding enc = s->enc;
    sb_buf *b = &g->enc[enc];
    if (g->m->event && g->m->event->key[0]) {
        /* A shallow copy with the body rendered for this session; the
         * stored message is left as it is. */
        char text[1024];
        sb_i18n_render(s->locale, g->m->event->key, g->m->event->args,
                       g->m->event->n_args, text, sizeof text);
        Sbp__Message copy = *g->m;
        copy.body = text;
        b = &gw->event_scratch;
        b->len = 0;
        if (sb_push_item_encode(enc, &copy, b) != 0) b->len = 0;
    } else if (b->len == 0 && sb_push_item_encode(enc, g->m, b) != 0) {
        b->len = 0;
    }
    *p = b->data;
    *n = b->len;
    return b->len > 0;
}

static void push_emit(sb_gw *gw, sess *s, sb_push_builder *b)
{
    const uint8_t *p;
    size_t n;
    sb_push_end(b, &p, &n);
    gw->stats.push_frames++;
    gw->stats.frames_out[SBP__FRAME__BODY_PUSH]++;
    gw->io.send(gw->io.ud, s->id, p, n);
}

/* Sends the messages queued for s, in order, in PUSH frames of at most
 * push_batch_max messages and push_batch_bytes_max bytes (one message
 * larger goes alone). */
static void push_flush(sb_gw *gw, sess *s)
{
    size_t n = s->pend_len;
    if (n == 0) return;
    s->pend_len = 0;
    sb_buf *out = &gw->push_out;
    sb_push_builder b = {.n = 0};
    for (size_t i = 0; i < n && s->state != SESS_CLOSING; i++) {
        const uint8_t *item;
        size_t len;
        if (!push_item(gw, s->pend[i], s, &item, &len)) continue;
        if (b.n > 0 &&
            (b.n >= gw->cfg.push_batch_max ||
             sb_push_len(&b) + len + 1 > gw->cfg.push_batch_bytes_max)) {
            push_emit(gw, s, &b);
            b.n = 0;
        }
        if (b.n == 0) {
            out->len = 0;
            if (sb_push_begin(&b, s->enc, out) != 0) continue;
        }
        if (sb_push_add(&b, item, len) != 0 && b.n > 0) {
            push_emit(gw, s, &b); /* out of memory: what fits, alone */
            b.n = 0;
        }
    }
    if (b.n > 0) push_emit(gw, s, &b);
    for (size_t i = 0; i < n; i++)
        gmsg_unref(s->pend[i]);
    /* A burst's queue is not kept for a session mostly idle. */
    if (s->pend_cap > 2 * (size_t)gw->cfg.push_batch_max) {
        free(s->pend);
        s->pend = NULL;
        s->pend_cap = 0;
    }
}

/* Queues g for s's next PUSH. Returns false when out of memory (s is then
 * closed: the device will SYNC). */
static bool push_queue(sb_gw *gw, sess *s, gmsg *g)
{
    assert(s->pend_len <= gw->cfg.unacked_max);
    if (s->pend_len == gw->cfg.unacked_max) push_flush(gw, s);
    if (s->pend_len == s->pend_cap) {
        size_t cap = s->pend_cap ? s->pend_cap * 2 : 16;
        gmsg **pend = realloc(s->pend, cap * sizeof *pend);
        if (!pend) {
            sb__gw_close(gw, s, SB_WS_CLOSE_INTERNAL, "out of memory");
            return false;
        }
        s->pend = pend;
        s->pend_cap = cap;
    }
    g->refs++;
    s->pend[s->pend_len++] = g;
    if (!s->in_flushq) {
        s->in_flushq = true;
        s->flush_next = gw->flushq;
        gw->flushq = s;
    }
    return true;
}

static void retry_link(sb_gw *gw, sess *s, int64_t due)
{
    if (!s->in_retry) {
        s->in_retry = true;
        s->retry_prev = NULL;
        s->retry_next = gw->retry_head;
        if (gw->retry_head) gw->retry_head->retry_prev = s;
        gw->retry_head = s;
        s->next_due_ms = due;
    } else if (due < s->next_due_ms) {
        s->next_due_ms = due;
    }
}

static void push_to(sb_gw *gw, sess *s, gmsg *g)
{
    if (s->ua_len >= gw->cfg.unacked_max) {
        gw->stats.closed_unacked++;
        sb__gw_close(gw, s, SB_WS_CLOSE_TRY_AGAIN,
                     "too many unacknowledged messages");
        return;
    }
    if (s->ua_len == s->ua_cap) {
        size_t cap = s->ua_cap ? s->ua_cap * 2 : 16;
        unacked *ua = realloc(s->ua, cap * sizeof *ua);
        if (!ua) {
            sb__gw_close(gw, s, SB_WS_CLOSE_INTERNAL, "out of memory");
            return;
        }
        s->ua = ua;
        s->ua_cap = cap;
    }
    /* Encoded now (events: at the flush) so that a message that cannot
     * be is not left unacked. */
    const uint8_t *item;
    size_t len;
    bool event = g->m->event && g->m->event->key[0];
    if (!event && !push_item(gw, g, s, &item, &len)) return;
    if (!push_queue(gw, s, g)) return;
    g->refs++;
    int64_t due = gw->now_ms + gw->cfg.retry_ms_initial;
    s->ua[s->ua_len++] = (unacked){g, due, 0};
    retry_link(gw, s, due);
    gw->stats.pushes++;
}

/* Sends a newly stored message to every ready device of every member,
 * except the device that sent it (it has the SEND_ACK). */
static void fan_out(sb_gw *gw, gmsg *g, const sess *origin)
{
    conv *c = sb_map_get(&gw->convs, g->m->conv_id);
    if (!c) return;
    for (size_t i = 0; i < c->n_members; i++) {
        user *u = sb__gw_user_get(gw, c->members[i].user_id);
        if (!u) continue;
        sess *next;
        for (sess *s = u->sessions; s; s = next) {
            next = s->user_next; /* push_to may unlink s */
            if (s != origin && s->state == SESS_READY) push_to(gw, s, g);
        }
    }
}

void sb__gw_deliver_local(sb_gw *gw, conv *c, Sbp__Message *m,
                          const sess *origin)
{
    gmsg *g = c ? calloc(1, sizeof *g) : NULL;
    if (!g) {
        /* Stored: devices SYNC it. Without c nobody here can have loaded
         * the conversation. */
        sbp__message__free_unpacked(m, NULL);
        return;
    }
    g->refs = 1;
    g->m = m;
    fan_out(gw, g, origin);
    gmsg_unref(g);
}

void sb__gw_deliver(sb_gw *gw, Sbp__Message *m, const sess *origin)
{
    conv *c = sb_map_get(&gw->convs, m->conv_id);
    if (c && sb__gw_clustered(gw)) {
        sb__gw_cluster_message(gw, c, m);
        sb__gw_cluster_offer(gw, c, m, origin);
        return;
    }
    sb__gw_deliver_local(gw, c, m, origin);
}

static void ack_unacked(sess *s, uint64_t conv_id, uint64_t seq)
{
    size_t w = 0;
    for (size_t r = 0; r < s->ua_len; r++) {
        unacked *e = &s->ua[r];
        if (e->g->m->conv_id == conv_id && e->g->m->seq <= seq)
            gmsg_unref(e->g);
        else
            s->ua[w++] = *e;
    }
    s->ua_len = w;
}

static void retry_session(sb_gw *gw, sess *s)
{
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < s->ua_len; i++) {
        unacked *e = &s->ua[i];
        if (e->due_ms <= gw->now_ms) {
            if (e->attempts >= gw->cfg.retry_attempts_max) {
                gw->stats.closed_unacked++;
                sb__gw_close(gw, s, SB_WS_CLOSE_TRY_AGAIN,
                             "push not acknowledged; resync");
                return;
            }
            e->attempts++;
            uint64_t backoff = (uint64_t)gw->cfg.retry_ms_initial
                               << (e->attempts < 20 ? e->attempts : 20);
            if (backoff > gw->cfg.retry_ms_max) backoff = gw->cfg.retry_ms_max;
            e->due_ms = gw->now_ms + (int64_t)backoff;
            gw->stats.retries++;
            /* Resends due together go in one PUSH, at the flush. */
            if (!push_queue(gw, s, e->g)) return;
        }
        if (e->due_ms < next) next = e->due_ms;
    }
    s->next_due_ms = next;
}

/* ---- receipts and cursors --------------------------------------------------
 */

void sb__gw_receipt_dirty(sb_gw *gw, conv *c, member *m)
{
    m->dirty = true;
    if (!c->dirty) {
        c->dirty = true;
        c->dirty_due_ms = gw->now_ms + gw->cfg.receipts_ms;
        c->dirty_next = NULL;
        if (gw->dirty_convs_tail)
            gw->dirty_convs_tail->dirty_next = c;
        else
            gw->dirty_convs = c;
        gw->dirty_convs_tail = c;
    }
}

/* Tells the other members where m's devices have got to; m's own devices
 * hear only of reads (their multi-device read state), not of deliveries,
 * which they made themselves. */
static void flush_receipts(sb_gw *gw, conv *c)
{
    for (size_t i = 0; i < c->n_members; i++) {
        member *m = &c->members[i];
        if (!m->dirty) continue;
        m->dirty = false;
        bool tell_own = m->read_seq > m->read_seq_notified;
        m->read_seq_notified = m->read_seq;
        Sbp__ReadNotify rn = SBP__READ_NOTIFY__INIT;
        rn.conv_id = c->id;
        rn.user_id = m->user_id;
        rn.read_seq = m->read_seq;
        rn.delivered_seq = m->delivered_seq;
        for (size_t k = 0; k < c->n_members; k++) {
            if (k == i && !tell_own) continue;
            sb__gw_send_user(gw, c->members[k].user_id,
                             SBP__FRAME__BODY_READ_NOTIFY, &rn);
        }
    }
}

/* Submits s's cursors to the store (best effort: the device's own
 * cursors drive SYNC); s stays as it is on the list. */
static void submit_cursors(sb_gw *gw, sess *s)
{
    for (size_t i = 0; i < s->n_acks; i++) {
        sb_req *r =
            sb__gw_req_new(gw, SB_REQ_CURSOR_SET, s, 0, sb__gw_quiet_done);
        if (!r) break;
        sb__gw_copy_str(r->u.cursor.user_id, sizeof r->u.cursor.user_id,
                        s->user_id);
        sb__gw_copy_str(r->u.cursor.device_id, sizeof r->u.cursor.device_id,
                        s->device_id);
        r->u.cursor.conv_id = s->acks[i].conv_id;
        r->u.cursor.seq = s->acks[i].seq;
        sb__gw_submit(gw, r);
    }
    s->n_acks = 0;
}

/* The same for a session just taken off the list (or never on it). */
static void flush_cursors(sb_gw *gw, sess *s)
{
    submit_cursors(gw, s);
    s->acks_dirty = false;
}

/* Stores the cursors and sends the receipts that are due (all of them
 * with all). */
static void flush_dirty(sb_gw *gw, bool all)
{
    sess *s;
    while ((s = gw->dirty_sessions) && (all || s->acks_due_ms <= gw->now_ms)) {
        gw->dirty_sessions = s->dirty_next;
        if (!gw->dirty_sessions) gw->dirty_sessions_tail = NULL;
        s->dirty_next = NULL;
        flush_cursors(gw, s);
    }
    conv *c;
    while ((c = gw->dirty_convs) && (all || c->dirty_due_ms <= gw->now_ms)) {
        gw->dirty_convs = c->dirty_next;
        if (!gw->dirty_convs) gw->dirty_convs_tail = NULL;
        c->dirty = false;
        c->dirty_next = NULL;
        flush_receipts(gw, c);
    }
}

static void record_ack(sb_gw *gw, sess *s, uint64_t conv_id, uint64_t seq)
{
    size_t i;
    for (i = 0; i < s->n_acks; i++)
        if (s->acks[i].conv_id == conv_id) break;
    if (i == s->n_acks) {
        if (s->n_acks == GW_SESSION_ACKS_MAX) submit_cursors(gw, s);
        i = s->n_acks++;
        s->acks[i] = (ack_cursor){conv_id, 0};
    }
    if (seq > s->acks[i].seq) s->acks[i].seq = seq;
    if (!s->acks_dirty) {
        s->acks_dirty = true;
        s->acks_due_ms = gw->now_ms + gw->cfg.cursors_ms;
        s->dirty_next = NULL;
        if (gw->dirty_sessions_tail)
            gw->dirty_sessions_tail->dirty_next = s;
        else
            gw->dirty_sessions = s;
        gw->dirty_sessions_tail = s;
    }
}

void sb__gw_acked(sb_gw *gw, sess *s, conv *c, uint64_t seq)
{
    ack_unacked(s, c->id, seq);
    if (s->ua_len == 0) retry_unlink(gw, s);
    record_ack(gw, s, c->id, seq);
    member *m = sb__gw_conv_member(c, s->user_id);
    if (m && seq > m->delivered_seq) {
        m->delivered_seq = seq;
        sb__gw_receipt_dirty(gw, c, m);
    }
}

/* ---- conversation cache ----------------------------------------------------
 */

static void conv_free(conv *c)
{
    if (!c) return;
    sb__gw_cluster_conv_free(c);
    free(c->members);
    free(c);
}

/* Copies the stored form's fields and members into c. Members that stay
 * keep their receipts. Returns 0 or -ENOMEM (c unchanged). */
static int conv_fill(conv *c, const Sbp__Conversation *pc)
{
    member *ms = calloc(pc->n_members ? pc->n_members : 1, sizeof *ms);
    if (!ms) return -ENOMEM;
    for (size_t i = 0; i < pc->n_members; i++) {
        sb__gw_copy_str(ms[i].user_id, sizeof ms[i].user_id,
                        pc->members[i]->user_id);
        ms[i].role = pc->members[i]->role;
        member *old = c->members ? sb__gw_conv_member(c, ms[i].user_id) : NULL;
        if (old) {
            ms[i].delivered_seq = old->delivered_seq;
            ms[i].read_seq = old->read_seq;
            ms[i].read_seq_notified = old->read_seq_notified;
        }
    }
    free(c->members);
    c->members = ms;
    c->n_members = pc->n_members;
    c->id = pc->conv_id;
    c->created_ms = pc->created_ts;
    c->kind = pc->kind;
    c->state = pc->state;
    sb__gw_copy_str(c->desk, sizeof c->desk, pc->desk);
    sb__gw_copy_str(c->group, sizeof c->group, pc->group);
    sb__gw_copy_str(c->agent, sizeof c->agent, pc->agent);
    sb__gw_copy_str(c->customer, sizeof c->customer, pc->customer);
    if (pc->first_response_ms) c->first_response = true;
    c->csat_rating = pc->csat_rating;
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
    if (conv_fill(c, pc) != 0 || sb_map_put(&gw->convs, pc->conv_id, c) != 0) {
        conv_free(c);
        return NULL;
    }
    return c;
}

conv *sb__gw_conv_refresh(sb_gw *gw, const Sbp__Conversation *pc)
{
    conv *c = sb_map_get(&gw->convs, pc->conv_id);
    if (!c) return sb__gw_conv_cache(gw, pc);
    /* Out of memory leaves the cached form as it was. */
    (void)conv_fill(c, pc);
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
        if (c && r->owner != 0 && sb__gw_desk_elsewhere(gw)) {
            if (c->kind == SBP__CONV_KIND__CONV_SERVICE)
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
    sb_req *r = sb__gw_req_new(gw, SB_REQ_MSG_APPEND, s, rid, append_done);
    if (!r) return -ENOMEM;
    r->u.append.msg = m;
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
    if (flags & SB_GW_CONV) {
        uint64_t id = body_conv_id(f, e);
        if (!(c = sb_map_get(&gw->convs, id)) ||
            (!parked && sb_map_get(&gw->parked, id))) {
            park(gw, s, f, id);
            return;
        }
    }
    if (row->roles && !(row->roles & SB_GW_ROLE(s->role))) {
        sb__gw_error_text(gw, s, f->rid, SB_E_FORBIDDEN, row->why);
        goto out;
    }
    if (((flags & SB_GW_MEMBER) && !sb__gw_conv_member(c, s->user_id)) ||
        ((flags & SB_GW_ACCESS) && !sb__gw_may_access(s, c))) {
        rc = SB_E_FORBIDDEN;
        goto refuse;
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

static void sess_free(sb_gw *gw, sess *s)
{
    user_unlink(gw, s);
    retry_unlink(gw, s);
    for (size_t i = 0; i < s->ua_len; i++)
        gmsg_unref(s->ua[i].g);
    free(s->ua);
    if (s->in_flushq) {
        for (sess **pp = &gw->flushq; *pp; pp = &(*pp)->flush_next)
            if (*pp == s) {
                *pp = s->flush_next;
                break;
            }
    }
    for (size_t i = 0; i < s->pend_len; i++)
        gmsg_unref(s->pend[i]);
    free(s->pend);
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
    s->state = SESS_NEW;
    s->opened_ms = now_ms;
    s->send_mtokens = (uint64_t)gw->cfg.send_burst * 1000;
    s->send_refill_ms = now_ms;
    if (sb_map_put(&gw->sessions, conn_id, s) != 0) {
        free(s);
        return -ENOMEM;
    }
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
    sb__gw_copy_str(s->user_id, sizeof s->user_id, user_id);
    snprintf(s->device_id, sizeof s->device_id, "api:%llu",
             (unsigned long long)conn_id);
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
    int rc = n > gw->cfg.frame_bytes_max ? SB_E_TOO_LARGE
                                         : sb_frame_decode(s->enc, p, n, &f);
    if (rc == 0 && (rc = sb_frame_check_utf8(f)) != 0) {
        sb__gw_frame_error(gw, s, f, rc);
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
        flush_cursors(gw, s);
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
        if (s->next_due_ms <= now_ms) retry_session(gw, s);
        if (s->ua_len == 0) retry_unlink(gw, s);
    }
    if (now_ms - gw->last_sweep_ms >= 1000) {
        gw->last_sweep_ms = now_ms;
        for (size_t i = 0; i < gw->sessions.cap; i++) {
            sess *s = gw->sessions.slots[i].val;
            if (s && s->state == SESS_NEW &&
                now_ms - s->opened_ms > gw->cfg.hello_timeout_ms)
                sb__gw_close(gw, s, SB_WS_CLOSE_POLICY, "HELLO timeout");
        }
    }
    flush_dirty(gw, false);
    if (sb__gw_clustered(gw)) {
        sb__gw_cluster_tick(gw);
        sb__gw_desk_tick(gw);
    }
    if (gw->hooks.tick) gw->hooks.tick(gw->hooks.ud);
}

void sb_gw_flush(sb_gw *gw)
{
    /* Receipts due go out with this round's pushes. */
    flush_dirty(gw, false);
    while (gw->flushq) {
        sess *s = gw->flushq;
        gw->flushq = s->flush_next;
        s->flush_next = NULL;
        s->in_flushq = false;
        push_flush(gw, s);
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
    flush_dirty(gw, true);
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
