/* integ_failover: the SDK's list of server URLs against the real server.
 *
 * A node that moves: every device is given three URLs, a port nobody
 * listens on, the server's port, and a port the server is not on yet.
 * Devices that go round the list in order meet the dead port first and
 * connect to the second. While two customer/agent pairs send as fast as
 * their windows allow, the server gets SIGTERM: it drains (close 1001),
 * exits, and starts again on the third port with the same store. Every
 * device moves there by itself; every message is acknowledged once, each
 * SEND_ACK'ed one is in the store (I1), and every device surfaces each
 * conversation exactly once, in order, as stored (I2-I4).
 *
 * Two nodes at once (two servers, each with its own store, so no message
 * crosses them): devices whose backoff is long move from a draining node
 * to the other, and from a node killed with -9 back to the first (started
 * again meanwhile), each within a second, without waiting for a backoff.
 *
 * A node dies (PostgreSQL only: two gateways on one database): both
 * pairs chat through the first node when it is killed with -9 in the
 * middle of their burst; they move to the second and finish there, and
 * the same checks hold (I1-I4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "itest.h"
#include "pgtest.h"

#define N_CONVS 2
#define PER_DEV_MAX 400
#define INFLIGHT_MAX 64
#define N_NODE_DEVS 4
#define SWITCH_MS_MAX 1000 /* the promise: another node within a second */

static it_env E;
static harness_server B;    /* the second node */
static bool b_shares_store; /* B.store is E.srv's database */
static int reserved[2] = {-1, -1};
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
    harness_kill9(&B);
    if (b_shares_store) B.store[0] = '\0'; /* E.srv's to drop */
    harness_cleanup(&B);
    memset(&B, 0, sizeof B);
    b_shares_store = false;
    it_env_free(&E);
    for (int i = 0; i < 2; i++)
        if (reserved[i] >= 0) {
            close(reserved[i]);
            reserved[i] = -1;
        }
    return 0;
}

/* A loopback port bound but not listening: connecting to it is refused,
 * and no other program takes it while the socket stays open. */
static uint16_t reserve_port(int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(*fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

/* Every device of devs READY on url. */
typedef struct on_url {
    it_device **devs;
    size_t n;
    const char *url;
} on_url;

static bool all_on(void *arg)
{
    on_url *o = arg;
    for (size_t i = 0; i < o->n; i++) {
        it_device *d = o->devs[i];
        if (!d->c || sb_client_get_state(d->c) != SB_CLIENT_READY ||
            strcmp(sb_client_get_url(d->c), o->url) != 0)
            return false;
    }
    return true;
}

static uint64_t url_switches(it_device *d)
{
    sb_client_stats st;
    sb_client_get_stats(d->c, &st);
    return st.url_switches;
}

/* Both pairs' conversations, once the load is stopped: everything sent
 * is acked once, surfaced in order exactly once by both devices, and as
 * stored. */
static void finish_and_check(size_t *sends_out)
{
    it_run_for(&E, 300);
    it_load_stop(&L);
    size_t sends = 0, acked = 0;
    assert_int_equal(it_load_converged(&E, &L, 60000, &sends, NULL), 0);
    assert_int_equal(it_check_acked_in_store(&E, &acked), 0);
    assert_int_equal(acked, sends);
    assert_int_equal(E.violations, 0);
    *sends_out = sends;
}

static void test_node_moves(void **state)
{
    (void)state;
    int64_t t0 = harness_now_ms();
    it_env_init(&E);
    E.unlimited = true; /* load, not rate limits, is under test */
    assert_int_equal(it_server_start(&E, NULL), 0);
    uint16_t dead = reserve_port(&reserved[0]);
    uint16_t later = reserve_port(&reserved[1]);
    char u_dead[64], u_first[64], u_later[64];
    snprintf(u_dead, sizeof u_dead, "ws://127.0.0.1:%u/ws", dead);
    snprintf(u_first, sizeof u_first, "ws://127.0.0.1:%u/ws", E.srv.port);
    snprintf(u_later, sizeof u_later, "ws://127.0.0.1:%u/ws", later);
    snprintf(E.url, sizeof E.url, "%s,%s,%s", u_dead, u_first, u_later);

    it_load_devices(&E, &L);
    for (int i = 0; i < N_CONVS; i++) {
        assert_int_equal(it_device_start(agent[i]), 0); /* random order */
        cust[i]->cfg.urls_in_order = true;
        assert_int_equal(it_device_start(cust[i]), 0);
    }
    on_url first = {all, 2 * N_CONVS, u_first};
    assert_true(it_run_until(&E, all_on, &first, 10000));
    for (int i = 0; i < N_CONVS; i++) {
        /* In order: the dead port first, then on to the server at once. */
        sb_client_stats st;
        sb_client_get_stats(cust[i]->c, &st);
        assert_int_equal(st.connects, 2);
        assert_int_equal(st.url_switches, 1);
        assert_int_equal(cust[i]->close_errs[0], -ECONNREFUSED);
    }
    assert_true(it_load_open(&L, 10000));
    it_load_start(&E, &L);
    it_load_wait_acked(&E, &L, 2 * N_CONVS * PER_DEV_MAX / 3, 5000);

    /* SIGTERM: the node drains and goes; the clients keep sending. */
    size_t acked_at_signal = it_load_acked(&L);
    assert_int_equal(harness_stop_begin(&E.srv), 0);
    it_exit ex = {&E.srv, 0, -2};
    assert_true(it_run_until(&E, it_server_exited, &ex, 20000));
    assert_int_equal(ex.rc, 1);
    assert_int_equal(ex.status, 0);
    size_t acked_at_exit = 0;
    assert_int_equal(it_check_acked_in_store(&E, &acked_at_exit), 0);
    for (int i = 0; i < 2 * N_CONVS; i++) {
        assert_true(it_device_saw_close(all[i], SB_WS_CLOSE_GOING_AWAY));
        assert_int_equal(all[i]->stops, 0);
    }

    /* The same store comes back on the third URL of the list. */
    it_run_for(&E, 300); /* the devices go round the list meanwhile */
    close(reserved[1]);
    reserved[1] = -1;
    E.srv.port = later;
    assert_int_equal(harness_restart(&E.srv), 0);
    int64_t t_up = harness_now_ms();
    on_url moved = {all, 2 * N_CONVS, u_later};
    assert_true(it_run_until(&E, all_on, &moved, 10000));
    int64_t t_back = harness_now_ms();
    size_t sends = 0, dups = 0;
    finish_and_check(&sends);
    for (int i = 0; i < 2 * N_CONVS; i++)
        dups += all[i]->n_dup_acks;

    printf("integ_failover: node moves: SIGTERM with %zu acked (%zu at "
           "exit), back on another port of the list; every device there "
           "%lld ms after the server was up; %zu msgs each acked once and "
           "stored (%zu duplicate acks), surfaced in order exactly once; "
           "total %lld ms\n",
           acked_at_signal, acked_at_exit, (long long)(t_back - t_up), sends,
           dups, (long long)(harness_now_ms() - t0));
    it_env_free(&E);
}

static void test_two_nodes(void **state)
{
    (void)state;
    it_env_init(&E);
    assert_int_equal(it_server_start(&E, NULL), 0);
    B.sqlite_only = E.srv.sqlite_only;
    B.extra[0] = NULL;
    assert_int_equal(harness_start(&B), 0);
    char u_a[128], u_b[128];
    snprintf(u_a, sizeof u_a, "%s", E.srv.url);
    snprintf(u_b, sizeof u_b, "%s", B.url);
    snprintf(E.url, sizeof E.url, "%s,%s", u_a, u_b);
    it_device *devs[N_NODE_DEVS];
    for (int i = 0; i < N_NODE_DEVS; i++) {
        char user[32], dev[32];
        snprintf(user, sizeof user, "user%d", i);
        snprintf(dev, sizeof dev, "user%d-app", i);
        devs[i] = it_device_new(&E, user, "customer", dev);
        /* A backoff would show: up to 5 s, more than the promise. */
        devs[i]->cfg.backoff_ms_base = 5000;
        devs[i]->cfg.backoff_ms_max = 10000;
        devs[i]->cfg.urls_in_order = true;
        assert_int_equal(it_device_start(devs[i]), 0);
    }
    on_url on_a = {devs, N_NODE_DEVS, u_a}, on_b = {devs, N_NODE_DEVS, u_b};
    assert_true(it_run_until(&E, all_on, &on_a, 10000));
    uint64_t sw[N_NODE_DEVS];
    for (int i = 0; i < N_NODE_DEVS; i++)
        sw[i] = url_switches(devs[i]);

    /* A drains: everybody on B within a second of the signal. */
    it_run_for(&E, SB_CLIENT_STABLE_MS + 100);
    int64_t t_sig = harness_now_ms();
    assert_int_equal(harness_stop_begin(&E.srv), 0);
    assert_true(it_run_until(&E, all_on, &on_b, 5000));
    int64_t drain_ms = harness_now_ms() - t_sig;
    for (int i = 0; i < N_NODE_DEVS; i++) {
        assert_true(it_device_saw_close(devs[i], SB_WS_CLOSE_GOING_AWAY));
        assert_int_equal(url_switches(devs[i]), sw[i] + 1);
        sw[i]++;
    }
    it_exit ex = {&E.srv, 0, -2};
    assert_true(it_run_until(&E, it_server_exited, &ex, 20000));
    assert_int_equal(ex.status, 0);

    /* A is back; B dies (-9): everybody on A within a second. */
    assert_int_equal(harness_restart(&E.srv), 0);
    it_run_for(&E, SB_CLIENT_STABLE_MS + 100);
    int64_t t_kill = harness_now_ms();
    harness_kill9(&B);
    assert_true(it_run_until(&E, all_on, &on_a, 5000));
    int64_t kill_ms = harness_now_ms() - t_kill;
    for (int i = 0; i < N_NODE_DEVS; i++) {
        assert_int_equal(url_switches(devs[i]), sw[i] + 1);
        assert_int_equal(devs[i]->readies, 3);
        assert_int_equal(devs[i]->stops, 0);
    }
    assert_true(drain_ms < SWITCH_MS_MAX);
    assert_true(kill_ms < SWITCH_MS_MAX);
    assert_int_equal(E.violations, 0);
    printf("integ_failover: two nodes: %d devices on the other node %lld ms "
           "after SIGTERM of theirs, %lld ms after kill -9\n",
           N_NODE_DEVS, (long long)drain_ms, (long long)kill_ms);
    it_env_free(&E);
    harness_cleanup(&B);
    memset(&B, 0, sizeof B);
}

static void test_node_dies(void **state)
{
    (void)state;
    if (!pgtest_url()) skip();
    it_env_init(&E);
    E.unlimited = true;
    assert_int_equal(it_server_start(&E, NULL), 0);
    snprintf(B.store, sizeof B.store, "%s", E.srv.store);
    b_shares_store = true;
    for (int i = 0; E.srv.extra[i]; i++)
        B.extra[i] = E.srv.extra[i];
    assert_int_equal(harness_start(&B), 0);
    char u_a[128], u_b[128];
    snprintf(u_a, sizeof u_a, "%s", E.srv.url);
    snprintf(u_b, sizeof u_b, "%s", B.url);
    snprintf(E.url, sizeof E.url, "%s,%s", u_a, u_b);
    it_load_devices(&E, &L);
    for (int i = 0; i < 2 * N_CONVS; i++) {
        all[i]->cfg.urls_in_order = true; /* all on A */
        assert_int_equal(it_device_start(all[i]), 0);
    }
    on_url on_a = {all, 2 * N_CONVS, u_a}, on_b = {all, 2 * N_CONVS, u_b};
    assert_true(it_run_until(&E, all_on, &on_a, 10000));
    assert_true(it_load_open(&L, 10000));
    it_load_start(&E, &L);
    it_load_wait_acked(&E, &L, 2 * N_CONVS * PER_DEV_MAX / 3, 5000);
    size_t acked_at_kill = it_load_acked(&L);
    int64_t t_kill = harness_now_ms();
    harness_kill9(&E.srv);
    assert_true(it_run_until(&E, all_on, &on_b, 5000));
    int64_t move_ms = harness_now_ms() - t_kill;
    size_t sends = 0;
    finish_and_check(&sends);
    assert_true(move_ms < SWITCH_MS_MAX);
    printf("integ_failover: node dies: kill -9 with %zu acked, every device "
           "on the other node %lld ms later; %zu msgs each acked once and "
           "stored, surfaced in order exactly once\n",
           acked_at_kill, (long long)move_ms, sends);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_node_moves, teardown),
        cmocka_unit_test_teardown(test_two_nodes, teardown),
        cmocka_unit_test_teardown(test_node_dies, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
