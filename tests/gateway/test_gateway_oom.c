/* The gateway out of memory: a request whose handler cannot allocate is
 * answered with an ERROR (-ENOMEM's code), not left to the client's
 * timeout, and the gateway goes on. calloc is wrapped for this test
 * (-Wl,--wrap=calloc): it fails while one frame is handled, as the C
 * library's would. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "gwfake.h"
#include "sb_error.h"

#define AGENT 1    /* the connection of agent a1 */
#define CUSTOMER 2 /* and of customer u1 */

static bool calloc_fails;

void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);

void *__wrap_calloc(size_t n, size_t size)
{
    return calloc_fails ? NULL : __real_calloc(n, size);
}

static uint64_t conv; /* a1 and u1's conversation */

static int setup(void **state)
{
    (void)state;
    sb_gw_config c;
    sb_gw_config_default(&c);
    gwfake_setup(&c);
    gwfake_hello(AGENT, "a1", "agent", "desk", "en");
    gwfake_hello(CUSTOMER, "u1", "customer", "phone", "en");
    char *members[1] = {"u1"};
    Sbp__Open o = SBP__OPEN__INIT;
    o.n_members = 1;
    o.members = members;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 2;
    fr.body_case = SBP__FRAME__BODY_OPEN;
    fr.open = &o;
    gwfake_feed(AGENT, &fr);
    Sbp__Frame *r = gwfake_last_of(AGENT, SBP__FRAME__BODY_OPEN_RESP);
    assert_non_null(r);
    conv = r->open_resp->conv->conv_id;
    gwfake_send(AGENT, conv, 1, "hello", 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gwfake_teardown();
    return 0;
}

/* Feeds fr from the agent with calloc failing while the gateway handles
 * it, then checks the answer: ERROR for fr's rid with -ENOMEM's code. */
static void expect_oom_error(Sbp__Frame *fr)
{
    sb_buf b = SB_BUF_INIT;
    assert_int_equal(sb_frame_encode(SB_ENC_PROTO, fr, &b), 0);
    gwfake_clear(AGENT);
    calloc_fails = true;
    sb_gw_conn_frame(GF.gw, AGENT, b.data, b.len, GF.now);
    calloc_fails = false;
    sb_buf_free(&b);
    gwfake_pump();
    assert_int_equal(GF.nframes[AGENT], 1);
    Sbp__Frame *e = gwfake_last(AGENT);
    assert_int_equal(e->body_case, SBP__FRAME__BODY_ERROR);
    assert_int_equal(e->rid, fr->rid);
    assert_int_equal(e->error->code, sb_error_code(-ENOMEM));
    assert_int_equal(GF.closed[AGENT], 0);
}

static void test_recall(void **state)
{
    (void)state;
    Sbp__Recall rc = SBP__RECALL__INIT;
    rc.conv_id = conv;
    rc.seq = 1;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 41;
    fr.body_case = SBP__FRAME__BODY_RECALL;
    fr.recall = &rc;
    expect_oom_error(&fr);
    /* With memory, the same request is carried out. */
    gwfake_feed(AGENT, &fr);
    assert_non_null(gwfake_last_of(AGENT, SBP__FRAME__BODY_OK));
}

static void test_tag(void **state)
{
    (void)state;
    char *add[1] = {"vip"};
    Sbp__Tag t = SBP__TAG__INIT;
    t.conv_id = conv;
    t.n_add = 1;
    t.add = add;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 42;
    fr.body_case = SBP__FRAME__BODY_TAG;
    fr.tag = &t;
    expect_oom_error(&fr);
    gwfake_feed(AGENT, &fr);
    assert_non_null(gwfake_last_of(AGENT, SBP__FRAME__BODY_OK));
}

static void test_conv_list(void **state)
{
    (void)state;
    Sbp__ConvList l = SBP__CONV_LIST__INIT;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 43;
    fr.body_case = SBP__FRAME__BODY_CONV_LIST;
    fr.conv_list = &l;
    expect_oom_error(&fr);
    gwfake_feed(AGENT, &fr);
    Sbp__Frame *r = gwfake_last_of(AGENT, SBP__FRAME__BODY_CONV_LIST_RESP);
    assert_non_null(r);
    assert_int_equal(r->conv_list_resp->n_convs, 1);
}

static void test_search(void **state)
{
    (void)state;
    Sbp__Search q = SBP__SEARCH__INIT;
    q.query = "hello";
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 44;
    fr.body_case = SBP__FRAME__BODY_SEARCH;
    fr.search = &q;
    expect_oom_error(&fr);
    gwfake_feed(AGENT, &fr);
    Sbp__Frame *r = gwfake_last_of(AGENT, SBP__FRAME__BODY_SEARCH_RESP);
    assert_non_null(r);
    assert_int_equal(r->search_resp->n_messages, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_recall, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conv_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
