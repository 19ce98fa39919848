/* Fixed-bucket histograms: the bucket of a value by a linear scan of at
 * most SB_HIST_BOUNDS_MAX bounds. */
#include "sb_hist.h"

#include <assert.h>
#include <string.h>

static const uint64_t MS[] = {1,   2,   5,    10,   25,   50,   100,
                              250, 500, 1000, 2500, 5000, 10000};
static const uint64_t US[] = {100,    250,    500,     1000,    2500,
                              5000,   10000,  25000,   50000,   100000,
                              250000, 500000, 1000000, 2500000, 5000000};
static const uint64_t COUNT[] = {1,   2,   4,   8,    16,   32,  64,
                                 128, 256, 512, 1024, 2048, 4096};
static const uint64_t HUMAN_MS[] = {
    5000,    10000,   30000,   60000,    120000,   300000,  600000,
    1800000, 3600000, 7200000, 14400000, 28800000, 86400000};

#define BOUNDS(a)                                                              \
    {                                                                          \
        a, sizeof a / sizeof a[0]                                              \
    }
const sb_hist_bounds SB_HIST_MS = BOUNDS(MS);
const sb_hist_bounds SB_HIST_US = BOUNDS(US);
const sb_hist_bounds SB_HIST_COUNT = BOUNDS(COUNT);
const sb_hist_bounds SB_HIST_HUMAN_MS = BOUNDS(HUMAN_MS);

static size_t bucket(const sb_hist_bounds *b, uint64_t v)
{
    size_t i = 0;
    while (i < b->n && v > b->le[i])
        i++;
    return i;
}

void sb_hist_init(sb_hist *h, const sb_hist_bounds *b)
{
    assert(b->n <= SB_HIST_BOUNDS_MAX);
    memset(h, 0, sizeof *h);
    h->bounds = b;
}

void sb_hist_add(sb_hist *h, uint64_t v)
{
    h->counts[bucket(h->bounds, v)]++;
    h->sum += v;
}

uint64_t sb_hist_count(const sb_hist *h)
{
    uint64_t n = 0;
    for (size_t i = 0; i <= h->bounds->n; i++)
        n += h->counts[i];
    return n;
}

void sb_hist_merge(sb_hist *into, const sb_hist *from)
{
    assert(into->bounds == from->bounds);
    for (size_t i = 0; i <= into->bounds->n; i++)
        into->counts[i] += from->counts[i];
    into->sum += from->sum;
}

void sb_ahist_init(sb_ahist *h, const sb_hist_bounds *b)
{
    assert(b->n <= SB_HIST_BOUNDS_MAX);
    h->bounds = b;
    for (size_t i = 0; i <= SB_HIST_BOUNDS_MAX; i++)
        atomic_init(&h->counts[i], 0);
    atomic_init(&h->sum, 0);
}

/* One writer: a load and a store, no read-modify-write instruction. */
static void bump(atomic_uint_fast64_t *a, uint64_t by)
{
    atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + by,
                          memory_order_relaxed);
}

void sb_ahist_add(sb_ahist *h, uint64_t v)
{
    bump(&h->counts[bucket(h->bounds, v)], 1);
    bump(&h->sum, v);
}

void sb_ahist_read(const sb_ahist *h, sb_hist *out)
{
    sb_hist_init(out, h->bounds);
    for (size_t i = 0; i <= h->bounds->n; i++)
        out->counts[i] = atomic_load_explicit(&((sb_ahist *)h)->counts[i],
                                              memory_order_relaxed);
    out->sum =
        atomic_load_explicit(&((sb_ahist *)h)->sum, memory_order_relaxed);
}
