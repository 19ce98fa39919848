/* What the parts of the sensitive-word filter share: the compiled filter
 * itself (its BMP symbol table, automaton records, words and categories).
 * sb_filter.c compiles, scans and frees it, sb_filter_ac.c builds its
 * automaton, sb_filter_lists.c fills its categories and words. Internal
 * to src/filter; the filter's users see sb_filter.h. */
#ifndef SB_FILTER_INT_H
#define SB_FILTER_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_filter.h"

/* A word's options (sb__filter_word.flags), from the list's '|' marks. */
#define SB_FILTER_BOUND_START 1 /* "|word": no ASCII letter or digit before */
#define SB_FILTER_BOUND_END 2   /* "word|": none after */

/* One compiled word; the words ending at one state form a chain. */
typedef struct sb__filter_word {
    uint32_t next; /* next word (index + 1) ending at the same state */
    uint8_t len;   /* symbols */
    uint8_t cat;
    uint8_t flags; /* SB_FILTER_BOUND_* */
} sb__filter_word;

/* A letter of the alphabet: a normalised code point and its symbol. */
typedef struct sb__filter_letter {
    uint32_t cp;
    uint32_t sym;
} sb__filter_letter;

typedef struct sb__filter_cat {
    char name[SB_FILTER_NAME_BYTES_MAX + 1];
    sb_filter_policy policy;
} sb__filter_cat;

/* Immutable once compiled, apart from refs. sb_filter_ac.h describes the
 * symbols and the records of states. */
struct sb_filter {
    atomic_uint refs;
    uint16_t bmp[0x10000]; /* BMP code point -> symbol or SYM_* */
    uint32_t *root;        /* symbol -> state below the root, 0: none */
    uint32_t *states;      /* the records; offset 0 stands for the root */
    size_t states_len;
    sb__filter_word *words;
    uint32_t n_words;
    sb__filter_letter *alpha; /* sorted by cp, for the slow path */
    uint32_t n_alpha;
    uint32_t n_ascii;     /* symbols 1..n_ascii are ASCII letters and digits */
    uint64_t *bigram;     /* hashed set of the symbol pairs words contain */
    uint32_t bigram_log2; /* bits in the set: 1 << bigram_log2 */
    sb__filter_cat cats[SB_FILTER_CATEGORIES_MAX];
    size_t n_cats;
};

#endif
