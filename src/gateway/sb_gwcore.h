/* The gateway's delivery core, as the modules above it see it: sessions,
 * conversations, the frame table they register their frame kinds in, the
 * events they hear (sb_gw_hooks), replies, store requests and delivery.
 * The core calls up into a module only through its rows and hooks. Not
 * for the shell, which has sb_gateway.h. */
#ifndef SB_GWCORE_H
#define SB_GWCORE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "sb_gateway.h"
#include "sb_map.h"
#include "sb_token.h"

#define GW_SECRET_BYTES_MAX 256
#define GW_SESSION_ACKS_MAX 64 /* conversations with unflushed ACK cursors */
#define GW_BAD_FRAMES_MAX 100  /* undecodable frames before the close */
/* Frame body cases (proto field numbers) the table has room for. */
#define GW_BODY_CASES SB_GW_FRAME_KINDS

enum sess_state {
    SESS_NEW,           /* connected, no HELLO yet */
    SESS_HELLO_PENDING, /* HELLO accepted, user record being stored */
    SESS_READY,
    SESS_CLOSING, /* close asked of the shell; waiting for conn_closed */
};

/* A stored message on its way to devices, shared by every session that
 * has it unacked or queued: encoded once per encoding, as an item of PUSH
 * frames (sb_push_item_encode), which each device's PUSH copies. */
typedef struct gmsg {
    uint32_t refs;
    Sbp__Message *m;
    sb_buf enc[2];
} gmsg;

typedef struct unacked {
    gmsg *g;
    int64_t due_ms;
    uint32_t attempts;
} unacked;

typedef struct member {
    char user_id[SB_ID_BYTES_MAX + 1];
    Sbp__Role role;
    uint64_t delivered_seq, read_seq;
    uint64_t read_seq_notified; /* read_seq last told to the member's own
                                   devices */
    bool dirty;                 /* receipts changed since the last flush */
} member;

typedef struct conv {
    uint64_t id;
    Sbp__ConvKind kind;
    Sbp__ConvState state;
    /* The highest seq stored that the gateway knows of: the store's when
     * cached, raised by every message delivered (sb__gw_deliver). ACKs
     * and READs count up to it, never past it. */
    uint64_t last_seq;
    size_t n_members;
    member *members;
    bool dirty;           /* on the gateway's list of dirty conversations */
    int64_t dirty_due_ms; /* when its receipts go out at the latest */
    struct conv *dirty_prev, *dirty_next;
    /* Customer service (kind CONV_SERVICE): */
    char desk[SB_ID_BYTES_MAX + 1], group[SB_ID_BYTES_MAX + 1],
        agent[SB_ID_BYTES_MAX + 1], customer[SB_ID_BYTES_MAX + 1];
    int64_t created_ms;   /* when it was made (the store's created_ts) */
    uint32_t unmatched;   /* customer turns the bot did not understand */
    bool first_response;  /* the agent has answered */
    uint32_t csat_rating; /* the customer's rating, 0 while none */
    uint64_t notes_of;    /* kind CONV_NOTES: the service conversation */
    /* Routing writes made for it: a failed one is written again only
     * while no later one was made (which carries the state in full). */
    uint32_t route_gen;
    /* The last transfer's note (malloc'd; NULL: none) and its writer;
     * note_dirty: set here and not yet in a route request to the store. */
    char *note;
    char note_from[SB_ID_BYTES_MAX + 1];
    bool note_dirty;
    /* In a cluster (sb_cluster.c): the order of this node's pushes. */
    struct sb_cseq {
        bool known;    /* next is set (from the first seq seen) */
        bool watched;  /* in the gateway's list of gaps */
        bool reading;  /* a read of the store for the gap is out */
        bool catchup;  /* reading until a short page (after a resync) */
        uint64_t next; /* the next seq to push: those below are pushed */
        uint64_t top;  /* the highest seq heard of */
        uint64_t base; /* the conversation's last seq when it was loaded */
        struct sb_cheld *held; /* messages above a gap, in seq order */
        uint32_t n_held;
        int64_t due_ms; /* when the gap is read from the store */
        struct conv *watch_next;
    } cs;
} conv;

typedef struct sess sess;

/* A user with ready sessions; its id is allocated to its size. */
typedef struct user {
    uint64_t hash;
    sess *sessions;
    struct user *hash_next;
    char id[];
} user;

typedef struct ack_cursor {
    uint64_t conv_id, seq;
} ack_cursor;

/* A connection's session. Idle, it holds only this: the arrays below are
 * allocated while messages flow and freed when they stop. Its fields are
 * ordered by size so that it has no holes. */
struct sess {
    uint64_t id;
    int64_t opened_ms;
    uint64_t open_seq; /* the order connections opened in */
    /* Set by HELLO (sb__gw_sess_set_ids), "" before: the user id, then
     * the device id (sb__gw_sess_device), in one allocation. */
    char *user_id;
    /* On the gateway's list of connections awaiting HELLO, in the order
     * they opened (which is the order of their deadlines). */
    sess *hello_prev, *hello_next;
    user *user;
    sess *user_next;
    uint64_t send_mtokens;  /* SEND token bucket, in thousandths */
    int64_t send_refill_ms; /* when it was last refilled */

    unacked *ua; /* in push order; NULL when none is unacked */
    /* Messages to PUSH at the next flush (sb_gw_flush, or before any
     * other frame to the session), in order; each holds a reference. */
    gmsg **pend;
    sess *flush_next;
    int64_t next_due_ms;
    sess *retry_prev, *retry_next;

    ack_cursor *acks;    /* not yet stored; NULL when none */
    int64_t acks_due_ms; /* when its cursors are stored */
    sess *dirty_next;
    /* In a cluster, on the desk owner: the session of another node that
     * this one stands for while it handles the session's desk requests
     * (sb_clusterdesk.c); NULL for the node's own sessions. */
    struct sb_proxy *proxy;

    char locale[SB_LOCALE_BYTES_MAX + 1];
    uint8_t enc;   /* sb_encoding */
    uint8_t state; /* enum sess_state */
    uint8_t role;  /* Sbp__Role */
    uint32_t pending_sends;
    uint32_t bad_frames;
    uint32_t ua_len, ua_cap;
    uint32_t pend_len, pend_cap;
    uint32_t n_acks, acks_cap;
    bool in_flushq;
    bool in_retry;
    bool acks_dirty;
    bool in_hello_wait;
};

/* ---- the frame table -------------------------------------------------------
 *
 * Each frame kind a client may send has one row: its handler and the
 * preconditions it runs under, as data. The dispatcher checks them in the
 * order of the flags below, then the row's roles, and answers the first
 * that fails with the code named; the handler runs only when all hold.
 * Checks that depend on more than this (a conversation's kind or state,
 * the desk) are the handler's. */
enum {
    /* The session has said HELLO: else ERR_UNAUTHENTICATED and the close,
     * or ERR_UNAVAILABLE while its HELLO is being stored. */
    SB_GW_READY = 1u << 0,
    /* Takes a token from the session's SEND bucket, once per frame
     * received: else ERR_RATE_LIMITED. */
    SB_GW_RATED = 1u << 1,
    /* Loads the conversation the body's conv_id names into the cache
     * first, parking the frame while the store looks it up: else the
     * store's code (ERR_NOT_FOUND). */
    SB_GW_CONV = 1u << 2,
    /* The user is a member of that conversation: else ERR_FORBIDDEN. */
    SB_GW_MEMBER = 1u << 3,
    /* The user is a member of it or an admin: else ERR_FORBIDDEN. */
    SB_GW_ACCESS = 1u << 4,
    /* A desk request: in a cluster, handled by the node that owns the
     * desks; another node sends it there (before any check but READY
     * and RATED) and relays the answers. */
    SB_GW_DESK = 1u << 5,
};
/* What ERR_FORBIDDEN says when membership is what is missing. */
#define SB_GW_NOT_MEMBER "not a member of that conversation"
/* A role's bit in sb_gw_row.roles. */
#define SB_GW_ROLE(r) (1u << (r))

/* Handles frame f from session s. c is the conversation the body names
 * (rows with SB_GW_CONV), else NULL; ud is what the row was registered
 * with. f stays the dispatcher's (it frees it after the call); the handler
 * may move fields out of its body, leaving them empty. */
typedef void (*sb_gw_handler)(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c,
                              void *ud);

typedef struct sb_gw_row {
    Sbp__Frame__BodyCase body;
    uint32_t flags; /* SB_GW_* */
    /* The roles that may send it (SB_GW_ROLE bits; 0: every role), checked
     * after the conversation is loaded: else ERR_FORBIDDEN saying why (NULL:
     * that the role may not). */
    uint32_t roles;
    const char *why;
    /* Checks the body before its conversation is loaded (NULL: nothing
     * to check): 0, or the code to answer. */
    int (*check)(sb_gw *gw, const sess *s, const Sbp__Frame *f);
    sb_gw_handler handle;
} sb_gw_row;

/* Puts n rows in force, each for its frame kind, which must have no row
 * yet; rows must outlive the gateway (a module's const table). Their
 * handlers get ud. */
void sb__gw_handle(sb_gw *gw, const sb_gw_row *rows, size_t n, void *ud);

/* ---- hooks -----------------------------------------------------------------
 *
 * The events the core raises for the module above it that listens (the
 * customer-service module). Every member is optional. */
typedef struct sb_gw_hooks {
    void *ud;
    /* A customer's OPEN: returns true when the module takes it (a service
     * conversation), false to leave it to the core (a direct one). */
    bool (*open)(void *ud, sess *s, const Sbp__Frame *f);
    /* A message that a session sent is stored in cached conversation c
     * (not a duplicate); m is valid during the call. In a cluster, a
     * service conversation's go to the node that owns the desks instead
     * (sb__gw_desk_stored) when that is another one. */
    void (*stored)(void *ud, conv *c, const Sbp__Message *m);
    /* The user's first session is ready (online) or its last one went
     * away; role is that session's. */
    void (*presence)(void *ud, const char *user_id, Sbp__Role role,
                     bool online);
    /* The end of sb_gw_tick(): time has passed (gw->now_ms is the new
     * time); work the module does later (a store write to make again). */
    void (*tick)(void *ud);
    /* sb_gw_start() and sb_gw_desk_swap(), which the module carries out.
     * In a cluster start comes when the node takes the desks over, and
     * stop when it no longer owns them (it forgets the routing state). */
    void (*start)(void *ud);
    void (*stop)(void *ud);
    int (*desk_swap)(void *ud, struct sb_desk *desk, struct sb_desk **old);
    /* sb_gw_free(): the module frees ud. */
    void (*free)(void *ud);
} sb_gw_hooks;

/* Sets the hooks (copied), once. */
void sb__gw_hooks_set(sb_gw *gw, const sb_gw_hooks *h);

typedef struct gw_entry {
    const sb_gw_row *row; /* NULL: no handler */
    void *ud;
    size_t conv_off; /* where the body keeps conv_id (SB_GW_CONV) */
} gw_entry;

struct sb_gw {
    sb_gw_config cfg;
    uint8_t secret[GW_SECRET_BYTES_MAX];
    char token_iss[SB_TOKEN_ISS_BYTES_MAX + 1]; /* "": not checked */
    char token_aud[SB_TOKEN_ISS_BYTES_MAX + 1];
    sb_gw_io io;
    sb_gw_hooks hooks;
    gw_entry table[GW_BODY_CASES]; /* by frame body case */
    int64_t now_ms;
    uint64_t open_seq;             /* of the last connection opened */
    sess *hello_head, *hello_tail; /* sessions awaiting HELLO, oldest first */
    bool draining;
    sb_map sessions; /* conn id -> sess */
    sb_map users;    /* hash(user id) -> user chain */
    sb_map convs;    /* conv id -> conv */
    /* Frames waiting for their conversation to be loaded, in arrival
     * order (conv id -> struct parkq): one read of the store for all. */
    sb_map parked;
    sess *retry_head;
    sess *flushq; /* sessions with messages queued for a PUSH */
    /* Unstored ACK cursors and unsent receipts, oldest first: each goes
     * out its interval after its first change, so that they are spread
     * over time rather than all sent on one clock tick, which would
     * stall the loop with a thousand frames or writes at once. */
    sess *dirty_sessions, *dirty_sessions_tail;
    conv *dirty_convs, *dirty_convs_tail;
    size_t inflight;
    sb_buf scratch;
    sb_buf event_scratch; /* an event's item, rendered for one session */
    sb_buf push_out;      /* PUSH frames being assembled */
    sb_gw_stats stats;
    /* A cluster (io.publish set): this node's name, the conversations
     * with a gap to repair, and other nodes' messages waiting for their
     * conversation to be loaded (conv id -> list). */
    char node[SB_ID_BYTES_MAX + 1];
    sb_buf cluster_out; /* an event being encoded */
    conv *gaps;
    sb_map cluster_wait;
    /* Sessions still to be told to SYNC after a resync (ids), a few per
     * tick. */
    uint64_t *hint_ids;
    size_t n_hints, hint_pos;
    struct sb_gw_desknode *dn; /* the desks in the cluster */
    /* Desk requests that came before the routing state was ready (at a
     * start, or a node taking the desks over), in order: each a session
     * id and its frame in protobuf. */
    bool desk_ready;
    struct held_frame *desk_wait, *desk_wait_tail;
    size_t n_desk_wait;
};

/* The core alone, with no frame kind in its table: sb_gw_new() adds the
 * modules. Arguments as sb_gw_new's. */
int sb__gw_new(const sb_gw_config *c, const sb_gw_io *io, sb_gw **out);

/* ---- replies ---------------------------------------------------------------
 *
 * Every frame but PUSH goes out through sb__gw_send: a frame of kind k
 * with body (borrowed) and request id rid (0: not an answer). Nothing is
 * sent to a session that is NULL or closing. */
void sb__gw_send(sb_gw *gw, sess *s, uint32_t rid, Sbp__Frame__BodyCase k,
                 void *body);
/* ERROR for rc to the request rid, saying text (NULL or "": rc's own
 * words). */
void sb__gw_error(sb_gw *gw, sess *s, uint32_t rid, int rc);
void sb__gw_error_text(sb_gw *gw, sess *s, uint32_t rid, int rc,
                       const char *text);
/* OK when rc is 0, else ERROR for rc. */
void sb__gw_reply_rc(sb_gw *gw, sess *s, uint32_t rid, int rc);
/* ERROR for rc answering f: its rid and, for a SEND, its client_msg_id. */
void sb__gw_frame_error(sb_gw *gw, sess *s, const Sbp__Frame *f, int rc);
/* Sends a frame of kind k with body to every ready session of every
 * member of c, but skip, and in a cluster to the members' sessions on the
 * other nodes. */
void sb__gw_send_members(sb_gw *gw, conv *c, Sbp__Frame__BodyCase k, void *body,
                         const sess *skip);

/* ---- store requests --------------------------------------------------------
 */

/* A store request of kind for session s (NULL: the server's own) and its
 * request id, completed by done with ctx the gateway, at the gateway's
 * time. NULL when out of memory. */
sb_req *sb__gw_req_new(sb_gw *gw, sb_req_kind kind, const sess *s, uint32_t rid,
                       sb_req_done_cb done);
void sb__gw_submit(sb_gw *gw, sb_req *r);
/* What every completion starts with: the clock and the count of requests
 * in flight follow, and the session that made r comes back (NULL when it
 * is gone, or closing unless closing_too). */
sess *sb__gw_req_back(sb_gw *gw, const sb_req *r, bool closing_too);
/* The completion that only frees r: a write nobody waits for. */
void sb__gw_quiet_done(sb_req *r);
/* Stores m and delivers it. For a SEND (s, its rid): SEND_ACK or ERROR to
 * s when stored or refused, the hooks' stored event, and a pending send
 * of s until then. For the server's own (s NULL): delivered to every
 * device. Returns 0 (m taken), or -ENOMEM (m still the caller's). */
int sb__gw_append(sb_gw *gw, sess *s, uint32_t rid, Sbp__Message *m);
/* sb__gw_append() of a SEND whose body the filter masked (masked): the
 * SEND_ACK then carries the body as stored. */
int sb__gw_append_send(sb_gw *gw, sess *s, uint32_t rid, Sbp__Message *m,
                       bool masked);

/* ---- sessions, conversations, delivery -------------------------------------
 */

/* Asks the shell to close s with a WebSocket close code (SB_WS_CLOSE_*).
 * The session stays in the map until the shell reports the connection
 * closed, but takes no further part in delivery. */
void sb__gw_close(sb_gw *gw, sess *s, uint16_t code, const char *why);
/* s has said HELLO and its user's record is stored: the device's session
 * on a connection opened before s's is closed (replaced), s is ready and
 * linked to its user (the user's first raises the presence hook). If the
 * device has a session on a connection opened after s's (s is a stale
 * one whose HELLO came late), s is closed instead and this returns
 * -EEXIST. Returns 0, -EEXIST or -ENOMEM (s is then to be closed). */
int sb__gw_sess_ready(sb_gw *gw, sess *s);

void sb__gw_copy_str(char *dst, size_t cap, const char *src);
/* Sets s's user and device ids (each cut to SB_ID_BYTES_MAX bytes), in
 * one allocation of their size. Returns 0 or -ENOMEM. */
int sb__gw_sess_set_ids(sess *s, const char *user_id, const char *device_id);
/* s's device id: after its user id. */
static inline char *sb__gw_sess_device(const sess *s)
{
    return s->user_id + strlen(s->user_id) + 1;
}
/* Whether s is an id of 1..SB_ID_BYTES_MAX bytes. */
bool sb__gw_valid_id(const char *s);
sess *sb__gw_sess_get(sb_gw *gw, uint64_t id);
user *sb__gw_user_get(sb_gw *gw, const char *id);
member *sb__gw_conv_member(conv *c, const char *user_id);
/* user_id is no longer a member of cached c (nothing if it was not one). */
void sb__gw_conv_member_drop(conv *c, const char *user_id);
/* Whether s may see c: a member, or an admin. */
bool sb__gw_may_access(const sess *s, conv *c);
/* Caches a conversation from its stored form; returns the cached entry
 * (an existing one wins), NULL when out of memory. */
conv *sb__gw_conv_cache(sb_gw *gw, const Sbp__Conversation *pc);
/* Updates a cached conversation from its stored form (members too), but
 * for its routing (state, group, agent) where this node decides it (it
 * owns the desks, or there is one node): memory decides and the store
 * follows. A conversation not yet cached takes the stored form's. */
conv *sb__gw_conv_refresh(sb_gw *gw, const Sbp__Conversation *pc);
/* The same with the stored form's routing too: routing rebuilt from the
 * store (a start, a node taking the desks over). */
conv *sb__gw_conv_reload(sb_gw *gw, const Sbp__Conversation *pc);
/* Delivers a message this node stored: PUSH to every device of every
 * member but origin (NULL: server-made messages go to every device), and
 * in a cluster to the other nodes' devices. Takes m. */
void sb__gw_deliver(sb_gw *gw, Sbp__Message *m, const sess *origin);
/* The same on this node's devices only, now. */
void sb__gw_deliver_local(sb_gw *gw, conv *c, Sbp__Message *m,
                          const sess *origin);
/* Sends a frame of kind k with body to every ready session of user_id,
 * here and, in a cluster, on the other nodes. */
void sb__gw_send_user(sb_gw *gw, const char *user_id, Sbp__Frame__BodyCase k,
                      void *body);
/* ---- delivery to devices (sb_gwpush.c) --------------------------------- */

/* Drops a reference to g, freeing it with the last. */
void sb__gw_gmsg_unref(gmsg *g);
/* Sends the messages queued for s, in order, in PUSH frames. */
void sb__gw_push_flush(sb_gw *gw, sess *s);
/* Takes s off the list of sessions with pushes to retry. */
void sb__gw_retry_unlink(sb_gw *gw, sess *s);
/* Pushes again what s has not acknowledged and is due (sb_gw_tick). */
void sb__gw_retry_session(sb_gw *gw, sess *s);
/* Stores s's device cursors now. */
void sb__gw_flush_cursors(sb_gw *gw, sess *s);
/* Tells the receipts and stores the cursors that are due (all: every
 * one). */
void sb__gw_flush_dirty(sb_gw *gw, bool all);
/* Whether s has a PUSH of conv_id not yet acknowledged. */
bool sb__gw_pushed(const sess *s, uint64_t conv_id);
/* s's device has every message of c through seq (c's last_seq at most):
 * its PUSHes up to seq are acknowledged; if s may access c, its cursor
 * and the member's receipt follow. */
void sb__gw_acked(sb_gw *gw, sess *s, conv *c, uint64_t seq);
/* Member m of c has changed receipts: they go out receipts_ms later. */
void sb__gw_receipt_dirty(sb_gw *gw, conv *c, member *m);

/* ---- the cluster (sb_cluster.c) ---------------------------------------------
 */

/* Whether this gateway is a node of a cluster (io.publish set). */
static inline bool sb__gw_clustered(const sb_gw *gw)
{
    return gw->io.publish != NULL;
}
/* Pushes m, stored in c, to this node's devices in seq order: now if
 * every seq below it was pushed, else once the gap below it fills (origin
 * is then not skipped: its SDK drops its own message by seq). Takes m. */
void sb__gw_cluster_offer(sb_gw *gw, conv *c, Sbp__Message *m,
                          const sess *origin);
/* Publishes message m, stored by this node in c, for every member. */
void sb__gw_cluster_message(sb_gw *gw, const conv *c, const Sbp__Message *m);
/* Publishes a frame for user_id's sessions on the other nodes. */
void sb__gw_cluster_frame(sb_gw *gw, const char *user_id,
                          Sbp__Frame__BodyCase k, void *body);
/* The event encoded and published on topic t (id: a user or a node). */
void sb__gw_cluster_publish(sb_gw *gw, sb_gw_topic t, const char *id,
                            Sbp__ClusterEvent *ev);
/* Reads the gaps that are due from the store (sb_gw_tick). */
void sb__gw_cluster_tick(sb_gw *gw);
/* The routing state is ready (queues and loads rebuilt from the store),
 * or no longer (ready false): desk requests wait until it is, then go on
 * in the order they came. */
void sb__gw_desk_ready(sb_gw *gw, bool ready);
/* Keeps a copy of f, a desk request of s, until the routing state is
 * ready (ERR_UNAVAILABLE when too many wait). */
void sb__gw_desk_hold(sb_gw *gw, sess *s, const Sbp__Frame *f);

/* ---- the desks in a cluster (sb_clusterdesk.c) ------------------------------
 */

/* Whether another node owns the desks (desk requests go there). */
bool sb__gw_desk_elsewhere(const sb_gw *gw);
/* Sends f, a desk request of s, to the desk owner; its answers come back
 * to s (ERR_UNAVAILABLE if none comes in time). */
void sb__gw_desk_forward(sb_gw *gw, sess *s, const Sbp__Frame *f);
/* Tells the desk owner that m was stored in service conversation c. */
void sb__gw_desk_stored(sb_gw *gw, const conv *c, const Sbp__Message *m);
/* A frame for proxy session s: to the session on its node. */
void sb__gw_proxy_send(sb_gw *gw, sess *s, uint32_t rid, Sbp__Frame__BodyCase k,
                       void *body);
/* Proxy session s is done with (its close). */
void sb__gw_proxy_close(sb_gw *gw, sess *s);
/* What the other nodes publish for the desks (sb_gw_cluster_in). */
void sb__gw_desk_call_in(sb_gw *gw, const char *node, Sbp__DeskCall *call);
void sb__gw_desk_stored_in(sb_gw *gw, Sbp__Message *m); /* takes m */
void sb__gw_desk_answer_in(sb_gw *gw, uint64_t conn_id, Sbp__Frame *f);
void sb__gw_presence_in(sb_gw *gw, const char *node,
                        const Sbp__ClusterPresence *p);
/* The user's first session here is ready (online) or its last one went;
 * in a cluster the desk owner hears of agents and bots on any node. */
void sb__gw_presence_local(sb_gw *gw, const char *user_id, Sbp__Role role,
                           bool online);
/* Whether user_id has a ready session with role, here or on another
 * node. */
bool sb__gw_user_online(sb_gw *gw, const char *user_id, Sbp__Role role);
/* Calls fn for every user with role online here or on another node. */
void sb__gw_online_each(sb_gw *gw, Sbp__Role role,
                        void (*fn)(void *ud, const char *user_id), void *ud);
/* Joins the cluster's topics (sb_gw_start). */
void sb__gw_desk_join(sb_gw *gw);
/* Presence heartbeats, answers overdue, proxies idle (sb_gw_tick). */
void sb__gw_desk_tick(sb_gw *gw);
void sb__gw_desk_free(sb_gw *gw);

/* Frees c's messages held for a gap (its conv_free). */
void sb__gw_cluster_conv_free(conv *c);
/* Frees the cluster's state (sb_gw_free). */
void sb__gw_cluster_free(sb_gw *gw);

#endif
