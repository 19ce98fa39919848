/* integ_deflate: permessage-deflate (RFC 7692) against the real server.
 *
 * SDK devices in both encodings, with and without the extension, on one
 * conversation: a customer offering it, an agent's device that does not
 * and its second device that does. Long messages both ways, then the
 * whole history paged: every device has everything once, in order, as
 * the store has it, and the server counted messages compressed each way
 * (/metrics). A raw client offering it gets its HISTORY page compressed
 * (RSV1) and sends every frame compressed; one not offering it never
 * sees RSV1. Then the bounds: a zip bomb (a few KiB inflating past the
 * 64 KiB message limit) closes 1009, data that is not deflate 1007,
 * compressed text that is not UTF-8 1007, RSV1 on a connection that did
 * not negotiate it 1002; a compressed message just under the limit is
 * taken. The devices never noticed: one session each, /healthz 200. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"
#include "sb_wsdeflate.h"

#define WAIT_MS 20000
#define MSGS 150
#define FRAME_MAX 65536

static it_env E;

static int teardown(void **state)
{
    (void)state;
    it_env_free(&E);
    return 0;
}

/* Text that compresses as chat does: words of a small vocabulary. */
static void chatty(char *p, size_t n, unsigned seed)
{
    static const char *words[] = {"hello ",  "order ", "refund ", "please ",
                                  "thanks ", "你好 ",  "when ",   "my ",
                                  "the ",    "agent ", "ticket ", "退款 "};
    size_t k = 0;
    while (k + 8 < n) {
        seed = seed * 1103515245u + 12345u;
        const char *w = words[(seed >> 16) % 12];
        size_t l = strlen(w);
        memcpy(p + k, w, l);
        k += l;
    }
    p[k] = '\0';
}

/* The value of a counter line of /metrics (the first that starts with
 * prefix), or -1. */
static long long metric(const char *prefix)
{
    char req[128], resp[65536];
    snprintf(req, sizeof req, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    bool closed = false;
    if (it_http(E.srv.admin_port, req, strlen(req), resp, sizeof resp, 5000,
                &closed) < 0)
        return -1;
    const char *p = strstr(resp, prefix);
    return p ? atoll(p + strlen(prefix)) : -1;
}

static void conversation(sb_encoding enc, const char *tag)
{
    E.enc = enc;
    char cust_name[32], agent_name[32];
    snprintf(cust_name, sizeof cust_name, "dc-%s", tag);
    snprintf(agent_name, sizeof agent_name, "da-%s", tag);
    it_device *cust = it_device_new(&E, cust_name, "customer", "c1");
    it_device *plain = it_device_new(&E, agent_name, "agent", "a1");
    it_device *agent2 = it_device_new(&E, agent_name, "agent", "a2");
    plain->cfg.deflate = false;
    it_device *all[3] = {cust, plain, agent2};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(it_device_start(all[i]), 0);
        assert_true(it_device_wait_ready(all[i], WAIT_MS));
    }
    assert_true(sb_client_deflate(cust->c));
    assert_false(sb_client_deflate(plain->c));
    assert_true(sb_client_deflate(agent2->c));
    uint64_t conv = it_open(cust, agent_name, WAIT_MS);
    assert_true(conv != 0);
    /* Long messages from the customer (each SEND and PUSH compressed),
     * short ones from the agent (not). */
    static char body[3000];
    for (int i = 0; i < MSGS; i++) {
        chatty(body, 600 + (size_t)i * 13, (unsigned)i);
        assert_int_equal(it_send_text(cust, conv, body), 0);
        assert_int_equal(it_send_n(plain, conv, i, 1, tag), 0);
    }
    assert_true(it_wait_sent(all, 3, WAIT_MS));
    assert_true(it_wait_surfaced(all, 3, conv, 2 * MSGS, WAIT_MS));
    assert_int_equal(it_check_conv(&E, conv, all, 3, 2 * MSGS), 0);
    assert_int_equal(it_check_store(&E, conv, cust, NULL), 0);
    /* The whole history, in pages of 200: large compressed frames. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(it_history_all(all[i], conv, 200, WAIT_MS), 0);
        assert_int_equal(all[i]->hist.n, 2 * MSGS);
        for (size_t k = 0; k < all[i]->hist.n; k++)
            assert_int_equal(all[i]->hist.seqs[k], k + 1);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(all[i]->readies, 1);
}

static void test_devices(void **state)
{
    (void)state;
    it_env_init(&E);
    const char *args[] = {"--admin-listen", "127.0.0.1:0", "--durability", "os",
                          NULL};
    E.unlimited = true;
    assert_int_equal(it_server_start(&E, args), 0);
    assert_true(E.srv.admin_port != 0);
    conversation(SB_ENC_PROTO, "p");
    conversation(SB_ENC_JSON, "j");
    assert_int_equal(E.violations, 0);
    long long out =
        metric("switchboard_ws_compressed_messages_total{direction=\"out\"} ");
    long long in =
        metric("switchboard_ws_compressed_messages_total{direction=\"in\"} ");
    long long plain = metric("switchboard_ws_compressed_bytes_total{"
                             "direction=\"out\",form=\"plain\"} ");
    long long wire = metric("switchboard_ws_compressed_bytes_total{"
                            "direction=\"out\",form=\"wire\"} ");
    fprintf(stderr,
            "deflate: %lld messages out (%lld bytes as %lld), %lld in\n", out,
            plain, wire, in);
    /* Each customer's SENDs came compressed; out went the PUSH frames
     * (several messages each) and the history pages to the devices that
     * took the extension, to well under half their size. */
    assert_true(in >= 2 * MSGS);
    assert_true(out >= 2 * 2 * 2); /* at least the history pages */
    assert_true(wire > 0 && wire * 2 < plain);
}

/* A raw client's HISTORY of conversation conv: compressed when it
 * offered deflate, never otherwise. */
static void raw_history(bool deflate, uint64_t conv)
{
    it_raw r;
    assert_int_equal(
        it_raw_open_deflate(&r, E.srv.port, SB_ENC_PROTO, deflate, 0), 0);
    assert_int_equal(r.deflate.on, deflate);
    assert_int_equal(it_raw_hello(&r, harness_token("dc-p", "customer", 600),
                                  "raw-h", WAIT_MS),
                     0);
    Sbp__History h = SBP__HISTORY__INIT;
    h.conv_id = conv;
    h.limit = 200;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_HISTORY;
    f.history = &h;
    uint32_t rid = it_raw_send(&r, &f);
    Sbp__Frame *g =
        it_raw_expect(&r, SBP__FRAME__BODY_HISTORY_RESP, rid, WAIT_MS);
    assert_non_null(g);
    /* The page is cut to the frame bound before it is compressed
     * (sb_page): the newest that fit, and more. */
    assert_true(g->history_resp->n_messages > 0);
    assert_true(g->history_resp->n_messages == 200 || g->history_resp->more);
    sb_frame_free(g);
    if (deflate)
        assert_true(r.compressed_rx > 0);
    else
        assert_int_equal(r.compressed_rx, 0);
    it_raw_close(&r);
}

/* A masked client frame with first byte first. */
static void client_frame(sb_buf *out, uint8_t first, const uint8_t *p, size_t n)
{
    uint8_t h[14];
    size_t k = 0;
    h[k++] = first;
    if (n < 126) {
        h[k++] = (uint8_t)(0x80 | n);
    } else {
        assert_true(n < 65536);
        h[k++] = 0x80 | 126;
        h[k++] = (uint8_t)(n >> 8);
        h[k++] = (uint8_t)n;
    }
    static const uint8_t key[4] = {9, 8, 7, 6};
    memcpy(h + k, key, 4);
    k += 4;
    assert_int_equal(sb_buf_append(out, h, k), 0);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i] ^ key[i & 3];
        assert_int_equal(sb_buf_append(out, &c, 1), 0);
    }
}

/* Sends one hand-made frame after HELLO on a connection that offered
 * deflate (or not) and returns the server's close code. */
static int close_for(bool deflate, uint8_t first, const uint8_t *p, size_t n)
{
    it_raw r;
    assert_int_equal(
        it_raw_open_deflate(&r, E.srv.port, SB_ENC_JSON, deflate, 1 << 20), 0);
    assert_int_equal(it_raw_hello(&r, harness_token("dc-j", "customer", 600),
                                  "raw-b", WAIT_MS),
                     0);
    sb_buf b = SB_BUF_INIT;
    client_frame(&b, first, p, n);
    assert_int_equal(it_raw_write(&r, b.data, b.len), 0);
    sb_buf_free(&b);
    int code = it_raw_wait_close(&r, WAIT_MS);
    it_raw_close(&r);
    return code;
}

static void test_raw_and_bounds(void **state)
{
    (void)state;
    /* The conversation the devices made (dc-p's only one). */
    it_device *cust = NULL;
    for (size_t i = 0; i < E.n_devs; i++)
        if (strcmp(E.devs[i]->user, "dc-p") == 0) cust = E.devs[i];
    assert_non_null(cust);
    uint64_t conv = cust->convs[0].conv_id;
    raw_history(true, conv);
    raw_history(false, conv);

    sb_wsdeflate *z;
    assert_int_equal(sb_wsdeflate_new(6, &z), 0);
    sb_buf m = SB_BUF_INIT;
    /* A zip bomb: 4 MiB of spaces in a JSON string, a few KiB on the
     * wire, against the 64 KiB message limit. */
    size_t bomb_n = 4u << 20;
    char *bomb = malloc(bomb_n);
    assert_non_null(bomb);
    memset(bomb, ' ', bomb_n);
    bomb[0] = '{';
    bomb[bomb_n - 1] = '}';
    assert_int_equal(
        sb_wsdeflate_compress(z, 15, (const uint8_t *)bomb, bomb_n, &m), 0);
    assert_true(m.len < FRAME_MAX / 4);
    assert_int_equal(close_for(true, 0xc1, m.data, m.len), SB_WS_CLOSE_TOO_BIG);
    free(bomb);
    /* Not deflate: a reserved block type. */
    static const uint8_t junk[] = {0xff, 0xee, 0xdd, 0xcc, 0x01, 0x02};
    assert_int_equal(close_for(true, 0xc1, junk, sizeof junk),
                     SB_WS_CLOSE_BAD_DATA);
    /* Compressed text that is not UTF-8. */
    static uint8_t bad[800];
    memset(bad, 'a', sizeof bad);
    bad[10] = 0xc3;
    bad[11] = 0x28;
    m.len = 0;
    assert_int_equal(sb_wsdeflate_compress(z, 15, bad, sizeof bad, &m), 0);
    assert_int_equal(close_for(true, 0xc1, m.data, m.len),
                     SB_WS_CLOSE_BAD_DATA);
    /* RSV1 where the extension was not negotiated. */
    assert_int_equal(close_for(false, 0xc1, m.data, m.len),
                     SB_WS_CLOSE_PROTOCOL);

    /* A compressed SEND whose frame is just under the limit is taken. */
    it_raw r;
    assert_int_equal(it_raw_open_deflate(&r, E.srv.port, SB_ENC_JSON, true, 0),
                     0);
    assert_int_equal(it_raw_hello(&r, harness_token("dc-j", "customer", 600),
                                  "raw-s", WAIT_MS),
                     0);
    uint64_t jconv = 0;
    for (size_t i = 0; i < E.n_devs; i++)
        if (strcmp(E.devs[i]->user, "dc-j") == 0)
            jconv = E.devs[i]->convs[0].conv_id;
    assert_true(jconv != 0);
    static char body[8000];
    memset(body, 'z', sizeof body - 1);
    /* Padding a JSON frame with spaces: the frame is near the limit, the
     * body within its own limit (8 KiB). */
    size_t pad = FRAME_MAX - 9000;
    char *frame = malloc(FRAME_MAX);
    assert_non_null(frame);
    int n = snprintf(frame, FRAME_MAX,
                     "{\"rid\":77,\"send\":{\"client_msg_id\":"
                     "\"AAECAwQFBgcICQoLDA0ODw==\",\"conv_id\":%llu,"
                     "\"type\":\"MSG_TEXT\",\"body\":\"%s\"}",
                     (unsigned long long)jconv, body);
    memset(frame + n, ' ', pad);
    frame[n + pad] = '}';
    size_t flen = (size_t)n + pad + 1;
    assert_true(flen < FRAME_MAX && flen > FRAME_MAX - 1024);
    assert_int_equal(it_raw_send_ws(&r, true, frame, flen), 0);
    free(frame);
    Sbp__Frame *g = it_raw_expect(&r, SBP__FRAME__BODY_SEND_ACK, 77, WAIT_MS);
    assert_non_null(g);
    sb_frame_free(g);
    it_raw_close(&r);
    sb_buf_free(&m);
    sb_wsdeflate_free(z);

    /* Nobody else noticed. */
    for (size_t i = 0; i < E.n_devs; i++)
        assert_int_equal(E.devs[i]->readies, 1);
    char resp[256];
    bool closed = false;
    const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(it_http(E.srv.port, req, sizeof req - 1, resp, sizeof resp,
                             2000, &closed),
                     200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_devices),
        cmocka_unit_test_teardown(test_raw_and_bounds, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
