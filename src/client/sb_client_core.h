/* The client's protocol core: connection state machine, outbox, inbox and
 * requests of protocol v1, with no I/O and no clock. The transport feeds it
 * events (connected, one frame, bytes seen, disconnected, tick with the
 * time) and pulls the frames to write with sb_client_core_next_frame(); the
 * application gets events through sb_client_cbs. Randomness and the time
 * come in through the interface, so tests drive it frame by frame.
 *
 * Threads: none. Every function must be called from one thread (the loop
 * thread of the transport). Callbacks run inside the core's functions; they
 * may call the API functions of this header (sends, read, sync,
 * set_cursor, typing, the requests, stop, mute, the accessors) but must
 * not free the core or feed it events. */
#ifndef SB_CLIENT_CORE_H
#define SB_CLIENT_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>

#include "sb_limits.h"
#include "sb_codec.h"

typedef struct sb_client_core sb_client_core;

/* on_state(STOPPED) when the server closed with 1000. */
#define SB_CLIENT_E_REPLACED (-EEXIST)

/* The most server URLs a client takes (sb_client_config.urls). */
#define SB_CLIENT_URLS_MAX 16
/* A connection READY at least this long counts as a success: when it ends,
 * the next attempt starts a new round of the URL list (see below). */
#define SB_CLIENT_STABLE_MS 1000

/* Connection states. IDLE -> CONNECTING -> HELLO_SENT -> READY; any failure
 * goes to BACKOFF (then CONNECTING again, at once when another URL of the
 * list is due: see "Several servers"); STOPPED is final: after
 * sb_client_core_stop(), a refused token (ERR_BAD_TOKEN, ERR_TOKEN_EXPIRED
 * or close 1008), which is never retried, or a close 1000 from the server
 * (this device connected again elsewhere: SB_CLIENT_E_REPLACED). */
typedef enum sb_client_state {
    SB_CLIENT_IDLE = 0,
    SB_CLIENT_CONNECTING, /* the transport connects and upgrades */
    SB_CLIENT_HELLO_SENT, /* WebSocket open, waiting for WELCOME */
    SB_CLIENT_READY,      /* WELCOME received: SENDs, SYNC, requests flow */
    SB_CLIENT_BACKOFF,    /* disconnected, waiting to reconnect */
    SB_CLIENT_STOPPED,
} sb_client_state;

const char *sb_client_state_name(sb_client_state s);

/* The life of one send: PENDING (in the outbox) -> SENT (SEND_ACK: stored
 * durably, seq known) -> DELIVERED (another participant's device ACKed
 * it) -> READ (another participant read it); or FAILED (a non-retryable
 * ERROR, or the attempts ran out). Each status is reported once, in this
 * order; DELIVERED is reported before READ even when one READ_NOTIFY says
 * both. */
typedef enum sb_client_send_status {
    SB_SEND_PENDING = 0,
    SB_SEND_SENT,
    SB_SEND_DELIVERED,
    SB_SEND_READ,
    SB_SEND_FAILED,
} sb_client_send_status;

const char *sb_client_send_status_name(sb_client_send_status s);

/* A status change. Pointers are valid during the callback only. */
typedef struct sb_client_send_info {
    const uint8_t *client_msg_id; /* SB_CLIENT_MSG_ID_BYTES */
    uint64_t conv_id;
    uint64_t msg_id;   /* 0 until SENT */
    uint64_t seq;      /* 0 until SENT */
    int64_t server_ts; /* 0 until SENT */
    sb_client_send_status status;
    bool duplicate;   /* SENT: the server had it already (a retry) */
    int err;          /* FAILED: SB_E(code) or -ETIMEDOUT; else 0 */
    const char *text; /* FAILED: the server's text, or "" */
    /* SENT: the body as stored when the server changed it (the content
     * filter masked words in it), else NULL; the message this device
     * surfaces for its own send carries the same. */
    const char *stored_body;
} sb_client_send_info;

/* What WELCOME said; zeros before the first WELCOME. */
typedef struct sb_client_session {
    char user_id[SB_ID_BYTES_MAX + 1];
    Sbp__Role role;
    uint64_t session_id;
    int64_t server_ts;
    uint32_t heartbeat_ms, frame_bytes_max, body_bytes_max;
    uint32_t pending_sends_max, sync_page_max;
} sb_client_session;

typedef struct sb_client_stats {
    uint64_t surfaced;        /* messages handed to on_message */
    uint64_t duplicates;      /* messages dropped: already surfaced or held */
    uint64_t held;            /* messages held behind a gap */
    uint64_t held_dropped;    /* not held (buffer full): SYNC fetches them */
    uint64_t dropped;         /* conversation table full */
    uint64_t syncs;           /* SYNC frames written */
    uint64_t connects;        /* connection attempts */
    uint64_t readies;         /* WELCOMEs */
    uint64_t disconnects;     /* connections lost (any reason) */
    uint64_t url_switches;    /* attempts on the next URL without a backoff */
    uint64_t sends;           /* sends accepted by sb_client_core_send */
    uint64_t uploads;         /* attachments uploaded (their SENDs follow) */
    uint64_t upload_retries;  /* uploads tried again after a failure */
    uint64_t send_frames;     /* SEND frames written, resends included */
    uint64_t resends;         /* SEND frames written again (same id) */
    uint64_t send_acks;       /* sends that reached SENT */
    uint64_t send_failed;     /* sends that reached FAILED */
    uint64_t acks;            /* ACK frames written */
    uint64_t protocol_errors; /* undecodable or unexpected frames */
    size_t outbox_len;        /* sends not yet SENT or FAILED */
    size_t inflight;          /* of which written and awaiting SEND_ACK */
    size_t held_now;          /* messages held now */
    size_t convs;             /* conversations tracked */
} sb_client_stats;

/* Application callbacks; each may be NULL. Pointers passed in are valid
 * during the call only (copy what you keep). */
typedef struct sb_client_cbs {
    /* The connection state changed. err says why it left the previous
     * state: 0, a negative errno from the transport (-ECONNREFUSED,
     * -ETIMEDOUT for a dead connection...), or SB_E(code) for a refusal by
     * the server (SB_E_BAD_TOKEN, SB_E_TOKEN_EXPIRED on STOPPED). */
    void (*on_state)(void *ud, sb_client_state st, int err);
    /* One message, surfaced exactly once and in seq order per
     * conversation: from PUSH, SYNC, or this device's own send (at its
     * SEND_ACK; then m->sender_device is this device). */
    void (*on_message)(void *ud, const Sbp__Message *m);
    /* A recall event (event key "msg.recalled", args [user, seq]) was just
     * surfaced through on_message: the message seq of conv_id was taken
     * back, hide it. Called right after on_message for the event, in seq
     * order like it. */
    void (*on_recalled)(void *ud, uint64_t conv_id, uint64_t seq);
    /* A send changed status. */
    void (*on_send_status)(void *ud, const sb_client_send_info *s);
    /* A READ_NOTIFY: another participant's devices got or read up to. */
    void (*on_receipt)(void *ud, const Sbp__ReadNotify *r);
    /* A SYNC loop ended (more=false): the inbox has caught up. */
    void (*on_synced)(void *ud);
    /* The answer to the request rid, exactly once. req is the body case of
     * the request's frame (SBP__FRAME__BODY_OPEN, _HISTORY...). err 0:
     * resp is the answer (OPEN_RESP, HISTORY_RESP, OK, AGENT_STATE,
     * CONV_LIST_RESP, SEARCH_RESP, CANNED_LIST_RESP, ADMIN_RESP; see
     * sb_client_core_request()). err SB_E(code): resp is the server's
     * ERROR, its text the reason. Otherwise resp is NULL: -ETIMEDOUT
     * (request_timeout_ms), -ECONNRESET (the connection dropped or the
     * client stopped first) or SB_E_INVALID (an OPEN_RESP without its
     * conversation). */
    void (*on_response)(void *ud, uint32_t rid, Sbp__Frame__BodyCase req,
                        int err, const Sbp__Frame *resp);
    /* CONV_UPDATE: a service conversation's state, group, agent or queue
     * position changed (queue_position is 1-based while STATE_QUEUED). */
    void (*on_conv_update)(void *ud, const Sbp__Conversation *conv);
    /* TYPING of another member (never stored). */
    void (*on_typing)(void *ud, const Sbp__Typing *t);
    /* An agent's status, capacity and load, sent by the server unasked
     * (an AGENT_STATE with rid 0). */
    void (*on_agent_state)(void *ud, const Sbp__AgentState *a);
    /* AGENT_PRESENCE: a teammate's status changed (agents of a desk). */
    void (*on_presence)(void *ud, const Sbp__AgentPresence *p);
    /* An ERROR frame tied to no send or request. */
    void (*on_error)(void *ud, int err, const char *text);
    /* NOTE_MENTION: a teammate mentioned this user in a note (the note
     * itself is also surfaced through on_message, in its notes
     * conversation, once this user is a member of it). */
    void (*on_note_mention)(void *ud, const Sbp__NoteMention *m);
} sb_client_cbs;

/* What the core asks of the transport. All three are required. */
typedef struct sb_client_core_io {
    void *ud;
    /* Start connecting (TCP, then the WebSocket upgrade). The transport
     * answers later with sb_client_core_on_open() or _on_close(), never
     * from within this call. */
    void (*connect)(void *ud);
    /* Drop the current connection: write the frames still queued in the
     * core (sb_client_core_next_frame) and a WebSocket close with code,
     * best effort, then close the socket. The core already considers it
     * gone: the transport must not report it with _on_close(). */
    void (*close)(void *ud, uint16_t code);
    /* Fill p with n random bytes (client_msg_id, jitter, WebSocket key). */
    void (*rand_bytes)(void *ud, uint8_t *p, size_t n);
    /* Start uploading the file at path as name for conv_id (POST /media,
     * docs/protocol.md) for the send client_msg_id (16 bytes); strings
     * valid during the call. Returns 0, and then the transport answers
     * later, never from within this call, with
     * sb_client_core_upload_done(); or a negative code (-ENOENT, -EACCES:
     * the file; others: try again later). Optional: NULL makes
     * sb_client_core_send_file() answer -ENOTSUP. */
    int (*upload)(void *ud, const uint8_t *client_msg_id, uint64_t conv_id,
                  const char *path, const char *name);
} sb_client_core_io;

/* Several servers. A client may be given the URLs of several gateway
 * nodes (cfg.urls, n_urls); it keeps one connection, to one of them, and
 * goes round the list when connections fail. At start each client puts
 * the list in a random order of its own (unless urls_in_order), so that
 * the clients of a node that goes away spread over the others rather than
 * all moving to the next one listed. After a connection ends or an attempt
 * fails (refused, timed out, closed by the server, lost), the client tries
 * the next URL at once; only when every URL of the list has failed in a
 * row (a round) does it wait, for a backoff that grows per round
 * (backoff_ms_base, backoff_ms_max). A round starts afresh after a
 * connection that was READY for SB_CLIENT_STABLE_MS, and after a close
 * 1001 (the node drains: SIGTERM); a connection that ends sooner counts as
 * one failure of the current round, so nodes that welcome and drop at once
 * cannot make the client spin. One URL is a round of one: a backoff after
 * every failure. A node that stops answering is given up after
 * connect_timeout_ms (connecting) or three heartbeats (READY). */

/* Configuration of a client (core and transport). Start from
 * sb_client_config_default(); strings are copied by _new(). */
typedef struct sb_client_config {
    const char *url; /* transport: ws://host:port/ws; unused with urls */
    /* n_urls URLs (1..SB_CLIENT_URLS_MAX, each like url) instead of one;
     * n_urls 0: url alone. */
    const char *const *urls;
    size_t n_urls;
    bool urls_in_order;          /* go round urls as listed, from the
                                    first; default: in a random order */
    sb_encoding enc;             /* SB_ENC_PROTO (default) or SB_ENC_JSON */
    const char *token;           /* required: HS256 JWT, < SB_TOKEN_BYTES_MAX */
    const char *device_id;       /* required: 1..64 bytes */
    const char *client_name;     /* HELLO.client; default "switchboard-c" */
    const char *locale;          /* HELLO.locale; default "" */
    bool sync_disabled;          /* never SYNC (one-shot tools): gaps stay */
    uint32_t tick_ms;            /* transport: how often to tick the core */
    uint32_t send_timeout_ms;    /* resend a SEND unanswered this long */
    uint32_t send_attempts_max;  /* timeouts + retryable errors; 0: no cap */
    uint32_t window_max;         /* SENDs in flight; also <= WELCOME's */
    uint32_t outbox_max;         /* sends not yet SENT; more: -ENOBUFS */
    uint32_t held_max;           /* messages held behind gaps */
    uint32_t convs_max;          /* conversations tracked */
    uint32_t track_max;          /* SENT messages watched for receipts */
    uint32_t requests_max;       /* requests awaiting answers */
    uint32_t request_timeout_ms; /* then on_response with -ETIMEDOUT */
    uint32_t connect_timeout_ms; /* from connect() to WELCOME */
    uint32_t backoff_ms_base;    /* reconnect delay: full jitter in */
    uint32_t backoff_ms_max;     /* [0, min(max, base * 2^attempt)] */
    /* After the server closed with 1001 (going away: a restart or a
     * deploy, back in moments), the delay's cap is restart_backoff_ms_max
     * for restart_window_ms, so that refused attempts while it restarts
     * do not push the reconnect seconds past its return (0: no such
     * cap); the attempts made at that cap do not count for the doubling
     * after the window. The window covers a drain (the close handshakes,
     * the store's stop) and a start on a loaded machine. */
    uint32_t restart_backoff_ms_max;
    uint32_t restart_window_ms;
    uint32_t heartbeat_ms;      /* until WELCOME says; dead after 3x */
    uint32_t body_bytes_max;    /* until WELCOME says */
    uint32_t sync_limit;        /* SYNC page; 0: WELCOME's sync_page_max */
    uint32_t gap_wait_ms;       /* a gap waits this long for pushes in
                                   flight (another node's), then SYNC;
                                   0: SYNC at once */
    uint32_t gap_retry_ms;      /* SYNC again if a gap outlives a SYNC */
    uint32_t frame_bytes_max;   /* transport: incoming message bound */
    bool deflate;               /* transport: offer permessage-deflate */
    uint32_t deflate_min_bytes; /* transport: compress from this size */
    uint32_t outq_bytes_max;    /* frames produced and not yet pulled */
    const char *ca_file;        /* transport, wss:// only: PEM CAs the
                                   server's certificate must chain to;
                                   NULL: the system's */
    /* transport: the local IP address (a literal, v4 or v6) the
     * connections are made from; the port stays the system's choice, made
     * at connect time. NULL: the system picks both. Many clients on one
     * machine spread over several addresses so that no address runs
     * short of ports for one server. */
    const char *source_addr;
} sb_client_config;

void sb_client_config_default(sb_client_config *c);

/* Creates a core in state IDLE. cbs (copied) and ud are the application's;
 * io (copied) the transport's. Returns 0, -EINVAL (bad config) or -ENOMEM. */
int sb_client_core_new(const sb_client_config *cfg, const sb_client_cbs *cbs,
                       void *ud, const sb_client_core_io *io,
                       sb_client_core **out);
/* Frees everything, with no callbacks. Accepts NULL. */
void sb_client_core_free(sb_client_core *cc);

/* IDLE -> CONNECTING (calls io->connect). */
void sb_client_core_start(sb_client_core *cc, int64_t now_ms);
/* Any state -> STOPPED. When READY, the ACKs and READs due are queued
 * first (the transport writes them before the close frame); then the
 * connection is closed through io->close. Pending requests fail with
 * -ECONNRESET; the outbox is kept (and freed by _free()). */
void sb_client_core_stop(sb_client_core *cc);
/* No application callback is called after this one returns (a transport
 * whose application has let go of the client calls it before _stop()).
 * Safe inside a callback. */
void sb_client_core_mute(sb_client_core *cc);

/* Transport events. */
void sb_client_core_on_open(sb_client_core *cc, int64_t now_ms);
void sb_client_core_on_rx(sb_client_core *cc, int64_t now_ms);
void sb_client_core_on_frame(sb_client_core *cc, const uint8_t *p, size_t n,
                             int64_t now_ms);
/* The connection is gone: err < 0 (a transport error) or 0, code the
 * WebSocket close code received (0 if none). */
void sb_client_core_on_close(sb_client_core *cc, int err, uint16_t code,
                             int64_t now_ms);
/* Timers: reconnect, timeouts, resends, liveness. Call every 20-200 ms. */
void sb_client_core_tick(sb_client_core *cc, int64_t now_ms);

/* Pulls the next frame to write as one WebSocket message (binary for
 * SB_ENC_PROTO, text for SB_ENC_JSON). Returns 1 and sets *p, *n, or 0
 * when none is left. *p stays valid until the next call into the core.
 * Pending ACKs are produced here, so one ACK per conversation covers
 * everything fed since the last pull. */
int sb_client_core_next_frame(sb_client_core *cc, const uint8_t **p, size_t *n);

/* ---- messages ------------------------------------------------------------ */

/* Queues a message for conv_id (any state but STOPPED: it is written when
 * READY). body (len bytes of UTF-8, copied) may contain NULs no more than
 * the protocol allows (it is a string: none). Writes the client_msg_id into
 * id_out (16 bytes) if not NULL. Returns 0, SB_E_INVALID (conv_id 0),
 * SB_E_TOO_LARGE, SB_E_BAD_UTF8, -ENOBUFS (outbox full), -ESHUTDOWN
 * (STOPPED) or -ENOMEM. */
int sb_client_core_send(sb_client_core *cc, uint64_t conv_id, Sbp__MsgType type,
                        const char *body, size_t len, uint64_t quote_seq,
                        uint8_t *id_out);
/* The same for a bot: a MSG_ROBOT with quick replies under it (at most
 * SB_QUICK_MAX, each 1..SB_QUICK_BYTES_MAX bytes of UTF-8,
 * copied; the button's title and payload). The server takes robot
 * messages from role bot only. */
int sb_client_core_send_robot(sb_client_core *cc, uint64_t conv_id,
                              const char *body, size_t len,
                              const char *const *quick, size_t n_quick,
                              uint8_t *id_out);
/* An attachment: the file at path (copied, as is name, the file name the
 * others see; NULL: path's last part) uploaded first, then sent as a
 * message of type MSG_IMAGE (a JPEG, PNG, GIF or WebP image) or MSG_FILE
 * naming the upload, with caption as its body ("" or NULL: none). The
 * send waits in the outbox while the upload is on its way, across
 * reconnects; an upload that fails for a reason that passes (the network,
 * the server busy or out of room, too many uploads) is tried again with
 * backoff, up to send_attempts_max; one the server refuses (too large,
 * a type it does not take) makes the send FAILED with SB_E_TOO_LARGE or
 * SB_E_INVALID and the server's reason. Nothing is sent half-made: the
 * SEND goes only with an upload's id. Returns what sb_client_core_send()
 * does, SB_E_INVALID for another type or an empty path, -ENOTSUP when the
 * transport cannot upload. */
int sb_client_core_send_file(sb_client_core *cc, uint64_t conv_id,
                             Sbp__MsgType type, const char *path,
                             const char *name, const char *caption,
                             uint8_t *id_out);
/* The transport's answer to io->upload for the send client_msg_id: rc 0
 * with the upload's id (32 hex digits, from the server's answer), or a
 * negative code: retryable (a negative errno, SB_E_UNAVAILABLE,
 * SB_E_STORE, SB_E_RATE_LIMITED) or not (another SB_E(code)), with text
 * the server's reason (NULL: none). */
void sb_client_core_upload_done(sb_client_core *cc,
                                const uint8_t *client_msg_id, int rc,
                                const char *media_id, const char *text,
                                int64_t now_ms);

/* READ: this user has read conv_id through seq. Coalesced; written when
 * READY. Returns 0, SB_E_INVALID or -ENOBUFS (conversation table full). */
int sb_client_core_read(sb_client_core *cc, uint64_t conv_id, uint64_t seq);
/* Asks for a SYNC loop now (one is done after every WELCOME anyway). */
void sb_client_core_sync(sb_client_core *cc);
/* Restores a persisted cursor: conv_id has been surfaced through seq.
 * Only moves forward. Returns 0, SB_E_INVALID or -ENOBUFS. */
int sb_client_core_set_cursor(sb_client_core *cc, uint64_t conv_id,
                              uint64_t seq);
/* TYPING on or off in conv_id, to the other members' devices. No answer
 * and no request slot; a refusal comes as an ERROR through on_error. Not
 * throttled here: call it on changes (or every few seconds while the user
 * types), not on every key. READY only: 0, -ENOTCONN, SB_E_INVALID
 * (conv_id 0), -ENOBUFS (the out queue is full) or -ENOMEM. */
int sb_client_core_typing(sb_client_core *cc, uint64_t conv_id, bool on);

/* ---- requests -------------------------------------------------------------
 *
 * A request is a frame the server answers with a frame of the same rid.
 * Each is READY only: it is written at once, gets a new rid in *rid_out
 * (may be NULL) and is answered exactly once through on_response, unless
 * the call fails, in which case nothing is written and no callback comes.
 * At most requests_max await their answers. The typed helpers below check
 * their arguments, build the frame and call sb_client_core_request(); the
 * protocol's customer-service part is docs/protocol.md, "Customer
 * service". Their common returns: 0, -ENOTCONN (not READY), -ENOBUFS
 * (requests_max requests pending, or the out queue is full), SB_E_INVALID
 * (conv_id 0, an empty or over-long id), SB_E_BAD_UTF8, -ENOMEM. Strings
 * are copied into the frame; NULL is taken as "". */

/* Writes f (its body set; f->rid is set here) as a request. The body and
 * the answers on_response gets for it:
 *   OPEN -> OPEN_RESP          HISTORY -> HISTORY_RESP
 *   TRANSFER, CLOSE, HANDOFF, RECALL, TAG -> OK
 *   AGENT_STATE -> AGENT_STATE CONV_LIST -> CONV_LIST_RESP
 *   SEARCH -> SEARCH_RESP      CANNED_LIST -> CANNED_LIST_RESP
 *   ADMIN -> ADMIN_RESP or OK  CLAIM -> OK
 *   AGENT_LIST -> AGENT_LIST_RESP  NOTES_OPEN -> OPEN_RESP
 *   CONTACT_GET, CONTACT_SET -> CONTACT_RESP
 * and any of them -> ERROR. Another body: -EINVAL. The fields are not
 * checked here. */
int sb_client_core_request(sb_client_core *cc, Sbp__Frame *f,
                           uint32_t *rid_out);
/* The text an answer carries: an ADMIN_RESP's, or an ERROR's reason; ""
 * for any other frame and for NULL. Valid as long as resp. */
const char *sb_client_answer_text(const Sbp__Frame *resp);

/* OPEN: a new conversation with members (user ids) besides this user:
 * fewer than SB_MEMBERS_MAX, each at most SB_ID_BYTES_MAX bytes. */
int sb_client_core_open(sb_client_core *cc, const char *const *members,
                        size_t n_members, const char *title, Sbp__ConvKind kind,
                        uint32_t *rid_out);
/* HISTORY: up to limit messages of conv_id before before_seq (0: the
 * newest). */
int sb_client_core_history(sb_client_core *cc, uint64_t conv_id,
                           uint64_t before_seq, uint32_t limit,
                           uint32_t *rid_out);
/* OPEN of the customer's service conversation at desk ("" or NULL: the
 * server's first desk): kind CONV_SERVICE, no members. The server opens a
 * new one (the bot greets) or resumes the one not closed. */
int sb_client_core_open_service(sb_client_core *cc, const char *desk,
                                uint32_t *rid_out);
/* TRANSFER of conv_id to one agent (to_agent) or back through routing for
 * a skill group (to_group): exactly one of them non-empty, else
 * SB_E_INVALID. Answered by OK, like CLOSE, HANDOFF, RECALL and TAG
 * below: what changed arrives separately, as event messages through
 * on_message and as on_conv_update. */
int sb_client_core_transfer(sb_client_core *cc, uint64_t conv_id,
                            const char *to_agent, const char *to_group,
                            uint32_t *rid_out);
/* The same with a note for the receiving agent (NULL or "": none; at most
 * SB_NOTE_BYTES_MAX bytes, SB_E_TOO_LARGE beyond), which the customer
 * never sees. */
int sb_client_core_transfer_note(sb_client_core *cc, uint64_t conv_id,
                                 const char *to_agent, const char *to_group,
                                 const char *note, uint32_t *rid_out);
/* CLAIM: this agent takes queued conversation conv_id of one of its
 * groups; over_capacity takes it even when the agent is at its capacity.
 * Answered by OK; then as for a transfer. */
int sb_client_core_claim(sb_client_core *cc, uint64_t conv_id,
                         bool over_capacity, uint32_t *rid_out);
/* AGENT_LIST: the team of desk ("" or NULL: this agent's), each agent
 * with its groups, status, load and capacity, and the desk's groups. */
int sb_client_core_agent_list(sb_client_core *cc, const char *desk,
                              uint32_t *rid_out);
/* CLOSE of conv_id. */
int sb_client_core_close_conv(sb_client_core *cc, uint64_t conv_id,
                              uint32_t *rid_out);
/* HANDOFF: ask for a person in conv_id, in group ("" or NULL: the desk's
 * default). */
int sb_client_core_handoff(sb_client_core *cc, uint64_t conv_id,
                           const char *group, uint32_t *rid_out);
/* RECALL of this user's message seq (not 0) of conv_id. Every device then
 * surfaces a "msg.recalled" event (on_recalled). */
int sb_client_core_recall(sb_client_core *cc, uint64_t conv_id, uint64_t seq,
                          uint32_t *rid_out);
/* TAG: adds and removes tags on conv_id (seq 0) or on its message seq.
 * At least one tag in all; each 1..SB_TAG_BYTES_MAX bytes
 * (SB_E_INVALID otherwise); at most SB_TAGS_MAX in add and in
 * remove (SB_E_TOO_LARGE). */
int sb_client_core_tag(sb_client_core *cc, uint64_t conv_id, uint64_t seq,
                       const char *const *add, size_t n_add,
                       const char *const *remove, size_t n_remove,
                       uint32_t *rid_out);
/* AGENT_STATE: an agent sets SBP__AGENT_STATUS__AGENT_ONLINE or _AWAY
 * (anything else: SB_E_INVALID). The answer is the status in force, the
 * agent's capacity and load. */
int sb_client_core_agent_state(sb_client_core *cc, Sbp__AgentStatus status,
                               uint32_t *rid_out);
/* CONV_LIST: a page of this user's conversations, newest activity first.
 * cursor: "" (or NULL) for the first page, else the previous page's
 * next_cursor (at most SB_LIST_CURSOR_BYTES_MAX bytes); limit 0: the
 * server's default; state 0: any; tag ""/NULL: any; mine: only those
 * assigned to this agent (no queue). */
int sb_client_core_conv_list(sb_client_core *cc, const char *cursor,
                             uint32_t limit, Sbp__ConvState state,
                             const char *tag, bool mine, uint32_t *rid_out);
/* SEARCH for messages matching every word of query (1..
 * SB_QUERY_BYTES_MAX bytes; SB_E_TOO_LARGE beyond) in conv_id (0:
 * all of this user's). */
int sb_client_core_search(sb_client_core *cc, uint64_t conv_id,
                          const char *query, uint32_t limit, uint32_t *rid_out);
/* CANNED_LIST: the canned replies of desk ("" or NULL: the first desk). */
int sb_client_core_canned_list(sb_client_core *cc, const char *desk,
                               uint32_t *rid_out);
/* ADMIN: an administrator's command (role admin) with its input
 * (docs/protocol.md lists the ops: "reload-filter", "desk-show",
 * "desk-set" with the desk document as body, ...; body NULL or "" for
 * none). The answer is an ADMIN_RESP with the server's text, or an OK.
 * SB_E_TOO_LARGE when the frame would exceed the server's
 * frame_bytes_max. */
int sb_client_core_admin_cmd(sb_client_core *cc, const char *op,
                             const char *body, uint32_t *rid_out);

/* CSAT: the customer rates its service conversation conv_id (once a
 * rating was asked for, at its close): rating 1..SB_CSAT_RATING_MAX,
 * comment NULL or "" for none, else at most SB_CSAT_COMMENT_BYTES_MAX
 * bytes (SB_E_INVALID, SB_E_TOO_LARGE, SB_E_BAD_UTF8 otherwise). The
 * answer is an OK, or an ERROR (ERR_ALREADY: it is rated already). */
int sb_client_core_csat(sb_client_core *cc, uint64_t conv_id, uint32_t rating,
                        const char *comment, uint32_t *rid_out);
/* REPORT (role admin): the figures of the service conversations opened
 * from day `from` to day `to` (YYYY-MM-DD) in time zone tz (NULL or "":
 * UTC), a row per combination of the n_by keys ("desk", "group",
 * "agent", "day"), of only desk, group and agent when they are not NULL
 * or "". The answer is a REPORT_RESP. */
int sb_client_core_report(sb_client_core *cc, const char *from, const char *to,
                          const char *tz, const char *const *by, size_t n_by,
                          const char *desk, const char *group,
                          const char *agent, uint32_t *rid_out);

/* NOTES_OPEN: the private notes of service conversation conv_id (agents
 * and admins), made when create is set and there are none. The answer is
 * an OPEN_RESP with the notes conversation (kind CONV_NOTES), which this
 * user now follows: notes are sent to it with sb_client_core_send and
 * surface through on_message like any message. */
int sb_client_core_notes_open(sb_client_core *cc, uint64_t conv_id, bool create,
                              uint32_t *rid_out);
/* CONTACT_GET: the contact of the customer of service conversation
 * conv_id, or (admins) of user_id: exactly one of them (SB_E_INVALID
 * otherwise). The answer is a CONTACT_RESP. */
int sb_client_core_contact_get(sb_client_core *cc, uint64_t conv_id,
                               const char *user_id, uint32_t *rid_out);
/* A change to a contact, as CONTACT_SET carries it (strings NULL or "":
 * unchanged; an attribute with an empty value is removed). */
typedef struct sb_client_contact_change {
    uint64_t conv_id;    /* the customer of this conversation, */
    const char *user_id; /* or this user (admins) */
    const char *name, *email;
    const char *const *keys, *const *values;
    size_t n_attrs;
    bool clear_name, clear_email;
} sb_client_contact_change;
/* CONTACT_SET: ch's change; the answer is a CONTACT_RESP with the contact
 * as stored. Limits: SB_CONTACT_* (sb_limits.h; SB_E_TOO_LARGE beyond). */
int sb_client_core_contact_set(sb_client_core *cc,
                               const sb_client_contact_change *ch,
                               uint32_t *rid_out);

/* ---- accessors ----------------------------------------------------------- */

sb_client_state sb_client_core_state(const sb_client_core *cc);
/* The highest contiguous seq surfaced in conv_id (0 if none). */
uint64_t sb_client_core_cursor(const sb_client_core *cc, uint64_t conv_id);
void sb_client_core_stats(const sb_client_core *cc, sb_client_stats *out);
const sb_client_session *sb_client_core_session(const sb_client_core *cc);
/* The last reconnect delay chosen (ms): how long BACKOFF lasts. */
uint32_t sb_client_core_backoff_ms(const sb_client_core *cc);
/* The URL the client connects to now, or will next (in BACKOFF): a copy
 * owned by the core, valid until _free(). */
const char *sb_client_core_url(const sb_client_core *cc);
/* Its index in the configured list (cfg.urls; 0 for cfg.url). */
size_t sb_client_core_url_index(const sb_client_core *cc);
/* Why the last connection ended or the client stopped (0 if none). */
int sb_client_core_last_error(const sb_client_core *cc);
/* The WebSocket close code of the last connection (0 if none). */
uint16_t sb_client_core_close_code(const sb_client_core *cc);

/* "ERR_FORBIDDEN" for SB_E_FORBIDDEN, the errno name-ish text otherwise
 * ("ETIMEDOUT"...). A static string. */
const char *sb_client_err_name(int err);

#endif
