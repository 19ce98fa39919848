/* The filter's Aho-Corasick automaton: the trie the word lists are added
 * to, its construction into the compiled filter's tables, and the moves a
 * scan makes (inline here: they are the scan's inner loop). Internal to
 * src/filter.
 *
 * The automaton runs over "symbols": the distinct letters and digits that
 * occur in the normalised words, numbered 1..n_alpha in code point order
 * (so ASCII letters and digits come first). A filter holds a 64 Ki-entry
 * table from every BMP code point straight to its symbol (or "ignorable",
 * or "not in any word", or "ask utf8proc"), so the scan normalises ASCII,
 * CJK and full-width text with one load per character.
 *
 * Transitions: a dense row for the root; below it every state is one
 * record in a single array, laid out breadth first so that the shallow
 * states, where a scan spends its time, are close together; a state's id
 * is its record's offset plus two flags (a word ends here; a wide row). A
 * record holds the failure link, the output chain and the edges: near the
 * root a "wide" row of full transitions over every ASCII symbol (English
 * text moves with one load per letter), elsewhere a dense row when the
 * symbols are close together, else a sorted list. A hashed set of the
 * letter pairs the words contain sends most CJK characters straight to the
 * root's row without reading the current state. */
#ifndef SB_FILTER_AC_H
#define SB_FILTER_AC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_filter_int.h"
#include "sb_map.h"

/* Symbols in the BMP table besides 1..n_alpha. */
#define SYM_NONE 0      /* in no word: the automaton restarts */
#define SYM_SLOW 0xFFFE /* several letters, or outside the BMP: utf8proc */
#define SYM_IGN 0xFFFF  /* ignorable: skipped */
#define ALPHA_MAX 0xFFFD

/* A state's record in sb_filter.states, 32-bit words around its id (the
 * offset of R_META): */
#define R_WORD (-2) /* first word ending here (index + 1), 0: none */
#define R_DICT (-1) /* next state on the failure chain where a word ends */
#define R_META                                                                 \
    0            /* dense row: R_DENSE | low symbol << 15 | span;              \
                    else: the number of edges */
#define R_FAIL 1 /* the longest proper suffix that is a state (0: root) */
#define R_EDGES 2
#define R_HEAD 4 /* words before R_EDGES */
/* Then either, dense, for each symbol of the span the state the automaton
 * moves to (the full transition, failure links already followed; 0: the
 * root); or n symbols, ascending, and the n children on them (a symbol not
 * there: follow R_FAIL). */
#define R_DENSE 0x80000000u
#define R_SPAN_MAX 0x7FFFu
/* A state id is the offset of its record, with ID_OUT set when a word ends
 * there or on its failure chain, and ID_WIDE when its record is a dense row
 * over all the ASCII symbols: the scan tests both without a load, and
 * moves on an ASCII letter from a wide state with a single load. */
#define ID_OUT 0x80000000u
#define ID_WIDE 0x40000000u
#define ID_MASK 0x3FFFFFFFu

/* ---- building ------------------------------------------------------------ */

/* The trie the lists' words go into, then sb__filter_ac_build() turns into
 * the filter's tables. It fills f's words and alphabet size as it goes. */
typedef struct sb__filter_trie {
    sb_filter *f;
    sb_map alpha;    /* normalised code point -> symbol */
    sb_map child;    /* trie: state << 16 | symbol -> child state */
    uint32_t *sword; /* trie state -> first word ending there (index + 1) */
    uint32_t n_nodes, cap_nodes, cap_words;
} sb__filter_trie;

/* An empty trie (its root only) for filling f. Returns 0 or -ENOMEM; t
 * can be given to sb__filter_ac_trie_free() either way. */
int sb__filter_ac_trie_init(sb__filter_trie *t, sb_filter *f);
/* Frees what the trie holds (not f). */
void sb__filter_ac_trie_free(sb__filter_trie *t);

/* The symbol of a normalised letter, allocating one for a new letter.
 * Returns 0 with *sym set, SB_E_TOO_LARGE past ALPHA_MAX letters, or
 * -ENOMEM. */
int sb__filter_ac_letter(sb__filter_trie *t, uint32_t cp, uint32_t *sym);

/* Adds a word (its n symbols) of category cat with SB_FILTER_BOUND_* flags
 * to the trie; a repeat of a word already there is dropped. Returns 0,
 * SB_E_TOO_LARGE past SB_FILTER_WORDS_MAX words or SB_FILTER_STATES_MAX
 * states, or -ENOMEM. */
int sb__filter_ac_add_word(sb__filter_trie *t, const uint32_t *syms, size_t n,
                           uint8_t cat, uint8_t flags);

/* Turns the trie into t->f's tables: the alphabet renumbered in code point
 * order, failure links and output chains, the records, the root's row, the
 * letter pairs and the BMP table. The normaliser must be initialised.
 * Returns 0, SB_E_TOO_LARGE when the records would not fit the ids, or
 * -ENOMEM; what it allocated stays in t->f for its free either way. */
int sb__filter_ac_build(sb__filter_trie *t);

/* ---- moving -------------------------------------------------------------- */

/* The symbol of a letter (cp already normalised), 0 if in no word. */
uint32_t sb__filter_ac_symbol(const sb_filter *f, uint32_t cp);

/* What a move reads, copied out of the filter so that a scan keeps it in
 * registers (the compiler cannot assume the filter unchanged across the
 * calls a scan makes). */
typedef struct sb__filter_ac {
    const uint32_t *states, *root;
    const uint64_t *bigram;
    uint32_t n_ascii;
    uint32_t bigram_shift; /* 32 - bigram_log2 */
} sb__filter_ac;

static inline sb__filter_ac sb__filter_ac_of(const sb_filter *f)
{
    return (sb__filter_ac){f->states, f->root, f->bigram, f->n_ascii,
                           32 - f->bigram_log2};
}

/* The child on sym in a sorted list of k symbols and k children. */
static inline uint32_t sb__filter_ac_list_find(const uint32_t *e, uint32_t k,
                                               uint32_t sym)
{
    if (k <= 8) {
        for (uint32_t i = 0; i < k; i++)
            if (e[i] == sym) return e[k + i];
        return 0;
    }
    uint32_t lo = 0, hi = k;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (e[mid] < sym)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < k && e[lo] == sym ? e[k + lo] : 0;
}

/* The automaton's move from st on sym (1..n_alpha). A wide state's ASCII
 * row is read without looking at its record's header. */
static inline uint32_t sb__filter_ac_step_full(sb__filter_ac a, uint32_t st,
                                               uint32_t sym)
{
    bool ascii = sym <= a.n_ascii;
    while (st) {
        const uint32_t *r = a.states + (st & ID_MASK);
        if (ascii && st & ID_WIDE) return r[R_EDGES + sym - 1];
        uint32_t meta = r[R_META];
        if (meta & R_DENSE) {
            uint32_t i = sym - (meta >> 15 & 0xFFFF);
            if (i < (meta & R_SPAN_MAX)) return r[R_EDGES + i];
        } else {
            uint32_t t = sb__filter_ac_list_find(r + R_EDGES, meta, sym);
            if (t) return t;
        }
        st = r[R_FAIL];
    }
    return a.root[sym];
}

static inline uint32_t sb__filter_ac_bigram_hash(sb__filter_ac a, uint32_t x,
                                                 uint32_t y)
{
    return (x << 16 | y) * 0x9E3779B1u >> a.bigram_shift;
}

/* False when no word has the letters x, y next to each other. */
static inline bool sb__filter_ac_bigram_maybe(sb__filter_ac a, uint32_t x,
                                              uint32_t y)
{
    uint32_t h = sb__filter_ac_bigram_hash(a, x, y);
    return a.bigram[h >> 6] >> (h & 63) & 1;
}

/* The automaton's move from st on sym, prev being the symbol that led to
 * st. Since every state on st's failure chain ends with prev, when no word
 * has prev followed by sym none of them goes on with sym: the move is the
 * root's, found without looking at st (the usual case for CJK text; ASCII
 * letters follow each other in too many words for the test to pay).
 * Always inlined: it is the scan's inner loop, and a call per character
 * (what the compiler chooses by itself) costs a scan half again its
 * instructions. */
static inline __attribute__((always_inline)) uint32_t
sb__filter_ac_step(sb__filter_ac a, uint32_t st, uint32_t prev, uint32_t sym)
{
    if (sym > a.n_ascii && !sb__filter_ac_bigram_maybe(a, prev, sym))
        return a.root[sym];
    return sb__filter_ac_step_full(a, st, sym);
}

#endif
