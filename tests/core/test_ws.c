/* sb_ws as the server uses it, against frames that break RFC 6455: each is
 * answered with a close frame carrying 1002 (protocol error), whether its
 * bytes arrive at once or one at a time, and nothing after it is read. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "sb_ws.h"

static int msgs; /* data messages delivered */

static void on_msg(void *ud, bool text, const uint8_t *p, size_t n)
{
    (void)ud;
    (void)text;
    (void)p;
    (void)n;
    msgs++;
}

static const sb_ws_cbs CBS = {.on_msg = on_msg};

/* A masked frame from a client: opcode op, FIN fin, payload length len
 * encoded as written (len7 is the 7-bit field; ext its extension, big
 * endian, of ext_n bytes), then the mask and n_payload bytes of payload
 * (zeros masked with the zero key). Returns the bytes written to out. */
static size_t frame(uint8_t *out, uint8_t op, bool fin, uint8_t len7,
                    uint64_t ext, size_t ext_n, size_t n_payload)
{
    size_t k = 0;
    out[k++] = (uint8_t)((fin ? 0x80 : 0) | op);
    out[k++] = (uint8_t)(0x80 | len7);
    for (size_t i = ext_n; i > 0; i--)
        out[k++] = (uint8_t)(ext >> (8 * (i - 1)));
    memset(out + k, 0, 4 + n_payload); /* mask key 0, payload zeros */
    return k + 4 + n_payload;
}

/* Feeds p to a new server connection (all at once, or one byte at a time
 * with bytewise) after a valid text message, and returns the status code
 * of the close frame it answers with (0: a close without one, -1: no
 * close at all). */
static int close_code_for(const uint8_t *p, size_t n, bool bytewise)
{
    sb_ws *ws = NULL;
    assert_int_equal(sb_ws_new(false, 1 << 20, &CBS, NULL, &ws), 0);
    msgs = 0;
    uint8_t ok[32];
    size_t okn = frame(ok, 0x1, true, 2, 0, 0, 2);
    ok[okn - 2] = 'h';
    ok[okn - 1] = 'i';
    assert_int_equal(sb_ws_feed(ws, ok, okn), 0);
    assert_int_equal(msgs, 1);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i += bytewise ? 1 : n)
        rc = sb_ws_feed(ws, p + i, bytewise ? 1 : n);
    assert_int_equal(rc, -EPROTO);
    /* Nothing more is read. */
    assert_int_equal(sb_ws_feed(ws, ok, okn), -EPROTO);
    assert_int_equal(msgs, 1);
    sb_buf out = SB_BUF_INIT;
    assert_int_equal(sb_ws_pull(ws, &out), 0);
    int code = -1;
    /* The server's frames are unmasked: find the close (opcode 8). */
    for (size_t i = 0; i + 2 <= out.len;) {
        uint8_t op = out.data[i] & 0x0f, len = out.data[i + 1] & 0x7f;
        if (op == 0x8) {
            code = len >= 2 ? out.data[i + 2] << 8 | out.data[i + 3] : 0;
            break;
        }
        i += 2 + len;
    }
    sb_buf_free(&out);
    sb_ws_free(ws);
    return code;
}

static void expect_1002(const uint8_t *p, size_t n)
{
    assert_int_equal(close_code_for(p, n, false), SB_WS_CLOSE_PROTOCOL);
    assert_int_equal(close_code_for(p, n, true), SB_WS_CLOSE_PROTOCOL);
}

static void test_ping_fragmented(void **state)
{
    (void)state;
    uint8_t b[32];
    expect_1002(b, frame(b, 0x9, false, 0, 0, 0, 0));
}

static void test_control_over_125(void **state)
{
    (void)state;
    uint8_t b[256];
    expect_1002(b, frame(b, 0x9, true, 126, 126, 2, 126));
    expect_1002(b, frame(b, 0xA, true, 126, 200, 2, 200));
}

static void test_close_one_byte(void **state)
{
    (void)state;
    uint8_t b[32];
    expect_1002(b, frame(b, 0x8, true, 1, 0, 0, 1));
}

static void test_length_top_bit(void **state)
{
    (void)state;
    uint8_t b[32];
    expect_1002(b, frame(b, 0x2, true, 127, 1ull << 63 | 70000, 8, 0));
}

static void test_length_not_shortest(void **state)
{
    (void)state;
    uint8_t b[32];
    expect_1002(b, frame(b, 0x2, true, 126, 5, 2, 0));
    expect_1002(b, frame(b, 0x2, true, 127, 300, 8, 0));
}

/* What RFC 6455 allows still passes: a 125-byte ping, a close with a
 * status, a 64-bit length in its shortest form, a message in fragments. */
static void test_valid_frames_pass(void **state)
{
    (void)state;
    sb_ws *ws = NULL;
    assert_int_equal(sb_ws_new(false, 1 << 20, &CBS, NULL, &ws), 0);
    msgs = 0;
    static uint8_t b[70000 + 32];
    size_t n = frame(b, 0x9, true, 125, 0, 0, 125);
    assert_int_equal(sb_ws_feed(ws, b, n), 0);
    n = frame(b, 0x2, true, 127, 70000, 8, 70000);
    for (size_t i = 0; i < n; i += 1000)
        assert_int_equal(sb_ws_feed(ws, b + i, n - i < 1000 ? n - i : 1000), 0);
    n = frame(b, 0x1, false, 1, 0, 0, 1);
    n += frame(b + n, 0x0, true, 1, 0, 0, 1);
    assert_int_equal(sb_ws_feed(ws, b, n), 0);
    assert_int_equal(msgs, 2);
    n = frame(b, 0x8, true, 2, 0, 0, 2);
    b[n - 2] = 0x03; /* 1000 */
    b[n - 1] = 0xe8;
    assert_int_equal(sb_ws_feed(ws, b, n), 0);
    assert_true(sb_ws_close_received(ws));
    assert_int_equal(sb_ws_close_code(ws), 1000);
    sb_ws_free(ws);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping_fragmented),
        cmocka_unit_test(test_control_over_125),
        cmocka_unit_test(test_close_one_byte),
        cmocka_unit_test(test_length_top_bit),
        cmocka_unit_test(test_length_not_shortest),
        cmocka_unit_test(test_valid_frames_pass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
