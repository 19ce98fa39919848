/* The libuv transport of the client SDK against a small in-process server
 * on loopback (HTTP upgrade by hand, sb_ws server side, a toy store for
 * one conversation): connect, send and receive between two clients,
 * resend after a dropped connection, refusal by close 1008, a broken
 * handshake, many clients on one loop, closing from a callback, and a
 * list of URLs gone round (a dead port, a close 1001), a source address
 * of the client's choosing. Under
 * ASan this checks that every handle and buffer is released. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_client.h"
#include "sb_error.h"
#include "sb_ws.h"

#define STORE_MAX 512
#define FCONN_MAX 256

/* ---- the fake server --------------------------------------------------------
 */

typedef struct fsrv fsrv;

typedef struct fconn {
    fsrv *s;
    uv_tcp_t tcp;
    sb_buf rx;
    sb_ws *ws;
    sb_encoding enc;
    bool upgraded, closing, ready;
    char device[64];
    uint64_t acked;
} fconn;

typedef struct smsg {
    uint8_t id[16];
    char sender[65], device[65], body[128];
    uint64_t seq;
} smsg;

struct fsrv {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int port;
    fconn *conns[FCONN_MAX];
    int nconns;
    smsg store[STORE_MAX];
    uint64_t last_seq;
    /* behaviour */
    bool refuse_hello;     /* close 1008 on HELLO */
    bool bad_accept;       /* a wrong Sec-WebSocket-Accept */
    int drop_after_stores; /* store this many more, then drop (-1 off) */
    uint32_t pending_max;
    /* counts */
    int accepts, hellos, sends, duplicates, drops;
    char peer[64];    /* the address the last connection came from */
    uint64_t b_acked; /* the last ACK from device "dev-b" */
};

static void fconn_closed(uv_handle_t *h)
{
    fconn *k = h->data;
    sb_ws_free(k->ws);
    sb_buf_free(&k->rx);
    free(k);
}

static void fconn_close(fconn *k)
{
    if (k->closing) return;
    k->closing = true;
    fsrv *s = k->s;
    for (int i = 0; i < s->nconns; i++)
        if (s->conns[i] == k) s->conns[i] = s->conns[--s->nconns];
    uv_close((uv_handle_t *)&k->tcp, fconn_closed);
}

typedef struct wreq {
    uv_write_t w;
    char data[];
} wreq;

static void on_fwrite(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void fwrite_raw(fconn *k, const void *p, size_t n)
{
    if (k->closing || n == 0) return;
    wreq *r = malloc(sizeof *r + n);
    assert_non_null(r);
    memcpy(r->data, p, n);
    uv_buf_t b = uv_buf_init(r->data, (unsigned)n);
    if (uv_write(&r->w, (uv_stream_t *)&k->tcp, &b, 1, on_fwrite) != 0) free(r);
}

static void fflush_ws(fconn *k)
{
    sb_buf b = SB_BUF_INIT;
    assert_int_equal(sb_ws_pull(k->ws, &b), 0);
    fwrite_raw(k, b.data, b.len);
    sb_buf_free(&b);
}

static void fsend(fconn *k, const Sbp__Frame *f)
{
    sb_buf b = SB_BUF_INIT;
    assert_int_equal(sb_frame_encode(k->enc, f, &b), 0);
    sb_ws_send(k->ws, k->enc == SB_ENC_JSON, b.data, b.len);
    sb_buf_free(&b);
}

static void fill_msg(Sbp__Message *m, smsg *sm)
{
    sbp__message__init(m);
    m->msg_id = sm->seq;
    m->conv_id = 1;
    m->seq = sm->seq;
    m->sender = sm->sender;
    m->sender_device = sm->device;
    m->client_msg_id.data = sm->id;
    m->client_msg_id.len = 16;
    m->type = SBP__MSG_TYPE__MSG_TEXT;
    m->body = sm->body;
}

static void fsend_ack(fconn *k, uint32_t rid, smsg *sm, bool dup)
{
    Sbp__SendAck a = SBP__SEND_ACK__INIT;
    a.client_msg_id.data = sm->id;
    a.client_msg_id.len = 16;
    a.msg_id = sm->seq;
    a.conv_id = 1;
    a.seq = sm->seq;
    a.duplicate = dup;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = rid;
    f.body_case = SBP__FRAME__BODY_SEND_ACK;
    f.send_ack = &a;
    fsend(k, &f);
}

static void on_fmsg(void *ud, bool text, const uint8_t *p, size_t n)
{
    (void)text;
    fconn *k = ud;
    fsrv *s = k->s;
    if (k->closing) return;
    Sbp__Frame *f = NULL;
    assert_int_equal(sb_frame_decode(k->enc, p, n, &f), 0);
    switch (f->body_case) {
    case SBP__FRAME__BODY_HELLO: {
        s->hellos++;
        if (s->refuse_hello) {
            sb_ws_close(k->ws, 1008, "bad token");
            break;
        }
        snprintf(k->device, sizeof k->device, "%s", f->hello->device_id);
        Sbp__Welcome w = SBP__WELCOME__INIT;
        w.user_id = f->hello->token; /* the token is the user id here */
        w.heartbeat_ms = 30000;
        w.body_bytes_max = 8192;
        w.pending_sends_max = s->pending_max;
        w.sync_page_max = 7;
        Sbp__Frame a = SBP__FRAME__INIT;
        a.rid = f->rid;
        a.body_case = SBP__FRAME__BODY_WELCOME;
        a.welcome = &w;
        fsend(k, &a);
        k->ready = true;
        break;
    }
    case SBP__FRAME__BODY_SYNC: {
        uint64_t cur = 0;
        for (size_t i = 0; i < f->sync->n_cursors; i++)
            if (f->sync->cursors[i]->conv_id == 1)
                cur = f->sync->cursors[i]->seq;
        Sbp__Message m[7], *mp[7];
        size_t nm = 0;
        for (uint64_t q = cur + 1; q <= s->last_seq && nm < 7; q++) {
            fill_msg(&m[nm], &s->store[q - 1]);
            mp[nm] = &m[nm];
            nm++;
        }
        Sbp__SyncResp r = SBP__SYNC_RESP__INIT;
        r.n_messages = nm;
        r.messages = mp;
        r.more = cur + nm < s->last_seq;
        Sbp__Frame a = SBP__FRAME__INIT;
        a.rid = f->rid;
        a.body_case = SBP__FRAME__BODY_SYNC_RESP;
        a.sync_resp = &r;
        fsend(k, &a);
        break;
    }
    case SBP__FRAME__BODY_SEND: {
        s->sends++;
        smsg *sm = NULL;
        for (uint64_t q = 0; q < s->last_seq; q++)
            if (memcmp(s->store[q].id, f->send->client_msg_id.data, 16) == 0)
                sm = &s->store[q];
        if (sm) {
            s->duplicates++;
            fsend_ack(k, f->rid, sm, true);
            break;
        }
        assert_true(s->last_seq < STORE_MAX);
        sm = &s->store[s->last_seq++];
        memcpy(sm->id, f->send->client_msg_id.data, 16);
        sm->seq = s->last_seq;
        snprintf(sm->sender, sizeof sm->sender, "user");
        snprintf(sm->device, sizeof sm->device, "%s", k->device);
        snprintf(sm->body, sizeof sm->body, "%s", f->send->body);
        if (s->drop_after_stores == 0) {
            /* Stored, but the answer is lost with the connection. */
            s->drop_after_stores = -1;
            s->drops++;
            fconn_close(k);
            break;
        }
        if (s->drop_after_stores > 0) s->drop_after_stores--;
        fsend_ack(k, f->rid, sm, false);
        Sbp__Message m, *mp = &m;
        fill_msg(&m, sm);
        Sbp__Push pu = SBP__PUSH__INIT;
        pu.n_messages = 1;
        pu.messages = &mp;
        Sbp__Frame pf = SBP__FRAME__INIT;
        pf.body_case = SBP__FRAME__BODY_PUSH;
        pf.push = &pu;
        for (int i = 0; i < s->nconns; i++) {
            fconn *o = s->conns[i];
            if (o == k || !o->ready) continue;
            fsend(o, &pf);
            fflush_ws(o);
        }
        break;
    }
    case SBP__FRAME__BODY_ACK:
        k->acked = f->ack->seq;
        if (strcmp(k->device, "dev-b") == 0) s->b_acked = f->ack->seq;
        break;
    default:
        break;
    }
    sb_frame_free(f);
}

static void f_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char buf[65536];
    (void)h;
    (void)hint;
    *b = uv_buf_init(buf, sizeof buf);
}

static void f_upgrade(fconn *k)
{
    fsrv *s = k->s;
    const char *req = (const char *)k->rx.data;
    const char *end = strstr(req, "\r\n\r\n");
    if (!end) return;
    const char *kh = strstr(req, "Sec-WebSocket-Key: ");
    assert_non_null(kh);
    kh += strlen("Sec-WebSocket-Key: ");
    char accept[SB_WS_ACCEPT_LEN + 1];
    sb_ws_accept_key(kh, SB_WS_KEY_LEN, accept);
    if (s->bad_accept) accept[0] = accept[0] == 'A' ? 'B' : 'A';
    k->enc = strstr(req, SB_SUBPROTO_JSON) ? SB_ENC_JSON : SB_ENC_PROTO;
    char resp[512];
    int n = snprintf(
        resp, sizeof resp,
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: %s\r\n"
        "Sec-WebSocket-Protocol: %s\r\n\r\n",
        accept, k->enc == SB_ENC_JSON ? SB_SUBPROTO_JSON : SB_SUBPROTO_PROTO);
    fwrite_raw(k, resp, (size_t)n);
    sb_ws_cbs cbs = {.on_msg = on_fmsg};
    sb_ws_config wc = {.client = false, .msg_bytes_max = 1 << 20};
    assert_int_equal(sb_ws_new(NULL, &wc, &cbs, k, &k->ws), 0);
    k->upgraded = true;
    size_t head = (size_t)(end + 4 - req);
    size_t rest = k->rx.len - 1 - head; /* rx is NUL-terminated */
    if (rest) sb_ws_feed(k->ws, k->rx.data + head, rest);
}

static void f_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    fconn *k = st->data;
    if (k->closing) return;
    if (n < 0) {
        fconn_close(k);
        return;
    }
    if (!k->upgraded) {
        if (k->rx.len) k->rx.len--; /* drop the NUL */
        sb_buf_append(&k->rx, b->base, (size_t)n);
        sb_buf_append(&k->rx, "", 1);
        f_upgrade(k);
    } else {
        sb_ws_feed(k->ws, (const uint8_t *)b->base, (size_t)n);
    }
    if (k->closing || !k->ws) return;
    fflush_ws(k);
    if (sb_ws_done(k->ws)) fconn_close(k);
}

static void f_accept(uv_stream_t *l, int status)
{
    fsrv *s = l->data;
    assert_int_equal(status, 0);
    fconn *k = calloc(1, sizeof *k);
    assert_non_null(k);
    k->s = s;
    uv_tcp_init(s->loop, &k->tcp);
    k->tcp.data = k;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&k->tcp), 0);
    assert_true(s->nconns < FCONN_MAX);
    s->conns[s->nconns++] = k;
    s->accepts++;
    struct sockaddr_storage sa;
    int len = sizeof sa;
    s->peer[0] = 0;
    if (uv_tcp_getpeername(&k->tcp, (struct sockaddr *)&sa, &len) == 0 &&
        sa.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&sa, s->peer, sizeof s->peer);
    uv_read_start((uv_stream_t *)&k->tcp, f_alloc, f_read);
}

static fsrv *fsrv_new(uv_loop_t *loop)
{
    fsrv *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->loop = loop;
    s->drop_after_stores = -1;
    s->pending_max = 4;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&s->listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 512, f_accept), 0);
    struct sockaddr_in got;
    int len = sizeof got;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&got, &len);
    s->port = ntohs(got.sin_port);
    return s;
}

static void noop_close(uv_handle_t *h)
{
    (void)h;
}

/* Closes the listener and the connections; the loop then runs their
 * close callbacks. */
static void fsrv_close(fsrv *s)
{
    while (s->nconns)
        fconn_close(s->conns[0]);
    uv_close((uv_handle_t *)&s->listener, noop_close);
}

static void fsrv_free(fsrv *s)
{
    fsrv_close(s);
    uv_run(s->loop, UV_RUN_DEFAULT); /* let every close callback run */
    free(s);
}

/* ---- the clients
 * -------------------------------------------------------------- */

typedef struct app {
    sb_client *c;
    sb_client_state st;
    int err;
    int ready_count, msgs, sent, failed, closed;
    uint64_t last_seq;
    bool out_of_order;
    int close_after_msgs; /* sb_client_close from on_message */
} app;

static void a_state(void *ud, sb_client_state st, int err)
{
    app *a = ud;
    a->st = st;
    a->err = err;
    if (st == SB_CLIENT_READY) a->ready_count++;
}

static void a_closed(void *ud)
{
    ((app *)ud)->closed++;
}

static void a_message(void *ud, const Sbp__Message *m)
{
    app *a = ud;
    if (m->seq != a->last_seq + 1) a->out_of_order = true;
    a->last_seq = m->seq;
    a->msgs++;
    if (a->close_after_msgs && a->msgs == a->close_after_msgs)
        sb_client_close(a->c, a_closed);
}

static void a_status(void *ud, const sb_client_send_info *s)
{
    app *a = ud;
    if (s->status == SB_SEND_SENT) a->sent++;
    if (s->status == SB_SEND_FAILED) a->failed++;
}

/* source: the client's source address (cfg.source_addr), or NULL. */
static void app_new_src(app *a, uv_loop_t *loop, int port, const char *user,
                        const char *device, sb_encoding enc, const char *source)
{
    memset(a, 0, sizeof *a);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/ws", port);
    sb_client_config cfg;
    sb_client_config_default(&cfg);
    cfg.url = url;
    cfg.token = user;
    cfg.device_id = device;
    cfg.enc = enc;
    cfg.tick_ms = 10;
    cfg.backoff_ms_base = 5;
    cfg.backoff_ms_max = 50;
    cfg.source_addr = source;
    sb_client_cbs cbs = {.on_state = a_state,
                         .on_message = a_message,
                         .on_send_status = a_status};
    assert_int_equal(sb_client_new(loop, &cfg, &cbs, a, &a->c), 0);
    sb_client_start(a->c);
}

static void app_new(app *a, uv_loop_t *loop, int port, const char *user,
                    const char *device, sb_encoding enc)
{
    app_new_src(a, loop, port, user, device, enc, NULL);
}

typedef bool (*cond_fn)(void *);

static void run_until(uv_loop_t *loop, cond_fn cond, void *ud)
{
    uint64_t t0 = uv_now(loop);
    while (!cond(ud)) {
        assert_true(uv_now(loop) - t0 < 10000);
        uv_run(loop, UV_RUN_ONCE);
    }
}

static bool ready1(void *ud)
{
    return ((app *)ud)->st == SB_CLIENT_READY;
}

static bool not_ready1(void *ud)
{
    return ((app *)ud)->st != SB_CLIENT_READY;
}

typedef struct pair {
    app *a, *b;
    int n;
} pair;

static bool all_done(void *ud)
{
    pair *p = ud;
    return p->a->sent == p->n && p->b->msgs == p->n && p->a->msgs == p->n;
}

static bool closed1(void *ud)
{
    return ((app *)ud)->closed == 1;
}

static void close_app(uv_loop_t *loop, app *a)
{
    sb_client_close(a->c, a_closed);
    run_until(loop, closed1, a);
}

static void test_send_receive(void **state)
{
    (void)state;
    for (int enc = 0; enc < 2; enc++) {
        uv_loop_t loop;
        uv_loop_init(&loop);
        fsrv *s = fsrv_new(&loop);
        app a, b;
        app_new(&a, &loop, s->port, "alice", "dev-a", (sb_encoding)enc);
        app_new(&b, &loop, s->port, "bob", "dev-b", (sb_encoding)enc);
        run_until(&loop, ready1, &a);
        run_until(&loop, ready1, &b);
        pair p = {&a, &b, 30};
        for (int i = 0; i < p.n; i++) {
            char body[32];
            snprintf(body, sizeof body, "m%d", i);
            assert_int_equal(sb_client_send_text(a.c, 1, body, NULL), 0);
        }
        run_until(&loop, all_done, &p);
        assert_false(a.out_of_order);
        assert_false(b.out_of_order);
        assert_int_equal(sb_client_cursor(b.c, 1), 30);
        sb_client_stats st;
        sb_client_get_stats(a.c, &st);
        assert_int_equal(st.outbox_len, 0);
        assert_int_equal(s->sends, 30);
        assert_int_equal(s->duplicates, 0);
        close_app(&loop, &a);
        close_app(&loop, &b);
        fsrv_free(s);
        assert_int_equal(uv_loop_close(&loop), 0);
    }
}

static bool got10(void *ud)
{
    return ((app *)ud)->msgs == 10;
}

static void test_resend_after_drop(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    fsrv *s = fsrv_new(&loop);
    s->drop_after_stores = 2; /* the third SEND is stored, then the drop */
    app a, b;
    app_new(&a, &loop, s->port, "alice", "dev-a", SB_ENC_PROTO);
    app_new(&b, &loop, s->port, "bob", "dev-b", SB_ENC_PROTO);
    run_until(&loop, ready1, &a);
    run_until(&loop, ready1, &b);
    pair p = {&a, &b, 10};
    for (int i = 0; i < p.n; i++)
        assert_int_equal(sb_client_send_text(a.c, 1, "x", NULL), 0);
    run_until(&loop, all_done, &p);
    assert_int_equal(s->drops, 1);
    assert_int_equal(s->last_seq, 10); /* nothing stored twice */
    assert_true(s->duplicates >= 1);   /* the resent third */
    assert_int_equal(a.ready_count, 2);
    assert_int_equal(a.msgs, 10); /* own messages, each once */
    assert_false(a.out_of_order);
    assert_false(b.out_of_order);
    /* A late device catches up by SYNC, in pages (sync_page_max 7). */
    app c;
    app_new(&c, &loop, s->port, "carol", "dev-c", SB_ENC_JSON);
    run_until(&loop, got10, &c);
    assert_false(c.out_of_order);
    close_app(&loop, &a);
    close_app(&loop, &b);
    close_app(&loop, &c);
    fsrv_free(s);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static bool got1_sent(void *ud)
{
    return ((app *)ud)->sent == 1;
}

static bool stopped1(void *ud)
{
    return ((app *)ud)->st == SB_CLIENT_STOPPED;
}

static void test_refused_and_bad_handshake(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    fsrv *s = fsrv_new(&loop);
    s->refuse_hello = true;
    app a;
    app_new(&a, &loop, s->port, "alice", "dev-a", SB_ENC_PROTO);
    run_until(&loop, stopped1, &a);
    assert_int_equal(a.err, SB_E_BAD_TOKEN);
    uint64_t t0 = uv_now(&loop);
    while (uv_now(&loop) - t0 < 200)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(s->hellos, 1); /* never again */
    close_app(&loop, &a);

    /* A wrong Sec-WebSocket-Accept: never READY, retried with backoff. */
    s->refuse_hello = false;
    s->bad_accept = true;
    app_new(&a, &loop, s->port, "alice", "dev-a", SB_ENC_PROTO);
    t0 = uv_now(&loop);
    while (uv_now(&loop) - t0 < 300)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(a.ready_count, 0);
    assert_true(s->accepts >= 3);
    assert_int_equal(s->hellos, 1);
    assert_int_equal(sb_client_last_error(a.c), -EPROTO);
    close_app(&loop, &a);

    /* Nobody listening: refused, retried, closed cleanly mid-backoff. */
    app_new(&a, &loop, 1, "alice", "dev-a", SB_ENC_PROTO);
    t0 = uv_now(&loop);
    while (uv_now(&loop) - t0 < 100)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(sb_client_last_error(a.c), UV_ECONNREFUSED);
    close_app(&loop, &a);
    fsrv_free(s);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static bool ready_on(void *ud)
{
    app *a = ud;
    return a->st == SB_CLIENT_READY && a->ready_count == 2;
}

/* A list of three: nobody on the first port, so the second; closed 1001
 * there (the node drains), the third at once, though the backoff is long. */
static void test_url_list(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    fsrv *s1 = fsrv_new(&loop), *s2 = fsrv_new(&loop);
    char u[3][64];
    snprintf(u[0], sizeof u[0], "ws://127.0.0.1:1/ws");
    snprintf(u[1], sizeof u[1], "ws://127.0.0.1:%d/ws", s1->port);
    snprintf(u[2], sizeof u[2], "ws://127.0.0.1:%d/ws", s2->port);
    const char *urls[] = {u[0], u[1], u[2]};
    sb_client_config cfg;
    sb_client_config_default(&cfg);
    cfg.url = "not a url: unused with urls";
    cfg.urls = urls;
    cfg.n_urls = 3;
    cfg.urls_in_order = true;
    cfg.token = "alice";
    cfg.device_id = "dev-a";
    cfg.tick_ms = 10;
    cfg.backoff_ms_base = 2000;
    cfg.backoff_ms_max = 4000;
    sb_client_cbs cbs = {.on_state = a_state, .on_send_status = a_status};
    app a;
    memset(&a, 0, sizeof a);
    assert_int_equal(sb_client_new(&loop, &cfg, &cbs, &a, &a.c), 0);
    assert_string_equal(sb_client_get_url(a.c), u[0]);
    uint64_t t0 = uv_now(&loop);
    sb_client_start(a.c);
    run_until(&loop, ready1, &a);
    assert_true(uv_now(&loop) - t0 < 1000);
    assert_string_equal(sb_client_get_url(a.c), u[1]);
    assert_int_equal(s1->hellos, 1);
    assert_int_equal(sb_client_send_text(a.c, 1, "x", NULL), 0);
    run_until(&loop, got1_sent, &a);

    assert_int_equal(s1->nconns, 1);
    fconn *k = s1->conns[0];
    sb_ws_close(k->ws, SB_WS_CLOSE_GOING_AWAY, "server shutting down");
    fflush_ws(k);
    t0 = uv_now(&loop);
    run_until(&loop, ready_on, &a);
    assert_true(uv_now(&loop) - t0 < 1000);
    assert_string_equal(sb_client_get_url(a.c), u[2]);
    assert_int_equal(sb_client_close_code(a.c), 0);
    assert_int_equal(s2->hellos, 1);
    sb_client_stats st;
    sb_client_get_stats(a.c, &st);
    assert_int_equal(st.url_switches, 2);
    close_app(&loop, &a);

    /* Every URL of the list is checked. */
    const char *bad[] = {u[1], "http://127.0.0.1/ws"};
    cfg.urls = bad;
    cfg.n_urls = 2;
    sb_client *c = NULL;
    assert_int_equal(sb_client_new(&loop, &cfg, &cbs, &a, &c), -EINVAL);
    const char *many[SB_CLIENT_URLS_MAX + 1];
    for (int i = 0; i <= SB_CLIENT_URLS_MAX; i++)
        many[i] = u[1];
    cfg.urls = many;
    cfg.n_urls = SB_CLIENT_URLS_MAX + 1;
    assert_int_equal(sb_client_new(&loop, &cfg, &cbs, &a, &c), -EINVAL);
    assert_null(c);
    fsrv_close(s1);
    fsrv_close(s2);
    uv_run(&loop, UV_RUN_DEFAULT);
    free(s1);
    free(s2);
    assert_int_equal(uv_loop_close(&loop), 0);
}

#define MANY 200

typedef struct many {
    app *apps;
    int n;
} many;

static bool all_ready(void *ud)
{
    many *m = ud;
    for (int i = 0; i < m->n; i++)
        if (m->apps[i].st != SB_CLIENT_READY) return false;
    return true;
}

static bool all_closed(void *ud)
{
    many *m = ud;
    for (int i = 0; i < m->n; i++)
        if (!m->apps[i].closed) return false;
    return true;
}

static void test_many_clients_one_loop(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    fsrv *s = fsrv_new(&loop);
    app *apps = calloc(MANY, sizeof *apps);
    assert_non_null(apps);
    for (int i = 0; i < MANY; i++) {
        char dev[16];
        snprintf(dev, sizeof dev, "d%d", i);
        app_new(&apps[i], &loop, s->port, "u", dev, SB_ENC_PROTO);
    }
    many m = {apps, MANY};
    run_until(&loop, all_ready, &m);
    /* One send from the first: every other one gets it. */
    sb_client_send_text(apps[0].c, 1, "to all", NULL);
    for (;;) {
        int got = 0;
        for (int i = 0; i < MANY; i++)
            got += apps[i].msgs;
        if (got == MANY) break;
        uv_run(&loop, UV_RUN_ONCE);
    }
    for (int i = 0; i < MANY; i++)
        sb_client_close(apps[i].c, a_closed);
    run_until(&loop, all_closed, &m);
    free(apps);
    fsrv_free(s);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* cfg.source_addr: the connections come from that address (any of
 * 127/8 is this machine's loopback), on every attempt; one that is no
 * IP address is refused at creation. */
static void test_source_addr(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    fsrv *s = fsrv_new(&loop);
    app a;
    app_new_src(&a, &loop, s->port, "alice", "dev-a", SB_ENC_PROTO,
                "127.0.0.7");
    run_until(&loop, ready1, &a);
    assert_string_equal(s->peer, "127.0.0.7");
    fconn_close(s->conns[0]); /* the reconnect comes from it too */
    run_until(&loop, not_ready1, &a);
    run_until(&loop, ready1, &a);
    assert_int_equal(s->accepts, 2);
    assert_string_equal(s->peer, "127.0.0.7");
    close_app(&loop, &a);
    app b;
    app_new(&b, &loop, s->port, "bob", "dev-b", SB_ENC_PROTO);
    run_until(&loop, ready1, &b);
    assert_string_equal(s->peer, "127.0.0.1");
    close_app(&loop, &b);
    sb_client_config cfg;
    sb_client_config_default(&cfg);
    cfg.url = "ws://127.0.0.1:1/ws";
    cfg.token = "t";
    cfg.device_id = "d";
    cfg.source_addr = "localhost";
    sb_client *c = NULL;
    sb_client_cbs cbs = {0};
    assert_int_equal(sb_client_new(&loop, &cfg, &cbs, NULL, &c), -EINVAL);
    assert_null(c);
    fsrv_free(s);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_close_inside_callback(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    fsrv *s = fsrv_new(&loop);
    app a, b;
    app_new(&a, &loop, s->port, "alice", "dev-a", SB_ENC_PROTO);
    app_new(&b, &loop, s->port, "bob", "dev-b", SB_ENC_PROTO);
    b.close_after_msgs = 3;
    run_until(&loop, ready1, &a);
    run_until(&loop, ready1, &b);
    for (int i = 0; i < 6; i++)
        sb_client_send_text(a.c, 1, "y", NULL);
    run_until(&loop, closed1, &b);
    assert_int_equal(b.msgs, 3); /* nothing after the close */
    /* b ACKed exactly what it surfaced before it went. */
    uint64_t t0 = uv_now(&loop);
    while (uv_now(&loop) - t0 < 100)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(s->b_acked, 3);
    close_app(&loop, &a);
    fsrv_free(s);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_receive),
        cmocka_unit_test(test_resend_after_drop),
        cmocka_unit_test(test_refused_and_bad_handshake),
        cmocka_unit_test(test_many_clients_one_loop),
        cmocka_unit_test(test_close_inside_callback),
        cmocka_unit_test(test_url_list),
        cmocka_unit_test(test_source_addr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
