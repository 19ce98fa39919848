/* integ_delivery: one conversation, three devices, both encodings.
 *
 * Customer alice has two devices, agent bob one. Alice's first device and
 * bob send 100 messages each, interleaved. Every device (alice's second
 * included: multi-device sync) must surface all 200 exactly once, in seq
 * order 1..200, with the same msg_ids; the senders surface their own
 * messages at SEND_ACK. Every send reaches SENT, then DELIVERED (the other
 * side's devices ACKed it: READ_NOTIFY delivered_seq), and alice's reach
 * READ once bob reads. HISTORY and the store agree with the devices. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "itest.h"

#define N_EACH 100
#define WAIT_MS 30000

static it_env E;

static int teardown(void **state)
{
    (void)state;
    it_env_free(&E);
    return 0;
}

static void run_delivery(sb_encoding enc)
{
    int64_t t0 = harness_now_ms();
    it_env_init(&E);
    E.enc = enc;
    assert_int_equal(it_server_start(&E, NULL), 0);

    /* bob first: a customer may only open with users the server knows as
     * service side. */
    it_device *bob = it_device_new(&E, "bob", "agent", "bob-d1");
    assert_int_equal(it_device_start(bob), 0);
    assert_true(it_device_wait_ready(bob, 10000));
    it_device *a1 = it_device_new(&E, "alice", "customer", "alice-d1");
    it_device *a2 = it_device_new(&E, "alice", "customer", "alice-d2");
    assert_int_equal(it_device_start(a1), 0);
    assert_int_equal(it_device_start(a2), 0);
    assert_true(it_device_wait_ready(a1, 10000));
    assert_true(it_device_wait_ready(a2, 10000));

    uint64_t conv = it_open(a1, "bob", 10000);
    if (!conv)
        fprintf(stderr, "open failed: %s\n", sb_client_err_name(a1->open_err));
    assert_true(conv != 0);

    /* Interleaved: both queue, the loop runs a little every few. */
    char body[64];
    for (int i = 0; i < N_EACH; i++) {
        snprintf(body, sizeof body, "alice says %d", i);
        assert_int_equal(it_send_text(a1, conv, body), 0);
        snprintf(body, sizeof body, "bob answers %d", i);
        assert_int_equal(it_send_text(bob, conv, body), 0);
        if (i % 7 == 6) it_run_for(&E, 3);
    }
    it_device *senders[] = {a1, bob};
    it_device *all[] = {a1, a2, bob};
    assert_true(it_wait_sent(senders, 2, WAIT_MS));
    assert_int_equal(a1->n_sent, N_EACH);
    assert_int_equal(bob->n_sent, N_EACH);
    assert_int_equal(a1->n_failed + bob->n_failed, 0);
    int64_t t_sent = harness_now_ms();

    bool all_surfaced = it_wait_surfaced(all, 3, conv, 2 * N_EACH, WAIT_MS);
    for (size_t i = 0; i < 3; i++)
        if (!all_surfaced)
            fprintf(stderr, "%s surfaced through %llu\n", all[i]->name,
                    (unsigned long long)it_surfaced(all[i], conv));
    assert_true(all_surfaced);
    int64_t t_surf = harness_now_ms();
    /* Late duplicates (a PUSH retry, a SYNC) would surface now. */
    it_run_for(&E, 300);
    assert_int_equal(it_check_conv(&E, conv, all, 3, 2 * N_EACH), 0);
    /* The senders surfaced their own messages (at SEND_ACK). */
    size_t own_a1 = 0, own_bob = 0;
    for (size_t i = 0; i < it_log(a1, conv)->n; i++)
        own_a1 += it_log(a1, conv)->msgs[i].own;
    for (size_t i = 0; i < it_log(bob, conv)->n; i++)
        own_bob += it_log(bob, conv)->msgs[i].own;
    assert_int_equal(own_a1, N_EACH);
    assert_int_equal(own_bob, N_EACH);

    /* DELIVERED: bob's device ACKed alice's messages and the other way. */
    bool dl = it_wait_size(&E, &a1->n_delivered, N_EACH, 10000) &&
              it_wait_size(&E, &bob->n_delivered, N_EACH, 10000);
    if (!dl)
        fprintf(stderr, "delivered: alice %zu/%d, bob %zu/%d\n",
                a1->n_delivered, N_EACH, bob->n_delivered, N_EACH);
    assert_true(dl);

    /* READ: bob reads everything; alice's sends become READ. */
    assert_int_equal(sb_client_read(bob->c, conv, 2 * N_EACH), 0);
    bool rd = it_wait_size(&E, &a1->n_read, N_EACH, 10000);
    if (!rd) fprintf(stderr, "read: alice %zu/%d\n", a1->n_read, N_EACH);
    assert_true(rd);
    assert_int_equal(bob->n_read, 0); /* nobody read bob's */

    /* HISTORY (segment loading, pages of 64) from alice's other device. */
    assert_int_equal(it_history_all(a2, conv, 64, 10000), 0);
    assert_int_equal(a2->hist.n, 2 * N_EACH);
    it_conv_log *lg = it_log(a2, conv);
    for (size_t i = 0; i < a2->hist.n; i++) {
        assert_int_equal(a2->hist.seqs[i], i + 1);
        assert_int_equal(a2->hist.msg_ids[i], lg->msgs[i].msg_id);
    }

    /* The store holds exactly what the devices surfaced. */
    size_t stored = 0;
    assert_int_equal(it_check_store(&E, conv, a2, &stored), 0);
    assert_int_equal(stored, 2 * N_EACH);
    assert_int_equal(E.violations, 0);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(all[i]->errors, 0);

    printf("integ_delivery[%s]: 3 devices surfaced %d msgs each, exactly once "
           "in order; %zu+%zu SENT, %zu+%zu DELIVERED, %zu READ; sent in "
           "%lld ms, all surfaced +%lld ms, total %lld ms\n",
           enc == SB_ENC_JSON ? "json" : "proto", 2 * N_EACH, a1->n_sent,
           bob->n_sent, a1->n_delivered, bob->n_delivered, a1->n_read,
           (long long)(t_sent - t0), (long long)(t_surf - t_sent),
           (long long)(harness_now_ms() - t0));
    it_env_free(&E);
}

static void test_delivery_proto(void **state)
{
    (void)state;
    run_delivery(SB_ENC_PROTO);
}

static void test_delivery_json(void **state)
{
    (void)state;
    run_delivery(SB_ENC_JSON);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_delivery_proto, teardown),
        cmocka_unit_test_teardown(test_delivery_json, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
