/* sb_ws as the client uses it: a client and a server connection wired by
 * memory buffers, messages both ways in both frame kinds, the 1009 close
 * of an oversized message, and the handshake's accept key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "sb_ws.h"

typedef struct end {
    sb_ws *ws;
    int n;
    bool text[8];
    size_t len[8];
    uint8_t data[8][256];
    uint8_t mask;
} end;

static void on_msg(void *ud, bool text, const uint8_t *p, size_t n)
{
    end *e = ud;
    assert_true(e->n < 8);
    e->text[e->n] = text;
    e->len[e->n] = n;
    memcpy(e->data[e->n], p, n < 256 ? n : 256);
    e->n++;
}

static void rand_bytes(void *ud, uint8_t *p, size_t n)
{
    end *e = ud;
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(e->mask + i * 31);
}

/* Moves everything from a to b, in chunks of chunk bytes. */
static void wire(end *from, end *to, size_t chunk)
{
    sb_buf b = SB_BUF_INIT;
    assert_int_equal(sb_ws_pull(from->ws, &b), 0);
    for (size_t off = 0; off < b.len; off += chunk) {
        size_t n = b.len - off < chunk ? b.len - off : chunk;
        sb_ws_feed(to->ws, b.data + off, n);
    }
    sb_buf_free(&b);
}

static void pair(end *c, end *s, uint64_t s_max)
{
    memset(c, 0, sizeof *c);
    memset(s, 0, sizeof *s);
    c->mask = 0x5a;
    sb_ws_cbs cbs = {.on_msg = on_msg, .rand_bytes = rand_bytes};
    sb_ws_config cc = {.client = true, .msg_bytes_max = 1 << 20};
    sb_ws_config sc = {.client = false, .msg_bytes_max = s_max};
    assert_int_equal(sb_ws_new(NULL, &cc, &cbs, c, &c->ws), 0);
    assert_int_equal(sb_ws_new(NULL, &sc, &cbs, s, &s->ws), 0);
}

static void test_both_ways(void **state)
{
    (void)state;
    size_t chunks[] = {1, 3, 4096};
    for (size_t k = 0; k < 3; k++) {
        end c, s;
        pair(&c, &s, 1 << 20);
        assert_int_equal(sb_ws_send(c.ws, true, (const uint8_t *)"hello", 5),
                         0);
        uint8_t bin[200];
        for (int i = 0; i < 200; i++)
            bin[i] = (uint8_t)i;
        assert_int_equal(sb_ws_send(c.ws, false, bin, sizeof bin), 0);
        wire(&c, &s, chunks[k]);
        assert_int_equal(s.n, 2);
        assert_true(s.text[0]);
        assert_int_equal(s.len[0], 5);
        assert_memory_equal(s.data[0], "hello", 5);
        assert_false(s.text[1]);
        assert_int_equal(s.len[1], 200);
        assert_memory_equal(s.data[1], bin, 200);

        assert_int_equal(sb_ws_send(s.ws, false, bin, 10), 0);
        assert_int_equal(
            sb_ws_send(s.ws, true, (const uint8_t *)"{\"a\":1}", 7), 0);
        wire(&s, &c, chunks[k]);
        assert_int_equal(c.n, 2);
        assert_false(c.text[0]);
        assert_memory_equal(c.data[0], bin, 10);
        assert_true(c.text[1]);
        assert_memory_equal(c.data[1], "{\"a\":1}", 7);

        /* A normal close, started by the server. */
        assert_int_equal(sb_ws_close(s.ws, 1001, "draining"), 0);
        wire(&s, &c, chunks[k]);
        assert_true(sb_ws_close_received(c.ws));
        assert_int_equal(sb_ws_close_code(c.ws), 1001);
        wire(&c, &s, chunks[k]); /* wslay answers the close */
        assert_true(sb_ws_done(c.ws));
        assert_true(sb_ws_done(s.ws));
        assert_int_equal(sb_ws_close_code(s.ws), 1001);
        sb_ws_free(c.ws);
        sb_ws_free(s.ws);
    }
}

static void test_too_big_closes_1009(void **state)
{
    (void)state;
    end c, s;
    pair(&c, &s, 64);
    uint8_t big[100];
    memset(big, 'x', sizeof big);
    assert_int_equal(sb_ws_send(c.ws, false, big, sizeof big), 0);
    wire(&c, &s, 4096);
    assert_int_equal(s.n, 0);
    wire(&s, &c, 4096);
    assert_true(sb_ws_close_received(c.ws));
    assert_int_equal(sb_ws_close_code(c.ws), SB_WS_CLOSE_TOO_BIG);
    /* Exactly the limit passes. */
    end c2, s2;
    pair(&c2, &s2, 64);
    assert_int_equal(sb_ws_send(c2.ws, false, big, 64), 0);
    wire(&c2, &s2, 4096);
    assert_int_equal(s2.n, 1);
    sb_ws_free(c.ws);
    sb_ws_free(s.ws);
    sb_ws_free(c2.ws);
    sb_ws_free(s2.ws);
}

static void test_accept_key(void **state)
{
    (void)state;
    char accept[SB_WS_ACCEPT_LEN + 1];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    sb_ws_accept_key(key, strlen(key), accept);
    assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_both_ways),
        cmocka_unit_test(test_too_big_closes_1009),
        cmocka_unit_test(test_accept_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
