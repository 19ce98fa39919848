/* integ_pg_faults: PostgreSQL failing under load is the world, not a bug.
 *
 * One gateway with its store on a PostgreSQL cluster of this test's own
 * (scripts/pgtest.sh), four customer/agent pairs sending through the SDK
 * as fast as their windows allow. While they do:
 *   1. the server is killed (kill -9) and started again 6 s later;
 *   2. it is stopped (SIGSTOP) for 5 s, then continued;
 *   3. (as root) its data folder, a tmpfs, fills up; then space comes
 *      back and the server is started again if it went down.
 * Meanwhile sessions stay up (no device reconnects), sends wait and then
 * get a retryable error (the SDK sends them again), and /healthz says the
 * store is unavailable; afterwards the gateway is back by itself, without
 * a restart, and I1-I4 hold: every acknowledged message is in the store
 * once with a dense seq, and every device holds exactly the store's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "itest.h"

#define N_CONVS 4
#define PER_DEV_MAX 400 /* sends per device at most */
#define INFLIGHT_MAX 32 /* queued but not yet SENT, per device */

static it_env E;
static it_device *cust[N_CONVS], *agent[N_CONVS];
static uint64_t conv[N_CONVS];
static uv_timer_t load;
static bool loading;
static int next_body[2 * N_CONVS];
static char pg_dir[64];

/* Runs scripts/pgtest.sh cmd on this test's cluster. */
static int pg(const char *cmd)
{
    const char *sh = getenv("SB_PGTEST_SH");
    char line[512];
    snprintf(line, sizeof line, "%s %s %s", sh ? sh : "scripts/pgtest.sh", cmd,
             pg_dir);
    return system(line);
}

static int teardown(void **state)
{
    (void)state;
    if (loading) {
        uv_timer_stop(&load);
        uv_close((uv_handle_t *)&load, NULL);
        loading = false;
    }
    it_env_free(&E);
    if (pg_dir[0]) pg("stop > /dev/null 2>&1");
    pg_dir[0] = '\0';
    return 0;
}

/* A cluster of this test's own (on a tmpfs of tmpfs_mb, when not 0),
 * whose URL the harness makes the server's database on. */
static void cluster_start(unsigned tmpfs_mb)
{
    snprintf(pg_dir, sizeof pg_dir, "/tmp/sbpgf.XXXXXX");
    assert_non_null(mkdtemp(pg_dir));
    char env[32] = "";
    if (tmpfs_mb) snprintf(env, sizeof env, "PGTEST_TMPFS_MB=%u ", tmpfs_mb);
    const char *sh = getenv("SB_PGTEST_SH");
    char line[512];
    snprintf(line, sizeof line, "%s%s start %s > %s.url", env,
             sh ? sh : "scripts/pgtest.sh", pg_dir, pg_dir);
    assert_int_equal(system(line), 0);
    char path[80], url[256] = "";
    snprintf(path, sizeof path, "%s.url", pg_dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(url, sizeof url, f));
    fclose(f);
    unlink(path);
    url[strcspn(url, "\n")] = '\0';
    setenv("SB_TEST_PG", url, 1);
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

static unsigned readies_total(void)
{
    unsigned n = 0;
    for (int i = 0; i < N_CONVS; i++)
        n += cust[i]->readies + agent[i]->readies;
    return n;
}

/* What GET /healthz says, with the loop turning meanwhile. */
static bool healthz_says(const char *what)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    char resp[512];
    bool closed;
    int st = it_http(E.srv.port, req, sizeof req - 1, resp, sizeof resp, 2000,
                     &closed);
    return st == 200 && strstr(resp, what) != NULL;
}

typedef struct wait_health {
    const char *what;
    int64_t next_ms;
} wait_health;

static bool health_pred(void *arg)
{
    wait_health *w = arg;
    if (harness_now_ms() < w->next_ms) return false;
    w->next_ms = harness_now_ms() + 250;
    return healthz_says(w->what);
}

/* Turns the loop until /healthz says what (within timeout_ms). */
static bool wait_healthz(const char *what, int timeout_ms)
{
    wait_health w = {what, 0};
    return it_run_until(&E, health_pred, &w, timeout_ms);
}

typedef struct acked_more {
    size_t from, more;
} acked_more;

static bool acked_pred(void *arg)
{
    acked_more *a = arg;
    return acked_total() >= a->from + a->more;
}

/* Turns the loop until more sends are acknowledged: the load flows. */
static bool wait_acked_more(size_t more, int timeout_ms)
{
    acked_more a = {acked_total(), more};
    return it_run_until(&E, acked_pred, &a, timeout_ms);
}

static void pairs_start(void)
{
    char user[32], dev[32];
    for (int i = 0; i < N_CONVS; i++) {
        snprintf(user, sizeof user, "agent%d", i);
        snprintf(dev, sizeof dev, "agent%d-d1", i);
        agent[i] = it_device_new(&E, user, "agent", dev);
        assert_int_equal(it_device_start(agent[i]), 0);
        snprintf(user, sizeof user, "cust%d", i);
        snprintf(dev, sizeof dev, "cust%d-d1", i);
        cust[i] = it_device_new(&E, user, "customer", dev);
        assert_int_equal(it_device_start(cust[i]), 0);
    }
    for (int i = 0; i < N_CONVS; i++) {
        assert_true(it_device_wait_ready(agent[i], 10000));
        assert_true(it_device_wait_ready(cust[i], 10000));
        snprintf(user, sizeof user, "agent%d", i);
        conv[i] = it_open(cust[i], user, 10000);
        assert_true(conv[i] != 0);
    }
    uv_timer_init(&E.loop, &load);
    uv_timer_start(&load, on_load, 0, 2);
    loading = true;
}

/* Stops the load and checks I1-I4 once every send is SENT. */
static void load_stop_and_check(const char *what, int64_t t0)
{
    uv_timer_stop(&load);
    uv_close((uv_handle_t *)&load, NULL);
    loading = false;
    it_device *all[2 * N_CONVS];
    for (int i = 0; i < N_CONVS; i++) {
        all[2 * i] = cust[i];
        all[2 * i + 1] = agent[i];
    }
    bool sent = it_wait_sent(all, 2 * N_CONVS, 90000);
    size_t sends = 0, acked = 0, failed = 0;
    for (int i = 0; i < 2 * N_CONVS; i++) {
        sends += all[i]->n_sends;
        acked += all[i]->n_sent;
        failed += all[i]->n_failed;
    }
    if (!sent)
        fprintf(stderr, "not all sent: %zu of %zu acked, %zu failed\n", acked,
                sends, failed);
    assert_true(sent);
    assert_int_equal(failed, 0);
    for (int i = 0; i < N_CONVS; i++) {
        uint64_t n = cust[i]->n_sends + agent[i]->n_sends;
        it_device *pair[2] = {cust[i], agent[i]};
        assert_true(it_wait_surfaced(pair, 2, conv[i], n, 60000));
    }
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
    assert_int_equal(problems, 0);
    assert_int_equal(E.violations, 0);
    assert_int_equal(stored_total, sends);
    printf("integ_pg_faults[%s]: %zu msgs sent and stored once each, dense "
           "and converged; %lld ms\n",
           what, sends, (long long)(harness_now_ms() - t0));
}

static void test_killed_and_stopped(void **state)
{
    (void)state;
    int64_t t0 = harness_now_ms();
    cluster_start(0);
    it_env_init(&E);
    E.unlimited = true;
    const char *extra[] = {"--durability", "fsync", NULL};
    assert_int_equal(it_server_start(&E, extra), 0);
    pairs_start();
    assert_true(wait_acked_more(200, 10000));
    unsigned readies = readies_total();

    /* 1. kill -9, and back 6 s later: a wait, then ERR_STORE (sent again
     * by the SDK), /healthz saying so; sessions stay up. */
    assert_int_equal(pg("kill"), 0);
    int64_t t_kill = harness_now_ms();
    assert_true(wait_healthz("store unavailable", 10000));
    int64_t t_unhealthy = harness_now_ms();
    it_run_for(&E, (int)(6000 - (harness_now_ms() - t_kill)));
    size_t acked_down = acked_total();
    assert_int_equal(pg("restart"), 0);
    assert_true(wait_acked_more(200, 20000));
    int64_t t_back = harness_now_ms();
    assert_true(wait_healthz("ok\n", 5000));
    assert_int_equal(readies_total(), readies);
    printf("integ_pg_faults[kill -9]: /healthz unavailable after %lld ms; "
           "load again %lld ms after the restart; %zu acked before it\n",
           (long long)(t_unhealthy - t_kill),
           (long long)(t_back - t_kill - 6000), acked_down);

    /* 2. SIGSTOP for 5 s: statements wait on their deadline, then the
     * same. */
    assert_int_equal(pg("pause"), 0);
    int64_t t_stop = harness_now_ms();
    it_run_for(&E, 5000);
    assert_int_equal(pg("resume"), 0);
    assert_true(wait_acked_more(200, 20000));
    assert_true(wait_healthz("ok\n", 10000));
    assert_int_equal(readies_total(), readies);
    printf("integ_pg_faults[SIGSTOP 5 s]: load again %lld ms after the "
           "stop began\n",
           (long long)(harness_now_ms() - t_stop));

    load_stop_and_check("kill -9, SIGSTOP", t0);
}

/* The disk of the server's data folder fills up: writes fail (the server
 * may even shut down); with space back, and the server started again if
 * it went down, the gateway carries on by itself. */
static void test_disk_full(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        printf("integ_pg_faults[disk full]: skipped (needs root for the "
               "tmpfs)\n");
        skip();
    }
    int64_t t0 = harness_now_ms();
    cluster_start(96);
    it_env_init(&E);
    E.unlimited = true;
    assert_int_equal(it_server_start(&E, NULL), 0);
    pairs_start();
    assert_true(wait_acked_more(200, 10000));
    unsigned readies = readies_total();

    /* Fill what is left of the tmpfs but 256 KiB. */
    char filler[96], line[256];
    snprintf(filler, sizeof filler, "%s/data/filler", pg_dir);
    snprintf(line, sizeof line,
             "dd if=/dev/zero of=%s bs=256k 2>/dev/null;"
             " truncate -s -256K %s",
             filler, filler);
    if (system(line) != 0) {
        /* dd ends with "no space": that is the point */
    }
    assert_true(wait_healthz("store unavailable", 30000));
    size_t acked_full = acked_total();
    it_run_for(&E, 2000);
    unlink(filler);
    /* PostgreSQL stops when it cannot write its WAL: start it again. */
    if (pg("restart > /dev/null 2>&1") != 0) {
        /* it was still running */
    }
    assert_true(wait_acked_more(200, 30000));
    assert_true(wait_healthz("ok\n", 10000));
    assert_int_equal(readies_total(), readies);
    printf("integ_pg_faults[disk full]: %zu acked when it filled; load again "
           "with space back\n",
           acked_full);
    load_stop_and_check("disk full", t0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_killed_and_stopped, teardown),
        cmocka_unit_test_teardown(test_disk_full, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
