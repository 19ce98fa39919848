/* The gateway core's private parts, shared by its modules: sb_gateway.c
 * (sessions and delivery) and sb_service.c (the customer-service
 * lifecycle). Not for the shell. */
#ifndef SB_GATEWAY_INT_H
#define SB_GATEWAY_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "sb_gateway.h"
#include "sb_map.h"
#include "sb_token.h"

#define GW_SECRET_BYTES_MAX 256
#define GW_SESSION_ACKS_MAX 64 /* conversations with unflushed ACK cursors */
#define GW_BAD_FRAMES_MAX 100  /* undecodable frames before the close */

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
    size_t n_members;
    member *members;
    bool dirty;
    int64_t dirty_due_ms; /* when its receipts go out */
    struct conv *dirty_next;
    /* Customer service (kind CONV_SERVICE): */
    char desk[SB_ID_BYTES_MAX + 1], group[SB_ID_BYTES_MAX + 1],
        agent[SB_ID_BYTES_MAX + 1], customer[SB_ID_BYTES_MAX + 1];
    uint32_t unmatched;  /* customer turns the bot did not understand */
    bool first_response; /* the agent has answered */
    bool busy;           /* a routing change is being stored */
} conv;

typedef struct sess sess;

typedef struct user {
    char id[SB_ID_BYTES_MAX + 1];
    uint64_t hash;
    sess *sessions;
    struct user *hash_next;
} user;

typedef struct ack_cursor {
    uint64_t conv_id, seq;
} ack_cursor;

struct sess {
    uint64_t id;
    sb_encoding enc;
    enum sess_state state;
    int64_t opened_ms;
    char user_id[SB_ID_BYTES_MAX + 1];
    char device_id[SB_ID_BYTES_MAX + 1];
    char locale[SB_LOCALE_BYTES_MAX + 1];
    Sbp__Role role;
    user *user;
    sess *user_next;
    uint32_t pending_sends;
    uint32_t bad_frames;
    uint64_t send_mtokens;  /* SEND token bucket, in thousandths */
    int64_t send_refill_ms; /* when it was last refilled */

    unacked *ua; /* in push order */
    size_t ua_len, ua_cap;
    /* Messages to PUSH at the next flush (sb_gw_flush, or before any
     * other frame to the session), in order; each holds a reference. */
    gmsg **pend;
    size_t pend_len, pend_cap;
    bool in_flushq;
    sess *flush_next;
    int64_t next_due_ms;
    bool in_retry;
    sess *retry_prev, *retry_next;

    ack_cursor acks[GW_SESSION_ACKS_MAX];
    size_t n_acks;
    bool acks_dirty;
    int64_t acks_due_ms; /* when its cursors are stored */
    sess *dirty_next;
};

struct sb_gw {
    sb_gw_config cfg;
    uint8_t secret[GW_SECRET_BYTES_MAX];
    char token_iss[SB_TOKEN_ISS_BYTES_MAX + 1]; /* "": not checked */
    char token_aud[SB_TOKEN_ISS_BYTES_MAX + 1];
    sb_gw_io io;
    int64_t now_ms;
    int64_t last_sweep_ms;
    bool draining;
    sb_map sessions; /* conn id -> sess */
    sb_map users;    /* hash(user id) -> user chain */
    sb_map convs;    /* conv id -> conv */
    sess *retry_head;
    sess *flushq; /* sessions with messages queued for a PUSH */
    /* Unstored ACK cursors and unsent receipts, oldest first: each goes
     * out its interval after its first change, not all at once on a
     * clock (a thousand frames or writes in one go were the latency
     * tail's stalls). */
    sess *dirty_sessions, *dirty_sessions_tail;
    conv *dirty_convs, *dirty_convs_tail;
    size_t inflight;
    sb_buf scratch;
    sb_buf event_scratch; /* an event's item, rendered for one session */
    sb_buf push_out;      /* PUSH frames being assembled */
    sb_gw_stats stats;
    bool routing_ready; /* queues and loads rebuilt from the store */
};

/* sb_gateway.c */
/* A store request of kind for session s (NULL: the server's own) and its
 * request id, completed by done with ctx the gateway, at the gateway's
 * time. NULL when out of memory. */
sb_req *sb__gw_req_new(sb_gw *gw, sb_req_kind kind, const sess *s, uint32_t rid,
                       sb_req_done_cb done);
/* What every completion starts with: the clock and the count of requests
 * in flight follow, and the session that made r comes back (NULL when it
 * is gone, or closing unless closing_too). */
sess *sb__gw_req_back(sb_gw *gw, const sb_req *r, bool closing_too);
/* The completion of a MSG_APPEND: SEND_ACK or ERROR to the sender, if
 * any, then delivery. */
void sb__gw_append_done(sb_req *r);
void sb__gw_submit(sb_gw *gw, sb_req *r);
void sb__gw_copy_str(char *dst, size_t cap, const char *src);
sess *sb__gw_sess_get(sb_gw *gw, uint64_t id);
user *sb__gw_user_get(sb_gw *gw, const char *id);
member *sb__gw_conv_member(conv *c, const char *user_id);
bool sb__gw_may_access(const sess *s, conv *c);
void sb__gw_send_frame(sb_gw *gw, sess *s, const Sbp__Frame *f);
void sb__gw_send_error(sb_gw *gw, sess *s, uint32_t rid, int rc,
                       const ProtobufCBinaryData *client_msg_id);
void sb__gw_send_ok(sb_gw *gw, sess *s, uint32_t rid);
/* Sends f to every ready session of every member of c, but skip. */
void sb__gw_send_members(sb_gw *gw, conv *c, const Sbp__Frame *f,
                         const sess *skip);
/* Delivers a stored message: PUSH to every device of every member but
 * origin (NULL: server-made messages go to every device). Takes m. */
void sb__gw_deliver(sb_gw *gw, Sbp__Message *m, const sess *origin);
conv *sb__gw_conv_cache(sb_gw *gw, const Sbp__Conversation *pc);
/* Updates a cached conversation from its stored form (members too). */
conv *sb__gw_conv_refresh(sb_gw *gw, const Sbp__Conversation *pc);
conv *sb__gw_conv_need(sb_gw *gw, sess *s, uint64_t conv_id, Sbp__Frame **fp);
/* Renders MSG_EVENT bodies for locale, in place. */
void sb__gw_render(sb_gw *gw, Sbp__Message *const *msgs, size_t n,
                   const char *locale);

/* sb_service.c */
/* Handles a customer-service frame; returns false if f is not one. Takes
 * *fp (sets it NULL when it parks or frees it). */
bool sb__svc_frame(sb_gw *gw, sess *s, Sbp__Frame **fp);
/* OPEN of a service conversation by a customer. */
void sb__svc_open(sb_gw *gw, sess *s, const Sbp__Frame *f);
/* A message was stored in c (not a duplicate); m is still valid. */
void sb__svc_after_message(sb_gw *gw, conv *c, const Sbp__Message *m);
/* An agent's first session became ready / its last one went away. */
void sb__svc_presence(sb_gw *gw, const char *user_id, bool online);
/* Rebuilds queues and loads from the store (at start). */
void sb__svc_start(sb_gw *gw);
/* Puts desk nd in force (sb_gw_desk_swap); *old_out gets the one it
 * replaces. */
int sb__svc_desk_swap(sb_gw *gw, struct sb_desk *nd, struct sb_desk **old_out);

#endif
