/* The gateway's I/O shell: libuv TCP connections speaking HTTP/1.1 and
 * WebSocket, the store's threads, timers and signals, all feeding the
 * sans-IO delivery core. Connections are freed only from their uv_close
 * callback, never from inside their own read or write callbacks. */
#include "sb_server.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "sb_addr.h"
#include "sb_api.h"
#include "sb_dataops.h"
#include "sb_deskown.h"
#include "sb_dheap.h"
#include "sb_error.h"
#include "sb_http.h"
#include "sb_log.h"
#include "sb_map.h"
#include "sb_media.h"
#include "sb_metrics.h"
#include "sb_nats.h"
#include "sb_notify.h"
#include "sb_opsport.h"
#include "sb_reload.h"
#include "sb_routes.h"
#include "sb_storeq.h"
#include "sb_tls.h"
#include "sb_webhook.h"
#include "sb_ws.h"

#define SRV_READ_BYTES 65536
#define SRV_TICK_MS 50
#define SRV_DRAIN_POLL_MS 20
#define SRV_MEDIA_SWEEP_MS 1000
/* A connection closing gets this long for the close handshake, then it is
 * dropped. */
#define SRV_CLOSE_WAIT_MS 2000
/* After this many connections opened or closed, once a check (every
 * SRV_TRIM_CHECK_MS) finds none since the last, the heap's free pages go back
 * to the kernel: a burst of handshakes (TLS above all) leaves free memory
 * scattered between the connections that stay. */
#define SRV_TRIM_CHURN 1000
#define SRV_TRIM_CHECK_MS 1000

typedef struct server server;

typedef enum conn_phase { PH_HTTP, PH_MEDIA, PH_WS, PH_CLOSING } conn_phase;

/* SIGTERM or SIGINT drains the server in stages; each waits for its
 * condition (or its time limit), then moves to the next. */
typedef enum drain_stage {
    DRAIN_OFF,      /* serving */
    DRAIN_STORE,    /* the SENDs the store has commit and are acknowledged
                       (cfg.drain_ms_max at most) */
    DRAIN_SESSIONS, /* sessions closed with GOING_AWAY finish their close
                       handshakes (SRV_CLOSE_WAIT_MS at most) */
    DRAIN_ABORT,    /* the listener closes (new connections got 503 so
                       far), the connections left are dropped */
    DRAIN_STOPPED,  /* the store is stopped and the loop's handles close:
                       sb_server_run returns once the loop runs dry */
} drain_stage;

/* One per open TCP connection: its size is most of what an idle
 * connection costs (docs/benchmarks.md), so it holds only what every
 * connection needs; its server is its loop's data. */
typedef struct conn {
    uv_tcp_t tcp;
    uint64_t id;
    /* A request that did not come whole in one read, during the HTTP
     * phase only (a whole one is parsed in the server's http_scratch). */
    sb_http_req *http;
    sb_media_xfer *xfer; /* an upload or download (PH_MEDIA, then closing) */
    sb_ws *ws;           /* during the WebSocket phase */
    sb_tls *tls;         /* with --tls-cert: what the socket carries */
    uint64_t addr_key;
    /* The connection's next deadline (the request's, a ping, the idle
     * close, the close handshake's end) in the server's heap: each is
     * kept to the ms by one timer for all. */
    sb_dheap_node deadline;
    uint32_t write_inflight; /* bytes; at most out_bytes_max and a write */
    /* Loop times (conn_now: ms, modulo 2^32; intervals are differences). */
    uint32_t opened_ms, last_rx_ms, last_ping_ms, closing_ms;
    uint8_t phase;    /* conn_phase */
    bool gw_open : 1; /* the core has a session for this connection */
    bool text : 1;    /* JSON subprotocol: text frames */
    bool close_after_write : 1;
    bool in_flush : 1;     /* in the server's flushq */
    bool closed : 1;       /* uv_close called */
    bool addr_counted : 1; /* counted in srv->addrs under addr_key */
    bool close_timed : 1;  /* closing since closing_ms: dropped later */
    bool api_wait : 1;     /* its request is the REST API's, answered later */
} conn;

typedef struct wreq {
    uv_write_t req;
    conn *c;
    sb_buf buf;
} wreq;

struct server {
    sb_server_config cfg;
    sb_routes_config routes;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_timer_t tick, drain_timer;
    uv_timer_t deadline_timer; /* the earliest of the connections' deadlines */
    uv_check_t check;
    uv_signal_t sigterm, sigint, sighup;
    sb_storeq *storeq;
    sb_gw *gw;
    sb_reload *reload;      /* the word lists and desks in force */
    sb_opsport *ops;        /* --admin-listen; NULL: none */
    sb_media *media;        /* uploads; NULL: none (a store in memory) */
    int64_t media_swept_ms; /* the media service's last sb_media_sweep */
    sb_api *api;            /* the REST API */
    sb_webhook *wh;         /* webhooks and their outbox */
    sb_dataops *data;       /* conversation lookups, users' data */
    sb_notify *notify;      /* systemd; NULL: not under it */
    sb_nats *nats;          /* --nats: the link to the cluster; NULL: alone */
    sb_deskown *deskown;    /* --nats: the lock of the desks' owner */
    char node[SB_ID_BYTES_MAX + 1];
    sb_metrics_shell mstats;
    sb_map conns; /* id -> conn: every open connection */
    sb_map addrs; /* addr_key -> open connections, as a pointer-sized count */
    sb_http_req http_scratch; /* the request of the read being handled */
    sb_tls_ctx *tls;          /* NULL: plain */
    sb_buf tls_plain;         /* decrypted bytes of the read being handled */
    sb_ws_env *wsenv;         /* what the WebSocket connections share */
    conn **flushq;            /* connections with output to write at on_check */
    size_t flushq_len, flushq_cap;
    uint64_t next_id;
    size_t n_conns;
    uint64_t churn;       /* connections opened or closed since a trim */
    uint64_t churn_swept; /* churn at the last trim check */
    int64_t trim_checked_ms;
    sb_dheap deadlines;         /* the open connections' next deadlines */
    uint32_t deadline_armed_ms; /* what deadline_timer waits for */
    bool deadline_armed;
    drain_stage drain;
    int64_t drain_started_ms; /* when the stage began */
    uint8_t rbuf[SRV_READ_BYTES];
    bool rbuf_busy;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static server *conn_srv(const conn *c)
{
    return c->tcp.loop->data;
}

/* The loop's time for a connection's deadlines: ms, modulo 2^32. */
static uint32_t conn_now(const server *srv)
{
    return (uint32_t)uv_now(&srv->loop);
}

/* The open connection in slot i of the map of connections, or NULL. A
 * loop over the slots may close connections: they leave the map only from
 * their close callback. */
static conn *conn_slot(server *srv, size_t i)
{
    return srv->conns.slots[i].val;
}

void sb_server_config_default(sb_server_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->host, sizeof c->host, "127.0.0.1");
    c->port = 8080;
    c->data_dir = "./data";
    c->durability = SB_DURABILITY_FSYNC;
    sb_gw_config_default(&c->gw);
    c->idle_ms = 90000;
    c->handshake_ms = 10000;
    c->out_bytes_max = 8u << 20;
    c->conns_max = 200000;
    c->conns_per_addr_max = 1000;
    c->deflate = true;
    c->deflate_min_bytes = 512;
    c->api_rate_per_s = 50;
    c->api_rate_burst = 100;
    c->drain_ms_max = 10000;
    sb_media_config_default(&c->media);
}

/* ---- connection lifetime ------------------------------------------------- */

/* Adds delta to the open connections counted under key; returns the new
 * count. A count of 0 is not stored. */
static uintptr_t addr_count(server *srv, uint64_t key, int delta)
{
    uintptr_t n = (uintptr_t)sb_map_get(&srv->addrs, key) + (uintptr_t)delta;
    if (n == 0)
        sb_map_del(&srv->addrs, key);
    else if (sb_map_put(&srv->addrs, key, (void *)n) != 0)
        return UINTPTR_MAX; /* out of memory: count as over the limit */
    return n;
}

/* What c speaks, for the count of open connections. */
static sb_metrics_conn_kind conn_kind(const conn *c)
{
    return !c->ws    ? SB_METRICS_CONN_HTTP
           : c->text ? SB_METRICS_CONN_JSON
                     : SB_METRICS_CONN_PROTOBUF;
}

static void conn_count(conn *c, int delta)
{
    conn_srv(c)->mstats.open[conn_kind(c)][c->tls != NULL] += (uint64_t)delta;
}

/* The peer's address into *sa; NULL if it is unknown. */
static const struct sockaddr *peer_name(conn *c, struct sockaddr_storage *sa)
{
    int len = sizeof *sa;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)sa, &len) != 0)
        return NULL;
    return (const struct sockaddr *)sa;
}

/* The close callback of the connection's handles: the last frees it. */
static void on_conn_closed(uv_handle_t *h)
{
    conn *c = h->data;
    server *srv = conn_srv(c);
    if (c->gw_open) sb_gw_conn_closed(srv->gw, c->id);
    if (c->xfer) sb_media_gone(c->xfer);
    if (c->api_wait && srv->api) sb_api_conn_gone(srv->api, c->id);
    sb_map_del(&srv->conns, c->id);
    if (c->addr_counted) addr_count(srv, c->addr_key, -1);
    srv->n_conns--;
    srv->churn++;
    conn_count(c, -1);
    sb_ws_free(c->ws);
    sb_tls_free(c->tls);
    if (c->http) sb_http_req_clear(c->http);
    free(c->http);
    free(c);
}

/* Drops the connection now, without any goodbye. */
static void conn_abort(conn *c)
{
    if (c->closed) return;
    c->closed = true;
    c->phase = PH_CLOSING;
    sb_dheap_remove(&conn_srv(c)->deadlines, &c->deadline);
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_deadline(uv_timer_t *t);

static conn *conn_of_deadline(sb_dheap_node *n)
{
    return (conn *)((char *)n - offsetof(conn, deadline));
}

/* Starts the deadlines' timer for the earliest one, unless it already
 * waits for that or an earlier one: a deadline that moved later fires
 * early and only goes back in the heap. */
static void deadline_timer_arm(server *srv)
{
    sb_dheap_node *top = sb_dheap_top(&srv->deadlines);
    if (!top) return;
    if (srv->deadline_armed &&
        !sb_dheap_before(top->due_ms, srv->deadline_armed_ms))
        return;
    uint32_t now = conn_now(srv);
    uint32_t wait = sb_dheap_before(now, top->due_ms) ? top->due_ms - now : 0;
    srv->deadline_armed = true;
    srv->deadline_armed_ms = top->due_ms;
    uv_timer_start(&srv->deadline_timer, on_deadline, wait, 0);
}

/* The deadline c waits for in its phase (false: none): the request's
 * end, the next ping or the idle close, the end of the close handshake. */
static bool conn_deadline(const conn *c, uint32_t *due)
{
    const sb_server_config *cfg = &conn_srv(c)->cfg;
    switch (c->phase) {
    case PH_HTTP:
        *due = c->opened_ms + cfg->handshake_ms;
        return !c->api_wait;
    case PH_WS: {
        uint32_t idle = c->last_rx_ms + cfg->idle_ms;
        uint32_t ping = c->last_ping_ms + cfg->gw.heartbeat_ms;
        *due = sb_dheap_before(idle, ping) ? idle : ping;
        return true;
    }
    case PH_MEDIA:
        return false; /* the media service keeps its own (on_tick) */
    case PH_CLOSING:
        *due = c->closing_ms + SRV_CLOSE_WAIT_MS;
        return c->close_timed;
    }
    return false;
}

/* Puts c in the deadlines' heap at its next deadline (or out of it). */
static void conn_timer_arm(conn *c)
{
    if (c->closed) return;
    server *srv = conn_srv(c);
    uint32_t due;
    if (!conn_deadline(c, &due)) {
        sb_dheap_remove(&srv->deadlines, &c->deadline);
        return;
    }
    if (sb_dheap_set(&srv->deadlines, &c->deadline, due) != 0) {
        conn_abort(c); /* out of memory: a connection without deadlines */
        return;
    }
    deadline_timer_arm(srv);
}

static void on_write(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    conn *c = w->c;
    c->write_inflight -= (uint32_t)w->buf.len;
    sb_buf_free(&w->buf);
    free(w);
    if (status < 0) {
        conn_abort(c);
        return;
    }
    if (c->close_after_write && c->write_inflight == 0) {
        conn_abort(c);
        return;
    }
    if (c->xfer && !c->closed) sb_media_drained(c->xfer, wall_ms());
}

/* Writes (takes) buf's bytes to the socket as they are. */
static void conn_write_wire(conn *c, sb_buf *buf)
{
    if (c->closed || buf->len == 0) {
        sb_buf_free(buf);
        return;
    }
    /* With nothing queued, write at once: most writes are taken whole,
     * and then no request, no callback and no poll change are needed. */
    size_t done = 0;
    if (c->write_inflight == 0) {
        uv_buf_t b = uv_buf_init((char *)buf->data, (unsigned)buf->len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n < 0 && n != UV_EAGAIN) {
            sb_buf_free(buf);
            conn_abort(c);
            return;
        }
        if (n > 0) done = (size_t)n;
        if (done == buf->len) {
            sb_buf_free(buf);
            if (c->close_after_write) conn_abort(c);
            return;
        }
    }
    /* A peer that does not read: drop it rather than buffer without
     * bound. Its device catches up by SYNC on reconnect. */
    uint32_t max = conn_srv(c)->cfg.out_bytes_max;
    if (buf->len > max || c->write_inflight > max - buf->len) {
        sb_log(SB_LOG_INFO, "conn_dropped", &(sb_log_ids){.session = c->id},
               "output over %u bytes: the peer does not read", max);
        sb_buf_free(buf);
        conn_abort(c);
        return;
    }
    wreq *w = malloc(sizeof *w);
    if (!w) {
        sb_buf_free(buf);
        conn_abort(c);
        return;
    }
    w->c = c;
    w->buf = *buf;
    *buf = (sb_buf)SB_BUF_INIT;
    uv_buf_t b =
        uv_buf_init((char *)w->buf.data + done, (unsigned)(w->buf.len - done));
    c->write_inflight += (uint32_t)w->buf.len;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        c->write_inflight -= (uint32_t)w->buf.len;
        sb_buf_free(&w->buf);
        free(w);
        conn_abort(c);
    }
}

/* Writes (takes) buf's bytes to the connection, through TLS if it has it. */
static void conn_write(conn *c, sb_buf *buf)
{
    if (c->tls && !c->closed && buf->len) {
        sb_buf wire = SB_BUF_INIT;
        int rc = sb_tls_write(c->tls, buf->data, buf->len, &wire);
        sb_buf_free(buf);
        *buf = wire;
        if (rc) {
            sb_buf_free(buf);
            conn_abort(c);
            return;
        }
    }
    conn_write_wire(c, buf);
}

static void schedule_flush(conn *c)
{
    if (c->in_flush || c->closed) return;
    server *srv = conn_srv(c);
    if (srv->flushq_len == srv->flushq_cap) {
        size_t cap = srv->flushq_cap ? 2 * srv->flushq_cap : 256;
        conn **q = realloc(srv->flushq, cap * sizeof *q);
        if (!q) {
            conn_abort(c); /* out of memory: its output cannot wait */
            return;
        }
        srv->flushq = q;
        srv->flushq_cap = cap;
    }
    c->in_flush = true;
    srv->flushq[srv->flushq_len++] = c;
}

/* Moves the WebSocket's queued frames to the socket. */
static void conn_flush(conn *c)
{
    if (c->closed || !c->ws) return;
    sb_buf out = SB_BUF_INIT;
    if (sb_ws_pull(c->ws, &out) != 0) {
        sb_buf_free(&out);
        conn_abort(c);
        return;
    }
    conn_write(c, &out);
    if (c->closed) return;
    /* Closing: the close frame is out; the peer's answer (or its timer,
     * after SRV_CLOSE_WAIT_MS) ends the connection, so a peer still sending
     * sees the close code rather than a reset. A drain waits for these
     * too: closing a socket with the peer's bytes unread sends a reset,
     * which may reach the peer before it has read the close frame. */
    if (sb_ws_done(c->ws)) {
        c->phase = PH_CLOSING;
        if (c->write_inflight == 0) {
            conn_abort(c);
        } else {
            c->close_after_write = true;
            if (!c->close_timed) {
                c->closing_ms = conn_now(conn_srv(c));
                c->close_timed = true;
            }
            conn_timer_arm(c);
        }
    }
}

/* Once per loop turn, after its events: the messages the turn queued for
 * each device go into PUSH frames, then every connection's output to its
 * socket. */
static void on_check(uv_check_t *h)
{
    server *srv = h->data;
    if (srv->api) sb_api_flush(srv->api, wall_ms());
    sb_gw_flush(srv->gw);
    /* Connections queued meanwhile are flushed too. */
    for (size_t i = 0; i < srv->flushq_len; i++) {
        conn *c = srv->flushq[i];
        c->in_flush = false;
        conn_flush(c);
    }
    srv->flushq_len = 0;
}

/* Queues a WebSocket close and lets the flush write it. */
static void conn_close_ws(conn *c, uint16_t code, const char *reason)
{
    if (c->closed) return;
    if (c->ws) {
        /* wslay sends control frames ahead of queued data: write out what
         * is queued (an ERROR frame explaining the close, say) first. */
        sb_buf out = SB_BUF_INIT;
        if (sb_ws_pull(c->ws, &out) == 0)
            conn_write(c, &out);
        else
            sb_buf_free(&out);
        if (c->closed) return;
        sb_ws_close(c->ws, code, reason);
    }
    c->phase = PH_CLOSING;
    c->closing_ms = conn_now(conn_srv(c));
    c->close_timed = true;
    conn_timer_arm(c);
    schedule_flush(c);
}

/* ---- the core's I/O ------------------------------------------------------ */

static void io_send(void *ud, uint64_t conn_id, const uint8_t *p, size_t n)
{
    server *srv = ud;
    if (srv->api && sb_api_frame(srv->api, conn_id, p, n)) return;
    conn *c = sb_map_get(&srv->conns, conn_id);
    if (!c || c->closed || c->phase != PH_WS) return;
    if (sb_ws_send(c->ws, c->text, p, n) != 0) return;
    if (sb_ws_queued_bytes(c->ws) + c->write_inflight >
        srv->cfg.out_bytes_max) {
        conn_abort(c);
        return;
    }
    schedule_flush(c);
}

static void io_close(void *ud, uint64_t conn_id, uint16_t code,
                     const char *reason)
{
    server *srv = ud;
    conn *c = sb_map_get(&srv->conns, conn_id);
    if (c) conn_close_ws(c, code, reason);
}

static void io_store(void *ud, sb_req *req)
{
    server *srv = ud;
    sb_webhook_attach(srv->wh, req);
    sb_storeq_submit(srv->storeq, req);
}

static int64_t io_now(void *ud)
{
    (void)ud;
    return wall_ms();
}

/* ---- the cluster (--nats) ----------------------------------------------- */

/* The NATS subject of a topic of the core's. */
static void topic_subject(char *out, sb_gw_topic t, const char *id)
{
    switch (t) {
    case SB_GW_TOPIC_USER:
        sb_nats_subject(out, "sb.u.", id);
        break;
    case SB_GW_TOPIC_NODE:
        sb_nats_subject(out, "sb.n.", id);
        break;
    case SB_GW_TOPIC_DESK:
        strcpy(out, "sb.desk");
        break;
    case SB_GW_TOPIC_ALL:
        strcpy(out, "sb.all");
        break;
    }
}

static void io_subscribe(void *ud, sb_gw_topic t, const char *id, bool on)
{
    server *srv = ud;
    char subj[SB_NATS_SUBJECT_MAX + 1];
    if (!srv->nats) return; /* stopped */
    topic_subject(subj, t, id);
    int rc = sb_nats_sub(srv->nats, subj, on);
    if (rc)
        sb_log(SB_LOG_WARN, "cluster_subscribe_failed", NULL,
               "cannot subscribe to %s: %s", subj, sb_strerror(rc));
}

static void io_publish(void *ud, sb_gw_topic t, const char *id,
                       const uint8_t *p, size_t n)
{
    server *srv = ud;
    char subj[SB_NATS_SUBJECT_MAX + 1];
    if (!srv->nats) return; /* stopped */
    topic_subject(subj, t, id);
    sb_nats_pub(srv->nats, subj, p, n);
}

static void nats_msg(void *ud, const char *subject, const uint8_t *p, size_t n)
{
    server *srv = ud;
    (void)subject;
    if (srv->gw) sb_gw_cluster_in(srv->gw, p, n, wall_ms());
}

/* The link is back: what the other nodes published meanwhile is read from
 * the store. */
static void nats_link(void *ud, bool up)
{
    server *srv = ud;
    sb_log(up ? SB_LOG_INFO : SB_LOG_WARN, up ? "cluster_up" : "cluster_down",
           NULL, up ? "connected to NATS (%s)" : "lost NATS (%s)",
           srv->cfg.nats);
    if (up && srv->gw) sb_gw_cluster_resync(srv->gw, wall_ms());
}

static void desk_owner(void *ud, bool own)
{
    server *srv = ud;
    sb_log(SB_LOG_INFO, own ? "desks_owned" : "desks_released", NULL,
           own ? "this node owns the desks now"
               : "this node no longer owns "
                 "the desks");
    sb_gw_cluster_own(srv->gw, own, wall_ms());
}

/* Joins the cluster of cfg.nats as node. */
static int cluster_start(server *srv)
{
    if (srv->cfg.gw.node) {
        snprintf(srv->node, sizeof srv->node, "%s", srv->cfg.gw.node);
    } else {
        char host[256] = "localhost";
        gethostname(host, sizeof host - 1);
        snprintf(srv->node, sizeof srv->node, "%.*s:%u",
                 (int)(sizeof srv->node - 7), host, srv->cfg.port);
    }
    sb_nats_config nc = {.loop = &srv->loop,
                         .urls = srv->cfg.nats,
                         .node = srv->node,
                         .on_msg = nats_msg,
                         .on_link = nats_link,
                         .ud = srv};
    int rc = sb_nats_start(&nc, &srv->nats);
    if (rc)
        sb_log(SB_LOG_ERROR, "cluster_failed", NULL, "cannot use --nats %s: %s",
               srv->cfg.nats, sb_strerror(rc));
    return rc;
}

/* ---- WebSocket phase ----------------------------------------------------- */

static void ws_on_msg(void *ud, bool text, const uint8_t *p, size_t n)
{
    conn *c = ud;
    (void)text;
    if (c->phase != PH_WS || !c->gw_open) return;
    sb_gw_conn_frame(conn_srv(c)->gw, c->id, p, n, wall_ms());
}

static void ws_rand(void *ud, uint8_t *p, size_t n)
{
    (void)ud;
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rand();
}

static const sb_ws_cbs WS_CBS = {.on_msg = ws_on_msg, .rand_bytes = ws_rand};

static void ws_feed(conn *c, const uint8_t *p, size_t n)
{
    if (sb_ws_feed(c->ws, p, n) != 0 && !c->closed && c->phase != PH_CLOSING) {
        c->phase = PH_CLOSING; /* protocol error: flush the close, drop */
        c->closing_ms = conn_now(conn_srv(c));
        c->close_timed = true;
        conn_timer_arm(c);
    }
    schedule_flush(c);
}

/* ---- HTTP phase ---------------------------------------------------------- */

static void http_reply_ex(conn *c, int status, const char *type,
                          const char *headers, const void *body, size_t n)
{
    sb_buf out = SB_BUF_INIT;
    if (sb_http_respond_ex(&out, status, type, headers, body, n) != 0) {
        sb_buf_free(&out);
        conn_abort(c);
        return;
    }
    c->phase = PH_CLOSING;
    c->close_after_write = true;
    c->api_wait = false;
    /* A peer that does not read its answer is dropped in time too. */
    c->closing_ms = conn_now(conn_srv(c));
    c->close_timed = true;
    conn_timer_arm(c);
    conn_write(c, &out);
}

static void http_reply(conn *c, int status, const char *type, const void *body,
                       size_t n)
{
    http_reply_ex(c, status, type, NULL, body, n);
}

/* A request the router may hand back as a WebSocket upgrade: the
 * connection, and the bytes read after the request, the peer's first
 * WebSocket bytes. */
typedef struct upgrade_ctx {
    conn *c;
    const sb_http_req *http;
    const uint8_t *rest;
    size_t rest_len;
} upgrade_ctx;

/* The router's answer function. */
static void route_answer(void *ud, int status, const char *type,
                         const char *headers, const void *body, size_t n)
{
    http_reply_ex(((upgrade_ctx *)ud)->c, status, type, headers, body, n);
}

/* ---- the media service's connection -------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void media_write(void *ud, sb_buf *b)
{
    conn *c = ud;
    if (c->closed) return;
    conn_write(c, b);
}

static void media_reading(void *ud, bool on)
{
    conn *c = ud;
    if (c->closed) return;
    if (on)
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    else
        uv_read_stop((uv_stream_t *)&c->tcp);
}

static size_t media_unsent(void *ud)
{
    return ((conn *)ud)->write_inflight;
}

static void media_done(void *ud)
{
    conn *c = ud;
    if (c->closed) return;
    c->phase = PH_CLOSING;
    c->close_after_write = true;
    conn_timer_arm(c); /* no deadline: the media service had its own */
    if (c->write_inflight == 0) conn_abort(c);
}

/* The router took the request for the media service: the connection is
 * the transfer's from now on, and what followed the headers its body's
 * first bytes. The request (the connection's, or the scratch's when it
 * came whole in one read) is read by sb_media_start only: on_read frees
 * or clears it after. A transfer has no deadline in the server's heap:
 * the media service keeps its own (sb_media_sweep, on_tick). */
static void route_media(void *ud)
{
    upgrade_ctx *u = ud;
    conn *c = u->c;
    server *srv = conn_srv(c);
    if (!srv->media) {
        static const char text[] = "this server keeps no uploads\n";
        http_reply(c, 503, "text/plain", text, sizeof text - 1);
        return;
    }
    sb_media_conn mc = {.ud = c,
                        .write = media_write,
                        .reading = media_reading,
                        .unsent = media_unsent,
                        .done = media_done};
    c->phase = PH_MEDIA;
    conn_timer_arm(c); /* out of the heap */
    int64_t now = wall_ms();
    c->xfer = sb_media_start(srv->media, u->http, &mc, now);
    if (!c->xfer) {
        c->phase = PH_HTTP;
        http_reply(c, 503, "text/plain", "out of memory\n", 14);
        return;
    }
    if (u->rest_len && !c->closed)
        sb_media_feed(c->xfer, u->rest, u->rest_len, now);
}

/* The router took the request's WebSocket upgrade: answer 101, hand the
 * connection to the core and feed it what followed the request. */
static void route_upgrade(void *ud, sb_encoding enc, const char *proto,
                          const sb_wsdeflate_params *deflate, const char *ext)
{
    upgrade_ctx *u = ud;
    conn *c = u->c;
    server *srv = conn_srv(c);
    sb_buf out = SB_BUF_INIT;
    sb_ws *ws = NULL;
    sb_ws_config wc = {.client = false,
                       .msg_bytes_max = srv->cfg.gw.frame_bytes_max,
                       .deflate = *deflate,
                       .deflate_min_bytes = srv->cfg.deflate_min_bytes};
    if (sb_http_respond_upgrade(&out, u->http->ws_key, proto, ext) != 0 ||
        sb_ws_new(srv->wsenv, &wc, &WS_CBS, c, &ws) != 0) {
        sb_buf_free(&out);
        conn_abort(c);
        return;
    }
    conn_count(c, -1);
    c->ws = ws;
    c->text = enc == SB_ENC_JSON;
    conn_count(c, +1);
    conn_write(c, &out);
    if (c->closed) return;
    c->phase = PH_WS;
    c->last_ping_ms = c->last_rx_ms;
    conn_timer_arm(c);
    int rc = sb_gw_conn_open(srv->gw, c->id, enc, wall_ms());
    if (rc != 0) {
        conn_close_ws(c, SB_WS_CLOSE_TRY_AGAIN, sb_strerror(rc));
        return;
    }
    c->gw_open = true;
    if (u->rest_len) ws_feed(c, u->rest, u->rest_len);
}

/* Moves the request in the server's scratch (its body too) to c, which
 * has none. 0 or -ENOMEM. */
static int scratch_to_conn(conn *c)
{
    server *srv = conn_srv(c);
    assert(!c->http);
    c->http = malloc(sizeof *c->http);
    if (!c->http) return -ENOMEM;
    sb_http_req_move(c->http, &srv->http_scratch);
    srv->http_scratch.body = NULL;
    srv->http_scratch.body_len = 0;
    return 0;
}

/* The REST API takes the request and answers it later (api_answer). */
static void route_api(void *ud)
{
    upgrade_ctx *u = ud;
    conn *c = u->c;
    server *srv = conn_srv(c);
    /* The API keeps the request until it answers: one parsed in the
     * scratch moves to the connection. */
    if (!c->http && scratch_to_conn(c) != 0) {
        http_reply(c, 503, "text/plain", "out of memory\n", 14);
        return;
    }
    c->api_wait = true;
    conn_timer_arm(c);
    sb_api_request(srv->api, c->id, c->http, wall_ms());
}

static void api_answer(void *ud, uint64_t conn_id, int status, const char *type,
                       const char *headers, const void *body, size_t n)
{
    server *srv = ud;
    conn *c = sb_map_get(&srv->conns, conn_id);
    if (c && !c->closed && c->phase == PH_HTTP)
        http_reply_ex(c, status, type, headers, body, n);
}

static uint64_t api_new_id(void *ud)
{
    return ++((server *)ud)->next_id;
}

static void http_request_done(conn *c, const sb_http_req *http,
                              const uint8_t *rest, size_t rest_len)
{
    server *srv = conn_srv(c);
    struct sockaddr_storage peer;
    upgrade_ctx u = {.c = c, .http = http, .rest = rest, .rest_len = rest_len};
    sb_route_req rq = {.cfg = &srv->routes,
                       .http = http,
                       .peer = peer_name(c, &peer),
                       .draining = srv->drain != DRAIN_OFF,
                       .store_down = !sb_storeq_healthy(srv->storeq),
                       .now_ms = wall_ms(),
                       .desk = sb_gw_desk(srv->gw),
                       .answer = route_answer,
                       .upgrade = route_upgrade,
                       .api = srv->api ? route_api : NULL,
                       .media = route_media,
                       .ud = &u};
    sb_routes_serve(&rq);
}

/* ---- reading ------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    conn *c = h->data;
    server *srv = conn_srv(c);
    /* One read buffer for the whole loop: reads are handled at once. */
    if (srv->rbuf_busy) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    srv->rbuf_busy = true;
    buf->base = (char *)srv->rbuf;
    buf->len = sizeof srv->rbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = s->data;
    server *srv = conn_srv(c);
    if (buf->base == (char *)srv->rbuf) srv->rbuf_busy = false;
    if (nread == 0) return;
    if (nread < 0) {
        conn_abort(c);
        return;
    }
    c->last_rx_ms = conn_now(srv);
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t n = (size_t)nread;
    if (c->tls) {
        /* The plaintext is handled before the next read: one buffer. */
        sb_buf out = SB_BUF_INIT;
        srv->tls_plain.len = 0;
        int rc = sb_tls_feed(c->tls, p, n, &srv->tls_plain, &out);
        conn_write_wire(c, &out);
        if (rc) {
            conn_abort(c); /* a failed handshake, or the peer's goodbye */
            return;
        }
        if (c->closed || srv->tls_plain.len == 0) return;
        p = srv->tls_plain.data;
        n = srv->tls_plain.len;
    }
    if (c->phase == PH_MEDIA) {
        sb_media_feed(c->xfer, p, n, wall_ms());
        return;
    }
    if (c->phase == PH_HTTP) {
        /* One request a connection: bytes after one the REST API has
         * yet to answer wait for the answer's close. */
        if (c->api_wait) return;
        /* A request mostly comes in one read: parsed in the scratch, it
         * costs the connection nothing; only a partial one is kept. */
        sb_http_req *r = c->http;
        if (!r) {
            r = &srv->http_scratch;
            sb_http_req_init(r);
        }
        long used = sb_http_req_feed(r, (const char *)p, n);
        if (used < 0) {
            http_reply(c, 400, "text/plain", "bad request\n", 12);
        } else if (r->complete) {
            http_request_done(c, r, p + used, n - (size_t)used);
            if (!c->api_wait && c->http) {
                sb_http_req_clear(c->http);
                free(c->http);
                c->http = NULL;
            }
        } else if (!c->http && scratch_to_conn(c) != 0) {
            conn_abort(c);
        }
        if (r == &srv->http_scratch) sb_http_req_clear(r);
        return;
    }
    if (c->ws && (c->phase == PH_WS || c->phase == PH_CLOSING))
        ws_feed(c, p, n);
}

/* Turns a new connection away: an HTTP answer, or with TLS (no handshake
 * yet to answer through) just the close. */
static void conn_refuse(conn *c, int status, const char *text)
{
    if (c->tls)
        conn_abort(c);
    else
        http_reply(c, status, "text/plain", text, strlen(text));
}

static void on_connection(uv_stream_t *l, int status)
{
    server *srv = l->data;
    if (status < 0) return;
    conn *c = calloc(1, sizeof *c);
    if (!c) return;
    uv_tcp_init(&srv->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        c->closed = true;
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    c->id = ++srv->next_id;
    c->phase = PH_HTTP;
    c->opened_ms = c->last_rx_ms = conn_now(srv);
    if (sb_map_put(&srv->conns, c->id, c) != 0) {
        c->closed = true;
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    if (srv->tls && sb_tls_new(srv->tls, NULL, &c->tls) != 0) {
        sb_map_del(&srv->conns, c->id);
        c->closed = true;
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    srv->n_conns++;
    srv->churn++;
    conn_count(c, +1);
    srv->mstats.accepted[c->tls != NULL]++;
    conn_timer_arm(c);
    struct sockaddr_storage peer;
    c->addr_key = sb_addr_key(peer_name(c, &peer));
    uintptr_t from_addr = addr_count(srv, c->addr_key, +1);
    c->addr_counted = from_addr != UINTPTR_MAX;
    if (srv->n_conns > srv->cfg.conns_max || srv->drain != DRAIN_OFF) {
        srv->mstats
            .refused[srv->drain != DRAIN_OFF ? SB_METRICS_REFUSED_DRAINING
                                             : SB_METRICS_REFUSED_FULL]++;
        conn_refuse(c, 503, "busy\n");
        return;
    }
    if (srv->cfg.conns_per_addr_max &&
        from_addr > srv->cfg.conns_per_addr_max) {
        srv->mstats.refused[SB_METRICS_REFUSED_PER_ADDR]++;
        conn_refuse(c, 429, "too many connections\n");
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- timers, signals, drain ---------------------------------------------- */

/* Gives the heap's free pages back once a burst of connections is over
 * (SRV_TRIM_CHURN): called every SRV_TRIM_CHECK_MS. */
static void heap_trim(server *srv)
{
#ifdef __GLIBC__
    if (srv->churn >= SRV_TRIM_CHURN && srv->churn == srv->churn_swept) {
        malloc_trim(0);
        srv->churn = 0;
    }
#endif
    srv->churn_swept = srv->churn;
}

static void on_tick(uv_timer_t *t)
{
    server *srv = t->data;
    int64_t now = wall_ms();
    sb_gw_tick(srv->gw, now);
    if (now - srv->trim_checked_ms >= SRV_TRIM_CHECK_MS) {
        srv->trim_checked_ms = now;
        heap_trim(srv);
    }
    /* The media service's deadlines (stalled uploads, peers that do not
     * read, the hourly sweep of unnamed blobs) are checked once a second. */
    if (srv->media && now - srv->media_swept_ms >= SRV_MEDIA_SWEEP_MS) {
        srv->media_swept_ms = now;
        sb_media_sweep(srv->media, now);
    }
}

/* A connection's deadline came: a request too slow, a session silent too
 * long, a ping due, a close handshake that does not finish. Deadlines
 * that moved meanwhile (bytes came in) only go back in the heap. */
static void conn_deadline_due(conn *c, uint32_t now)
{
    const sb_server_config *cfg = &conn_srv(c)->cfg;
    /* A request the REST API answers later has no deadline meanwhile. */
    if (c->phase == PH_HTTP && !c->api_wait &&
        (uint32_t)(now - c->opened_ms) >= cfg->handshake_ms) {
        conn_abort(c); /* slow or silent request */
        return;
    }
    if (c->phase == PH_WS) {
        if ((uint32_t)(now - c->last_rx_ms) >= cfg->idle_ms) {
            conn_close_ws(c, SB_WS_CLOSE_GOING_AWAY, "idle timeout");
            return;
        }
        if ((uint32_t)(now - c->last_ping_ms) >= cfg->gw.heartbeat_ms) {
            c->last_ping_ms = now;
            sb_ws_ping(c->ws);
            schedule_flush(c);
        }
    } else if (c->phase == PH_CLOSING && c->close_timed &&
               (uint32_t)(now - c->closing_ms) >= SRV_CLOSE_WAIT_MS) {
        conn_abort(c); /* a peer that never lets the close finish */
        return;
    }
    conn_timer_arm(c);
}

/* The one timer of the connections' deadlines: each connection whose
 * deadline has come is handled, then the timer waits for the next. */
static void on_deadline(uv_timer_t *t)
{
    server *srv = t->data;
    srv->deadline_armed = false;
    uint32_t now = conn_now(srv);
    /* Each handled connection leaves the heap or moves past now. */
    for (size_t k = srv->deadlines.len; k > 0; k--) {
        sb_dheap_node *top = sb_dheap_top(&srv->deadlines);
        if (!top || sb_dheap_before(now, top->due_ms)) break;
        conn *c = conn_of_deadline(top);
        conn_deadline_due(c, now);
        if (top->pos && !sb_dheap_before(now, top->due_ms))
            sb_dheap_remove(&srv->deadlines, top); /* cannot happen */
    }
    deadline_timer_arm(srv);
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Stops the store and closes the loop's own handles: with every
 * connection gone, the loop runs dry. */
static void server_stop(server *srv)
{
    sb_media_close(srv->media); /* freed once its last transfer is */
    srv->media = NULL;
    close_handle((uv_handle_t *)&srv->listener);
    sb_webhook_stop(srv->wh);
    sb_opsport_close(srv->ops);
    srv->ops = NULL;
    sb_notify_close(srv->notify);
    srv->notify = NULL;
    sb_storeq_stop(srv->storeq);
    srv->storeq = NULL;
    sb_deskown_stop(srv->deskown);
    srv->deskown = NULL;
    sb_nats_stop(srv->nats); /* the core publishes nothing more */
    srv->nats = NULL;
    uv_timer_stop(&srv->drain_timer);
    close_handle((uv_handle_t *)&srv->drain_timer);
    close_handle((uv_handle_t *)&srv->tick);
    uv_timer_stop(&srv->deadline_timer);
    close_handle((uv_handle_t *)&srv->deadline_timer);
    close_handle((uv_handle_t *)&srv->check);
    close_handle((uv_handle_t *)&srv->sigterm);
    close_handle((uv_handle_t *)&srv->sigint);
    close_handle((uv_handle_t *)&srv->sighup);
}

static void drain_enter(server *srv, drain_stage stage, int64_t now)
{
    static const char *const names[] = {"off", "store", "sessions", "abort",
                                        "stopped"};
    _Static_assert(sizeof names / sizeof *names == DRAIN_STOPPED + 1,
                   "a name per drain stage");
    /* Where a slow drain spends its time. */
    if (srv->drain != DRAIN_OFF)
        sb_log(SB_LOG_INFO, "drain_stage", NULL,
               "%s, %" PRId64 " ms after the stage before; %zu connections",
               names[stage], now - srv->drain_started_ms, srv->n_conns);
    srv->drain = stage;
    srv->drain_started_ms = now;
}

/* The drain's timer: moves through the stages of drain_stage. */
static void on_drain(uv_timer_t *t)
{
    server *srv = t->data;
    int64_t now = wall_ms();
    int64_t waited = now - srv->drain_started_ms;
    switch (srv->drain) {
    case DRAIN_STORE:
        if (sb_gw_store_inflight(srv->gw) > 0 && waited < srv->cfg.drain_ms_max)
            return;
        sb_gw_close_all(srv->gw, SB_WS_CLOSE_GOING_AWAY,
                        "server shutting down");
        drain_enter(srv, DRAIN_SESSIONS, now);
        return;
    case DRAIN_SESSIONS:
        if (srv->n_conns > 0 && waited < SRV_CLOSE_WAIT_MS) return;
        close_handle((uv_handle_t *)&srv->listener);
        for (size_t i = 0; i < srv->conns.cap; i++)
            if (conn_slot(srv, i)) conn_abort(conn_slot(srv, i));
        drain_enter(srv, DRAIN_ABORT, now);
        return;
    case DRAIN_ABORT:
        if (srv->n_conns > 0) return;
        server_stop(srv);
        drain_enter(srv, DRAIN_STOPPED, now);
        return;
    case DRAIN_OFF:
    case DRAIN_STOPPED:
        break;
    }
    assert(!"the drain timer runs only while draining");
}

/* ---- reloads ------------------------------------------------------------- */

static void reload_log(void *ud, bool error, const char *line)
{
    (void)ud;
    sb_log(error ? SB_LOG_ERROR : SB_LOG_INFO, "reload", NULL, "%s", line);
}

/* The core's session events, as log lines. */
static void io_event(void *ud, const sb_gw_event *e)
{
    (void)ud;
    bool refused = strcmp(e->event, "request_refused") == 0;
    /* Refusals are the clients' business unless the server failed. */
    sb_log_level level = !refused ? SB_LOG_INFO
                         : e->code == SBP__ERROR_CODE__ERR_STORE ||
                                 e->code == SBP__ERROR_CODE__ERR_INTERNAL
                             ? SB_LOG_WARN
                             : SB_LOG_DEBUG;
    if (!sb_log_enabled(level)) return;
    sb_log_ids ids = {.session = e->session,
                      .user = e->user,
                      .device = e->device,
                      .conv = e->conv,
                      .request = e->rid};
    const ProtobufCEnumValue *code =
        refused ? protobuf_c_enum_descriptor_get_value(
                      &sbp__error_code__descriptor, e->code)
                : NULL;
    if (refused)
        sb_log(level, e->event, &ids, "%s: %s", code ? code->name : "?",
               e->text);
    else if (e->code)
        sb_log(level, e->event, &ids, "%d %s", e->code, e->text);
    else
        sb_log(level, e->event, &ids, "%s", e->text);
}

/* The numbers of the operations port, copied now (sb_metrics). */
static void ops_snapshot(void *ud, sb_metrics_snap *s)
{
    server *srv = ud;
    memset(s, 0, sizeof *s);
    s->now_ms = wall_ms();
    s->draining = srv->drain != DRAIN_OFF;
    s->sqlite = !srv->cfg.store && strcmp(srv->cfg.data_dir, ":memory:") != 0;
    if (s->sqlite)
        snprintf(s->db_path, sizeof s->db_path, "%s/switchboard.db",
                 srv->cfg.data_dir);
    s->shell = srv->mstats;
    sb_ws_env_get_stats(srv->wsenv, &s->shell.ws);
    sb_gw_get_stats(srv->gw, &s->gw);
    s->have_store = srv->storeq != NULL;
    if (srv->storeq) sb_storeq_get_stats(srv->storeq, &s->store);
    sb_metrics_take_desk(s, sb_gw_desk(srv->gw));
    if (srv->cfg.nats) {
        s->cluster = true;
        s->desk_owner = sb_gw_cluster_owner(srv->gw);
        if (srv->nats) sb_nats_get_stats(srv->nats, &s->nats);
    }
    if (srv->media) {
        s->media = true;
        sb_media_get_stats(srv->media, &s->media_stats);
    }
}

/* An admin's command from the core: reloads and desk ops (sb_reload). */
static int io_admin(void *ud, uint64_t conn, uint32_t rid, const char *op,
                    const char *body)
{
    server *srv = ud;
    if (strncmp(op, "webhooks-", 9) == 0)
        return sb_webhook_admin(srv->wh, conn, rid, op, body);
    int rc = sb_dataops_admin(srv->data, conn, rid, op, body);
    if (rc != SB_E_INVALID) return rc;
    return sb_reload_admin(srv->reload, conn, rid, op, body);
}

static void on_sighup(uv_signal_t *h, int signum)
{
    (void)signum;
    sb_reload_all(((server *)h->data)->reload);
}

static void on_signal(uv_signal_t *h, int signum)
{
    server *srv = h->data;
    if (srv->drain != DRAIN_OFF) return;
    sb_log(SB_LOG_INFO, "draining", NULL, "signal %d: draining", signum);
    sb_notify_stopping(srv->notify);
    if (srv->media) sb_media_drain(srv->media);
    drain_enter(srv, DRAIN_STORE, wall_ms());
    /* The listener stays open until the sessions are gone: a connection
     * made meanwhile is answered 503 (on_connection), not refused. */
    sb_gw_drain(srv->gw);
    sb_reload_drain(srv->reload);
    sb_deskown_release(srv->deskown); /* another node takes the desks */
    uv_timer_start(&srv->drain_timer, on_drain, 0, SRV_DRAIN_POLL_MS);
}

/* Erasure's part for uploads: their bytes (sb_media). */
static void *media_erased(void *ud, const char *user_id,
                          const sb_store_erased *e)
{
    server *srv = ud;
    return srv->media ? sb_media_erased(srv->media, user_id, e->uploads) : NULL;
}

/* The media service, unless the store is in memory (no place for
 * blobs): uploads arrive in DATA/media/tmp whatever the store. */
static int media_start(server *srv, const char *store_path)
{
    const sb_server_config *cfg = &srv->cfg;
    if (strcmp(store_path, ":memory:") == 0 || cfg->media.bytes_max == 0)
        return 0;
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s/media/tmp", cfg->data_dir);
    mkdir(cfg->data_dir, 0700);
    sb_media_config mc = cfg->media;
    mc.loop = &srv->loop;
    mc.storeq = srv->storeq;
    mc.tmp_dir = tmp;
    mc.secret = cfg->gw.secret;
    mc.secret_len = cfg->gw.secret_len;
    mc.token_iss = cfg->gw.token_iss;
    mc.token_aud = cfg->gw.token_aud;
    mc.token_skew_s = cfg->gw.token_skew_s;
    mc.origins = cfg->origins;
    mc.n_origins = cfg->n_origins;
    int rc = sb_media_new(&mc, &srv->media);
    if (rc == 0 && srv->data)
        sb_dataops_set_erase_hook(srv->data, media_erased, srv);
    if (rc)
        sb_log(SB_LOG_ERROR, "media_failed", NULL,
               "cannot start the media service in %s: %s", tmp,
               rc == -ENOENT ? "no libmagic database" : strerror(-rc));
    return rc;
}

int sb_server_run(const sb_server_config *cfg,
                  void (*on_ready)(const sb_server_ports *ports))
{
    server *srv = calloc(1, sizeof *srv);
    if (!srv) return -ENOMEM;
    srv->cfg = *cfg;
    srv->routes = (sb_routes_config){.web_dir = cfg->web_dir,
                                     .origins = cfg->origins,
                                     .n_origins = cfg->n_origins,
                                     .deflate = cfg->deflate,
                                     .demo = {.on = cfg->demo,
                                              .secret = cfg->gw.secret,
                                              .secret_len = cfg->gw.secret_len,
                                              .token_iss = cfg->gw.token_iss,
                                              .token_aud = cfg->gw.token_aud}};
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)wall_ms());
    int rc = uv_loop_init(&srv->loop);
    if (rc) goto out_free;
    srv->loop.data = srv;
    rc = sb_ws_env_new(NULL, &srv->wsenv);
    if (rc) goto out_loop;
    if (cfg->tls_cert) {
        char err[512];
        rc = sb_tls_ctx_server(cfg->tls_cert, cfg->tls_key, err, sizeof err,
                               &srv->tls);
        if (rc) {
            sb_log(SB_LOG_ERROR, "tls_failed", NULL, "cannot set up TLS: %s",
                   err);
            goto out_loop;
        }
    }

    char path[1024], where[256];
    if (cfg->store)
        snprintf(path, sizeof path, "%s", cfg->store);
    else if (strcmp(cfg->data_dir, ":memory:") == 0)
        snprintf(path, sizeof path, ":memory:");
    else
        snprintf(path, sizeof path, "%s/switchboard.db", cfg->data_dir);
    if (!cfg->store && strcmp(path, ":memory:") != 0)
        mkdir(cfg->data_dir, 0700);
    sb_store_describe(path, where, sizeof where); /* no password in logs */
    rc = sb_storeq_start_writers(&srv->loop, path, cfg->durability,
                                 (int)cfg->store_writers, &srv->storeq);
    if (rc) {
        sb_log(SB_LOG_ERROR, "store_failed", NULL, "cannot open store %s: %s",
               where, sb_strerror(rc));
        goto out_loop;
    }
    sb_gw_io io = {.ud = srv,
                   .send = io_send,
                   .close = io_close,
                   .store = io_store,
                   .now = io_now,
                   .admin = io_admin,
                   .event = io_event};
    sb_gw_config gwc = cfg->gw;
    /* A reply page leaves room beside it for the pushes queued meanwhile,
     * under the bound on a connection's unsent bytes. */
    gwc.page_bytes_max = cfg->out_bytes_max / 2;
    if (cfg->nats) {
        if ((rc = cluster_start(srv)) != 0) goto out_store;
        io.subscribe = io_subscribe;
        io.publish = io_publish;
        gwc.node = srv->node;
    }
    sb_reload_config rlc = {.loop = &srv->loop,
                            .storeq = srv->storeq,
                            .filter_dir = cfg->filter_dir,
                            .desk_file = cfg->desk_file,
                            .log = reload_log,
                            .log_ud = srv};
    rc = sb_reload_new(&rlc, &srv->reload);
    if (rc == 0) rc = sb_reload_start(srv->reload, &gwc.desk);
    if (rc) goto out_store;
    /* WELCOME tells whether uploads are taken (not by a store in memory,
     * which has no place for their bytes). */
    if (strcmp(path, ":memory:") == 0) gwc.media_bytes_max = 0;
    gwc.filter_get = sb_reload_filter;
    gwc.filter_ud = srv->reload;
    rc = sb_webhook_start(&srv->loop, srv->storeq, &srv->wh);
    if (rc == 0) rc = sb_dataops_new(srv->storeq, &srv->data);
    if (rc == 0) rc = sb_gw_new(&gwc, &io, &srv->gw);
    if (rc) goto out_store;
    sb_reload_set_gw(srv->reload, srv->gw);
    sb_webhook_set_gw(srv->wh, srv->gw);
    sb_dataops_set_gw(srv->data, srv->gw);
    sb_api_config apc = {.secret = srv->gw ? cfg->gw.secret : NULL,
                         .secret_len = cfg->gw.secret_len,
                         .token_iss = cfg->gw.token_iss,
                         .token_aud = cfg->gw.token_aud,
                         .token_skew_s = cfg->gw.token_skew_s,
                         .rate_per_s = cfg->api_rate_per_s,
                         .rate_burst = cfg->api_rate_burst};
    sb_api_io api_io = {.ud = srv, .answer = api_answer, .new_id = api_new_id};
    rc = sb_api_new(&apc, &api_io, srv->gw, &srv->api);
    if (rc) goto out_gw;
    sb_gw_start(srv->gw, wall_ms());
    /* Once the core is there to take the desks over. */
    if (cfg->nats && (rc = sb_deskown_start(&srv->loop, cfg->store, desk_owner,
                                            srv, &srv->deskown)) != 0)
        goto out_gw;
    if ((rc = media_start(srv, path))) goto out_gw;

    struct sockaddr_storage addr;
    rc = uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&addr);
    if (rc)
        rc = uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&addr);
    if (rc) goto out_gw;
    uv_tcp_init(&srv->loop, &srv->listener);
    srv->listener.data = srv;
    rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&addr, 0);
    if (!rc) rc = uv_listen((uv_stream_t *)&srv->listener, 4096, on_connection);
    if (rc) {
        sb_log(SB_LOG_ERROR, "listen_failed", NULL,
               "cannot listen on %s:%u: %s", cfg->host, cfg->port,
               uv_strerror(rc));
        uv_close((uv_handle_t *)&srv->listener, NULL);
        uv_run(&srv->loop, UV_RUN_NOWAIT);
        goto out_gw;
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &blen);
    sb_server_ports ports = {
        .port = ntohs(((struct sockaddr_in *)&bound)->sin_port)};
    if (cfg->admin) {
        sb_opsport_config oc = {.loop = &srv->loop,
                                .host = cfg->admin_host,
                                .port = cfg->admin_port,
                                .snapshot = ops_snapshot,
                                .ud = srv};
        rc = sb_opsport_start(&oc, &srv->ops, &ports.admin_port);
        if (rc) {
            sb_log(SB_LOG_ERROR, "listen_failed", NULL,
                   "cannot listen on %s:%u (--admin-listen): %s",
                   cfg->admin_host, cfg->admin_port, uv_strerror(rc));
            uv_close((uv_handle_t *)&srv->listener, NULL);
            uv_run(&srv->loop, UV_RUN_NOWAIT);
            goto out_gw;
        }
    }
    if ((rc = sb_notify_start(&srv->loop, &srv->notify)) != 0) {
        sb_opsport_close(srv->ops);
        uv_close((uv_handle_t *)&srv->listener, NULL);
        uv_run(&srv->loop, UV_RUN_NOWAIT);
        goto out_gw;
    }

    uv_timer_init(&srv->loop, &srv->tick);
    uv_timer_init(&srv->loop, &srv->drain_timer);
    uv_timer_init(&srv->loop, &srv->deadline_timer);
    srv->deadline_timer.data = srv;
    uv_check_init(&srv->loop, &srv->check);
    uv_signal_init(&srv->loop, &srv->sigterm);
    uv_signal_init(&srv->loop, &srv->sigint);
    uv_signal_init(&srv->loop, &srv->sighup);
    srv->tick.data = srv->drain_timer.data = srv;
    srv->check.data = srv->sigterm.data = srv->sigint.data = srv;
    srv->sighup.data = srv;
    uv_timer_start(&srv->tick, on_tick, SRV_TICK_MS, SRV_TICK_MS);
    uv_check_start(&srv->check, on_check);
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv->sigint, on_signal, SIGINT);
    uv_signal_start(&srv->sighup, on_sighup, SIGHUP);

    char status[512];
    snprintf(status, sizeof status,
             "listening on %s:%u (store %s, durability %s)", cfg->host,
             ports.port, where,
             cfg->durability == SB_DURABILITY_FSYNC ? "fsync" : "os");
    sb_log(SB_LOG_INFO, "listening", NULL, "%s", status);
    if (ports.admin_port)
        sb_log(SB_LOG_INFO, "admin_listening", NULL,
               "operations port on %s:%u (/metrics, /readyz, /healthz)",
               cfg->admin_host, ports.admin_port);
    sb_notify_ready(srv->notify, status);
    if (on_ready) on_ready(&ports);
    uv_run(&srv->loop, UV_RUN_DEFAULT);
    rc = 0;
    sb_gw_stats *st = malloc(sizeof *st); /* large for a stack */
    if (st) {
        sb_gw_get_stats(srv->gw, st);
        sb_log(SB_LOG_INFO, "stopped", NULL,
               "%llu messages pushed in %llu PUSH frames, %llu pushed again",
               (unsigned long long)st->pushes,
               (unsigned long long)st->push_frames,
               (unsigned long long)st->retries);
        free(st);
    }
out_gw:
    sb_media_close(srv->media);
    srv->media = NULL;
    sb_webhook_stop(srv->wh);
    if (srv->storeq) {
        sb_storeq_stop(srv->storeq);
        srv->storeq = NULL;
    }
    sb_api_free(srv->api);
    sb_gw_free(srv->gw);
out_store:
    sb_deskown_stop(srv->deskown);
    sb_webhook_stop(srv->wh);
    sb_nats_stop(srv->nats);
    sb_storeq_stop(srv->storeq);
    srv->storeq = NULL;
    /* After the gateway that used its desk; no reload runs: the loop ran
     * dry. */
    sb_reload_free(srv->reload);
out_loop:
    uv_run(&srv->loop, UV_RUN_DEFAULT);
    uv_loop_close(&srv->loop);
    sb_webhook_free(srv->wh); /* its handles closed, its requests done */
    sb_dataops_free(srv->data);
out_free:
    sb_map_free(&srv->conns);
    sb_dheap_free(&srv->deadlines);
    sb_map_free(&srv->addrs);
    sb_tls_ctx_free(srv->tls);
    sb_buf_free(&srv->tls_plain);
    sb_ws_env_free(srv->wsenv);
    free(srv->flushq);
    free(srv);
    return rc;
}
