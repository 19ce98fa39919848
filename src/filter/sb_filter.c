/* The sensitive-word filter: list parsing, per-code-point normalisation
 * tables over utf8proc, Aho-Corasick construction, and the scan loop.
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
 * root's row without reading the current state. A match is mapped back to
 * its span of the original text by walking back from its end, which is
 * rare, rather than by remembering every letter's position. */
#include "sb_filter.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utf8proc.h>

#include "sb_error.h"
#include "sb_map.h"
#include "sb_utf8.h"

/* Symbols in the BMP table besides 1..n_alpha. */
#define SYM_NONE 0      /* in no word: the automaton restarts */
#define SYM_SLOW 0xFFFE /* several letters, or outside the BMP: utf8proc */
#define SYM_IGN 0xFFFF  /* ignorable: skipped */
#define ALPHA_MAX 0xFFFD

#define CP_BAD 0x110000u /* an invalid byte: an unknown character */
#define NORM_CPS_MAX 32  /* letters one code point may normalise to */

#define FLAG_BOUND_START 1 /* "|word": no ASCII letter or digit before */
#define FLAG_BOUND_END 2   /* "word|": none after */

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
#define WIDE_DEPTH 6 /* states this near the root get a full ASCII row, */
#define WIDE_WORDS_MAX (1u << 20) /* as long as these rows fit in 4 MiB */
/* A state id is the offset of its record, with ID_OUT set when a word ends
 * there or on its failure chain, and ID_WIDE when its record is a dense row
 * over all the ASCII symbols: the scan tests both without a load, and
 * moves on an ASCII letter from a wide state with a single load. */
#define ID_OUT 0x80000000u
#define ID_WIDE 0x40000000u
#define ID_MASK 0x3FFFFFFFu

typedef struct fword {
    uint32_t next; /* next word (index + 1) ending at the same state */
    uint8_t len;   /* symbols */
    uint8_t cat;
    uint8_t flags;
} fword;

typedef struct alpha {
    uint32_t cp;
    uint32_t sym;
} alpha;

typedef struct category {
    char name[SB_FILTER_NAME_BYTES_MAX + 1];
    sb_filter_policy policy;
} category;

struct sb_filter {
    atomic_uint refs;
    uint16_t bmp[0x10000]; /* BMP code point -> symbol or SYM_* */
    uint32_t *root;        /* symbol -> state below the root, 0: none */
    uint32_t *states;      /* the records; offset 0 stands for the root */
    size_t states_len;
    fword *words;
    uint32_t n_words;
    alpha *alpha; /* sorted by cp, for the slow path */
    uint32_t n_alpha;
    uint32_t n_ascii;     /* symbols 1..n_ascii are ASCII letters and digits */
    uint64_t *bigram;     /* hashed set of the symbol pairs words contain */
    uint32_t bigram_log2; /* bits in the set: 1 << bigram_log2 */
    category cats[SB_FILTER_CATEGORIES_MAX];
    size_t n_cats;
};

/* ---- normalisation ------------------------------------------------------- */

#define NORM_OPTS                                                              \
    (UTF8PROC_COMPOSE | UTF8PROC_STABLE | UTF8PROC_COMPAT |                    \
     UTF8PROC_CASEFOLD | UTF8PROC_IGNORE | UTF8PROC_STRIPMARK)

#define NORM_IGN 0xFFFFFFFFu   /* normalises to nothing kept */
#define NORM_MULTI 0xFFFFFFFEu /* to more than one letter */

/* BMP code point -> the one letter it normalises to, or NORM_*; built once
 * per process, shared by every filter. */
static uint32_t norm_bmp[0x10000];
static pthread_once_t norm_once = PTHREAD_ONCE_INIT;

static bool kept(utf8proc_int32_t cp)
{
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return true;
    default:
        return false;
    }
}

/* NFKC + case fold + strip marks of one code point through utf8proc, then
 * only the letters and digits of the result. Writes at most cap of them;
 * returns how many there are. */
static size_t norm_cp_slow(uint32_t cp, uint32_t *out, size_t cap)
{
    utf8proc_int32_t buf[NORM_CPS_MAX * 2];
    if (cp >= 0x110000) return 0;
    utf8proc_ssize_t n = utf8proc_decompose_char(
        (utf8proc_int32_t)cp, buf, NORM_CPS_MAX * 2, NORM_OPTS, NULL);
    if (n <= 0 || n > NORM_CPS_MAX * 2) return 0;
    n = utf8proc_normalize_utf32(buf, n, NORM_OPTS);
    size_t k = 0;
    for (utf8proc_ssize_t i = 0; i < n; i++) {
        if (!kept(buf[i])) continue;
        if (k < cap) out[k] = (uint32_t)buf[i];
        k++;
    }
    return k;
}

static void norm_init(void)
{
    uint32_t tmp[2];
    for (uint32_t cp = 0; cp < 0x10000; cp++) {
        size_t k = norm_cp_slow(cp, tmp, 2);
        norm_bmp[cp] = k == 0 ? NORM_IGN : k == 1 ? tmp[0] : NORM_MULTI;
    }
}

/* The letters cp normalises to (at most NORM_CPS_MAX, into out). */
static size_t norm_cp(uint32_t cp, uint32_t out[NORM_CPS_MAX])
{
    if (cp < 0x10000) {
        uint32_t e = norm_bmp[cp];
        if (e == NORM_IGN) return 0;
        if (e != NORM_MULTI) {
            out[0] = e;
            return 1;
        }
    }
    size_t k = norm_cp_slow(cp, out, NORM_CPS_MAX);
    return k < NORM_CPS_MAX ? k : NORM_CPS_MAX;
}

/* Decodes the code point at p (n >= 1 bytes left) into *cp and returns its
 * length; anything that is not valid UTF-8 is one byte of CP_BAD. */
static inline size_t utf8_next(const uint8_t *p, size_t n, uint32_t *cp)
{
    uint8_t b = p[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    if (b >= 0xC2 && b < 0xE0) {
        if (n >= 2 && (p[1] & 0xC0) == 0x80) {
            *cp = (uint32_t)(b & 0x1F) << 6 | (p[1] & 0x3F);
            return 2;
        }
    } else if (b >= 0xE0 && b < 0xF0) {
        if (n >= 3 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80) {
            uint32_t c = (uint32_t)(b & 0x0F) << 12 |
                         (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
            if (c >= 0x800 && (c < 0xD800 || c > 0xDFFF)) {
                *cp = c;
                return 3;
            }
        }
    } else if (b >= 0xF0 && b < 0xF5) {
        if (n >= 4 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80 &&
            (p[3] & 0xC0) == 0x80) {
            uint32_t c = (uint32_t)(b & 0x07) << 18 |
                         (uint32_t)(p[1] & 0x3F) << 12 |
                         (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
            if (c >= 0x10000 && c <= 0x10FFFF) {
                *cp = c;
                return 4;
            }
        }
    }
    *cp = CP_BAD;
    return 1;
}

/* True if cp normalises to an ASCII letter or digit first: what a word
 * boundary ("|word|") must not have beside the match. */
static bool ascii_alnum(uint32_t cp)
{
    uint32_t n[NORM_CPS_MAX];
    if (norm_cp(cp, n) == 0) return false;
    return (n[0] >= 'a' && n[0] <= 'z') || (n[0] >= '0' && n[0] <= '9');
}

size_t sb_filter_normalize(const char *text, size_t len, char *out, size_t n)
{
    pthread_once(&norm_once, norm_init);
    const uint8_t *p = (const uint8_t *)text;
    size_t total = 0, written = 0; /* written: the prefix that fits whole */
    for (size_t i = 0; i < len;) {
        uint32_t cp, cps[NORM_CPS_MAX];
        i += utf8_next(p + i, len - i, &cp);
        size_t k = cp == CP_BAD ? 0 : norm_cp(cp, cps);
        for (size_t j = 0; j < k; j++) {
            uint8_t enc[4];
            size_t e =
                (size_t)utf8proc_encode_char((utf8proc_int32_t)cps[j], enc);
            if (written == total && total + e < n) {
                memcpy(out + total, enc, e);
                written += e;
            }
            total += e;
        }
    }
    if (n > 0) out[written] = '\0';
    return total;
}

/* ---- the automaton ------------------------------------------------------- */

/* The symbol of a letter (cp already normalised), 0 if in no word. */
static uint32_t alpha_sym(const sb_filter *f, uint32_t cp)
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

/* The child on sym in a sorted list of k symbols and k children. */
static inline uint32_t list_find(const uint32_t *e, uint32_t k, uint32_t sym)
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

/* What a move reads, copied out of the filter so that a scan keeps it in
 * registers (the compiler cannot assume the filter unchanged across the
 * calls a scan makes). */
typedef struct automaton {
    const uint32_t *states, *root;
    const uint64_t *bigram;
    uint32_t n_ascii;
    uint32_t bigram_shift; /* 32 - bigram_log2 */
} automaton;

static inline automaton automaton_of(const sb_filter *f)
{
    return (automaton){f->states, f->root, f->bigram, f->n_ascii,
                       32 - f->bigram_log2};
}

/* The automaton's move from st on sym (1..n_alpha). A wide state's ASCII
 * row is read without looking at its record's header. */
static inline uint32_t step_full(automaton a, uint32_t st, uint32_t sym)
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
            uint32_t t = list_find(r + R_EDGES, meta, sym);
            if (t) return t;
        }
        st = r[R_FAIL];
    }
    return a.root[sym];
}

static inline uint32_t bigram_hash(automaton a, uint32_t x, uint32_t y)
{
    return (x << 16 | y) * 0x9E3779B1u >> a.bigram_shift;
}

/* False when no word has the letters x, y next to each other. */
static inline bool bigram_maybe(automaton a, uint32_t x, uint32_t y)
{
    uint32_t h = bigram_hash(a, x, y);
    return a.bigram[h >> 6] >> (h & 63) & 1;
}

/* The automaton's move from st on sym, prev being the symbol that led to
 * st. Since every state on st's failure chain ends with prev, when no word
 * has prev followed by sym none of them goes on with sym: the move is the
 * root's, found without looking at st (the usual case for CJK text; ASCII
 * letters follow each other in too many words for the test to pay). */
static inline uint32_t step(automaton a, uint32_t st, uint32_t prev,
                            uint32_t sym)
{
    if (sym > a.n_ascii && !bigram_maybe(a, prev, sym)) return a.root[sym];
    return step_full(a, st, sym);
}

/* ---- scanning ------------------------------------------------------------ */

typedef struct span {
    size_t a, b; /* byte offsets [a, b) of the original text */
} span;

#define SPANS_INLINE 16

typedef struct scan {
    const sb_filter *f;
    const uint8_t *p;
    size_t len;
    sb_filter_verdict *v;
    span *sp; /* mask spans: disjoint, sorted */
    size_t n_sp, cap_sp;
    bool oom;
    span inl[SPANS_INLINE];
} scan;

/* Adds the mask span [a, b). Spans arrive in order of their end, so every
 * span that overlaps the new one is at the top of the stack. */
static void span_add(scan *x, size_t a, size_t b)
{
    while (x->n_sp > 0 && x->sp[x->n_sp - 1].b > a) {
        x->n_sp--;
        if (x->sp[x->n_sp].a < a) a = x->sp[x->n_sp].a;
    }
    if (x->n_sp == x->cap_sp) {
        size_t cap = x->cap_sp * 2;
        span *n = x->sp == x->inl ? malloc(cap * sizeof *n)
                                  : realloc(x->sp, cap * sizeof *n);
        if (!n) {
            x->oom = true;
            return;
        }
        if (x->sp == x->inl) memcpy(n, x->inl, sizeof x->inl);
        x->sp = n;
        x->cap_sp = cap;
    }
    x->sp[x->n_sp++] = (span){a, b};
}

/* The start of the code point that ends at byte i > 0 of p. */
static size_t utf8_prev(const uint8_t *p, size_t len, size_t i)
{
    size_t b = i - 1;
    while (b > 0 && i - b < 4 && (p[b] & 0xC0) == 0x80)
        b--;
    uint32_t cp;
    return b + utf8_next(p + b, len - b, &cp) == i ? b : i - 1;
}

/* Where a match of n symbols begins, given that the last of them was symbol
 * k (1-based) of the character at bytes [at, ...). Walks back over the
 * characters, counting the symbols each normalises to; only ignorables and
 * letters of the match lie in between (anything else restarts the
 * automaton). */
static size_t match_start(const scan *x, size_t at, uint32_t k, uint32_t n)
{
    while (n > k && at > 0) {
        n -= k;
        at = utf8_prev(x->p, x->len, at);
        uint32_t cp, cps[NORM_CPS_MAX];
        utf8_next(x->p + at, x->len - at, &cp);
        k = cp == CP_BAD ? 0 : (uint32_t)norm_cp(cp, cps);
    }
    return at;
}

/* Every word that ends at state st with symbol k of the character at bytes
 * [at, end). */
static __attribute__((noinline)) void report(scan *x, uint32_t st, size_t at,
                                             size_t end, uint32_t k)
{
    const sb_filter *f = x->f;
    const uint32_t *S = f->states;
    st &= ID_MASK;
    for (uint32_t s = S[st + R_WORD] ? st : S[st + R_DICT] & ID_MASK; s;
         s = S[s + R_DICT] & ID_MASK) {
        for (uint32_t w = S[s + R_WORD]; w; w = f->words[w - 1].next) {
            const fword *wd = &f->words[w - 1];
            sb_filter_policy pol = f->cats[wd->cat].policy;
            /* Only a mask or a boundary before the word needs its start. */
            size_t start = pol == SB_FILTER_MASK || wd->flags & FLAG_BOUND_START
                               ? match_start(x, at, k, wd->len)
                               : 0;
            if (wd->flags & FLAG_BOUND_START && start > 0) {
                size_t b = utf8_prev(x->p, x->len, start);
                uint32_t cp;
                utf8_next(x->p + b, x->len - b, &cp);
                if (ascii_alnum(cp)) continue;
            }
            if (wd->flags & FLAG_BOUND_END && end < x->len) {
                uint32_t cp;
                utf8_next(x->p + end, x->len - end, &cp);
                if (ascii_alnum(cp)) continue;
            }
            x->v->categories |= 1ull << wd->cat;
            x->v->policies |= 1u << pol;
            if (pol > x->v->policy) x->v->policy = pol;
            x->v->matches++;
            if (pol == SB_FILTER_MASK) span_add(x, start, end);
        }
    }
}

/* A character the BMP table cannot answer: outside the BMP, or one that
 * normalises to several letters (U+FB01 "fi", U+00DF "ss"). */
static uint32_t feed_slow(scan *x, uint32_t st, uint32_t *prev, uint32_t cp,
                          size_t at, size_t end)
{
    if (cp == CP_BAD) {
        *prev = 0;
        return 0;
    }
    uint32_t cps[NORM_CPS_MAX];
    size_t k = norm_cp(cp, cps);
    for (size_t i = 0; i < k; i++) {
        uint32_t sym = alpha_sym(x->f, cps[i]);
        st = sym == SYM_NONE ? 0 : step(automaton_of(x->f), st, *prev, sym);
        *prev = sym;
        if (st & ID_OUT) report(x, st, at, end, (uint32_t)i + 1);
    }
    return st;
}

/* Writes the text with every span masked: one '*' per code point. */
static int mask_build(scan *x)
{
    sb_filter_verdict *v = x->v;
    char *o = malloc(x->len + 1);
    if (!o) return -ENOMEM;
    size_t k = 0, i = 0;
    for (size_t s = 0; s < x->n_sp; s++) {
        memcpy(o + k, x->p + i, x->sp[s].a - i);
        k += x->sp[s].a - i;
        for (i = x->sp[s].a; i < x->sp[s].b;) {
            uint32_t cp;
            i += utf8_next(x->p + i, x->sp[s].b - i, &cp);
            o[k++] = '*';
        }
    }
    memcpy(o + k, x->p + i, x->len - i);
    k += x->len - i;
    o[k] = '\0';
    v->masked = o;
    v->masked_len = k;
    return 0;
}

int sb_filter_scan(const sb_filter *f, const char *text, size_t len,
                   sb_filter_verdict *v)
{
    memset(v, 0, sizeof *v);
    scan x;
    x.f = f;
    x.p = (const uint8_t *)text;
    x.len = len;
    x.v = v;
    x.sp = x.inl;
    x.n_sp = 0;
    x.cap_sp = SPANS_INLINE;
    x.oom = false;
    const uint8_t *p = x.p;
    const uint16_t *bmp = f->bmp;
    const automaton a = automaton_of(f);
    uint32_t st = 0, prev = 0; /* prev: the last symbol fed */
    for (size_t i = 0; i < len;) {
        size_t at = i;
        uint32_t sym, cp = p[i];
        if (cp < 0x80) {
            sym = bmp[cp];
            i++;
        } else {
            i += utf8_next(p + i, len - i, &cp);
            sym = cp < 0x10000 ? bmp[cp] : SYM_SLOW;
        }
        if (sym >= SYM_SLOW) { /* SYM_SLOW or SYM_IGN */
            if (sym == SYM_SLOW) st = feed_slow(&x, st, &prev, cp, at, i);
            continue;
        }
        st = sym == SYM_NONE ? 0 : step(a, st, prev, sym);
        prev = sym;
        if (st & ID_OUT) report(&x, st, at, i, 1);
    }
    int rc = 0;
    if (x.oom)
        rc = -ENOMEM;
    else if (v->policy == SB_FILTER_MASK)
        rc = mask_build(&x);
    if (x.sp != x.inl) free(x.sp);
    return rc;
}

void sb_filter_verdict_clear(sb_filter_verdict *v)
{
    if (!v) return;
    free(v->masked);
    memset(v, 0, sizeof *v);
}

/* ---- building ------------------------------------------------------------ */

typedef struct builder {
    sb_filter *f;
    sb_map alpha;    /* normalised code point -> symbol */
    sb_map child;    /* trie: state << 16 | symbol -> child state */
    uint32_t *sword; /* trie state -> first word ending there (index + 1) */
    uint32_t n_nodes, cap_nodes, cap_words;
    char *err;
    size_t err_len;
} builder;

static int errf(builder *b, int rc, const char *origin, unsigned line,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int errf(builder *b, int rc, const char *origin, unsigned line,
                const char *fmt, ...)
{
    if (b->err_len == 0) return rc;
    int n = line ? snprintf(b->err, b->err_len, "%s:%u: ", origin, line)
                 : snprintf(b->err, b->err_len, "%s: ", origin);
    if (n >= 0 && (size_t)n < b->err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->err + n, b->err_len - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return rc;
}

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

/* The symbol of a normalised letter, allocating one for a new letter.
 * Returns 0 with *sym set, or a negative code. */
static int alpha_get(builder *b, uint32_t cp, uint32_t *sym)
{
    uintptr_t s = (uintptr_t)sb_map_get(&b->alpha, cp);
    if (!s) {
        if (b->f->n_alpha >= ALPHA_MAX) return SB_E_TOO_LARGE;
        s = ++b->f->n_alpha;
        if (sb_map_put(&b->alpha, cp, (void *)s)) return -ENOMEM;
    }
    *sym = (uint32_t)s;
    return 0;
}

/* Adds a word (its symbols) of category cat to the trie. */
static int word_add(builder *b, const uint32_t *syms, size_t n, uint8_t cat,
                    uint8_t flags)
{
    sb_filter *f = b->f;
    uint32_t st = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t key = (uint64_t)st << 16 | syms[i];
        uintptr_t c = (uintptr_t)sb_map_get(&b->child, key);
        if (!c) {
            if (b->n_nodes >= SB_FILTER_STATES_MAX) return SB_E_TOO_LARGE;
            if (grow((void **)&b->sword, &b->cap_nodes, b->n_nodes + 1,
                     sizeof *b->sword))
                return -ENOMEM;
            c = b->n_nodes++;
            b->sword[c] = 0;
            if (sb_map_put(&b->child, key, (void *)c)) return -ENOMEM;
        }
        st = (uint32_t)c;
    }
    for (uint32_t w = b->sword[st]; w; w = f->words[w - 1].next)
        if (f->words[w - 1].cat == cat && f->words[w - 1].flags == flags)
            return 0; /* a repeat */
    if (f->n_words >= SB_FILTER_WORDS_MAX) return SB_E_TOO_LARGE;
    if (grow((void **)&f->words, &b->cap_words, f->n_words + 1,
             sizeof *f->words))
        return -ENOMEM;
    f->words[f->n_words] = (fword){b->sword[st], (uint8_t)n, cat, flags};
    b->sword[st] = ++f->n_words;
    return 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && is_space(**s))
        (*s)++, (*n)--;
    while (*n > 0 && is_space((*s)[*n - 1]))
        (*n)--;
}

static bool parse_policy(const char *s, size_t n, sb_filter_policy *p)
{
    static const struct {
        const char *name;
        sb_filter_policy p;
    } names[] = {{"block", SB_FILTER_BLOCK},
                 {"mask", SB_FILTER_MASK},
                 {"review", SB_FILTER_REVIEW}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].name) == n && strncmp(s, names[i].name, n) == 0) {
            *p = names[i].p;
            return true;
        }
    return false;
}

/* One word line (trimmed, not empty): options, normalisation, insertion. */
static int parse_word(builder *b, const char *origin, unsigned line,
                      const char *s, size_t n, uint8_t cat)
{
    uint8_t flags = 0;
    if (n > 0 && s[0] == '|') {
        flags |= FLAG_BOUND_START;
        s++, n--;
    }
    if (n > 0 && s[n - 1] == '|') {
        flags |= FLAG_BOUND_END;
        n--;
    }
    uint32_t syms[SB_FILTER_WORD_CHARS_MAX];
    size_t k = 0;
    const uint8_t *p = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        uint32_t cp, cps[NORM_CPS_MAX];
        i += utf8_next(p + i, n - i, &cp); /* the line is valid UTF-8 */
        size_t m = norm_cp(cp, cps);
        for (size_t j = 0; j < m; j++) {
            if (k == SB_FILTER_WORD_CHARS_MAX)
                return errf(b, SB_E_TOO_LARGE, origin, line,
                            "word longer than %d letters after "
                            "normalisation",
                            SB_FILTER_WORD_CHARS_MAX);
            int rc = alpha_get(b, cps[j], &syms[k++]);
            if (rc == SB_E_TOO_LARGE)
                return errf(b, rc, origin, line,
                            "more than %d distinct letters in the lists",
                            ALPHA_MAX);
            if (rc) return errf(b, rc, origin, line, "out of memory");
        }
    }
    if (k == 0)
        return errf(b, SB_E_INVALID, origin, line,
                    "word is empty after normalisation (only spaces, "
                    "punctuation or symbols)");
    int rc = word_add(b, syms, k, cat, flags);
    if (rc == SB_E_TOO_LARGE)
        return errf(b, rc, origin, line,
                    "too many words (at most %d) or states (at most %u)",
                    SB_FILTER_WORDS_MAX, SB_FILTER_STATES_MAX);
    if (rc) return errf(b, rc, origin, line, "out of memory");
    return 0;
}

static bool name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SB_FILTER_NAME_BYTES_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Parses one list: "policy: X" first, then a word per line; blank lines and
 * lines starting with '#' are skipped. */
static int parse_list(builder *b, const sb_filter_list *l, uint8_t cat)
{
    const char *origin = l->origin ? l->origin : l->category;
    category *c = &b->f->cats[cat];
    if (!name_valid(l->category))
        return errf(b, SB_E_INVALID, origin, 0,
                    "bad category name \"%s\" (1-%d of A-Z a-z 0-9 _ -)",
                    l->category, SB_FILTER_NAME_BYTES_MAX);
    for (size_t i = 0; i < cat; i++)
        if (strcmp(b->f->cats[i].name, l->category) == 0)
            return errf(b, SB_E_INVALID, origin, 0,
                        "category \"%s\" given twice", l->category);
    snprintf(c->name, sizeof c->name, "%s", l->category);
    if (l->len > SB_FILTER_FILE_BYTES_MAX)
        return errf(b, SB_E_TOO_LARGE, origin, 0, "list over %u bytes",
                    SB_FILTER_FILE_BYTES_MAX);
    const char *p = l->text, *end = l->text + l->len;
    if (l->len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3; /* BOM */
    bool have_policy = false;
    unsigned line = 0;
    while (p < end) {
        line++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *s = p;
        size_t n = (size_t)((nl ? nl : end) - p);
        p = nl ? nl + 1 : end;
        if (n > SB_FILTER_LINE_BYTES_MAX)
            return errf(b, SB_E_TOO_LARGE, origin, line,
                        "line longer than %d bytes", SB_FILTER_LINE_BYTES_MAX);
        if (memchr(s, '\0', n))
            return errf(b, SB_E_INVALID, origin, line, "NUL byte");
        if (!sb_utf8_valid(s, n))
            return errf(b, SB_E_INVALID, origin, line, "invalid UTF-8");
        trim(&s, &n);
        if (n == 0 || s[0] == '#') continue;
        bool is_policy = n >= 7 && strncasecmp(s, "policy:", 7) == 0;
        if (is_policy && have_policy)
            return errf(b, SB_E_INVALID, origin, line, "policy given twice");
        if (is_policy) {
            const char *v = s + 7;
            size_t vn = n - 7;
            trim(&v, &vn);
            if (!parse_policy(v, vn, &c->policy))
                return errf(b, SB_E_INVALID, origin, line,
                            "unknown policy \"%.*s\" (block, mask or review)",
                            (int)(vn < 32 ? vn : 32), v);
            have_policy = true;
            continue;
        }
        if (!have_policy)
            return errf(b, SB_E_INVALID, origin, line,
                        "a \"policy: block|mask|review\" line must come "
                        "before the first word");
        int rc = parse_word(b, origin, line, s, n, cat);
        if (rc) return rc;
    }
    if (!have_policy)
        return errf(b, SB_E_INVALID, origin, 0,
                    "no \"policy: block|mask|review\" line");
    return 0;
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

static int alpha_cmp(const void *a, const void *b)
{
    const alpha *x = a, *y = b;
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

/* Turns the trie in b->child into the scan's tables: the alphabet renumbered
 * in code point order, failure links and output chains (breadth first, so
 * every shorter state is done before it is needed), the records laid out
 * in that same order, the root's dense row and the BMP table. */
static int automaton_build(builder *b)
{
    sb_filter *f = b->f;
    uint32_t n = b->n_nodes, n_alpha = f->n_alpha;
    size_t ne = b->child.len;
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
    for (size_t i = 0; i < b->alpha.cap; i++) {
        const sb_map_slot *sl = &b->alpha.slots[i];
        if (sl->val)
            f->alpha[m++] =
                (alpha){(uint32_t)sl->key, (uint32_t)(uintptr_t)sl->val};
    }
    qsort(f->alpha, m, sizeof *f->alpha, alpha_cmp);
    uint32_t na = 0; /* ASCII symbols: 1..na */
    for (uint32_t i = 0; i < m; i++) {
        renum[f->alpha[i].sym] = i + 1;
        f->alpha[i].sym = i + 1;
        if (f->alpha[i].cp < 0x80) na = i + 1;
    }
    f->n_ascii = na;

    size_t k = 0;
    for (size_t i = 0; i < b->child.cap; i++) {
        const sb_map_slot *sl = &b->child.slots[i];
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
                for (uint32_t t = fail[u];; t = fail[t]) {
                    if ((fl = trie_child(es, first, t, sym)) || t == 0) break;
                }
            }
            fail[v] = fl;
            dict[v] = b->sword[fl] ? fl : dict[fl];
            depth[v] = depth[u] + 1;
            if (b->sword[v] || dict[v]) id[v] = ID_OUT;
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
    automaton am = automaton_of(f); /* step_full reads no bigrams */
    for (uint32_t q = 1; q < n; q++) {
        uint32_t u = order[q];
        uint32_t *r = f->states + (id[u] & ID_MASK);
        const edge *e = es + first[u];
        uint32_t ne_u = first[u + 1] - first[u];
        r[R_WORD] = b->sword[u];
        r[R_DICT] = id[dict[u]];
        r[R_FAIL] = id[fail[u]];
        uint32_t lo, hi;
        if (dense_span(e, ne_u, id[u] & ID_WIDE, na, &lo, &hi)) {
            /* A child, or where the failure state goes: its record, like
             * every shallower one, is complete. */
            r[R_META] = R_DENSE | lo << 15 | (hi - lo + 1);
            for (uint32_t a = lo, i = 0; a <= hi; a++)
                r[R_EDGES + a - lo] = i < ne_u && e[i].sym == a
                                          ? id[e[i++].to]
                                          : step_full(am, r[R_FAIL], a);
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
        uint32_t h = bigram_hash(automaton_of(f), insym[es[i].from], es[i].sym);
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
        uint32_t e = norm_bmp[cp];
        f->bmp[cp] = e == NORM_IGN     ? SYM_IGN
                     : e == NORM_MULTI ? SYM_SLOW
                     : e < 0x10000     ? bmp_sym[e]
                                       : (uint16_t)alpha_sym(f, e);
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

static void filter_free(sb_filter *f)
{
    if (!f) return;
    free(f->root);
    free(f->states);
    free(f->bigram);
    free(f->words);
    free(f->alpha);
    free(f);
}

int sb_filter_compile(const sb_filter_list *lists, size_t n, sb_filter **out,
                      char *err, size_t err_len)
{
    *out = NULL;
    if (err_len) err[0] = '\0';
    pthread_once(&norm_once, norm_init);
    builder b = {.err = err,
                 .err_len = err_len,
                 .alpha = SB_MAP_INIT,
                 .child = SB_MAP_INIT};
    if (n > SB_FILTER_CATEGORIES_MAX)
        return errf(&b, SB_E_TOO_LARGE, "lists", 0, "more than %d categories",
                    SB_FILTER_CATEGORIES_MAX);
    sb_filter *f = calloc(1, sizeof *f);
    if (!f) return -ENOMEM;
    b.f = f;
    atomic_init(&f->refs, 1);
    int rc = grow((void **)&b.sword, &b.cap_nodes, 1, sizeof *b.sword);
    if (rc) goto err;
    b.sword[0] = 0;
    b.n_nodes = 1; /* the root */
    for (size_t i = 0; i < n; i++) {
        f->n_cats = i + 1;
        if ((rc = parse_list(&b, &lists[i], (uint8_t)i))) goto err;
    }
    if ((rc = automaton_build(&b))) goto err;
    sb_map_free(&b.alpha);
    sb_map_free(&b.child);
    free(b.sword);
    *out = f;
    return 0;
err:
    if (rc == -ENOMEM && err_len && !err[0])
        snprintf(err, err_len, "out of memory compiling the word lists");
    if (rc == SB_E_TOO_LARGE && err_len && !err[0])
        snprintf(err, err_len, "word lists too large to compile");
    sb_map_free(&b.alpha);
    sb_map_free(&b.child);
    free(b.sword);
    filter_free(f);
    return rc;
}

sb_filter *sb_filter_retain(sb_filter *f)
{
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

void sb_filter_release(sb_filter *f)
{
    if (!f) return;
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        filter_free(f);
}

/* ---- loading a directory ------------------------------------------------- */

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads a whole regular file of at most SB_FILTER_FILE_BYTES_MAX bytes. */
static int read_file(const char *path, char **out, size_t *len, char *err,
                     size_t err_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    int rc = 0;
    char *buf = NULL;
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = -errno;
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = SB_E_INVALID;
        snprintf(err, err_len, "%s: not a regular file", path);
        goto out;
    }
    if (st.st_size > (off_t)SB_FILTER_FILE_BYTES_MAX) {
        rc = SB_E_TOO_LARGE;
        snprintf(err, err_len, "%s: list over %u bytes", path,
                 SB_FILTER_FILE_BYTES_MAX);
        goto out;
    }
    size_t n = (size_t)st.st_size, got = 0;
    buf = malloc(n + 1);
    if (!buf) {
        rc = -ENOMEM;
        snprintf(err, err_len, "%s: out of memory", path);
        goto out;
    }
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            rc = r < 0 ? -errno : -EIO;
            snprintf(err, err_len, "%s: %s", path,
                     r < 0 ? strerror(errno) : "file shrank while read");
            goto out;
        }
        got += (size_t)r;
    }
    *out = buf;
    *len = n;
    buf = NULL;
out:
    free(buf);
    if (fd >= 0) close(fd);
    return rc;
}

int sb_filter_load_dir(const char *dir, sb_filter **out, char *err,
                       size_t err_len)
{
    char dummy[1];
    if (err_len == 0) {
        err = dummy;
        err_len = sizeof dummy;
    }
    *out = NULL;
    err[0] = '\0';
    char *names[SB_FILTER_CATEGORIES_MAX];
    sb_filter_list lists[SB_FILTER_CATEGORIES_MAX];
    char *paths[SB_FILTER_CATEGORIES_MAX];
    size_t n = 0, loaded = 0;
    int rc = 0;
    DIR *d = opendir(dir);
    if (!d) {
        rc = -errno;
        snprintf(err, err_len, "%s: %s", dir, strerror(errno));
        return rc;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len <= 4 ||
            strcmp(e->d_name + len - 4, ".txt") != 0)
            continue;
        if (n == SB_FILTER_CATEGORIES_MAX) {
            rc = SB_E_TOO_LARGE;
            snprintf(err, err_len, "%s: more than %d lists", dir,
                     SB_FILTER_CATEGORIES_MAX);
            goto out;
        }
        if (!(names[n] = strndup(e->d_name, len - 4))) {
            rc = -ENOMEM;
            goto out;
        }
        n++;
    }
    if (n == 0) {
        rc = SB_E_INVALID;
        snprintf(err, err_len, "%s: no word lists (NAME.txt)", dir);
        goto out;
    }
    qsort(names, n, sizeof *names, name_cmp);
    for (loaded = 0; loaded < n; loaded++) {
        size_t i = loaded;
        size_t plen = strlen(dir) + strlen(names[i]) + 6;
        char *text = NULL;
        size_t tlen = 0;
        if (!(paths[i] = malloc(plen))) {
            rc = -ENOMEM;
            goto out;
        }
        snprintf(paths[i], plen, "%s/%s.txt", dir, names[i]);
        if ((rc = read_file(paths[i], &text, &tlen, err, err_len))) {
            free(paths[i]);
            goto out;
        }
        lists[i] = (sb_filter_list){names[i], paths[i], text, tlen};
    }
    rc = sb_filter_compile(lists, n, out, err, err_len);
out:
    if (rc == -ENOMEM && !err[0])
        snprintf(err, err_len, "%s: out of memory", dir);
    for (size_t i = 0; i < loaded; i++) {
        free((char *)lists[i].text);
        free(paths[i]);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    closedir(d);
    return rc;
}

/* ---- introspection ------------------------------------------------------- */

size_t sb_filter_categories(const sb_filter *f)
{
    return f->n_cats;
}

const char *sb_filter_category_name(const sb_filter *f, size_t i)
{
    return i < f->n_cats ? f->cats[i].name : "";
}

sb_filter_policy sb_filter_category_policy(const sb_filter *f, size_t i)
{
    return i < f->n_cats ? f->cats[i].policy : SB_FILTER_PASS;
}

size_t sb_filter_words(const sb_filter *f)
{
    return f->n_words;
}

size_t sb_filter_bytes(const sb_filter *f)
{
    return sizeof *f + f->states_len * sizeof *f->states +
           ((size_t)f->n_alpha + 1) * (sizeof *f->root + sizeof *f->alpha) +
           ((size_t)1 << f->bigram_log2) / 8 + f->n_words * sizeof *f->words;
}

const char *sb_filter_policy_name(sb_filter_policy p)
{
    switch (p) {
    case SB_FILTER_REVIEW:
        return "review";
    case SB_FILTER_MASK:
        return "mask";
    case SB_FILTER_BLOCK:
        return "block";
    default:
        return "pass";
    }
}

char *sb_filter_categories_str(const sb_filter *f, uint64_t mask, char *buf,
                               size_t n)
{
    size_t k = 0;
    if (n == 0) return buf;
    buf[0] = '\0';
    for (size_t i = 0; i < f->n_cats; i++) {
        if (!(mask & (1ull << i))) continue;
        int w = snprintf(buf + k, n - k, "%s%s", k ? "," : "", f->cats[i].name);
        if (w < 0 || (size_t)w >= n - k) break;
        k += (size_t)w;
    }
    return buf;
}
