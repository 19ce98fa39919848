/* The fake shell of gwfake.h. */
#include "gwfake.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_storeq.h"
#include "sb_token.h"

gwfake GF;

static void io_send(void *ud, uint64_t conn, const uint8_t *p, size_t n)
{
    (void)ud;
    assert_true(conn < GWFAKE_CONNS);
    Sbp__Frame *fr = NULL;
    assert_int_equal(sb_frame_decode(GF.enc[conn], p, n, &fr), 0);
    assert_true(GF.nframes[conn] < GWFAKE_FRAMES);
    GF.sizes[conn][GF.nframes[conn]] = n;
    GF.frames[conn][GF.nframes[conn]++] = fr;
    if (n > GF.size_max[conn]) GF.size_max[conn] = n;
}

static void io_close(void *ud, uint64_t conn, uint16_t code, const char *why)
{
    (void)ud;
    (void)why;
    GF.closed[conn] = code;
}

static void io_store(void *ud, sb_req *r)
{
    (void)ud;
    assert_true(GF.nq < sizeof GF.queue / sizeof *GF.queue);
    GF.queue[GF.nq++] = r;
}

static int64_t io_now(void *ud)
{
    (void)ud;
    return GF.now;
}

sb_gw_io gwfake_io(void)
{
    sb_gw_io io = {
        .send = io_send, .close = io_close, .store = io_store, .now = io_now};
    return io;
}

void gwfake_regw(sb_gw_config *c)
{
    sb_gw_free(GF.gw);
    GF.gw = NULL;
    c->secret = (const uint8_t *)GWFAKE_SECRET;
    c->secret_len = strlen(GWFAKE_SECRET);
    sb_gw_io io = gwfake_io();
    assert_int_equal(sb_gw_new(c, &io, &GF.gw), 0);
    sb_gw_start(GF.gw, GF.now);
    gwfake_pump();
}

void gwfake_setup(sb_gw_config *c)
{
    memset(&GF, 0, sizeof GF);
    GF.now = GWFAKE_T0;
    assert_int_equal(sb_store_open(":memory:", SB_DURABILITY_OS, &GF.store), 0);
    gwfake_regw(c);
}

void gwfake_teardown(void)
{
    gwfake_pump();
    for (uint64_t c = 0; c < GWFAKE_CONNS; c++) {
        sb_gw_conn_closed(GF.gw, c);
        gwfake_clear(c);
    }
    gwfake_pump();
    sb_gw_free(GF.gw);
    sb_store_close(GF.store);
}

void gwfake_pump(void)
{
    while (GF.nq > 0) {
        size_t k = 0;
        if (GF.reads_reversed) {
            /* The first write, else the last read. */
            while (k < GF.nq && !sb_req_is_write(GF.queue[k]->kind))
                k++;
            if (k == GF.nq) k = GF.nq - 1;
        }
        sb_req *r = GF.queue[k];
        memmove(GF.queue + k, GF.queue + k + 1,
                (GF.nq - k - 1) * sizeof *GF.queue);
        GF.nq--;
        if (GF.fail_writes && sb_req_is_write(r->kind))
            r->rc = SB_E_STORE;
        else if (GF.fail_count && r->kind == GF.fail_kind && GF.fail_count--)
            r->rc = SB_E_STORE;
        else
            sb_storeq_apply(GF.store, r);
        if (r->kind == SB_REQ_CURSOR_SET && r->rc == 0) GF.cursor_acks++;
        r->done(r);
    }
    /* The end of the shell's loop turn: queued messages go out. */
    sb_gw_flush(GF.gw);
    if (GF.other) sb_gw_flush(GF.other);
}

bool gwfake_apply_kind(sb_req_kind kind)
{
    for (size_t k = 0; k < GF.nq; k++) {
        sb_req *r = GF.queue[k];
        if (r->kind != kind) continue;
        memmove(GF.queue + k, GF.queue + k + 1,
                (GF.nq - k - 1) * sizeof *GF.queue);
        GF.nq--;
        sb_storeq_apply(GF.store, r);
        r->done(r);
        return true;
    }
    return false;
}

void gwfake_clear(uint64_t c)
{
    for (size_t i = 0; i < GF.nframes[c]; i++)
        sb_frame_free(GF.frames[c][i]);
    GF.nframes[c] = 0;
    GF.size_max[c] = 0;
}

void gwfake_feed(uint64_t c, const Sbp__Frame *fr)
{
    sb_buf b = SB_BUF_INIT;
    assert_int_equal(sb_frame_encode(GF.enc[c], fr, &b), 0);
    sb_gw_conn_frame(GF.gw, c, b.data, b.len, GF.now);
    sb_buf_free(&b);
    if (!GF.defer_pump) gwfake_pump();
}

void gwfake_encoding(uint64_t c, sb_encoding enc)
{
    assert_true(c < GWFAKE_CONNS);
    GF.enc[c] = enc;
}

void gwfake_feed_raw(uint64_t c, const void *p, size_t n)
{
    sb_gw_conn_frame(GF.gw, c, p, n, GF.now);
    if (!GF.defer_pump) gwfake_pump();
}

void gwfake_hello_raw(uint64_t c, const char *sub, const char *role,
                      const char *device, const char *locale)
{
    sb_claims cl;
    memset(&cl, 0, sizeof cl);
    snprintf(cl.sub, sizeof cl.sub, "%s", sub);
    cl.role = sb_role_from_name(role);
    cl.exp = GF.now / 1000 + 3600;
    char tok[1024];
    assert_true(sb_token_sign((const uint8_t *)GWFAKE_SECRET,
                              strlen(GWFAKE_SECRET), &cl, tok, sizeof tok) > 0);
    assert_int_equal(sb_gw_conn_open(GF.gw, c, GF.enc[c], GF.now), 0);
    Sbp__Hello h = SBP__HELLO__INIT;
    h.token = tok;
    h.device_id = (char *)device;
    h.protocol = 1;
    h.locale = (char *)(locale ? locale : "");
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 1;
    fr.body_case = SBP__FRAME__BODY_HELLO;
    fr.hello = &h;
    gwfake_feed(c, &fr);
}

void gwfake_hello(uint64_t c, const char *sub, const char *role,
                  const char *device, const char *locale)
{
    gwfake_hello_raw(c, sub, role, device, locale);
    /* An agent's HELLO may be followed by assignments from the queue. */
    assert_non_null(gwfake_last_of(c, SBP__FRAME__BODY_WELCOME));
}

Sbp__Frame *gwfake_last(uint64_t c)
{
    assert_true(GF.nframes[c] > 0);
    return GF.frames[c][GF.nframes[c] - 1];
}

Sbp__Frame *gwfake_last_of(uint64_t c, Sbp__Frame__BodyCase k)
{
    for (size_t i = GF.nframes[c]; i > 0; i--)
        if (GF.frames[c][i - 1]->body_case == k) return GF.frames[c][i - 1];
    return NULL;
}

size_t gwfake_count(uint64_t c, Sbp__Frame__BodyCase k)
{
    size_t n = 0;
    for (size_t i = 0; i < GF.nframes[c]; i++)
        n += GF.frames[c][i]->body_case == k;
    return n;
}

void gwfake_send(uint64_t c, uint64_t conv, uint8_t id_byte, const char *body,
                 uint64_t quote_seq)
{
    uint8_t id[16];
    memset(id, id_byte, sizeof id);
    id[0] = (uint8_t)c; /* distinct per connection */
    Sbp__Send s = SBP__SEND__INIT;
    s.client_msg_id.data = id;
    s.client_msg_id.len = 16;
    s.conv_id = conv;
    s.type = SBP__MSG_TYPE__MSG_TEXT;
    s.body = (char *)body;
    s.quote_seq = quote_seq;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 100 + id_byte;
    fr.body_case = SBP__FRAME__BODY_SEND;
    fr.send = &s;
    gwfake_feed(c, &fr);
}

void gwfake_tick(int64_t advance_ms)
{
    GF.now += advance_ms;
    sb_gw_tick(GF.gw, GF.now);
    gwfake_pump();
}

void gwfake_ack(uint64_t c, uint64_t conv, uint64_t seq)
{
    Sbp__Ack a = SBP__ACK__INIT;
    a.conv_id = conv;
    a.seq = seq;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.body_case = SBP__FRAME__BODY_ACK;
    fr.ack = &a;
    gwfake_feed(c, &fr);
}
