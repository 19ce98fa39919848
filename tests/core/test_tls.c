/* sb_tls over memory: a client and a server wired by buffers, with
 * certificates made at test time. The handshake and data both ways in
 * chunk sizes from 1 byte; a wrong CA and a wrong host refused with
 * SB_TLS_E_VERIFY; plaintext to a TLS server refused; close_notify; bad
 * certificate and key files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sb_tls.h"
#include "tls_cert.h"

static char dir[64];
static char good_pem[128], good_key[128], other_pem[128], other_key[128];

static int group_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sbtls.XXXXXX");
    if (!mkdtemp(dir)) return -1;
    if (tls_cert_make(dir, "good") || tls_cert_make(dir, "other")) return -1;
    snprintf(good_pem, sizeof good_pem, "%s/good.pem", dir);
    snprintf(good_key, sizeof good_key, "%s/good.key", dir);
    snprintf(other_pem, sizeof other_pem, "%s/other.pem", dir);
    snprintf(other_key, sizeof other_key, "%s/other.key", dir);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    unlink(good_pem);
    unlink(good_key);
    unlink(other_pem);
    unlink(other_key);
    rmdir(dir);
    return 0;
}

typedef struct end {
    sb_tls *t;
    sb_buf out;   /* to send to the other end */
    sb_buf plain; /* received */
    int rc;       /* first failure */
} end;

/* Moves a's output into b, chunk bytes at a time. */
static void move(end *a, end *b, size_t chunk)
{
    sb_buf in = a->out;
    a->out = (sb_buf)SB_BUF_INIT;
    for (size_t off = 0; off < in.len && !b->rc; off += chunk) {
        size_t n = in.len - off < chunk ? in.len - off : chunk;
        int rc = sb_tls_feed(b->t, in.data + off, n, &b->plain, &b->out);
        if (rc) b->rc = rc;
    }
    sb_buf_free(&in);
}

static void pump(end *c, end *s, size_t chunk)
{
    for (int i = 0; i < 20 && (c->out.len || s->out.len); i++) {
        move(c, s, chunk);
        move(s, c, chunk);
    }
}

static void pair(const char *ca, const char *host, sb_tls_ctx **cc,
                 sb_tls_ctx **sc, end *c, end *s)
{
    char err[256];
    memset(c, 0, sizeof *c);
    memset(s, 0, sizeof *s);
    assert_int_equal(sb_tls_ctx_server(good_pem, good_key, err, sizeof err, sc),
                     0);
    assert_int_equal(sb_tls_ctx_client(ca, err, sizeof err, cc), 0);
    assert_int_equal(sb_tls_new(*sc, NULL, &s->t), 0);
    assert_int_equal(sb_tls_new(*cc, host, &c->t), 0);
}

static void unpair(sb_tls_ctx *cc, sb_tls_ctx *sc, end *c, end *s)
{
    sb_tls_free(c->t);
    sb_tls_free(s->t);
    sb_tls_ctx_free(cc);
    sb_tls_ctx_free(sc);
    sb_buf_free(&c->out);
    sb_buf_free(&c->plain);
    sb_buf_free(&s->out);
    sb_buf_free(&s->plain);
}

static void test_both_ways(void **state)
{
    (void)state;
    static uint8_t big[100000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7 + 1);
    const size_t chunks[] = {1, 7, 1500, 1 << 20};
    for (size_t k = 0; k < 4; k++) {
        sb_tls_ctx *cc, *sc;
        end c, s;
        pair(good_pem, k % 2 ? "localhost" : "127.0.0.1", &cc, &sc, &c, &s);
        /* Written before the handshake: waits, and starts it. */
        assert_int_equal(
            sb_tls_write(c.t, (const uint8_t *)"GET /ws", 7, &c.out), 0);
        assert_false(sb_tls_ready(c.t));
        assert_true(c.out.len > 0); /* the ClientHello */
        pump(&c, &s, chunks[k]);
        assert_int_equal(c.rc, 0);
        assert_int_equal(s.rc, 0);
        assert_true(sb_tls_ready(c.t) && sb_tls_ready(s.t));
        assert_int_equal(s.plain.len, 7);
        assert_memory_equal(s.plain.data, "GET /ws", 7);
        assert_int_equal(sb_tls_write(s.t, big, sizeof big, &s.out), 0);
        assert_int_equal(sb_tls_write(c.t, big, 1000, &c.out), 0);
        pump(&c, &s, chunks[k]);
        assert_int_equal(c.plain.len, sizeof big);
        assert_memory_equal(c.plain.data, big, sizeof big);
        assert_int_equal(s.plain.len, 7 + 1000);
        assert_memory_equal(s.plain.data + 7, big, 1000);
        /* close_notify: the end of the stream. */
        sb_tls_close(c.t, &c.out);
        move(&c, &s, chunks[k]);
        assert_int_equal(s.rc, -ESHUTDOWN);
        unpair(cc, sc, &c, &s);
    }
}

static void test_refused(void **state)
{
    (void)state;
    /* A CA that did not sign the server's certificate. */
    sb_tls_ctx *cc, *sc;
    end c, s;
    pair(other_pem, "127.0.0.1", &cc, &sc, &c, &s);
    assert_int_equal(sb_tls_write(c.t, (const uint8_t *)"x", 1, &c.out), 0);
    pump(&c, &s, 4096);
    assert_int_equal(c.rc, SB_TLS_E_VERIFY);
    assert_int_equal(c.plain.len, 0);
    assert_int_equal(s.plain.len, 0);
    unpair(cc, sc, &c, &s);
    /* The right CA, another host. */
    pair(good_pem, "example.com", &cc, &sc, &c, &s);
    assert_int_equal(sb_tls_write(c.t, (const uint8_t *)"x", 1, &c.out), 0);
    pump(&c, &s, 4096);
    assert_int_equal(c.rc, SB_TLS_E_VERIFY);
    assert_int_equal(s.plain.len, 0);
    unpair(cc, sc, &c, &s);
    pair(good_pem, "10.0.0.1", &cc, &sc, &c, &s);
    assert_int_equal(sb_tls_write(c.t, (const uint8_t *)"x", 1, &c.out), 0);
    pump(&c, &s, 4096);
    assert_int_equal(c.rc, SB_TLS_E_VERIFY);
    unpair(cc, sc, &c, &s);
    /* Plain HTTP to a TLS server. */
    pair(good_pem, "127.0.0.1", &cc, &sc, &c, &s);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(
        sb_tls_feed(s.t, (const uint8_t *)req, strlen(req), &s.plain, &s.out),
        -EPROTO);
    assert_int_equal(s.plain.len, 0);
    unpair(cc, sc, &c, &s);
}

static void test_bad_files(void **state)
{
    (void)state;
    char err[256];
    sb_tls_ctx *ctx = NULL;
    assert_int_equal(
        sb_tls_ctx_server("/nonexistent.pem", good_key, err, sizeof err, &ctx),
        -EINVAL);
    assert_null(ctx);
    assert_non_null(strstr(err, "/nonexistent.pem"));
    assert_int_equal(
        sb_tls_ctx_server(good_pem, other_key, err, sizeof err, &ctx), -EINVAL);
    assert_non_null(strstr(err, "other.key")); /* a key of another cert */
    assert_int_equal(
        sb_tls_ctx_server(good_key, good_key, err, sizeof err, &ctx), -EINVAL);
    assert_int_equal(
        sb_tls_ctx_client("/nonexistent.pem", err, sizeof err, &ctx), -EINVAL);
    /* The system's CAs. */
    assert_int_equal(sb_tls_ctx_client(NULL, err, sizeof err, &ctx), 0);
    sb_tls *t = NULL;
    assert_int_equal(sb_tls_new(ctx, "", &t), -EINVAL); /* a host is needed */
    assert_null(t);
    sb_tls_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_both_ways),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
