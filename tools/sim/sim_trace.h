/* A run's trace: one line per event, with its simulated time, kept only
 * when tracing is on (a run with a violation is run again with it on, and
 * `sbsim --seed N` traces). The hash of the lines says whether two runs of
 * a seed were the same run. */
#ifndef SIM_TRACE_H
#define SIM_TRACE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "sb_buf.h"

typedef struct sim_trace {
    bool on;
    sb_buf text;
    uint64_t hash; /* FNV-1a of the text */
    uint64_t lines;
} sim_trace;

/* A line at time now_ms (the run's clock), when tracing is on. */
#define sim_tracef(tr, now_ms, ...)                                            \
    do {                                                                       \
        if ((tr)->on) sim_trace_line((tr), (now_ms), __VA_ARGS__);             \
    } while (0)

void sim_trace_line(sim_trace *tr, int64_t now_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sim_trace_dump(const sim_trace *tr, FILE *f);
void sim_trace_free(sim_trace *tr);

#endif
