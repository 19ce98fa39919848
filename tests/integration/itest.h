/* Integration-test toolkit, on top of harness.h.
 *
 * - it_env: one uv loop, the server under test (harness), the registry of
 *   every send made by any device, and bounded waits: it_run_until() runs
 *   the loop until a predicate holds or a timeout passes.
 * - it_device: one sb_client (one device of one user) plus a log of what
 *   it surfaced per conversation. Invariants are checked as messages are
 *   surfaced (I2: no seq twice; I3: seq dense and ascending) and as send
 *   statuses arrive (each once, in order); every breach is counted as a
 *   violation with a readable line on stderr. The log survives the client:
 *   it_device_restart() makes a new sb_client for the same device id,
 *   optionally restoring its cursors from the log.
 * - it_raw: a blocking WebSocket client on plain sockets (poll timeouts,
 *   sb_client_hs for the upgrade, sb_ws for framing, sb_codec for frames)
 *   for tests that must choose every byte.
 * - it_store_*: reads the server's SQLite file read-only, to compare what
 *   devices surfaced with what the store holds.
 *
 * Everything runs on the thread that made the env. */
#ifndef SB_ITEST_H
#define SB_ITEST_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "harness.h"
#include "sb_client.h"
#include "sb_codec.h"
#include "sb_map.h"
#include "sb_token.h"
#include "sb_ws.h"

#define IT_CONVS_MAX 64
#define IT_DEVICES_MAX 96
#define IT_CLOSE_CODES_MAX 32

typedef struct it_env it_env;
typedef struct it_device it_device;

/* ---- the environment ------------------------------------------------------
 */

struct it_env {
    uv_loop_t loop;
    uv_timer_t wake;    /* keeps UV_RUN_ONCE from blocking long */
    harness_server srv; /* the server (it_server_start) */
    /* What devices connect to: srv.url by default; several URLs separated
     * by commas make devices go round them (sb_client_config.urls). */
    char url[1024];
    char data_dir[256]; /* the store's folder: srv.data_dir by default */
    sb_encoding enc;    /* encoding of devices made from now on */
    it_device *devs[IT_DEVICES_MAX];
    size_t n_devs;
    sb_map sends; /* first 8 bytes of client_msg_id -> it_send chain */
    size_t n_sends;
    unsigned violations; /* over every device */
    bool inited;
    /* Set before it_server_start() by load tests: no per-session SEND
     * rate limit (--sends-per-s 0), when the server has that option. */
    bool unlimited;
};

/* Ignores SIGPIPE, makes the loop. Never fails (aborts on a libuv error). */
void it_env_init(it_env *e);
/* Closes every device still open, frees devices and sends, closes the
 * loop, kills the server if it runs and removes its data folder. Does
 * nothing for an env already freed (or never made), so a test's teardown
 * may call it after a failed assertion. */
void it_env_free(it_env *e);

/* True if the server binary lists opt (e.g. "--sends-per-s") in --help. */
bool it_server_has_option(const char *opt);

/* Starts the server with extra options (NULL-terminated list, may be NULL)
 * and points e->url at it. Returns 0 or -1. */
int it_server_start(it_env *e, const char *const *extra);

/* Runs the loop until pred(arg) holds (true) or timeout_ms passes (false).
 * pred is checked before every loop iteration (at least every 5 ms). */
bool it_run_until(it_env *e, bool (*pred)(void *), void *arg, int timeout_ms);
/* Runs the loop for ms milliseconds. */
void it_run_for(it_env *e, int ms);
/* Runs the loop until *counter >= want. */
bool it_wait_size(it_env *e, const size_t *counter, size_t want,
                  int timeout_ms);

/* ---- devices --------------------------------------------------------------
 */

/* One surfaced message, as the application saw it. */
typedef struct it_msg {
    uint64_t seq, msg_id;
    uint64_t body_hash;
    uint32_t body_len;
    uint8_t cmid[SB_CLIENT_MSG_ID_BYTES];
    char sender[SB_ID_BYTES_MAX + 1];
    bool own; /* sender_device was this device */
} it_msg;

typedef struct it_conv_log {
    uint64_t conv_id;
    uint64_t base; /* surfaced through base before this log (cursor) */
    uint64_t last; /* highest seq surfaced (base if none) */
    it_msg *msgs;  /* in surfacing order; msgs[i].seq == base + 1 + i */
    size_t n, cap;
} it_conv_log;

/* One send, from sb_client_send to its last status. */
typedef struct it_send {
    uint8_t cmid[SB_CLIENT_MSG_ID_BYTES];
    uint64_t conv_id;
    it_device *dev;
    uint64_t body_hash;
    uint32_t body_len;
    sb_client_send_status status; /* the last reported */
    uint64_t seq, msg_id;         /* from SENT */
    bool duplicate;               /* SENT said duplicate */
    int err;                      /* FAILED */
    struct it_send *hash_next;
} it_send;

typedef struct it_history {
    uint64_t *seqs, *msg_ids;
    size_t n, cap;
    bool done, more;
    int err;
    uint32_t rid;
} it_history;

struct it_device {
    it_env *env;
    char name[96]; /* "user/device" */
    char user[SB_ID_BYTES_MAX + 1];
    char role[16];
    char device_id[SB_ID_BYTES_MAX + 1];
    char token[1024];
    char url[1024]; /* the env's url when the device was made */
    /* The client configuration; strings point into this struct. Tests may
     * change fields before it_device_start(). */
    sb_client_config cfg;
    char url_list[1024]; /* url split at its commas, for cfg.urls */
    const char *urls[SB_CLIENT_URLS_MAX];
    sb_client *c; /* NULL when stopped */
    bool client_freed;
    int generation; /* clients made so far */

    sb_client_state state;
    int state_err;
    unsigned readies, backoffs, stops;
    int64_t ready_ms; /* harness_now_ms() of the last READY */
    /* Every connection end seen (BACKOFF or STOPPED): the WebSocket close
     * code received (0: none) and the on_state err. */
    uint16_t close_codes[IT_CLOSE_CODES_MAX];
    int close_errs[IT_CLOSE_CODES_MAX];
    size_t n_close_codes;
    int last_stop_err;

    it_conv_log convs[IT_CONVS_MAX];
    size_t n_convs;
    uint64_t surfaced_total;

    /* Sends made through this device (the env has the records). */
    size_t n_sends, n_sent, n_delivered, n_read, n_failed, n_dup_acks;
    unsigned synced;     /* on_synced calls */
    unsigned errors;     /* on_error calls (errors tied to no request) */
    unsigned receipts;   /* READ_NOTIFY frames */
    unsigned violations; /* invariant breaches seen by this device */

    /* The last OPEN. */
    uint32_t open_rid;
    bool open_done;
    int open_err;
    uint64_t open_conv;
    it_history hist;

    sb_client_stats stats; /* snapshot taken when the client is closed */
};

/* A device of user (role "customer", "agent", "bot" or "admin") with a
 * fresh token (1 h), configured for tests: small backoff (20..200 ms),
 * large outbox, encoding e->enc, the URL or URLs of e->url. Not started. */
it_device *it_device_new(it_env *e, const char *user, const char *role,
                         const char *device_id);
/* Makes the sb_client from d->cfg and starts it. Returns 0 or < 0. */
int it_device_start(it_device *d);
bool it_device_wait_ready(it_device *d, int timeout_ms);
/* Closes the client (ACKs go out first) and waits until it is freed.
 * The log stays. A stats snapshot is kept in d->stats. */
void it_device_stop(it_device *d);
/* A new sb_client for the same device. With restore_cursors, every
 * conversation in the log gets sb_client_set_cursor(conv, last surfaced)
 * before the start, as an app restoring persisted cursors would. */
int it_device_restart(it_device *d, bool restore_cursors);

/* Tells a device (before or after it starts) that conv was surfaced
 * through seq elsewhere: its log starts after seq. Only for a device whose
 * log of conv is empty. */
int it_device_set_cursor(it_device *d, uint64_t conv_id, uint64_t seq);

/* Records a violation on d (or on the env if d is NULL). */
void it_violation(it_env *e, it_device *d, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The device's log for conv (NULL if nothing was surfaced there). */
it_conv_log *it_log(it_device *d, uint64_t conv_id);
/* Highest seq surfaced in conv (0 if none). */
uint64_t it_surfaced(it_device *d, uint64_t conv_id);

/* OPEN with one member; waits for the answer. Returns the conv id, or 0
 * (d->open_err says why). */
uint64_t it_open(it_device *d, const char *member, int timeout_ms);
/* Queues a text message and registers it. Returns 0 or the SDK's code. */
int it_send_text(it_device *d, uint64_t conv_id, const char *body);
/* Queues an attachment (sb_client_send_file) and registers it with its
 * caption as body; id_out (may be NULL) gets its client_msg_id. Returns
 * 0 or the SDK's code. */
int it_send_file(it_device *d, uint64_t conv_id, Sbp__MsgType type,
                 const char *path, const char *name, const char *caption,
                 uint8_t *id_out);
/* n messages with bodies "<tag>#<i>" (i from first). */
int it_send_n(it_device *d, uint64_t conv_id, int first, int n,
              const char *tag);
/* True once every send of every device given has reached SENT or FAILED
 * (outbox empty). */
bool it_wait_sent(it_device *const *devs, size_t n, int timeout_ms);
/* True once every device given has surfaced conv through seq. */
bool it_wait_surfaced(it_device *const *devs, size_t n, uint64_t conv_id,
                      uint64_t seq, int timeout_ms);
/* HISTORY paging from the newest back to seq 1, into d->hist (seqs in
 * ascending order). Returns 0 or -1. */
int it_history_all(it_device *d, uint64_t conv_id, uint32_t page,
                   int timeout_ms);

/* True if d's connection was ever closed with code. */
bool it_device_saw_close(const it_device *d, uint16_t code);

/* A steady load for the restart tests: n conversations (conv[i], opened
 * by cust[i], user "cust<i>", with agent[i], user "agent<i>"), in which
 * both devices keep sending numbered texts from a 2 ms timer, per_dev in
 * all at most and inflight at most queued but not yet SENT. all[] holds
 * the devices as cust[0], agent[0], cust[1], ... The arrays are the
 * caller's: 2 * n for all, n for the others. */
typedef struct it_load {
    it_device **cust, **agent, **all;
    uint64_t *conv;
    size_t n, per_dev, inflight;
    uv_timer_t timer;
    bool on;
} it_load;

/* Makes l's devices (not started). */
void it_load_devices(it_env *e, it_load *l);
/* Opens each conversation; false if one could not be. */
bool it_load_open(it_load *l, int timeout_ms);
/* Starts l's timer on e's loop (it_env_free closes it). */
void it_load_start(it_env *e, it_load *l);
/* Stops the timer; nothing more is queued. Safe to call twice. */
void it_load_stop(it_load *l);
/* Sends of l's devices acknowledged (SENT) so far. */
size_t it_load_acked(const it_load *l);
/* Runs the loop until at least want of l's sends are acknowledged. */
bool it_load_wait_acked(it_env *e, const it_load *l, size_t want,
                        int timeout_ms);
/* Once the load has stopped: waits until every send is SENT or FAILED
 * (sent_ms at most) and both devices have surfaced each conversation
 * through its last seq, then checks each conversation on the devices
 * (it_check_conv) and against the store (it_check_store). Returns the
 * problems found, each reported; *sends and *stored (either may be NULL)
 * get the messages sent and those stored. A send that FAILED counts as a
 * problem. */
int it_load_converged(it_env *e, const it_load *l, int sent_ms, size_t *sends,
                      size_t *stored);

/* For it_run_until: true once the server srv has exited; rc and status
 * as harness_stop_poll gives them. */
typedef struct it_exit {
    harness_server *srv;
    int rc, status;
} it_exit;
bool it_server_exited(void *arg);

/* The record of a send, by client_msg_id (NULL if unknown). */
it_send *it_send_find(it_env *e, const uint8_t *cmid);
/* Calls fn for every send of the env. */
void it_sends_each(it_env *e, void (*fn)(it_send *s, void *arg), void *arg);

/* Checks a conversation across devices (I2, I3, I4 among them): each
 * device surfaced exactly seqs base+1..n_expected, each once, in order;
 * every device has the same msg_id, client_msg_id, body and sender at a
 * seq; every registered send to conv that reached SENT is at its seq with
 * its msg_id, and its body and sender are what was sent. Prints what
 * differs and returns the number of problems (0: all good). */
int it_check_conv(it_env *e, uint64_t conv_id, it_device *const *devs, size_t n,
                  uint64_t n_expected);

/* 64-bit FNV-1a of a body. */
uint64_t it_hash(const void *p, size_t n);

/* ---- the store, read directly ------------------------------------------- */

typedef struct it_row {
    uint64_t conv_id, seq, msg_id;
    uint8_t cmid[SB_CLIENT_MSG_ID_BYTES];
    size_t cmid_len;
    char sender[SB_ID_BYTES_MAX + 1];
    uint64_t body_hash;
    uint32_t body_len;
} it_row;

/* Loads every message of conv_id (0: all conversations) from
 * <data_dir>/switchboard.db, opened read-only, ordered by (conv_id, seq).
 * Returns the row count (*rows malloc'd, caller frees) or -1. */
long it_store_rows(const char *data_dir, uint64_t conv_id, it_row **rows);
/* Compares the store's messages of conv with device d's log and with the
 * env's sends: seqs dense 1..N, the same (seq, msg_id, client_msg_id, body)
 * as d surfaced, every SENT send present with its seq and msg_id, and no
 * (sender, client_msg_id) twice. Returns the number of problems; *n_out
 * gets N. */
int it_check_store(it_env *e, uint64_t conv_id, it_device *d, size_t *n_out);

/* I1 alone: every send of the env that reached SENT is in the store at
 * its (conv, seq) with its msg_id, client_msg_id and body. Returns the
 * number of problems; *acked gets the number of such sends. */
int it_check_acked_in_store(it_env *e, size_t *acked);

/* ---- the raw client -------------------------------------------------------
 */

#define IT_RAW_PINGS_MAX 32

typedef struct it_rx {
    struct it_rx *next;
    bool text;
    size_t n;
    uint8_t p[];
} it_rx;

typedef struct it_raw {
    int fd;
    sb_ws *ws;
    sb_encoding enc;
    it_rx *head, *tail; /* WebSocket messages received, not yet taken */
    bool eof;           /* the peer closed (or reset) the TCP connection */
    int io_err;         /* the error that ended reading (0: EOF) */
    uint32_t rid;       /* last request id used */
    int http_status;    /* of the upgrade answer */
    uint64_t rng;
    /* A second reading of the server's frames, beside wslay's, that only
     * notes close frames: libwslay 1.1.1 refuses close codes it does not
     * know (1012-1014) as a protocol error
     * and never reports them. */
    sb_buf tap;
    int tap_close; /* code of the first close frame seen (-1: none yet) */
    /* permessage-deflate as the server answered the offer (if made), and
     * messages received that came compressed. */
    sb_wsdeflate_params deflate;
    size_t compressed_rx;
    /* Pings seen, and when the first IT_RAW_PINGS_MAX of them came
     * (harness_now_ms). */
    unsigned tap_pings;
    int64_t tap_ping_ms[IT_RAW_PINGS_MAX];
} it_raw;

/* Connects to 127.0.0.1:port and upgrades with subprotocol (NULL: the
 * one of enc). Returns 0, or -1 (r->http_status tells a refused upgrade). */
int it_raw_open(it_raw *r, uint16_t port, sb_encoding enc,
                const char *subproto);
/* The same, offering permessage-deflate (SB_WSDEFLATE_OFFER) if deflate;
 * r->deflate says what the server agreed. Messages of min_bytes and more
 * go compressed. */
int it_raw_open_deflate(it_raw *r, uint16_t port, sb_encoding enc, bool deflate,
                        uint32_t min_bytes);
void it_raw_close(it_raw *r);
/* Bytes straight onto the socket. 0 or -errno (EPIPE, ECONNRESET...). */
int it_raw_write(it_raw *r, const void *p, size_t n);
/* One WebSocket message (masked, as a client must). 0 or < 0. */
int it_raw_send_ws(it_raw *r, bool text, const void *p, size_t n);
/* One frame in the connection's encoding; sets f->rid to a new request id
 * if it is 0 and returns it (or 0 on failure). */
uint32_t it_raw_send(it_raw *r, Sbp__Frame *f);
/* The next frame received, decoded (sb_frame_free it), or NULL on timeout
 * or when the connection ended. */
Sbp__Frame *it_raw_recv(it_raw *r, int timeout_ms);
/* Skips frames until one of body case bc (and rid, unless 0) arrives. */
Sbp__Frame *it_raw_expect(it_raw *r, Sbp__Frame__BodyCase bc, uint32_t rid,
                          int timeout_ms);
/* Waits for the server's close: returns the close code received (0 when
 * the connection ended without one, -1 on timeout), as sent on the wire
 * (see tap). Frames received meanwhile stay queued. */
int it_raw_wait_close(it_raw *r, int timeout_ms);
/* HELLO; returns 0 on WELCOME, the ERROR code (> 0), or -1 (timeout). */
int it_raw_hello(it_raw *r, const char *token, const char *device_id,
                 int timeout_ms);
/* A frame helper: SEND with the given id and body. */
uint32_t it_raw_send_msg(it_raw *r, const uint8_t *cmid, uint64_t conv_id,
                         const char *body);

/* A blocking TCP connection to 127.0.0.1:port (CLOEXEC), or -1. */
int it_tcp_connect(uint16_t port);
/* it_http() on a connection already made (and closed by it). */
int it_http_fd(int fd, const void *req, size_t n, char *resp, size_t cap,
               int timeout_ms, bool *closed);
/* Plain HTTP: connects, writes req, reads until the server closes or
 * timeout. Returns the status code (or -1), copies the response head and
 * body into resp (NUL-terminated), *closed says whether the server closed. */
int it_http(uint16_t port, const void *req, size_t n, char *resp, size_t cap,
            int timeout_ms, bool *closed);

/* ---- a well-behaved pair in the background ---------------------------------
 *
 * A customer and an agent chatting on their own thread and loop while a
 * test misbehaves on the main one; stopped, it reports whether it was
 * disturbed (everything sent, surfaced in order by both, as stored). */
typedef struct it_pair {
    /* Set before it_pair_start. */
    const char *cust, *agent; /* user ids; devices are <id>-d1 */
    unsigned interval_ms;     /* each side sends one message per tick */
    uint64_t max_sends;       /* per side; 0: no bound */
    /* Results, valid after it_pair_stop. */
    int problems;
    unsigned violations;
    size_t sent[2], surfaced[2]; /* [0] customer, [1] agent */
    unsigned readies[2], backoffs[2];
    long long ms;
    int64_t started_ms; /* when the chat began */
    /* Internal. */
    pthread_t th;
    bool started;
    char url[128], data_dir[256];
    atomic_int ready; /* 1: conv open, chatting; -1: failed */
    atomic_int stop;
    atomic_ullong conv;
    it_env env;
    it_device *d[2];
    uv_timer_t timer;
    int next[2];
} it_pair;

/* Starts p against e's server and waits (up to wait_ms) until it chats.
 * Returns 0 or -1. */
int it_pair_start(it_pair *p, const it_env *e, int wait_ms);
/* Stops the chat, waits for every send to be surfaced, checks, joins. */
void it_pair_stop(it_pair *p);
/* The pair's conversation (0 before it is open). */
uint64_t it_pair_conv(it_pair *p);

#endif
