/* The delivery core driven without sockets: a fake shell records what the
 * gateway sends and closes, and store requests are applied synchronously
 * to a real SQLite store in memory. Time is whatever the test says. */
#include <errno.h>
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
#include "sb_store.h"
#include "sb_storeq.h"
#include "sb_token.h"
#include "sb_ws.h"

#define SECRET GWFAKE_SECRET
#define T0 GWFAKE_T0
#define MAXC GWFAKE_CONNS
#define F GF /* the fake shell of gwfake.h */
#define pump gwfake_pump
#define clear gwfake_clear
#define feed gwfake_feed
#define last gwfake_last
#define count gwfake_count
#define ack gwfake_ack
#define ack_conv gwfake_ack

static sb_filter *word_filter; /* the word lists in force, if any */

static void token(const char *sub, const char *role, int64_t exp_s, char *out)
{
    sb_claims c;
    memset(&c, 0, sizeof c);
    snprintf(c.sub, sizeof c.sub, "%s", sub);
    c.role = sb_role_from_name(role);
    c.exp = exp_s;
    assert_true(sb_token_sign((const uint8_t *)SECRET, strlen(SECRET), &c, out,
                              1024) > 0);
}

/* HELLO without checking the answer (some tests expect a refusal). */
static void hello(uint64_t c, const char *sub, const char *role,
                  const char *device)
{
    gwfake_hello_raw(c, sub, role, device, NULL);
}

static uint64_t open_conv(uint64_t c, const char *member)
{
    Sbp__Open o = SBP__OPEN__INIT;
    char *m[1] = {(char *)member};
    o.n_members = 1;
    o.members = m;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 2;
    fr.body_case = SBP__FRAME__BODY_OPEN;
    fr.open = &o;
    feed(c, &fr);
    Sbp__Frame *r = last(c);
    assert_int_equal(r->body_case, SBP__FRAME__BODY_OPEN_RESP);
    return r->open_resp->conv->conv_id;
}

static void send_msg(uint64_t c, uint64_t conv, uint8_t id_byte,
                     const char *body)
{
    uint8_t id[16];
    memset(id, id_byte, sizeof id);
    Sbp__Send s = SBP__SEND__INIT;
    s.client_msg_id.data = id;
    s.client_msg_id.len = 16;
    s.conv_id = conv;
    s.type = SBP__MSG_TYPE__MSG_TEXT;
    s.body = (char *)body;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 10 + id_byte;
    fr.body_case = SBP__FRAME__BODY_SEND;
    fr.send = &s;
    feed(c, &fr);
}

/* A SYNC on c for one conversation, from after seq, limit per page (0:
 * the server's). */
static void sync_conv(uint64_t c, uint32_t rid, uint64_t conv, uint64_t seq,
                      uint32_t limit)
{
    Sbp__Cursor cur = SBP__CURSOR__INIT;
    cur.conv_id = conv;
    cur.seq = seq;
    Sbp__Cursor *cp[1] = {&cur};
    Sbp__Sync sy = SBP__SYNC__INIT;
    sy.n_cursors = 1;
    sy.cursors = cp;
    sy.limit = limit;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = rid;
    fr.body_case = SBP__FRAME__BODY_SYNC;
    fr.sync = &sy;
    feed(c, &fr);
}

static const sb_filter *filter_get(void *ud)
{
    (void)ud;
    return word_filter;
}

static int setup(void **state)
{
    (void)state;
    sb_gw_config c;
    sb_gw_config_default(&c);
    c.retry_ms_initial = 1000;
    c.retry_ms_max = 4000;
    c.retry_attempts_max = 3;
    c.filter_get = filter_get;
    gwfake_setup(&c);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gwfake_teardown();
    sb_filter_release(word_filter);
    word_filter = NULL;
    return 0;
}

/* One customer with two devices and one agent. */
static uint64_t three_sessions(void)
{
    hello(3, "bob", "agent", "b1");
    hello(1, "alice", "customer", "a1");
    hello(2, "alice", "customer", "a2");
    for (uint64_t c = 1; c <= 3; c++)
        assert_int_equal(last(c)->body_case, SBP__FRAME__BODY_WELCOME);
    uint64_t conv = open_conv(1, "bob");
    for (uint64_t c = 1; c <= 3; c++)
        clear(c);
    return conv;
}

static void test_send_push_ack(void **state)
{
    (void)state;
    uint64_t conv = three_sessions();
    send_msg(1, conv, 0xA1, "hello bob");
    /* The sender gets SEND_ACK, not a PUSH; its other device and the agent
     * get the PUSH. */
    assert_int_equal(count(1, SBP__FRAME__BODY_SEND_ACK), 1);
    assert_int_equal(count(1, SBP__FRAME__BODY_PUSH), 0);
    Sbp__SendAck *a = last(1)->send_ack;
    assert_int_equal(a->seq, 1);
    assert_int_equal(a->conv_id, conv);
    assert_false(a->duplicate);
    for (uint64_t c = 2; c <= 3; c++) {
        assert_int_equal(count(c, SBP__FRAME__BODY_PUSH), 1);
        Sbp__Message *m = last(c)->push->messages[0];
        assert_int_equal(m->seq, 1);
        assert_string_equal(m->body, "hello bob");
        assert_string_equal(m->sender, "alice");
        assert_string_equal(m->sender_device, "a1");
        assert_int_equal(m->msg_id, a->msg_id);
    }
    /* The agent answers: seq 2, pushed to both of alice's devices. */
    send_msg(3, conv, 0xB1, "hi alice");
    assert_int_equal(last(3)->send_ack->seq, 2);
    assert_int_equal(last(1)->push->messages[0]->seq, 2);
    assert_int_equal(last(2)->push->messages[0]->seq, 2);
}

/* A store that cannot write (a full disk): each SEND is refused with
 * ERR_STORE and its client_msg_id, nothing is pushed; the sessions stay,
 * reads work, and a device connecting then is welcomed (its user record
 * waits for a later HELLO). Once writes work again the refused message,
 * resent, is stored as new. */
static void test_store_cannot_write(void **state)
{
    (void)state;
    uint64_t conv = three_sessions();
    sb_gw_conn_closed(F.gw, 2); /* alice's second device comes later */
    clear(2);
    send_msg(1, conv, 0x31, "stored");
    assert_int_equal(last(1)->send_ack->seq, 1);
    clear(1);
    clear(3);
    F.fail_writes = true;
    send_msg(1, conv, 0x32, "refused");
    Sbp__Frame *e = last(1);
    assert_int_equal(e->body_case, SBP__FRAME__BODY_ERROR);
    assert_int_equal(e->rid, 10 + 0x32);
    assert_int_equal(e->error->code, SBP__ERROR_CODE__ERR_STORE);
    assert_int_equal(e->error->client_msg_id.len, 16);
    assert_int_equal(e->error->client_msg_id.data[0], 0x32);
    assert_int_equal(count(3, SBP__FRAME__BODY_PUSH), 0);
    assert_int_equal(F.closed[1], 0);
    ack(3, conv, 1); /* its cursor is not stored: no answer, no close */
    gwfake_tick(5000);
    assert_int_equal(F.closed[3], 0);

    hello(2, "alice", "customer", "a2");
    assert_int_equal(last(2)->body_case, SBP__FRAME__BODY_WELCOME);
    assert_int_equal(F.closed[2], 0);
    sync_conv(2, 7, conv, 0, 0);
    Sbp__Frame *r = last(2);
    assert_int_equal(r->body_case, SBP__FRAME__BODY_SYNC_RESP);
    assert_int_equal(r->sync_resp->n_messages, 1);
    assert_string_equal(r->sync_resp->messages[0]->body, "stored");

    F.fail_writes = false;
    clear(1);
    send_msg(1, conv, 0x32, "refused");
    assert_int_equal(last(1)->body_case, SBP__FRAME__BODY_SEND_ACK);
    assert_int_equal(last(1)->send_ack->seq, 2);
    assert_false(last(1)->send_ack->duplicate);
    assert_int_equal(last(3)->push->messages[0]->seq, 2);
    assert_int_equal(last(2)->push->messages[0]->seq, 2);
}

static void test_idempotent_send(void **state)
{
    (void)state;
    uint64_t conv = three_sessions();
    for (int i = 0; i < 3; i++)
        send_msg(1, conv, 0x11, "once");
    assert_int_equal(count(1, SBP__FRAME__BODY_SEND_ACK), 3);
    Sbp__SendAck *first = F.frames[1][0]->send_ack;
    for (size_t i = 1; i < 3; i++) {
        Sbp__SendAck *a = F.frames[1][i]->send_ack;
        assert_int_equal(a->seq, first->seq);
        assert_int_equal(a->msg_id, first->msg_id);
        assert_true(a->duplicate);
    }
    assert_int_equal(count(3, SBP__FRAME__BODY_PUSH), 1);
    send_msg(1, conv, 0x12, "next");
    assert_int_equal(last(1)->send_ack->seq, first->seq + 1);
}

static void test_retry_until_ack_then_close(void **state)
{
    (void)state;
    uint64_t conv = three_sessions();
    send_msg(1, conv, 0x21, "retry me");
    ack(3, conv, 1); /* the agent acks; alice's second device does not */
    clear(2);
    clear(3);
    gwfake_tick(1001);
    assert_int_equal(count(2, SBP__FRAME__BODY_PUSH), 1);
    assert_int_equal(count(3, SBP__FRAME__BODY_PUSH), 0);
    /* Backoff doubles: nothing at +1 s, a resend at +2 s. */
    gwfake_tick(1000);
    assert_int_equal(count(2, SBP__FRAME__BODY_PUSH), 1);
    gwfake_tick(1001);
    assert_int_equal(count(2, SBP__FRAME__BODY_PUSH), 2);
    for (int i = 0; i < 4; i++) {
        gwfake_tick(4001);
    }
    /* After retry_attempts_max the session is closed: it will SYNC. */
    assert_int_equal(F.closed[2], SB_WS_CLOSE_TRY_AGAIN);
    assert_int_equal(F.closed[3], 0);
    /* Receipts: alice's devices hear that bob has it. */
    bool saw = false;
    for (size_t i = 0; i < F.nframes[1]; i++) {
        Sbp__Frame *fr = F.frames[1][i];
        if (fr->body_case == SBP__FRAME__BODY_READ_NOTIFY &&
            strcmp(fr->read_notify->user_id, "bob") == 0 &&
            fr->read_notify->delivered_seq == 1)
            saw = true;
    }
    assert_true(saw);
}

/* A receipt waiting half its interval or more goes with the next push in
 * its conversation (in a write the connection makes anyway), not in a turn
 * of its own at its due time; one younger than that waits. */
static void test_receipt_rides_with_push(void **state)
{
    (void)state;
    uint64_t conv = three_sessions();
    send_msg(1, conv, 0x51, "one");
    ack(3, conv, 1); /* bob has it: his receipt is due 200 ms later */
    clear(1);
    gwfake_tick(60);
    send_msg(3, conv, 0x52, "two"); /* 60 ms: too young to go along */
    assert_int_equal(count(1, SBP__FRAME__BODY_PUSH), 1);
    assert_int_equal(count(1, SBP__FRAME__BODY_READ_NOTIFY), 0);
    gwfake_tick(50);
    assert_int_equal(count(1, SBP__FRAME__BODY_READ_NOTIFY), 0);
    send_msg(3, conv, 0x53, "three"); /* 110 ms: it goes with this push */
    assert_int_equal(count(1, SBP__FRAME__BODY_PUSH), 2);
    assert_int_equal(count(1, SBP__FRAME__BODY_READ_NOTIFY), 1);
    Sbp__ReadNotify *rn = NULL;
    for (size_t i = 0; i < F.nframes[1]; i++)
        if (F.frames[1][i]->body_case == SBP__FRAME__BODY_READ_NOTIFY)
            rn = F.frames[1][i]->read_notify;
    assert_non_null(rn);
    assert_string_equal(rn->user_id, "bob");
    assert_int_equal(rn->delivered_seq, 1);
    /* Its due time passes with nothing left to tell. */
    gwfake_tick(150);
    assert_int_equal(count(1, SBP__FRAME__BODY_READ_NOTIFY), 1);
    /* A change after it starts an interval of its own. */
    ack(2, conv, 3);
    gwfake_tick(90);
    assert_int_equal(count(3, SBP__FRAME__BODY_READ_NOTIFY), 0);
    gwfake_tick(120);
    assert_int_equal(count(3, SBP__FRAME__BODY_READ_NOTIFY), 1);
}

static void test_sync_after_offline(void **state)
{
    (void)state;
    uint64_t conv = three_sessions();
    sb_gw_conn_closed(F.gw, 2); /* alice's second device goes away */
    char body[32];
    for (int i = 0; i < 30; i++) {
        snprintf(body, sizeof body, "m%d", i);
        send_msg(3, conv, (uint8_t)(0x40 + i), body);
    }
    hello(5, "alice", "customer", "a2");
    clear(5);
    uint64_t cursor = 0, got = 0;
    for (int page = 0; page < 10; page++) {
        sync_conv(5, 77, conv, cursor, 7);
        Sbp__Frame *r = last(5);
        if (r->body_case == SBP__FRAME__BODY_ERROR)
            fail_msg("SYNC failed: %s", r->error->text);
        assert_int_equal(r->rid, 77);
        assert_int_equal(r->body_case, SBP__FRAME__BODY_SYNC_RESP);
        for (size_t i = 0; i < r->sync_resp->n_messages; i++) {
            assert_int_equal(r->sync_resp->messages[i]->seq, cursor + 1);
            cursor++;
            got++;
        }
        if (!r->sync_resp->more) break;
    }
    assert_int_equal(got, 30);
}

static void expect_error(uint64_t c, Sbp__ErrorCode code)
{
    Sbp__Frame *r = last(c);
    assert_int_equal(r->body_case, SBP__FRAME__BODY_ERROR);
    assert_int_equal(r->error->code, code);
}

static void test_bad_input(void **state)
{
    (void)state;
    uint64_t conv = three_sessions();
    /* A SEND before HELLO: refused and closed. */
    assert_int_equal(sb_gw_conn_open(F.gw, 6, SB_ENC_PROTO, F.now), 0);
    send_msg(6, conv, 0x61, "sneaky");
    expect_error(6, SBP__ERROR_CODE__ERR_UNAUTHENTICATED);
    assert_int_equal(F.closed[6], 1008);
    /* Expired and forged tokens. */
    char tok[1024];
    token("mallory", "admin", T0 / 1000 - 3600, tok);
    assert_int_equal(sb_gw_conn_open(F.gw, 7, SB_ENC_PROTO, F.now), 0);
    Sbp__Hello h = SBP__HELLO__INIT;
    h.token = tok;
    h.device_id = "m1";
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.body_case = SBP__FRAME__BODY_HELLO;
    fr.hello = &h;
    feed(7, &fr);
    expect_error(7, SBP__ERROR_CODE__ERR_TOKEN_EXPIRED);
    assert_int_equal(F.closed[7], 1008);
    token("mallory", "admin", T0 / 1000 + 3600, tok);
    tok[strlen(tok) - 2] ^= 1;
    assert_int_equal(sb_gw_conn_open(F.gw, 8, SB_ENC_PROTO, F.now), 0);
    feed(8, &fr);
    expect_error(8, SBP__ERROR_CODE__ERR_BAD_TOKEN);
    /* A customer outside the conversation. */
    hello(9, "carol", "customer", "c1");
    send_msg(9, conv, 0x91, "let me in");
    expect_error(9, SBP__ERROR_CODE__ERR_FORBIDDEN);
    assert_int_equal(last(9)->error->client_msg_id.len, 16);
    /* Oversized body, bad id, garbage, unknown kind, unknown conv. */
    char *big = malloc(9000);
    memset(big, 'x', 8999);
    big[8999] = '\0';
    send_msg(1, conv, 0x13, big);
    free(big);
    expect_error(1, SBP__ERROR_CODE__ERR_TOO_LARGE);
    Sbp__Send s = SBP__SEND__INIT;
    s.conv_id = conv;
    s.body = "no id";
    Sbp__Frame sf = SBP__FRAME__INIT;
    sf.body_case = SBP__FRAME__BODY_SEND;
    sf.send = &s;
    feed(1, &sf);
    expect_error(1, SBP__ERROR_CODE__ERR_INVALID);
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0x01};
    sb_gw_conn_frame(F.gw, 1, junk, sizeof junk, F.now);
    expect_error(1, SBP__ERROR_CODE__ERR_BAD_FRAME);
    Sbp__Welcome w = SBP__WELCOME__INIT;
    Sbp__Frame wf = SBP__FRAME__INIT;
    wf.body_case = SBP__FRAME__BODY_WELCOME;
    wf.welcome = &w;
    feed(1, &wf);
    expect_error(1, SBP__ERROR_CODE__ERR_UNKNOWN_TYPE);
    send_msg(1, 999999, 0x14, "nowhere");
    expect_error(1, SBP__ERROR_CODE__ERR_NOT_FOUND);
    /* Invalid UTF-8 in a protobuf string. */
    send_msg(1, conv, 0x15, "bad \xc3\x28 utf8");
    expect_error(1, SBP__ERROR_CODE__ERR_BAD_UTF8);
    /* The well-behaved session is still fine and nothing was stored. */
    assert_int_equal(F.closed[1], 0);
    send_msg(1, conv, 0x16, "still here");
    assert_int_equal(last(1)->send_ack->seq, 1);
}

static void test_customer_cannot_open_with_customer(void **state)
{
    (void)state;
    three_sessions();
    hello(9, "carol", "customer", "c1");
    Sbp__Open o = SBP__OPEN__INIT;
    char *m[1] = {"alice"};
    o.n_members = 1;
    o.members = m;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.body_case = SBP__FRAME__BODY_OPEN;
    fr.open = &o;
    feed(9, &fr);
    expect_error(9, SBP__ERROR_CODE__ERR_FORBIDDEN);
}

/* Replaces the gateway (nothing in flight) with one configured by c, on
 * the shared secret and the fake shell. */
static void regw(sb_gw_config *c)
{
    gwfake_regw(c);
}

/* HELLO on connection c with the token of claims cl. */
static void hello_claims(uint64_t c, sb_claims *cl, const char *device)
{
    char tok[1024];
    cl->exp = T0 / 1000 + 3600;
    assert_true(sb_token_sign((const uint8_t *)SECRET, strlen(SECRET), cl, tok,
                              sizeof tok) > 0);
    assert_int_equal(sb_gw_conn_open(F.gw, c, SB_ENC_PROTO, F.now), 0);
    Sbp__Hello h = SBP__HELLO__INIT;
    h.token = tok;
    h.device_id = (char *)device;
    h.protocol = 1;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 1;
    fr.body_case = SBP__FRAME__BODY_HELLO;
    fr.hello = &h;
    feed(c, &fr);
}

/* A gateway configured with an issuer and an audience takes only tokens
 * that name both; others are refused (ERR_BAD_TOKEN, close 1008). */
static void test_token_iss_aud(void **state)
{
    (void)state;
    sb_gw_config c;
    sb_gw_config_default(&c);
    char iss[] = "https://id.example.com", aud[] = "switchboard";
    c.token_iss = iss;
    c.token_aud = aud;
    regw(&c);
    iss[0] = aud[0] = 'X'; /* the gateway keeps its own copies */

    hello(1, "alice", "customer", "a1"); /* neither iss nor aud */
    expect_error(1, SBP__ERROR_CODE__ERR_BAD_TOKEN);
    assert_int_equal(F.closed[1], 1008);

    sb_claims cl;
    memset(&cl, 0, sizeof cl);
    snprintf(cl.sub, sizeof cl.sub, "alice");
    cl.role = SBP__ROLE__ROLE_CUSTOMER;
    snprintf(cl.iss, sizeof cl.iss, "https://id.example.com");
    snprintf(cl.aud, sizeof cl.aud, "billing"); /* wrong audience */
    hello_claims(2, &cl, "a2");
    expect_error(2, SBP__ERROR_CODE__ERR_BAD_TOKEN);
    assert_int_equal(F.closed[2], 1008);

    snprintf(cl.aud, sizeof cl.aud, "switchboard");
    snprintf(cl.iss, sizeof cl.iss, "https://evil.example.com");
    hello_claims(3, &cl, "a3"); /* wrong issuer */
    expect_error(3, SBP__ERROR_CODE__ERR_BAD_TOKEN);

    snprintf(cl.iss, sizeof cl.iss, "https://id.example.com");
    hello_claims(4, &cl, "a4");
    assert_int_equal(last(4)->body_case, SBP__FRAME__BODY_WELCOME);
    assert_int_equal(F.closed[4], 0);
}

/* The sensitive-word filter between validation and the store: block is
 * refused with ERR_BLOCKED and leaves no trace; mask stores and delivers
 * the masked body; review stores and delivers it flagged. A reload (a new
 * filter from the owner) takes effect at the next SEND. */
static void test_content_filter(void **state)
{
    (void)state;
    const char block[] = "policy: block\nbadword\n";
    const char mask[] = "policy: mask\n傻瓜\n";
    const char review[] = "policy: review\nfree money\n";
    sb_filter_list l[3] = {{"abuse", NULL, block, sizeof block - 1},
                           {"profane", NULL, mask, sizeof mask - 1},
                           {"spam", NULL, review, sizeof review - 1}};
    char err[SB_FILTER_ERR_BYTES];
    assert_int_equal(sb_filter_compile(l, 3, &word_filter, err, sizeof err), 0);
    uint64_t conv = three_sessions();

    /* block: an ERROR for the SEND, nothing pushed, nothing stored. */
    send_msg(1, conv, 0x71, "you B.A.D word");
    expect_error(1, SBP__ERROR_CODE__ERR_BLOCKED);
    assert_int_equal(last(1)->error->client_msg_id.len, 16);
    assert_string_equal(last(1)->error->text,
                        "message blocked by content policy");
    assert_int_equal(count(1, SBP__FRAME__BODY_SEND_ACK), 0);
    for (uint64_t c = 2; c <= 3; c++)
        assert_int_equal(count(c, SBP__FRAME__BODY_PUSH), 0);

    /* mask: acked, stored and pushed with the match masked. */
    send_msg(1, conv, 0x72, "你是傻 瓜!");
    Sbp__SendAck *a = last(1)->send_ack;
    assert_non_null(a);
    assert_int_equal(a->seq, 1); /* the blocked one took no seq */
    for (uint64_t c = 2; c <= 3; c++) {
        Sbp__Message *m = last(c)->push->messages[0];
        assert_string_equal(m->body, "你是***!");
        assert_false(m->review);
    }

    /* review: acked and pushed as it is, flagged. */
    send_msg(3, conv, 0x73, "FREE money here");
    assert_int_equal(last(3)->send_ack->seq, 2);
    for (uint64_t c = 1; c <= 2; c++) {
        Sbp__Message *m = last(c)->push->messages[0];
        assert_string_equal(m->body, "FREE money here");
        assert_true(m->review);
    }

    /* A clean message goes through untouched. */
    send_msg(3, conv, 0x74, "hello");
    assert_false(last(1)->push->messages[0]->review);
    assert_string_equal(last(1)->push->messages[0]->body, "hello");

    /* SYNC returns what was stored: the masked body, no blocked message. */
    sync_conv(2, 0, conv, 0, 0);
    Sbp__SyncResp *sr = last(2)->sync_resp;
    assert_non_null(sr);
    assert_int_equal(sr->n_messages, 3);
    assert_string_equal(sr->messages[0]->body, "你是***!");
    assert_string_equal(sr->messages[1]->body, "FREE money here");
    assert_false(sr->messages[0]->review);
    assert_true(sr->messages[1]->review); /* the flag is stored */
    assert_false(sr->messages[2]->review);

    /* The owner swaps in new lists: the next SEND sees them. */
    const char relaxed[] = "policy: review\nbadword\n";
    sb_filter_list r[1] = {{"abuse", NULL, relaxed, sizeof relaxed - 1}};
    sb_filter *next = NULL;
    assert_int_equal(sb_filter_compile(r, 1, &next, err, sizeof err), 0);
    sb_filter_release(word_filter);
    word_filter = next;
    send_msg(1, conv, 0x75, "you B.A.D word");
    assert_int_equal(last(1)->send_ack->seq, 4);
    assert_true(last(3)->push->messages[0]->review);

    sb_gw_stats st;
    sb_gw_get_stats(F.gw, &st);
    assert_int_equal(st.blocked, 1);
    assert_int_equal(st.masked, 1);
    assert_int_equal(st.flagged, 2);
}

/* Sends on c until one is answered by something else than SEND_ACK;
 * returns the SEND_ACKs (at most max). */
static int send_until_refused(uint64_t c, uint64_t conv, uint8_t *id, int max)
{
    int n = 0;
    for (; n < max; n++) {
        send_msg(c, conv, (*id)++, "flood");
        if (last(c)->body_case != SBP__FRAME__BODY_SEND_ACK) break;
    }
    return n;
}

/* The SEND token bucket: a burst, then ERR_RATE_LIMITED with the request's
 * rid and client_msg_id and nothing stored or pushed; refilled by the
 * clock the core is given; a refused SEND resent later is stored, with the
 * next seq. */
static void test_send_rate_limit(void **state)
{
    (void)state;
    sb_gw_config c;
    sb_gw_config_default(&c);
    assert_int_equal(c.sends_per_s, 50);
    assert_int_equal(c.send_burst, 100);
    c.sends_per_s = 10;
    c.send_burst = 5;
    regw(&c);
    uint64_t conv = three_sessions();
    uint8_t id = 0x20;
    assert_int_equal(send_until_refused(1, conv, &id, 50), 5);
    uint8_t refused = (uint8_t)(id - 1);
    Sbp__Frame *e = last(1);
    expect_error(1, SBP__ERROR_CODE__ERR_RATE_LIMITED);
    assert_int_equal(e->rid, 10 + refused);
    assert_int_equal(e->error->client_msg_id.len, 16);
    assert_int_equal(e->error->client_msg_id.data[0], refused);
    assert_int_equal(F.closed[1], 0);
    /* The other devices got the five accepted, nothing more. */
    assert_int_equal(count(2, SBP__FRAME__BODY_PUSH), 5);
    assert_int_equal(count(3, SBP__FRAME__BODY_PUSH), 5);
    /* Still empty in the same millisecond; one token after 100 ms. */
    send_msg(1, conv, id++, "again");
    expect_error(1, SBP__ERROR_CODE__ERR_RATE_LIMITED);
    F.now += 100;
    send_msg(1, conv, refused, "retry of the refused one");
    assert_int_equal(last(1)->body_case, SBP__FRAME__BODY_SEND_ACK);
    assert_int_equal(last(1)->send_ack->seq, 6);
    assert_false(last(1)->send_ack->duplicate);
    send_msg(1, conv, id++, "too soon");
    expect_error(1, SBP__ERROR_CODE__ERR_RATE_LIMITED);
    /* A long pause refills to the burst, not beyond. */
    F.now += 3600 * 1000;
    assert_int_equal(send_until_refused(1, conv, &id, 50), 5);
    expect_error(1, SBP__ERROR_CODE__ERR_RATE_LIMITED);
    /* Buckets are per session: the agent is not limited by the customer. */
    send_msg(3, conv, 0x90, "agent here");
    assert_int_equal(last(3)->send_ack->seq, 12);
}

/* sends_per_s 0: no limit; a burst of 0 with a rate is refused. */
static void test_send_rate_unlimited(void **state)
{
    (void)state;
    sb_gw_config c;
    sb_gw_config_default(&c);
    c.sends_per_s = 0;
    regw(&c);
    uint64_t conv = three_sessions();
    uint8_t id = 1;
    assert_int_equal(send_until_refused(1, conv, &id, 200), 200);
    sb_gw_config_default(&c);
    c.send_burst = 0;
    c.secret = (const uint8_t *)SECRET;
    c.secret_len = strlen(SECRET);
    sb_gw_io io = gwfake_io();
    sb_gw *gw = NULL;
    assert_int_equal(sb_gw_new(&c, &io, &gw), -EINVAL);
    assert_null(gw);
}

/* ---- PUSH batches ------------------------------------------------------- */

/* Frame i of conn c is a PUSH of n messages of conv with seqs from seq. */
static void expect_push(uint64_t c, size_t i, size_t n, uint64_t conv,
                        uint64_t seq)
{
    assert_true(i < F.nframes[c]);
    Sbp__Frame *fr = F.frames[c][i];
    assert_int_equal(fr->body_case, SBP__FRAME__BODY_PUSH);
    assert_int_equal(fr->rid, 0);
    assert_int_equal(fr->push->n_messages, n);
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(fr->push->messages[k]->conv_id, conv);
        assert_int_equal(fr->push->messages[k]->seq, seq + k);
    }
}

static void expect_send_ack(uint64_t c, size_t i, uint64_t seq)
{
    assert_true(i < F.nframes[c]);
    assert_int_equal(F.frames[c][i]->body_case, SBP__FRAME__BODY_SEND_ACK);
    assert_int_equal(F.frames[c][i]->send_ack->seq, seq);
}

/* Bytes of frame i of conn c as sent (encoding is deterministic). */
static size_t frame_bytes(uint64_t c, size_t i)
{
    sb_buf b = SB_BUF_INIT;
    assert_int_equal(sb_frame_encode(SB_ENC_PROTO, F.frames[c][i], &b), 0);
    size_t n = b.len;
    sb_buf_free(&b);
    return n;
}

/* SENDs to a conversation the gateway has not loaded wait for it in the
 * order they came, behind one read of the store, and are stored in that
 * order even when the store's readers answer in another. */
static void test_parked_sends_keep_order(void **state)
{
    (void)state;
    uint64_t conv = three_sessions();
    sb_gw_config c;
    sb_gw_config_default(&c);
    regw(&c); /* a gateway that has not loaded conv */
    hello(1, "alice", "customer", "a1");
    hello(3, "bob", "agent", "b1");
    clear(1);
    F.defer_pump = true;
    F.reads_reversed = true;
    for (int i = 0; i < 5; i++)
        send_msg(1, conv, (uint8_t)(0x70 + i), "in order");
    pump();
    F.defer_pump = false;
    F.reads_reversed = false;
    assert_int_equal(count(1, SBP__FRAME__BODY_SEND_ACK), 5);
    for (size_t i = 0, k = 0; i < F.nframes[1]; i++) {
        if (F.frames[1][i]->body_case != SBP__FRAME__BODY_SEND_ACK) continue;
        Sbp__SendAck *a = F.frames[1][i]->send_ack;
        assert_int_equal(a->client_msg_id.data[0], 0x70 + k);
        assert_int_equal(a->seq, k + 1);
        k++;
    }
}

/* Messages stored in one loop turn (one group commit) go to each device in
 * one PUSH, in seq order, at the end of the turn; a frame of another kind
 * (a SEND_ACK) sends what is queued first, so the device sees every frame
 * in the order it was made. */
static void test_push_batch(void **state)
{
    (void)state;
    uint64_t conv = three_sessions();
    char body[32];
    F.defer_pump = true;
    for (int i = 0; i < 10; i++) {
        snprintf(body, sizeof body, "burst %d", i);
        send_msg(1, conv, (uint8_t)(0x40 + i), body);
    }
    assert_int_equal(F.nframes[3], 0); /* the store has not answered */
    pump();
    for (uint64_t c = 2; c <= 3; c++) {
        assert_int_equal(F.nframes[c], 1);
        expect_push(c, 0, 10, conv, 1);
        for (int i = 0; i < 10; i++) {
            snprintf(body, sizeof body, "burst %d", i);
            assert_string_equal(F.frames[c][0]->push->messages[i]->body, body);
            assert_string_equal(F.frames[c][0]->push->messages[i]->sender,
                                "alice");
        }
    }
    assert_int_equal(count(1, SBP__FRAME__BODY_PUSH), 0);
    assert_int_equal(count(1, SBP__FRAME__BODY_SEND_ACK), 10);
    sb_gw_stats st;
    sb_gw_get_stats(F.gw, &st);
    assert_int_equal(st.pushes, 20);
    assert_int_equal(st.push_frames, 2);

    /* The agent answers in the middle of a burst: seqs 11-13 alice, 14
     * bob, 15-16 alice. */
    for (uint64_t c = 1; c <= 3; c++)
        clear(c);
    for (int i = 0; i < 3; i++)
        send_msg(1, conv, (uint8_t)(0x50 + i), "a");
    send_msg(3, conv, 0x60, "b");
    for (int i = 3; i < 5; i++)
        send_msg(1, conv, (uint8_t)(0x50 + i), "a");
    pump();
    F.defer_pump = false;
    assert_int_equal(F.nframes[3], 3);
    expect_push(3, 0, 3, conv, 11);
    expect_send_ack(3, 1, 14);
    expect_push(3, 2, 2, conv, 15);
    assert_int_equal(F.nframes[1], 6);
    for (size_t i = 0; i < 3; i++)
        expect_send_ack(1, i, 11 + i);
    expect_push(1, 3, 1, conv, 14);
    expect_send_ack(1, 4, 15);
    expect_send_ack(1, 5, 16);
    assert_int_equal(F.nframes[2], 1);
    expect_push(2, 0, 6, conv, 11);

    /* Beyond push_batch_max (64) messages: more PUSH frames, in order.
     * Both of alice's devices send 40 (within their pending sends). */
    for (uint64_t c = 1; c <= 3; c++)
        clear(c);
    F.defer_pump = true;
    for (int i = 0; i < 40; i++) {
        send_msg(1, conv, (uint8_t)(0x70 + i), "x");
        send_msg(2, conv, (uint8_t)(0xA0 + i), "y");
    }
    pump();
    F.defer_pump = false;
    assert_int_equal(F.nframes[3], 2);
    expect_push(3, 0, 64, conv, 17);
    expect_push(3, 1, 16, conv, 17 + 64);
}

/* Across conversations a device's PUSH holds the messages in the order
 * they were stored (each conversation's in seq order). */
static void test_push_batch_convs(void **state)
{
    (void)state;
    hello(3, "bob", "agent", "b1");
    hello(1, "alice", "customer", "a1");
    hello(4, "carol", "customer", "c1");
    uint64_t ca = open_conv(1, "bob");
    uint64_t cb = open_conv(4, "bob");
    clear(3);
    F.defer_pump = true;
    send_msg(1, ca, 0x11, "a1");
    send_msg(4, cb, 0x21, "b1");
    send_msg(1, ca, 0x12, "a2");
    send_msg(4, cb, 0x22, "b2");
    send_msg(4, cb, 0x23, "b3");
    pump();
    F.defer_pump = false;
    assert_int_equal(F.nframes[3], 1);
    assert_int_equal(last(3)->push->n_messages, 5);
    static const char *const want[] = {"a1", "b1", "a2", "b2", "b3"};
    static const uint64_t seqs[] = {1, 1, 2, 2, 3};
    for (size_t i = 0; i < 5; i++) {
        Sbp__Message *m = last(3)->push->messages[i];
        assert_string_equal(m->body, want[i]);
        assert_int_equal(m->conv_id, want[i][0] == 'a' ? ca : cb);
        assert_int_equal(m->seq, seqs[i]);
    }
}

/* The byte bound splits too, and a message over it goes alone; the
 * per-session bound on unacked messages still closes the session, after
 * what was queued before it. */
static void test_push_batch_caps(void **state)
{
    (void)state;
    sb_gw_config c;
    sb_gw_config_default(&c);
    assert_int_equal(c.push_batch_max, 64);
    assert_int_equal(c.push_batch_bytes_max, 32768);
    c.push_batch_max = 4;
    c.push_batch_bytes_max = 1000;
    c.unacked_max = 30;
    regw(&c);
    uint64_t conv = three_sessions();
    F.defer_pump = true;
    for (int i = 0; i < 10; i++)
        send_msg(1, conv, (uint8_t)(0x10 + i), "s");
    pump();
    assert_int_equal(F.nframes[3], 3);
    expect_push(3, 0, 4, conv, 1);
    expect_push(3, 1, 4, conv, 5);
    expect_push(3, 2, 2, conv, 9);

    /* 300-byte bodies: two to a frame of at most 1,000 bytes. A body of
     * 1,500 bytes goes alone. */
    clear(3);
    char mid[301], big[1501];
    memset(mid, 'm', sizeof mid - 1);
    mid[sizeof mid - 1] = '\0';
    memset(big, 'B', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < 3; i++)
        send_msg(1, conv, (uint8_t)(0x20 + i), mid);
    send_msg(1, conv, 0x23, big);
    send_msg(1, conv, 0x24, "s");
    pump();
    assert_int_equal(F.nframes[3], 4);
    expect_push(3, 0, 2, conv, 11);
    expect_push(3, 1, 1, conv, 13);
    expect_push(3, 2, 1, conv, 14);
    expect_push(3, 3, 1, conv, 15);
    assert_string_equal(F.frames[3][2]->push->messages[0]->body, big);
    for (size_t i = 0; i < F.nframes[3]; i++)
        if (i != 2) assert_true(frame_bytes(3, i) <= 1000);

    /* unacked_max 30, 15 unacked: the 16th of 20 closes bob's session
     * (4013) once the 15 before it are out. */
    clear(3);
    for (int i = 0; i < 20; i++)
        send_msg(1, conv, (uint8_t)(0x30 + i), "s");
    pump();
    F.defer_pump = false;
    assert_int_equal(F.closed[3], SB_WS_CLOSE_TRY_AGAIN);
    assert_int_equal(count(3, SBP__FRAME__BODY_PUSH), 4);
    expect_push(3, 0, 4, conv, 16);
    expect_push(3, 3, 3, conv, 28);

    /* push_batch_max 0 makes no gateway. */
    sb_gw_config_default(&c);
    c.push_batch_max = 0;
    c.secret = (const uint8_t *)SECRET;
    c.secret_len = strlen(SECRET);
    sb_gw_io io = gwfake_io();
    sb_gw *gw = NULL;
    assert_int_equal(sb_gw_new(&c, &io, &gw), -EINVAL);
    assert_null(gw);
}

/* Retries stay per message: those due together are resent in one PUSH,
 * each on its own backoff, until acknowledged. */
static void test_push_batch_retry(void **state)
{
    (void)state;
    uint64_t conv = three_sessions(); /* retries after 1 s, 2 s, 4 s */
    sb_gw_conn_closed(F.gw, 2);
    F.defer_pump = true;
    for (int i = 0; i < 5; i++)
        send_msg(1, conv, (uint8_t)(0x10 + i), "r");
    pump();
    F.defer_pump = false;
    expect_push(3, 0, 5, conv, 1);
    ack(3, conv, 2);
    clear(3);
    gwfake_tick(1001); /* t+1001: 3-5 again, next at t+3001 */
    assert_int_equal(F.nframes[3], 1);
    expect_push(3, 0, 3, conv, 3);
    sb_gw_stats st;
    sb_gw_get_stats(F.gw, &st);
    assert_int_equal(st.retries, 3);
    ack(3, conv, 3);
    send_msg(1, conv, 0x20, "later"); /* seq 6, due at t+2001 */
    expect_push(3, 1, 1, conv, 6);
    clear(3);
    gwfake_tick(1000); /* t+2001: 6 only */
    assert_int_equal(F.nframes[3], 1);
    expect_push(3, 0, 1, conv, 6);
    gwfake_tick(1000); /* t+3001: 4 and 5 */
    assert_int_equal(F.nframes[3], 2);
    expect_push(3, 1, 2, conv, 4);
    ack(3, conv, 6);
    clear(3);
    for (int i = 0; i < 5; i++)
        gwfake_tick(4001);
    assert_int_equal(count(3, SBP__FRAME__BODY_PUSH), 0);
    assert_int_equal(F.closed[3], 0);
}

/* A device that acks more conversations than a session holds cursors for
 * (GW_SESSION_ACKS_MAX) stores the first ones at once and stays on the
 * list of sessions with cursors due, between two others: every cursor is
 * stored once its interval has passed. The early store keeps the session
 * linked once: linked twice, it would cut the session after it off the
 * list (whose cursors would wait for its close) or make a cycle. */
static void test_cursors_past_session_max(void **state)
{
    (void)state;
    hello(1, "ann", "agent", "d1");
    hello(2, "sam", "agent", "s1");
    hello(3, "tom", "agent", "t1");
    enum { N = 70 };
    uint64_t convs[N];
    for (int i = 0; i < N; i++) {
        char member[16];
        snprintf(member, sizeof member, "m%d", i);
        /* A member is a user the server has met. */
        hello(10, member, "customer", "x");
        sb_gw_conn_closed(F.gw, 10);
        clear(10);
        convs[i] = open_conv(1, member);
        send_msg(1, convs[i], (uint8_t)(i + 1), "x");
    }
    send_msg(1, convs[0], 0xF0, "y");
    uint64_t shared = open_conv(2, "ann");
    send_msg(2, shared, 1, "x");
    send_msg(2, shared, 2, "y");
    uint64_t toms = open_conv(3, "ann");
    send_msg(3, toms, 1, "x");
    GF.cursor_acks = 0;
    /* On the list: sam's session, ann's, tom's. */
    ack_conv(2, shared, 1);
    for (int i = 0; i < 10; i++)
        ack_conv(1, convs[i], 1);
    ack_conv(3, toms, 1);
    for (int i = 10; i < N; i++)
        ack_conv(1, convs[i], 1);
    assert_int_equal(GF.cursor_acks, 64); /* ann's first 64, early */
    gwfake_tick(1000 + 50);
    assert_int_equal(GF.cursor_acks, 2 + N);
    /* Later acks are stored in their turn, once each. */
    ack_conv(1, convs[0], 2);
    ack_conv(2, shared, 2);
    gwfake_tick(1000 + 50);
    assert_int_equal(GF.cursor_acks, 2 + N + 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_send_push_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotent_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_cannot_write, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_retry_until_ack_then_close, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_receipt_rides_with_push, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sync_after_offline, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_customer_cannot_open_with_customer,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_iss_aud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_rate_unlimited, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_content_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parked_sends_keep_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_push_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_batch_convs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_batch_caps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_batch_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursors_past_session_max, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
