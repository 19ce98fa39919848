/* integ_timers: the server keeps the times it is configured with, to the
 * tens of milliseconds, not to the next whole second.
 *
 * - --heartbeat-ms 300: a session hears a ping every 300 ms (a client
 *   following the docs treats three silent heartbeats as a dead link);
 * - --handshake-ms 300: a connection that sends no request is dropped
 *   300 ms after it opened, whenever in the second it opened;
 * - --idle-ms 1000: a silent session is closed (1001) a second after the
 *   last bytes it sent.
 * Connections are opened a third of a second apart, so that a deadline
 * checked on a one-second tick would be late by up to a second for one
 * of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>
#include <cmocka.h>

#include "itest.h"

#define N_STAGGERED 3
#define STAGGER_MS 330
/* How late a deadline may be seen on a busy machine (a load of ten on
 * two cores); a one-second tick is late by 660 ms or more for one of
 * three staggered connections. */
#define SLACK_MS 350

static it_env E;
static harness_server S2;

static int teardown(void **state)
{
    (void)state;
    it_env_free(&E);
    if (S2.pid > 0) harness_kill9(&S2);
    harness_cleanup(&S2);
    return 0;
}

/* Pings every 300 ms: on a session that answers them (its pongs are
 * bytes from the client), six or seven in two seconds, each 300 ms after
 * the one before. */
static void check_heartbeat(void)
{
    const char *extra[] = {"--heartbeat-ms", "300", NULL};
    assert_int_equal(it_server_start(&E, extra), 0);
    it_raw r;
    assert_int_equal(it_raw_open(&r, E.srv.port, SB_ENC_PROTO, NULL), 0);
    assert_int_equal(
        it_raw_hello(&r, harness_token("pat", "customer", 3600), "p1", 5000),
        0);
    int64_t t0 = harness_now_ms();
    while (harness_now_ms() - t0 < 2000) {
        Sbp__Frame *f = it_raw_recv(&r, 50);
        if (f) sb_frame_free(f);
    }
    unsigned n = r.tap_pings;
    printf("integ_timers: %u pings in 2 s with --heartbeat-ms 300;", n);
    for (unsigned i = 1; i < n && i < IT_RAW_PINGS_MAX; i++)
        printf(" %lld", (long long)(r.tap_ping_ms[i] - r.tap_ping_ms[i - 1]));
    printf("\n");
    assert_true(n >= 5 && n <= 7);
    /* Each gap as configured, give or take how late the test saw a ping;
     * on average, as configured. */
    for (unsigned i = 1; i < n; i++) {
        int64_t gap = r.tap_ping_ms[i] - r.tap_ping_ms[i - 1];
        assert_true(gap >= 300 - SLACK_MS && gap <= 300 + SLACK_MS);
    }
    int64_t mean = (r.tap_ping_ms[n - 1] - r.tap_ping_ms[0]) / (n - 1);
    assert_true(mean >= 280 && mean <= 360);
    it_raw_close(&r);
}

static void check_handshake_and_idle(void)
{
    memset(&S2, 0, sizeof S2);
    S2.sqlite_only = true;
    S2.extra[0] = "--handshake-ms";
    S2.extra[1] = "300";
    S2.extra[2] = "--idle-ms";
    S2.extra[3] = "1000";
    assert_int_equal(harness_start(&S2), 0);
    /* No request: dropped at 300 ms. Each drop is seen as it comes, while
     * the later connections are still being opened. */
    struct pollfd pf[N_STAGGERED];
    int64_t opened[N_STAGGERED], life[N_STAGGERED];
    int64_t start = harness_now_ms();
    int n_open = 0;
    for (int left = N_STAGGERED; left > 0;) {
        if (n_open < N_STAGGERED &&
            harness_now_ms() >= start + STAGGER_MS * n_open) {
            pf[n_open].fd = it_tcp_connect(S2.port);
            pf[n_open].events = POLLIN;
            assert_true(pf[n_open].fd >= 0);
            opened[n_open] = harness_now_ms();
            life[n_open++] = -1;
        }
        assert_true(harness_now_ms() - start < 5000);
        if (poll(pf, (nfds_t)n_open, 5) <= 0) continue;
        for (int i = 0; i < n_open; i++) {
            char b[256];
            if (life[i] >= 0 || !(pf[i].revents & (POLLIN | POLLHUP))) continue;
            if (read(pf[i].fd, b, sizeof b) > 0) continue;
            life[i] = harness_now_ms() - opened[i];
            close(pf[i].fd);
            pf[i].fd = -1;
            left--;
        }
    }
    printf("integ_timers: --handshake-ms 300, silent connections dropped "
           "after");
    for (int i = 0; i < N_STAGGERED; i++)
        printf(" %lld", (long long)life[i]);
    printf(" ms\n");
    for (int i = 0; i < N_STAGGERED; i++)
        assert_true(life[i] >= 300 - 20 && life[i] <= 300 + SLACK_MS);
    /* A session silent after its HELLO: closed 1001 a second later. The
     * connections are made first (an upgrade takes a while on a busy
     * machine); only the HELLOs are staggered, so that the loop below
     * sees every close as it comes. */
    it_raw r[N_STAGGERED];
    int64_t said[N_STAGGERED];
    int codes[N_STAGGERED];
    for (int i = 0; i < N_STAGGERED; i++)
        assert_int_equal(it_raw_open(&r[i], S2.port, SB_ENC_PROTO, NULL), 0);
    start = harness_now_ms();
    n_open = 0;
    for (int left = N_STAGGERED; left > 0;) {
        if (n_open < N_STAGGERED &&
            harness_now_ms() >= start + STAGGER_MS * n_open) {
            char dev[16];
            snprintf(dev, sizeof dev, "q%d", n_open);
            /* The server last heard from it no earlier than its HELLO,
             * whose WELCOME the loop reads. */
            said[n_open] = harness_now_ms();
            Sbp__Hello h = SBP__HELLO__INIT;
            h.token = (char *)harness_token("quinn", "customer", 3600);
            h.device_id = dev;
            h.protocol = 1;
            Sbp__Frame f = SBP__FRAME__INIT;
            f.body_case = SBP__FRAME__BODY_HELLO;
            f.hello = &h;
            assert_true(it_raw_send(&r[n_open], &f) != 0);
            life[n_open++] = -1;
        }
        assert_true(harness_now_ms() - start < 5000);
        for (int i = 0; i < n_open; i++) {
            if (life[i] >= 0) continue;
            int code = it_raw_wait_close(&r[i], 2);
            if (code < 0) continue;
            codes[i] = code;
            life[i] = harness_now_ms() - said[i];
            left--;
        }
    }
    printf("integ_timers: --idle-ms 1000, silent sessions closed after");
    for (int i = 0; i < N_STAGGERED; i++)
        printf(" %lld", (long long)life[i]);
    printf(" ms\n");
    for (int i = 0; i < N_STAGGERED; i++) {
        assert_int_equal(codes[i], SB_WS_CLOSE_GOING_AWAY);
        assert_true(life[i] >= 1000 - 20 && life[i] <= 1000 + SLACK_MS);
        it_raw_close(&r[i]);
    }
    harness_stop(&S2);
}

static void test_timers(void **state)
{
    (void)state;
    it_env_init(&E);
    check_heartbeat();
    check_handshake_and_idle();
    it_env_free(&E);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_timers, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
