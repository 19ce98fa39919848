/* An HTTP upload over libuv: resolve, connect, TLS when asked, the head,
 * then the file a piece at a time (the next read only once the socket
 * has taken the last), the answer to the connection's end. */
#include "sb_client_upload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sb_buf.h"
#include "sb_limits.h"

#define PIECE_BYTES (64u << 10)
#define ANSWER_BYTES_MAX (64u << 10)
#define TICK_MS 500

struct sb_upload {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t creq;
    uv_getaddrinfo_t gai;
    uv_write_t wreq;
    sb_tls *tls;
    int fd;
    uint64_t size, sent; /* of the file */
    sb_buf out;          /* to write (encrypted for TLS) */
    sb_buf wbuf;         /* being written */
    sb_buf plain;        /* TLS: what the server said, decrypted */
    sb_buf rx;           /* the answer */
    char host[SB_CLIENT_HOST_BYTES_MAX + 1];
    uint16_t port;
    uint32_t idle_ms;
    int64_t last_ms; /* the last byte moved */
    int write_err;   /* writing failed: the answer may still come */
    int handles;     /* open: tcp, timer */
    bool writing, gai_pending, done, cancelled, reading;
    sb_upload_cb cb;
    void *ud;
    uint8_t piece[PIECE_BYTES];
};

int sb_upload_query_escape(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
                     *p == '_' || *p == '~';
        if (k + (plain ? 1 : 3) >= cap) return -ENOSPC;
        if (plain) {
            out[k++] = (char)*p;
        } else {
            out[k++] = '%';
            out[k++] = hex[*p >> 4];
            out[k++] = hex[*p & 15];
        }
    }
    out[k] = '\0';
    return (int)k;
}

static void up_free_maybe(sb_upload *u)
{
    if (u->handles || u->writing || u->gai_pending) return;
    if (u->fd >= 0) close(u->fd);
    sb_tls_free(u->tls);
    sb_buf_free(&u->out);
    sb_buf_free(&u->wbuf);
    sb_buf_free(&u->plain);
    sb_buf_free(&u->rx);
    free(u);
}

static void on_handle_closed(uv_handle_t *h)
{
    sb_upload *u = h->data;
    u->handles--;
    up_free_maybe(u);
}

/* The end: the callback (unless cancelled), then the handles close. */
static void up_finish(sb_upload *u, int rc, int status, const char *body,
                      size_t n)
{
    if (u->done) return;
    u->done = true;
    if (u->gai_pending) uv_cancel((uv_req_t *)&u->gai);
    if (!u->cancelled) u->cb(u->ud, rc, status, body, n);
    uv_read_stop((uv_stream_t *)&u->tcp);
    uv_close((uv_handle_t *)&u->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&u->timer, on_handle_closed);
}

/* The answer so far, as HTTP: 0 with its status and body, or -EPROTO. */
static int answer_parse(const sb_buf *rx, int *status, const char **body,
                        size_t *n)
{
    const char *p = (const char *)rx->data;
    if (rx->len < 12 || memcmp(p, "HTTP/1.", 7) != 0) return -EPROTO;
    const char *end = memmem(p, rx->len, "\r\n\r\n", 4);
    if (!end) return -EPROTO;
    *status = atoi(p + 9);
    *body = end + 4;
    *n = rx->len - (size_t)(end + 4 - p);
    return *status >= 100 && *status <= 599 ? 0 : -EPROTO;
}

/* The server closed: its answer (or, without one, why writing failed). */
static void up_answered(sb_upload *u, int err)
{
    int status;
    const char *body;
    size_t n;
    sb_buf_append(&u->rx, "", 1); /* a NUL after the body */
    u->rx.len--;
    if (answer_parse(&u->rx, &status, &body, &n) == 0)
        up_finish(u, 0, status, body, n);
    else
        up_finish(u,
                  u->write_err ? u->write_err
                  : err        ? err
                               : -EPROTO,
                  0, NULL, 0);
}

static void up_pump(sb_upload *u);

static void on_write(uv_write_t *req, int status)
{
    sb_upload *u = req->data;
    u->writing = false;
    u->wbuf.len = 0;
    if (u->done) {
        up_free_maybe(u);
        return;
    }
    if (status < 0) {
        /* The server may have answered early and closed: read on. */
        u->write_err = status;
        return;
    }
    u->last_ms = (int64_t)uv_now(u->loop);
    up_pump(u);
}

/* Moves out to the socket (one write at a time). */
static void up_write(sb_upload *u)
{
    if (u->writing || u->done || u->write_err || u->out.len == 0) return;
    sb_buf t = u->wbuf;
    u->wbuf = u->out;
    u->out = t;
    u->out.len = 0;
    uv_buf_t b = uv_buf_init((char *)u->wbuf.data, (unsigned)u->wbuf.len);
    u->wreq.data = u;
    int rc = uv_write(&u->wreq, (uv_stream_t *)&u->tcp, &b, 1, on_write);
    if (rc) {
        u->wbuf.len = 0;
        up_finish(u, rc, 0, NULL, 0);
        return;
    }
    u->writing = true;
}

/* Plaintext p[0..n) onto out, through TLS when there is one. */
static int up_put(sb_upload *u, const void *p, size_t n)
{
    if (u->tls) return sb_tls_write(u->tls, p, n, &u->out);
    return sb_buf_append(&u->out, p, n);
}

/* The next piece of the file, once the last is written (and TLS is
 * through its handshake: before it, plaintext would pile up in it). */
static void up_pump(sb_upload *u)
{
    if (u->done || u->writing || u->write_err) return;
    if (u->out.len == 0 && u->sent < u->size &&
        (!u->tls || sb_tls_ready(u->tls))) {
        size_t want = u->size - u->sent < PIECE_BYTES
                          ? (size_t)(u->size - u->sent)
                          : PIECE_BYTES;
        ssize_t k;
        do
            k = read(u->fd, u->piece, want);
        while (k < 0 && errno == EINTR);
        if (k <= 0) {
            up_finish(u, k < 0 ? -errno : -EIO, 0, NULL, 0); /* changed */
            return;
        }
        u->sent += (uint64_t)k;
        int rc = up_put(u, u->piece, (size_t)k);
        if (rc) {
            up_finish(u, rc, 0, NULL, 0);
            return;
        }
    }
    up_write(u);
}

/* One read buffer for every upload: a read is handled before the next
 * (the loop's one thread). */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    static char rbuf[PIECE_BYTES];
    buf->base = rbuf;
    buf->len = sizeof rbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    sb_upload *u = s->data;
    if (u->done || nread == 0) return;
    if (nread < 0) {
        up_answered(u, nread == UV_EOF ? 0 : (int)nread);
        return;
    }
    u->last_ms = (int64_t)uv_now(u->loop);
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t n = (size_t)nread;
    if (u->tls) {
        u->plain.len = 0;
        int rc = sb_tls_feed(u->tls, p, n, &u->plain, &u->out);
        up_write(u);
        if (rc == -ESHUTDOWN) {
            up_answered(u, 0);
            return;
        }
        if (rc) {
            up_finish(u, rc, 0, NULL, 0);
            return;
        }
        p = u->plain.data;
        n = u->plain.len;
        up_pump(u); /* the handshake may just have ended */
    }
    if (n && u->rx.len + n <= ANSWER_BYTES_MAX &&
        sb_buf_append(&u->rx, p, n) != 0) {
        up_finish(u, -ENOMEM, 0, NULL, 0);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    sb_upload *u = req->data;
    if (u->done) return;
    if (status < 0) {
        up_finish(u, status, 0, NULL, 0);
        return;
    }
    u->last_ms = (int64_t)uv_now(u->loop);
    uv_tcp_nodelay(&u->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&u->tcp, on_alloc, on_read);
    if (rc == 0 && u->out.len == 0)
        up_pump(u);
    else if (rc == 0)
        up_write(u);
    if (rc) up_finish(u, rc, 0, NULL, 0);
}

static void up_connect(sb_upload *u, const struct sockaddr *sa)
{
    u->creq.data = u;
    int rc = uv_tcp_connect(&u->creq, &u->tcp, sa, on_connect);
    if (rc) up_finish(u, rc, 0, NULL, 0);
}

static void on_gai(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    sb_upload *u = req->data;
    u->gai_pending = false;
    if (u->done) {
        if (res) uv_freeaddrinfo(res);
        up_free_maybe(u);
        return;
    }
    if (status < 0 || !res)
        up_finish(u, status < 0 ? status : -ENOENT, 0, NULL, 0);
    else
        up_connect(u, res->ai_addr);
    if (res) uv_freeaddrinfo(res);
}

static void on_tick(uv_timer_t *t)
{
    sb_upload *u = t->data;
    if (!u->done && (int64_t)uv_now(u->loop) - u->last_ms > u->idle_ms)
        up_finish(u, -ETIMEDOUT, 0, NULL, 0);
}

int sb_upload_start(uv_loop_t *loop, sb_tls_ctx *tls, const sb_client_url *url,
                    const char *token, uint64_t conv_id, const char *path,
                    const char *name, uint32_t idle_ms, sb_upload_cb cb,
                    void *ud, sb_upload **out)
{
    *out = NULL;
    char q[1024];
    if (sb_upload_query_escape(name, q, sizeof q) < 0) return -ENAMETOOLONG;
    if (url->tls && !tls) return -EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = errno ? -errno : -EINVAL;
        close(fd);
        return e;
    }
    sb_upload *u = calloc(1, sizeof *u);
    if (!u) {
        close(fd);
        return -ENOMEM;
    }
    u->loop = loop;
    u->fd = fd;
    u->size = (uint64_t)st.st_size;
    u->idle_ms = idle_ms;
    u->cb = cb;
    u->ud = ud;
    u->last_ms = (int64_t)uv_now(loop);
    snprintf(u->host, sizeof u->host, "%s", url->host);
    u->port = url->port;
    int rc = 0;
    if (url->tls) rc = sb_tls_new(tls, url->host, &u->tls);
    char head[1024 + SB_TOKEN_BYTES_MAX + SB_CLIENT_HOST_BYTES_MAX];
    int hn = snprintf(head, sizeof head,
                      "POST /media?conv=%llu&name=%s HTTP/1.1\r\n"
                      "Host: %s:%u\r\nAuthorization: Bearer %s\r\n"
                      "Content-Type: application/octet-stream\r\n"
                      "Content-Length: %llu\r\nConnection: close\r\n\r\n",
                      (unsigned long long)conv_id, q, url->host,
                      (unsigned)url->port, token, (unsigned long long)u->size);
    if (rc == 0 && (hn < 0 || (size_t)hn >= sizeof head)) rc = -ENAMETOOLONG;
    if (rc == 0) rc = up_put(u, head, (size_t)hn);
    if (rc) {
        sb_tls_free(u->tls);
        sb_buf_free(&u->out);
        close(fd);
        free(u);
        return rc;
    }
    uv_tcp_init(loop, &u->tcp);
    uv_timer_init(loop, &u->timer);
    u->tcp.data = u->timer.data = u;
    u->handles = 2;
    uv_timer_start(&u->timer, on_tick, TICK_MS, TICK_MS);
    *out = u;
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } a;
    if (uv_ip4_addr(url->host, url->port, &a.in4) == 0 ||
        uv_ip6_addr(url->host, url->port, &a.in6) == 0) {
        u->creq.data = u;
        rc = uv_tcp_connect(&u->creq, &u->tcp, &a.sa, on_connect);
        if (rc) {
            sb_upload_cancel(u); /* no callback: the caller hears rc */
            *out = NULL;
        }
        return rc;
    }
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)url->port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    u->gai.data = u;
    u->gai_pending = true;
    rc = uv_getaddrinfo(loop, &u->gai, on_gai, url->host, port, &hints);
    if (rc) {
        u->gai_pending = false;
        sb_upload_cancel(u);
        *out = NULL;
    }
    return rc;
}

void sb_upload_cancel(sb_upload *u)
{
    if (!u) return;
    u->cancelled = true;
    up_finish(u, -ECANCELED, 0, NULL, 0);
}
