/* The operations port: its listener, its connections (each freed in its
 * close callback, or after its scrape's work when one runs) and the three
 * routes. The port itself is freed when its last handle has closed and its
 * last scrape has come back. */
#include "sb_opsport.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sb_http.h"
#include "sb_routes.h"

#define OPS_SWEEP_MS 1000
#define OPS_READ_BYTES 4096
#define PROM_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct ops_conn ops_conn;

struct sb_opsport {
    sb_opsport_config cfg;
    char host[64];
    uv_tcp_t listener;
    uv_timer_t sweep;
    ops_conn *conns; /* open ones */
    size_t n_conns;
    size_t scrapes; /* on the thread pool */
    size_t refs;    /* open handles and scrapes; freed at 0 once closing */
    bool closing;
};

struct ops_conn {
    uv_tcp_t tcp;
    sb_opsport *o;
    sb_http_req http;
    int64_t opened_ms;
    bool closed;  /* uv_close called */
    bool handled; /* its request is being answered */
    bool scraping;
    ops_conn *prev, *next;
    char rbuf[OPS_READ_BYTES];
};

/* A /metrics request's work on the thread pool. */
typedef struct scrape {
    uv_work_t work;
    ops_conn *c;
    sb_metrics_snap snap;
    sb_buf text;
    int rc;
} scrape;

typedef struct ops_write {
    uv_write_t req;
    ops_conn *c;
    sb_buf buf;
} ops_write;

static void unref(sb_opsport *o)
{
    if (--o->refs == 0 && o->closing) free(o);
}

static void on_handle_closed(uv_handle_t *h)
{
    unref(h->data);
}

static void conn_free(ops_conn *c)
{
    sb_opsport *o = c->o;
    free(c);
    unref(o);
}

static void on_conn_closed(uv_handle_t *h)
{
    ops_conn *c = h->data;
    sb_opsport *o = c->o;
    if (c->prev)
        c->prev->next = c->next;
    else
        o->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    o->n_conns--;
    /* A scrape still running frees the connection when it comes back. */
    if (!c->scraping) conn_free(c);
}

static void conn_close(ops_conn *c)
{
    if (c->closed) return;
    c->closed = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_write(uv_write_t *req, int status)
{
    ops_write *w = (ops_write *)req;
    (void)status;
    sb_buf_free(&w->buf);
    conn_close(w->c);
    free(w);
}

/* Answers and closes the connection. */
static void answer(ops_conn *c, int status, const char *type, const void *body,
                   size_t n)
{
    if (c->closed) return;
    ops_write *w = calloc(1, sizeof *w);
    if (!w || sb_http_respond(&w->buf, status, type, body, n) != 0) {
        if (w) sb_buf_free(&w->buf);
        free(w);
        conn_close(c);
        return;
    }
    w->c = c;
    uv_buf_t b = uv_buf_init((char *)w->buf.data, (unsigned)w->buf.len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        sb_buf_free(&w->buf);
        free(w);
        conn_close(c);
    }
}

static void answer_text(ops_conn *c, int status, const char *text)
{
    answer(c, status, "text/plain", text, strlen(text));
}

/* ---- routes -------------------------------------------------------------- */

static void scrape_work(uv_work_t *req)
{
    scrape *s = req->data;
    sb_metrics_process_read(&s->snap);
    s->rc = sb_metrics_render(&s->snap, &s->text);
}

static void scrape_done(uv_work_t *req, int status)
{
    scrape *s = req->data;
    ops_conn *c = s->c;
    sb_opsport *o = c->o;
    c->scraping = false;
    o->scrapes--;
    if (c->closed) {
        conn_free(c);
    } else if (status != 0 || s->rc != 0) {
        answer_text(c, 500, "cannot render the metrics\n");
    } else {
        answer(c, 200, PROM_TYPE, s->text.data, s->text.len);
    }
    sb_buf_free(&s->text);
    free(s);
    unref(o);
}

static void metrics(ops_conn *c)
{
    sb_opsport *o = c->o;
    scrape *s =
        o->scrapes < SB_OPSPORT_SCRAPES_MAX ? calloc(1, sizeof *s) : NULL;
    if (!s) {
        answer_text(c, 503, "busy\n");
        return;
    }
    s->c = c;
    s->work.data = s;
    o->cfg.snapshot(o->cfg.ud, &s->snap);
    if (uv_queue_work(o->cfg.loop, &s->work, scrape_work, scrape_done) != 0) {
        free(s);
        answer_text(c, 503, "busy\n");
        return;
    }
    c->scraping = true;
    o->scrapes++;
    o->refs++;
}

/* The snapshot /readyz and /healthz answer from (on the heap: it is
 * large); NULL when out of memory. */
static sb_metrics_snap *snap_now(sb_opsport *o)
{
    sb_metrics_snap *s = calloc(1, sizeof *s);
    if (s) o->cfg.snapshot(o->cfg.ud, s);
    return s;
}

static void readyz(ops_conn *c)
{
    sb_metrics_snap *s = snap_now(c->o);
    if (!s) {
        answer_text(c, 503, "out of memory\n");
        return;
    }
    char why[256], text[300];
    bool ok = sb_metrics_ready(s, why, sizeof why);
    snprintf(text, sizeof text, "%s\n", ok ? "ready" : why);
    answer_text(c, ok ? 200 : 503, text);
    free(s);
}

static void healthz(ops_conn *c)
{
    sb_metrics_snap *s = snap_now(c->o);
    if (!s) {
        answer_text(c, 503, "out of memory\n");
        return;
    }
    const char *text;
    int status = sb_routes_health(s->draining,
                                  !s->have_store || !s->store.healthy, &text);
    answer_text(c, status, text);
    free(s);
}

static const struct {
    const char *path;
    void (*handle)(ops_conn *c);
} ROUTES[] = {
    {"/metrics", metrics},
    {"/readyz", readyz},
    {"/healthz", healthz},
};

static void serve(ops_conn *c)
{
    c->handled = true;
    const sb_http_req *r = &c->http;
    if (r->too_long) {
        answer_text(c, 431, "header too large\n");
        return;
    }
    /* The path alone: a query (?name[]=...) is ignored. */
    size_t plen = strcspn(r->path, "?");
    for (size_t i = 0; i < sizeof ROUTES / sizeof *ROUTES; i++) {
        if (strlen(ROUTES[i].path) != plen ||
            strncmp(r->path, ROUTES[i].path, plen) != 0)
            continue;
        if (strcmp(sb_http_req_method(r), "GET") != 0)
            answer_text(c, 405, "GET only\n");
        else
            ROUTES[i].handle(c);
        return;
    }
    answer_text(c, 404, "not found: /metrics, /readyz, /healthz\n");
}

/* ---- connections --------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    ops_conn *c = h->data;
    (void)hint;
    buf->base = c->rbuf;
    buf->len = sizeof c->rbuf;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    ops_conn *c = st->data;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (n == 0 || c->handled) return;
    if (sb_http_req_feed(&c->http, buf->base, (size_t)n) < 0) {
        c->handled = true;
        answer_text(c, 400, "bad request\n");
        return;
    }
    if (c->http.complete) serve(c);
}

static void on_connection(uv_stream_t *l, int status)
{
    sb_opsport *o = l->data;
    if (status < 0) return;
    ops_conn *c = calloc(1, sizeof *c);
    if (!c) return;
    c->o = o;
    uv_tcp_init(o->cfg.loop, &c->tcp);
    c->tcp.data = c;
    o->refs++;
    o->n_conns++;
    c->next = o->conns;
    if (o->conns) o->conns->prev = c;
    o->conns = c;
    c->opened_ms = (int64_t)uv_now(o->cfg.loop);
    sb_http_req_init(&c->http);
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0 ||
        o->n_conns > SB_OPSPORT_CONNS_MAX) {
        conn_close(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* Drops the connections whose request is not complete in time. */
static void on_sweep(uv_timer_t *t)
{
    sb_opsport *o = t->data;
    int64_t now = (int64_t)uv_now(o->cfg.loop);
    for (ops_conn *c = o->conns; c; c = c->next)
        if (!c->handled && now - c->opened_ms > SB_OPSPORT_REQUEST_MS)
            conn_close(c);
}

int sb_opsport_start(const sb_opsport_config *cfg, sb_opsport **out,
                     uint16_t *bound)
{
    *out = NULL;
    sb_opsport *o = calloc(1, sizeof *o);
    if (!o) return -ENOMEM;
    o->cfg = *cfg;
    snprintf(o->host, sizeof o->host, "%s", cfg->host);
    o->cfg.host = o->host;
    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(o->host, cfg->port, (struct sockaddr_in *)&addr);
    if (rc) rc = uv_ip6_addr(o->host, cfg->port, (struct sockaddr_in6 *)&addr);
    if (rc) {
        free(o);
        return rc;
    }
    uv_tcp_init(cfg->loop, &o->listener);
    o->listener.data = o;
    o->refs = 1;
    rc = uv_tcp_bind(&o->listener, (struct sockaddr *)&addr, 0);
    if (!rc) rc = uv_listen((uv_stream_t *)&o->listener, 64, on_connection);
    if (rc) {
        o->closing = true;
        uv_close((uv_handle_t *)&o->listener, on_handle_closed);
        return rc;
    }
    struct sockaddr_storage b;
    int blen = sizeof b;
    uv_tcp_getsockname(&o->listener, (struct sockaddr *)&b, &blen);
    *bound = ntohs(((struct sockaddr_in *)&b)->sin_port);
    uv_timer_init(cfg->loop, &o->sweep);
    o->sweep.data = o;
    o->refs++;
    uv_timer_start(&o->sweep, on_sweep, OPS_SWEEP_MS, OPS_SWEEP_MS);
    *out = o;
    return 0;
}

void sb_opsport_close(sb_opsport *o)
{
    if (!o || o->closing) return;
    o->closing = true;
    uv_close((uv_handle_t *)&o->listener, on_handle_closed);
    uv_close((uv_handle_t *)&o->sweep, on_handle_closed);
    for (ops_conn *c = o->conns; c; c = c->next)
        conn_close(c);
}
