/* The gateway: its delivery core (sessions, authentication, validation,
 * per-conversation fan-out, push retry and receipts) and the modules above
 * it (customer service, message operations). It does no I/O and reads no
 * clock: the shell (sb_server) feeds it connection events, frame
 * bytes, store completions and ticks with the current time, and it answers
 * through the sb_gw_io callbacks (send bytes, close a connection, submit a
 * store request). Tests and the simulator drive the same core.
 *
 * The message path of a SEND: authenticate (HELLO) -> validate ->
 * sensitive-word filter (block: ERR_BLOCKED; mask: the masked body is what
 * is stored; review: stored flagged) -> store
 * (seq + idempotency record, one transaction, group commit) -> SEND_ACK ->
 * PUSH to every other online device of every member -> retry each PUSH with
 * backoff until that device ACKs, or close the session after
 * retry_attempts_max so that the device catches up by SYNC.
 *
 * Messages for a device are queued, not sent at once: sb_gw_flush(), which
 * the shell calls once per loop turn before it writes to sockets, sends
 * each device's queue as PUSH frames of up to push_batch_max messages (a
 * group commit delivers many messages in one turn). Any other frame to a
 * device sends its queue first, so frames keep the order they had. */
#ifndef SB_GATEWAY_H
#define SB_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_codec.h"
#include "sb_filter.h"
#include "sb_hist.h"
#include "sb_req.h"

typedef struct sb_gw sb_gw;

/* Something about a session worth a log line, as the core tells the shell
 * (sb_gw_io.event): "session_ready" (HELLO accepted), "session_closed"
 * (the core closes it: code is the WebSocket close code) or
 * "request_refused" (an ERROR: code is the wire ErrorCode). Ids that do
 * not apply are 0 or "". No secret and no message body is in one. Every
 * pointer is valid during the call. */
typedef struct sb_gw_event {
    const char *event;
    uint64_t session; /* the connection id */
    const char *user, *device;
    uint64_t conv;
    uint32_t rid;
    int code;
    const char *text; /* the reason, or the role of a ready session */
} sb_gw_event;

/* Where a cluster's events go (sb_gw_io.subscribe and publish). */
typedef enum sb_gw_topic {
    SB_GW_TOPIC_USER, /* the nodes with a session of user id */
    SB_GW_TOPIC_NODE, /* node id */
    SB_GW_TOPIC_DESK, /* the node that owns the desks (id: "") */
    SB_GW_TOPIC_ALL,  /* every node (id: "") */
} sb_gw_topic;

typedef struct sb_gw_io {
    void *ud;
    /* Sends one encoded frame on a connection; p is valid during the call.
     * The shell closes the connection itself if its buffer overflows. */
    void (*send)(void *ud, uint64_t conn_id, const uint8_t *p, size_t n);
    /* Closes a connection with a WebSocket close code. The shell calls
     * sb_gw_conn_closed() later, once the connection is gone, never from
     * within this call. */
    void (*close)(void *ud, uint64_t conn_id, uint16_t code,
                  const char *reason);
    /* Submits a store request (sb_storeq_submit in the server). The
     * request carries its own completion (req->done, the gateway's), which
     * the store calls on the loop thread, never from within this call. */
    void (*store)(void *ud, sb_req *req);
    /* The current time in ms, as the entry points are given it: what a
     * store completion runs at. */
    int64_t (*now)(void *ud);
    /* Carries out an admin's command (op, e.g. "reload-filter", and its
     * input body, "" for none; both valid during the call). The shell
     * answers later with sb_gw_admin_done() or sb_gw_admin_text(). Optional:
     * NULL refuses every op. Returns 0, or a negative code such as
     * SB_E_INVALID for an unknown op (then no answer follows). */
    int (*admin)(void *ud, uint64_t conn_id, uint32_t rid, const char *op,
                 const char *body);
    /* Tells of a session event (sb_gw_event), for the log. Optional. */
    void (*event)(void *ud, const sb_gw_event *e);
    /* A cluster of gateways (both optional; NULL: one gateway alone). The
     * core asks to hear what is published on a topic (on true) or no more
     * (false), and publishes an encoded Sbp__ClusterEvent (p, n; valid
     * during the call) on one. What the other nodes publish comes back
     * through sb_gw_cluster_in(). */
    void (*subscribe)(void *ud, sb_gw_topic t, const char *id, bool on);
    void (*publish)(void *ud, sb_gw_topic t, const char *id, const uint8_t *p,
                    size_t n);
} sb_gw_io;

typedef struct sb_gw_config {
    const uint8_t *secret; /* HS256 key; copied */
    size_t secret_len;
    int64_t token_skew_s;
    /* When set (copied; NULL or "": not checked), a token must name this
     * issuer (iss) and this audience (aud) to be accepted. */
    const char *token_iss;
    const char *token_aud;
    uint32_t frame_bytes_max;
    uint32_t body_bytes_max;
    uint32_t pending_sends_max; /* SENDs awaiting the store, per session */
    /* SEND rate per session: a token bucket refilled at sends_per_s and
     * holding at most send_burst (>= 1); an empty bucket answers
     * ERR_RATE_LIMITED. 0 sends_per_s: no limit. */
    uint32_t sends_per_s;
    uint32_t send_burst;
    uint32_t sync_page_max;  /* messages per SYNC_RESP */
    uint32_t sync_bytes_max; /* body bytes per SYNC_RESP */
    /* Replies of many items (SYNC, HISTORY, SEARCH, CONV_LIST) are cut to
     * frames of at most frame_bytes_max bytes, or page_bytes_max when it
     * is set and smaller (the shell's bound on a connection's unsent
     * bytes asks for less); the rest comes with the next page. */
    uint32_t page_bytes_max;
    uint32_t history_page_max;
    uint32_t heartbeat_ms;       /* announced in WELCOME */
    uint32_t hello_timeout_ms;   /* a connection must HELLO within this */
    uint32_t retry_ms_initial;   /* first PUSH retry after this */
    uint32_t retry_ms_max;       /* backoff cap */
    uint32_t retry_attempts_max; /* then close: the device will SYNC */
    uint32_t unacked_max;        /* unacked PUSHes per session */
    /* Messages queued for a device in one turn go out in PUSH frames of
     * at most push_batch_max messages (>= 1; 1: one PUSH per message) and
     * push_batch_bytes_max bytes (a message larger goes alone). */
    uint32_t push_batch_max;
    uint32_t push_batch_bytes_max;
    uint32_t receipts_ms; /* READ_NOTIFY coalescing interval */
    /* A device's ACK cursors are stored at most this often (and when its
     * session ends): a cursor lost in a crash only means pushes again,
     * which the SDK drops by seq. */
    uint32_t cursors_ms;
    uint32_t sessions_max;
    /* Uploads: the size WELCOME announces (0: the server takes none), and
     * how long a link of MEDIA_URL works, in seconds. */
    uint64_t media_bytes_max;
    uint32_t media_link_s;
    /* This gateway's name in a cluster (copied; at most SB_ID_BYTES_MAX
     * bytes): its events carry it, and it ignores its own. */
    const char *node;
    /* Customer service: the desks, owned by the caller and outliving the
     * gateway (NULL: none; service OPENs are then refused). The gateway
     * keeps its routing state (agent status, load, queues) in it. A new
     * configuration replaces it with sb_gw_desk_swap(). */
    struct sb_desk *desk;
    /* The sensitive-word filter in force, asked for at every SEND (NULL
     * function or result: no filtering). The filter must stay valid until
     * the call that asked returns; the gateway keeps no reference, so the
     * owner may swap filters between calls (a reload). */
    const sb_filter *(*filter_get)(void *ud);
    void *filter_ud;
} sb_gw_config;

/* Fills c with the defaults (docs/protocol.md lists them). */
void sb_gw_config_default(sb_gw_config *c);

int sb_gw_new(const sb_gw_config *c, const sb_gw_io *io, sb_gw **out);
/* Frees every session and cached object. Store requests still in flight
 * must have completed first. Accepts NULL. */
void sb_gw_free(sb_gw *gw);

/* A WebSocket connection was established with the given encoding.
 * Returns 0, or SB_E_UNAVAILABLE when the gateway is draining or full (the
 * shell then closes the connection with SB_WS_CLOSE_TRY_AGAIN). */
int sb_gw_conn_open(sb_gw *gw, uint64_t conn_id, sb_encoding enc,
                    int64_t now_ms);
/* A session for one request of the REST API (sb_api), whose caller has
 * checked the token itself: ready at once as user_id with role (admin,
 * agent or bot), JSON encoding, a device id of its own ("api:CONN"). It is
 * linked to no user: it gets no PUSH, receipt or presence, replaces no
 * device's session and makes its user no more online; frames fed to it
 * (sb_gw_conn_frame) are checked and carried out as any session's, and
 * their answers go out through io->send under conn_id. The caller ends it
 * with sb_gw_conn_closed(). Returns 0, SB_E_INVALID for a bad user id, or
 * sb_gw_conn_open's codes. */
int sb_gw_api_open(sb_gw *gw, uint64_t conn_id, const char *user_id,
                   Sbp__Role role, const char *locale, int64_t now_ms);
/* One complete WebSocket message from the connection. */
void sb_gw_conn_frame(sb_gw *gw, uint64_t conn_id, const uint8_t *p, size_t n,
                      int64_t now_ms);
/* The connection is gone (closed by either side). */
void sb_gw_conn_closed(sb_gw *gw, uint64_t conn_id);

/* Periodic work: PUSH retries, HELLO deadlines, receipts and cursor
 * flushes. Call every 50-100 ms. */
void sb_gw_tick(sb_gw *gw, int64_t now_ms);

/* Sends the messages queued for each device in PUSH frames (io->send).
 * Call once per loop turn, after the turn's events and before writing to
 * sockets; until then queued messages are not sent. */
void sb_gw_flush(sb_gw *gw);

/* Rebuilds routing (queues, agent loads) from the store; call once after
 * sb_gw_new when cfg.desk is set, before connections arrive. In a cluster
 * it joins the cluster's topics instead; routing starts on the node that
 * owns the desks (sb_gw_cluster_own). */
void sb_gw_start(sb_gw *gw, int64_t now_ms);

/* The answer to an admin command: rc 0 (OK) or a negative code, with
 * text (the reason) for the ERROR. */
void sb_gw_admin_done(sb_gw *gw, uint64_t conn_id, uint32_t rid, int rc,
                      const char *text);
/* The answer to an admin command that has something to say: ADMIN_RESP
 * with text. */
void sb_gw_admin_text(sb_gw *gw, uint64_t conn_id, uint32_t rid,
                      const char *text);

/* Puts desk (a configuration just parsed, with no routing state) in force
 * in place of the gateway's, between two events: agent statuses, loads
 * and idle times carry over by agent id and the queues by group name; a
 * conversation whose group or agent is gone is routed again (its group,
 * or the desk's default group); queued conversations go at once to
 * agents that have room now. An agent whose capacity went down keeps its
 * conversations and gets no new one until below it. On success *old gets
 * the configuration replaced (NULL if none; the caller frees it) and the
 * gateway keeps desk; returns 0, or -ENOMEM with nothing changed. */
int sb_gw_desk_swap(sb_gw *gw, struct sb_desk *desk, struct sb_desk **old);

/* ---- a cluster of gateways ---------------------------------------------- */

/* An event another node published (p, n: an encoded Sbp__ClusterEvent):
 * a stored message goes to every local device of every member (once,
 * whichever member's copy comes first; a gap in a conversation's seqs is
 * read from the store a moment later if the missing messages do not
 * come), a frame to a user's devices or to one session, a desk request to
 * the desk owner, presence to every node. Events of this node, and
 * undecodable ones, are dropped. */
void sb_gw_cluster_in(sb_gw *gw, const uint8_t *p, size_t n, int64_t now_ms);
/* The link to the other nodes was down and is back: what they published
 * meanwhile is read from the store for every conversation this gateway
 * has devices in. */
void sb_gw_cluster_resync(sb_gw *gw, int64_t now_ms);
/* This node now owns the desks (own true: it holds the cluster's lock
 * for them) or no longer does. The owner keeps the routing state (agent
 * status and load, queues), rebuilt from the store when it takes the
 * desks over, and handles every desk request; the other nodes send their
 * sessions' requests to it. */
void sb_gw_cluster_own(sb_gw *gw, bool own, int64_t now_ms);
/* Whether this node owns the desks. */
bool sb_gw_cluster_owner(const sb_gw *gw);

/* Starts draining: new SENDs and connections are refused with
 * ERR_UNAVAILABLE; what the store already has completes normally. */
void sb_gw_drain(sb_gw *gw);
/* Store requests submitted and not yet completed. */
size_t sb_gw_store_inflight(const sb_gw *gw);
/* Closes every session with code (SB_WS_CLOSE_GOING_AWAY when
 * draining). */
void sb_gw_close_all(sb_gw *gw, uint16_t code, const char *reason);

/* Room in sb_gw_stats: frame kinds (the Frame body's field numbers),
 * wire error codes, roles, and (category, policy) pairs of the filter. */
#define SB_GW_FRAME_KINDS 128
#define SB_GW_ERROR_CODES 32
#define SB_GW_ROLES 5
#define SB_GW_FILTER_COUNTS_MAX 128

/* Messages a filter category matched, under the policy it had then
 * (pairs past SB_GW_FILTER_COUNTS_MAX: sb_gw_stats.filter_other). */
typedef struct sb_gw_filter_count {
    char category[SB_FILTER_NAME_BYTES_MAX + 1];
    sb_filter_policy policy;
    uint64_t messages;
} sb_gw_filter_count;

/* What the gateway counts, for metrics: plain numbers of the loop thread,
 * which the shell copies out (sb_gw_get_stats) between two events. */
typedef struct sb_gw_stats {
    uint64_t sessions; /* every session, before HELLO too */
    /* Sessions past HELLO, by encoding (sb_encoding) and role (Sbp__Role). */
    uint64_t ready[2][SB_GW_ROLES];
    uint64_t sends, send_acks, duplicates, errors;
    uint64_t pushes;      /* messages pushed to a device (first time) */
    uint64_t retries;     /* messages pushed again */
    uint64_t push_frames; /* PUSH frames they went in */
    uint64_t blocked, masked, flagged; /* SENDs the filter acted on */
    /* Frames decoded from clients and sent to them, by body case. */
    uint64_t frames_in[SB_GW_FRAME_KINDS], frames_out[SB_GW_FRAME_KINDS];
    uint64_t errors_by_code[SB_GW_ERROR_CODES]; /* ERRORs sent, by code */
    uint64_t rate_limited;   /* requests refused ERR_RATE_LIMITED */
    uint64_t closed_unacked; /* sessions closed for unacknowledged pushes */
    sb_hist send_ack_ms;     /* SEND received to SEND_ACK sent */
    /* Customer service: waiting for an agent (0 when one had room at
     * once), first agent answer and close, from the conversation's start. */
    sb_hist queue_wait_ms, first_response_ms, resolution_ms;
    sb_gw_filter_count filter[SB_GW_FILTER_COUNTS_MAX];
    size_t n_filter;
    uint64_t filter_other;
} sb_gw_stats;
void sb_gw_get_stats(const sb_gw *gw, sb_gw_stats *out);

/* The desks in force (NULL: none), for the shell's metrics; valid until
 * the next sb_gw_desk_swap(). */
const struct sb_desk *sb_gw_desk(const sb_gw *gw);

#endif
