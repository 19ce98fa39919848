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
static it_device *cust[N_CONVS], *agent[N_CONVS];
static uint64_t conv[N_CONVS];
static uv_timer_t load;
static int next_body[2 * N_CONVS];

static int teardown(void **state)
{
    (void)state;
    it_env_free(&E);
    return 0;
}

static void top_up(it_device *d, uint64_t conv_id, int *next)
{
    char body[96];
    while (d->n_sends < PER_DEV_MAX &&
           d->n_sends - (d->n_sent + d->n_failed) < INFLIGHT_MAX) {
        snprintf(body, sizeof body, "%s, conv %llu, #%d", d->user,
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

static bool acked_quarter(void *arg)
{
    (void)arg;
    return acked_total() >= (size_t)(2 * N_CONVS * PER_DEV_MAX) / 4;
}

typedef struct exit_arg {
    int rc, status;
} exit_arg;

static bool server_exited(void *arg)
{
    exit_arg *a = arg;
    a->rc = harness_stop_poll(&E.srv, &a->status);
    return a->rc != 0;
}

static bool saw_code(const it_device *d, uint16_t code)
{
    for (size_t i = 0; i < d->n_close_codes; i++)
        if (d->close_codes[i] == code) return true;
    return false;
}

static void test_drain(void **state)
{
    (void)state;
    int64_t t0 = harness_now_ms();
    it_env_init(&E);
    E.unlimited = true; /* load, not rate limits, is under test */
    assert_int_equal(it_server_start(&E, NULL), 0);
    char user[32], dev[32];
    for (int i = 0; i < N_CONVS; i++) {
        snprintf(user, sizeof user, "agent%d", i);
        snprintf(dev, sizeof dev, "agent%d-desk", i);
        agent[i] = it_device_new(&E, user, "agent", dev);
        assert_int_equal(it_device_start(agent[i]), 0);
        assert_true(it_device_wait_ready(agent[i], 10000));
    }
    for (int i = 0; i < N_CONVS; i++) {
        snprintf(user, sizeof user, "cust%d", i);
        snprintf(dev, sizeof dev, "cust%d-app", i);
        cust[i] = it_device_new(&E, user, "customer", dev);
        assert_int_equal(it_device_start(cust[i]), 0);
        assert_true(it_device_wait_ready(cust[i], 10000));
        snprintf(user, sizeof user, "agent%d", i);
        conv[i] = it_open(cust[i], user, 10000);
        assert_true(conv[i] != 0);
    }
    it_device *all[2 * N_CONVS];
    for (int i = 0; i < N_CONVS; i++) {
        all[2 * i] = cust[i];
        all[2 * i + 1] = agent[i];
    }

    uv_timer_init(&E.loop, &load);
    uv_timer_start(&load, on_load, 0, 2);
    it_run_until(&E, acked_quarter, NULL, 1000);

    /* A connection made before the signal, for /healthz during the drain. */
    int hfd = it_tcp_connect(E.srv.port);
    assert_true(hfd >= 0);
    it_run_for(&E, 20);

    size_t acked_at_signal = acked_total();
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
    exit_arg ex = {0, -2};
    assert_true(it_run_until(&E, server_exited, &ex, 20000));
    int64_t t_exit = harness_now_ms();
    assert_int_equal(ex.rc, 1);
    assert_int_equal(ex.status, 0);
    assert_int_equal(hz_status, 503);

    /* I1: every SEND_ACK'ed message is in the store. */
    size_t acked_at_exit = 0;
    assert_int_equal(it_check_acked_in_store(&E, &acked_at_exit), 0);
    assert_int_equal(acked_at_exit, acked_total());
    /* Every session was closed with 1001. */
    for (int i = 0; i < 2 * N_CONVS; i++) {
        if (!saw_code(all[i], SB_WS_CLOSE_GOING_AWAY)) {
            fprintf(stderr, "%s: connection ends seen:", all[i]->name);
            for (size_t k = 0; k < all[i]->n_close_codes; k++)
                fprintf(stderr, " (code %u, %s)", all[i]->close_codes[k],
                        sb_client_err_name(all[i]->close_errs[k]));
            fprintf(stderr, "\n");
        }
        assert_true(saw_code(all[i], SB_WS_CLOSE_GOING_AWAY));
        assert_int_equal(all[i]->stops, 0); /* 1001 means: come back */
    }

    /* Restart: everybody comes back and finishes. */
    it_run_for(&E, 100);
    assert_int_equal(harness_restart(&E.srv), 0);
    for (int i = 0; i < 2 * N_CONVS; i++)
        assert_true(it_device_wait_ready(all[i], 10000));
    it_run_for(&E, 300);
    uv_timer_stop(&load);
    assert_true(it_wait_sent(all, 2 * N_CONVS, 60000));
    size_t sends = 0, failed = 0, dups = 0;
    for (int i = 0; i < 2 * N_CONVS; i++) {
        sends += all[i]->n_sends;
        failed += all[i]->n_failed;
        dups += all[i]->n_dup_acks;
    }
    assert_int_equal(failed, 0);
    int problems = 0;
    for (int i = 0; i < N_CONVS; i++) {
        uint64_t n = cust[i]->n_sends + agent[i]->n_sends;
        it_device *pair[2] = {cust[i], agent[i]};
        assert_true(it_wait_surfaced(pair, 2, conv[i], n, 60000));
    }
    it_run_for(&E, 300);
    for (int i = 0; i < N_CONVS; i++) {
        uint64_t n = cust[i]->n_sends + agent[i]->n_sends;
        it_device *pair[2] = {cust[i], agent[i]};
        problems += it_check_conv(&E, conv[i], pair, 2, n);
        problems += it_check_store(&E, conv[i], cust[i], NULL);
        problems += it_check_store(&E, conv[i], agent[i], NULL);
    }
    assert_int_equal(problems, 0);
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
