/* splitmix64 (sim_rng.h). */
#include "sim_rng.h"

#include <assert.h>

void sim_rng_seed(sim_rng *r, uint64_t seed)
{
    r->s = seed ^ 0x5deece66dull;
}

uint64_t sim_rng_next(sim_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint32_t sim_rng_below(sim_rng *r, uint32_t n)
{
    assert(n > 0);
    return (uint32_t)(sim_rng_next(r) % n);
}

int64_t sim_rng_range(sim_rng *r, int64_t lo, int64_t hi)
{
    assert(lo <= hi);
    return lo + (int64_t)(sim_rng_next(r) % (uint64_t)(hi - lo + 1));
}

bool sim_rng_chance(sim_rng *r, uint32_t per_million)
{
    return sim_rng_next(r) % 1000000u < per_million;
}
