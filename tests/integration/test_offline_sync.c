/* integ_offline_sync: catching up by SYNC after being offline.
 *
 * bob's device surfaces a few messages, then goes offline (its client is
 * closed) while alice sends 1,000. bob comes back as a NEW sb_client on
 * the same device id with its cursor restored (sb_client_set_cursor, as an
 * app restoring persisted state): it must surface exactly the messages
 * after the cursor, once each, in order, through several SYNC pages (the
 * server pages 200). A brand-new device of bob (no cursors) surfaces
 * everything. Then a third device of bob connects while alice is sending,
 * so that PUSHes race its SYNC (gaps are held and filled): it too must
 * surface everything exactly once, in order. The store agrees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "itest.h"

#define N_BEFORE 10
#define N_OFFLINE 1000
#define N_LIVE 300
#define WAIT_MS 60000

static it_env E;

static int teardown(void **state)
{
    (void)state;
    it_env_free(&E);
    return 0;
}

static uv_timer_t live_timer;
static it_device *live_alice;
static uint64_t live_conv;
static int live_next;

static void on_live(uv_timer_t *t)
{
    (void)t;
    for (int i = 0; i < 3 && live_next < N_LIVE; i++)
        if (it_send_n(live_alice, live_conv, live_next++, 1, "live") != 0)
            break;
}

static void test_offline_sync(void **state)
{
    (void)state;
    int64_t t0 = harness_now_ms();
    it_env_init(&E);
    E.unlimited = true; /* load, not rate limits, is under test */
    assert_int_equal(it_server_start(&E, NULL), 0);
    it_device *bob = it_device_new(&E, "bob", "agent", "bob-phone");
    assert_int_equal(it_device_start(bob), 0);
    assert_true(it_device_wait_ready(bob, 10000));
    it_device *alice = it_device_new(&E, "alice", "customer", "alice-web");
    assert_int_equal(it_device_start(alice), 0);
    assert_true(it_device_wait_ready(alice, 10000));
    uint64_t conv = it_open(alice, "bob", 10000);
    assert_true(conv != 0);

    /* Online: a few messages. */
    assert_int_equal(it_send_n(alice, conv, 0, N_BEFORE, "before"), 0);
    assert_true(it_wait_surfaced(&bob, 1, conv, N_BEFORE, WAIT_MS));
    it_device_stop(bob);
    uint64_t cursor = it_surfaced(bob, conv);
    assert_int_equal(cursor, N_BEFORE);

    /* Offline: 1,000 messages. */
    assert_int_equal(it_send_n(alice, conv, 0, N_OFFLINE, "offline"), 0);
    assert_true(it_wait_sent(&alice, 1, WAIT_MS));
    assert_int_equal(alice->n_sent, N_BEFORE + N_OFFLINE);
    const uint64_t total = N_BEFORE + N_OFFLINE;

    /* Back: a new client, same device, cursor restored. */
    int64_t t_back = harness_now_ms();
    assert_int_equal(it_device_restart(bob, true), 0);
    assert_int_equal(sb_client_cursor(bob->c, conv), cursor);
    bool ok = it_wait_surfaced(&bob, 1, conv, total, WAIT_MS);
    if (!ok)
        fprintf(stderr, "bob surfaced through %llu of %llu\n",
                (unsigned long long)it_surfaced(bob, conv),
                (unsigned long long)total);
    assert_true(ok);
    int64_t t_caught = harness_now_ms();
    sb_client_stats st;
    sb_client_get_stats(bob->c, &st);
    /* 1,000 messages after the cursor, pages of 200: 5 SYNCs at least. */
    assert_true(st.syncs >= N_OFFLINE / 200);
    assert_int_equal(st.surfaced, N_OFFLINE);
    assert_int_equal(st.duplicates, 0);
    uint64_t bob_syncs = st.syncs;

    /* A brand-new device of bob: everything, from seq 1. */
    it_device *tab = it_device_new(&E, "bob", "agent", "bob-tablet");
    assert_int_equal(it_device_start(tab), 0);
    assert_true(it_wait_surfaced(&tab, 1, conv, total, WAIT_MS));
    sb_client_get_stats(tab->c, &st);
    assert_true(st.syncs >= (total + 199) / 200);
    uint64_t tab_syncs = st.syncs;

    /* Live: a third device joins while alice keeps sending (a few every
     * millisecond), so PUSHes race its SYNC pages: gaps are held. */
    live_alice = alice;
    live_conv = conv;
    uv_timer_init(&E.loop, &live_timer);
    uv_timer_start(&live_timer, on_live, 0, 1);
    assert_true(it_wait_size(&E, &alice->n_sends, total + N_LIVE / 4, 10000));
    it_device *desk = it_device_new(&E, "bob", "agent", "bob-desk");
    assert_int_equal(it_device_start(desk), 0);
    assert_true(it_wait_size(&E, &alice->n_sends, total + N_LIVE, 20000));
    uv_timer_stop(&live_timer);
    uv_close((uv_handle_t *)&live_timer, NULL);
    assert_true(it_wait_sent(&alice, 1, WAIT_MS));
    const uint64_t final_n = total + N_LIVE;
    it_device *all[] = {alice, bob, tab, desk};
    ok = it_wait_surfaced(all, 4, conv, final_n, WAIT_MS);
    for (size_t i = 0; !ok && i < 4; i++)
        fprintf(stderr, "%s surfaced through %llu of %llu\n", all[i]->name,
                (unsigned long long)it_surfaced(all[i], conv),
                (unsigned long long)final_n);
    assert_true(ok);
    it_run_for(&E, 300);
    sb_client_get_stats(desk->c, &st);

    assert_int_equal(it_check_conv(&E, conv, all, 4, final_n), 0);
    size_t stored = 0;
    assert_int_equal(it_check_store(&E, conv, tab, &stored), 0);
    assert_int_equal(stored, final_n);
    assert_int_equal(E.violations, 0);
    /* bob's phone surfaced only what came after its cursor. */
    assert_int_equal(it_log(bob, conv)->msgs[N_BEFORE].seq, N_BEFORE + 1);

    printf("integ_offline_sync: %d missed msgs caught up after cursor %d in "
           "%lld ms (%llu SYNCs); new device %llu msgs (%llu SYNCs); live "
           "joiner held %llu, %llu SYNCs; total %lld ms\n",
           N_OFFLINE, N_BEFORE, (long long)(t_caught - t_back),
           (unsigned long long)bob_syncs, (unsigned long long)total,
           (unsigned long long)tab_syncs, (unsigned long long)st.held,
           (unsigned long long)st.syncs, (long long)(harness_now_ms() - t0));
    it_env_free(&E);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_offline_sync, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
