/* Growable byte buffer. */
#include "sb_buf.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int sb_buf_reserve(sb_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) return 0;
    if (extra > SIZE_MAX / 4 - b->len) return -ENOMEM;
    size_t want = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p) return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int sb_buf_append(sb_buf *b, const void *p, size_t n)
{
    if (n == 0) return 0;
    int rc = sb_buf_reserve(b, n);
    if (rc) return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void sb_buf_consume(sb_buf *b, size_t n)
{
    assert(n <= b->len);
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void sb_buf_free(sb_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
