/* integ_pg_two_gateways: two gateway processes on one PostgreSQL database,
 * writing into the same conversations at once.
 *
 * Six conversations, each with its customer on gateway A and its agent on
 * gateway B, both sending as fast as their windows allow, so that both
 * gateways' writers take seqs of the same conversations in the same
 * moments. Then, in the store: every conversation's seqs are dense 1..N
 * with N the messages its two devices sent, every (sender, client_msg_id)
 * is there once, every acknowledged message at the seq its SEND_ACK gave
 * (I1), and no send failed (no deadlock reached a client). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>
#include <string.h>

#include "itest.h"
#include "pgtest.h"

#define N_CONVS 6
#define PER_DEV 300
#define WINDOW 32

static it_env E;
static harness_server B; /* the second gateway; E.srv is the first */

static int teardown(void **state)
{
    (void)state;
    harness_kill9(&B);
    B.store[0] = '\0'; /* the database is E.srv's to drop */
    harness_cleanup(&B);
    it_env_free(&E);
    return 0;
}

static void test_two_gateways(void **state)
{
    (void)state;
    if (!pgtest_url()) skip();
    int64_t t0 = harness_now_ms();
    it_env_init(&E);
    E.unlimited = true;
    assert_int_equal(it_server_start(&E, NULL), 0);
    /* B: its own folder, the same database. */
    snprintf(B.store, sizeof B.store, "%s", E.srv.store);
    for (int i = 0; E.srv.extra[i]; i++)
        B.extra[i] = E.srv.extra[i];
    assert_int_equal(harness_start(&B), 0);
    char url_a[sizeof E.url];
    snprintf(url_a, sizeof url_a, "%s", E.url);

    it_device *cust[N_CONVS], *agent[N_CONVS];
    uint64_t conv[N_CONVS];
    char user[32], dev[32];
    for (int i = 0; i < N_CONVS; i++) {
        snprintf(E.url, sizeof E.url, "%s", B.url);
        snprintf(user, sizeof user, "agent%d", i);
        snprintf(dev, sizeof dev, "agent%d-b", i);
        agent[i] = it_device_new(&E, user, "agent", dev);
        assert_int_equal(it_device_start(agent[i]), 0);
        snprintf(E.url, sizeof E.url, "%s", url_a);
        snprintf(user, sizeof user, "cust%d", i);
        snprintf(dev, sizeof dev, "cust%d-a", i);
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

    /* Both sides at once, in windows: the SDK keeps WINDOW in flight. */
    it_device *all[2 * N_CONVS];
    for (int round = 0; round < PER_DEV / WINDOW + 1; round++) {
        for (int i = 0; i < N_CONVS; i++) {
            int first = round * WINDOW;
            int n = PER_DEV - first < WINDOW ? PER_DEV - first : WINDOW;
            if (n <= 0) continue;
            assert_int_equal(it_send_n(cust[i], conv[i], first, n, "from A"),
                             0);
            assert_int_equal(it_send_n(agent[i], conv[i], first, n, "from B"),
                             0);
        }
        for (int i = 0; i < N_CONVS; i++) {
            all[2 * i] = cust[i];
            all[2 * i + 1] = agent[i];
        }
        assert_true(it_wait_sent(all, 2 * N_CONVS, 60000));
    }
    size_t failed = 0, sent = 0;
    for (int i = 0; i < 2 * N_CONVS; i++) {
        failed += all[i]->n_failed;
        sent += all[i]->n_sent;
    }
    assert_int_equal(failed, 0);
    assert_int_equal(sent, (size_t)2 * N_CONVS * PER_DEV);

    int problems = 0;
    size_t acked = 0;
    problems += it_check_acked_in_store(&E, &acked);
    for (int i = 0; i < N_CONVS; i++) {
        it_row *rows = NULL;
        long n = it_store_rows(E.data_dir, conv[i], &rows);
        assert_int_equal(n, 2 * PER_DEV);
        for (long k = 0; k < n; k++) {
            if (rows[k].seq != (uint64_t)k + 1) {
                fprintf(stderr, "conv %llu: seq %llu at row %ld\n",
                        (unsigned long long)conv[i],
                        (unsigned long long)rows[k].seq, k);
                problems++;
                break;
            }
            for (long j = 0; j < k; j++)
                if (rows[j].cmid_len == rows[k].cmid_len &&
                    memcmp(rows[j].cmid, rows[k].cmid, rows[k].cmid_len) == 0 &&
                    strcmp(rows[j].sender, rows[k].sender) == 0)
                    problems++;
        }
        free(rows);
    }
    assert_int_equal(problems, 0);
    assert_int_equal(acked, (size_t)2 * N_CONVS * PER_DEV);
    printf("integ_pg_two_gateways: %d convs, %zu msgs written through two "
           "gateways at once, seqs dense, each once, all acked in store; "
           "%lld ms\n",
           N_CONVS, acked, (long long)(harness_now_ms() - t0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_two_gateways, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
