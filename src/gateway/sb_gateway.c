/* The gateway's delivery core: sessions, validation, fan-out, push retry
 * and receipts, driven by events and answering through sb_gw_io. No
 * sockets, no clock: every entry point is given the current time. */
#include "sb_gateway.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_gateway_int.h"
#include "sb_i18n.h"
#include "sb_ws.h"

void sb_gw_config_default(sb_gw_config *c)
{
    memset(c, 0, sizeof *c);
    c->token_skew_s = 60;
    c->frame_bytes_max = 65536;
    c->body_bytes_max = 8192;
    c->pending_sends_max = 64;
    c->sends_per_s = 50;
    c->send_burst = 100;
    c->sync_page_max = 200;
    c->sync_bytes_max = 256 * 1024;
    c->history_page_max = 200;
    c->heartbeat_ms = 30000;
    c->hello_timeout_ms = 10000;
    c->retry_ms_initial = 2000;
    c->retry_ms_max = 30000;
    c->retry_attempts_max = 5;
    c->unacked_max = 4096;
    c->push_batch_max = 64;
    c->push_batch_bytes_max = 32768; /* half of frame_bytes_max */
    c->receipts_ms = 200;
    c->cursors_ms = 1000;
    c->sessions_max = 200000;
}

/* ---- small helpers --------------------------------------------------------
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

void sb__gw_copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static bool valid_id(const char *s)
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

/* ---- sending frames -------------------------------------------------------
 */

static void push_flush(sb_gw *gw, sess *s);

/* Every frame but PUSH goes out at once, after the messages queued for
 * the session: the device sees frames in the order they were made (a
 * SEND_ACK with seq n after the PUSH of n-1, which it surfaces first). */
void sb__gw_send_frame(sb_gw *gw, sess *s, const Sbp__Frame *f)
{
    if (s->state == SESS_CLOSING) return;
    push_flush(gw, s);
    gw->scratch.len = 0;
    if (sb_frame_encode(s->enc, f, &gw->scratch) != 0) return;
    gw->io.send(gw->io.ud, s->id, gw->scratch.data, gw->scratch.len);
}

/* An ERROR for rc, saying text (rc's own words when NULL or empty). */
static void send_error_text(sb_gw *gw, sess *s, uint32_t rid, int rc,
                            const char *text,
                            const ProtobufCBinaryData *client_msg_id)
{
    Sbp__Error e = SBP__ERROR__INIT;
    e.code = sb_error_code(rc);
    e.text = (char *)(text && *text ? text : sb_strerror(rc));
    if (client_msg_id) e.client_msg_id = *client_msg_id;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = rid;
    f.body_case = SBP__FRAME__BODY_ERROR;
    f.error = &e;
    sb__gw_send_frame(gw, s, &f);
}

void sb__gw_send_error(sb_gw *gw, sess *s, uint32_t rid, int rc,
                       const ProtobufCBinaryData *client_msg_id)
{
    gw->stats.errors++;
    send_error_text(gw, s, rid, rc, NULL, client_msg_id);
}

void sb__gw_send_ok(sb_gw *gw, sess *s, uint32_t rid)
{
    Sbp__Ok ok = SBP__OK__INIT;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = rid;
    f.body_case = SBP__FRAME__BODY_OK;
    f.ok = &ok;
    sb__gw_send_frame(gw, s, &f);
}

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
    if (s->role == SBP__ROLE__ROLE_AGENT) sb__svc_presence(gw, u->id, false);
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

/* Asks the shell to close s. The session stays in the map until the shell
 * reports the connection closed, but takes no further part in delivery. */
static void close_session(sb_gw *gw, sess *s, uint16_t code, const char *why)
{
    if (s->state == SESS_CLOSING) return;
    push_flush(gw, s); /* what was queued goes before the close */
    s->state = SESS_CLOSING;
    user_unlink(gw, s);
    retry_unlink(gw, s);
    gw->io.close(gw->io.ud, s->id, code, why);
}

/* ---- push and retry -------------------------------------------------------
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
            close_session(gw, s, 1011, "out of memory");
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
        close_session(gw, s, SB_WS_CLOSE_TRY_AGAIN,
                      "too many unacknowledged messages");
        return;
    }
    if (s->ua_len == s->ua_cap) {
        size_t cap = s->ua_cap ? s->ua_cap * 2 : 16;
        unacked *ua = realloc(s->ua, cap * sizeof *ua);
        if (!ua) {
            close_session(gw, s, 1011, "out of memory");
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
    if (!c) return; /* nobody online can have loaded it: they will SYNC */
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

void sb__gw_deliver(sb_gw *gw, Sbp__Message *m, const sess *origin)
{
    gmsg *g = calloc(1, sizeof *g);
    if (!g) {
        sbp__message__free_unpacked(m, NULL); /* stored: devices SYNC it */
        return;
    }
    g->refs = 1;
    g->m = m;
    fan_out(gw, g, origin);
    gmsg_unref(g);
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
                close_session(gw, s, SB_WS_CLOSE_TRY_AGAIN,
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

static void conv_mark_dirty(sb_gw *gw, conv *c, member *m)
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
        Sbp__Frame f = SBP__FRAME__INIT;
        f.body_case = SBP__FRAME__BODY_READ_NOTIFY;
        f.read_notify = &rn;
        for (size_t k = 0; k < c->n_members; k++) {
            if (k == i && !tell_own) continue;
            user *u = sb__gw_user_get(gw, c->members[k].user_id);
            for (sess *s = u ? u->sessions : NULL; s; s = s->user_next)
                if (s->state == SESS_READY) sb__gw_send_frame(gw, s, &f);
        }
    }
}

/* The completion of a cursor or receipt write: best effort, as the
 * device's own cursors drive SYNC. */
static void quiet_done(sb_req *r)
{
    sb__gw_req_back(r->ctx, r, false);
    free(r);
}

/* Submits s's cursors to the store; s stays as it is on the list. */
static void submit_cursors(sb_gw *gw, sess *s)
{
    for (size_t i = 0; i < s->n_acks; i++) {
        sb_req *r = sb__gw_req_new(gw, SB_REQ_CURSOR_SET, s, 0, quiet_done);
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

/* ---- conversation cache -----------------------------------------------------
 */

static void conv_free(conv *c)
{
    if (!c) return;
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
    c->kind = pc->kind;
    c->state = pc->state;
    sb__gw_copy_str(c->desk, sizeof c->desk, pc->desk);
    sb__gw_copy_str(c->group, sizeof c->group, pc->group);
    sb__gw_copy_str(c->agent, sizeof c->agent, pc->agent);
    sb__gw_copy_str(c->customer, sizeof c->customer, pc->customer);
    if (pc->first_response_ms) c->first_response = true;
    /* Dirty receipts of members that left are simply dropped. */
    return 0;
}

/* Caches a conversation from its stored form; returns the cached entry
 * (an existing one wins). */
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

void sb__gw_send_members(sb_gw *gw, conv *c, const Sbp__Frame *f,
                         const sess *skip)
{
    for (size_t k = 0; k < c->n_members; k++) {
        user *u = sb__gw_user_get(gw, c->members[k].user_id);
        for (sess *s = u ? u->sessions : NULL; s; s = s->user_next)
            if (s != skip && s->state == SESS_READY)
                sb__gw_send_frame(gw, s, f);
    }
}

/* Event bodies are rendered per recipient: a catalog key and arguments
 * in the store, a text in the recipient's locale on the wire. */
void sb__gw_render(sb_gw *gw, Sbp__Message *const *msgs, size_t n,
                   const char *locale)
{
    (void)gw;
    char text[1024];
    for (size_t i = 0; i < n; i++) {
        Sbp__Message *m = msgs[i];
        if (!m->event || !m->event->key[0]) continue;
        sb_i18n_render(locale, m->event->key, m->event->args, m->event->n_args,
                       text, sizeof text);
        char *body = strdup(text);
        if (!body) continue;
        if (m->body != protobuf_c_empty_string) free(m->body);
        m->body = body;
    }
}

/* ---- frame handlers
 * ----------------------------------------------------------- */

static void handle_frame(sb_gw *gw, sess *s, Sbp__Frame *f);
static void conv_got(sb_req *r);
static void hello_done(sb_req *r);
static void sync_done(sb_req *r);
static void history_done(sb_req *r);
static void open_done(sb_req *r);

/* Finds conv_id in the cache. On a miss, asks the store for it and parks
 * the frame (taking ownership) until the answer; returns NULL then. */
conv *sb__gw_conv_need(sb_gw *gw, sess *s, uint64_t conv_id, Sbp__Frame **fp)
{
    conv *c = sb_map_get(&gw->convs, conv_id);
    if (c) return c;
    sb_req *r = sb__gw_req_new(gw, SB_REQ_CONV_GET, s, (*fp)->rid, conv_got);
    if (!r) {
        sb__gw_send_error(gw, s, (*fp)->rid, -ENOMEM, NULL);
        return NULL;
    }
    r->u.conv_get.conv_id = conv_id;
    r->data = *fp;
    *fp = NULL;
    sb__gw_submit(gw, r);
    return NULL;
}

static void on_hello(sb_gw *gw, sess *s, const Sbp__Frame *f)
{
    const Sbp__Hello *h = f->hello;
    if (s->state != SESS_NEW) {
        sb__gw_send_error(gw, s, f->rid, SB_E_ALREADY, NULL);
        return;
    }
    sb_claims c;
    sb_token_check chk = {.now_s = gw->now_ms / 1000,
                          .skew_s = gw->cfg.token_skew_s,
                          .iss = gw->token_iss,
                          .aud = gw->token_aud};
    int rc = sb_token_verify_ex(gw->secret, gw->cfg.secret_len, h->token,
                                strlen(h->token), &chk, &c);
    if (rc == 0 && !valid_id(h->device_id)) rc = SB_E_INVALID;
    if (rc == 0 && h->protocol > 1) rc = SB_E_INVALID;
    if (rc != 0) {
        sb__gw_send_error(gw, s, f->rid, rc, NULL);
        close_session(gw, s, 1008, sb_strerror(rc));
        return;
    }
    sb__gw_copy_str(s->user_id, sizeof s->user_id, c.sub);
    sb__gw_copy_str(s->device_id, sizeof s->device_id, h->device_id);
    sb__gw_copy_str(s->locale, sizeof s->locale,
                    h->locale[0] ? h->locale : (c.locale[0] ? c.locale : "en"));
    s->role = c.role;
    s->state = SESS_HELLO_PENDING;
    sb_req *r = sb__gw_req_new(gw, SB_REQ_USER_UPSERT, s, f->rid, hello_done);
    if (!r) {
        close_session(gw, s, 1011, "out of memory");
        return;
    }
    sb__gw_copy_str(r->u.user.user_id, sizeof r->u.user.user_id, s->user_id);
    sb__gw_copy_str(r->u.user.locale, sizeof r->u.user.locale, s->locale);
    r->u.user.role = s->role;
    r->now_ms = gw->now_ms;
    sb__gw_submit(gw, r);
}

static void hello_ready(sb_gw *gw, sess *s, sb_req *r);

static void hello_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    if (s && s->state == SESS_HELLO_PENDING) hello_ready(gw, s, r);
    free(r);
}

static void hello_ready(sb_gw *gw, sess *s, sb_req *r)
{
    /* The user's record (role, locale, last seen) not written because the
     * store fails to write (a full disk): the session goes on. Reads still
     * work and each write is refused with its own ERR_STORE, so a device
     * that (re)connects then can catch up; the next HELLO writes it. */
    if (r->rc != 0 && r->rc != SB_E_STORE) {
        sb__gw_send_error(gw, s, r->rid, r->rc, NULL);
        close_session(gw, s, 1011, "store unavailable");
        return;
    }
    /* One session per device: a reconnecting device replaces its old,
     * possibly half-dead, connection. */
    user *u = sb__gw_user_get(gw, s->user_id);
    sess *next;
    for (sess *o = u ? u->sessions : NULL; o; o = next) {
        next = o->user_next;
        if (strcmp(o->device_id, s->device_id) == 0)
            close_session(gw, o, 1000, "replaced by a newer connection");
    }
    u = sb__gw_user_get(gw, s->user_id); /* the close may have freed it */
    if (!u) {
        u = calloc(1, sizeof *u);
        if (!u) {
            close_session(gw, s, 1011, "out of memory");
            return;
        }
        sb__gw_copy_str(u->id, sizeof u->id, s->user_id);
        u->hash = sb_map_hash_str(u->id);
        u->hash_next = sb_map_get(&gw->users, u->hash);
        if (sb_map_put(&gw->users, u->hash, u) != 0) {
            free(u);
            close_session(gw, s, 1011, "out of memory");
            return;
        }
    }
    bool first = u->sessions == NULL;
    s->user = u;
    s->user_next = u->sessions;
    u->sessions = s;
    s->state = SESS_READY;
    if (first && s->role == SBP__ROLE__ROLE_AGENT)
        sb__svc_presence(gw, s->user_id, true);

    Sbp__Welcome w = SBP__WELCOME__INIT;
    w.user_id = s->user_id;
    w.role = s->role;
    w.session_id = s->id;
    w.server_ts = gw->now_ms;
    w.heartbeat_ms = gw->cfg.heartbeat_ms;
    w.frame_bytes_max = gw->cfg.frame_bytes_max;
    w.body_bytes_max = gw->cfg.body_bytes_max;
    w.pending_sends_max = gw->cfg.pending_sends_max;
    w.sync_page_max = gw->cfg.sync_page_max;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = r->rid;
    f.body_case = SBP__FRAME__BODY_WELCOME;
    f.welcome = &w;
    sb__gw_send_frame(gw, s, &f);
}

/* Runs the filter in force over a SEND's body of len bytes. Returns 0 with
 * *v filled (v->masked set for a mask verdict), SB_E_BLOCKED, or -ENOMEM. */
static int filter_body(sb_gw *gw, const char *body, size_t len,
                       sb_filter_verdict *v)
{
    memset(v, 0, sizeof *v);
    const sb_filter *flt =
        gw->cfg.filter_get ? gw->cfg.filter_get(gw->cfg.filter_ud) : NULL;
    if (!flt) return 0;
    int rc = sb_filter_scan(flt, body, len, v);
    if (rc == 0 && v->policy == SB_FILTER_BLOCK) rc = SB_E_BLOCKED;
    if (rc) sb_filter_verdict_clear(v);
    return rc;
}

/* Quick replies of a SEND: at most SB_QUICK_MAX, each with a title of
 * 1..SB_QUICK_BYTES_MAX bytes (the payload, when given, as long). */
static int quick_replies_check(const Sbp__Send *snd)
{
    if (snd->n_quick_replies > SB_QUICK_MAX) return SB_E_TOO_LARGE;
    for (size_t i = 0; i < snd->n_quick_replies; i++) {
        const Sbp__QuickReply *q = snd->quick_replies[i];
        size_t t = strlen(q->title), p = strlen(q->payload);
        if (t == 0) return SB_E_INVALID;
        if (t > SB_QUICK_BYTES_MAX || p > SB_QUICK_BYTES_MAX)
            return SB_E_TOO_LARGE;
    }
    return 0;
}

static void on_send(sb_gw *gw, sess *s, Sbp__Frame **fp)
{
    Sbp__Frame *f = *fp;
    Sbp__Send *snd = f->send;
    const ProtobufCBinaryData *cid = &snd->client_msg_id;
    size_t body_len = strlen(snd->body);
    int rc = 0;
    if (gw->draining)
        rc = SB_E_UNAVAILABLE;
    else if (cid->len != SB_CLIENT_MSG_ID_BYTES)
        rc = SB_E_INVALID;
    else if (body_len > gw->cfg.body_bytes_max)
        rc = SB_E_TOO_LARGE;
    else if (snd->type == SBP__MSG_TYPE__MSG_SYSTEM ||
             snd->type == SBP__MSG_TYPE__MSG_EVENT || (int)snd->type < 0 ||
             (int)snd->type > SBP__MSG_TYPE__MSG_ROBOT ||
             (snd->type == SBP__MSG_TYPE__MSG_ROBOT &&
              s->role != SBP__ROLE__ROLE_BOT))
        rc = SB_E_INVALID;
    else if (snd->conv_id == 0)
        rc = SB_E_INVALID;
    /* Cards and media carry what makes them: a title, a URL. */
    else if (snd->type == SBP__MSG_TYPE__MSG_CARD &&
             (!snd->card || !snd->card->title[0]))
        rc = SB_E_INVALID;
    else if ((snd->type == SBP__MSG_TYPE__MSG_IMAGE ||
              snd->type == SBP__MSG_TYPE__MSG_FILE) &&
             (!snd->media || !snd->media->url[0]))
        rc = SB_E_INVALID;
    /* Quick replies go under a bot's robot message only. */
    else if (snd->n_quick_replies && snd->type != SBP__MSG_TYPE__MSG_ROBOT)
        rc = SB_E_INVALID;
    else if (snd->n_quick_replies)
        rc = quick_replies_check(snd);
    if (rc) {
        sb__gw_send_error(gw, s, f->rid, rc, cid->len <= 64 ? cid : NULL);
        return;
    }
    conv *c = sb__gw_conv_need(gw, s, snd->conv_id, fp);
    if (!c) return;
    if (!sb__gw_may_access(s, c)) {
        sb__gw_send_error(gw, s, f->rid, SB_E_FORBIDDEN, cid);
        return;
    }
    if (s->pending_sends >= gw->cfg.pending_sends_max) {
        sb__gw_send_error(gw, s, f->rid, SB_E_TOO_MANY_PENDING, cid);
        return;
    }
    sb_filter_verdict v;
    if ((rc = filter_body(gw, snd->body, body_len, &v)) != 0) {
        if (rc == SB_E_BLOCKED) gw->stats.blocked++;
        sb__gw_send_error(gw, s, f->rid, rc, cid);
        return;
    }
    Sbp__Message *m = malloc(sizeof *m);
    sb_req *r =
        sb__gw_req_new(gw, SB_REQ_MSG_APPEND, s, f->rid, sb__gw_append_done);
    if (!m || !r) {
        free(m);
        free(r);
        sb_filter_verdict_clear(&v);
        sb__gw_send_error(gw, s, f->rid, -ENOMEM, cid);
        return;
    }
    sbp__message__init(m);
    m->conv_id = snd->conv_id;
    m->type = snd->type ? snd->type : SBP__MSG_TYPE__MSG_TEXT;
    m->quote_seq = snd->quote_seq;
    m->sender = strdup(s->user_id);
    m->sender_device = strdup(s->device_id);
    m->lang = strdup(s->locale);
    /* Steal the body (or the filter's masked one) and id from the frame
     * rather than copy them. */
    if (v.masked) {
        m->body = v.masked;
        v.masked = NULL;
        gw->stats.masked++;
    } else {
        m->body = snd->body;
        snd->body = (char *)protobuf_c_empty_string;
    }
    m->review = (v.policies & 1u << SB_FILTER_REVIEW) != 0;
    gw->stats.flagged += m->review;
    m->client_msg_id = snd->client_msg_id;
    snd->client_msg_id.data = NULL;
    snd->client_msg_id.len = 0;
    /* A card or a media reference travels with the message as sent. */
    m->card = snd->card;
    m->media = snd->media;
    snd->card = NULL;
    snd->media = NULL;
    m->quick_replies = snd->quick_replies;
    m->n_quick_replies = snd->n_quick_replies;
    snd->quick_replies = NULL;
    snd->n_quick_replies = 0;
    if (!m->sender || !m->sender_device || !m->lang) {
        sbp__message__free_unpacked(m, NULL);
        free(r);
        sb__gw_send_error(gw, s, f->rid, -ENOMEM, NULL);
        return;
    }
    r->u.append.msg = m;
    r->now_ms = gw->now_ms;
    s->pending_sends++;
    gw->stats.sends++;
    sb__gw_submit(gw, r);
}

static void send_stored(sb_gw *gw, sess *s, sb_req *r);

void sb__gw_append_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, true);
    send_stored(gw, s, r);
    free(r);
}

/* A SEND's message (or a server-made one, with no session) is stored, or
 * refused: the sender hears which; the members get it. */
static void send_stored(sb_gw *gw, sess *s, sb_req *r)
{
    Sbp__Message *m = r->u.append.msg;
    if (s) s->pending_sends--;
    if (r->rc != 0) {
        if (s) sb__gw_send_error(gw, s, r->rid, r->rc, &m->client_msg_id);
        sbp__message__free_unpacked(m, NULL);
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
        Sbp__Frame f = SBP__FRAME__INIT;
        f.rid = r->rid;
        f.body_case = SBP__FRAME__BODY_SEND_ACK;
        f.send_ack = &a;
        gw->stats.send_acks++;
        sb__gw_send_frame(gw, s, &f);
    }
    if (r->u.append.duplicate) {
        gw->stats.duplicates++;
        sbp__message__free_unpacked(m, NULL);
        return;
    }
    conv *c = sb_map_get(&gw->convs, m->conv_id);
    if (c && c->kind == SBP__CONV_KIND__CONV_SERVICE && r->owner != 0)
        sb__svc_after_message(gw, c, m);
    sb__gw_deliver(gw, m, s);
}

static void on_ack(sb_gw *gw, sess *s, Sbp__Frame **fp)
{
    const Sbp__Ack *a = (*fp)->ack;
    conv *c = sb__gw_conv_need(gw, s, a->conv_id, fp);
    if (!c) return;
    if (!sb__gw_may_access(s, c)) {
        sb__gw_send_error(gw, s, (*fp)->rid, SB_E_FORBIDDEN, NULL);
        return;
    }
    ack_unacked(s, a->conv_id, a->seq);
    if (s->ua_len == 0) retry_unlink(gw, s);
    record_ack(gw, s, a->conv_id, a->seq);
    member *m = sb__gw_conv_member(c, s->user_id);
    if (m && a->seq > m->delivered_seq) {
        m->delivered_seq = a->seq;
        conv_mark_dirty(gw, c, m);
    }
}

static void on_read(sb_gw *gw, sess *s, Sbp__Frame **fp)
{
    const Sbp__Read *rd = (*fp)->read;
    conv *c = sb__gw_conv_need(gw, s, rd->conv_id, fp);
    if (!c) return;
    member *m = sb__gw_conv_member(c, s->user_id);
    if (!m) {
        /* An admin may read any conversation, but has no receipts in one
         * it is not a member of. */
        if (s->role != SBP__ROLE__ROLE_ADMIN)
            sb__gw_send_error(gw, s, (*fp)->rid, SB_E_FORBIDDEN, NULL);
        return;
    }
    if (rd->seq <= m->read_seq) return;
    m->read_seq = rd->seq;
    conv_mark_dirty(gw, c, m);
    sb_req *r = sb__gw_req_new(gw, SB_REQ_READ_SET, s, (*fp)->rid, quiet_done);
    if (!r) return;
    sb__gw_copy_str(r->u.read.user_id, sizeof r->u.read.user_id, s->user_id);
    r->u.read.conv_id = rd->conv_id;
    r->u.read.seq = rd->seq;
    sb__gw_submit(gw, r);
}

static void on_sync(sb_gw *gw, sess *s, Sbp__Frame *f)
{
    Sbp__Sync *sy = f->sync;
    if (sy->n_cursors > SB_SYNC_CURSORS_MAX) {
        sb__gw_send_error(gw, s, f->rid, SB_E_TOO_LARGE, NULL);
        return;
    }
    sb_req *r = sb__gw_req_new(gw, SB_REQ_SYNC, s, f->rid, sync_done);
    if (!r) {
        sb__gw_send_error(gw, s, f->rid, -ENOMEM, NULL);
        return;
    }
    sb__gw_copy_str(r->u.sync.user_id, sizeof r->u.sync.user_id, s->user_id);
    r->u.sync.all = s->role == SBP__ROLE__ROLE_ADMIN;
    /* The request takes the frame's cursor array. */
    r->u.sync.cursors = sy->cursors;
    r->u.sync.n_cursors = sy->n_cursors;
    sy->cursors = NULL;
    sy->n_cursors = 0;
    uint32_t limit = sy->limit ? sy->limit : gw->cfg.sync_page_max;
    r->u.sync.limit =
        limit < gw->cfg.sync_page_max ? limit : gw->cfg.sync_page_max;
    r->u.sync.bytes_max = gw->cfg.sync_bytes_max;
    sb__gw_submit(gw, r);
}

static void on_history(sb_gw *gw, sess *s, Sbp__Frame **fp)
{
    const Sbp__History *h = (*fp)->history;
    conv *c = sb__gw_conv_need(gw, s, h->conv_id, fp);
    if (!c) return;
    if (!sb__gw_may_access(s, c)) {
        sb__gw_send_error(gw, s, (*fp)->rid, SB_E_FORBIDDEN, NULL);
        return;
    }
    sb_req *r = sb__gw_req_new(gw, SB_REQ_HISTORY, s, (*fp)->rid, history_done);
    if (!r) {
        sb__gw_send_error(gw, s, (*fp)->rid, -ENOMEM, NULL);
        return;
    }
    uint32_t limit = h->limit ? h->limit : 50;
    r->u.history.conv_id = h->conv_id;
    r->u.history.before_seq = h->before_seq;
    r->u.history.limit =
        limit < gw->cfg.history_page_max ? limit : gw->cfg.history_page_max;
    sb__gw_submit(gw, r);
}

static void on_open(sb_gw *gw, sess *s, const Sbp__Frame *f)
{
    const Sbp__Open *o = f->open;
    if (s->role == SBP__ROLE__ROLE_CUSTOMER && gw->cfg.desk &&
        (o->kind == SBP__CONV_KIND__CONV_SERVICE || o->n_members == 0)) {
        sb__svc_open(gw, s, f);
        return;
    }
    if (o->n_members + 1 > SB_MEMBERS_MAX ||
        strlen(o->title) > SB_TITLE_BYTES_MAX) {
        sb__gw_send_error(gw, s, f->rid, SB_E_TOO_LARGE, NULL);
        return;
    }
    for (size_t i = 0; i < o->n_members; i++) {
        if (!valid_id(o->members[i])) {
            sb__gw_send_error(gw, s, f->rid, SB_E_INVALID, NULL);
            return;
        }
    }
    sb_req *r = sb__gw_req_new(gw, SB_REQ_CONV_CREATE, s, f->rid, open_done);
    char **ids = calloc(o->n_members + 1, sizeof *ids);
    Sbp__Role *roles = calloc(o->n_members + 1, sizeof *roles);
    char *title = strdup(o->title);
    if (!r || !ids || !roles || !title) goto oom;
    size_t n = 0;
    ids[n] = strdup(s->user_id);
    if (!ids[n]) goto oom;
    roles[n++] = s->role;
    for (size_t i = 0; i < o->n_members; i++) {
        bool dup = false;
        for (size_t k = 0; k < n; k++)
            dup |= strcmp(ids[k], o->members[i]) == 0;
        if (dup) continue;
        ids[n] = strdup(o->members[i]);
        if (!ids[n]) goto oom;
        /* The member's role as the store knows it; ROLE_UNSPECIFIED asks
         * the store to look it up. */
        roles[n++] = SBP__ROLE__ROLE_UNSPECIFIED;
    }
    r->u.create.kind = o->kind ? o->kind
                               : (s->role == SBP__ROLE__ROLE_CUSTOMER
                                      ? SBP__CONV_KIND__CONV_SERVICE
                                      : SBP__CONV_KIND__CONV_DIRECT);
    r->u.create.title = title;
    r->u.create.user_ids = ids;
    r->u.create.roles = roles;
    r->u.create.n = n;
    r->now_ms = gw->now_ms;
    /* Customers may only talk to the service side; the store refuses a
     * conversation between a customer and another customer. */
    sb__gw_submit(gw, r);
    return;
oom:
    for (size_t i = 0; ids && i <= o->n_members; i++)
        free(ids[i]);
    free(ids);
    free(roles);
    free(title);
    free(r);
    sb__gw_send_error(gw, s, f->rid, -ENOMEM, NULL);
}

static void free_create(sb_req *r)
{
    for (size_t i = 0; i < r->u.create.n; i++)
        free(r->u.create.user_ids[i]);
    free(r->u.create.user_ids);
    free(r->u.create.roles);
    free(r->u.create.title);
    if (r->u.create.conv)
        sbp__conversation__free_unpacked(r->u.create.conv, NULL);
}

static void open_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    if (s && r->rc != 0) {
        sb__gw_send_error(gw, s, r->rid, r->rc, NULL);
    } else if (s) {
        sb__gw_conv_cache(gw, r->u.create.conv);
        Sbp__OpenResp o = SBP__OPEN_RESP__INIT;
        o.conv = r->u.create.conv;
        Sbp__Frame f = SBP__FRAME__INIT;
        f.rid = r->rid;
        f.body_case = SBP__FRAME__BODY_OPEN_RESP;
        f.open_resp = &o;
        sb__gw_send_frame(gw, s, &f);
    }
    free_create(r);
    free(r);
}

static void on_admin(sb_gw *gw, sess *s, const Sbp__Frame *f)
{
    if (s->role != SBP__ROLE__ROLE_ADMIN) {
        sb_gw_admin_done(gw, s->id, f->rid, SB_E_FORBIDDEN,
                         "admin commands need a token with role admin");
        return;
    }
    int rc = gw->io.admin ? gw->io.admin(gw->io.ud, s->id, f->rid, f->admin->op,
                                         f->admin->body)
                          : SB_E_INVALID;
    if (rc == SB_E_INVALID)
        sb_gw_admin_done(gw, s->id, f->rid, rc, "unknown admin op");
    else if (rc)
        sb__gw_send_error(gw, s, f->rid, rc, NULL);
}

void sb_gw_admin_text(sb_gw *gw, uint64_t conn_id, uint32_t rid,
                      const char *text)
{
    sess *s = sb__gw_sess_get(gw, conn_id);
    if (!s || s->state != SESS_READY) return;
    Sbp__AdminResp a = SBP__ADMIN_RESP__INIT;
    a.text = (char *)(text ? text : "");
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = rid;
    f.body_case = SBP__FRAME__BODY_ADMIN_RESP;
    f.admin_resp = &a;
    sb__gw_send_frame(gw, s, &f);
}

int sb_gw_desk_swap(sb_gw *gw, struct sb_desk *desk, struct sb_desk **old)
{
    assert(gw && desk && old);
    return sb__svc_desk_swap(gw, desk, old);
}

void sb_gw_admin_done(sb_gw *gw, uint64_t conn_id, uint32_t rid, int rc,
                      const char *text)
{
    sess *s = sb__gw_sess_get(gw, conn_id);
    if (!s || s->state != SESS_READY) return;
    if (rc == 0)
        sb__gw_send_ok(gw, s, rid);
    else
        send_error_text(gw, s, rid, rc, text, NULL);
}

static void handle_frame(sb_gw *gw, sess *s, Sbp__Frame *f)
{
    if (s->state == SESS_CLOSING) goto out;
    if (s->state != SESS_READY && f->body_case != SBP__FRAME__BODY_HELLO) {
        sb__gw_send_error(gw, s, f->rid,
                          s->state == SESS_NEW ? SB_E_UNAUTHENTICATED
                                               : SB_E_UNAVAILABLE,
                          NULL);
        if (s->state == SESS_NEW)
            close_session(gw, s, 1008, "HELLO required first");
        goto out;
    }
    switch (f->body_case) {
    case SBP__FRAME__BODY_HELLO:
        on_hello(gw, s, f);
        break;
    case SBP__FRAME__BODY_SEND:
        on_send(gw, s, &f);
        break;
    case SBP__FRAME__BODY_ACK:
        on_ack(gw, s, &f);
        break;
    case SBP__FRAME__BODY_SYNC:
        on_sync(gw, s, f);
        break;
    case SBP__FRAME__BODY_HISTORY:
        on_history(gw, s, &f);
        break;
    case SBP__FRAME__BODY_READ:
        on_read(gw, s, &f);
        break;
    case SBP__FRAME__BODY_OPEN:
        on_open(gw, s, f);
        break;
    case SBP__FRAME__BODY_ADMIN:
        on_admin(gw, s, f);
        break;
    default:
        if (!sb__svc_frame(gw, s, &f))
            sb__gw_send_error(gw, s, f->rid, SB_E_UNKNOWN_TYPE, NULL);
        break;
    }
out:
    sb_frame_free(f); /* NULL when a handler parked it */
}

/* ---- public entry points ---------------------------------------------------
 */

int sb_gw_new(const sb_gw_config *c, const sb_gw_io *io, sb_gw **out)
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
    gw->io = *io;
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
    sb_map_free(&gw->sessions);
    sb_map_free(&gw->users);
    sb_map_free(&gw->convs);
    sb_buf_free(&gw->scratch);
    sb_buf_free(&gw->event_scratch);
    sb_buf_free(&gw->push_out);
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
        uint32_t rid = f->rid;
        ProtobufCBinaryData cid = {0, NULL};
        if (f->body_case == SBP__FRAME__BODY_SEND) cid = f->send->client_msg_id;
        sb__gw_send_error(gw, s, rid, rc, cid.len ? &cid : NULL);
        sb_frame_free(f);
        f = NULL;
    } else if (rc != 0) {
        sb__gw_send_error(gw, s, 0, rc, NULL);
    }
    if (rc != 0) {
        if (++s->bad_frames > GW_BAD_FRAMES_MAX)
            close_session(gw, s, 1008, "too many bad frames");
        else if (s->state == SESS_NEW)
            close_session(gw, s, 1008, sb_strerror(rc));
        return;
    }
    /* Rate-limited here, once per frame received: a SEND parked for its
     * conversation passes handle_frame twice. */
    if (f->body_case == SBP__FRAME__BODY_SEND && s->state == SESS_READY &&
        !send_token_take(gw, s)) {
        const ProtobufCBinaryData *cid = &f->send->client_msg_id;
        sb__gw_send_error(gw, s, f->rid, SB_E_RATE_LIMITED,
                          cid->len <= 64 ? cid : NULL);
        sb_frame_free(f);
        return;
    }
    handle_frame(gw, s, f);
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
    s->state = SESS_CLOSING;
    sess_free(gw, s);
    gw->stats.sessions = gw->sessions.len;
}

/* The conversation a parked frame needs is loaded: the frame goes on. */
static void conv_got(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    Sbp__Frame *f = r->data;
    if (r->rc == 0) sb__gw_conv_cache(gw, r->u.conv_get.conv);
    if (r->u.conv_get.conv)
        sbp__conversation__free_unpacked(r->u.conv_get.conv, NULL);
    if (!s) {
        sb_frame_free(f);
    } else if (r->rc != 0) {
        ProtobufCBinaryData *cid = f->body_case == SBP__FRAME__BODY_SEND
                                       ? &f->send->client_msg_id
                                       : NULL;
        sb__gw_send_error(gw, s, f->rid, r->rc, cid);
        sb_frame_free(f);
    } else {
        handle_frame(gw, s, f);
    }
    free(r);
}

static void sync_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    for (size_t i = 0; i < r->u.sync.n_cursors; i++)
        sbp__cursor__free_unpacked(r->u.sync.cursors[i], NULL);
    free(r->u.sync.cursors);
    if (s && r->rc != 0) sb__gw_send_error(gw, s, r->rid, r->rc, NULL);
    if (s && r->rc == 0) {
        sb__gw_render(gw, r->u.sync.resp->messages, r->u.sync.resp->n_messages,
                      s->locale);
        Sbp__Frame f = SBP__FRAME__INIT;
        f.rid = r->rid;
        f.body_case = SBP__FRAME__BODY_SYNC_RESP;
        f.sync_resp = r->u.sync.resp;
        sb__gw_send_frame(gw, s, &f);
    }
    if (r->u.sync.resp) sbp__sync_resp__free_unpacked(r->u.sync.resp, NULL);
    free(r);
}

static void history_done(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sess *s = sb__gw_req_back(gw, r, false);
    if (s && r->rc != 0) sb__gw_send_error(gw, s, r->rid, r->rc, NULL);
    if (s && r->rc == 0) {
        sb__gw_render(gw, r->u.history.resp->messages,
                      r->u.history.resp->n_messages, s->locale);
        Sbp__Frame f = SBP__FRAME__INIT;
        f.rid = r->rid;
        f.body_case = SBP__FRAME__BODY_HISTORY_RESP;
        f.history_resp = r->u.history.resp;
        sb__gw_send_frame(gw, s, &f);
    }
    if (r->u.history.resp)
        sbp__history_resp__free_unpacked(r->u.history.resp, NULL);
    free(r);
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
                close_session(gw, s, 1008, "HELLO timeout");
        }
    }
    flush_dirty(gw, false);
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
    sb__svc_start(gw);
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
        if (s) close_session(gw, s, code, reason);
    }
}

void sb_gw_get_stats(const sb_gw *gw, sb_gw_stats *out)
{
    *out = gw->stats;
}
