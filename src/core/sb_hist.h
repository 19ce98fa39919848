/* Histograms with fixed bucket bounds, for metrics: a count per bucket and
 * the sum of the values, in whatever unit the caller measures (ms, us,
 * requests). Adding a value costs a short scan and two additions: no
 * lock, no allocation, no system call. sb_hist belongs to one thread;
 * sb_ahist has one writer thread and any number of reader threads
 * (relaxed atomics: a reader may see a value in the sum before its
 * bucket, never a torn number). No I/O. */
#ifndef SB_HIST_H
#define SB_HIST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SB_HIST_BOUNDS_MAX 16

/* Bucket bounds: ascending upper bounds (inclusive); values above the last
 * go to the overflow bucket. Static: histograms point at them. */
typedef struct sb_hist_bounds {
    const uint64_t *le;
    size_t n; /* at most SB_HIST_BOUNDS_MAX */
} sb_hist_bounds;

/* Latencies in ms, 1 ms to 10 s. */
extern const sb_hist_bounds SB_HIST_MS;
/* Latencies in us, 100 us to 5 s. */
extern const sb_hist_bounds SB_HIST_US;
/* Sizes (requests, messages), 1 to 4096 by powers of two. */
extern const sb_hist_bounds SB_HIST_COUNT;
/* Human waits in ms, 5 s to 24 h (queues, first response, resolution). */
extern const sb_hist_bounds SB_HIST_HUMAN_MS;

typedef struct sb_hist {
    const sb_hist_bounds *bounds;
    uint64_t counts[SB_HIST_BOUNDS_MAX + 1]; /* per bucket, overflow last */
    uint64_t sum;
} sb_hist;

void sb_hist_init(sb_hist *h, const sb_hist_bounds *b);
void sb_hist_add(sb_hist *h, uint64_t v);
/* Values added so far. */
uint64_t sb_hist_count(const sb_hist *h);
/* Adds from's counts and sum into into (the same bounds). */
void sb_hist_merge(sb_hist *into, const sb_hist *from);

typedef struct sb_ahist {
    const sb_hist_bounds *bounds;
    atomic_uint_fast64_t counts[SB_HIST_BOUNDS_MAX + 1];
    atomic_uint_fast64_t sum;
} sb_ahist;

void sb_ahist_init(sb_ahist *h, const sb_hist_bounds *b);
/* The writer thread only. */
void sb_ahist_add(sb_ahist *h, uint64_t v);
/* A copy as of now, for any thread. */
void sb_ahist_read(const sb_ahist *h, sb_hist *out);

#endif
