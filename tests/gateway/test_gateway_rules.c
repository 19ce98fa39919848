/* The rules an outside client written from docs/protocol.md checked, on the
 * gateway core and its fake shell: who may be a member, strings that hold
 * U+0000, pages that fit the frame limit, receipts past a conversation's
 * end, the HELLO deadline, and errors that name their reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gwfake.h"
#include "sb_codec.h"
#include "sb_error.h"
#include "sb_gateway.h"
#include "sb_token.h"

#define F GF

static int setup_with(uint32_t frame_bytes_max, uint32_t hello_timeout_ms)
{
    sb_gw_config c;
    sb_gw_config_default(&c);
    if (frame_bytes_max) c.frame_bytes_max = frame_bytes_max;
    if (hello_timeout_ms) c.hello_timeout_ms = hello_timeout_ms;
    gwfake_setup(&c);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    return setup_with(0, 0);
}

static int teardown(void **state)
{
    (void)state;
    gwfake_teardown();
    return 0;
}

static Sbp__Frame *expect_error(uint64_t c, Sbp__ErrorCode code)
{
    Sbp__Frame *r = gwfake_last(c);
    assert_int_equal(r->body_case, SBP__FRAME__BODY_ERROR);
    assert_int_equal(r->error->code, code);
    return r;
}

/* OPEN on c with one member; returns the answer. */
static Sbp__Frame *open_with(uint64_t c, const char *member)
{
    Sbp__Open o = SBP__OPEN__INIT;
    char *m[1] = {(char *)member};
    o.n_members = 1;
    o.members = m;
    o.kind = SBP__CONV_KIND__CONV_DIRECT;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 2;
    fr.body_case = SBP__FRAME__BODY_OPEN;
    fr.open = &o;
    gwfake_feed(c, &fr);
    return gwfake_last(c);
}

static uint64_t open_conv(uint64_t c, const char *member)
{
    Sbp__Frame *r = open_with(c, member);
    assert_int_equal(r->body_case, SBP__FRAME__BODY_OPEN_RESP);
    return r->open_resp->conv->conv_id;
}

/* A SYNC on c from after seq of conv (limit 0: the server's). */
static void sync_from(uint64_t c, uint32_t rid, uint64_t conv, uint64_t seq)
{
    Sbp__Cursor cur = SBP__CURSOR__INIT;
    cur.conv_id = conv;
    cur.seq = seq;
    Sbp__Cursor *cp[1] = {&cur};
    Sbp__Sync sy = SBP__SYNC__INIT;
    sy.n_cursors = conv ? 1 : 0;
    sy.cursors = cp;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = rid;
    fr.body_case = SBP__FRAME__BODY_SYNC;
    fr.sync = &sy;
    gwfake_feed(c, &fr);
}

static void history(uint64_t c, uint32_t rid, uint64_t conv, uint64_t before,
                    uint32_t limit)
{
    Sbp__History h = SBP__HISTORY__INIT;
    h.conv_id = conv;
    h.before_seq = before;
    h.limit = limit;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = rid;
    fr.body_case = SBP__FRAME__BODY_HISTORY;
    fr.history = &h;
    gwfake_feed(c, &fr);
}

static Sbp__ConvListResp *conv_list(uint64_t c)
{
    Sbp__ConvList l = SBP__CONV_LIST__INIT;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 44;
    fr.body_case = SBP__FRAME__BODY_CONV_LIST;
    fr.conv_list = &l;
    gwfake_feed(c, &fr);
    Sbp__Frame *r = gwfake_last(c);
    assert_int_equal(r->body_case, SBP__FRAME__BODY_CONV_LIST_RESP);
    return r->conv_list_resp;
}

/* ---- defect 1: membership of users the server never met ------------------ */

/* A customer's OPEN naming a user id the server has never seen is refused:
 * that id could later connect as a customer and read the conversation.
 * Once the id has connected as an agent, the same OPEN is taken. */
static void test_open_unknown_member(void **state)
{
    (void)state;
    gwfake_hello(1, "carol", "customer", "c1", NULL);
    Sbp__Frame *r = open_with(1, "ghost");
    assert_int_equal(r->body_case, SBP__FRAME__BODY_ERROR);
    assert_int_equal(r->error->code, SBP__ERROR_CODE__ERR_NOT_FOUND);
    /* The id connects as a customer: there is nothing of carol's to read,
     * and it cannot open with carol either. */
    gwfake_hello(2, "ghost", "customer", "g1", NULL);
    sync_from(2, 5, 0, 0);
    r = gwfake_last(2);
    assert_int_equal(r->body_case, SBP__FRAME__BODY_SYNC_RESP);
    assert_int_equal(r->sync_resp->n_messages, 0);
    assert_int_equal(r->sync_resp->n_convs, 0);
    assert_int_equal(conv_list(2)->n_convs, 0);
    r = open_with(2, "carol");
    assert_int_equal(r->error->code, SBP__ERROR_CODE__ERR_FORBIDDEN);
    /* A user met as an agent may be named. */
    gwfake_hello(3, "ann", "agent", "n1", NULL);
    uint64_t conv = open_conv(1, "ann");
    assert_true(conv > 0);
}

/* ---- defect 2: U+0000 in a string --------------------------------------- */

/* A SEND whose body holds U+0000 is refused with ERR_BAD_UTF8 in both
 * encodings (naming its client_msg_id), and nothing is stored: a C string
 * would end at the NUL, and PostgreSQL's text cannot hold one. */
static void test_send_body_with_nul(void **state)
{
    (void)state;
    gwfake_hello(1, "carol", "customer", "c1", NULL);
    gwfake_hello(2, "ann", "agent", "n1", NULL);
    uint64_t conv = open_conv(1, "ann");
    /* Protobuf: a body "a?b" packed, the '?' turned into a NUL. */
    uint8_t id[16];
    memset(id, 0x42, sizeof id);
    Sbp__Send s = SBP__SEND__INIT;
    s.client_msg_id.data = id;
    s.client_msg_id.len = sizeof id;
    s.conv_id = conv;
    s.type = SBP__MSG_TYPE__MSG_TEXT;
    s.body = "a?b";
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 7;
    fr.body_case = SBP__FRAME__BODY_SEND;
    fr.send = &s;
    sb_buf b = SB_BUF_INIT;
    assert_int_equal(sb_frame_encode(SB_ENC_PROTO, &fr, &b), 0);
    uint8_t *q = memchr(b.data, '?', b.len);
    assert_non_null(q);
    *q = 0;
    gwfake_feed_raw(1, b.data, b.len);
    sb_buf_free(&b);
    Sbp__Frame *r = expect_error(1, SBP__ERROR_CODE__ERR_BAD_UTF8);
    assert_int_equal(r->rid, 7);
    assert_int_equal(r->error->client_msg_id.len, 16);
    assert_memory_equal(r->error->client_msg_id.data, id, 16);
    /* JSON: the same body as "a\u0000b". */
    gwfake_encoding(3, SB_ENC_JSON);
    gwfake_hello(3, "carol", "customer", "c2", NULL);
    char json[256];
    snprintf(json, sizeof json,
             "{\"rid\":8,\"send\":{\"client_msg_id\":\"QkJCQkJCQkJCQkJCQkJCQg"
             "==\",\"conv_id\":%llu,\"type\":\"MSG_TEXT\",\"body\":\"a\\u0000"
             "b\"}}",
             (unsigned long long)conv);
    gwfake_feed_raw(3, json, strlen(json));
    r = expect_error(3, SBP__ERROR_CODE__ERR_BAD_UTF8);
    assert_int_equal(r->rid, 8);
    assert_int_equal(r->error->client_msg_id.len, 16);
    /* Nothing was stored. */
    sync_from(2, 9, conv, 0);
    r = gwfake_last(2);
    assert_int_equal(r->body_case, SBP__FRAME__BODY_SYNC_RESP);
    assert_int_equal(r->sync_resp->n_messages, 0);
}

/* ---- defect 3: pages larger than a frame -------------------------------- */

#define PAGE_FRAME 16384
#define PAGE_MSGS 40

static int setup_small_frames(void **state)
{
    (void)state;
    return setup_with(PAGE_FRAME, 0);
}

/* Bodies of 2,000 bytes: 40 of them are five frames' worth. */
static uint64_t fill_conv(void)
{
    gwfake_hello(1, "carol", "customer", "c1", NULL);
    gwfake_hello(2, "ann", "agent", "n1", NULL);
    uint64_t conv = open_conv(1, "ann");
    char body[2001];
    for (int i = 0; i < PAGE_MSGS; i++) {
        /* Every other body of tabs, which JSON escapes ("\\t"). */
        memset(body, i % 2 ? '\t' : 'a' + i % 26, sizeof body - 1);
        body[sizeof body - 1] = '\0';
        gwfake_send(1, conv, (uint8_t)(i + 1), body, 0);
        assert_int_equal(gwfake_last(1)->body_case, SBP__FRAME__BODY_SEND_ACK);
    }
    gwfake_clear(1);
    gwfake_clear(2);
    return conv;
}

/* SYNC pages on c are cut to frame_bytes_max with `more` set, and paging
 * on from the last seq received brings every message once, in order. */
static void sync_all(uint64_t c, uint64_t conv)
{
    uint64_t seq = 0;
    int pages = 0;
    for (bool more = true; more; pages++) {
        assert_true(pages < PAGE_MSGS);
        gwfake_clear(c);
        sync_from(c, 20, conv, seq);
        Sbp__Frame *r = gwfake_last(c);
        assert_int_equal(r->body_case, SBP__FRAME__BODY_SYNC_RESP);
        assert_true(F.size_max[c] <= PAGE_FRAME);
        Sbp__SyncResp *sr = r->sync_resp;
        assert_true(sr->n_messages > 0);
        for (size_t i = 0; i < sr->n_messages; i++)
            assert_int_equal(sr->messages[i]->seq, ++seq);
        more = sr->more;
    }
    assert_int_equal(seq, PAGE_MSGS);
    assert_true(pages >= 5);
}

/* HISTORY pages too: cut from the oldest end, `more` set, and paging back
 * from the first seq received brings every message once. */
static void history_all(uint64_t c, uint64_t conv)
{
    uint64_t before = 0, want = PAGE_MSGS;
    int pages = 0;
    for (bool more = true; more; pages++) {
        assert_true(pages < PAGE_MSGS);
        gwfake_clear(c);
        history(c, 21, conv, before, 200);
        Sbp__Frame *r = gwfake_last(c);
        assert_int_equal(r->body_case, SBP__FRAME__BODY_HISTORY_RESP);
        assert_true(F.size_max[c] <= PAGE_FRAME);
        Sbp__HistoryResp *hr = r->history_resp;
        assert_true(hr->n_messages > 0);
        /* Ascending, and ending right before the previous page. */
        assert_int_equal(hr->messages[hr->n_messages - 1]->seq, want);
        for (size_t i = hr->n_messages; i > 0; i--)
            assert_int_equal(hr->messages[i - 1]->seq, want--);
        before = hr->messages[0]->seq;
        more = hr->more;
    }
    assert_int_equal(want, 0);
    assert_true(pages >= 5);
}

/* Both encodings: JSON escapes make the same messages larger. */
static void test_sync_page_fits_frame(void **state)
{
    (void)state;
    uint64_t conv = fill_conv();
    sync_all(2, conv);
    gwfake_encoding(4, SB_ENC_JSON);
    gwfake_hello(4, "ann", "agent", "n2", NULL);
    sync_all(4, conv);
}

static void test_history_page_fits_frame(void **state)
{
    (void)state;
    uint64_t conv = fill_conv();
    history_all(2, conv);
    gwfake_encoding(4, SB_ENC_JSON);
    gwfake_hello(4, "ann", "agent", "n2", NULL);
    history_all(4, conv);
}

/* ---- defect 4: READ and ACK past the last seq -----------------------------
 */

static void read_to(uint64_t c, uint64_t conv, uint64_t seq)
{
    Sbp__Read rd = SBP__READ__INIT;
    rd.conv_id = conv;
    rd.seq = seq;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.body_case = SBP__FRAME__BODY_READ;
    fr.read = &rd;
    gwfake_feed(c, &fr);
}

/* A READ (or ACK) beyond the conversation's last seq counts up to the last
 * seq: the other member hears read_seq 2, not 1000, what is stored says
 * the same, and the next message is unread. */
static void test_read_past_end(void **state)
{
    (void)state;
    gwfake_hello(1, "carol", "customer", "c1", NULL);
    gwfake_hello(2, "ann", "agent", "n1", NULL);
    uint64_t conv = open_conv(1, "ann");
    gwfake_send(1, conv, 1, "one", 0);
    gwfake_send(1, conv, 2, "two", 0);
    gwfake_clear(1);
    gwfake_ack(2, conv, 1000);
    read_to(2, conv, 1000);
    gwfake_tick(1000);
    Sbp__Frame *r = gwfake_last_of(1, SBP__FRAME__BODY_READ_NOTIFY);
    assert_non_null(r);
    assert_string_equal(r->read_notify->user_id, "ann");
    assert_int_equal(r->read_notify->read_seq, 2);
    assert_int_equal(r->read_notify->delivered_seq, 2);
    /* The store has read_seq 2: the next message is unread. */
    gwfake_send(1, conv, 3, "three", 0);
    Sbp__ConvListResp *l = conv_list(2);
    assert_int_equal(l->n_convs, 1);
    assert_int_equal(l->convs[0]->read_seq, 2);
    assert_int_equal(l->convs[0]->unread, 1);
}

/* ---- defect 7: the HELLO deadline -----------------------------------------
 */

static int setup_hello_300(void **state)
{
    (void)state;
    return setup_with(0, 300);
}

/* A connection that says nothing is closed at its HELLO deadline (300 ms
 * here), not on the next whole second. */
static void test_hello_deadline(void **state)
{
    (void)state;
    gwfake_tick(50);
    assert_int_equal(sb_gw_conn_open(F.gw, 1, SB_ENC_PROTO, F.now), 0);
    gwfake_tick(250);
    assert_int_equal(F.closed[1], 0);
    gwfake_tick(60);
    assert_int_equal(F.closed[1], 4013); /* try again: it may come back */
}

/* ---- sessions ---------------------------------------------------------------
 */

/* A device gave up on a connection (its HELLO unanswered) and made a new
 * one, which is ready; the old connection's HELLO arrives only now. The
 * newer connection stays and the stale one is closed, not the reverse,
 * which would stop the device for good (1000: replaced). Found by sbsim
 * (seed 16493). */
static void test_stale_hello_replaces_nothing(void **state)
{
    (void)state;
    assert_int_equal(sb_gw_conn_open(F.gw, 1, SB_ENC_PROTO, F.now), 0);
    gwfake_hello(2, "carol", "customer", "phone", NULL);
    sb_claims cl;
    memset(&cl, 0, sizeof cl);
    snprintf(cl.sub, sizeof cl.sub, "carol");
    cl.role = SBP__ROLE__ROLE_CUSTOMER;
    cl.exp = F.now / 1000 + 3600;
    char tok[1024];
    assert_true(sb_token_sign((const uint8_t *)GWFAKE_SECRET,
                              strlen(GWFAKE_SECRET), &cl, tok, sizeof tok) > 0);
    /* The old connection's HELLO, by hand (the connection is open). */
    Sbp__Hello h = SBP__HELLO__INIT;
    h.token = tok;
    h.device_id = "phone";
    h.protocol = 1;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 1;
    fr.body_case = SBP__FRAME__BODY_HELLO;
    fr.hello = &h;
    gwfake_feed(1, &fr);
    assert_int_equal(F.closed[1], 1000);
    assert_int_equal(F.closed[2], 0);
    /* The newer one still works. */
    sync_from(2, 7, 0, 0);
    assert_int_equal(gwfake_last(2)->body_case, SBP__FRAME__BODY_SYNC_RESP);
}

/* ---- defect 8: errors that say the wrong thing ----------------------------
 */

/* A refusal for the role names the role, not membership. */
static void test_forbidden_says_why(void **state)
{
    (void)state;
    gwfake_hello(1, "carol", "customer", "c1", NULL);
    gwfake_hello(2, "ann", "agent", "n1", NULL);
    uint64_t conv = open_conv(1, "ann");
    char *add[1] = {"vip"};
    Sbp__Tag t = SBP__TAG__INIT;
    t.conv_id = conv;
    t.n_add = 1;
    t.add = add;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 30;
    fr.body_case = SBP__FRAME__BODY_TAG;
    fr.tag = &t;
    gwfake_feed(1, &fr);
    Sbp__Frame *r = expect_error(1, SBP__ERROR_CODE__ERR_FORBIDDEN);
    assert_null(strstr(r->error->text, "member"));
    assert_non_null(strstr(r->error->text, "role"));
    /* A non-member is told it is not one. */
    gwfake_hello(3, "bea", "agent", "b1", NULL);
    gwfake_feed(3, &fr);
    r = expect_error(3, SBP__ERROR_CODE__ERR_FORBIDDEN);
    assert_non_null(strstr(r->error->text, "member"));
}

/* CLOSE, TRANSFER and HANDOFF from a non-member are refused as such
 * (ERR_FORBIDDEN), before anything about the conversation's state is
 * said. */
static void test_outsider_learns_no_state(void **state)
{
    (void)state;
    gwfake_hello(1, "carol", "customer", "c1", NULL);
    gwfake_hello(2, "ann", "agent", "n1", NULL);
    gwfake_hello(3, "bea", "agent", "b1", NULL);
    uint64_t conv = open_conv(1, "ann");
    Sbp__Close cl = SBP__CLOSE__INIT;
    cl.conv_id = conv;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 31;
    fr.body_case = SBP__FRAME__BODY_CLOSE;
    fr.close = &cl;
    gwfake_feed(3, &fr);
    expect_error(3, SBP__ERROR_CODE__ERR_FORBIDDEN);
    Sbp__Transfer t = SBP__TRANSFER__INIT;
    t.conv_id = conv;
    t.to_agent = "bea";
    fr.body_case = SBP__FRAME__BODY_TRANSFER;
    fr.transfer = &t;
    gwfake_feed(3, &fr);
    expect_error(3, SBP__ERROR_CODE__ERR_FORBIDDEN);
    Sbp__Handoff h = SBP__HANDOFF__INIT;
    h.conv_id = conv;
    fr.body_case = SBP__FRAME__BODY_HANDOFF;
    fr.handoff = &h;
    gwfake_feed(3, &fr);
    expect_error(3, SBP__ERROR_CODE__ERR_FORBIDDEN);
    /* A member still hears about the state. */
    fr.body_case = SBP__FRAME__BODY_CLOSE;
    fr.close = &cl;
    gwfake_feed(2, &fr);
    expect_error(2, SBP__ERROR_CODE__ERR_STATE);
}

/* A user's own messages are not unread in its conversation list. */
static void test_own_messages_not_unread(void **state)
{
    (void)state;
    gwfake_hello(1, "carol", "customer", "c1", NULL);
    gwfake_hello(2, "ann", "agent", "n1", NULL);
    uint64_t conv = open_conv(1, "ann");
    for (uint8_t i = 1; i <= 3; i++)
        gwfake_send(1, conv, i, "from carol", 0);
    gwfake_send(2, conv, 9, "from ann", 0);
    Sbp__ConvListResp *l = conv_list(1);
    assert_int_equal(l->n_convs, 1);
    assert_int_equal(l->convs[0]->unread, 1);
    l = conv_list(2);
    assert_int_equal(l->convs[0]->unread, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_unknown_member, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_send_body_with_nul, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sync_page_fits_frame,
                                        setup_small_frames, teardown),
        cmocka_unit_test_setup_teardown(test_history_page_fits_frame,
                                        setup_small_frames, teardown),
        cmocka_unit_test_setup_teardown(test_read_past_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_deadline, setup_hello_300,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stale_hello_replaces_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_forbidden_says_why, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_outsider_learns_no_state, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_own_messages_not_unread, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
