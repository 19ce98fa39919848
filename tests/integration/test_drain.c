/* integ_drain: SIGTERM under load, then restart.
 *
 * Four customer/agent pairs send as fast as their windows allow. The
 * server gets SIGTERM while the clients' loop keeps running: it must stop
 * serving (a connection made during the drain, and a request on one made
 * before the signal, get 503 from /healthz), let the SENDs the store has
 * commit and be acknowledged,
 * close every session with 1001 and exit with status 0. Every SEND that
 * got a SEND_ACK must be in the store (I1). The clients saw close code
 * 1001; after a restart on the same port they reconnect, resend what was
 * not acknowledged, and everything converges (I2-I4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "itest.h"

#define N_CONVS 4
#define PER_DEV_MAX 500
#define INFLIGHT_MAX 96

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

static void test_drain(void **state)
{
    (void)state;
    int64_t t0 = harness_now_ms();
    it_env_init(&E);
    E.unlimited = true; /* load, not rate limits, is under test */
    assert_int_equal(it_server_start(&E, NULL), 0);
    it_load_devices(&E, &L);
    for (int i = 0; i < 2 * N_CONVS; i++) {
        assert_int_equal(it_device_start(all[i]), 0);
        assert_true(it_device_wait_ready(all[i], 10000));
    }
    assert_true(it_load_open(&L, 10000));
    it_load_start(&E, &L);
    it_load_wait_acked(&E, &L, 2 * N_CONVS * PER_DEV_MAX / 4, 1000);

    /* A connection made before the signal, for /healthz during the drain. */
    int hfd = it_tcp_connect(E.srv.port);
    assert_true(hfd >= 0);
    it_run_for(&E, 20);

    size_t acked_at_signal = it_load_acked(&L);
    int64_t t_sig = harness_now_ms();
    assert_int_equal(harness_stop_begin(&E.srv), 0);
    /* Once a new connection's /healthz is 503, the server is draining:
     * new connections are answered, not refused. */
    char resp[512];
    bool closed = false;
    const char *hz = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    int64_t deadline = harness_now_ms() + 5000;
    int new_status;
    while ((new_status = it_http(E.srv.port, hz, strlen(hz), resp, sizeof resp,
                                 5000, &closed)) == 200) {
        assert_true(harness_now_ms() < deadline);
        it_run_for(&E, 2);
    }
    assert_int_equal(new_status, 503);
    assert_true(closed);
    int hz_status =
        it_http_fd(hfd, hz, strlen(hz), resp, sizeof resp, 5000, &closed);
    /* The clients keep running (and sending) while the server drains. */
    it_exit ex = {&E.srv, 0, -2};
    assert_true(it_run_until(&E, it_server_exited, &ex, 20000));
    int64_t t_exit = harness_now_ms();
    assert_int_equal(ex.rc, 1);
    assert_int_equal(ex.status, 0);
    assert_int_equal(hz_status, 503);

    /* I1: every SEND_ACK'ed message is in the store. */
    size_t acked_at_exit = 0;
    assert_int_equal(it_check_acked_in_store(&E, &acked_at_exit), 0);
    assert_int_equal(acked_at_exit, it_load_acked(&L));
    /* Every session was closed with 1001. */
    for (int i = 0; i < 2 * N_CONVS; i++) {
        if (!it_device_saw_close(all[i], SB_WS_CLOSE_GOING_AWAY)) {
            fprintf(stderr, "%s: connection ends seen:", all[i]->name);
            for (size_t k = 0; k < all[i]->n_close_codes; k++)
                fprintf(stderr, " (code %u, %s)", all[i]->close_codes[k],
                        sb_client_err_name(all[i]->close_errs[k]));
            fprintf(stderr, "\n");
        }
        assert_true(it_device_saw_close(all[i], SB_WS_CLOSE_GOING_AWAY));
        assert_int_equal(all[i]->stops, 0); /* 1001 means: come back */
    }

    /* Restart: everybody comes back and finishes. */
    it_run_for(&E, 100);
    assert_int_equal(harness_restart(&E.srv), 0);
    for (int i = 0; i < 2 * N_CONVS; i++)
        assert_true(it_device_wait_ready(all[i], 10000));
    it_run_for(&E, 300);
    it_load_stop(&L);
    size_t sends = 0, dups = 0;
    assert_int_equal(it_load_converged(&E, &L, 60000, &sends, NULL), 0);
    for (int i = 0; i < 2 * N_CONVS; i++)
        dups += all[i]->n_dup_acks;
    assert_int_equal(E.violations, 0);

    printf("integ_drain: SIGTERM with %zu acked -> exit 0 in %lld ms, %zu "
           "acked at exit all stored, every session closed 1001, /healthz "
           "503 while draining; after restart %zu msgs converged (%zu "
           "duplicate acks); total %lld ms\n",
           acked_at_signal, (long long)(t_exit - t_sig), acked_at_exit, sends,
           dups, (long long)(harness_now_ms() - t0));
    it_env_free(&E);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_drain, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
