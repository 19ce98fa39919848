/* integ_backup: `sbctl store backup` of a running server, and the restore
 * of docs/operations.md ("Back up and restore").
 *
 * An agent and a customer exchange 200 messages; then, while 800 more are
 * being sent, `sbctl store backup --data DATA DIR` copies the store (the
 * server keeps committing). 100 more follow the backup. The server is
 * stopped and restored as the procedure says: the data folder moved
 * aside, the backup's switchboard.db put in a fresh one, the server
 * started again. Then:
 *  - every message acknowledged before the backup began is in the
 *    restored store at its seq with its msg_id (I1 up to the backup);
 *  - the restored store is what the original held up to one commit: its
 *    messages are a dense prefix 1..K of the original's, the same ids;
 *  - new devices of both users SYNC and surface 1..K exactly once, in
 *    order, as stored; a message sent after the restore takes seq K+1
 *    and is pushed to the other side. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

#define WAIT_MS 20000
#define ACKED_MAX 2048

static it_env E;
static char BACKUP[64];

static int teardown(void **state)
{
    (void)state;
    it_env_free(&E);
    if (BACKUP[0]) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s.old'", BACKUP,
                 E.srv.data_dir);
        if (system(cmd) != 0) fprintf(stderr, "backup: cleanup failed\n");
    }
    return 0;
}

/* A message acknowledged before the backup began. */
typedef struct acked {
    uint64_t seq, msg_id;
} acked;
static acked ACKED[ACKED_MAX];
static size_t n_acked;

static void note_acked(it_send *s, void *arg)
{
    (void)arg;
    if (s->msg_id && n_acked < ACKED_MAX)
        ACKED[n_acked++] = (acked){s->seq, s->msg_id};
}

/* The backup, run by sbctl on a thread while the loop keeps the devices
 * sending. */
static char backup_cmd[1024];
static atomic_int backup_rc = -1;
static atomic_bool backup_done;

static void *run_backup(void *arg)
{
    (void)arg;
    atomic_store(&backup_rc, system(backup_cmd));
    atomic_store(&backup_done, true);
    return NULL;
}

static bool is_done(void *arg)
{
    (void)arg;
    return atomic_load(&backup_done);
}

static void test_backup_restore(void **state)
{
    (void)state;
    it_env_init(&E);
    E.unlimited = true;
    E.srv.sqlite_only = true;
    assert_int_equal(it_server_start(&E, NULL), 0);
    it_device *ag = it_device_new(&E, "ann", "agent", "ann-d1");
    it_device *cu = it_device_new(&E, "carl", "customer", "carl-d1");
    it_device *devs[] = {ag, cu};
    assert_int_equal(it_device_start(ag), 0);
    assert_int_equal(it_device_start(cu), 0);
    assert_true(it_device_wait_ready(ag, WAIT_MS));
    assert_true(it_device_wait_ready(cu, WAIT_MS));
    uint64_t conv = it_open(ag, "carl", WAIT_MS);
    assert_true(conv != 0);
    assert_int_equal(it_send_n(ag, conv, 0, 100, "a"), 0);
    assert_int_equal(it_send_n(cu, conv, 0, 100, "c"), 0);
    assert_true(it_wait_sent(devs, 2, WAIT_MS));

    /* The backup, with sends in flight. */
    snprintf(BACKUP, sizeof BACKUP, "/tmp/sbbackup.XXXXXX");
    assert_non_null(mkdtemp(BACKUP));
    char bin[512];
    snprintf(bin, sizeof bin, "%s", harness_server_bin());
    snprintf(backup_cmd, sizeof backup_cmd,
             "'%s/sbctl' store backup --data '%s' '%s'", dirname(bin),
             E.srv.data_dir, BACKUP);
    assert_int_equal(it_send_n(ag, conv, 100, 400, "a"), 0);
    assert_int_equal(it_send_n(cu, conv, 100, 400, "c"), 0);
    it_run_for(&E, 5);
    it_sends_each(&E, note_acked, NULL);
    assert_true(n_acked >= 200);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_backup, NULL), 0);
    assert_true(it_run_until(&E, is_done, NULL, WAIT_MS));
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&backup_rc), 0);
    /* A second backup into the same place is refused, the first kept. */
    assert_true(system(backup_cmd) != 0);
    assert_int_equal(it_send_n(ag, conv, 500, 50, "a"), 0);
    assert_int_equal(it_send_n(cu, conv, 500, 50, "c"), 0);
    assert_true(it_wait_sent(devs, 2, WAIT_MS));
    it_device_stop(ag);
    it_device_stop(cu);
    it_row *orig;
    long n_orig = it_store_rows(E.srv.data_dir, conv, &orig);
    assert_int_equal(n_orig, 1100);

    /* The restore, as docs/operations.md says. */
    assert_int_equal(harness_stop(&E.srv), 0);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "mv '%s' '%s.old' && mkdir -m 700 '%s' && "
             "cp '%s/switchboard.db' '%s/'",
             E.srv.data_dir, E.srv.data_dir, E.srv.data_dir, BACKUP,
             E.srv.data_dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(harness_restart(&E.srv), 0);

    it_row *rows;
    long k = it_store_rows(E.srv.data_dir, conv, &rows);
    assert_true(k >= (long)n_acked);
    assert_true(k <= n_orig);
    for (long i = 0; i < k; i++) {
        assert_int_equal(rows[i].seq, (uint64_t)i + 1);
        assert_int_equal(rows[i].msg_id, orig[i].msg_id);
        assert_memory_equal(rows[i].cmid, orig[i].cmid, orig[i].cmid_len);
    }
    for (size_t i = 0; i < n_acked; i++) {
        assert_true(ACKED[i].seq >= 1 && ACKED[i].seq <= (uint64_t)k);
        assert_int_equal(rows[ACKED[i].seq - 1].msg_id, ACKED[i].msg_id);
    }
    fprintf(stderr,
            "backup: %zu acked before the backup, %ld restored, %ld "
            "stored in all\n",
            n_acked, k, n_orig);

    /* Clients against the restored store. */
    it_device *ag2 = it_device_new(&E, "ann", "agent", "ann-d2");
    it_device *cu2 = it_device_new(&E, "carl", "customer", "carl-d2");
    it_device *devs2[] = {ag2, cu2};
    assert_int_equal(it_device_start(ag2), 0);
    assert_int_equal(it_device_start(cu2), 0);
    assert_true(it_wait_surfaced(devs2, 2, conv, (uint64_t)k, WAIT_MS));
    for (int d = 0; d < 2; d++) {
        it_conv_log *l = it_log(devs2[d], conv);
        assert_non_null(l);
        assert_int_equal(l->n, (size_t)k);
        for (long i = 0; i < k; i++)
            assert_int_equal(l->msgs[i].msg_id, rows[i].msg_id);
    }
    assert_int_equal(it_send_text(cu2, conv, "after the restore"), 0);
    assert_true(it_wait_sent(devs2, 2, WAIT_MS));
    assert_true(it_wait_surfaced(devs2, 2, conv, (uint64_t)k + 1, WAIT_MS));
    assert_int_equal(E.violations, 0);
    free(rows);
    free(orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_backup_restore, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
