/* The libuv transport of the client SDK: it resolves and connects (to the
 * URL of the list the core names, from the configured source address if
 * any), does the HTTP upgrade (sb_client_hs),
 * frames with sb_ws, writes with try-write then one queued write, and
 * drives sb_client_core with reads, a periodic tick and close events. One
 * connection object per attempt, so a closing socket never mixes with its
 * successor. */
#include "sb_client.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "sb_b64.h"
#include "sb_client_hs.h"
#include "sb_client_upload.h"
#include "sb_error.h"
#include "sb_tls.h"
#include "sb_ws.h"

#define READ_BUF_BYTES (64 * 1024)
#define IDLE_BUF_BYTES (16 * 1024) /* larger idle buffers are released */
/* An upload that moves no byte for this long is given up (and tried
 * again by the core). */
#define UPLOAD_IDLE_MS 30000

enum { PH_RESOLVE = 0, PH_CONNECT, PH_UPGRADE, PH_OPEN };

typedef struct conn {
    sb_client *c;
    const sb_client_url *url; /* of c->urls: where this attempt goes */
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_getaddrinfo_t gai;
    uv_write_t wreq;
    sb_ws *ws;
    sb_buf rx;    /* the handshake response so far */
    sb_buf pend;  /* bytes to write */
    sb_buf wbuf;  /* bytes being written by uv_write */
    sb_tls *tls;  /* wss:// */
    sb_buf plain; /* wss: plaintext not yet through tls (then into pend) */
    sb_buf tin;   /* wss: plaintext of the read being handled */
    char key[SB_WS_KEY_LEN + 1];
    int phase;
    int err;             /* why it failed (reported on close) */
    uint16_t close_code; /* the peer's close code */
    bool gai_pending, writing, closing, tcp_closed;
    bool deflate;         /* the server took permessage-deflate */
    uint16_t finish_code; /* io_close came from inside sb_ws_feed */
} conn;

struct sb_client {
    uv_loop_t *loop;
    sb_ws_env *wsenv; /* its loop's (wsenv_hold) */
    sb_client_core *core;
    sb_client_url *urls; /* parsed, in the configured order */
    size_t n_urls;
    sb_tls_ctx *tls; /* when any URL is wss:// */
    void *ud;        /* the application's, for on_closed */
    uv_timer_t timer;
    conn *conn; /* the connection the core knows of, or NULL */
    uint64_t rng[4];
    int busy;   /* inside a transport-driven core call: flush later */
    int nconns; /* connection objects not yet freed */
    uint32_t tick_ms, out_bytes_max, frame_bytes_max, deflate_min_bytes;
    bool text, started, closing, timer_closed;
    bool deflate; /* offer permessage-deflate */
    bool in_feed; /* inside sb_ws_feed: the ws may only queue */
    void (*on_closed)(void *ud);
    char *token;                     /* for uploads' Authorization */
    struct sockaddr_storage *source; /* cfg.source_addr, port 0; or NULL */
    struct upl *uploads;             /* in progress */
};

/* An upload in progress, for the send client_msg_id. */
typedef struct upl {
    sb_client *c;
    sb_upload *u;
    uint8_t id[SB_CLIENT_MSG_ID_BYTES];
    struct upl *next;
} upl;

static void client_flush(sb_client *c);

/* The WebSocket environment (sb_ws_env) the clients of one loop share:
 * made with its first client, freed with its last. By loop, not by
 * thread: a loop's clients may be closed on another thread than the one
 * that made them (one at a time, as libuv requires), so the registry of
 * loops takes a lock; an environment itself is used by its loop only. */
typedef struct loop_env {
    uv_loop_t *loop;
    sb_ws_env *env;
    size_t clients;
    struct loop_env *next;
} loop_env;

static loop_env *g_loop_envs;
static pthread_mutex_t g_loop_envs_mu = PTHREAD_MUTEX_INITIALIZER;

static sb_ws_env *wsenv_hold(uv_loop_t *loop)
{
    pthread_mutex_lock(&g_loop_envs_mu);
    loop_env *e = g_loop_envs;
    while (e && e->loop != loop)
        e = e->next;
    if (!e && (e = calloc(1, sizeof *e)) != NULL) {
        if (sb_ws_env_new(NULL, &e->env) != 0) {
            free(e);
            e = NULL;
        } else {
            e->loop = loop;
            e->next = g_loop_envs;
            g_loop_envs = e;
        }
    }
    if (e) e->clients++;
    pthread_mutex_unlock(&g_loop_envs_mu);
    return e ? e->env : NULL;
}

static void wsenv_release(uv_loop_t *loop)
{
    pthread_mutex_lock(&g_loop_envs_mu);
    loop_env **pe = &g_loop_envs;
    while (*pe && (*pe)->loop != loop)
        pe = &(*pe)->next;
    loop_env *e = *pe;
    assert(e && e->clients > 0);
    if (--e->clients == 0) {
        *pe = e->next;
        sb_ws_env_free(e->env);
        free(e);
    }
    pthread_mutex_unlock(&g_loop_envs_mu);
}
static void conn_fail(conn *k, int err);
static void conn_finish(conn *k, uint16_t code);

/* ---- randomness: xoshiro256**, seeded from the kernel -------------------- */

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(uint64_t s[4])
{
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

static void rng_seed(uint64_t s[4])
{
    if (getrandom(s, 4 * sizeof *s, 0) != (ssize_t)(4 * sizeof *s)) {
        /* Without getrandom: time and address, still distinct per client. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30);
        s[1] = (uint64_t)(uintptr_t)s;
        s[2] = 0x9e3779b97f4a7c15ull;
        s[3] = (uint64_t)getpid();
    }
    if (!(s[0] | s[1] | s[2] | s[3])) s[0] = 1;
}

static void rand_fill(sb_client *c, uint8_t *p, size_t n)
{
    while (n) {
        uint64_t r = rng_next(c->rng);
        size_t k = n < sizeof r ? n : sizeof r;
        memcpy(p, &r, k);
        p += k;
        n -= k;
    }
}

/* ---- connection objects -------------------------------------------------- */

static int64_t now_ms(const sb_client *c)
{
    return (int64_t)uv_now(c->loop);
}

static void client_maybe_free(sb_client *c)
{
    if (!c->closing || !c->timer_closed || c->nconns) return;
    void (*cb)(void *) = c->on_closed;
    void *ud = c->ud;
    uv_loop_t *loop = c->loop;
    free(c->token);
    free(c->source);
    sb_client_core_free(c->core);
    sb_tls_ctx_free(c->tls);
    free(c->urls);
    free(c);
    wsenv_release(loop);
    if (cb) cb(ud);
}

static void conn_maybe_free(conn *k)
{
    if (!k->tcp_closed || k->gai_pending || k->writing) return;
    sb_client *c = k->c;
    sb_ws_free(k->ws);
    sb_buf_free(&k->rx);
    sb_buf_free(&k->pend);
    sb_buf_free(&k->wbuf);
    sb_tls_free(k->tls);
    sb_buf_free(&k->plain);
    sb_buf_free(&k->tin);
    free(k);
    c->nconns--;
    client_maybe_free(c);
}

static void on_tcp_close(uv_handle_t *h)
{
    conn *k = h->data;
    sb_client *c = k->c;
    k->tcp_closed = true;
    if (c->conn == k) {
        /* A failure the core has not heard of yet: tell it now. */
        c->conn = NULL;
        c->busy++;
        sb_client_core_on_close(c->core, k->err, k->close_code, now_ms(c));
        c->busy--;
        client_flush(c);
    }
    conn_maybe_free(k);
}

static void conn_close(conn *k)
{
    if (k->closing) return;
    k->closing = true;
    if (k->gai_pending) uv_cancel((uv_req_t *)&k->gai);
    uv_read_stop((uv_stream_t *)&k->tcp);
    uv_close((uv_handle_t *)&k->tcp, on_tcp_close);
}

/* The connection broke: close it and report to the core from the close
 * callback (never from within a call the core made). */
static void conn_fail(conn *k, int err)
{
    if (k->closing) return;
    /* The server's close frame explains the end better than whatever
     * write failed after it (wslay refuses new frames once it has
     * answered a close: -EPIPE). */
    if (k->ws && sb_ws_close_received(k->ws)) {
        k->close_code = sb_ws_close_code(k->ws);
        err = 0;
    }
    k->err = err;
    conn_close(k);
}

static void on_write(uv_write_t *req, int status)
{
    conn *k = req->data;
    k->writing = false;
    k->wbuf.len = 0;
    if (k->wbuf.cap > IDLE_BUF_BYTES) sb_buf_free(&k->wbuf);
    if (k->closing) {
        conn_maybe_free(k);
        return;
    }
    if (status < 0) {
        conn_fail(k, status);
        return;
    }
    if (k->pend.len) {
        /* More came while writing. */
        sb_buf t = k->wbuf;
        k->wbuf = k->pend;
        k->pend = t;
        uv_buf_t b = uv_buf_init((char *)k->wbuf.data, (unsigned)k->wbuf.len);
        int rc = uv_write(&k->wreq, (uv_stream_t *)&k->tcp, &b, 1, on_write);
        if (rc) {
            k->wbuf.len = 0;
            conn_fail(k, rc);
            return;
        }
        k->writing = true;
    }
}

/* Where the bytes to send go: pend, or before it TLS's plaintext. */
static sb_buf *conn_out(conn *k)
{
    return k->tls ? &k->plain : &k->pend;
}

/* wss: moves the plaintext through TLS onto pend. */
static int conn_encrypt(conn *k)
{
    if (!k->tls || k->plain.len == 0) return 0;
    int rc = sb_tls_write(k->tls, k->plain.data, k->plain.len, &k->pend);
    k->plain.len = 0;
    if (k->plain.cap > IDLE_BUF_BYTES) sb_buf_free(&k->plain);
    return rc;
}

/* Writes pend: directly if the socket takes it, else through uv_write. */
static void conn_write(conn *k)
{
    if (k->closing) return;
    int erc = conn_encrypt(k);
    if (erc) {
        conn_fail(k, erc);
        return;
    }
    if (k->writing || k->pend.len == 0) return;
    if (k->pend.len > k->c->out_bytes_max) {
        conn_fail(k, -ENOBUFS);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)k->pend.data, (unsigned)k->pend.len);
    int n = uv_try_write((uv_stream_t *)&k->tcp, &b, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS) n = 0;
    if (n < 0) {
        conn_fail(k, n);
        return;
    }
    sb_buf_consume(&k->pend, (size_t)n);
    if (k->pend.len == 0) {
        if (k->pend.cap > IDLE_BUF_BYTES) sb_buf_free(&k->pend);
        return;
    }
    sb_buf t = k->wbuf;
    k->wbuf = k->pend;
    k->pend = t;
    k->pend.len = 0;
    b = uv_buf_init((char *)k->wbuf.data, (unsigned)k->wbuf.len);
    k->wreq.data = k;
    int rc = uv_write(&k->wreq, (uv_stream_t *)&k->tcp, &b, 1, on_write);
    if (rc) {
        k->wbuf.len = 0;
        conn_fail(k, rc);
        return;
    }
    k->writing = true;
}

/* Moves the core's frames into the WebSocket and onto the socket. */
static void client_flush(sb_client *c)
{
    if (c->busy) return;
    conn *k = c->conn;
    const uint8_t *p;
    size_t n;
    if (!k || k->closing || k->phase != PH_OPEN) {
        while (sb_client_core_next_frame(c->core, &p, &n)) {
        }
        return;
    }
    while (sb_client_core_next_frame(c->core, &p, &n)) {
        int rc = sb_ws_send(k->ws, c->text, p, n);
        if (rc) {
            conn_fail(k, rc);
            return;
        }
    }
    if (sb_ws_pull(k->ws, conn_out(k)) != 0) {
        conn_fail(k, -ENOMEM);
        return;
    }
    conn_write(k);
    if (!k->closing && sb_ws_done(k->ws)) {
        k->close_code = sb_ws_close_code(k->ws);
        conn_fail(k, k->close_code ? 0 : -EPROTO);
    }
}

/* ---- WebSocket and reading ----------------------------------------------- */

static void ws_on_msg(void *ud, bool text, const uint8_t *p, size_t n)
{
    (void)text;
    conn *k = ud;
    sb_client *c = k->c;
    if (c->conn != k || k->closing) return;
    sb_client_core_on_frame(c->core, p, n, now_ms(c));
}

static void ws_rand(void *ud, uint8_t *p, size_t n)
{
    conn *k = ud;
    rand_fill(k->c, p, n);
}

static void conn_feed(conn *k, const uint8_t *p, size_t n)
{
    sb_client *c = k->c;
    c->busy++;
    c->in_feed = true;
    int rc = sb_ws_feed(k->ws, p, n);
    c->in_feed = false;
    c->busy--;
    if (k->finish_code && !k->closing) {
        conn_finish(k, k->finish_code);
        return;
    }
    if (c->conn != k || k->closing) return;
    if (rc) {
        client_flush(c); /* the close frame wslay queued, best effort */
        conn_fail(k, rc);
        return;
    }
    client_flush(c);
}

/* Reads are consumed before the next alloc: one buffer per thread. */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static _Thread_local char rbuf[READ_BUF_BYTES];
    (void)h;
    (void)hint;
    *buf = uv_buf_init(rbuf, sizeof rbuf);
}

static void upgrade_done(conn *k, size_t head,
                         const sb_wsdeflate_params *deflate)
{
    sb_client *c = k->c;
    sb_ws_cbs wc = {.on_msg = ws_on_msg, .rand_bytes = ws_rand};
    sb_ws_config cfg = {.client = true,
                        .msg_bytes_max = c->frame_bytes_max,
                        .deflate = *deflate,
                        .deflate_min_bytes = c->deflate_min_bytes};
    int rc = sb_ws_new(c->wsenv, &cfg, &wc, k, &k->ws);
    if (rc) {
        conn_fail(k, rc);
        return;
    }
    k->deflate = deflate->on;
    k->phase = PH_OPEN;
    c->busy++;
    sb_client_core_on_open(c->core, now_ms(c));
    c->busy--;
    if (c->conn != k || k->closing) return;
    client_flush(c);
    sb_buf rest = k->rx;
    k->rx = (sb_buf)SB_BUF_INIT;
    if (rest.len > head && c->conn == k && !k->closing)
        conn_feed(k, rest.data + head, rest.len - head);
    sb_buf_free(&rest);
}

/* Bytes from the server, in the clear. */
static void conn_input(conn *k, const uint8_t *p, size_t n)
{
    sb_client *c = k->c;
    if (k->phase == PH_OPEN) {
        conn_feed(k, p, n);
        return;
    }
    size_t room = SB_CLIENT_HS_BYTES_MAX + READ_BUF_BYTES - k->rx.len;
    if (n > room || sb_buf_append(&k->rx, p, n) != 0) {
        conn_fail(k, -EMSGSIZE);
        return;
    }
    int status;
    sb_wsdeflate_params deflate;
    int rc =
        sb_client_hs_response(k->rx.data, k->rx.len, k->key,
                              c->text ? SB_SUBPROTO_JSON : SB_SUBPROTO_PROTO,
                              c->deflate, &deflate, &status);
    if (rc < 0) {
        conn_fail(k, rc);
        return;
    }
    if (rc > 0) upgrade_done(k, (size_t)rc, &deflate);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *k = s->data;
    sb_client *c = k->c;
    if (k->closing || nread == 0) return;
    int rc = nread < 0 ? (int)nread : 0;
    if (rc == 0 && k->tls) {
        k->tin.len = 0;
        rc = sb_tls_feed(k->tls, (const uint8_t *)buf->base, (size_t)nread,
                         &k->tin, &k->pend);
        conn_write(k); /* the handshake's answers, an alert */
        if (rc == -ESHUTDOWN) rc = UV_EOF;
    }
    if (rc < 0) {
        if (k->ws) k->close_code = sb_ws_close_code(k->ws);
        conn_fail(k, rc == UV_EOF ? (k->close_code ? 0 : -ECONNRESET) : rc);
        return;
    }
    if (c->conn != k || k->closing) return;
    sb_client_core_on_rx(c->core, now_ms(c));
    if (k->tls)
        conn_input(k, k->tin.data, k->tin.len);
    else
        conn_input(k, (const uint8_t *)buf->base, (size_t)nread);
    if (k->tin.cap > IDLE_BUF_BYTES) sb_buf_free(&k->tin);
}

/* ---- connecting ---------------------------------------------------------- */

static void on_connect(uv_connect_t *req, int status)
{
    conn *k = req->data;
    sb_client *c = k->c;
    if (k->closing) return;
    if (status < 0) {
        conn_fail(k, status);
        return;
    }
    uv_tcp_nodelay(&k->tcp, 1);
    uint8_t nonce[16];
    rand_fill(c, nonce, sizeof nonce);
    sb_b64_encode(nonce, sizeof nonce, k->key, 0);
    if (k->url->tls) {
        int trc = sb_tls_new(c->tls, k->url->host, &k->tls);
        if (trc) {
            conn_fail(k, trc);
            return;
        }
    }
    int rc = sb_client_hs_request(
        k->url, k->key, c->text ? SB_SUBPROTO_JSON : SB_SUBPROTO_PROTO,
        c->deflate, conn_out(k));
    if (rc == 0) rc = uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
    if (rc) {
        conn_fail(k, rc);
        return;
    }
    k->phase = PH_UPGRADE;
    conn_write(k);
}

/* cfg.source_addr parsed into *out (port 0): 0, -EINVAL or -ENOMEM. */
static int source_parse(const char *s, struct sockaddr_storage **out)
{
    struct sockaddr_storage *a = calloc(1, sizeof *a);
    if (!a) return -ENOMEM;
    if (uv_ip4_addr(s, 0, (struct sockaddr_in *)a) != 0 &&
        uv_ip6_addr(s, 0, (struct sockaddr_in6 *)a) != 0) {
        free(a);
        return -EINVAL;
    }
    *out = a;
    return 0;
}

/* Opens k's socket bound to the configured source address, for a
 * connect to dst. IP_BIND_ADDRESS_NO_PORT leaves the port to connect(),
 * which picks one free for this destination only, rather than one free
 * for every destination as bind() would. Returns 0 or -errno. */
static int conn_bind_source(conn *k, const struct sockaddr *dst)
{
    const struct sockaddr *src = (const struct sockaddr *)k->c->source;
    if (src->sa_family != dst->sa_family) return -EAFNOSUPPORT;
    int fd =
        socket(src->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
#ifdef IP_BIND_ADDRESS_NO_PORT
    int one = 1;
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
    socklen_t len = src->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                              : sizeof(struct sockaddr_in6);
    int rc = bind(fd, src, len) == 0 ? uv_tcp_open(&k->tcp, fd) : -errno;
    if (rc) close(fd);
    return rc;
}

static void conn_connect(conn *k, const struct sockaddr *sa)
{
    k->phase = PH_CONNECT;
    k->creq.data = k;
    int rc = k->c->source ? conn_bind_source(k, sa) : 0;
    if (rc == 0) rc = uv_tcp_connect(&k->creq, &k->tcp, sa, on_connect);
    if (rc) conn_fail(k, rc);
}

static void on_gai(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    conn *k = req->data;
    k->gai_pending = false;
    if (k->closing) {
        if (res) uv_freeaddrinfo(res);
        conn_maybe_free(k);
        return;
    }
    if (status < 0 || !res)
        conn_fail(k, status < 0 ? status : -ENOENT);
    else
        conn_connect(k, res->ai_addr);
    if (res) uv_freeaddrinfo(res);
}

/* io->connect: a new connection object for this attempt. */
static void io_connect(void *ud)
{
    sb_client *c = ud;
    assert(!c->conn);
    if (c->closing) return;
    conn *k = calloc(1, sizeof *k);
    if (!k) return; /* the core's connect timeout will retry */
    k->c = c;
    size_t i = sb_client_core_url_index(c->core);
    assert(i < c->n_urls);
    const sb_client_url *u = k->url = &c->urls[i];
    c->nconns++;
    c->conn = k;
    uv_tcp_init(c->loop, &k->tcp);
    k->tcp.data = k;
    k->wreq.data = k;
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } a;
    if (uv_ip4_addr(u->host, u->port, &a.in4) == 0 ||
        uv_ip6_addr(u->host, u->port, &a.in6) == 0) {
        conn_connect(k, &a.sa);
        return;
    }
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)u->port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    k->gai.data = k;
    k->phase = PH_RESOLVE;
    int rc = uv_getaddrinfo(c->loop, &k->gai, on_gai, u->host, port, &hints);
    if (rc)
        conn_fail(k, rc);
    else
        k->gai_pending = true;
}

/* Writes what the ws has queued, then a close frame with code (wslay puts
 * control frames first and sends no data after a close, hence the two
 * pulls), best effort, and closes the socket. */
static void conn_finish(conn *k, uint16_t code)
{
    int rc = sb_ws_pull(k->ws, conn_out(k));
    sb_ws_close(k->ws, code, "");
    if (rc == 0) rc = sb_ws_pull(k->ws, conn_out(k));
    if (rc == 0) rc = conn_encrypt(k);
    if (rc == 0 && k->tls) sb_tls_close(k->tls, &k->pend);
    if (rc == 0 && !k->writing && k->pend.len) {
        uv_buf_t b = uv_buf_init((char *)k->pend.data, (unsigned)k->pend.len);
        uv_try_write((uv_stream_t *)&k->tcp, &b, 1);
    }
    conn_close(k);
}

/* io->close: the core is done with this connection. The frames it still
 * has queued (final ACKs) go out before the close frame. */
static void io_close(void *ud, uint16_t code)
{
    sb_client *c = ud;
    conn *k = c->conn;
    if (!k) return;
    c->conn = NULL;
    if (k->closing) return;
    if (k->phase != PH_OPEN) {
        conn_close(k);
        return;
    }
    const uint8_t *p;
    size_t n;
    while (sb_client_core_next_frame(c->core, &p, &n))
        if (sb_ws_send(k->ws, c->text, p, n) != 0) break;
    if (c->in_feed)
        k->finish_code = code; /* wslay is busy: after it returns */
    else
        conn_finish(k, code);
}

static void io_rand(void *ud, uint8_t *p, size_t n)
{
    rand_fill(ud, p, n);
}

/* ---- uploads --------------------------------------------------------------
 */

/* What a server's answer to an upload means to the core: 0 with the
 * upload's id, or a code (retryable ones: sb_client_core_upload_done). */
static int upload_result(int status, const char *body, char *id, size_t cap)
{
    id[0] = '\0';
    switch (status) {
    case 201: {
        json_t *j = json_loads(body, 0, NULL);
        const char *v = json_string_value(json_object_get(j, "id"));
        int rc = v && strlen(v) < cap ? 0 : -EPROTO;
        if (rc == 0) snprintf(id, cap, "%s", v);
        json_decref(j);
        return rc;
    }
    case 401:
        return SB_E_BAD_TOKEN;
    case 403:
        return SB_E_FORBIDDEN;
    case 404:
        return SB_E_NOT_FOUND;
    case 413:
        return SB_E_TOO_LARGE;
    case 408:
    case 503:
        return SB_E_UNAVAILABLE;
    case 429:
        return SB_E_RATE_LIMITED;
    case 507:
        return SB_E_STORE;
    default:
        return status >= 500 ? SB_E_INTERNAL : SB_E_INVALID;
    }
}

static void upl_unlink(sb_client *c, upl *x)
{
    for (upl **pp = &c->uploads; *pp; pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            return;
        }
}

static void on_upload(void *ud, int rc, int status, const char *body, size_t n)
{
    upl *x = ud;
    sb_client *c = x->c;
    upl_unlink(c, x);
    char id[SB_MEDIA_ID_LEN + 1], text[256] = "";
    if (rc == 0) {
        rc = upload_result(status, body, id, sizeof id);
        if (rc && n) { /* the server's reason: its first line */
            size_t k = strcspn(body, "\r\n");
            snprintf(text, sizeof text, "%.*s", (int)(k < n ? k : n), body);
        }
    }
    c->busy++;
    sb_client_core_upload_done(c->core, x->id, rc, rc ? NULL : id, text,
                               now_ms(c));
    c->busy--;
    free(x);
    client_flush(c);
}

/* io->upload: over its own connection to the server of the connection
 * (or of the URL the core tries). */
static int io_upload(void *ud, const uint8_t *client_msg_id, uint64_t conv_id,
                     const char *path, const char *name)
{
    sb_client *c = ud;
    if (c->closing) return -ESHUTDOWN;
    upl *x = calloc(1, sizeof *x);
    if (!x) return -ENOMEM;
    x->c = c;
    memcpy(x->id, client_msg_id, sizeof x->id);
    const sb_client_url *url =
        c->conn ? c->conn->url : &c->urls[sb_client_core_url_index(c->core)];
    int rc = sb_upload_start(c->loop, c->tls, url, c->token, conv_id, path,
                             name, UPLOAD_IDLE_MS, on_upload, x, &x->u);
    if (rc) {
        free(x);
        return rc;
    }
    x->next = c->uploads;
    c->uploads = x;
    return 0;
}

/* ---- the client ---------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
    sb_client *c = t->data;
    if (c->closing) return;
    c->busy++;
    sb_client_core_tick(c->core, now_ms(c));
    c->busy--;
    client_flush(c);
}

static void on_timer_close(uv_handle_t *h)
{
    sb_client *c = h->data;
    c->timer_closed = true;
    client_maybe_free(c);
}

int sb_client_new(uv_loop_t *loop, const sb_client_config *cfg,
                  const sb_client_cbs *cbs, void *ud, sb_client **out)
{
    assert(loop && cfg && out);
    *out = NULL;
    if (cfg->n_urls > SB_CLIENT_URLS_MAX || (cfg->n_urls && !cfg->urls) ||
        cfg->tick_ms == 0 || cfg->frame_bytes_max == 0)
        return -EINVAL;
    sb_client *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    int rc = -ENOMEM;
    bool held = false; /* the shared sb_ws_env */
    c->n_urls = cfg->n_urls ? cfg->n_urls : 1;
    c->urls = calloc(c->n_urls, sizeof *c->urls);
    if (!c->urls) goto err;
    bool tls = false;
    for (size_t i = 0; i < c->n_urls; i++) {
        const char *s = cfg->n_urls ? cfg->urls[i] : cfg->url;
        rc = sb_client_url_parse(s, &c->urls[i]);
        if (rc) goto err;
        tls = tls || c->urls[i].tls;
    }
    c->wsenv = wsenv_hold(loop);
    if (!c->wsenv) {
        rc = -ENOMEM;
        goto err;
    }
    held = true;
    if (tls) {
        char err[256];
        rc = sb_tls_ctx_client(cfg->ca_file, err, sizeof err, &c->tls);
        if (rc) {
            rc = -EINVAL;
            goto err;
        }
    }
    c->loop = loop;
    c->ud = ud;
    c->text = cfg->enc == SB_ENC_JSON;
    c->tick_ms = cfg->tick_ms;
    c->frame_bytes_max = cfg->frame_bytes_max;
    c->deflate = cfg->deflate;
    c->deflate_min_bytes = cfg->deflate_min_bytes;
    c->out_bytes_max =
        cfg->outq_bytes_max ? cfg->outq_bytes_max : 4 * 1024 * 1024;
    rng_seed(c->rng);
    sb_client_core_io io = {
        .ud = c,
        .connect = io_connect,
        .close = io_close,
        .rand_bytes = io_rand,
        .upload = io_upload,
    };
    if (!(c->token = strdup(cfg->token ? cfg->token : ""))) {
        rc = -ENOMEM;
        goto err;
    }
    if (cfg->source_addr) {
        rc = source_parse(cfg->source_addr, &c->source);
        if (rc) goto err;
    }
    rc = sb_client_core_new(cfg, cbs, ud, &io, &c->core);
    if (rc) goto err;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    *out = c;
    return 0;
err:
    free(c->source);
    free(c->token);
    sb_tls_ctx_free(c->tls);
    free(c->urls);
    free(c);
    if (held) wsenv_release(loop);
    return rc;
}

void sb_client_start(sb_client *c)
{
    assert(c && !c->closing);
    if (c->started) return;
    c->started = true;
    uv_timer_start(&c->timer, on_timer, c->tick_ms, c->tick_ms);
    c->busy++;
    sb_client_core_start(c->core, now_ms(c));
    c->busy--;
    client_flush(c);
}

void sb_client_close(sb_client *c, void (*on_closed)(void *ud))
{
    assert(c && !c->closing);
    c->closing = true;
    c->on_closed = on_closed;
    while (c->uploads) { /* no callback comes from them now */
        upl *x = c->uploads;
        c->uploads = x->next;
        sb_upload_cancel(x->u);
        free(x);
    }
    sb_client_core_mute(c->core);
    sb_client_core_stop(c->core); /* io_close takes the connection down */
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_timer_close);
}

/* ---- API calls: the core's, then a flush --------------------------------- */

/* The call has been made (only if the client is not closing): write what
 * it produced, pass its result on. */
static int flushed(sb_client *c, int rc)
{
    client_flush(c);
    return rc;
}

int sb_client_send(sb_client *c, uint64_t conv_id, Sbp__MsgType type,
                   const char *body, size_t len, uint64_t quote_seq,
                   uint8_t *id_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(c, sb_client_core_send(c->core, conv_id, type, body, len,
                                          quote_seq, id_out));
}

int sb_client_send_robot(sb_client *c, uint64_t conv_id, const char *body,
                         const char *const *quick, size_t n_quick,
                         uint8_t *id_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(c, sb_client_core_send_robot(c->core, conv_id, body,
                                                strlen(body), quick, n_quick,
                                                id_out));
}

int sb_client_send_file(sb_client *c, uint64_t conv_id, Sbp__MsgType type,
                        const char *path, const char *name, const char *caption,
                        uint8_t *id_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(c, sb_client_core_send_file(c->core, conv_id, type, path,
                                               name, caption, id_out));
}

int sb_client_send_text(sb_client *c, uint64_t conv_id, const char *text,
                        uint8_t *id_out)
{
    return sb_client_send(c, conv_id, SBP__MSG_TYPE__MSG_TEXT, text,
                          strlen(text), 0, id_out);
}

int sb_client_read(sb_client *c, uint64_t conv_id, uint64_t seq)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(c, sb_client_core_read(c->core, conv_id, seq));
}

void sb_client_sync(sb_client *c)
{
    if (c->closing) return;
    sb_client_core_sync(c->core);
    client_flush(c);
}

int sb_client_set_cursor(sb_client *c, uint64_t conv_id, uint64_t seq)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(c, sb_client_core_set_cursor(c->core, conv_id, seq));
}

int sb_client_typing(sb_client *c, uint64_t conv_id, bool on)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(c, sb_client_core_typing(c->core, conv_id, on));
}

int sb_client_open(sb_client *c, const char *const *members, size_t n,
                   const char *title, Sbp__ConvKind kind, uint32_t *rid_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(
        c, sb_client_core_open(c->core, members, n, title, kind, rid_out));
}

int sb_client_history(sb_client *c, uint64_t conv_id, uint64_t before_seq,
                      uint32_t limit, uint32_t *rid_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(c, sb_client_core_history(c->core, conv_id, before_seq,
                                             limit, rid_out));
}

int sb_client_open_service(sb_client *c, const char *desk, uint32_t *rid_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(c, sb_client_core_open_service(c->core, desk, rid_out));
}

int sb_client_transfer(sb_client *c, uint64_t conv_id, const char *to_agent,
                       const char *to_group, uint32_t *rid_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(c, sb_client_core_transfer(c->core, conv_id, to_agent,
                                              to_group, rid_out));
}

int sb_client_transfer_note(sb_client *c, uint64_t conv_id,
                            const char *to_agent, const char *to_group,
                            const char *note, uint32_t *rid_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(c, sb_client_core_transfer_note(c->core, conv_id, to_agent,
                                                   to_group, note, rid_out));
}

int sb_client_claim(sb_client *c, uint64_t conv_id, bool over_capacity,
                    uint32_t *rid_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(
        c, sb_client_core_claim(c->core, conv_id, over_capacity, rid_out));
}

int sb_client_agent_list(sb_client *c, const char *desk, uint32_t *rid_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(c, sb_client_core_agent_list(c->core, desk, rid_out));
}

int sb_client_close_conv(sb_client *c, uint64_t conv_id, uint32_t *rid_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(c, sb_client_core_close_conv(c->core, conv_id, rid_out));
}

int sb_client_handoff(sb_client *c, uint64_t conv_id, const char *group,
                      uint32_t *rid_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(c, sb_client_core_handoff(c->core, conv_id, group, rid_out));
}

int sb_client_recall(sb_client *c, uint64_t conv_id, uint64_t seq,
                     uint32_t *rid_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(c, sb_client_core_recall(c->core, conv_id, seq, rid_out));
}

int sb_client_tag(sb_client *c, uint64_t conv_id, uint64_t seq,
                  const char *const *add, size_t n_add,
                  const char *const *remove, size_t n_remove, uint32_t *rid_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(c, sb_client_core_tag(c->core, conv_id, seq, add, n_add,
                                         remove, n_remove, rid_out));
}

int sb_client_agent_state(sb_client *c, Sbp__AgentStatus status,
                          uint32_t *rid_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(c, sb_client_core_agent_state(c->core, status, rid_out));
}

int sb_client_conv_list(sb_client *c, const char *cursor, uint32_t limit,
                        Sbp__ConvState state, const char *tag, bool mine,
                        uint32_t *rid_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(c, sb_client_core_conv_list(c->core, cursor, limit, state,
                                               tag, mine, rid_out));
}

int sb_client_search(sb_client *c, uint64_t conv_id, const char *query,
                     uint32_t limit, uint32_t *rid_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(
        c, sb_client_core_search(c->core, conv_id, query, limit, rid_out));
}

int sb_client_canned_list(sb_client *c, const char *desk, uint32_t *rid_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(c, sb_client_core_canned_list(c->core, desk, rid_out));
}

int sb_client_admin_cmd(sb_client *c, const char *op, const char *body,
                        uint32_t *rid_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(c, sb_client_core_admin_cmd(c->core, op, body, rid_out));
}

int sb_client_csat(sb_client *c, uint64_t conv_id, uint32_t rating,
                   const char *comment, uint32_t *rid_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(
        c, sb_client_core_csat(c->core, conv_id, rating, comment, rid_out));
}

int sb_client_report(sb_client *c, const char *from, const char *to,
                     const char *tz, const char *const *by, size_t n_by,
                     const char *desk, const char *group, const char *agent,
                     uint32_t *rid_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(c, sb_client_core_report(c->core, from, to, tz, by, n_by,
                                            desk, group, agent, rid_out));
}

int sb_client_notes_open(sb_client *c, uint64_t conv_id, bool create,
                         uint32_t *rid_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(
        c, sb_client_core_notes_open(c->core, conv_id, create, rid_out));
}

int sb_client_contact_get(sb_client *c, uint64_t conv_id, const char *user_id,
                          uint32_t *rid_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(
        c, sb_client_core_contact_get(c->core, conv_id, user_id, rid_out));
}

int sb_client_contact_set(sb_client *c, const sb_client_contact_change *ch,
                          uint32_t *rid_out)
{
    if (c->closing) return -ESHUTDOWN;
    return flushed(c, sb_client_core_contact_set(c->core, ch, rid_out));
}

/* ---- accessors ----------------------------------------------------------- */

sb_client_state sb_client_get_state(const sb_client *c)
{
    return sb_client_core_state(c->core);
}

uint64_t sb_client_cursor(const sb_client *c, uint64_t conv_id)
{
    return sb_client_core_cursor(c->core, conv_id);
}

void sb_client_get_stats(const sb_client *c, sb_client_stats *out)
{
    sb_client_core_stats(c->core, out);
}

const sb_client_session *sb_client_session_info(const sb_client *c)
{
    return sb_client_core_session(c->core);
}

const char *sb_client_get_url(const sb_client *c)
{
    return sb_client_core_url(c->core);
}

int sb_client_last_error(const sb_client *c)
{
    return sb_client_core_last_error(c->core);
}

bool sb_client_deflate(const sb_client *c)
{
    return c->conn && c->conn->phase == PH_OPEN && c->conn->deflate;
}

uint16_t sb_client_close_code(const sb_client *c)
{
    return sb_client_core_close_code(c->core);
}
