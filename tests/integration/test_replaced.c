/* integ_replaced: one device id, two clients (the app restarted while the
 * old process lingers). The server keeps one session per device: the newer
 * connection replaces the older one, which is closed with 1000. The older
 * client must stop for good (STOPPED, SB_CLIENT_E_REPLACED), even when it
 * is busy sending at that moment, and must not come back and push the
 * newer one out; the newer one stays connected. Messages already acked
 * are intact and the newer client (cursor restored) converges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "itest.h"

#define ROUNDS 3

static it_env E;
static uv_timer_t load;
static it_device *busy;
static uint64_t busy_conv;
static int busy_next;

static int teardown(void **state)
{
    (void)state;
    it_env_free(&E);
    return 0;
}

static void on_load(uv_timer_t *t)
{
    (void)t;
    if (!busy || !busy->c) return;
    while (busy->n_sends - (busy->n_sent + busy->n_failed) < 200)
        if (it_send_n(busy, busy_conv, busy_next++, 1, "busy") != 0) break;
}

static void test_replaced(void **state)
{
    (void)state;
    int64_t t0 = harness_now_ms();
    it_env_init(&E);
    E.unlimited = true; /* load, not rate limits, is under test */
    assert_int_equal(it_server_start(&E, NULL), 0);
    it_device *cust = it_device_new(&E, "zoe", "customer", "zoe-app");
    it_device *old = it_device_new(&E, "ann", "agent", "ann-desk");
    assert_int_equal(it_device_start(old), 0);
    assert_true(it_device_wait_ready(old, 10000));
    assert_int_equal(it_device_start(cust), 0);
    assert_true(it_device_wait_ready(cust, 10000));
    uint64_t conv = it_open(cust, "ann", 10000);
    assert_true(conv != 0);
    uv_timer_init(&E.loop, &load);
    uv_timer_start(&load, on_load, 0, 1);

    int failures = 0;
    for (int round = 0; round < ROUNDS; round++) {
        /* The old client is busy: its window is full, SEND_ACKs stream in. */
        busy = old;
        busy_conv = conv;
        it_run_for(&E, 150);
        /* The same device connects again. */
        it_device *neu = it_device_new(&E, "ann", "agent", "ann-desk");
        assert_int_equal(it_device_start(neu), 0);
        assert_true(it_device_wait_ready(neu, 10000));
        busy = NULL;
        it_run_for(&E, 800); /* long enough for several reconnects */
        bool ok = old->stops == 1 &&
                  old->last_stop_err == SB_CLIENT_E_REPLACED &&
                  sb_client_get_state(old->c) == SB_CLIENT_STOPPED &&
                  neu->readies == 1 && neu->backoffs == 0 &&
                  sb_client_get_state(neu->c) == SB_CLIENT_READY;
        if (!ok) {
            failures++;
            fprintf(stderr,
                    "round %d: old: state %s, READY %u times, stops %u (%s); "
                    "new: state %s, READY %u times, backoffs %u\n",
                    round, sb_client_state_name(sb_client_get_state(old->c)),
                    old->readies, old->stops,
                    sb_client_err_name(old->last_stop_err),
                    sb_client_state_name(sb_client_get_state(neu->c)),
                    neu->readies, neu->backoffs);
            for (size_t k = 0; k < old->n_close_codes; k++)
                fprintf(stderr, "  old connection end: code %u, %s\n",
                        old->close_codes[k],
                        sb_client_err_name(old->close_errs[k]));
        }
        it_device_stop(old);
        old = neu;
    }
    uv_timer_stop(&load);
    assert_int_equal(failures, 0);

    /* What was acked is stored; the last client and the customer agree
     * with the store on everything up to the last acked seq. */
    size_t acked = 0;
    assert_int_equal(it_check_acked_in_store(&E, &acked), 0);
    assert_int_equal(E.violations, 0);
    printf("integ_replaced: %d replacements of a busy client: the old one "
           "stopped (REPLACED), the new one stayed; %zu acked msgs stored; "
           "%lld ms\n",
           ROUNDS, acked, (long long)(harness_now_ms() - t0));
    it_env_free(&E);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_replaced, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
