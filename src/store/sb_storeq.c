/* The store's threads and their queues: a writer that takes every queued
 * write (up to SB_STOREQ_BATCH_MAX) into one transaction and one commit, a
 * reader that answers reads one at a time on its own connection, a blob
 * thread that moves uploads' bytes (sb_store_blob_*), and for long reads
 * (reports) a thread with a connection it opens at its first, so that
 * they hold up no other read. Finished
 * requests go onto a done list that a uv_async drains on the loop thread.
 * Between batches the writer fills the search index (sb_store_index): when
 * it has been idle a moment, or at once when the index lags far behind. */
#include "sb_storeq.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "sb_error.h"
#include "sb_req_int.h"
#include "sb_walvfs.h"

/* Messages indexed per idle transaction. */
#define INDEX_CHUNK 2000
/* Per batch while the index catches up under load: a few milliseconds, so
 * that the commits behind it barely wait. */
#define INDEX_BUSY_CHUNK 250
/* Behind by more, the index catches up even while writes keep coming: the
 * lag bounds the scan a search makes; below it, bursts of appends pay
 * nothing for the index. */
#define INDEX_LAG_MAX 1000000
/* No write for this long: the writer indexes. */
#define INDEX_IDLE_MS 20

/* Checkpoints run on a thread of their own, so that a commit never waits
 * for one. That thread copies the WAL into the database once CKPT_FRAMES
 * frames are waiting. A WAL only starts over when all of it has been copied
 * at the start of a write, which a steady stream of commits never lets the
 * other thread achieve: past CKPT_RESTART_FRAMES, once the checkpointer has
 * left at most CKPT_TAIL_FRAMES behind, the writer copies that short tail
 * itself between batches and its next commit starts the WAL over; past
 * twice that it does so whatever the tail (a bound on the WAL, for a
 * checkpointer that cannot keep up). A frame is a 4 KiB page. The writer's
 * copy is its one stall. It ends with a sync of the database file, which
 * writes every page copied since the file's last sync: so the checkpointer
 * syncs the file itself once the WAL is past CKPT_RESTART_FRAMES, and the
 * writer's sync is left with the tail's pages. The checkpointer's sync
 * still slows the commits beside it (their WAL syncs wait for its pages to
 * reach the disk), hence restarts only every 256 MiB. The checkpointer
 * gives up its core every CKPT_YIELD_PAGES pages it copies, so that the
 * threads it shares the core with (the loop, the writer) do not wait for
 * the end of its time slice (docs/benchmarks.md). */
#define CKPT_FRAMES 4096
#define CKPT_TAIL_FRAMES 32
#define CKPT_RESTART_FRAMES 65536
#define CKPT_YIELD_PAGES 16
/* A checkpoint that failed (a full disk: the database cannot grow) leaves
 * the WAL as it was, so it is still due; it is not tried again for this
 * long (else the checkpointer copies the same frames in a loop, and the
 * writer after every batch once past the restart bound). */
#define CKPT_RETRY_MS 1000
/* One that could not start (a passive checkpoint does not wait: it gives up
 * when it reads the WAL's index while a commit is changing it) is tried
 * again this soon: a long pause lets the WAL grow past its bound. */
#define CKPT_BUSY_RETRY_MS 2

/* Long reads waiting for their thread; more are refused at once
 * (SB_E_RATE_LIMITED): each may scan much of the store. */
#define LONG_READS_MAX 4

/* While the store does not answer, the idle writer asks it this often. */
#define PROBE_MS 1000

/* The writer's page cache holds the hot index pages of every conversation
 * being written; the other connections' 8 MiB misses too often under a
 * steady load over hundreds of conversations. */
#define WRITER_CACHE_KIB (32u << 10)

typedef struct req_list {
    sb_req *head, *tail;
} req_list;

/* One writer's counts, for metrics: written by its thread alone (sb_hist's
 * single-writer rule), read by any; and when the oldest write of its
 * queue not yet completed was submitted (uv_now of the loop; 0: none),
 * written under mu, read without it. */
typedef struct wcount {
    atomic_uint_fast64_t failed, stored;
    sb_ahist commit_us, batch_writes;
    atomic_uint_fast64_t oldest_ms;
} wcount;

/* A writer beside the main one, for a database that several writers can
 * share (PostgreSQL): its own connection, queue and batches. */
typedef struct xwriter {
    sb_storeq *q;
    sb_store *db;
    req_list wq; /* under q->mu */
    uv_cond_t cond;
    uv_thread_t thread;
    sb__req_scratch scratch;
    wcount wc;
} xwriter;

struct sb_storeq {
    uv_loop_t *loop;
    uv_async_t *async;   /* heap: outlives q until its close callback */
    sb_store *wdb, *rdb; /* the same one for an in-memory database */
    uv_mutex_t db_mu;    /* in-memory only: a batch or a read at a time */
    sb_store *cdb;       /* the checkpointer's; NULL in memory */
    sb_store *bdb;       /* the blob thread's; the writer's in memory */
    uv_thread_t writer, reader, ckpt, blober;

    uv_mutex_t mu; /* guards everything below up to `pending` */
    uv_cond_t wcond, rcond, ccond, bcond, lcond;
    req_list wq, rq, bq, done;
    req_list lq; /* long reads */
    size_t lq_len;
    uv_thread_t lreader; /* their thread */
    sb_store *ldb;       /* its connection: that thread's alone */
    char *path;          /* the database, for ldb */
    sb_durability durability;
    bool stopping;      /* threads finish their queues, then exit */
    bool joined;        /* threads gone: submit completes at once */
    bool hold;          /* test hook: the writer takes no batch */
    uint32_t max_pages; /* test hook: to apply before the next batch */
    bool max_pages_set;
    /* The WAL, as the last commit left it, and what a checkpoint of this
     * WAL (gen counts restarts) has copied into the database. */
    int wal_frames, ckpt_done;
    uint64_t wal_gen;
    bool ckpt_running;      /* a checkpoint, on either thread */
    bool ckpt_synced;       /* the checkpointer synced the database past the
                             * restart bound, in this WAL */
    uint64_t ckpt_syncs;    /* how many times it did */
    uint64_t ckpt_retry_ns; /* after a failed one: none before (uv_hrtime) */
    int ckpt_frames, ckpt_tail, ckpt_restart; /* CKPT_* or a test's */
    int hook_frames; /* writer thread only: the WAL hook's last word */

    sb__req_scratch scratch; /* writer thread only */
    wcount wc;               /* the main writer's */
    /* The other writers: a write goes to the one its conversation falls
     * to (conv_id modulo the writers), so that each conversation's writes
     * keep their order; the main writer takes the rest. */
    xwriter xw[SB_STOREQ_WRITERS_MAX - 1];
    int n_xw;

    size_t pending; /* loop thread only */
    bool in_cb;     /* loop thread only: inside a done callback */
    atomic_uint_fast64_t commits;
    atomic_uint_fast64_t checkpoints;
    /* Whether the store answers (sb_storeq_healthy), and whether the
     * writer probes it while idle (a database that can be out of reach). */
    atomic_bool healthy;
    bool probe;
};

static void list_push(req_list *l, sb_req *r)
{
    r->next = NULL;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
}

/* Moves a chain of requests to the done list and wakes the loop. Called
 * with q->mu held: sending under the lock orders the send after the push
 * for the loop thread, whatever libuv's own ordering guarantees. */
static void done_push_locked(sb_storeq *q, sb_req *first, sb_req *last)
{
    assert(first && last && !last->next);
    if (q->done.tail)
        q->done.tail->next = first;
    else
        q->done.head = first;
    q->done.tail = last;
    uv_async_send(q->async);
}

void sb_storeq_apply(sb_store *s, sb_req *req)
{
    assert(s && req);
    if (!sb__req_kind_ok(req->kind)) {
        req->rc = SB_E_INVALID;
    } else if (sb__req_ops[req->kind].write) {
        sb_req *next = req->next;
        req->next = NULL;
        sb__req_write_batch(s, req, NULL);
        req->next = next;
    } else {
        req->rc = sb__req_ops[req->kind].run(s, req);
    }
}

/* ---- threads ----------------------------------------------------------- */

/* Indexes a chunk for search in a transaction of its own (not counted as
 * a commit). Returns how many messages remain; 0 after a failure (a full
 * disk, say), so that the next batch, not a busy loop, tries again. */
static uint64_t index_chunk(sb_storeq *q, uint64_t chunk)
{
    uint64_t left = 0;
    bool shared = q->wdb == q->rdb;
    if (shared) uv_mutex_lock(&q->db_mu);
    int rc = sb_store_begin(q->wdb);
    if (rc == 0) rc = sb_store_index(q->wdb, chunk, &left);
    if (rc == 0) rc = sb_store_commit(q->wdb);
    if (rc) {
        sb_store_rollback(q->wdb);
        left = 0;
    }
    if (shared) uv_mutex_unlock(&q->db_mu);
    return left;
}

/* ---- checkpoints ------------------------------------------------------- */

static void on_wal_frames(void *ud, int frames)
{
    ((sb_storeq *)ud)->hook_frames = frames;
}

/* Whether a checkpoint may run now: none running, none failed lately. */
static bool ckpt_free_locked(const sb_storeq *q)
{
    return q->cdb && !q->ckpt_running &&
           (!q->ckpt_retry_ns || uv_hrtime() >= q->ckpt_retry_ns);
}

static bool ckpt_due_locked(const sb_storeq *q)
{
    int behind = q->wal_frames - q->ckpt_done;
    return ckpt_free_locked(q) &&
           (behind >= q->ckpt_frames ||
            (q->wal_frames >= q->ckpt_restart && behind > q->ckpt_tail));
}

static bool restart_due_locked(const sb_storeq *q)
{
    int behind = q->wal_frames - q->ckpt_done;
    return ckpt_free_locked(q) && q->wal_frames >= q->ckpt_restart &&
           (behind <= q->ckpt_tail || q->wal_frames >= 2 * q->ckpt_restart);
}

/* After a commit of the writer's (mu held): notes the WAL's size. */
static void wal_note_locked(sb_storeq *q)
{
    if (!q->cdb) return;
    if (q->hook_frames < q->wal_frames) { /* it started over */
        q->wal_gen++;
        q->ckpt_done = 0;
        q->ckpt_synced = false;
    }
    q->wal_frames = q->hook_frames;
    if (ckpt_due_locked(q)) uv_cond_signal(&q->ccond);
}

/* Runs a checkpoint on s (mu held on entry and exit, released during). */
static void checkpoint_locked(sb_storeq *q, sb_store *s)
{
    assert(!q->ckpt_running);
    q->ckpt_running = true;
    uint64_t gen = q->wal_gen;
    bool sync =
        s == q->cdb && !q->ckpt_synced && q->wal_frames >= q->ckpt_restart;
    uv_mutex_unlock(&q->mu);
    int log = 0, done = 0;
    int rc = sb_store_checkpoint(s, &log, &done);
    if (rc == 0 && sync) rc = sb_store_db_sync(s);
    uv_mutex_lock(&q->mu);
    if (rc == 0 && sync) {
        q->ckpt_syncs++;
        if (gen == q->wal_gen) q->ckpt_synced = true;
    }
    q->ckpt_running = false;
    uv_cond_signal(&q->wcond); /* a writer may wait for it (WAL bound) */
    if (rc == 0 && gen == q->wal_gen && done > q->ckpt_done)
        q->ckpt_done = done;
    if (rc == 0) atomic_fetch_add(&q->checkpoints, 1);
    /* Failed: tried again at the first batch after a pause. */
    uint64_t pause_ms = rc == -EBUSY ? CKPT_BUSY_RETRY_MS : CKPT_RETRY_MS;
    q->ckpt_retry_ns = rc == 0 ? 0 : uv_hrtime() + pause_ms * 1000000;
}

static void ckpt_main(void *arg)
{
    sb_storeq *q = arg;
    prctl(PR_SET_NAME, "sb-checkpoint");
    sb_walvfs_yield_every(CKPT_YIELD_PAGES);
    uv_mutex_lock(&q->mu);
    for (;;) {
        while (!q->stopping && !ckpt_due_locked(q))
            uv_cond_wait(&q->ccond, &q->mu);
        if (q->stopping) break;
        checkpoint_locked(q, q->cdb);
    }
    uv_mutex_unlock(&q->mu);
}

/* ---- counts ------------------------------------------------------------ */

static void wcount_init(wcount *c)
{
    atomic_init(&c->failed, 0);
    atomic_init(&c->stored, 0);
    atomic_init(&c->oldest_ms, 0);
    sb_ahist_init(&c->commit_us, &SB_HIST_US);
    sb_ahist_init(&c->batch_writes, &SB_HIST_COUNT);
}

/* Messages a committed request stored. */
static uint64_t req_stored(const sb_req *r)
{
    if (r->rc != 0) return 0;
    if (r->kind == SB_REQ_MSG_APPEND) return !r->u.append.duplicate;
    if (r->kind == SB_REQ_SERVICE_OPEN && !r->u.svc_open.created) return 0;
    if (r->kind == SB_REQ_CSAT_ASK && !r->u.csat.asked) return 0;
    return r->n_msgs;
}

/* A writer's counts after its batch from first, which took ns (its
 * thread, before the batch goes to the done list). */
static void batch_count(wcount *c, const sb_req *first, bool ok, uint64_t ns)
{
    uint64_t n = 0, stored = 0;
    for (const sb_req *r = first; r; r = r->next) {
        n++;
        stored += ok ? req_stored(r) : 0;
    }
    sb_ahist_add(&c->batch_writes, n);
    if (!ok) {
        atomic_fetch_add(&c->failed, 1);
        return;
    }
    sb_ahist_add(&c->commit_us, ns / 1000);
    atomic_fetch_add(&c->stored, stored);
}

/* After a batch of queue l is done (mu held): its oldest write is the
 * head's, if any. */
static void wcount_next_locked(wcount *c, const req_list *l)
{
    atomic_store(&c->oldest_ms, l->head ? l->head->queued_ms : 0);
}

/* Takes the next batch off l: at most SB_STOREQ_BATCH_MAX requests, in
 * order (mu held). */
static sb_req *batch_take_locked(req_list *l, sb_req **last_out)
{
    sb_req *first = l->head, *last = first;
    for (int n = 1; n < SB_STOREQ_BATCH_MAX && last->next; n++)
        last = last->next;
    l->head = last->next;
    if (!l->head) l->tail = NULL;
    last->next = NULL;
    *last_out = last;
    return first;
}

/* An extra writer: batches of its conversations' writes, nothing else
 * (checkpoints and the search index are SQLite's, on the main writer). */
static void xwriter_main(void *arg)
{
    xwriter *w = arg;
    sb_storeq *q = w->q;
    prctl(PR_SET_NAME, "sb-writer-x");
    uv_mutex_lock(&q->mu);
    for (;;) {
        while ((!w->wq.head || q->hold) && !q->stopping)
            uv_cond_wait(&w->cond, &q->mu);
        if (!w->wq.head) break; /* stopping, and nothing left */
        sb_req *last, *first = batch_take_locked(&w->wq, &last);
        uv_mutex_unlock(&q->mu);
        uint64_t t0 = uv_hrtime();
        bool ok = sb__req_write_batch(w->db, first, &w->scratch);
        batch_count(&w->wc, first, ok, uv_hrtime() - t0);
        atomic_store(&q->healthy, ok);
        if (ok) atomic_fetch_add(&q->commits, 1);
        uv_mutex_lock(&q->mu);
        done_push_locked(q, first, last);
        wcount_next_locked(&w->wc, &w->wq);
    }
    uv_mutex_unlock(&q->mu);
}

static void writer_main(void *arg)
{
    sb_storeq *q = arg;
    uint64_t lag = 1; /* unindexed messages; look once idle at start */
    prctl(PR_SET_NAME, "sb-writer"); /* for top -H and perf */
    uv_mutex_lock(&q->mu);
    for (;;) {
        while ((!q->wq.head || q->hold) && !q->stopping) {
            if (q->probe && !atomic_load(&q->healthy) && !q->hold) {
                /* Out of reach: ask again a second later, so that health
                 * comes back with the database, traffic or none. */
                if (uv_cond_timedwait(&q->wcond, &q->mu,
                                      PROBE_MS * (uint64_t)1000000) !=
                    UV_ETIMEDOUT)
                    continue;
                uv_mutex_unlock(&q->mu);
                atomic_store(&q->healthy, sb_store_ping(q->wdb) == 0);
                uv_mutex_lock(&q->mu);
                continue;
            }
            if (lag == 0 || q->hold) {
                uv_cond_wait(&q->wcond, &q->mu);
                continue;
            }
            /* Idle a moment with messages to index: index a chunk. */
            if (uv_cond_timedwait(&q->wcond, &q->mu,
                                  INDEX_IDLE_MS * (uint64_t)1000000) !=
                UV_ETIMEDOUT)
                continue;
            if (q->wq.head || q->hold || q->stopping) continue;
            uv_mutex_unlock(&q->mu);
            lag = index_chunk(q, INDEX_CHUNK);
            uv_mutex_lock(&q->mu);
            wal_note_locked(q);
        }
        if (!q->wq.head) break; /* stopping, and nothing left */

        sb_req *last, *first = batch_take_locked(&q->wq, &last);
        bool set_pages = q->max_pages_set;
        uint32_t pages = q->max_pages;
        q->max_pages_set = false;
        uv_mutex_unlock(&q->mu);

        bool shared = q->wdb == q->rdb;
        if (shared) uv_mutex_lock(&q->db_mu);
        if (set_pages) sb__store_max_pages(q->wdb, pages);
        uint64_t t0 = uv_hrtime();
        bool ok = sb__req_write_batch(q->wdb, first, &q->scratch);
        batch_count(&q->wc, first, ok, uv_hrtime() - t0);
        atomic_store(&q->healthy, ok);
        if (ok) {
            atomic_fetch_add(&q->commits, 1);
            if (sb_store_index(q->wdb, 0, &lag)) lag = 0;
        }
        if (shared) uv_mutex_unlock(&q->db_mu);

        uv_mutex_lock(&q->mu);
        done_push_locked(q, first, last);
        wcount_next_locked(&q->wc, &q->wq);
        wal_note_locked(q);
        if (lag >= INDEX_LAG_MAX) {
            /* One small chunk per batch: the index gains on the appends
             * without holding the next commit up for long. */
            uv_mutex_unlock(&q->mu);
            lag = index_chunk(q, INDEX_BUSY_CHUNK);
            uv_mutex_lock(&q->mu);
            wal_note_locked(q);
        }
        /* The WAL's bound: past it, wait for a running checkpoint (it
         * falls behind only when the machine is overloaded), then take
         * the rest. */
        while (q->cdb && q->ckpt_running && !q->stopping &&
               q->wal_frames >= 2 * q->ckpt_restart)
            uv_cond_wait(&q->wcond, &q->mu);
        if (restart_due_locked(q)) checkpoint_locked(q, q->wdb);
    }
    uv_mutex_unlock(&q->mu);
}

static void reader_main(void *arg)
{
    sb_storeq *q = arg;
    prctl(PR_SET_NAME, "sb-reader");
    uv_mutex_lock(&q->mu);
    for (;;) {
        while (!q->rq.head && !q->stopping)
            uv_cond_wait(&q->rcond, &q->mu);
        sb_req *r = q->rq.head;
        if (!r) break;
        q->rq.head = r->next;
        if (!q->rq.head) q->rq.tail = NULL;
        r->next = NULL;
        uv_mutex_unlock(&q->mu);

        /* Sharing the writer's connection, a read must not run inside
         * its open transaction: it would see uncommitted writes. */
        bool shared = q->wdb == q->rdb;
        if (shared) uv_mutex_lock(&q->db_mu);
        r->rc = sb__req_ops[r->kind].run(q->rdb, r);
        /* A read that failed for the database's sake says the store does
         * not answer; one that worked says it does. */
        if (r->rc == SB_E_STORE)
            atomic_store(&q->healthy, false);
        else if (r->rc == 0)
            atomic_store(&q->healthy, true);
        if (shared) uv_mutex_unlock(&q->db_mu);

        uv_mutex_lock(&q->mu);
        done_push_locked(q, r, r);
    }
    uv_mutex_unlock(&q->mu);
}

/* Blobs, one at a time: a large one takes its while, on no one's path
 * but the uploads'. */
static void blob_main(void *arg)
{
    sb_storeq *q = arg;
    prctl(PR_SET_NAME, "sb-blob");
    uv_mutex_lock(&q->mu);
    for (;;) {
        while (!q->bq.head && !q->stopping)
            uv_cond_wait(&q->bcond, &q->mu);
        sb_req *r = q->bq.head;
        if (!r) break;
        q->bq.head = r->next;
        if (!q->bq.head) q->bq.tail = NULL;
        r->next = NULL;
        uv_mutex_unlock(&q->mu);
        bool shared = q->bdb == q->wdb;
        if (shared) uv_mutex_lock(&q->db_mu);
        r->rc = sb__req_ops[r->kind].run(q->bdb, r);
        if (shared) uv_mutex_unlock(&q->db_mu);
        uv_mutex_lock(&q->mu);
        done_push_locked(q, r, r);
    }
    uv_mutex_unlock(&q->mu);
}

/* The long reads' thread: its connection is opened at its first read (a
 * server that never makes a report never has it), and kept. */
static void lreader_main(void *arg)
{
    sb_storeq *q = arg;
    prctl(PR_SET_NAME, "sb-reports");
    uv_mutex_lock(&q->mu);
    for (;;) {
        while (!q->lq.head && !q->stopping)
            uv_cond_wait(&q->lcond, &q->mu);
        sb_req *r = q->lq.head;
        if (!r) break;
        q->lq.head = r->next;
        if (!q->lq.head) q->lq.tail = NULL;
        q->lq_len--;
        r->next = NULL;
        uv_mutex_unlock(&q->mu);

        bool shared = q->wdb == q->rdb; /* in memory: the one database */
        if (!shared && !q->ldb &&
            sb_store_open(q->path, q->durability, &q->ldb) != 0)
            q->ldb = NULL;
        sb_store *db = shared ? q->wdb : q->ldb;
        if (shared) uv_mutex_lock(&q->db_mu);
        r->rc = db ? sb__req_ops[r->kind].run(db, r) : SB_E_STORE;
        if (shared) uv_mutex_unlock(&q->db_mu);

        uv_mutex_lock(&q->mu);
        done_push_locked(q, r, r);
    }
    uv_mutex_unlock(&q->mu);
}

/* ---- loop side --------------------------------------------------------- */

/* Runs the callbacks of the requests finished so far, in order. Returns
 * whether there were any. */
static bool drain(sb_storeq *q)
{
    uv_mutex_lock(&q->mu);
    sb_req *r = q->done.head;
    q->done.head = q->done.tail = NULL;
    uv_mutex_unlock(&q->mu);
    if (!r) return false;
    q->in_cb = true;
    while (r) {
        sb_req *next = r->next; /* the callback may free r */
        r->next = NULL;
        assert(q->pending > 0);
        /* The loop is kept alive only while requests are outstanding. */
        if (--q->pending == 0) uv_unref((uv_handle_t *)q->async);
        r->done(r);
        r = next;
    }
    q->in_cb = false;
    return true;
}

static void on_async(uv_async_t *h)
{
    drain(h->data);
}

static void on_async_closed(uv_handle_t *h)
{
    free(h);
}

void sb_storeq_submit(sb_storeq *q, sb_req *req)
{
    assert(q && req && req->done);
    req->next = NULL;
    if (q->pending++ == 0) uv_ref((uv_handle_t *)q->async);
    uv_mutex_lock(&q->mu);
    if (q->joined) {
        req->rc = SB_E_UNAVAILABLE;
        done_push_locked(q, req, req);
    } else if (sb__req_kind_ok(req->kind) && sb__req_ops[req->kind].write) {
        uint64_t conv = sb__req_ops[req->kind].conv(req);
        int w = q->n_xw ? (int)(conv % (uint64_t)(q->n_xw + 1)) : 0;
        wcount *c = w ? &q->xw[w - 1].wc : &q->wc;
        req->queued_ms = uv_now(q->loop);
        if (atomic_load(&c->oldest_ms) == 0)
            atomic_store(&c->oldest_ms, req->queued_ms);
        list_push(w ? &q->xw[w - 1].wq : &q->wq, req);
        uv_cond_signal(w ? &q->xw[w - 1].cond : &q->wcond);
    } else if (sb__req_kind_ok(req->kind) && sb__req_ops[req->kind].blob) {
        list_push(&q->bq, req);
        uv_cond_signal(&q->bcond);
    } else if (sb__req_kind_ok(req->kind) && sb__req_ops[req->kind].long_read) {
        if (q->lq_len == LONG_READS_MAX) {
            req->rc = SB_E_RATE_LIMITED;
            done_push_locked(q, req, req);
        } else {
            q->lq_len++;
            list_push(&q->lq, req);
            uv_cond_signal(&q->lcond);
        }
    } else if (sb__req_kind_ok(req->kind)) {
        list_push(&q->rq, req);
        uv_cond_signal(&q->rcond);
    } else {
        req->rc = SB_E_INVALID;
        done_push_locked(q, req, req);
    }
    uv_mutex_unlock(&q->mu);
}

size_t sb_storeq_pending(const sb_storeq *q)
{
    assert(q);
    return q->pending;
}

uint64_t sb_storeq_commits(const sb_storeq *q)
{
    assert(q);
    return atomic_load(&((sb_storeq *)q)->commits);
}

/* Frees what start built; the async handle, if any, is closed and freed by
 * the loop on its next turn. */
static void storeq_free(sb_storeq *q)
{
    for (int i = 0; i < q->n_xw; i++) {
        sb_store_close(q->xw[i].db);
        sb__req_scratch_free(&q->xw[i].scratch);
        uv_cond_destroy(&q->xw[i].cond);
    }
    sb_store_close(q->cdb);
    if (q->bdb != q->wdb) sb_store_close(q->bdb);
    sb_store_close(q->ldb);
    free(q->path);
    if (q->rdb != q->wdb) sb_store_close(q->rdb);
    sb_store_close(q->wdb); /* the last: it checkpoints the whole WAL */
    if (q->async) {
        q->async->data = NULL;
        uv_close((uv_handle_t *)q->async, on_async_closed);
    }
    sb__req_scratch_free(&q->scratch);
    uv_mutex_destroy(&q->db_mu);
    uv_cond_destroy(&q->lcond);
    uv_cond_destroy(&q->bcond);
    uv_cond_destroy(&q->ccond);
    uv_cond_destroy(&q->rcond);
    uv_cond_destroy(&q->wcond);
    uv_mutex_destroy(&q->mu);
    free(q);
}

static void threads_stop(sb_storeq *q, bool writer, bool reader, bool ckpt,
                         bool blober, bool lreader)
{
    uv_mutex_lock(&q->mu);
    q->stopping = true;
    uv_cond_broadcast(&q->wcond);
    uv_cond_broadcast(&q->rcond);
    uv_cond_broadcast(&q->ccond);
    uv_cond_broadcast(&q->bcond);
    uv_cond_broadcast(&q->lcond);
    for (int i = 0; i < q->n_xw; i++)
        uv_cond_broadcast(&q->xw[i].cond);
    uv_mutex_unlock(&q->mu);
    for (int i = 0; i < q->n_xw; i++)
        uv_thread_join(&q->xw[i].thread);
    if (writer) uv_thread_join(&q->writer);
    if (reader) uv_thread_join(&q->reader);
    if (ckpt) uv_thread_join(&q->ckpt);
    if (blober) uv_thread_join(&q->blober);
    if (lreader) uv_thread_join(&q->lreader);
    uv_mutex_lock(&q->mu);
    q->joined = true;
    uv_mutex_unlock(&q->mu);
}

/* The extra writers of a database several writers share; on failure the
 * ones started keep running until threads_stop. */
static int xwriters_start(sb_storeq *q, const char *path, sb_durability d,
                          int writers)
{
    for (int i = 0; i < writers - 1; i++) {
        xwriter *w = &q->xw[i];
        w->q = q;
        wcount_init(&w->wc);
        int rc = uv_cond_init(&w->cond);
        if (rc) return rc;
        if ((rc = sb_store_open(path, d, &w->db)) ||
            (rc = sb__req_scratch_init(&w->scratch, SB_STOREQ_BATCH_MAX)) ||
            (rc = uv_thread_create(&w->thread, xwriter_main, w))) {
            sb_store_close(w->db);
            sb__req_scratch_free(&w->scratch);
            uv_cond_destroy(&w->cond);
            return rc;
        }
        q->n_xw++;
    }
    return 0;
}

int sb_storeq_start(uv_loop_t *loop, const char *path, sb_durability d,
                    sb_storeq **out)
{
    return sb_storeq_start_writers(loop, path, d, 0, out);
}

int sb_storeq_start_writers(uv_loop_t *loop, const char *path, sb_durability d,
                            int writers, sb_storeq **out)
{
    assert(loop && path && out);
    assert(writers >= 0 && writers <= SB_STOREQ_WRITERS_MAX);
    if (writers == 0) writers = SB_STOREQ_PG_WRITERS;
    *out = NULL;
    sb_storeq *q = calloc(1, sizeof *q);
    if (!q) return -ENOMEM;
    q->loop = loop;
    for (int k = 0; k < SB_REQ__COUNT; k++)
        assert(sb__req_ops[k].run && sb__req_ops[k].undo);
    atomic_init(&q->commits, 0);
    atomic_init(&q->checkpoints, 0);
    atomic_init(&q->healthy, true);
    wcount_init(&q->wc);
    q->ckpt_frames = CKPT_FRAMES;
    q->ckpt_tail = CKPT_TAIL_FRAMES;
    q->ckpt_restart = CKPT_RESTART_FRAMES;
    int rc = uv_mutex_init(&q->mu);
    if (rc) goto err_mu;
    if ((rc = uv_cond_init(&q->wcond))) goto err_wcond;
    if ((rc = uv_cond_init(&q->rcond))) goto err_rcond;
    if ((rc = uv_cond_init(&q->ccond))) goto err_ccond;
    if ((rc = uv_cond_init(&q->bcond))) goto err_bcond;
    if ((rc = uv_cond_init(&q->lcond))) goto err_lcond;
    if ((rc = uv_mutex_init(&q->db_mu))) goto err_db_mu;
    q->durability = d;
    if (!(q->path = strdup(path))) {
        rc = -ENOMEM;
        goto err;
    }

    /* The writer's connection first: it creates the schema. A second
     * connection to ":memory:" (or to "", a private temporary file) would
     * be another database: there both threads share the one. */
    bool mem = path[0] == '\0' || strcmp(path, ":memory:") == 0;
    if ((rc = sb_store_open(path, d, &q->wdb))) goto err;
    if (mem)
        q->rdb = q->bdb = q->wdb;
    else if ((rc = sb_store_open(path, d, &q->rdb)) ||
             (rc = sb_store_open(path, d, &q->cdb)) ||
             (rc = sb_store_open(path, d, &q->bdb)))
        goto err;
    /* A database without a WAL to watch needs no checkpointer. */
    if (q->cdb && sb_store_wal_watch(q->wdb, on_wal_frames, q) != 0) {
        sb_store_close(q->cdb);
        q->cdb = NULL;
    }
    if ((rc = sb_store_cache(q->wdb, WRITER_CACHE_KIB))) goto err;
    q->probe = sb_store_ping(q->wdb) != -ENOTSUP;
    q->async = malloc(sizeof *q->async);
    if (!q->async) {
        rc = -ENOMEM;
        goto err;
    }
    if ((rc = uv_async_init(loop, q->async, on_async))) {
        free(q->async);
        q->async = NULL;
        goto err;
    }
    q->async->data = q;
    uv_unref((uv_handle_t *)q->async); /* nothing pending yet */

    if ((rc = sb__req_scratch_init(&q->scratch, SB_STOREQ_BATCH_MAX))) goto err;
    if ((rc = uv_thread_create(&q->writer, writer_main, q))) goto err;
    if ((rc = uv_thread_create(&q->reader, reader_main, q))) {
        threads_stop(q, true, false, false, false, false);
        goto err;
    }
    if ((rc = uv_thread_create(&q->ckpt, ckpt_main, q))) {
        threads_stop(q, true, true, false, false, false);
        goto err;
    }
    if ((rc = uv_thread_create(&q->blober, blob_main, q))) {
        threads_stop(q, true, true, true, false, false);
        goto err;
    }
    if ((rc = uv_thread_create(&q->lreader, lreader_main, q))) {
        threads_stop(q, true, true, true, true, false);
        goto err;
    }
    if (sb_store_is_url(path) && (rc = xwriters_start(q, path, d, writers))) {
        threads_stop(q, true, true, true, true, true);
        goto err;
    }
    *out = q;
    return 0;

err:
    storeq_free(q);
    return rc;
err_db_mu:
    uv_cond_destroy(&q->lcond);
err_lcond:
    uv_cond_destroy(&q->bcond);
err_bcond:
    uv_cond_destroy(&q->ccond);
err_ccond:
    uv_cond_destroy(&q->rcond);
err_rcond:
    uv_cond_destroy(&q->wcond);
err_wcond:
    uv_mutex_destroy(&q->mu);
err_mu:
    free(q);
    return rc;
}

/* Callbacks that submit more requests while this runs get them completed
 * at once with SB_E_UNAVAILABLE once the threads are gone. */
void sb_storeq_stop(sb_storeq *q)
{
    if (!q) return;
    assert(!q->in_cb); /* q would be freed under its own callback */
    threads_stop(q, true, true, true, true, true);
    while (drain(q)) {
    }
    assert(q->pending == 0);
    storeq_free(q);
}

void sb__storeq_hold(sb_storeq *q, bool hold)
{
    assert(q);
    uv_mutex_lock(&q->mu);
    q->hold = hold;
    uv_cond_signal(&q->wcond);
    for (int i = 0; i < q->n_xw; i++)
        uv_cond_signal(&q->xw[i].cond);
    uv_mutex_unlock(&q->mu);
}

void sb__storeq_ckpt_limits(sb_storeq *q, int frames, int tail, int restart)
{
    assert(q && frames > 0 && tail >= 0 && restart > tail);
    uv_mutex_lock(&q->mu);
    q->ckpt_frames = frames;
    q->ckpt_tail = tail;
    q->ckpt_restart = restart;
    uv_mutex_unlock(&q->mu);
}

uint64_t sb__storeq_ckpt_syncs(sb_storeq *q)
{
    assert(q);
    uv_mutex_lock(&q->mu);
    uint64_t n = q->ckpt_syncs;
    uv_mutex_unlock(&q->mu);
    return n;
}

/* The writers' counts (the main one's, then the others'). */
static const wcount *writer_count(const sb_storeq *q, int i)
{
    return i == 0 ? &q->wc : &q->xw[i - 1].wc;
}

uint64_t sb_storeq_write_wait_ms(const sb_storeq *q)
{
    assert(q);
    uint64_t oldest = 0;
    for (int i = 0; i <= q->n_xw; i++) {
        uint64_t o = atomic_load(&((wcount *)writer_count(q, i))->oldest_ms);
        if (o && (!oldest || o < oldest)) oldest = o;
    }
    uint64_t now = uv_now(q->loop);
    return oldest && now > oldest ? now - oldest : 0;
}

void sb_storeq_get_stats(const sb_storeq *q, sb_storeq_stats *out)
{
    assert(q);
    sb_storeq *m = (sb_storeq *)q; /* atomics are read through it */
    memset(out, 0, sizeof *out);
    out->commits = atomic_load(&m->commits);
    out->checkpoints = atomic_load(&m->checkpoints);
    sb_hist_init(&out->commit_us, &SB_HIST_US);
    sb_hist_init(&out->batch_writes, &SB_HIST_COUNT);
    for (int i = 0; i <= q->n_xw; i++) {
        wcount *c = (wcount *)writer_count(q, i);
        sb_hist h;
        out->failed_batches += atomic_load(&c->failed);
        out->messages_stored += atomic_load(&c->stored);
        sb_ahist_read(&c->commit_us, &h);
        sb_hist_merge(&out->commit_us, &h);
        sb_ahist_read(&c->batch_writes, &h);
        sb_hist_merge(&out->batch_writes, &h);
    }
    out->pending = q->pending;
    out->write_wait_ms = sb_storeq_write_wait_ms(q);
    out->healthy = atomic_load(&m->healthy);
}

bool sb_storeq_healthy(const sb_storeq *q)
{
    assert(q);
    return atomic_load(&((sb_storeq *)q)->healthy);
}

uint64_t sb_storeq_checkpoints(const sb_storeq *q)
{
    assert(q);
    return atomic_load(&((sb_storeq *)q)->checkpoints);
}

void sb__storeq_max_pages(sb_storeq *q, uint32_t pages)
{
    assert(q);
    uv_mutex_lock(&q->mu);
    q->max_pages = pages;
    q->max_pages_set = true;
    uv_mutex_unlock(&q->mu);
}
