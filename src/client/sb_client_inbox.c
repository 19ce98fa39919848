/* The client core's inbox: see sb_client_inbox.h. */
#include "sb_client_inbox.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "sb_client_core_int.h"
#include "sb_error.h"

#define EVENT_RECALLED "msg.recalled"

/* A message held behind a gap, protobuf-packed. */
struct cc_held {
    struct cc_held *next;
    uint64_t seq;
    size_t len;
    uint8_t data[];
};

cc_conv *sb__client_conv_get(sb_client_core *cc, uint64_t conv_id, bool create)
{
    cc_conv *c = sb_map_get(&cc->in.convs, conv_id);
    if (c || !create) return c;
    if (cc->in.convs.len >= cc->cfg.convs_max) return NULL;
    c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->conv_id = conv_id;
    if (sb_map_put(&cc->in.convs, conv_id, c) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

static void conv_dirty(sb_client_core *cc, cc_conv *c)
{
    cc->pump_needed = true;
    if (c->dirty) return;
    c->dirty = true;
    c->dirty_next = cc->in.dirty;
    cc->in.dirty = c;
}

static void held_drop_through(sb_client_core *cc, cc_conv *c, uint64_t seq)
{
    while (c->held && c->held->seq <= seq) {
        cc_held *h = c->held;
        c->held = h->next;
        cc->in.held_now--;
        free(h);
    }
}

/* The seq a "msg.recalled" event (args [user, seq]) takes back, or 0 if m
 * is no such event. Only the server makes events: SEND cannot carry one. */
static uint64_t recalled_seq(const Sbp__Message *m)
{
    if ((m->type != SBP__MSG_TYPE__MSG_EVENT &&
         m->type != SBP__MSG_TYPE__MSG_SYSTEM) ||
        !m->event || strcmp(m->event->key, EVENT_RECALLED) != 0 ||
        m->event->n_args < 2)
        return 0;
    const char *p = m->event->args[1];
    uint64_t v = 0;
    if (!*p) return 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return 0;
        if (v > (UINT64_MAX - 9) / 10) return 0;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    return v < m->seq ? v : 0; /* a recall follows what it takes back */
}

static void surface(sb_client_core *cc, cc_conv *c, const Sbp__Message *m)
{
    assert(m->seq == c->surfaced + 1);
    c->surfaced = m->seq;
    cc->st.surfaced++;
    conv_dirty(cc, c);
    if (cc->cbs.on_message) cc->cbs.on_message(cc->ud, m);
    uint64_t seq = recalled_seq(m);
    if (seq && cc->cbs.on_recalled && cc->state != SB_CLIENT_STOPPED)
        cc->cbs.on_recalled(cc->ud, m->conv_id, seq);
}

/* Surfaces held messages that have become contiguous. */
static void held_drain(sb_client_core *cc, cc_conv *c)
{
    while (c->held && c->held->seq <= c->surfaced + 1 &&
           cc->state != SB_CLIENT_STOPPED) {
        cc_held *h = c->held;
        c->held = h->next;
        cc->in.held_now--;
        if (h->seq == c->surfaced + 1) {
            Sbp__Message *m = sbp__message__unpack(NULL, h->len, h->data);
            if (m) {
                surface(cc, c, m);
                sbp__message__free_unpacked(m, NULL);
            } else {
                cc->in.need_sync = true; /* cannot happen: we packed it */
            }
        }
        free(h);
    }
}

static void hold(sb_client_core *cc, cc_conv *c, const Sbp__Message *m)
{
    cc_held **pp = &c->held;
    while (*pp && (*pp)->seq < m->seq)
        pp = &(*pp)->next;
    if (*pp && (*pp)->seq == m->seq) {
        cc->st.duplicates++;
        return;
    }
    if (cc->in.held_now >= cc->cfg.held_max) {
        cc->st.held_dropped++;
        cc->in.need_sync = true;
        cc->pump_needed = true;
        return;
    }
    /* The missing ones may be pushes still on their way (in a cluster, a
     * SEND_ACK can pass another node's message): SYNC if they do not come
     * within gap_wait_ms. */
    if (!cc->cfg.gap_wait_ms) {
        cc->in.need_sync = true;
        cc->pump_needed = true;
    } else if (!cc->in.gap_retry_at_ms && !cc->in.sync_inflight) {
        cc->in.gap_retry_at_ms = cc->now_ms + cc->cfg.gap_wait_ms;
    }
    size_t n = sbp__message__get_packed_size(m);
    cc_held *h = malloc(sizeof *h + n);
    if (!h) {
        cc->st.held_dropped++;
        return;
    }
    h->seq = m->seq;
    h->len = sbp__message__pack(m, h->data);
    h->next = *pp;
    *pp = h;
    cc->in.held_now++;
    cc->st.held++;
}

void sb__client_inbox_offer(sb_client_core *cc, const Sbp__Message *m)
{
    if (m->conv_id == 0 || m->seq == 0) {
        cc->st.protocol_errors++;
        return;
    }
    cc_conv *c = sb__client_conv_get(cc, m->conv_id, true);
    if (!c) {
        cc->st.dropped++;
        return;
    }
    if (m->seq <= c->surfaced) {
        cc->st.duplicates++;
        return;
    }
    if (m->seq == c->surfaced + 1) {
        surface(cc, c, m);
        held_drain(cc, c);
    } else {
        hold(cc, c, m);
    }
}

void sb__client_inbox_on_push(sb_client_core *cc, const Sbp__Frame *f)
{
    for (size_t i = 0; i < f->push->n_messages; i++) {
        if (cc->state != SB_CLIENT_READY) break; /* stopped in a cb */
        sb__client_inbox_offer(cc, f->push->messages[i]);
    }
}

/* ---- the SYNC loop ------------------------------------------------------- */

void sb__client_inbox_on_sync_resp(sb_client_core *cc, const Sbp__Frame *f)
{
    cc_inbox *in = &cc->in;
    const Sbp__SyncResp *r = f->sync_resp;
    if (!in->sync_inflight || f->rid != in->sync_rid) cc->st.protocol_errors++;
    uint64_t surfaced = cc->st.surfaced;
    for (size_t i = 0; i < r->n_messages; i++) {
        if (cc->state != SB_CLIENT_READY) return; /* stopped in a cb */
        sb__client_inbox_offer(cc, r->messages[i]);
    }
    /* Not the answer awaited, or a callback stopped the client. */
    if (!in->sync_inflight || f->rid != in->sync_rid) return;
    in->sync_inflight = false;
    cc->pump_needed = true;
    /* Another page, unless this one moved no cursor: asking again with the
     * same cursors would loop. */
    if (r->more && cc->st.surfaced > surfaced) {
        in->need_sync = true;
        return;
    }
    /* A gap that outlives a full SYNC: the message may not be visible yet;
     * try again later rather than loop. */
    in->need_sync = false;
    in->gap_retry_at_ms = in->held_now ? cc->now_ms + cc->cfg.gap_retry_ms : 0;
    if (cc->cbs.on_synced) cc->cbs.on_synced(cc->ud);
}

bool sb__client_inbox_on_sync_error(sb_client_core *cc, uint32_t rid)
{
    cc_inbox *in = &cc->in;
    if (!rid || rid != in->sync_rid || !in->sync_inflight) return false;
    in->sync_inflight = false;
    /* The loop did not end: it goes on a little later, whether or not
     * anything is held (what was missed is unknown until it is read). */
    in->sync_failed = true;
    in->gap_retry_at_ms = cc->now_ms + cc->cfg.gap_retry_ms;
    return true;
}

void sb__client_inbox_on_welcome(sb_client_core *cc, const Sbp__Welcome *w)
{
    cc_inbox *in = &cc->in;
    in->sync_limit = cc->cfg.sync_limit ? cc->cfg.sync_limit : w->sync_page_max;
    if (w->sync_page_max && in->sync_limit > w->sync_page_max)
        in->sync_limit = w->sync_page_max;
    in->need_sync = !cc->cfg.sync_disabled;
    in->sync_failed = false;
    in->gap_retry_at_ms = 0;
    /* The last ACKs may have been lost with the connection: ACK again. */
    for (size_t i = 0; i < in->convs.cap; i++) {
        cc_conv *c = in->convs.slots[i].val;
        if (!c) continue;
        if (c->surfaced) c->acked = 0;
        if (c->read_seq) c->read_sent = 0;
        if (c->surfaced || c->read_seq) conv_dirty(cc, c);
    }
}

void sb__client_inbox_on_sync_hint(sb_client_core *cc, const Sbp__Frame *f)
{
    (void)f;
    if (cc->cfg.sync_disabled) return;
    cc->in.need_sync = true;
    cc->pump_needed = true;
}

void sb__client_inbox_on_disconnect(sb_client_core *cc)
{
    cc->in.sync_inflight = false;
}

void sb__client_inbox_tick(sb_client_core *cc)
{
    cc_inbox *in = &cc->in;
    if (in->gap_retry_at_ms && cc->now_ms >= in->gap_retry_at_ms &&
        !in->sync_inflight) {
        in->gap_retry_at_ms = 0;
        if (in->held_now || in->sync_failed) in->need_sync = true;
        in->sync_failed = false;
    }
}

/* A SYNC with the cursor of every conversation known. */
static void send_sync(sb_client_core *cc)
{
    cc_inbox *in = &cc->in;
    size_t n = 0;
    Sbp__Cursor *cur = NULL;
    Sbp__Cursor **curp = NULL;
    if (in->convs.len) {
        cur = malloc(in->convs.len * sizeof *cur);
        curp = malloc(in->convs.len * sizeof *curp);
        if (!cur || !curp) goto out;
        for (size_t i = 0; i < in->convs.cap; i++) {
            cc_conv *c = in->convs.slots[i].val;
            if (!c) continue;
            sbp__cursor__init(&cur[n]);
            cur[n].conv_id = c->conv_id;
            cur[n].seq = c->surfaced;
            curp[n] = &cur[n];
            n++;
        }
    }
    Sbp__Sync s = SBP__SYNC__INIT;
    s.n_cursors = n;
    s.cursors = curp;
    s.limit = in->sync_limit;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = sb__client_new_rid(cc);
    f.body_case = SBP__FRAME__BODY_SYNC;
    f.sync = &s;
    if (sb__client_emit(cc, &f) == 0) {
        in->sync_rid = f.rid;
        in->sync_inflight = true;
        in->need_sync = false;
        in->gap_retry_at_ms = 0;
        cc->st.syncs++;
    }
out:
    free(cur);
    free(curp);
}

void sb__client_inbox_pump_sync(sb_client_core *cc)
{
    if (cc->in.need_sync && !cc->in.sync_inflight && !cc->cfg.sync_disabled)
        send_sync(cc);
}

void sb__client_inbox_flush_receipts(sb_client_core *cc)
{
    cc_inbox *in = &cc->in;
    while (in->dirty) {
        cc_conv *c = in->dirty;
        if (c->surfaced > c->acked) {
            Sbp__Ack a = SBP__ACK__INIT;
            a.conv_id = c->conv_id;
            a.seq = c->surfaced;
            Sbp__Frame f = SBP__FRAME__INIT;
            f.body_case = SBP__FRAME__BODY_ACK;
            f.ack = &a;
            if (sb__client_emit(cc, &f) != 0) break;
            c->acked = c->surfaced;
            cc->st.acks++;
        }
        if (c->read_seq > c->read_sent) {
            Sbp__Read r = SBP__READ__INIT;
            r.conv_id = c->conv_id;
            r.seq = c->read_seq;
            Sbp__Frame f = SBP__FRAME__INIT;
            f.body_case = SBP__FRAME__BODY_READ;
            f.read = &r;
            if (sb__client_emit(cc, &f) != 0) break;
            c->read_sent = c->read_seq;
        }
        in->dirty = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
    }
}

void sb__client_inbox_free(sb_client_core *cc)
{
    for (size_t i = 0; i < cc->in.convs.cap; i++) {
        cc_conv *c = cc->in.convs.slots[i].val;
        if (!c) continue;
        while (c->held) {
            cc_held *h = c->held;
            c->held = h->next;
            free(h);
        }
        free(c);
    }
    sb_map_free(&cc->in.convs);
}

/* ---- API ----------------------------------------------------------------- */

int sb_client_core_read(sb_client_core *cc, uint64_t conv_id, uint64_t seq)
{
    assert(cc);
    if (conv_id == 0 || seq == 0) return SB_E_INVALID;
    cc_conv *c = sb__client_conv_get(cc, conv_id, true);
    if (!c) return -ENOBUFS;
    if (seq > c->read_seq) {
        c->read_seq = seq;
        conv_dirty(cc, c);
    }
    return 0;
}

void sb_client_core_sync(sb_client_core *cc)
{
    assert(cc);
    if (cc->cfg.sync_disabled) return;
    cc->in.need_sync = true;
    cc->pump_needed = true;
}

int sb_client_core_set_cursor(sb_client_core *cc, uint64_t conv_id,
                              uint64_t seq)
{
    assert(cc);
    if (conv_id == 0) return SB_E_INVALID;
    cc_conv *c = sb__client_conv_get(cc, conv_id, true);
    if (!c) return -ENOBUFS;
    if (seq > c->surfaced) {
        c->surfaced = seq;
        held_drop_through(cc, c, seq);
        sb__client_enter(cc);
        held_drain(cc, c);
        sb__client_leave(cc);
        conv_dirty(cc, c);
    }
    return 0;
}

uint64_t sb_client_core_cursor(const sb_client_core *cc, uint64_t conv_id)
{
    const cc_conv *c = sb_map_get(&cc->in.convs, conv_id);
    return c ? c->surfaced : 0;
}
