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
static it_device *cust[N_CONVS], *agent[N_CONVS];
static uint64_t conv[N_CONVS];
static uv_timer_t load;
static bool loading;
static int next_body[2 * N_CONVS];

static int teardown(void **state)
{
    (void)state;
    if (loading) {
        uv_timer_stop(&load);
        loading = false;
    }
    it_env_free(&E);
    return 0;
}

static void top_up(it_device *d, uint64_t conv_id, int *next)
{
    char body[96];
    while (d->n_sends < PER_DEV_MAX &&
           d->n_sends - (d->n_sent + d->n_failed) < INFLIGHT_MAX) {
        snprintf(body, sizeof body, "%s to conv %llu: message %d", d->user,
                 (unsigned long long)conv_id, (*next)++);
        if (it_send_text(d, conv_id, body) != 0) break;
    }
}

static void on_load(uv_timer_t *t)
{
    (void)t;
    for (int i = 0; i < N_CONVS; i++) {
        top_up(cust[i], conv[i], &next_body[2 * i]);
        top_up(agent[i], conv[i], &next_body[2 * i + 1]);
    }
}

static size_t acked_total(void)
{
    size_t n = 0;
    for (int i = 0; i < N_CONVS; i++)
        n += cust[i]->n_sent + agent[i]->n_sent;
    return n;
}

typedef struct fn_arg {
    size_t (*fn)(void);
    size_t want;
} fn_arg;

static bool fn_reached(void *arg)
{
    fn_arg *a = arg;
    return a->fn() >= a->want;
}

static void it_wait_size_fn(it_env *e, size_t (*fn)(void), size_t want,
                            int timeout_ms)
{
    fn_arg a = {fn, want};
    it_run_until(e, fn_reached, &a, timeout_ms);
}

static void test_crash(void **state)
{
    (void)state;
    int64_t t0 = harness_now_ms();
    it_env_init(&E);
    E.unlimited = true; /* load, not rate limits, is under test */
    const char *extra[] = {"--durability", "fsync", NULL};
    assert_int_equal(it_server_start(&E, extra), 0);
    char user[32], dev[32];
    for (int i = 0; i < N_CONVS; i++) {
        snprintf(user, sizeof user, "agent%d", i);
        snprintf(dev, sizeof dev, "agent%d-d1", i);
        agent[i] = it_device_new(&E, user, "agent", dev);
        assert_int_equal(it_device_start(agent[i]), 0);
    }
    for (int i = 0; i < N_CONVS; i++)
        assert_true(it_device_wait_ready(agent[i], 10000));
    for (int i = 0; i < N_CONVS; i++) {
        snprintf(user, sizeof user, "cust%d", i);
        snprintf(dev, sizeof dev, "cust%d-d1", i);
        cust[i] = it_device_new(&E, user, "customer", dev);
        assert_int_equal(it_device_start(cust[i]), 0);
    }
    for (int i = 0; i < N_CONVS; i++) {
        assert_true(it_device_wait_ready(cust[i], 10000));
        snprintf(user, sizeof user, "agent%d", i);
        conv[i] = it_open(cust[i], user, 10000);
        assert_true(conv[i] != 0);
    }

    uv_timer_init(&E.loop, &load);
    uv_timer_start(&load, on_load, 0, 2);
    loading = true;
    size_t acked_before_kill[CYCLES];
    for (int cyc = 0; cyc < CYCLES; cyc++) {
        /* Kill mid-load: after a second, or earlier once a share of the
         * whole load is acknowledged (a fast server would finish first). */
        size_t want =
            (size_t)(2 * N_CONVS * PER_DEV_MAX) * (cyc + 1) / (CYCLES + 2);
        it_wait_size_fn(&E, acked_total, want, cyc == 0 ? 1000 : 700);
        acked_before_kill[cyc] = acked_total();
        harness_kill9(&E.srv);
        it_run_for(&E, 300); /* clients find the door shut, back off */
        assert_int_equal(harness_restart(&E.srv), 0);
        /* The load goes on once everybody is back. */
        for (int i = 0; i < N_CONVS; i++) {
            assert_true(it_device_wait_ready(cust[i], 10000));
            assert_true(it_device_wait_ready(agent[i], 10000));
        }
    }
    it_run_for(&E, 500);
    uv_timer_stop(&load);
    uv_close((uv_handle_t *)&load, NULL);
    loading = false;
    int64_t t_load_end = harness_now_ms();

    it_device *all[2 * N_CONVS];
    for (int i = 0; i < N_CONVS; i++) {
        all[2 * i] = cust[i];
        all[2 * i + 1] = agent[i];
    }
    bool sent = it_wait_sent(all, 2 * N_CONVS, 90000);
    size_t sends = 0, acked = 0, failed = 0, dups = 0;
    unsigned readies = 0;
    for (int i = 0; i < 2 * N_CONVS; i++) {
        sends += all[i]->n_sends;
        acked += all[i]->n_sent;
        failed += all[i]->n_failed;
        dups += all[i]->n_dup_acks;
        readies += all[i]->readies;
    }
    if (!sent)
        fprintf(stderr, "not all sent: %zu of %zu acked, %zu failed\n", acked,
                sends, failed);
    assert_true(sent);
    assert_int_equal(failed, 0);
    int64_t t_sent = harness_now_ms();

    /* Every device surfaces its conversation through the last seq. */
    for (int i = 0; i < N_CONVS; i++) {
        uint64_t n = cust[i]->n_sends + agent[i]->n_sends;
        it_device *pair[2] = {cust[i], agent[i]};
        bool ok = it_wait_surfaced(pair, 2, conv[i], n, 60000);
        if (!ok)
            fprintf(stderr,
                    "conv %llu: %s through %llu, %s through %llu, "
                    "expected %llu\n",
                    (unsigned long long)conv[i], cust[i]->name,
                    (unsigned long long)it_surfaced(cust[i], conv[i]),
                    agent[i]->name,
                    (unsigned long long)it_surfaced(agent[i], conv[i]),
                    (unsigned long long)n);
        assert_true(ok);
    }
    int64_t t_conv = harness_now_ms();
    it_run_for(&E, 300); /* late duplicates would show now */

    int problems = 0;
    size_t stored_total = 0;
    for (int i = 0; i < N_CONVS; i++) {
        uint64_t n = cust[i]->n_sends + agent[i]->n_sends;
        it_device *pair[2] = {cust[i], agent[i]};
        problems += it_check_conv(&E, conv[i], pair, 2, n);
        size_t stored = 0;
        problems += it_check_store(&E, conv[i], cust[i], &stored);
        problems += it_check_store(&E, conv[i], agent[i], NULL);
        stored_total += stored;
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
           "acks, %llu held, %llu syncs, %u connects; load %lld ms, all SENT "
           "+%lld ms, converged +%lld ms, total %lld ms\n",
           N_CONVS, sends, acked_before_kill[0], acked_before_kill[1],
           (unsigned long long)resends, dups, (unsigned long long)held,
           (unsigned long long)syncs, readies, (long long)(t_load_end - t0),
           (long long)(t_sent - t_load_end), (long long)(t_conv - t_sent),
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
