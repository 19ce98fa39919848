/* integ_soak: one server for a long time under steady load with devices
 * coming and going; its memory and open files must stay flat.
 *
 * The server (--durability fsync) runs for SB_SOAK_S seconds (120 in
 * ctest's short run; `make soak` runs an hour). The time is cut into
 * periods of SB_SOAK_PERIOD_S (60): each period, PAIRS customer/agent pairs
 * open conversations and send SB_SOAK_RATE (5,000) messages a second in
 * all through a proxy (faultproxy.h) that resets one of their connections
 * every CHURN_MS, so that devices come and go; at the period's end the
 * load stops,
 * everything must be acknowledged, surfaced by both devices in order once
 * and stored as acknowledged (I1-I4), and the devices go away. The
 * server's RSS and open files are read at each period's end, with no
 * client connected: after the first period they must stay flat (RSS
 * within RSS_GROWTH_MAX of the second period's, the same files open). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faultproxy.h"
#include "itest.h"

#define PAIRS 10
#define WINDOW 64
#define CHURN_MS 500
#define TICK_MS 10
#define RSS_GROWTH_MAX 0.25 /* of the second period's RSS */
#define PERIODS_MAX 1000
#define WAIT_MS 120000

static it_env E;
static harness_server S;

typedef struct soak {
    it_device *d[2 * PAIRS];
    uint64_t conv[PAIRS];
    int next[2 * PAIRS];
    double tokens; /* sends allowed now */
    double per_tick;
    unsigned rr; /* the next device to send */
    uint64_t churns;
    int64_t last_churn;
    uint64_t rng;
} soak;

static soak K;
static uv_timer_t timer;
static faultproxy *FP;

static long env_num(const char *name, long def)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : def;
}

/* The server's resident memory (KiB) and open files. */
static void server_usage(long *rss_kib, int *fds)
{
    char path[64], line[256];
    *rss_kib = -1;
    *fds = 0;
    snprintf(path, sizeof path, "/proc/%d/status", (int)S.pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", rss_kib) == 1) break;
    if (f) fclose(f);
    snprintf(path, sizeof path, "/proc/%d/fd", (int)S.pid);
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));)
        *fds += e->d_name[0] != '.';
    if (d) closedir(d);
}

/* Sends at the rate asked, round robin over the devices with room in
 * their window; and a device leaves and comes back now and then. */
static void on_tick(uv_timer_t *t)
{
    (void)t;
    K.tokens += K.per_tick;
    if (K.tokens > K.per_tick * 10) K.tokens = K.per_tick * 10;
    char body[96];
    for (unsigned tries = 0; K.tokens >= 1 && tries < 2 * PAIRS; tries++) {
        unsigned i = K.rr++ % (2 * PAIRS);
        it_device *d = K.d[i];
        if (!d->c || d->n_sends - (d->n_sent + d->n_failed) >= WINDOW) continue;
        snprintf(body, sizeof body, "%s #%d", d->user, K.next[i]++);
        if (it_send_text(d, K.conv[i / 2], body) != 0) continue;
        K.tokens -= 1;
        tries = 0;
    }
    int64_t now = harness_now_ms();
    if (now - K.last_churn >= CHURN_MS) {
        K.last_churn = now;
        fp_reset_one(FP);
        K.churns++;
    }
}

static int teardown(void **state)
{
    (void)state;
    E.srv.pid = 0; /* the server is S's */
    if (FP) fp_stop(FP);
    FP = NULL;
    it_env_free(&E);
    harness_cleanup(&S);
    return 0;
}

/* One period: devices, load with churn, settle, check. Returns the
 * messages acknowledged. */
static size_t period(int p, int seconds, long rate)
{
    memset(&K, 0, sizeof K);
    K.rng = (uint64_t)p * 7919u + 1;
    K.per_tick = (double)rate * TICK_MS / 1000.0;
    it_env_init(&E);
    assert_int_equal(fp_start(&E.loop, S.port, K.rng, NULL, &FP), 0);
    snprintf(E.url, sizeof E.url, "ws://127.0.0.1:%u/ws", fp_port(FP));
    snprintf(E.data_dir, sizeof E.data_dir, "%s", S.data_dir);
    char user[32], dev[32];
    for (int i = 0; i < PAIRS; i++) {
        snprintf(user, sizeof user, "p%dc%d", p, i);
        snprintf(dev, sizeof dev, "p%dc%d-app", p, i);
        K.d[2 * i] = it_device_new(&E, user, "customer", dev);
        snprintf(user, sizeof user, "p%da%d", p, i);
        snprintf(dev, sizeof dev, "p%da%d-desk", p, i);
        K.d[2 * i + 1] = it_device_new(&E, user, "agent", dev);
    }
    for (int i = 0; i < 2 * PAIRS; i++) {
        K.d[i]->cfg.send_attempts_max = 0;
        assert_int_equal(it_device_start(K.d[i]), 0);
    }
    for (int i = 0; i < 2 * PAIRS; i++)
        assert_true(it_device_wait_ready(K.d[i], 10000));
    for (int i = 0; i < PAIRS; i++) {
        K.conv[i] = it_open(K.d[2 * i], K.d[2 * i + 1]->user, 10000);
        assert_true(K.conv[i] != 0);
    }
    K.last_churn = harness_now_ms();
    uv_timer_init(&E.loop, &timer);
    uv_timer_start(&timer, on_tick, TICK_MS, TICK_MS);
    it_run_for(&E, seconds * 1000);
    uv_timer_stop(&timer);
    uv_close((uv_handle_t *)&timer, NULL);
    /* Every device back, everything acknowledged and surfaced. */
    for (int i = 0; i < 2 * PAIRS; i++)
        assert_true(it_device_wait_ready(K.d[i], 10000));
    assert_true(it_wait_sent(K.d, 2 * PAIRS, WAIT_MS));
    int problems = 0;
    size_t acked = 0;
    for (int i = 0; i < PAIRS; i++) {
        it_device *pair[2] = {K.d[2 * i], K.d[2 * i + 1]};
        uint64_t n = pair[0]->n_sends + pair[1]->n_sends;
        if (!it_wait_surfaced(pair, 2, K.conv[i], n, WAIT_MS)) problems++;
        problems += it_check_conv(&E, K.conv[i], pair, 2, n);
        problems += it_check_store(&E, K.conv[i], pair[0], NULL);
        acked += pair[0]->n_sent + pair[1]->n_sent;
    }
    size_t stored = 0;
    problems += it_check_acked_in_store(&E, &stored);
    assert_int_equal(stored, acked);
    assert_int_equal(problems, 0);
    assert_int_equal(E.violations, 0);
    printf("integ_soak: period %d: %zu messages in %d s (%.0f/s), %llu "
           "reconnects, all stored and surfaced once in order\n",
           p, acked, seconds, (double)acked / seconds,
           (unsigned long long)K.churns);
    fp_stop(FP);
    FP = NULL;
    it_env_free(&E);
    return acked;
}

static void test_soak(void **state)
{
    (void)state;
    long total_s = env_num("SB_SOAK_S", 120);
    long period_s = env_num("SB_SOAK_PERIOD_S", 60);
    long rate = env_num("SB_SOAK_RATE", 5000);
    memset(&S, 0, sizeof S);
    S.sqlite_only = true;
    S.extra[0] = "--durability";
    S.extra[1] = "fsync";
    S.extra[2] = "--sends-per-s";
    S.extra[3] = "0";
    assert_int_equal(harness_start(&S), 0);
    int periods = (int)(total_s / period_s);
    if (periods < 2) periods = 2;
    if (periods > PERIODS_MAX) periods = PERIODS_MAX;
    long rss[PERIODS_MAX];
    int fds[PERIODS_MAX];
    size_t msgs = 0;
    int64_t t0 = harness_now_ms();
    for (int p = 0; p < periods; p++) {
        msgs += period(p, (int)period_s, rate);
        server_usage(&rss[p], &fds[p]);
        printf("integ_soak: after period %d: server RSS %ld KiB, %d files "
               "open\n",
               p, rss[p], fds[p]);
        fflush(stdout);
    }
    double secs = (double)(harness_now_ms() - t0) / 1000.0;
    long rss_max = 0;
    for (int p = 1; p < periods; p++)
        if (rss[p] > rss_max) rss_max = rss[p];
    printf("integ_soak: %d periods, %.0f s, %zu messages (%.0f/s with the "
           "checks), RSS %ld KiB after the first period, %ld at most and %ld "
           "at the end; files open %d then %d\n",
           periods, secs, msgs, (double)msgs / secs, rss[1], rss_max,
           rss[periods - 1], fds[1], fds[periods - 1]);
    for (int p = 1; p < periods; p++) {
        assert_true(rss[p] <= (long)((double)rss[1] * (1 + RSS_GROWTH_MAX)));
        assert_int_equal(fds[p], fds[1]);
    }
    assert_int_equal(harness_stop(&S), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_soak, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
