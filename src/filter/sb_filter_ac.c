/* The filter's Aho-Corasick automaton, built: words go into a hashed trie,
 * which is then laid out breadth first as the records, rows and tables of
 * sb_filter_ac.h. */
#include "sb_filter_ac.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_filter_norm.h"

#define WIDE_DEPTH 6 /* states this near the root get a full ASCII row, */
#define WIDE_WORDS_MAX (1u << 20) /* as long as these rows fit in 4 MiB */

static int grow(void **p, uint32_t *cap, uint32_t need, size_t size)
{
    if (need <= *cap) return 0;
    uint32_t n = *cap ? *cap : 1024;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, (size_t)n * size);
    if (!q) return -ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

int sb__filter_ac_trie_init(sb__filter_trie *t, sb_filter *f)
{
    *t = (sb__filter_trie){.f = f, .alpha = SB_MAP_INIT, .child = SB_MAP_INIT};
    int rc = grow((void **)&t->sword, &t->cap_nodes, 1, sizeof *t->sword);
    if (rc) return rc;
    t->sword[0] = 0;
    t->n_nodes = 1; /* the root */
    return 0;
}

void sb__filter_ac_trie_free(sb__filter_trie *t)
{
    sb_map_free(&t->alpha);
    sb_map_free(&t->child);
    free(t->sword);
    t->sword = NULL;
}

int sb__filter_ac_letter(sb__filter_trie *t, uint32_t cp, uint32_t *sym)
{
    uintptr_t s = (uintptr_t)sb_map_get(&t->alpha, cp);
    if (!s) {
        if (t->f->n_alpha >= ALPHA_MAX) return SB_E_TOO_LARGE;
        s = ++t->f->n_alpha;
        if (sb_map_put(&t->alpha, cp, (void *)s)) return -ENOMEM;
    }
    *sym = (uint32_t)s;
    return 0;
}

int sb__filter_ac_add_word(sb__filter_trie *t, const uint32_t *syms, size_t n,
                           uint8_t cat, uint8_t flags)
{
    sb_filter *f = t->f;
    uint32_t st = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t key = (uint64_t)st << 16 | syms[i];
        uintptr_t c = (uintptr_t)sb_map_get(&t->child, key);
        if (!c) {
            if (t->n_nodes >= SB_FILTER_STATES_MAX) return SB_E_TOO_LARGE;
            if (grow((void **)&t->sword, &t->cap_nodes, t->n_nodes + 1,
                     sizeof *t->sword))
                return -ENOMEM;
            c = t->n_nodes++;
            t->sword[c] = 0;
            if (sb_map_put(&t->child, key, (void *)c)) return -ENOMEM;
        }
        st = (uint32_t)c;
    }
    for (uint32_t w = t->sword[st]; w; w = f->words[w - 1].next)
        if (f->words[w - 1].cat == cat && f->words[w - 1].flags == flags)
            return 0; /* a repeat */
    if (f->n_words >= SB_FILTER_WORDS_MAX) return SB_E_TOO_LARGE;
    if (grow((void **)&f->words, &t->cap_words, f->n_words + 1,
             sizeof *f->words))
        return -ENOMEM;
    f->words[f->n_words] =
        (sb__filter_word){t->sword[st], (uint8_t)n, cat, flags};
    t->sword[st] = ++f->n_words;
    return 0;
}

uint32_t sb__filter_ac_symbol(const sb_filter *f, uint32_t cp)
{
    size_t lo = 0, hi = f->n_alpha;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (f->alpha[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < f->n_alpha && f->alpha[lo].cp == cp ? f->alpha[lo].sym : 0;
}

typedef struct edge {
    uint32_t from, to, sym;
} edge;

static int edge_cmp(const void *a, const void *b)
{
    const edge *x = a, *y = b;
    if (x->from != y->from) return x->from < y->from ? -1 : 1;
    return (x->sym > y->sym) - (x->sym < y->sym);
}

static int letter_cmp(const void *a, const void *b)
{
    const sb__filter_letter *x = a, *y = b;
    return (x->cp > y->cp) - (x->cp < y->cp);
}

/* The trie's child of u on sym, from the sorted edges (0: none). */
static uint32_t trie_child(const edge *es, const uint32_t *first, uint32_t u,
                           uint32_t sym)
{
    uint32_t lo = first[u], hi = first[u + 1];
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (es[mid].sym < sym)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < first[u + 1] && es[lo].sym == sym ? es[lo].to : 0;
}

/* Whether a state (n edges e, depth d) can have a dense row over every
 * ASCII symbol (1..na): near the root, where the scan of ASCII text spends
 * its time, and with only ASCII children. */
static bool wide(const edge *e, uint32_t n, uint32_t d, uint32_t na)
{
    return na > 0 && d <= WIDE_DEPTH && (n == 0 || e[n - 1].sym <= na);
}

/* The span [*lo, *hi] of a dense row for a state with n edges e (w: it is
 * wide), or false for a sorted list: wide states, and others whose symbols
 * are close together. */
static bool dense_span(const edge *e, uint32_t n, bool w, uint32_t na,
                       uint32_t *lo, uint32_t *hi)
{
    if (w) {
        *lo = 1;
        *hi = na;
        return true;
    }
    if (n < 4 || e[n - 1].sym - e[0].sym + 1 > 3 * n ||
        e[n - 1].sym - e[0].sym + 1 > R_SPAN_MAX)
        return false;
    *lo = e[0].sym;
    *hi = e[n - 1].sym;
    return true;
}

/* Failure links and output chains are found breadth first, so every
 * shorter state is done before it is needed, and the records are laid out
 * in that same order. */
int sb__filter_ac_build(sb__filter_trie *t)
{
    sb_filter *f = t->f;
    uint32_t n = t->n_nodes, n_alpha = f->n_alpha;
    size_t ne = t->child.len;
    int rc = -ENOMEM;
    edge *es = malloc((ne + 1) * sizeof *es);
    uint32_t *first = calloc((size_t)n + 1, sizeof *first);
    uint32_t *order = malloc((size_t)n * sizeof *order);
    uint32_t *fail = calloc(n, sizeof *fail);
    uint32_t *dict = calloc(n, sizeof *dict);
    uint32_t *id = calloc(n, sizeof *id);
    uint32_t *depth = calloc(n, sizeof *depth);
    uint32_t *renum = malloc(((size_t)n_alpha + 1) * sizeof *renum);
    f->root = calloc((size_t)n_alpha + 1, sizeof *f->root);
    f->alpha = malloc(((size_t)n_alpha + 1) * sizeof *f->alpha);
    if (!es || !first || !order || !fail || !dict || !id || !depth || !renum ||
        !f->root || !f->alpha)
        goto out;

    uint32_t m = 0;
    for (size_t i = 0; i < t->alpha.cap; i++) {
        const sb_map_slot *sl = &t->alpha.slots[i];
        if (sl->val)
            f->alpha[m++] = (sb__filter_letter){(uint32_t)sl->key,
                                                (uint32_t)(uintptr_t)sl->val};
    }
    qsort(f->alpha, m, sizeof *f->alpha, letter_cmp);
    uint32_t na = 0; /* ASCII symbols: 1..na */
    for (uint32_t i = 0; i < m; i++) {
        renum[f->alpha[i].sym] = i + 1;
        f->alpha[i].sym = i + 1;
        if (f->alpha[i].cp < 0x80) na = i + 1;
    }
    f->n_ascii = na;

    size_t k = 0;
    for (size_t i = 0; i < t->child.cap; i++) {
        const sb_map_slot *sl = &t->child.slots[i];
        if (sl->val)
            es[k++] =
                (edge){(uint32_t)(sl->key >> 16), (uint32_t)(uintptr_t)sl->val,
                       renum[sl->key & 0xFFFF]};
    }
    qsort(es, k, sizeof *es, edge_cmp);
    for (size_t i = 0; i < k; i++)
        first[es[i].from + 1]++;
    for (uint32_t u = 0; u < n; u++)
        first[u + 1] += first[u];

    /* Breadth first: failure links and output chains in trie ids, and each
     * state's record size, to give it its offset. */
    size_t qh = 0, qt = 0, len = R_HEAD; /* the root's (unused) record */
    size_t wide_words = 0;
    order[qt++] = 0;
    while (qh < qt) {
        uint32_t u = order[qh++];
        uint32_t ne_u = first[u + 1] - first[u];
        if (u != 0) {
            uint32_t lo, hi;
            id[u] |= (uint32_t)len - R_WORD;
            len += R_HEAD + (dense_span(es + first[u], ne_u, id[u] & ID_WIDE,
                                        na, &lo, &hi)
                                 ? (size_t)(hi - lo + 1)
                                 : 2 * (size_t)ne_u);
            if (len > ID_MASK) {
                rc = SB_E_TOO_LARGE;
                goto out;
            }
        }
        for (uint32_t i = first[u]; i < first[u + 1]; i++) {
            uint32_t v = es[i].to, sym = es[i].sym, fl = 0;
            if (u != 0) {
                for (uint32_t s = fail[u];; s = fail[s]) {
                    if ((fl = trie_child(es, first, s, sym)) || s == 0) break;
                }
            }
            fail[v] = fl;
            dict[v] = t->sword[fl] ? fl : dict[fl];
            depth[v] = depth[u] + 1;
            if (t->sword[v] || dict[v]) id[v] = ID_OUT;
            if (wide_words + na <= WIDE_WORDS_MAX &&
                wide(es + first[v], first[v + 1] - first[v], depth[v], na)) {
                id[v] |= ID_WIDE;
                wide_words += na;
            }
            order[qt++] = v;
        }
    }

    f->states = calloc(len, sizeof *f->states);
    if (!f->states) goto out;
    f->states_len = len;
    for (uint32_t i = first[0]; i < first[1]; i++)
        f->root[es[i].sym] = id[es[i].to];
    sb__filter_ac am = sb__filter_ac_of(f); /* step_full reads no bigrams */
    for (uint32_t q = 1; q < n; q++) {
        uint32_t u = order[q];
        uint32_t *r = f->states + (id[u] & ID_MASK);
        const edge *e = es + first[u];
        uint32_t ne_u = first[u + 1] - first[u];
        r[R_WORD] = t->sword[u];
        r[R_DICT] = id[dict[u]];
        r[R_FAIL] = id[fail[u]];
        uint32_t lo, hi;
        if (dense_span(e, ne_u, id[u] & ID_WIDE, na, &lo, &hi)) {
            /* A child, or where the failure state goes: its record, like
             * every shallower one, is complete. */
            r[R_META] = R_DENSE | lo << 15 | (hi - lo + 1);
            for (uint32_t a = lo, i = 0; a <= hi; a++)
                r[R_EDGES + a - lo] =
                    i < ne_u && e[i].sym == a
                        ? id[e[i++].to]
                        : sb__filter_ac_step_full(am, r[R_FAIL], a);
        } else {
            r[R_META] = ne_u;
            for (uint32_t i = 0; i < ne_u; i++) {
                r[R_EDGES + i] = e[i].sym;
                r[R_EDGES + ne_u + i] = id[e[i].to];
            }
        }
    }

    /* Every pair of letters some word has next to each other: the symbol
     * into each trie state, followed by the symbol of each of its edges. */
    uint32_t *insym = id; /* the ids are all written: reuse the array */
    for (size_t i = 0; i < k; i++)
        insym[es[i].to] = es[i].sym;
    size_t pairs = k - first[1];
    f->bigram_log2 = 12;
    while (f->bigram_log2 < 24 && (1u << f->bigram_log2) < 16 * pairs)
        f->bigram_log2++;
    f->bigram = calloc((1u << f->bigram_log2) / 64, sizeof *f->bigram);
    if (!f->bigram) goto out;
    for (size_t i = first[1]; i < k; i++) {
        uint32_t h = sb__filter_ac_bigram_hash(sb__filter_ac_of(f),
                                               insym[es[i].from], es[i].sym);
        f->bigram[h >> 6] |= 1ull << (h & 63);
    }

    /* The letters' symbols by code point (BMP letters; the others are
     * looked up in f->alpha), then every BMP code point through its
     * normalisation. */
    uint16_t *bmp_sym = calloc(0x10000, sizeof *bmp_sym);
    if (!bmp_sym) goto out;
    for (uint32_t i = 0; i < m && f->alpha[i].cp < 0x10000; i++)
        bmp_sym[f->alpha[i].cp] = (uint16_t)f->alpha[i].sym;
    for (uint32_t cp = 0; cp < 0x10000; cp++) {
        uint32_t e = sb__filter_norm_bmp(cp);
        f->bmp[cp] = e == SB_FILTER_NORM_IGN     ? SYM_IGN
                     : e == SB_FILTER_NORM_MULTI ? SYM_SLOW
                     : e < 0x10000               ? bmp_sym[e]
                                   : (uint16_t)sb__filter_ac_symbol(f, e);
    }
    free(bmp_sym);
    rc = 0;
out:
    free(es);
    free(first);
    free(order);
    free(fail);
    free(dict);
    free(id);
    free(depth);
    free(renum);
    return rc;
}
