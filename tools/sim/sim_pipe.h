/* One direction of a simulated connection: the bytes written, each write
 * due at the receiver at its own time (never before the bytes written
 * earlier), and a stall that holds everything back for a while. The
 * receiver takes what is due in chunks of any size, so that frames arrive
 * split anywhere; a cut clears what was still on the way, mid-frame or
 * not. */
#ifndef SIM_PIPE_H
#define SIM_PIPE_H

#include <stddef.h>
#include <stdint.h>

#include "sb_buf.h"

typedef struct sim_pipe_seg {
    int64_t due;
    size_t len;
} sim_pipe_seg;

typedef struct sim_pipe {
    sb_buf bytes;
    sim_pipe_seg *segs;
    size_t nseg, cap;
    int64_t stall_until; /* nothing is due before this */
} sim_pipe;

/* Queues n bytes due at due (or with the bytes before them, if later).
 * Returns 0 or -ENOMEM. */
int sim_pipe_write(sim_pipe *p, const uint8_t *b, size_t n, int64_t due);
/* The bytes due at now: their count, *b pointing at them (valid until the
 * next call on p). */
size_t sim_pipe_due(const sim_pipe *p, int64_t now, const uint8_t **b);
/* Drops the first n bytes (those the receiver took). */
void sim_pipe_consume(sim_pipe *p, size_t n);
/* Drops everything on the way (a cut). */
void sim_pipe_clear(sim_pipe *p);
/* Bytes on the way. */
size_t sim_pipe_len(const sim_pipe *p);
void sim_pipe_free(sim_pipe *p);

#endif
