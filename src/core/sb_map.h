/* An open-addressing hash map from 64-bit keys to pointers (linear probing,
 * backward-shift deletion, so no tombstones). Keys are any uint64_t; the
 * map does not own the values. sb_map_hash_str() turns a string into a key
 * for maps whose values carry their own string and chain on collision. */
#ifndef SB_MAP_H
#define SB_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct sb_map_slot {
    uint64_t key;
    void *val; /* NULL: empty slot */
} sb_map_slot;

typedef struct sb_map {
    sb_map_slot *slots;
    size_t cap; /* a power of two, or 0 */
    size_t len;
} sb_map;

#define SB_MAP_INIT                                                            \
    {                                                                          \
        NULL, 0, 0                                                             \
    }

/* The value for key, or NULL. */
void *sb_map_get(const sb_map *m, uint64_t key);
/* Sets key to val (val != NULL), replacing any old value. 0 or -ENOMEM. */
int sb_map_put(sb_map *m, uint64_t key, void *val);
/* Removes key; returns the old value or NULL. */
void *sb_map_del(sb_map *m, uint64_t key);
void sb_map_free(sb_map *m);

/* Iteration: for (size_t i = 0; i < m->cap; i++) if (m->slots[i].val) ...
 * The map must not change during the loop. */

uint64_t sb_map_hash_str(const char *s);

#endif
