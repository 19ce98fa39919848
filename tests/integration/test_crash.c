/* integ_crash: kill -9 under load (I1-I4), --durability fsync.
 *
 * Eight customer/agent pairs, one conversation each, every device sending
 * as fast as its window allows through the SDK. After about a second the
 * server is killed with SIGKILL and restarted on the same port; the
 * clients reconnect by themselves (small backoff), resend what was not
 * acknowledged (same client_msg_id), and the load goes on; then a second
 * kill and restart. Once every queued send is SENT:
 *   I1 every SEND_ACK'ed message is in the store, as acknowledged;
 *   I2 the store holds each client_msg_id once (rows == distinct ids sent),
 *      and no device surfaced a seq twice;
 *   I3 seqs are dense 1..N per conversation and surfaced in order;
 *   I4 both devices of each conversation hold exactly the store's
 *      (seq, msg_id, client_msg_id, body) list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "itest.h"

#define N_CONVS 8
#define PER_DEV_MAX 600  /* sends per device at most */
#define INFLIGHT_MAX 128 /* queued but not yet SENT, per device */
#define CYCLES 2

static it_env E;
static it_device *cust[N_CONVS], *agent[N_CONVS], *all[2 * N_CONVS];
static uint64_t conv[N_CONVS];
static it_load L = {.cust = cust,
                    .agent = agent,
                    .all = all,
                    .conv = conv,
                    .n = N_CONVS,
                    .per_dev = PER_DEV_MAX,
                    .inflight = INFLIGHT_MAX};

static int teardown(void **state)
{
    (void)state;
    it_load_stop(&L);
    it_env_free(&E);
    return 0;
}

static void test_crash(void **state)
{
    (void)state;
    int64_t t0 = harness_now_ms();
    it_env_init(&E);
    E.unlimited = true; /* load, not rate limits, is under test */
    const char *extra[] = {"--durability", "fsync", NULL};
    assert_int_equal(it_server_start(&E, extra), 0);
    it_load_devices(&E, &L);
    for (int i = 0; i < 2 * N_CONVS; i++)
        assert_int_equal(it_device_start(all[i]), 0);
    for (int i = 0; i < 2 * N_CONVS; i++)
        assert_true(it_device_wait_ready(all[i], 10000));
    assert_true(it_load_open(&L, 10000));

    it_load_start(&E, &L);
    size_t acked_before_kill[CYCLES];
    for (int cyc = 0; cyc < CYCLES; cyc++) {
        /* Kill mid-load: after a second, or earlier once a share of the
         * whole load is acknowledged (a fast server would finish first). */
        size_t want =
            (size_t)(2 * N_CONVS * PER_DEV_MAX) * (cyc + 1) / (CYCLES + 2);
        it_load_wait_acked(&E, &L, want, cyc == 0 ? 1000 : 700);
        acked_before_kill[cyc] = it_load_acked(&L);
        harness_kill9(&E.srv);
        it_run_for(&E, 300); /* clients find the door shut, back off */
        assert_int_equal(harness_restart(&E.srv), 0);
        /* The load goes on once everybody is back. */
        for (int i = 0; i < 2 * N_CONVS; i++)
            assert_true(it_device_wait_ready(all[i], 10000));
    }
    it_run_for(&E, 500);
    it_load_stop(&L);
    int64_t t_load_end = harness_now_ms();

    size_t sends = 0, stored_total = 0, dups = 0;
    unsigned readies = 0;
    int problems = it_load_converged(&E, &L, 90000, &sends, &stored_total);
    int64_t t_conv = harness_now_ms();
    for (int i = 0; i < 2 * N_CONVS; i++) {
        dups += all[i]->n_dup_acks;
        readies += all[i]->readies;
    }
    it_row *rows = NULL;
    long all_rows = it_store_rows(E.srv.data_dir, 0, &rows);
    free(rows);
    assert_int_equal(problems, 0);
    assert_int_equal(E.violations, 0);
    assert_int_equal(all_rows, (long)sends);
    assert_int_equal(stored_total, sends);
    /* Every device came back after each crash. */
    for (int i = 0; i < 2 * N_CONVS; i++) {
        if (all[i]->readies < CYCLES + 1)
            fprintf(stderr, "%s: READY %u times, %u backoffs, state %s\n",
                    all[i]->name, all[i]->readies, all[i]->backoffs,
                    sb_client_state_name(sb_client_get_state(all[i]->c)));
        assert_true(all[i]->readies >= CYCLES + 1);
    }

    sb_client_stats st;
    uint64_t resends = 0, syncs = 0, held = 0;
    for (int i = 0; i < 2 * N_CONVS; i++) {
        sb_client_get_stats(all[i]->c, &st);
        resends += st.resends;
        syncs += st.syncs;
        held += st.held;
    }
    printf("integ_crash: %d convs, %zu msgs sent and stored once each "
           "(acked before kill #1: %zu, #2: %zu); %llu resends, %zu duplicate "
           "acks, %llu held, %llu syncs, %u connects; load %lld ms, "
           "converged +%lld ms, total %lld ms\n",
           N_CONVS, sends, acked_before_kill[0], acked_before_kill[1],
           (unsigned long long)resends, dups, (unsigned long long)held,
           (unsigned long long)syncs, readies, (long long)(t_load_end - t0),
           (long long)(t_conv - t_load_end),
           (long long)(harness_now_ms() - t0));
    it_env_free(&E);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_crash, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
