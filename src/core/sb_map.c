/* Open-addressing hash map with 64-bit keys. */
#include "sb_map.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

static size_t slot_of(uint64_t key, size_t cap)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (size_t)key & (cap - 1);
}

void *sb_map_get(const sb_map *m, uint64_t key)
{
    if (m->cap == 0) return NULL;
    for (size_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (!m->slots[i].val) return NULL;
        if (m->slots[i].key == key) return m->slots[i].val;
    }
}

static int grow(sb_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    sb_map_slot *s = calloc(cap, sizeof *s);
    if (!s) return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].val) continue;
        size_t j = slot_of(m->slots[i].key, cap);
        while (s[j].val)
            j = (j + 1) & (cap - 1);
        s[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = s;
    m->cap = cap;
    return 0;
}

int sb_map_put(sb_map *m, uint64_t key, void *val)
{
    assert(val);
    if ((m->len + 1) * 4 > m->cap * 3) {
        int rc = grow(m);
        if (rc) return rc;
    }
    size_t i = slot_of(key, m->cap);
    while (m->slots[i].val && m->slots[i].key != key)
        i = (i + 1) & (m->cap - 1);
    if (!m->slots[i].val) m->len++;
    m->slots[i].key = key;
    m->slots[i].val = val;
    return 0;
}

void *sb_map_del(sb_map *m, uint64_t key)
{
    if (m->cap == 0) return NULL;
    size_t mask = m->cap - 1;
    size_t i = slot_of(key, m->cap);
    while (m->slots[i].val && m->slots[i].key != key)
        i = (i + 1) & mask;
    if (!m->slots[i].val) return NULL;
    void *old = m->slots[i].val;
    m->len--;
    /* Backward-shift: pull later entries of the probe run into the hole. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->slots[j].val; j = (j + 1) & mask) {
        size_t home = slot_of(m->slots[j].key, m->cap);
        /* Move j into the hole if its home is not in (hole, j]. */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].val = NULL;
    m->slots[hole].key = 0;
    return old;
}

void sb_map_free(sb_map *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->len = 0;
}

uint64_t sb_map_hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}
