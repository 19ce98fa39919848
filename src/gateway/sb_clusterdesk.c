/* The desks in a cluster: one node at a time owns them (the shell holds a
 * lock in the store for it and says so with sb_gw_cluster_own) and keeps
 * the routing state, agent status and load and the queues, as a single
 * gateway does. The other nodes send it their sessions' desk requests
 * (rows with SB_GW_DESK, the service OPEN) as DeskCalls; the owner handles
 * each through a proxy session that stands for the caller and whose
 * frames go back to the caller's node, which relays them. They also tell
 * it of messages stored in service conversations (the bot answers them).
 *
 * Every node publishes, every second and when it changes, which agents and
 * bots have sessions on it and whether it owns the desks: so every node
 * knows who is online anywhere (the owner routes on it; a new owner has it
 * already) and which node owns the desks now. A node silent for
 * NODE_GONE_MS is gone, with its sessions. A request sent to an owner that
 * dies is sent again to the next one once it announces itself; one that
 * finds no owner for CALL_WAIT_MS is answered ERR_UNAVAILABLE. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_gwcore.h"

#define PRESENCE_EVERY_MS 1000
#define NODE_GONE_MS 5000
#define NODES_MAX 64
/* Agents and bots one node announces (more are not routed to elsewhere). */
#define PRESENCE_USERS_MAX 4096
/* Requests sent to the owner and not yet answered, and how long one may
 * wait for its answer. */
#define CALLS_MAX 4096
#define CALL_WAIT_MS 10000
/* A proxy session unused this long is dropped. */
#define PROXY_IDLE_MS 60000
/* Proxy session ids: apart from the shell's connection ids. */
#define PROXY_ID_BIT (1ull << 63)

typedef struct sb_proxy {
    struct sb_proxy *next; /* chained on the hash of (node, conn) */
    uint64_t hash, conn, sess_id;
    char node[SB_ID_BYTES_MAX + 1];
    int64_t used_ms;
    bool closing;
} proxy;

/* A request sent to the owner, kept until its answer comes. */
typedef struct call {
    struct call *next;
    uint64_t conn;
    uint32_t rid;
    int64_t due_ms;
    size_t len;
    uint8_t frame[]; /* the request, protobuf */
} call;

typedef struct pnode {
    char name[SB_ID_BYTES_MAX + 1];
    int64_t seen_ms;
    bool used;
} pnode;

/* An agent or bot online on other nodes (bit i of mask: node i). */
typedef struct pentry {
    struct pentry *next; /* chained on the user id's hash */
    char user_id[SB_ID_BYTES_MAX + 1];
    Sbp__Role role;
    uint64_t mask;
    bool listed; /* in the presence being applied */
} pentry;

struct sb_gw_desknode {
    bool own;
    char owner[SB_ID_BYTES_MAX + 1]; /* the owner last heard of ("": none) */
    int64_t owner_seen_ms;
    bool presence_dirty;
    int64_t presence_due_ms;
    sb_map proxies; /* (node, conn) hash -> proxy chain */
    size_t n_proxies;
    uint64_t proxy_next;
    call *calls;
    size_t n_calls;
    pnode nodes[NODES_MAX];
    sb_map users; /* user id hash -> pentry chain */
    size_t n_entries;
};

typedef struct sb_gw_desknode desknode;

static uint64_t proxy_hash(const char *node, uint64_t conn)
{
    return sb_map_hash_str(node) ^ (conn * 0x9e3779b97f4a7c15ull);
}

bool sb__gw_desk_elsewhere(const sb_gw *gw)
{
    return sb__gw_clustered(gw) && !(gw->dn && gw->dn->own);
}

bool sb_gw_cluster_owner(const sb_gw *gw)
{
    return gw->dn && gw->dn->own;
}

/* ---- presence ------------------------------------------------------------ */

static bool desk_role(Sbp__Role r)
{
    return r == SBP__ROLE__ROLE_AGENT || r == SBP__ROLE__ROLE_BOT;
}

/* The role of user_id's ready sessions here, or 0 if it has none. */
static Sbp__Role local_role(sb_gw *gw, const char *user_id)
{
    user *u = sb__gw_user_get(gw, user_id);
    for (sess *s = u ? u->sessions : NULL; s; s = s->user_next)
        if (s->state == SESS_READY) return s->role;
    return 0;
}

static pentry *entry_get(desknode *dn, const char *user_id)
{
    for (pentry *e = sb_map_get(&dn->users, sb_map_hash_str(user_id)); e;
         e = e->next)
        if (strcmp(e->user_id, user_id) == 0) return e;
    return NULL;
}

static pentry *entry_add(desknode *dn, const char *user_id, Sbp__Role role)
{
    pentry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    uint64_t h = sb_map_hash_str(user_id);
    sb__gw_copy_str(e->user_id, sizeof e->user_id, user_id);
    e->role = role;
    e->next = sb_map_get(&dn->users, h);
    if (sb_map_put(&dn->users, h, e) != 0) {
        free(e);
        return NULL;
    }
    dn->n_entries++;
    return e;
}

static void entry_del(desknode *dn, pentry *e)
{
    uint64_t h = sb_map_hash_str(e->user_id);
    pentry *head = sb_map_get(&dn->users, h);
    if (head == e) {
        if (e->next)
            sb_map_put(&dn->users, h, e->next); /* replaces: cannot fail */
        else
            sb_map_del(&dn->users, h);
    } else {
        for (pentry *p = head; p; p = p->next)
            if (p->next == e) {
                p->next = e->next;
                break;
            }
    }
    dn->n_entries--;
    free(e);
}

/* The owner routes on presence: tell it of a change. */
static void presence_tell(sb_gw *gw, const char *user_id, Sbp__Role role,
                          bool online)
{
    if (gw->dn->own && gw->hooks.presence)
        gw->hooks.presence(gw->hooks.ud, user_id, role, online);
}

void sb__gw_presence_local(sb_gw *gw, const char *user_id, Sbp__Role role,
                           bool online)
{
    desknode *dn = gw->dn;
    if (!dn || !desk_role(role)) return;
    pentry *e = entry_get(dn, user_id);
    if (!(e && e->mask)) presence_tell(gw, user_id, role, online);
    dn->presence_dirty = true;
}

bool sb__gw_user_online(sb_gw *gw, const char *user_id, Sbp__Role role)
{
    user *u = sb__gw_user_get(gw, user_id);
    for (sess *s = u ? u->sessions : NULL; s; s = s->user_next)
        if (s->state == SESS_READY && s->role == role) return true;
    pentry *e = gw->dn ? entry_get(gw->dn, user_id) : NULL;
    return e && e->mask && e->role == role;
}

void sb__gw_online_each(sb_gw *gw, Sbp__Role role,
                        void (*fn)(void *ud, const char *user_id), void *ud)
{
    /* Collected first: fn may change the maps. */
    size_t n = gw->dn ? gw->dn->n_entries : 0, k = 0;
    for (size_t i = 0; i < gw->users.cap; i++)
        for (user *u = gw->users.slots[i].val; u; u = u->hash_next)
            n++;
    char(*ids)[SB_ID_BYTES_MAX + 1] = n ? malloc(n * sizeof *ids) : NULL;
    if (!ids) return;
    for (size_t i = 0; i < gw->users.cap; i++)
        for (user *u = gw->users.slots[i].val; u && k < n; u = u->hash_next)
            if (local_role(gw, u->id) == role)
                sb__gw_copy_str(ids[k++], sizeof ids[0], u->id);
    for (size_t i = 0; gw->dn && i < gw->dn->users.cap; i++)
        for (pentry *e = gw->dn->users.slots[i].val; e && k < n; e = e->next)
            if (e->mask && e->role == role && !local_role(gw, e->user_id))
                sb__gw_copy_str(ids[k++], sizeof ids[0], e->user_id);
    for (size_t i = 0; i < k; i++)
        fn(ud, ids[i]);
    free(ids);
}

/* Sets node k's bit on the listed entries and clears it on the others,
 * telling the owner of every user whose presence changes. */
static void presence_apply(sb_gw *gw, int k)
{
    desknode *dn = gw->dn;
    uint64_t bit = 1ull << k;
    for (size_t i = 0; i < dn->users.cap; i++)
        for (pentry *e = dn->users.slots[i].val; e; e = e->next) {
            uint64_t mask = e->listed ? e->mask | bit : e->mask & ~bit;
            e->listed = false;
            if (mask == e->mask) continue;
            bool here = local_role(gw, e->user_id) != 0;
            if (!here && !e->mask != !mask)
                presence_tell(gw, e->user_id, e->role, mask != 0);
            e->mask = mask;
        }
    /* Entries nobody has any more, freed outside the walk. */
    size_t n = 0;
    pentry **gone = dn->n_entries ? malloc(dn->n_entries * sizeof *gone) : NULL;
    for (size_t i = 0; gone && i < dn->users.cap; i++)
        for (pentry *e = dn->users.slots[i].val; e; e = e->next)
            if (!e->mask) gone[n++] = e;
    for (size_t i = 0; i < n; i++)
        entry_del(dn, gone[i]);
    free(gone); /* out of memory: they are freed with the gateway */
}

static int node_slot(desknode *dn, const char *name, bool add)
{
    int free_k = -1;
    for (int k = 0; k < NODES_MAX; k++) {
        if (dn->nodes[k].used && strcmp(dn->nodes[k].name, name) == 0) return k;
        if (!dn->nodes[k].used && free_k < 0) free_k = k;
    }
    if (!add || free_k < 0) return -1;
    dn->nodes[free_k].used = true;
    sb__gw_copy_str(dn->nodes[free_k].name, sizeof dn->nodes[free_k].name,
                    name);
    return free_k;
}

static void calls_resend(sb_gw *gw);

void sb__gw_presence_in(sb_gw *gw, const char *node,
                        const Sbp__ClusterPresence *p)
{
    desknode *dn = gw->dn;
    if (!dn) return;
    int k = node_slot(dn, node, true);
    if (k < 0) return;
    dn->nodes[k].seen_ms = gw->now_ms;
    for (size_t i = 0; i < p->n_users && i < PRESENCE_USERS_MAX; i++) {
        const Sbp__ClusterUser *cu = p->users[i];
        if (!cu->user_id[0] || strlen(cu->user_id) > SB_ID_BYTES_MAX ||
            !desk_role(cu->role))
            continue;
        pentry *e = entry_get(dn, cu->user_id);
        if (!e) e = entry_add(dn, cu->user_id, cu->role);
        if (e) {
            e->role = cu->role;
            e->listed = true;
        }
    }
    presence_apply(gw, k);
    if (p->owner) {
        bool changed = strcmp(dn->owner, node) != 0;
        sb__gw_copy_str(dn->owner, sizeof dn->owner, node);
        dn->owner_seen_ms = gw->now_ms;
        if (changed) calls_resend(gw);
    } else if (strcmp(dn->owner, node) == 0) {
        dn->owner[0] = '\0';
    }
}

/* What this node tells every node: its agents and bots, and whether it
 * owns the desks. */
static void presence_publish(sb_gw *gw)
{
    desknode *dn = gw->dn;
    size_t n = 0;
    Sbp__ClusterUser *us = calloc(PRESENCE_USERS_MAX, sizeof *us);
    Sbp__ClusterUser **up = calloc(PRESENCE_USERS_MAX, sizeof *up);
    if (!us || !up) goto out;
    for (size_t i = 0; i < gw->users.cap; i++)
        for (user *u = gw->users.slots[i].val; u && n < PRESENCE_USERS_MAX;
             u = u->hash_next) {
            Sbp__Role r = local_role(gw, u->id);
            if (!desk_role(r)) continue;
            sbp__cluster_user__init(&us[n]);
            us[n].user_id = u->id;
            us[n].role = r;
            up[n] = &us[n];
            n++;
        }
    Sbp__ClusterPresence p = SBP__CLUSTER_PRESENCE__INIT;
    p.owner = dn->own;
    p.users = up;
    p.n_users = n;
    Sbp__ClusterEvent ev = SBP__CLUSTER_EVENT__INIT;
    ev.presence = &p;
    sb__gw_cluster_publish(gw, SB_GW_TOPIC_ALL, "", &ev);
    dn->presence_dirty = false;
    dn->presence_due_ms = gw->now_ms + PRESENCE_EVERY_MS;
out:
    free(us);
    free(up);
}

/* Node k is gone: its agents and bots with it. What it stored last may
 * not have been published: every conversation with devices here is read
 * from the store. */
static void node_gone(sb_gw *gw, int k)
{
    desknode *dn = gw->dn;
    presence_apply(gw, k); /* nothing listed: every bit of k cleared */
    if (strcmp(dn->owner, dn->nodes[k].name) == 0) dn->owner[0] = '\0';
    dn->nodes[k].used = false;
    sb_gw_cluster_resync(gw, gw->now_ms);
}

/* ---- requests to the owner ---------------------------------------------- */

static void call_send(sb_gw *gw, sess *s, const call *c)
{
    Sbp__DeskCall dc = SBP__DESK_CALL__INIT;
    dc.conn_id = s->id;
    dc.user_id = s->user_id;
    dc.role = s->role;
    dc.device_id = s->device_id;
    dc.locale = s->locale;
    dc.frame.data = (uint8_t *)c->frame;
    dc.frame.len = c->len;
    Sbp__ClusterEvent ev = SBP__CLUSTER_EVENT__INIT;
    ev.call = &dc;
    sb__gw_cluster_publish(gw, SB_GW_TOPIC_DESK, "", &ev);
}

void sb__gw_desk_forward(sb_gw *gw, sess *s, const Sbp__Frame *f)
{
    desknode *dn = gw->dn;
    size_t n = sbp__frame__get_packed_size(f);
    call *c = dn && dn->n_calls < CALLS_MAX ? malloc(sizeof *c + n) : NULL;
    if (!c) {
        sb__gw_error(gw, s, f->rid, SB_E_UNAVAILABLE);
        return;
    }
    c->conn = s->id;
    c->rid = f->rid;
    c->due_ms = gw->now_ms + CALL_WAIT_MS;
    c->len = sbp__frame__pack(f, c->frame);
    call_send(gw, s, c);
    if (!c->rid) { /* nothing answers it: nothing to wait for */
        free(c);
        return;
    }
    c->next = dn->calls;
    dn->calls = c;
    dn->n_calls++;
}

/* A new owner: what the old one left unanswered goes to it. */
static void calls_resend(sb_gw *gw)
{
    for (call *c = gw->dn->calls; c; c = c->next) {
        sess *s = sb__gw_sess_get(gw, c->conn);
        if (s && s->state == SESS_READY) {
            c->due_ms = gw->now_ms + CALL_WAIT_MS;
            call_send(gw, s, c);
        }
    }
}

/* Takes the calls out that match (conn, rid), or all of them that are
 * due (rid 0, conn 0), answering those ERR_UNAVAILABLE. */
static void calls_end(sb_gw *gw, uint64_t conn, uint32_t rid, bool due)
{
    desknode *dn = gw->dn;
    call **pp = &dn->calls;
    while (*pp) {
        call *c = *pp;
        bool end =
            due ? c->due_ms <= gw->now_ms : c->conn == conn && c->rid == rid;
        if (!end) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        dn->n_calls--;
        sess *s = due ? sb__gw_sess_get(gw, c->conn) : NULL;
        if (s) sb__gw_error(gw, s, c->rid, SB_E_UNAVAILABLE);
        free(c);
    }
}

void sb__gw_desk_answer_in(sb_gw *gw, uint64_t conn_id, Sbp__Frame *f)
{
    if (!gw->dn || (conn_id & PROXY_ID_BIT)) return;
    sess *s = sb__gw_sess_get(gw, conn_id);
    if (f->rid) calls_end(gw, conn_id, f->rid, false);
    if (!s || s->state != SESS_READY) return;
    /* The node's copy of a conversation follows what the owner did. */
    Sbp__Conversation *pc =
        f->body_case == SBP__FRAME__BODY_OPEN_RESP     ? f->open_resp->conv
        : f->body_case == SBP__FRAME__BODY_CONV_UPDATE ? f->conv_update->conv
                                                       : NULL;
    if (pc && pc->conv_id) sb__gw_conv_refresh(gw, pc);
    void *body;
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field(&sbp__frame__descriptor,
                                                (unsigned)f->body_case);
    if (!fd || fd->type != PROTOBUF_C_TYPE_MESSAGE) return;
    memcpy(&body, (char *)f + fd->offset, sizeof body);
    sb__gw_send(gw, s, f->rid, f->body_case, body);
}

/* ---- the owner's side: proxy sessions ------------------------------------ */

static proxy *proxy_find(desknode *dn, const char *node, uint64_t conn)
{
    uint64_t h = proxy_hash(node, conn);
    for (proxy *p = sb_map_get(&dn->proxies, h); p; p = p->next)
        if (p->conn == conn && strcmp(p->node, node) == 0) return p;
    return NULL;
}

/* A proxy session for (node, dc's session), ready as the caller is. */
static proxy *proxy_new(sb_gw *gw, const char *node, const Sbp__DeskCall *dc)
{
    desknode *dn = gw->dn;
    proxy *p = calloc(1, sizeof *p);
    sess *s = calloc(1, sizeof *s);
    if (!p || !s) goto fail;
    p->hash = proxy_hash(node, dc->conn_id);
    p->conn = dc->conn_id;
    p->sess_id = PROXY_ID_BIT | ++dn->proxy_next;
    sb__gw_copy_str(p->node, sizeof p->node, node);
    s->id = p->sess_id;
    s->enc = SB_ENC_PROTO;
    s->state = SESS_READY;
    s->opened_ms = gw->now_ms;
    sb__gw_copy_str(s->user_id, sizeof s->user_id, dc->user_id);
    sb__gw_copy_str(s->device_id, sizeof s->device_id, dc->device_id);
    sb__gw_copy_str(s->locale, sizeof s->locale, dc->locale);
    s->role = dc->role;
    s->send_mtokens = (uint64_t)gw->cfg.send_burst * 1000;
    s->send_refill_ms = gw->now_ms;
    s->proxy = p;
    if (sb_map_put(&gw->sessions, s->id, s) != 0) goto fail;
    p->next = sb_map_get(&dn->proxies, p->hash);
    if (sb_map_put(&dn->proxies, p->hash, p) != 0) {
        sb_map_del(&gw->sessions, s->id);
        goto fail;
    }
    dn->n_proxies++;
    return p;
fail:
    free(p);
    free(s);
    return NULL;
}

static void proxy_drop(sb_gw *gw, proxy *p)
{
    desknode *dn = gw->dn;
    proxy *head = sb_map_get(&dn->proxies, p->hash);
    if (head == p) {
        if (p->next)
            sb_map_put(&dn->proxies, p->hash, p->next); /* cannot fail */
        else
            sb_map_del(&dn->proxies, p->hash);
    } else {
        for (proxy *q = head; q; q = q->next)
            if (q->next == p) {
                q->next = p->next;
                break;
            }
    }
    dn->n_proxies--;
    sess *s = sb__gw_sess_get(gw, p->sess_id);
    if (s) s->proxy = NULL;
    sb_gw_conn_closed(gw, p->sess_id);
    free(p);
}

void sb__gw_desk_call_in(sb_gw *gw, const char *node, Sbp__DeskCall *dc)
{
    desknode *dn = gw->dn;
    if (!dn || !dn->own || !dc->conn_id || (dc->conn_id & PROXY_ID_BIT) ||
        strlen(dc->user_id) > SB_ID_BYTES_MAX || !dc->user_id[0] ||
        strlen(dc->device_id) > SB_ID_BYTES_MAX ||
        strlen(dc->locale) > SB_LOCALE_BYTES_MAX)
        return;
    proxy *p = proxy_find(dn, node, dc->conn_id);
    sess *s = p ? sb__gw_sess_get(gw, p->sess_id) : NULL;
    if (p && (!s || p->closing || strcmp(s->user_id, dc->user_id) != 0)) {
        proxy_drop(gw, p); /* a connection id reused, or closed */
        p = NULL;
    }
    if (!p && !(p = proxy_new(gw, node, dc))) return; /* the caller times out */
    p->used_ms = gw->now_ms;
    sb_gw_conn_frame(gw, p->sess_id, dc->frame.data, dc->frame.len, gw->now_ms);
}

void sb__gw_proxy_send(sb_gw *gw, sess *s, uint32_t rid, Sbp__Frame__BodyCase k,
                       void *body)
{
    proxy *p = s->proxy;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = rid;
    f.body_case = k;
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field(&sbp__frame__descriptor,
                                                (unsigned)k);
    assert(fd && fd->type == PROTOBUF_C_TYPE_MESSAGE);
    memcpy((char *)&f + fd->offset, &body, sizeof body);
    Sbp__ClusterEvent ev = SBP__CLUSTER_EVENT__INIT;
    ev.frame = &f;
    ev.conn_id = p->conn;
    p->used_ms = gw->now_ms;
    sb__gw_cluster_publish(gw, SB_GW_TOPIC_NODE, p->node, &ev);
}

void sb__gw_proxy_close(sb_gw *gw, sess *s)
{
    (void)gw;
    s->proxy->closing = true; /* dropped at the next tick */
    s->state = SESS_CLOSING;
}

/* ---- stored messages ----------------------------------------------------- */

void sb__gw_desk_stored(sb_gw *gw, const conv *c, const Sbp__Message *m)
{
    (void)c;
    Sbp__ClusterEvent ev = SBP__CLUSTER_EVENT__INIT;
    ev.stored = (Sbp__Message *)m;
    sb__gw_cluster_publish(gw, SB_GW_TOPIC_DESK, "", &ev);
}

static void stored_loaded(sb_req *r)
{
    sb_gw *gw = r->ctx;
    sb__gw_req_back(gw, r, false);
    Sbp__Message *m = r->data;
    conv *c = r->rc == 0 ? sb__gw_conv_cache(gw, r->u.conv_get.conv) : NULL;
    if (r->u.conv_get.conv)
        sbp__conversation__free_unpacked(r->u.conv_get.conv, NULL);
    if (c && gw->dn->own && gw->hooks.stored)
        gw->hooks.stored(gw->hooks.ud, c, m);
    sbp__message__free_unpacked(m, NULL);
    free(r);
}

void sb__gw_desk_stored_in(sb_gw *gw, Sbp__Message *m)
{
    conv *c = sb_map_get(&gw->convs, m->conv_id);
    if (gw->dn && gw->dn->own && c) {
        if (gw->hooks.stored) gw->hooks.stored(gw->hooks.ud, c, m);
    } else if (gw->dn && gw->dn->own) {
        sb_req *r = sb__gw_req_new(gw, SB_REQ_CONV_GET, NULL, 0, stored_loaded);
        if (r) {
            r->u.conv_get.conv_id = m->conv_id;
            r->data = m;
            sb__gw_submit(gw, r);
            return;
        }
    }
    sbp__message__free_unpacked(m, NULL);
}

/* ---- ownership ----------------------------------------------------------- */

void sb__gw_desk_join(sb_gw *gw)
{
    if (!gw->dn) gw->dn = calloc(1, sizeof *gw->dn);
    if (!gw->dn) return; /* a node that cannot take part in the desks */
    gw->io.subscribe(gw->io.ud, SB_GW_TOPIC_NODE, gw->node, true);
    gw->io.subscribe(gw->io.ud, SB_GW_TOPIC_ALL, "", true);
    gw->dn->presence_dirty = true;
}

static void agent_online(void *ud, const char *user_id)
{
    sb_gw *gw = ud;
    if (gw->hooks.presence)
        gw->hooks.presence(gw->hooks.ud, user_id, SBP__ROLE__ROLE_AGENT, true);
}

void sb_gw_cluster_own(sb_gw *gw, bool own, int64_t now_ms)
{
    desknode *dn = gw->dn;
    gw->now_ms = now_ms;
    if (!dn || dn->own == own) return;
    dn->own = own;
    dn->presence_dirty = true;
    gw->io.subscribe(gw->io.ud, SB_GW_TOPIC_DESK, "", own);
    if (own) {
        sb__gw_copy_str(dn->owner, sizeof dn->owner, gw->node);
        /* What was sent to another owner is not answered now: the callers
         * ask again. */
        for (call *c = dn->calls; c; c = c->next)
            c->due_ms = now_ms;
        calls_end(gw, 0, 0, true);
        /* The agents online anywhere, then the queues and loads from the
         * store. */
        sb__gw_online_each(gw, SBP__ROLE__ROLE_AGENT, agent_online, gw);
        if (gw->hooks.start) gw->hooks.start(gw->hooks.ud);
    } else {
        dn->owner[0] = '\0';
        if (gw->hooks.stop) gw->hooks.stop(gw->hooks.ud);
        for (size_t i = 0; i < dn->proxies.cap; i++)
            for (proxy *p = dn->proxies.slots[i].val; p; p = p->next)
                p->closing = true;
    }
}

void sb__gw_desk_tick(sb_gw *gw)
{
    desknode *dn = gw->dn;
    if (!dn) return;
    if (dn->presence_dirty || gw->now_ms >= dn->presence_due_ms)
        presence_publish(gw);
    for (int k = 0; k < NODES_MAX; k++)
        if (dn->nodes[k].used &&
            gw->now_ms - dn->nodes[k].seen_ms > NODE_GONE_MS)
            node_gone(gw, k);
    calls_end(gw, 0, 0, true);
    /* Proxies closed or idle, dropped outside the walk of the map. */
    size_t n = 0;
    proxy **drop = dn->n_proxies ? malloc(dn->n_proxies * sizeof *drop) : NULL;
    for (size_t i = 0; drop && i < dn->proxies.cap; i++)
        for (proxy *p = dn->proxies.slots[i].val; p; p = p->next)
            if (p->closing || gw->now_ms - p->used_ms > PROXY_IDLE_MS)
                drop[n++] = p;
    for (size_t i = 0; i < n; i++)
        proxy_drop(gw, drop[i]);
    free(drop);
}

void sb__gw_desk_free(sb_gw *gw)
{
    desknode *dn = gw->dn;
    if (!dn) return;
    for (size_t i = 0; i < dn->proxies.cap; i++) {
        proxy *p = dn->proxies.slots[i].val;
        while (p) {
            proxy *next = p->next;
            free(p); /* its session is freed with the gateway's */
            p = next;
        }
    }
    sb_map_free(&dn->proxies);
    while (dn->calls) {
        call *c = dn->calls;
        dn->calls = c->next;
        free(c);
    }
    for (size_t i = 0; i < dn->users.cap; i++) {
        pentry *e = dn->users.slots[i].val;
        while (e) {
            pentry *next = e->next;
            free(e);
            e = next;
        }
    }
    sb_map_free(&dn->users);
    free(dn);
    gw->dn = NULL;
}
