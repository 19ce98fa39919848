/* The gateway as a node of a cluster: what it publishes for the other
 * nodes (a message it stored, for each member; a frame for a user's
 * devices) and what it does with theirs (sb_gw_cluster_in). No I/O: the
 * shell carries the bytes (NATS) through sb_gw_io.subscribe/publish.
 *
 * Every node that holds a session of a member gets the member's copy of a
 * message; the first copy pushes it to all the node's devices of all
 * members, the others are dropped by seq. Events may be lost or come
 * twice, and messages of one conversation stored by different nodes may
 * come in any order, so each conversation pushes in seq order: a message
 * above a gap is held until the gap fills, from the events or, GAP_WAIT_MS
 * later, from the store. Devices thus see each conversation in order as
 * on a single node, and the SDKs' SYNC stays the second line of repair. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_gwcore.h"

/* How long a gap may wait for its messages before they are read. */
#define GAP_WAIT_MS 100
/* Sessions told to SYNC per tick after a resync. */
#define HINTS_PER_TICK 500
/* Messages read from the store at once to fill a gap. */
#define GAP_READ_MAX 64
/* Messages held above a gap per conversation; further ones are read from
 * the store when the gap is. */
#define HELD_MAX 256
/* Other nodes' messages kept for one conversation while it is loaded. */
#define WAIT_MAX 1024

typedef struct sb_cheld {
    struct sb_cheld *next;
    Sbp__Message *m;
} cheld;

/* ---- pushing in seq order ------------------------------------------------ */

/* Whether c may lack seqs here that the store has. */
static bool gap(const struct sb_cseq *cs)
{
    return cs->top >= cs->next || cs->catchup;
}

/* c has a gap (a seq heard of that is not pushed): read it at due unless
 * it fills by then. */
static void gap_watch(sb_gw *gw, conv *c, int64_t wait_ms)
{
    struct sb_cseq *cs = &c->cs;
    if (cs->watched) {
        if (gw->now_ms + wait_ms < cs->due_ms)
            cs->due_ms = gw->now_ms + wait_ms;
        return;
    }
    cs->watched = true;
    cs->due_ms = gw->now_ms + wait_ms;
    cs->watch_next = gw->gaps;
    gw->gaps = c;
}

/* Pushes the held messages that follow what is pushed. */
static void held_drain(sb_gw *gw, conv *c)
{
    struct sb_cseq *cs = &c->cs;
    while (cs->held && cs->held->m->seq <= cs->next) {
        cheld *h = cs->held;
        cs->held = h->next;
        cs->n_held--;
        if (h->m->seq == cs->next) {
            cs->next++;
            sb__gw_deliver_local(gw, c, h->m, NULL);
        } else {
            sbp__message__free_unpacked(h->m, NULL);
        }
        free(h);
    }
}

/* Keeps m above the gap, in seq order (a second copy is dropped). Takes m. */
static void hold(conv *c, Sbp__Message *m)
{
    struct sb_cseq *cs = &c->cs;
    cheld **pp = &cs->held;
    while (*pp && (*pp)->m->seq < m->seq)
        pp = &(*pp)->next;
    cheld *h = NULL;
    if (!(*pp && (*pp)->m->seq == m->seq) && cs->n_held < HELD_MAX)
        h = malloc(sizeof *h);
    if (!h) {
        /* A copy, or no room: the store has it when the gap is read. */
        sbp__message__free_unpacked(m, NULL);
        return;
    }
    h->m = m;
    h->next = *pp;
    *pp = h;
    cs->n_held++;
}

void sb__gw_cluster_offer(sb_gw *gw, conv *c, Sbp__Message *m,
                          const sess *origin)
{
    struct sb_cseq *cs = &c->cs;
    if (m->seq == 0) { /* not a stored message: nothing to order */
        sb__gw_deliver_local(gw, c, m, origin);
        return;
    }
    if (!cs->known) {
        cs->known = true;
        cs->next = m->seq;
    }
    if (m->seq < cs->next) {
        sbp__message__free_unpacked(m, NULL); /* pushed already */
        return;
    }
    if (m->seq > cs->top) cs->top = m->seq;
    if (m->seq == cs->next) {
        cs->next++;
        sb__gw_deliver_local(gw, c, m, origin);
        held_drain(gw, c);
    } else {
        hold(c, m);
    }
    if (gap(cs)) gap_watch(gw, c, GAP_WAIT_MS);
}

/* ---- publishing ---------------------------------------------------------- */

void sb__gw_cluster_publish(sb_gw *gw, sb_gw_topic t, const char *id,
                            Sbp__ClusterEvent *ev)
{
    ev->node = gw->node;
    size_t n = sbp__cluster_event__get_packed_size(ev);
    if (sb_buf_reserve(&gw->cluster_out, n) != 0) return; /* they SYNC */
    sbp__cluster_event__pack(ev, gw->cluster_out.data);
    gw->io.publish(gw->io.ud, t, id, gw->cluster_out.data, n);
}

static void publish(sb_gw *gw, const char *user_id, Sbp__ClusterEvent *ev)
{
    ev->user_id = (char *)user_id;
    sb__gw_cluster_publish(gw, SB_GW_TOPIC_USER, user_id, ev);
}

void sb__gw_cluster_message(sb_gw *gw, const conv *c, const Sbp__Message *m)
{
    Sbp__ClusterEvent ev = SBP__CLUSTER_EVENT__INIT;
    ev.message = (Sbp__Message *)m;
    for (size_t i = 0; i < c->n_members; i++)
        publish(gw, c->members[i].user_id, &ev);
}

/* Where a frame of kind k keeps its body (every body is a pointer in the
 * frame's oneof). */
static void **body_slot(Sbp__Frame *f, Sbp__Frame__BodyCase k)
{
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field(&sbp__frame__descriptor,
                                                (unsigned)k);
    assert(fd && fd->type == PROTOBUF_C_TYPE_MESSAGE);
    return (void **)((char *)f + fd->offset);
}

void sb__gw_cluster_frame(sb_gw *gw, const char *user_id,
                          Sbp__Frame__BodyCase k, void *body)
{
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = k;
    *body_slot(&f, k) = body;
    Sbp__ClusterEvent ev = SBP__CLUSTER_EVENT__INIT;
    ev.frame = &f;
    publish(gw, user_id, &ev);
}

/* ---- receiving ----------------------------------------------------------- */

/* Other nodes' messages for a conversation being (re)loaded. */
typedef struct waitlist {
    Sbp__Message *m[WAIT_MAX];
    size_t n;
} waitlist;

static void conv_loaded(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sb__gw_req_back(gw, r, false);
    waitlist *w = sb_map_del(&gw->cluster_wait, r->u.conv_get.conv_id);
    conv *c = r->rc == 0 ? sb__gw_conv_refresh(gw, r->u.conv_get.conv) : NULL;
    if (r->u.conv_get.conv)
        sbp__conversation__free_unpacked(r->u.conv_get.conv, NULL);
    for (size_t i = 0; w && i < w->n; i++) {
        if (c)
            sb__gw_cluster_offer(gw, c, w->m[i], NULL);
        else
            sbp__message__free_unpacked(w->m[i], NULL); /* the devices SYNC */
    }
    free(w);
    free(r);
}

/* Keeps m until its conversation is loaded from the store (asked once for
 * all that wait). Takes m. */
static void message_wait(sb_gw *gw, Sbp__Message *m)
{
    waitlist *w = sb_map_get(&gw->cluster_wait, m->conv_id);
    if (!w) {
        sb_req *r = sb__gw_req_new(gw, SB_REQ_CONV_GET, NULL, 0, conv_loaded);
        w = r ? calloc(1, sizeof *w) : NULL;
        if (!w || sb_map_put(&gw->cluster_wait, m->conv_id, w) != 0) {
            free(r);
            free(w);
            sbp__message__free_unpacked(m, NULL); /* the devices SYNC */
            return;
        }
        r->u.conv_get.conv_id = m->conv_id;
        sb__gw_submit(gw, r);
    }
    if (w->n == WAIT_MAX) {
        sbp__message__free_unpacked(m, NULL);
        return;
    }
    w->m[w->n++] = m;
}

/* Another node's message for member user_id. A conversation not loaded
 * here, or whose copy here does not have user_id yet (an assignment made
 * elsewhere), is loaded first; its messages wait meanwhile, in order.
 * Takes m. */
static void message_in(sb_gw *gw, const char *user_id, Sbp__Message *m)
{
    conv *c = sb_map_get(&gw->convs, m->conv_id);
    if (c && !sb_map_get(&gw->cluster_wait, m->conv_id) &&
        sb__gw_conv_member(c, user_id))
        sb__gw_cluster_offer(gw, c, m, NULL);
    else
        message_wait(gw, m);
}

/* A frame for user_id's devices here. A conversation update also brings
 * this node's copy of the conversation up to date (members follow an
 * assignment made on another node). */
static void frame_in(sb_gw *gw, const char *user_id, Sbp__Frame *f)
{
    if (f->body_case == SBP__FRAME__BODY_CONV_UPDATE && f->conv_update->conv &&
        sb_map_get(&gw->convs, f->conv_update->conv->conv_id))
        sb__gw_conv_refresh(gw, f->conv_update->conv);
    user *u = sb__gw_user_get(gw, user_id);
    void *body = *body_slot(f, f->body_case);
    for (sess *s = u ? u->sessions : NULL; s; s = s->user_next)
        if (s->state == SESS_READY) sb__gw_send(gw, s, 0, f->body_case, body);
}

void sb_gw_cluster_in(sb_gw *gw, const uint8_t *p, size_t n, int64_t now_ms)
{
    gw->now_ms = now_ms;
    Sbp__ClusterEvent *ev = sbp__cluster_event__unpack(NULL, n, p);
    if (!ev) return;
    if (!ev->node[0] || strcmp(ev->node, gw->node) == 0) goto out;
    Sbp__Frame *f = ev->frame;
    if (f && f->body_case == SBP__FRAME__BODY__NOT_SET) f = NULL;
    if (ev->message && ev->message->conv_id && ev->message->seq &&
        ev->user_id[0]) {
        Sbp__Message *m = ev->message;
        ev->message = NULL;
        message_in(gw, ev->user_id, m);
    } else if (f && ev->conn_id) {
        sb__gw_desk_answer_in(gw, ev->conn_id, f);
    } else if (f && ev->user_id[0]) {
        frame_in(gw, ev->user_id, f);
    } else if (ev->call) {
        sb__gw_desk_call_in(gw, ev->node, ev->call);
    } else if (ev->stored && ev->stored->conv_id && ev->stored->seq) {
        Sbp__Message *m = ev->stored;
        ev->stored = NULL;
        sb__gw_desk_stored_in(gw, m);
    } else if (ev->presence) {
        sb__gw_presence_in(gw, ev->node, ev->presence);
    }
out:
    sbp__cluster_event__free_unpacked(ev, NULL);
}

/* ---- gaps ---------------------------------------------------------------- */

static void gap_read(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sb__gw_req_back(gw, r, false);
    conv *c = sb_map_get(&gw->convs, r->u.history.conv_id);
    Sbp__HistoryResp *h = r->u.history.resp;
    size_t n = h ? h->n_messages : 0;
    if (c) {
        struct sb_cseq *cs = &c->cs;
        cs->reading = false;
        uint64_t before = cs->next;
        for (size_t i = 0; i < n; i++) {
            sb__gw_cluster_offer(gw, c, h->messages[i], NULL);
            h->messages[i] = NULL;
        }
        if (r->rc == 0) cs->catchup = n == GAP_READ_MAX; /* more past it? */
        if (r->rc == 0 && n < GAP_READ_MAX && cs->top >= cs->next &&
            cs->next == before) {
            /* The store has nothing at next, though a later seq was heard
             * of: past what can be repaired here, the devices SYNC it. */
            cs->next = cs->held ? cs->held->m->seq : cs->top + 1;
            held_drain(gw, c);
        }
        if (gap(cs)) gap_watch(gw, c, r->rc == 0 ? 0 : GAP_WAIT_MS);
    }
    if (h) {
        h->n_messages = 0; /* what was read went to sb__gw_cluster_offer */
        sbp__history_resp__free_unpacked(h, NULL);
    }
    free(r);
}

/* Reads c's messages from next on. */
static void gap_fill(sb_gw *gw, conv *c)
{
    sb_req *r = sb__gw_req_new(gw, SB_REQ_HISTORY, NULL, 0, gap_read);
    if (!r) {
        gap_watch(gw, c, GAP_WAIT_MS);
        return;
    }
    c->cs.reading = true;
    r->u.history.conv_id = c->id;
    r->u.history.before_seq = c->cs.next + GAP_READ_MAX;
    r->u.history.limit = GAP_READ_MAX;
    sb__gw_submit(gw, r);
}

/* Tells the next sessions of the resync's list to SYNC. */
static void hints_send(sb_gw *gw)
{
    Sbp__SyncHint h = SBP__SYNC_HINT__INIT;
    size_t end = gw->hint_pos + HINTS_PER_TICK;
    for (; gw->hint_pos < gw->n_hints && gw->hint_pos < end; gw->hint_pos++) {
        sess *s = sb__gw_sess_get(gw, gw->hint_ids[gw->hint_pos]);
        if (s && s->state == SESS_READY && !s->proxy)
            sb__gw_send(gw, s, 0, SBP__FRAME__BODY_SYNC_HINT, &h);
    }
    if (gw->hint_pos == gw->n_hints) {
        free(gw->hint_ids);
        gw->hint_ids = NULL;
        gw->n_hints = gw->hint_pos = 0;
    }
}

void sb__gw_cluster_tick(sb_gw *gw)
{
    if (gw->n_hints) hints_send(gw);
    conv **pp = &gw->gaps;
    while (*pp) {
        conv *c = *pp;
        struct sb_cseq *cs = &c->cs;
        if (gap(cs) && (cs->reading || cs->due_ms > gw->now_ms)) {
            pp = &cs->watch_next;
            continue;
        }
        *pp = cs->watch_next;
        cs->watched = false;
        cs->watch_next = NULL;
        if (gap(cs)) gap_fill(gw, c);
    }
}

/* Whether any member of c has a session here. */
static bool has_devices(sb_gw *gw, const conv *c)
{
    for (size_t i = 0; i < c->n_members; i++)
        if (sb__gw_user_get(gw, c->members[i].user_id)) return true;
    return false;
}

void sb_gw_cluster_resync(sb_gw *gw, int64_t now_ms)
{
    gw->now_ms = now_ms;
    /* Every session SYNCs, a few hundred per tick: messages of
     * conversations this node has not loaded may have passed it too. */
    uint64_t *ids =
        gw->sessions.len ? malloc(gw->sessions.len * sizeof *ids) : NULL;
    if (ids) {
        size_t n = 0;
        for (size_t i = 0; i < gw->sessions.cap; i++) {
            sess *s = gw->sessions.slots[i].val;
            if (s && s->state == SESS_READY && !s->proxy) ids[n++] = s->id;
        }
        free(gw->hint_ids);
        gw->hint_ids = ids;
        gw->n_hints = n;
        gw->hint_pos = 0;
    }
    for (size_t i = 0; i < gw->convs.cap; i++) {
        conv *c = gw->convs.slots[i].val;
        if (!c || !has_devices(gw, c)) continue;
        struct sb_cseq *cs = &c->cs;
        if (!cs->known) {
            cs->known = true;
            cs->next = cs->base + 1;
        }
        /* More than pushed may exist: read until a page is short. */
        cs->catchup = true;
        gap_watch(gw, c, 0);
    }
}

void sb__gw_cluster_conv_free(conv *c)
{
    while (c->cs.held) {
        cheld *h = c->cs.held;
        c->cs.held = h->next;
        sbp__message__free_unpacked(h->m, NULL);
        free(h);
    }
}

void sb__gw_cluster_free(sb_gw *gw)
{
    for (size_t i = 0; i < gw->cluster_wait.cap; i++) {
        waitlist *w = gw->cluster_wait.slots[i].val;
        for (size_t k = 0; w && k < w->n; k++)
            sbp__message__free_unpacked(w->m[k], NULL);
        free(w);
    }
    sb_map_free(&gw->cluster_wait);
    sb_buf_free(&gw->cluster_out);
    free(gw->hint_ids);
}
