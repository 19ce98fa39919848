/* A binary min-heap of embedded deadline nodes (sb_dheap.h). */
#include "sb_dheap.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

bool sb_dheap_before(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) < 0;
}

static void place(sb_dheap *h, uint32_t i, sb_dheap_node *n)
{
    h->v[i] = n;
    n->pos = i;
}

static void sift_up(sb_dheap *h, uint32_t i)
{
    sb_dheap_node *n = h->v[i];
    while (i > 1 && sb_dheap_before(n->due_ms, h->v[i / 2]->due_ms)) {
        place(h, i, h->v[i / 2]);
        i /= 2;
    }
    place(h, i, n);
}

static void sift_down(sb_dheap *h, uint32_t i)
{
    sb_dheap_node *n = h->v[i];
    for (;;) {
        uint32_t c = 2 * i;
        if (c > h->len) break;
        if (c < h->len && sb_dheap_before(h->v[c + 1]->due_ms, h->v[c]->due_ms))
            c++;
        if (!sb_dheap_before(h->v[c]->due_ms, n->due_ms)) break;
        place(h, i, h->v[c]);
        i = c;
    }
    place(h, i, n);
}

int sb_dheap_set(sb_dheap *h, sb_dheap_node *n, uint32_t due_ms)
{
    if (n->pos) {
        assert(n->pos <= h->len && h->v[n->pos] == n);
        uint32_t old = n->due_ms;
        n->due_ms = due_ms;
        if (sb_dheap_before(due_ms, old))
            sift_up(h, n->pos);
        else
            sift_down(h, n->pos);
        return 0;
    }
    if (h->len + 1 >= h->cap) {
        if (h->cap >= UINT32_MAX / 2) return -ENOSPC;
        uint32_t cap = h->cap ? 2 * h->cap : 64;
        sb_dheap_node **v = realloc(h->v, (size_t)cap * sizeof *v);
        if (!v) return -ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    n->due_ms = due_ms;
    place(h, ++h->len, n);
    sift_up(h, h->len);
    return 0;
}

void sb_dheap_remove(sb_dheap *h, sb_dheap_node *n)
{
    uint32_t i = n->pos;
    if (!i) return;
    assert(i <= h->len && h->v[i] == n);
    n->pos = 0;
    sb_dheap_node *last = h->v[h->len--];
    if (i > h->len) return; /* n was the last */
    place(h, i, last);
    if (i > 1 && sb_dheap_before(last->due_ms, h->v[i / 2]->due_ms))
        sift_up(h, i);
    else
        sift_down(h, i);
}

sb_dheap_node *sb_dheap_top(const sb_dheap *h)
{
    return h->len ? h->v[1] : NULL;
}

void sb_dheap_free(sb_dheap *h)
{
    free(h->v);
    h->v = NULL;
    h->len = h->cap = 0;
}
