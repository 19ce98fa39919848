/* The fault proxy (faultproxy.h). Each connection is a fp_link of two TCP
 * handles (the client's, accepted; the server's, connected) and two
 * directions, each a queue of chunks with the time each is due, a timer
 * and a stall. A link is freed once its four handles are closed. */
#include "faultproxy.h"

#include <stdlib.h>
#include <string.h>

#define FP_QUEUE_BYTES_MAX (1u << 20) /* then reading pauses */
#define FP_LINK_HANDLES 4

typedef struct chunk {
    struct chunk *next;
    int64_t due;
    size_t len;
    bool cut_after; /* the link is cut once this is written */
    uint8_t data[];
} chunk;

typedef struct fp_link fp_link;

typedef struct dir {
    fp_link *l;
    uv_tcp_t *src, *dst;
    chunk *head, *tail;
    size_t queued;
    int64_t stall_until;
    uv_timer_t timer;
    bool paused, eof;
} dir;

typedef struct wreq {
    uv_write_t req;
    chunk *c;
    dir *d;
} wreq;

struct fp_link {
    faultproxy *p;
    uv_tcp_t down, up;
    uv_connect_t connect;
    bool up_ready, closing;
    int handles;
    dir c2s, s2c;
    fp_link *prev, *next;
};

struct faultproxy {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uint16_t port, upstream;
    uint64_t rng;
    fp_faults f;
    fp_stats st;
    fp_link *links;
    bool stopped, listener_closed;
};

static uint64_t rnd(faultproxy *p)
{
    uint64_t z = (p->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static bool chance(faultproxy *p, uint32_t ppm)
{
    return ppm && rnd(p) % 1000000u < ppm;
}

static void proxy_maybe_free(faultproxy *p)
{
    if (p->stopped && p->listener_closed && !p->links) free(p);
}

/* ---- links ----------------------------------------------------------------
 */

static void dir_clear(dir *d)
{
    while (d->head) {
        chunk *c = d->head;
        d->head = c->next;
        free(c);
    }
    d->tail = NULL;
    d->queued = 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    fp_link *l = h->data;
    if (--l->handles > 0) return;
    faultproxy *p = l->p;
    dir_clear(&l->c2s);
    dir_clear(&l->s2c);
    if (l->prev)
        l->prev->next = l->next;
    else
        p->links = l->next;
    if (l->next) l->next->prev = l->prev;
    free(l);
    proxy_maybe_free(p);
}

/* Ends the fp_link: with RST on both sockets (reset), or FIN. */
static void link_close(fp_link *l, bool reset)
{
    if (l->closing) return;
    l->closing = true;
    l->c2s.timer.data = l->s2c.timer.data = l; /* on_handle_closed's */
    uv_close((uv_handle_t *)&l->c2s.timer, on_handle_closed);
    uv_close((uv_handle_t *)&l->s2c.timer, on_handle_closed);
    uv_tcp_t *t[2] = {&l->down, &l->up};
    for (int i = 0; i < 2; i++) {
        if (reset && (i == 0 || l->up_ready) &&
            uv_tcp_close_reset(t[i], on_handle_closed) == 0)
            continue;
        uv_close((uv_handle_t *)t[i], on_handle_closed);
    }
}

static void dir_arm(dir *d);

static void on_written(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    chunk *c = w->c;
    fp_link *l = w->d->l;
    bool cut = c->cut_after;
    free(c);
    free(w);
    if (l->closing) return;
    if (status < 0 || cut) link_close(l, false);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* Passes on what is due. */
static void dir_pump(dir *d)
{
    fp_link *l = d->l;
    faultproxy *p = l->p;
    int64_t now = (int64_t)uv_now(p->loop);
    while (!l->closing && d->head && l->up_ready && d->head->due <= now &&
           now >= d->stall_until) {
        chunk *c = d->head;
        d->head = c->next;
        if (!d->head) d->tail = NULL;
        d->queued -= c->len;
        wreq *w = malloc(sizeof *w);
        if (!w) {
            free(c);
            link_close(l, true);
            return;
        }
        w->c = c;
        w->d = d;
        uv_buf_t b = uv_buf_init((char *)c->data, (unsigned)c->len);
        if (uv_write(&w->req, (uv_stream_t *)d->dst, &b, 1, on_written) != 0) {
            free(c);
            free(w);
            link_close(l, true);
            return;
        }
    }
    if (l->closing) return;
    if (d->paused && d->queued < FP_QUEUE_BYTES_MAX / 2) {
        d->paused = false;
        uv_read_start((uv_stream_t *)d->src, NULL, on_read);
    }
    if (!d->head && d->eof) {
        link_close(l, false); /* the source ended: so does the fp_link */
        return;
    }
    dir_arm(d);
}

static void on_timer(uv_timer_t *t)
{
    dir_pump(t->data);
}

static void dir_arm(dir *d)
{
    if (!d->head || d->l->closing) return;
    int64_t now = (int64_t)uv_now(d->l->p->loop);
    int64_t at = d->head->due > d->stall_until ? d->head->due : d->stall_until;
    uv_timer_start(&d->timer, on_timer, at > now ? (uint64_t)(at - now) : 0, 0);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    static char mem[65536]; /* the loop's one read buffer */
    *buf = uv_buf_init(mem, sizeof mem);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    fp_link *l = s->data;
    faultproxy *p = l->p;
    dir *d = (uv_tcp_t *)s == &l->down ? &l->c2s : &l->s2c;
    if (l->closing || n == 0) return;
    if (n < 0) {
        uv_read_stop(s);
        d->eof = true;
        dir_pump(d);
        return;
    }
    const fp_faults *f = &p->f;
    if (chance(p, f->reset_ppm)) {
        p->st.resets++;
        link_close(l, true);
        return;
    }
    size_t len = (size_t)n;
    bool cut = false;
    if (chance(p, f->cut_ppm)) {
        p->st.cuts++;
        cut = true;
        len = 1 + (size_t)(rnd(p) % (uint64_t)len); /* part of it, or all */
        if (len == (size_t)n && len > 1) len--;
    }
    if (chance(p, f->stall_ppm) && f->stall_ms_max > 0) {
        p->st.stalls++;
        d->stall_until = (int64_t)uv_now(p->loop) + 1 +
                         (int64_t)(rnd(p) % (uint64_t)f->stall_ms_max);
    }
    chunk *c = malloc(sizeof *c + len);
    if (!c) {
        link_close(l, true);
        return;
    }
    c->next = NULL;
    c->len = len;
    c->cut_after = cut;
    memcpy(c->data, buf->base, len);
    int64_t due = (int64_t)uv_now(p->loop) +
                  (f->latency_ms_max > 0
                       ? (int64_t)(rnd(p) % (uint64_t)(f->latency_ms_max + 1))
                       : 0);
    if (d->tail && d->tail->due > due) due = d->tail->due; /* in order */
    c->due = due;
    if (d->tail)
        d->tail->next = c;
    else
        d->head = c;
    d->tail = c;
    d->queued += len;
    p->st.chunks++;
    p->st.bytes += len;
    if (cut) uv_read_stop(s); /* nothing after the cut passes */
    if (d->queued >= FP_QUEUE_BYTES_MAX && !d->paused) {
        d->paused = true;
        uv_read_stop(s);
    }
    dir_pump(d);
}

static void on_up_connected(uv_connect_t *req, int status)
{
    fp_link *l = req->data;
    if (l->closing) return;
    if (status < 0) {
        link_close(l, false); /* the server is down: the client sees EOF */
        return;
    }
    l->up_ready = true;
    uv_read_start((uv_stream_t *)&l->up, on_alloc, on_read);
    dir_pump(&l->c2s);
}

static void on_accept(uv_stream_t *server, int status)
{
    faultproxy *p = server->data;
    if (status < 0 || p->stopped) return;
    fp_link *l = calloc(1, sizeof *l);
    if (!l) return;
    l->p = p;
    uv_tcp_init(p->loop, &l->down);
    uv_tcp_init(p->loop, &l->up);
    l->handles = FP_LINK_HANDLES;
    l->down.data = l->up.data = l;
    dir *ds[2] = {&l->c2s, &l->s2c};
    for (int i = 0; i < 2; i++) {
        ds[i]->l = l;
        ds[i]->src = i == 0 ? &l->down : &l->up;
        ds[i]->dst = i == 0 ? &l->up : &l->down;
        uv_timer_init(p->loop, &ds[i]->timer);
        ds[i]->timer.data = ds[i];
    }
    l->next = p->links;
    if (p->links) p->links->prev = l;
    p->links = l;
    p->st.conns++;
    if (uv_accept(server, (uv_stream_t *)&l->down) != 0) {
        link_close(l, false);
        return;
    }
    uv_tcp_nodelay(&l->down, 1);
    uv_tcp_nodelay(&l->up, 1);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", p->upstream, &a);
    l->connect.data = l;
    if (uv_tcp_connect(&l->connect, &l->up, (const struct sockaddr *)&a,
                       on_up_connected) != 0) {
        link_close(l, false);
        return;
    }
    uv_read_start((uv_stream_t *)&l->down, on_alloc, on_read);
}

/* ---- the proxy --------------------------------------------------------------
 */

int fp_start(uv_loop_t *loop, uint16_t upstream_port, uint64_t seed,
             const fp_faults *faults, faultproxy **out)
{
    *out = NULL;
    faultproxy *p = calloc(1, sizeof *p);
    if (!p) return -1;
    p->loop = loop;
    p->upstream = upstream_port;
    p->rng = seed ^ 0x2545f4914f6cdd1dull;
    if (faults) p->f = *faults;
    uv_tcp_init(loop, &p->listener);
    p->listener.data = p;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    if (uv_tcp_bind(&p->listener, (const struct sockaddr *)&a, 0) != 0 ||
        uv_listen((uv_stream_t *)&p->listener, 512, on_accept) != 0 ||
        uv_tcp_getsockname(&p->listener, (struct sockaddr *)&bound, &blen) !=
            0) {
        p->stopped = true;
        fp_stop(p);
        return -1;
    }
    p->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    *out = p;
    return 0;
}

uint16_t fp_port(const faultproxy *p)
{
    return p->port;
}

void fp_set(faultproxy *p, const fp_faults *faults)
{
    memset(&p->f, 0, sizeof p->f);
    if (faults) p->f = *faults;
    /* A heal ends the stalls under way too. */
    for (fp_link *l = p->links; l && !faults; l = l->next) {
        l->c2s.stall_until = l->s2c.stall_until = 0;
        dir_arm(&l->c2s);
        dir_arm(&l->s2c);
    }
}

void fp_get_stats(const faultproxy *p, fp_stats *out)
{
    *out = p->st;
}

void fp_reset_one(faultproxy *p)
{
    size_t n = 0;
    for (fp_link *l = p->links; l; l = l->next)
        n += !l->closing;
    if (!n) return;
    size_t pick = (size_t)(rnd(p) % n);
    for (fp_link *l = p->links; l; l = l->next)
        if (!l->closing && pick-- == 0) {
            p->st.resets++;
            link_close(l, true);
            return;
        }
}

static void on_listener_closed(uv_handle_t *h)
{
    faultproxy *p = h->data;
    p->listener_closed = true;
    proxy_maybe_free(p);
}

void fp_stop(faultproxy *p)
{
    if (!p) return;
    p->stopped = true;
    for (fp_link *l = p->links; l; l = l->next)
        link_close(l, false);
    if (!uv_is_closing((uv_handle_t *)&p->listener))
        uv_close((uv_handle_t *)&p->listener, on_listener_closed);
}
