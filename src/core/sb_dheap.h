/* A binary min-heap of deadlines: each item is an sb_dheap_node embedded
 * in its owner, so that thousands of connections share one timer instead
 * of holding one each. Times are ms modulo 2^32 and compared as
 * differences: deadlines in one heap lie within 2^31 ms of each other. */
#ifndef SB_DHEAP_H
#define SB_DHEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Embedded in the owner: its deadline and place in the heap (0: not in
 * it). The heap keeps pointers to nodes; the owner finds itself from its
 * node (offsetof). */
typedef struct sb_dheap_node {
    uint32_t due_ms;
    uint32_t pos; /* 1-based index in the heap; 0 when not in it */
} sb_dheap_node;

typedef struct sb_dheap {
    sb_dheap_node **v; /* v[0] is unused: positions are 1-based */
    uint32_t len, cap;
} sb_dheap;

#define SB_DHEAP_INIT                                                          \
    {                                                                          \
        NULL, 0, 0                                                             \
    }

/* Sets n's deadline to due_ms, adding n when it is not in h. 0, or
 * -ENOMEM (n is then not in h), or -ENOSPC past 2^32 - 2 nodes. */
int sb_dheap_set(sb_dheap *h, sb_dheap_node *n, uint32_t due_ms);
/* Takes n out of h; nothing when it is not in it. */
void sb_dheap_remove(sb_dheap *h, sb_dheap_node *n);
/* The node with the earliest deadline, or NULL when h is empty. */
sb_dheap_node *sb_dheap_top(const sb_dheap *h);
/* True when deadline a comes before b. */
bool sb_dheap_before(uint32_t a, uint32_t b);
/* Frees the array; the nodes are the owners'. */
void sb_dheap_free(sb_dheap *h);

#endif
