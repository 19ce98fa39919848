/* The store's threads: a writer that applies write requests (sb_req.h) in
 * batches, one transaction and one commit (fsync) per batch (group commit),
 * and a reader that answers read requests on its own connection (WAL lets
 * it run beside the writer). Requests are submitted from the loop thread
 * and completed there: each request's done callback runs on the loop
 * thread, through a uv_async. */
#ifndef SB_STOREQ_H
#define SB_STOREQ_H

#include <uv.h>

#include "sb_hist.h"
#include "sb_req.h"
#include "sb_store.h"

#define SB_STOREQ_BATCH_MAX 4096 /* writes per transaction */
/* Writers on a database several may share (PostgreSQL): one commits while
 * another prepares its batch. SQLite has one. */
#define SB_STOREQ_WRITERS_MAX 4
#define SB_STOREQ_PG_WRITERS 2 /* the default */

typedef struct sb_storeq sb_storeq;

/* Opens two connections to path and starts the writer and reader threads
 * (on PostgreSQL, SB_STOREQ_PG_WRITERS writers, each taking the writes of
 * its share of the conversations: a conversation's writes keep their
 * order, not all writes).
 * For ":memory:" (tests, demos) both threads share one connection, taking
 * turns: a read waits for the batch being written, and reads never see an
 * uncommitted write. The queue keeps the loop alive only while requests
 * are pending. Returns 0 or a negative code; on failure nothing is left
 * running. */
int sb_storeq_start(uv_loop_t *loop, const char *path, sb_durability d,
                    sb_storeq **out);
/* The same with the number of writers on a database several may share:
 * 1 to SB_STOREQ_WRITERS_MAX, or 0 for SB_STOREQ_PG_WRITERS. */
int sb_storeq_start_writers(uv_loop_t *loop, const char *path, sb_durability d,
                            int writers, sb_storeq **out);

/* Queues req (loop thread only). Can't fail: a request the store cannot
 * carry out completes with req->rc set. Requests complete (req->done runs)
 * in completion order; the writes of one writer in submission order. */
void sb_storeq_submit(sb_storeq *q, sb_req *req);

/* Number of requests submitted and not yet completed. */
size_t sb_storeq_pending(const sb_storeq *q);

/* Finishes every queued request (their callbacks run, from within this
 * call), stops the threads, closes the connections and frees q. Loop
 * thread only, never from a done callback; accepts NULL. A request
 * submitted by a callback during stop completes with SB_E_UNAVAILABLE.
 * It does not run the loop (uv_run must not be re-entered from a callback):
 * its uv_async handle is closed and freed on the loop's next turn, so run
 * the loop once more before uv_loop_close. */
void sb_storeq_stop(sb_storeq *q);

/* Applies one request synchronously on the given connection, outside any
 * batching: what the threads do for each request, for tests and tools.
 * Writes are wrapped in their own transaction. req->done is not called. */
void sb_storeq_apply(sb_store *s, sb_req *req);

/* Whether the store answers: false from a batch that could not commit or
 * a read that failed for the database's sake (a full disk, a database out
 * of reach) until one succeeds; a database that can be out of reach is
 * also asked every second while idle, so that health comes back without
 * traffic. Any thread. */
bool sb_storeq_healthy(const sb_storeq *q);

/* What the store's threads count, for metrics. */
typedef struct sb_storeq_stats {
    uint64_t commits, checkpoints;
    uint64_t failed_batches;  /* batches that could not commit */
    uint64_t messages_stored; /* by committed batches, duplicates not */
    sb_hist commit_us;        /* a batch, begin to commit (its fsync) */
    sb_hist batch_writes;     /* write requests per batch */
    size_t pending;           /* requests submitted, not completed */
    uint64_t write_wait_ms;   /* sb_storeq_write_wait_ms() */
    bool healthy;             /* sb_storeq_healthy() */
} sb_storeq_stats;

/* A copy of the counts as of now: lock-free reads of what the threads
 * count. Loop thread. */
void sb_storeq_get_stats(const sb_storeq *q, sb_storeq_stats *out);

/* How long the oldest write not yet completed has waited, in ms (0: none
 * waits): a store that is behind or stuck (a commit that does not end)
 * shows here long before anything fails. Loop thread. */
uint64_t sb_storeq_write_wait_ms(const sb_storeq *q);

/* Number of write transactions committed so far (any thread). */
uint64_t sb_storeq_commits(const sb_storeq *q);
/* Checkpoints finished so far, by either thread (for tests and stats). */
uint64_t sb_storeq_checkpoints(const sb_storeq *q);

/* ---- test hooks -------------------------------------------------------- */

/* While held, the writer starts no new batch (requests queue up); release
 * to let it take them all at once. Stop overrides a hold. */
void sb__storeq_hold(sb_storeq *q, bool hold);
/* Test hook: the checkpoint thresholds (frames waiting before a
 * checkpoint, the tail the writer copies itself, the WAL size from which
 * it does), instead of the defaults in sb_storeq.c. */
void sb__storeq_ckpt_limits(sb_storeq *q, int frames, int tail, int restart);
/* How many times the checkpointer has synced the database file ahead of a
 * WAL's restart. */
uint64_t sb__storeq_ckpt_syncs(sb_storeq *q);
/* Applies sb__store_max_pages(pages) to the writer's connection before its
 * next batch. */
void sb__storeq_max_pages(sb_storeq *q, uint32_t pages);

#endif
