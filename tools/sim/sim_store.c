/* The store behind a simulated queue (sim_store.h). */
#include "sim_store.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_req_int.h"
#include "sb_sqlite_int.h"
#include "sb_storeq.h"

#define STORE_BATCH_MAX 64    /* writes per transaction */
#define STORE_HELD_MAX 100000 /* requests held: a runaway is a bug */

typedef struct held {
    sb_req *r;
    int64_t due;
} held;

typedef struct held_q {
    held *v;
    size_t n, cap;
} held_q;

struct sim_store {
    sb_store *db;
    sim_rng *rng;
    sim_trace *tr;
    sb__req_scratch x;
    sb_req *wq, *wq_tail; /* writes awaiting a batch, in order */
    size_t nw;
    held_q reads; /* reads awaiting their turn */
    held_q done;  /* writes applied, awaiting their completion, in order */
    int64_t next_batch_ms;
    bool fail_next_commit, fail_next_read;
    uint64_t commits, failures, unexpected;
};

static int push(held_q *q, sb_req *r, int64_t due)
{
    assert(q->n < STORE_HELD_MAX);
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        held *v = realloc(q->v, cap * sizeof *v);
        if (!v) return -ENOMEM;
        q->v = v;
        q->cap = cap;
    }
    q->v[q->n++] = (held){r, due};
    return 0;
}

static sb_req *take(held_q *q, size_t i)
{
    sb_req *r = q->v[i].r;
    memmove(q->v + i, q->v + i + 1, (q->n - i - 1) * sizeof *q->v);
    q->n--;
    return r;
}

/* SQLite's commit hook: a non-zero answer turns the COMMIT into a
 * ROLLBACK, as a commit that cannot reach the disk does. */
static int commit_hook(void *ud)
{
    sim_store *s = ud;
    if (!s->fail_next_commit) return 0;
    s->fail_next_commit = false;
    return 1;
}

int sim_store_new(sim_rng *rng, sim_trace *tr, sim_store **out)
{
    *out = NULL;
    sim_store *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->rng = rng;
    s->tr = tr;
    int rc = sb_store_open(":memory:", SB_DURABILITY_OS, &s->db);
    if (rc == 0) rc = sb__req_scratch_init(&s->x, STORE_BATCH_MAX);
    if (rc) {
        sim_store_free(s);
        return rc;
    }
    sqlite3_commit_hook(sb__sqlite(s->db)->db, commit_hook, s);
    *out = s;
    return 0;
}

void sim_store_free(sim_store *s)
{
    if (!s) return;
    assert(sim_store_pending(s) == 0);
    sb_store_close(s->db);
    sb__req_scratch_free(&s->x);
    free(s->reads.v);
    free(s->done.v);
    free(s);
}

sb_store *sim_store_db(sim_store *s)
{
    return s->db;
}

void sim_store_submit(sim_store *s, sb_req *r, int64_t now)
{
    r->next = NULL;
    if (sb_req_is_write(r->kind)) {
        if (s->wq_tail)
            s->wq_tail->next = r;
        else
            s->wq = r;
        s->wq_tail = r;
        s->nw++;
        return;
    }
    if (push(&s->reads, r, now + sim_rng_range(s->rng, 0, 15)) != 0) {
        r->rc = -ENOMEM; /* completes at the next step, failed */
        (void)push(&s->done, r, now);
    }
}

/* Takes up to STORE_BATCH_MAX writes off the queue as a chain. */
static sb_req *batch_take(sim_store *s, size_t *n)
{
    sb_req *head = s->wq, *last = NULL;
    *n = 0;
    for (sb_req *r = head; r && *n < STORE_BATCH_MAX; r = r->next) {
        last = r;
        ++*n;
    }
    s->wq = last->next;
    if (!s->wq) s->wq_tail = NULL;
    last->next = NULL;
    s->nw -= *n;
    return head;
}

static void complete(sb_req *r)
{
    r->next = NULL;
    r->done(r);
}

void sim_store_step(sim_store *s, int64_t now, const sim_store_faults *f)
{
    if (f && sim_rng_chance(s->rng, f->stall_per_m)) {
        s->next_batch_ms = now + sim_rng_range(s->rng, 300, 3000);
        sim_tracef(s->tr, now, "store: writer stalls until %lld.%03lld",
                   (long long)(s->next_batch_ms / 1000),
                   (long long)(s->next_batch_ms % 1000));
    }
    if (f && sim_rng_chance(s->rng, f->commit_fail_per_m))
        s->fail_next_commit = true;
    if (f && sim_rng_chance(s->rng, f->read_fail_per_m))
        s->fail_next_read = true;
    if (s->wq && now >= s->next_batch_ms) {
        size_t n;
        bool fail = s->fail_next_commit;
        sb_req *batch = batch_take(s, &n);
        bool ok = sb__req_write_batch(s->db, batch, &s->x);
        if (ok)
            s->commits++;
        else
            s->failures++;
        if (!ok && !fail) s->unexpected++; /* failed though not told to */
        sim_tracef(s->tr, now, "store: batch of %zu writes %s", n,
                   ok ? "committed" : "failed to commit");
        int64_t due = now + sim_rng_range(s->rng, 0, 20);
        if (s->done.n && s->done.v[s->done.n - 1].due > due)
            due = s->done.v[s->done.n - 1].due; /* writes answer in order */
        for (sb_req *r = batch, *next; r; r = next) {
            next = r->next;
            r->next = NULL;
            if (push(&s->done, r, due) != 0) complete(r);
        }
        s->next_batch_ms = now + sim_rng_range(s->rng, 0, 30);
    }
    for (size_t i = 0; i < s->reads.n;) {
        if (s->reads.v[i].due > now) {
            i++;
            continue;
        }
        sb_req *r = take(&s->reads, i);
        if (s->fail_next_read) {
            s->fail_next_read = false;
            r->rc = SB_E_STORE;
            sim_tracef(s->tr, now, "store: a read fails");
        } else {
            sb_storeq_apply(s->db, r);
        }
        complete(r); /* may submit more: i stays, the rest moved up */
    }
    while (s->done.n && s->done.v[0].due <= now)
        complete(take(&s->done, 0));
}

void sim_store_crash(sim_store *s)
{
    for (;;) {
        sb_req *r;
        if (s->done.n) {
            r = take(&s->done, 0); /* committed: its effect stays */
            r->rc = SB_E_STORE;
        } else if (s->reads.n) {
            r = take(&s->reads, 0);
            r->rc = SB_E_STORE;
        } else if (s->wq) {
            r = s->wq; /* never applied */
            s->wq = r->next;
            if (!s->wq) s->wq_tail = NULL;
            s->nw--;
            r->rc = SB_E_STORE;
            sb__req_ops[r->kind].undo(r);
        } else {
            break;
        }
        complete(r);
    }
    s->fail_next_commit = s->fail_next_read = false;
    s->next_batch_ms = 0;
}

size_t sim_store_pending(const sim_store *s)
{
    return s->nw + s->reads.n + s->done.n;
}

uint64_t sim_store_commits(const sim_store *s)
{
    return s->commits;
}

uint64_t sim_store_failures(const sim_store *s)
{
    return s->failures;
}

uint64_t sim_store_unexpected(const sim_store *s)
{
    return s->unexpected;
}
