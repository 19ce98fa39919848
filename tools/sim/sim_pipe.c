/* One direction of a simulated connection (sim_pipe.h). */
#include "sim_pipe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int sim_pipe_write(sim_pipe *p, const uint8_t *b, size_t n, int64_t due)
{
    if (n == 0) return 0;
    if (p->nseg && p->segs[p->nseg - 1].due > due)
        due = p->segs[p->nseg - 1].due;
    if (p->nseg == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        sim_pipe_seg *v = realloc(p->segs, cap * sizeof *v);
        if (!v) return -ENOMEM;
        p->segs = v;
        p->cap = cap;
    }
    int rc = sb_buf_append(&p->bytes, b, n);
    if (rc) return rc;
    p->segs[p->nseg++] = (sim_pipe_seg){due, n};
    return 0;
}

size_t sim_pipe_due(const sim_pipe *p, int64_t now, const uint8_t **b)
{
    *b = p->bytes.data;
    if (now < p->stall_until) return 0;
    size_t n = 0;
    for (size_t i = 0; i < p->nseg && p->segs[i].due <= now; i++)
        n += p->segs[i].len;
    return n;
}

void sim_pipe_consume(sim_pipe *p, size_t n)
{
    sb_buf_consume(&p->bytes, n);
    size_t i = 0;
    while (n && i < p->nseg) {
        if (p->segs[i].len <= n) {
            n -= p->segs[i].len;
            i++;
        } else {
            p->segs[i].len -= n;
            n = 0;
        }
    }
    memmove(p->segs, p->segs + i, (p->nseg - i) * sizeof *p->segs);
    p->nseg -= i;
}

void sim_pipe_clear(sim_pipe *p)
{
    p->bytes.len = 0;
    p->nseg = 0;
}

size_t sim_pipe_len(const sim_pipe *p)
{
    return p->bytes.len;
}

void sim_pipe_free(sim_pipe *p)
{
    sb_buf_free(&p->bytes);
    free(p->segs);
    memset(p, 0, sizeof *p);
}
