/* The store behind a simulated queue: a real SQLite store (in memory),
 * so that what is committed is real, with the timing and the failures of
 * a store under load. Writes wait in a queue and are applied in batches,
 * one transaction each, through the same code the server's writer runs
 * (sb__req_write_batch); a batch's commit fails now and then (through
 * SQLite's commit hook, so the store's own rollback path runs), and its
 * completions come back late. Reads run on the committed state, late or
 * failed. A crash drops every request the store holds: those not
 * committed are gone, those committed keep their effect and never answer.
 *
 * Requests complete (their done callback runs) only from sim_store_step
 * and sim_store_crash, never from sim_store_submit. */
#ifndef SIM_STORE_H
#define SIM_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "sb_req.h"
#include "sb_store.h"
#include "sim_rng.h"
#include "sim_trace.h"

typedef struct sim_store sim_store;

/* Fault rates, in millionths per step (10 ms), and how long things take. */
typedef struct sim_store_faults {
    uint32_t stall_per_m;       /* the writer stops for a while */
    uint32_t commit_fail_per_m; /* the next batch's commit fails */
    uint32_t read_fail_per_m;   /* the next read fails */
} sim_store_faults;

/* A store in memory. Returns 0 or a negative code. */
int sim_store_new(sim_rng *rng, sim_trace *tr, sim_store **out);
void sim_store_free(sim_store *s);
/* The store of record itself, for checks (reads only). */
sb_store *sim_store_db(sim_store *s);

/* Queues r (the server's io.store). */
void sim_store_submit(sim_store *s, sb_req *r, int64_t now);
/* Does what is due at now: commits a batch, runs reads, completes what
 * is done; with faults (NULL: none). */
void sim_store_step(sim_store *s, int64_t now, const sim_store_faults *faults);
/* The server died: every request the store holds completes with
 * SB_E_STORE (the server being gone, nobody hears of it; its memory is
 * freed by its done callback); those submitted meanwhile too. */
void sim_store_crash(sim_store *s);
/* Requests held (queued or awaiting completion). */
size_t sim_store_pending(const sim_store *s);
/* Batches committed, and failed, so far. */
uint64_t sim_store_commits(const sim_store *s);
uint64_t sim_store_failures(const sim_store *s);
/* Batches that failed with no failure injected: an in-memory store fails
 * only when told to, so any is a bug. */
uint64_t sim_store_unexpected(const sim_store *s);

#endif
