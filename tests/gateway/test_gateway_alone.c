/* The gateway library on its own: linked without the store and without
 * libuv (this executable links sbgateway alone), it answers a connection
 * with no store behind it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "sb_gateway.h"
#include "sb_ws.h"

static Sbp__Frame *answer; /* the last frame sent */
static uint16_t closed;    /* the close code asked */

static void io_send(void *ud, uint64_t conn, const uint8_t *p, size_t n)
{
    (void)ud;
    (void)conn;
    sb_frame_free(answer);
    answer = NULL;
    assert_int_equal(sb_frame_decode(SB_ENC_PROTO, p, n, &answer), 0);
}

static void io_close(void *ud, uint64_t conn, uint16_t code, const char *why)
{
    (void)ud;
    (void)conn;
    (void)why;
    closed = code;
}

static void io_store(void *ud, sb_req *r)
{
    (void)ud;
    (void)r;
    fail_msg("no store request expected");
}

static int64_t io_now(void *ud)
{
    (void)ud;
    return 0;
}

/* A frame before HELLO: ERR_UNAUTHENTICATED, then the close. */
static void test_hello_first(void **state)
{
    (void)state;
    sb_gw_config c;
    sb_gw_config_default(&c);
    c.secret = (const uint8_t *)"secret";
    c.secret_len = strlen("secret");
    sb_gw_io io = {
        .send = io_send, .close = io_close, .store = io_store, .now = io_now};
    sb_gw *gw;
    assert_int_equal(sb_gw_new(&c, &io, &gw), 0);
    sb_gw_start(gw, 1000);
    assert_int_equal(sb_gw_conn_open(gw, 1, SB_ENC_PROTO, 1000), 0);
    Sbp__Sync sy = SBP__SYNC__INIT;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 7;
    fr.body_case = SBP__FRAME__BODY_SYNC;
    fr.sync = &sy;
    sb_buf b = SB_BUF_INIT;
    assert_int_equal(sb_frame_encode(SB_ENC_PROTO, &fr, &b), 0);
    sb_gw_conn_frame(gw, 1, b.data, b.len, 1000);
    sb_buf_free(&b);
    assert_non_null(answer);
    assert_int_equal(answer->rid, 7);
    assert_int_equal(answer->body_case, SBP__FRAME__BODY_ERROR);
    assert_int_equal(answer->error->code, SBP__ERROR_CODE__ERR_UNAUTHENTICATED);
    assert_int_equal(closed, SB_WS_CLOSE_POLICY);
    sb_gw_conn_closed(gw, 1);
    sb_gw_free(gw);
    sb_frame_free(answer);
    answer = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
