/* The gateway's delivery to devices: messages queued per session and sent
 * in PUSH frames at the end of a loop turn, kept unacknowledged and pushed
 * again with backoff until the device ACKs, the fan-out of a stored
 * message to the members' devices, and what ACKs lead to: device cursors
 * stored in batches and members' receipts told to the others. Part of the
 * delivery core (sb_gwcore.h). */
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
         * stored message is left as it is. A customer is told only that a
         * staff-only event happened (sb_view.h). */
        char text[1024] = "";
        Sbp__Message copy = *g->m;
        Sbp__Event hidden = SBP__EVENT__INIT;
        if (s->role == SBP__ROLE__ROLE_CUSTOMER &&
            sb_sysmsg_staff_only(g->m->event->key)) {
            hidden.key = g->m->event->key;
            copy.event = &hidden;
        } else {
            sb_i18n_render(s->locale, g->m->event->key, g->m->event->args,
                           g->m->event->n_args, text, sizeof text);
        }
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
void sb__gw_push_flush(sb_gw *gw, sess *s)
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
        sb__gw_gmsg_unref(s->pend[i]);
    /* The queue is made again for the next turn's messages: an idle
     * session keeps none. */
    free(s->pend);
    s->pend = NULL;
    s->pend_cap = 0;
}

/* Queues g for s's next PUSH. Returns false when out of memory (s is then
 * closed: the device will SYNC). */
static bool push_queue(sb_gw *gw, sess *s, gmsg *g)
{
    assert(s->pend_len <= gw->cfg.unacked_max);
    if (s->pend_len == gw->cfg.unacked_max) sb__gw_push_flush(gw, s);
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

static void flush_receipts(sb_gw *gw, conv *c);

/* Takes c off the list of conversations with receipts to send. */
static void dirty_unlink(sb_gw *gw, conv *c)
{
    assert(c->dirty);
    if (c->dirty_prev)
        c->dirty_prev->dirty_next = c->dirty_next;
    else
        gw->dirty_convs = c->dirty_next;
    if (c->dirty_next)
        c->dirty_next->dirty_prev = c->dirty_prev;
    else
        gw->dirty_convs_tail = c->dirty_prev;
    c->dirty_prev = c->dirty_next = NULL;
    c->dirty = false;
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
    /* Receipts waiting half their interval or more go now, in the writes
     * this round makes to the members anyway (the push, the SEND_ACK),
     * rather than in writes of their own when they fall due. */
    if (c->dirty && c->dirty_due_ms - gw->cfg.receipts_ms / 2 <= gw->now_ms) {
        dirty_unlink(gw, c);
        flush_receipts(gw, c);
    }
}

void sb__gw_deliver_local(sb_gw *gw, conv *c, Sbp__Message *m,
                          const sess *origin)
{
    /* Every message delivered here, from this node or another, exists:
     * ACKs and READs may count up to it. */
    if (c && m->seq > c->last_seq) c->last_seq = m->seq;
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
    sb__gw_gmsg_unref(g);
}

void sb__gw_deliver(sb_gw *gw, Sbp__Message *m, const sess *origin)
{
    conv *c = sb_map_get(&gw->convs, m->conv_id);
    if (c && m->seq > c->last_seq) c->last_seq = m->seq; /* stored here */
    if (c && sb__gw_clustered(gw)) {
        sb__gw_cluster_message(gw, c, m);
        sb__gw_cluster_offer(gw, c, m, origin);
        return;
    }
    sb__gw_deliver_local(gw, c, m, origin);
}

bool sb__gw_pushed(const sess *s, uint64_t conv_id)
{
    for (size_t i = 0; i < s->ua_len; i++)
        if (s->ua[i].g->m->conv_id == conv_id) return true;
    return false;
}

static void ack_unacked(sess *s, uint64_t conv_id, uint64_t seq)
{
    size_t w = 0;
    for (size_t r = 0; r < s->ua_len; r++) {
        unacked *e = &s->ua[r];
        if (e->g->m->conv_id == conv_id && e->g->m->seq <= seq)
            sb__gw_gmsg_unref(e->g);
        else
            s->ua[w++] = *e;
    }
    s->ua_len = w;
}

void sb__gw_retry_session(sb_gw *gw, sess *s)
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
        c->dirty_prev = gw->dirty_convs_tail;
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
    for (uint32_t i = 0; i < s->n_acks; i++) {
        sb_req *r =
            sb__gw_req_new(gw, SB_REQ_CURSOR_SET, s, 0, sb__gw_quiet_done);
        if (!r) break;
        sb__gw_copy_str(r->u.cursor.user_id, sizeof r->u.cursor.user_id,
                        s->user_id);
        sb__gw_copy_str(r->u.cursor.device_id, sizeof r->u.cursor.device_id,
                        sb__gw_sess_device(s));
        r->u.cursor.conv_id = s->acks[i].conv_id;
        r->u.cursor.seq = s->acks[i].seq;
        sb__gw_submit(gw, r);
    }
    s->n_acks = s->acks_cap = 0;
    free(s->acks);
    s->acks = NULL;
}

/* The same for a session just taken off the list (or never on it). */
void sb__gw_flush_cursors(sb_gw *gw, sess *s)
{
    submit_cursors(gw, s);
    s->acks_dirty = false;
}

/* Stores the cursors and sends the receipts that are due (all of them
 * with all). */
void sb__gw_flush_dirty(sb_gw *gw, bool all)
{
    sess *s;
    while ((s = gw->dirty_sessions) && (all || s->acks_due_ms <= gw->now_ms)) {
        gw->dirty_sessions = s->dirty_next;
        if (!gw->dirty_sessions) gw->dirty_sessions_tail = NULL;
        s->dirty_next = NULL;
        sb__gw_flush_cursors(gw, s);
    }
    conv *c;
    while ((c = gw->dirty_convs) && (all || c->dirty_due_ms <= gw->now_ms)) {
        dirty_unlink(gw, c);
        flush_receipts(gw, c);
    }
}

static void record_ack(sb_gw *gw, sess *s, uint64_t conv_id, uint64_t seq)
{
    uint32_t i;
    for (i = 0; i < s->n_acks; i++)
        if (s->acks[i].conv_id == conv_id) break;
    if (i == s->n_acks) {
        if (s->n_acks == GW_SESSION_ACKS_MAX) submit_cursors(gw, s);
        if (s->n_acks == s->acks_cap) {
            uint32_t cap = s->acks_cap ? s->acks_cap * 2 : 4;
            ack_cursor *a = realloc(s->acks, cap * sizeof *a);
            if (!a) return; /* the cursor is not stored: pushes again */
            s->acks = a;
            s->acks_cap = cap;
        }
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
    if (seq > c->last_seq) seq = c->last_seq; /* no device can have more */
    ack_unacked(s, c->id, seq);
    if (s->ua_len == 0) {
        sb__gw_retry_unlink(gw, s);
        free(s->ua);
        s->ua = NULL;
        s->ua_cap = 0;
    }
    /* A device pushed a message while its user was a member may
     * acknowledge it after the user left (a reopened conversation drops
     * its last agent): its pushes are done with, and nothing else. */
    if (!sb__gw_may_access(s, c)) return;
    record_ack(gw, s, c->id, seq);
    member *m = sb__gw_conv_member(c, s->user_id);
    if (m && seq > m->delivered_seq) {
        m->delivered_seq = seq;
        sb__gw_receipt_dirty(gw, c, m);
    }
}
