/* integ_idempotency: the (sender, client_msg_id) key, over raw frames.
 *
 * A raw client sends the same SEND (same client_msg_id) three times, one
 * after the other: three SEND_ACKs with the same seq and msg_id,
 * duplicate false, then true, true. Three more copies of another id go
 * out back to back (they may meet in one group commit): one original, two
 * duplicates, one seq. HISTORY and the store hold each message once; the
 * other member gets exactly one PUSH of each. The same id from another
 * sender is a different message. After kill -9 and a restart, the same id
 * again still gets the original answer and creates nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "itest.h"

static it_env E;
static it_raw A, B; /* alice (customer), bob (agent) */

static int teardown(void **state)
{
    (void)state;
    it_raw_close(&A);
    it_raw_close(&B);
    it_env_free(&E);
    return 0;
}

typedef struct ack {
    uint64_t seq, msg_id, conv_id;
    bool duplicate;
} ack;

/* Waits for the SEND_ACK answering rid; fails the test on an ERROR. */
static ack wait_ack(it_raw *r, uint32_t rid, const uint8_t *cmid)
{
    ack a = {0, 0, 0, false};
    int64_t deadline = harness_now_ms() + 10000;
    while (harness_now_ms() < deadline) {
        Sbp__Frame *f = it_raw_recv(r, 200);
        if (!f) {
            assert_false(r->eof);
            continue;
        }
        if (f->rid == rid && f->body_case == SBP__FRAME__BODY_ERROR) {
            fprintf(stderr, "SEND rid %u: ERROR %d %s\n", rid,
                    (int)f->error->code, f->error->text);
            sb_frame_free(f);
            fail();
        }
        if (f->rid == rid && f->body_case == SBP__FRAME__BODY_SEND_ACK) {
            Sbp__SendAck *s = f->send_ack;
            assert_int_equal(s->client_msg_id.len, SB_CLIENT_MSG_ID_BYTES);
            assert_memory_equal(s->client_msg_id.data, cmid,
                                SB_CLIENT_MSG_ID_BYTES);
            a.seq = s->seq;
            a.msg_id = s->msg_id;
            a.conv_id = s->conv_id;
            a.duplicate = s->duplicate;
            sb_frame_free(f);
            return a;
        }
        sb_frame_free(f);
    }
    fail_msg("no SEND_ACK for rid %u", rid);
    return a;
}

/* Reads bob's frames for ms, ACKing every PUSH; counts pushed messages
 * carrying cmid (and all pushed messages in *total). */
static int count_pushes(it_raw *r, int ms, const uint8_t *cmid, int *total)
{
    int n = 0;
    int64_t deadline = harness_now_ms() + ms;
    while (harness_now_ms() < deadline) {
        Sbp__Frame *f = it_raw_recv(r, 50);
        if (!f) continue;
        if (f->body_case == SBP__FRAME__BODY_PUSH) {
            for (size_t i = 0; i < f->push->n_messages; i++) {
                Sbp__Message *m = f->push->messages[i];
                if (total) (*total)++;
                if (m->client_msg_id.len == SB_CLIENT_MSG_ID_BYTES &&
                    memcmp(m->client_msg_id.data, cmid,
                           SB_CLIENT_MSG_ID_BYTES) == 0)
                    n++;
                Sbp__Ack ak = SBP__ACK__INIT;
                ak.conv_id = m->conv_id;
                ak.seq = m->seq;
                Sbp__Frame g = SBP__FRAME__INIT;
                g.body_case = SBP__FRAME__BODY_ACK;
                g.ack = &ak;
                it_raw_send(r, &g);
            }
        }
        sb_frame_free(f);
    }
    return n;
}

static void hello(it_raw *r, const char *user, const char *role,
                  const char *dev)
{
    assert_int_equal(it_raw_open(r, E.srv.port, SB_ENC_PROTO, NULL), 0);
    assert_int_equal(
        it_raw_hello(r, harness_token(user, role, 3600), dev, 10000), 0);
}

static void test_idempotency(void **state)
{
    (void)state;
    int64_t t0 = harness_now_ms();
    it_env_init(&E);
    assert_int_equal(it_server_start(&E, NULL), 0);
    hello(&B, "bob", "agent", "bob-raw");
    hello(&A, "alice", "customer", "alice-raw");

    /* OPEN with bob. */
    char *members[1] = {(char *)"bob"};
    Sbp__Open o = SBP__OPEN__INIT;
    o.n_members = 1;
    o.members = members;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_OPEN;
    f.open = &o;
    uint32_t rid = it_raw_send(&A, &f);
    Sbp__Frame *g = it_raw_expect(&A, SBP__FRAME__BODY_OPEN_RESP, rid, 10000);
    assert_non_null(g);
    uint64_t conv = g->open_resp->conv->conv_id;
    sb_frame_free(g);
    assert_true(conv != 0);

    /* One id, three times, one after the other. */
    uint8_t id_a[16], id_b[16];
    for (int i = 0; i < 16; i++) {
        id_a[i] = (uint8_t)(0xA0 + i);
        id_b[i] = (uint8_t)(0xB0 + i);
    }
    ack a[3];
    for (int i = 0; i < 3; i++) {
        rid = it_raw_send_msg(&A, id_a, conv, "once, said thrice");
        assert_true(rid != 0);
        a[i] = wait_ack(&A, rid, id_a);
    }
    assert_false(a[0].duplicate);
    assert_true(a[1].duplicate);
    assert_true(a[2].duplicate);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(a[i].seq, 1);
        assert_int_equal(a[i].msg_id, a[0].msg_id);
        assert_int_equal(a[i].conv_id, conv);
    }

    /* Another id, three copies back to back. */
    uint32_t rids[3];
    for (int i = 0; i < 3; i++) {
        rids[i] = it_raw_send_msg(&A, id_b, conv, "burst");
        assert_true(rids[i] != 0);
    }
    ack b[3];
    int originals = 0;
    for (int i = 0; i < 3; i++) {
        b[i] = wait_ack(&A, rids[i], id_b);
        originals += !b[i].duplicate;
    }
    assert_int_equal(originals, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(b[i].seq, 2);
        assert_int_equal(b[i].msg_id, b[0].msg_id);
    }
    assert_true(b[0].msg_id != a[0].msg_id);

    /* bob got exactly one PUSH of each. */
    int total = 0;
    int pa = count_pushes(&B, 700, id_a, &total);
    assert_int_equal(pa, 1);
    assert_int_equal(total, 2);

    /* The same id from another sender is another message. */
    rid = it_raw_send_msg(&B, id_a, conv, "bob's own, same id bytes");
    ack c = wait_ack(&B, rid, id_a);
    assert_false(c.duplicate);
    assert_int_equal(c.seq, 3);

    /* HISTORY: each message once. */
    Sbp__History h = SBP__HISTORY__INIT;
    h.conv_id = conv;
    h.limit = 50;
    Sbp__Frame hf = SBP__FRAME__INIT;
    hf.body_case = SBP__FRAME__BODY_HISTORY;
    hf.history = &h;
    rid = it_raw_send(&A, &hf);
    g = it_raw_expect(&A, SBP__FRAME__BODY_HISTORY_RESP, rid, 10000);
    assert_non_null(g);
    assert_int_equal(g->history_resp->n_messages, 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(g->history_resp->messages[i]->seq, i + 1);
    assert_int_equal(g->history_resp->messages[0]->msg_id, a[0].msg_id);
    assert_int_equal(g->history_resp->messages[1]->msg_id, b[0].msg_id);
    assert_false(g->history_resp->more);
    sb_frame_free(g);

    it_row *rows = NULL;
    assert_int_equal(it_store_rows(E.srv.data_dir, conv, &rows), 3);
    free(rows);

    /* kill -9, restart: the original answer survives. */
    it_raw_close(&A);
    it_raw_close(&B);
    harness_kill9(&E.srv);
    assert_int_equal(harness_restart(&E.srv), 0);
    hello(&B, "bob", "agent", "bob-raw");
    hello(&A, "alice", "customer", "alice-raw");
    rid = it_raw_send_msg(&A, id_a, conv, "once, said thrice");
    ack d = wait_ack(&A, rid, id_a);
    assert_true(d.duplicate);
    assert_int_equal(d.seq, a[0].seq);
    assert_int_equal(d.msg_id, a[0].msg_id);
    rid = it_raw_send_msg(&A, id_b, conv, "burst");
    d = wait_ack(&A, rid, id_b);
    assert_true(d.duplicate);
    assert_int_equal(d.seq, b[0].seq);
    assert_int_equal(d.msg_id, b[0].msg_id);
    total = 0;
    assert_int_equal(count_pushes(&B, 500, id_a, &total), 0);
    assert_int_equal(total, 0);
    assert_int_equal(it_store_rows(E.srv.data_dir, conv, &rows), 3);
    free(rows);

    printf("integ_idempotency: 3 sends of one id -> 1 message (seq %llu), "
           "burst of 3 -> 1 message, 1 PUSH each; original ack after kill -9 "
           "+ restart; %lld ms\n",
           (unsigned long long)a[0].seq, (long long)(harness_now_ms() - t0));
    it_raw_close(&A);
    it_raw_close(&B);
    it_env_free(&E);
}

/* A device that never ACKs gets the PUSH again (backoff doubling), and
 * after --retry-attempts resends its session is closed with 4013 (try again);
 * it catches up by SYNC on its next connection. */
static void test_push_retry(void **state)
{
    (void)state;
    int64_t t0 = harness_now_ms();
    it_env_init(&E);
    const char *extra[] = {
        "--retry-ms", "100", "--retry-ms-max", "400", "--retry-attempts",
        "3",          NULL};
    assert_int_equal(it_server_start(&E, extra), 0);
    hello(&B, "bob", "agent", "bob-raw");
    hello(&A, "alice", "customer", "alice-raw");
    char *members[1] = {(char *)"bob"};
    Sbp__Open o = SBP__OPEN__INIT;
    o.n_members = 1;
    o.members = members;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_OPEN;
    f.open = &o;
    uint32_t rid = it_raw_send(&A, &f);
    Sbp__Frame *g = it_raw_expect(&A, SBP__FRAME__BODY_OPEN_RESP, rid, 10000);
    assert_non_null(g);
    uint64_t conv = g->open_resp->conv->conv_id;
    sb_frame_free(g);
    uint8_t id[16];
    memset(id, 0x5A, sizeof id);
    rid = it_raw_send_msg(&A, id, conv, "ack me");
    wait_ack(&A, rid, id);

    /* bob reads but never ACKs: 1 PUSH + 3 resends, then close 4013. */
    int pushes = 0;
    int64_t first = 0, last = 0;
    int64_t deadline = harness_now_ms() + 10000;
    while (!B.eof && harness_now_ms() < deadline) {
        g = it_raw_recv(&B, 50);
        if (!g) continue;
        if (g->body_case == SBP__FRAME__BODY_PUSH) {
            assert_int_equal(g->push->n_messages, 1);
            assert_int_equal(g->push->messages[0]->seq, 1);
            pushes++;
            last = harness_now_ms();
            if (!first) first = last;
        }
        sb_frame_free(g);
        if (B.tap_close >= 0) break;
    }
    int code = it_raw_wait_close(&B, 5000);
    /* What a wslay-based client (sb_ws, hence the SDK) makes of it. */
    int wslay_code = sb_ws_close_received(B.ws) ? sb_ws_close_code(B.ws) : 0;
    assert_int_equal(pushes, 4);
    assert_int_equal(code, SB_WS_CLOSE_TRY_AGAIN);
    /* 100 + 200 + 400 ms between the copies, at the server's 50 ms tick. */
    assert_true(last - first >= 600);

    /* Back with a SYNC: the message is there, once. */
    it_raw_close(&B);
    hello(&B, "bob", "agent", "bob-raw");
    Sbp__Sync sy = SBP__SYNC__INIT;
    f.body_case = SBP__FRAME__BODY_SYNC;
    f.sync = &sy;
    f.rid = 0;
    rid = it_raw_send(&B, &f);
    g = it_raw_expect(&B, SBP__FRAME__BODY_SYNC_RESP, rid, 10000);
    assert_non_null(g);
    assert_int_equal(g->sync_resp->n_messages, 1);
    assert_memory_equal(g->sync_resp->messages[0]->client_msg_id.data, id, 16);
    sb_frame_free(g);
    printf("integ_idempotency[push retry]: unacked PUSH sent %d times over "
           "%lld ms, then close %d (sb_ws/wslay reports %d); SYNC brings it "
           "back once; %lld ms\n",
           pushes, (long long)(last - first), code, wslay_code,
           (long long)(harness_now_ms() - t0));
    it_raw_close(&A);
    it_raw_close(&B);
    it_env_free(&E);
}

int main(void)
{
    A.fd = B.fd = -1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_idempotency, teardown),
        cmocka_unit_test_teardown(test_push_retry, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
