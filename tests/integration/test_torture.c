/* integ_torture: the real server and real SDK clients over loopback, round
 * after round of faults, each round checked for I1-I4.
 *
 * A round starts a server (--durability fsync) on a fresh store, puts the
 * fault proxy (faultproxy.h) between it and its clients or not, opens one
 * conversation per customer/agent pair and has every device send as fast
 * as its window allows. Meanwhile, at random moments: kill -9 of the
 * server (once or twice) and a restart; the proxy's latency, stalls,
 * resets and cuts mid-frame; failed WAL writes and fsyncs
 * (SB_WALVFS_FAULTS, the store's VFS shim); and, as root, a data folder
 * on a small tmpfs that fills up and is freed again. Then the faults stop
 * and every send must end acknowledged, and:
 *   I1 every acknowledged message is in the store, as acknowledged;
 *   I2 each client_msg_id is stored once, no device surfaces a seq twice;
 *   I3 seqs are dense and surfaced in order;
 *   I4 both devices of a conversation hold exactly what the store holds.
 * Choices come from SB_TORTURE_SEED (1) and the round's number: a round
 * can be run again alone (SB_TORTURE_FIRST=r SB_TORTURE_ROUNDS=1).
 *
 * SB_TORTURE_ROUNDS (20) rounds; `make torture` runs 1,000. The figures
 * go to docs/reliability.md. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "faultproxy.h"
#include "itest.h"

/* The store's VFS shim reads its faults from this (sb_walvfs.h). */
#define SB_WALVFS_FAULTS_ENV "SB_WALVFS_FAULTS"

#define PAIRS_MAX 6
#define WINDOW 32     /* a device's sends not yet acknowledged */
#define WAIT_MS 60000 /* for the round to settle once faults stop */
#define TMPFS_SIZE "size=24m"

typedef struct totals {
    unsigned rounds, kills, proxied, fills, vfs_rounds;
    uint64_t acked, stored, resets, cuts, stalls, conns;
    int problems;
    unsigned violations;
} totals;

static it_env E;
static faultproxy *FP;
static char MNT[64];
static bool mounted, ns_private;

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int64_t range(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static long env_num(const char *name, long def)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : def;
}

/* ---- the data folder on a tmpfs --------------------------------------------
 */

/* As root: a mount namespace of the test's own, so that its tmpfs goes
 * away with it whatever happens. */
static bool can_mount(void)
{
    if (ns_private) return true;
    if (geteuid() != 0 || unshare(CLONE_NEWNS) != 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return false;
    ns_private = true;
    return true;
}

static void mnt_free(void)
{
    if (mounted) umount2(MNT, MNT_DETACH);
    mounted = false;
    if (MNT[0]) rmdir(MNT);
    MNT[0] = '\0';
}

static int mnt_make(void)
{
    snprintf(MNT, sizeof MNT, "/tmp/sbtort.XXXXXX");
    if (!mkdtemp(MNT)) return -1;
    if (mount("tmpfs", MNT, "tmpfs", MS_NOSUID | MS_NODEV,
              TMPFS_SIZE ",mode=0700") != 0) {
        rmdir(MNT);
        MNT[0] = '\0';
        return -1;
    }
    mounted = true;
    return 0;
}

/* Fills the tmpfs but for a few KiB. */
static void disk_fill(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/filler", MNT);
    FILE *f = fopen(path, "w");
    if (!f) return;
    static char block[65536];
    while (fwrite(block, 1, sizeof block, f) == sizeof block) {
    }
    fclose(f);
}

static void disk_free(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/filler", MNT);
    unlink(path);
}

/* ---- the load ---------------------------------------------------------------
 */

typedef struct round_load {
    it_device *d[2 * PAIRS_MAX];
    uint64_t conv[PAIRS_MAX];
    int pairs, per_dev;
    int next[2 * PAIRS_MAX];
    uv_timer_t timer;
    bool on;
} round_load;

static round_load L;

static void top_up(it_device *d, uint64_t conv_id, int *next, int per_dev)
{
    char body[96];
    while (d->n_sends < (size_t)per_dev &&
           d->n_sends - (d->n_sent + d->n_failed) < WINDOW) {
        snprintf(body, sizeof body, "%s to %llu #%d", d->user,
                 (unsigned long long)conv_id, (*next)++);
        if (it_send_text(d, conv_id, body) != 0) break;
    }
}

static void on_load(uv_timer_t *t)
{
    (void)t;
    for (int i = 0; i < 2 * L.pairs; i++)
        top_up(L.d[i], L.conv[i / 2], &L.next[i], L.per_dev);
}

static size_t acked_now(void)
{
    size_t n = 0;
    for (int i = 0; i < 2 * L.pairs; i++)
        n += L.d[i]->n_sent;
    return n;
}

/* Runs the loop for ms, or until the share of the load is acknowledged. */
static void run_until_acked(size_t want, int ms)
{
    int64_t end = harness_now_ms() + ms;
    while (harness_now_ms() < end && acked_now() < want)
        it_run_for(&E, 10);
}

static void teardown_round(void)
{
    if (L.on) {
        uv_timer_stop(&L.timer);
        uv_close((uv_handle_t *)&L.timer, NULL);
        L.on = false;
    }
    if (FP) {
        fp_stop(FP);
        FP = NULL;
    }
    /* The tmpfs goes with its files: the harness removes other folders. */
    if (mounted) E.srv.data_dir[0] = '\0';
    it_env_free(&E);
    mnt_free();
    unsetenv(SB_WALVFS_FAULTS_ENV);
}

static int teardown(void **state)
{
    (void)state;
    teardown_round();
    return 0;
}

/* OPEN with retries: a reset may take the first answer with it. */
static uint64_t open_retry(it_device *d, const char *member)
{
    for (int i = 0; i < 50; i++) {
        uint64_t id = it_open(d, member, 3000);
        if (id) return id;
        it_run_for(&E, 100);
    }
    return 0;
}

/* ---- a round
 * -------------------------------------------------------------------
 */

static void round_run(uint64_t seed, unsigned r, totals *t)
{
    rng_state = seed * 1000003u + r;
    memset(&L, 0, sizeof L);
    L.pairs = (int)range(2, PAIRS_MAX);
    L.per_dev = (int)range(30, 120);
    int kills = range(0, 3) == 0 ? 2 : 1;
    int proxy = (int)range(0, 3); /* 0: none, 1: latency, 2-3: all */
    bool vfs = range(0, 1) == 1;
    bool fill = range(0, 4) == 0 && can_mount();
    char faults[64];
    snprintf(faults, sizeof faults, "write:%d,sync:%d",
             (int)(range(0, 1) ? range(11, 60) : 0), (int)range(5, 40));
    if (vfs)
        setenv(SB_WALVFS_FAULTS_ENV, faults, 1);
    else
        unsetenv(SB_WALVFS_FAULTS_ENV);

    it_env_init(&E);
    E.unlimited = true;
    if (fill) {
        assert_int_equal(mnt_make(), 0);
        snprintf(E.srv.data_dir, sizeof E.srv.data_dir, "%s", MNT);
        E.srv.sqlite_only = true;
    }
    const char *extra[] = {"--durability", "fsync", NULL};
    assert_int_equal(it_server_start(&E, extra), 0);
    fp_faults ff = {0};
    if (proxy) {
        ff.latency_ms_max = (int)range(1, 30);
        if (proxy >= 2) {
            ff.stall_ppm = (uint32_t)range(0, 30000);
            ff.reset_ppm = (uint32_t)range(0, 20000);
            ff.cut_ppm = (uint32_t)range(0, 20000);
            ff.stall_ms_max = (int)range(100, 2000);
        }
        /* The devices connect while nothing fails; the faults come with
         * the load. */
        assert_int_equal(fp_start(&E.loop, E.srv.port, rng_state, NULL, &FP),
                         0);
        snprintf(E.url, sizeof E.url, "ws://127.0.0.1:%u/ws", fp_port(FP));
    }
    char user[32], dev[32];
    for (int i = 0; i < L.pairs; i++) {
        snprintf(user, sizeof user, "cust%d", i);
        snprintf(dev, sizeof dev, "cust%d-app", i);
        L.d[2 * i] = it_device_new(&E, user, "customer", dev);
        snprintf(user, sizeof user, "agent%d", i);
        snprintf(dev, sizeof dev, "agent%d-desk", i);
        L.d[2 * i + 1] = it_device_new(&E, user, "agent", dev);
    }
    for (int i = 0; i < 2 * L.pairs; i++) {
        L.d[i]->cfg.send_attempts_max = 0; /* retry until stored */
        assert_int_equal(it_device_start(L.d[i]), 0);
    }
    for (int i = 0; i < 2 * L.pairs; i++)
        assert_true(it_device_wait_ready(L.d[i], 20000));
    for (int i = 0; i < L.pairs; i++) {
        snprintf(user, sizeof user, "agent%d", i);
        L.conv[i] = open_retry(L.d[2 * i], user);
        assert_true(L.conv[i] != 0);
    }

    if (FP) fp_set(FP, &ff);
    uv_timer_init(&E.loop, &L.timer);
    uv_timer_start(&L.timer, on_load, 0, 2);
    L.on = true;
    size_t total = (size_t)(2 * L.pairs * L.per_dev);
    int64_t fill_at = fill ? range(0, 600) : -1;
    for (int k = 0; k < kills; k++) {
        /* A random moment of the load: after a while, or once a share of
         * it is acknowledged on a fast machine. */
        size_t want = total * (size_t)range(5, 80) / 100;
        run_until_acked(want, (int)range(50, 1500));
        if (fill_at >= 0) {
            disk_fill();
            it_run_for(&E, (int)range(200, 1200));
            disk_free();
            fill_at = -1;
            t->fills++;
        }
        harness_kill9(&E.srv);
        t->kills++;
        it_run_for(&E, (int)range(20, 400));
        assert_int_equal(harness_restart(&E.srv), 0);
    }
    /* The rest of the load, then no more faults. */
    run_until_acked(total * 9 / 10, (int)range(200, 1500));
    if (FP) {
        fp_stats st;
        fp_get_stats(FP, &st);
        t->resets += st.resets;
        t->cuts += st.cuts;
        t->stalls += st.stalls;
        t->conns += st.conns;
        fp_set(FP, NULL);
    }
    bool sent = it_wait_sent(L.d, (size_t)(2 * L.pairs), WAIT_MS);
    uv_timer_stop(&L.timer);
    size_t acked = 0, failed = 0;
    for (int i = 0; i < 2 * L.pairs; i++) {
        acked += L.d[i]->n_sent;
        failed += L.d[i]->n_failed;
    }
    if (!sent || failed)
        fprintf(stderr, "torture round %u: %zu of %zu acked, %zu failed\n", r,
                acked, total, failed);
    assert_true(sent);
    assert_int_equal(failed, 0);
    int problems = 0;
    for (int i = 0; i < L.pairs; i++) {
        it_device *pair[2] = {L.d[2 * i], L.d[2 * i + 1]};
        uint64_t n = pair[0]->n_sends + pair[1]->n_sends;
        if (!it_wait_surfaced(pair, 2, L.conv[i], n, WAIT_MS)) problems++;
        problems += it_check_conv(&E, L.conv[i], pair, 2, n);
        size_t stored = 0;
        problems += it_check_store(&E, L.conv[i], pair[0], &stored);
        problems += it_check_store(&E, L.conv[i], pair[1], NULL);
        t->stored += stored;
    }
    size_t in_store = 0;
    problems += it_check_acked_in_store(&E, &in_store);
    t->acked += in_store;
    t->problems += problems;
    t->violations += E.violations;
    t->rounds++;
    t->proxied += proxy != 0;
    t->vfs_rounds += vfs;
    printf("torture round %u: %d pairs, %zu msgs acked and stored, %d kill%s"
           "%s%s%s%s: %d problems\n",
           r, L.pairs, in_store, kills, kills > 1 ? "s" : "",
           proxy == 1 ? ", proxy latency"
           : proxy    ? ", proxy faults"
                      : "",
           vfs ? ", WAL faults " : "", vfs ? faults : "",
           fill ? ", disk filled" : "", problems + (int)E.violations);
    fflush(stdout);
    assert_int_equal(problems, 0);
    assert_int_equal(E.violations, 0);
    teardown_round();
}

static void test_torture(void **state)
{
    (void)state;
    uint64_t seed = (uint64_t)env_num("SB_TORTURE_SEED", 1);
    unsigned first = (unsigned)env_num("SB_TORTURE_FIRST", 0);
    unsigned rounds = (unsigned)env_num("SB_TORTURE_ROUNDS", 20);
    totals t = {0};
    int64_t t0 = harness_now_ms();
    for (unsigned r = first; r < first + rounds; r++)
        round_run(seed, r, &t);
    printf("integ_torture: seed %llu, %u rounds in %lld s: %u kill -9, %u "
           "rounds through the fault proxy (%llu connections, %llu resets, "
           "%llu cuts mid-frame, %llu stalls), %u with WAL write/fsync "
           "failures, %u disk fills; %llu messages acknowledged, all stored; "
           "0 lost, 0 duplicated, 0 out of order (%d problems, %u "
           "violations)\n",
           (unsigned long long)seed, t.rounds,
           (long long)((harness_now_ms() - t0) / 1000), t.kills, t.proxied,
           (unsigned long long)t.conns, (unsigned long long)t.resets,
           (unsigned long long)t.cuts, (unsigned long long)t.stalls,
           t.vfs_rounds, t.fills, (unsigned long long)t.acked, t.problems,
           t.violations);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_torture, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
