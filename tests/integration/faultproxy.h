/* A TCP proxy with faults, on the test's libuv loop, between real clients
 * and the real server on loopback: each chunk read is passed on after a
 * delay (in order), and now and then a direction stalls for a while, a
 * connection is reset (RST both ways), or cut after part of a chunk (FIN
 * both ways, mid-frame). Its choices come from its own seeded PRNG.
 * Packet loss proper needs the kernel (tc netem), which TCP turns into
 * delay: the delays stand in for it. */
#ifndef FAULTPROXY_H
#define FAULTPROXY_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct fp_faults {
    int latency_ms_max; /* each chunk waits 0..this */
    /* Chances per chunk passed on, in millionths. */
    uint32_t stall_ppm;
    uint32_t reset_ppm;
    uint32_t cut_ppm;
    int stall_ms_max; /* a stall lasts 1..this */
} fp_faults;

typedef struct fp_stats {
    uint64_t conns, chunks, bytes;
    uint64_t stalls, resets, cuts;
} fp_stats;

typedef struct faultproxy faultproxy;

/* Listens on 127.0.0.1 (a free port) and passes connections to
 * upstream_port, with faults. Returns 0 or -1. */
int fp_start(uv_loop_t *loop, uint16_t upstream_port, uint64_t seed,
             const fp_faults *faults, faultproxy **out);
uint16_t fp_port(const faultproxy *p);
/* The faults from now on (all zero: a plain proxy). */
void fp_set(faultproxy *p, const fp_faults *faults);
void fp_get_stats(const faultproxy *p, fp_stats *out);
/* Resets one connection, chosen at random (none if there is none). */
void fp_reset_one(faultproxy *p);
/* Closes the listener and every connection; the proxy is freed once the
 * loop has run their closes (run it a little before uv_loop_close). */
void fp_stop(faultproxy *p);

#endif
