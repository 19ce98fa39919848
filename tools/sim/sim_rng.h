/* The simulator's one source of randomness: a seeded splitmix64. Every
 * choice a run makes (schedules, faults, bodies, client_msg_ids, masking
 * keys) comes from it, so that a seed replays the same run exactly. */
#ifndef SIM_RNG_H
#define SIM_RNG_H

#include <stdbool.h>
#include <stdint.h>

typedef struct sim_rng {
    uint64_t s;
} sim_rng;

void sim_rng_seed(sim_rng *r, uint64_t seed);
uint64_t sim_rng_next(sim_rng *r);
/* A number in [0, n); n > 0. */
uint32_t sim_rng_below(sim_rng *r, uint32_t n);
/* A number in [lo, hi]; lo <= hi. */
int64_t sim_rng_range(sim_rng *r, int64_t lo, int64_t hi);
/* True with probability per_million / 1,000,000. */
bool sim_rng_chance(sim_rng *r, uint32_t per_million);

#endif
