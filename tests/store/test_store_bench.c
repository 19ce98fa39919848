/* Store throughput, printed for the record: appends per second inside one
 * transaction (memory and file), through sb_storeq with group commit (all
 * submitted at once), and one append in flight at a time (a commit each).
 * The cs-chat shape: 100-byte texts spread over many conversations. Also
 * what the search index costs: messages indexed per second by the writer
 * between batches. CPU time is printed beside wall time: on a busy machine
 * it is the steadier of the two. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "sb_error.h"
#include "sb_store.h"
#include "sb_storeq.h"

#ifdef SB_SANITIZE
#define SCALE 10 /* sanitizers are ~10x slower: prove it works, not speed */
#else
#define SCALE 1
#endif

#define NOW 1800000000000LL
#define NCONV 500

static char BODY[101];

static double cpu_secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct tmpdb {
    char dir[64];
    char path[96];
} tmpdb;

static void tmpdb_make(tmpdb *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/sbbench.XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof t->path, "%s/sb.db", t->dir);
}

static void tmpdb_remove(tmpdb *t)
{
    static const char *const sfx[] = {"", "-wal", "-shm"};
    char p[128];
    for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
        snprintf(p, sizeof p, "%s%s", t->path, sfx[i]);
        unlink(p);
    }
    rmdir(t->dir);
}

static void msg_init(Sbp__Message *m, uint8_t id[16], uint64_t conv, uint64_t n)
{
    sbp__message__init(m);
    memset(id, 0x5a, 16);
    memcpy(id, &n, sizeof n);
    m->conv_id = conv;
    m->sender = n % 2 ? "customer-0001" : "agent-0001";
    m->sender_device = "device-1";
    m->client_msg_id.data = id;
    m->client_msg_id.len = 16;
    m->type = SBP__MSG_TYPE__MSG_TEXT;
    m->body = BODY;
}

static void convs_make(sb_store *s, uint64_t *conv)
{
    const char *u[] = {"customer-0001", "agent-0001"};
    Sbp__Role roles[] = {SBP__ROLE__ROLE_CUSTOMER, SBP__ROLE__ROLE_AGENT};
    assert_int_equal(sb_store_begin(s), 0);
    for (int i = 0; i < NCONV; i++) {
        Sbp__Conversation *c = NULL;
        assert_int_equal(sb_store_conv_create(s, SBP__CONV_KIND__CONV_SERVICE,
                                              "b", u, roles, 2, NOW, &c),
                         0);
        conv[i] = c->conv_id;
        sbp__conversation__free_unpacked(c, NULL);
    }
    assert_int_equal(sb_store_commit(s), 0);
}

static void one_txn(const char *what, const char *path, sb_durability d)
{
    const int n = 200000 / SCALE;
    sb_store *s = NULL;
    uint64_t conv[NCONV];
    assert_int_equal(sb_store_open(path, d, &s), 0);
    convs_make(s, conv);
    uint64_t t0 = uv_hrtime();
    double c0 = cpu_secs();
    assert_int_equal(sb_store_begin(s), 0);
    for (int i = 0; i < n; i++) {
        Sbp__Message m;
        uint8_t id[16];
        bool dup;
        msg_init(&m, id, conv[i % NCONV], (uint64_t)i);
        assert_int_equal(sb_store_append(s, &m, NOW, &dup), 0);
        assert_int_equal(m.seq, (uint64_t)(i / NCONV) + 1);
    }
    assert_int_equal(sb_store_commit(s), 0);
    double secs = (double)(uv_hrtime() - t0) / 1e9, cpu = cpu_secs() - c0;
    print_message("one transaction, %s: %d appends in %.3f s = %.0f/s "
                  "(%.0f/s of CPU)\n",
                  what, n, secs, n / secs, n / cpu);
    sb_store_close(s);
}

static void test_one_txn_memory(void **state)
{
    (void)state;
    one_txn("memory", ":memory:", SB_DURABILITY_OS);
}

static void test_one_txn_file(void **state)
{
    (void)state;
    tmpdb t;
    tmpdb_make(&t);
    one_txn("file, fsync", t.path, SB_DURABILITY_FSYNC);
    tmpdb_remove(&t);
}

/* The search index filled behind the appends, in the writer's chunks, over
 * mixed English and Chinese texts of about 100 bytes. */
static void test_index(void **state)
{
    (void)state;
    static const char *const words[] = {
        "refund",
        "order",
        "shipping",
        "when",
        "arrive",
        "parcel",
        "please",
        "thanks",
        "\xe9\x80\x80\xe6\xac\xbe",
        "\xe8\xae\xa2\xe5\x8d\x95",
        "\xe4\xbb\x80\xe4\xb9\x88\xe6\x97\xb6\xe5\x80\x99",
        "\xe5\x8f\x91\xe8\xb4\xa7"};
    const int n = 200000 / SCALE;
    sb_store *s = NULL;
    uint64_t conv[NCONV];
    assert_int_equal(sb_store_open(":memory:", SB_DURABILITY_OS, &s), 0);
    convs_make(s, conv);
    assert_int_equal(sb_store_begin(s), 0);
    unsigned r = 1;
    for (int i = 0; i < n; i++) {
        char body[160];
        size_t len = 0;
        while (len < 100) {
            r = r * 1103515245u + 12345u;
            len += (size_t)snprintf(body + len, sizeof body - len, "%s ",
                                    words[(r >> 16) % 12]);
        }
        Sbp__Message m;
        uint8_t id[16];
        bool dup;
        msg_init(&m, id, conv[i % NCONV], (uint64_t)i);
        m.body = body;
        assert_int_equal(sb_store_append(s, &m, NOW, &dup), 0);
    }
    assert_int_equal(sb_store_commit(s), 0);
    uint64_t t0 = uv_hrtime(), left = 1;
    double c0 = cpu_secs();
    while (left) {
        assert_int_equal(sb_store_begin(s), 0);
        assert_int_equal(sb_store_index(s, 2000, &left), 0);
        assert_int_equal(sb_store_commit(s), 0);
    }
    double secs = (double)(uv_hrtime() - t0) / 1e9, cpu = cpu_secs() - c0;
    print_message("search index, trigram: %d messages in %.3f s = %.0f/s "
                  "(%.0f/s of CPU)\n",
                  n, secs, n / secs, n / cpu);
    Sbp__SearchResp *sr = NULL;
    t0 = uv_hrtime();
    assert_int_equal(sb_store_search(s, "agent-0001", false, 0,
                                     "\xe4\xbb\x80\xe4\xb9\x88 refund", 50,
                                     &sr),
                     0);
    assert_int_equal(sr->n_messages, 50);
    print_message("search, indexed, a member of %d conversations: %.2f ms\n",
                  NCONV, (double)(uv_hrtime() - t0) / 1e6);
    sbp__search_resp__free_unpacked(sr, NULL);
    sb_store_close(s);
}

typedef struct qreq {
    sb_req req;
    Sbp__Message msg;
    uint8_t id[16];
} qreq;

typedef struct bench {
    sb_storeq *q;
    qreq *r;
    int n, next, done, window;
    uint64_t *conv;
} bench;

static void bench_done(sb_req *req);

static void bench_submit(bench *b)
{
    qreq *x = &b->r[b->next];
    memset(&x->req, 0, sizeof x->req);
    msg_init(&x->msg, x->id, b->conv[b->next % NCONV], (uint64_t)b->next);
    x->req.kind = SB_REQ_MSG_APPEND;
    x->req.u.append.msg = &x->msg;
    x->req.now_ms = NOW;
    x->req.done = bench_done;
    x->req.ctx = b;
    b->next++;
    sb_storeq_submit(b->q, &x->req);
}

static void bench_done(sb_req *req)
{
    bench *b = req->ctx;
    assert_int_equal(req->rc, 0);
    assert_ptr_equal(req, &b->r[b->done].req); /* in submission order */
    b->done++;
    if (b->next < b->n) bench_submit(b); /* closed loop: keep window */
}

static void queued(const char *what, sb_durability d, int n, int window)
{
    tmpdb t;
    tmpdb_make(&t);
    uint64_t conv[NCONV];
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, d, &s), 0);
    convs_make(s, conv);
    sb_store_close(s);

    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    bench b = {.n = n, .window = window, .conv = conv};
    b.r = calloc((size_t)n, sizeof *b.r);
    assert_int_equal(sb_storeq_start(&loop, t.path, d, &b.q), 0);
    uint64_t t0 = uv_hrtime();
    while (b.next < n && b.next < window)
        bench_submit(&b);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    assert_int_equal(b.done, n);
    uint64_t commits = sb_storeq_commits(b.q);
    print_message("storeq, %s, %d in flight: %d appends in %.3f s = %.0f/s, "
                  "%llu commits (%.1f appends each)\n",
                  what, window, n, secs, n / secs, (unsigned long long)commits,
                  (double)n / (double)commits);
    sb_storeq_stop(b.q);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(b.r);
    tmpdb_remove(&t);
}

static void test_queued_all_fsync(void **state)
{
    (void)state;
    queued("fsync", SB_DURABILITY_FSYNC, 100000 / SCALE, 100000);
}

static void test_queued_all_os(void **state)
{
    (void)state;
    queued("os", SB_DURABILITY_OS, 100000 / SCALE, 100000);
}

static void test_queued_window_fsync(void **state)
{
    (void)state;
    queued("fsync", SB_DURABILITY_FSYNC, 20000 / SCALE, 1000);
    queued("fsync", SB_DURABILITY_FSYNC, 300 / SCALE, 1);
}

int main(void)
{
    memset(BODY, 'x', sizeof BODY - 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_txn_memory),
        cmocka_unit_test(test_one_txn_file),
        cmocka_unit_test(test_index),
        cmocka_unit_test(test_queued_all_fsync),
        cmocka_unit_test(test_queued_all_os),
        cmocka_unit_test(test_queued_window_fsync),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
