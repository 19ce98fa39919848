/* The sensitive-word filter: compiling word lists into one filter, sharing
 * it between threads by reference count, and the scan, which feeds a text's
 * symbols through the automaton and maps each match back to its span of
 * the original text by walking back from its end (rare), rather than by
 * remembering every letter's position. The parts it builds on:
 * sb_filter_norm (normalisation), sb_filter_ac (the automaton) and
 * sb_filter_lists (the list format and the directory of lists). */
#include "sb_filter.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_filter_ac.h"
#include "sb_filter_int.h"
#include "sb_filter_lists.h"
#include "sb_filter_norm.h"

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
    return b + sb__filter_norm_decode(p + b, len - b, &cp) == i ? b : i - 1;
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
        uint32_t cp, cps[SB_FILTER_NORM_CPS_MAX];
        sb__filter_norm_decode(x->p + at, x->len - at, &cp);
        k = cp == SB_FILTER_CP_BAD ? 0 : (uint32_t)sb__filter_norm_cp(cp, cps);
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
            const sb__filter_word *wd = &f->words[w - 1];
            sb_filter_policy pol = f->cats[wd->cat].policy;
            /* Only a mask or a boundary before the word needs its start. */
            size_t start =
                pol == SB_FILTER_MASK || wd->flags & SB_FILTER_BOUND_START
                    ? match_start(x, at, k, wd->len)
                    : 0;
            if (wd->flags & SB_FILTER_BOUND_START && start > 0) {
                size_t b = utf8_prev(x->p, x->len, start);
                uint32_t cp;
                sb__filter_norm_decode(x->p + b, x->len - b, &cp);
                if (sb__filter_norm_ascii_alnum(cp)) continue;
            }
            if (wd->flags & SB_FILTER_BOUND_END && end < x->len) {
                uint32_t cp;
                sb__filter_norm_decode(x->p + end, x->len - end, &cp);
                if (sb__filter_norm_ascii_alnum(cp)) continue;
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
    if (cp == SB_FILTER_CP_BAD) {
        *prev = 0;
        return 0;
    }
    uint32_t cps[SB_FILTER_NORM_CPS_MAX];
    size_t k = sb__filter_norm_cp(cp, cps);
    for (size_t i = 0; i < k; i++) {
        uint32_t sym = sb__filter_ac_symbol(x->f, cps[i]);
        st = sym == SYM_NONE
                 ? 0
                 : sb__filter_ac_step(sb__filter_ac_of(x->f), st, *prev, sym);
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
            i += sb__filter_norm_decode(x->p + i, x->sp[s].b - i, &cp);
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
    const sb__filter_ac a = sb__filter_ac_of(f);
    uint32_t st = 0, prev = 0; /* prev: the last symbol fed */
    for (size_t i = 0; i < len;) {
        size_t at = i;
        uint32_t sym, cp = p[i];
        if (cp < 0x80) {
            sym = bmp[cp];
            i++;
        } else {
            i += sb__filter_norm_decode(p + i, len - i, &cp);
            sym = cp < 0x10000 ? bmp[cp] : SYM_SLOW;
        }
        if (sym >= SYM_SLOW) { /* SYM_SLOW or SYM_IGN */
            if (sym == SYM_SLOW) st = feed_slow(&x, st, &prev, cp, at, i);
            continue;
        }
        st = sym == SYM_NONE ? 0 : sb__filter_ac_step(a, st, prev, sym);
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

/* ---- compiling and sharing ---------------------------------------------- */

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
    sb__filter_norm_init();
    if (n > SB_FILTER_CATEGORIES_MAX) {
        if (err_len)
            snprintf(err, err_len, "lists: more than %d categories",
                     SB_FILTER_CATEGORIES_MAX);
        return SB_E_TOO_LARGE;
    }
    sb_filter *f = calloc(1, sizeof *f);
    if (!f) return -ENOMEM;
    atomic_init(&f->refs, 1);
    sb__filter_trie t;
    int rc = sb__filter_ac_trie_init(&t, f);
    if (rc) goto err;
    for (size_t i = 0; i < n; i++) {
        f->n_cats = i + 1;
        rc = sb__filter_lists_parse(&t, &lists[i], (uint8_t)i, err, err_len);
        if (rc) goto err;
    }
    if ((rc = sb__filter_ac_build(&t))) goto err;
    sb__filter_ac_trie_free(&t);
    *out = f;
    return 0;
err:
    if (rc == -ENOMEM && err_len && !err[0])
        snprintf(err, err_len, "out of memory compiling the word lists");
    if (rc == SB_E_TOO_LARGE && err_len && !err[0])
        snprintf(err, err_len, "word lists too large to compile");
    sb__filter_ac_trie_free(&t);
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
