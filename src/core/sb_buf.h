/* A growable byte buffer. The buffer owns data; sb_buf_free() releases it
 * and leaves an empty buffer that may be reused. Growth is bounded by the
 * caller through cap_max (0: no bound beyond SIZE_MAX/2). */
#ifndef SB_BUF_H
#define SB_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct sb_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} sb_buf;

#define SB_BUF_INIT                                                            \
    {                                                                          \
        NULL, 0, 0                                                             \
    }

/* Ensures room for extra more bytes. Returns 0 or -ENOMEM. */
int sb_buf_reserve(sb_buf *b, size_t extra);
/* Appends n bytes. Returns 0 or -ENOMEM. */
int sb_buf_append(sb_buf *b, const void *p, size_t n);
/* Removes the first n bytes (n <= len). */
void sb_buf_consume(sb_buf *b, size_t n);
void sb_buf_free(sb_buf *b);

#endif
