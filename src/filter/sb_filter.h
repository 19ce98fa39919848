/* The sensitive-word filter: word lists compiled into an immutable
 * Aho-Corasick automaton over normalised text, and a matcher that takes the
 * UTF-8 bytes of a message and returns a verdict (block, mask or review),
 * the categories hit and, for mask, the text with every matched span
 * replaced. docs/filter.md describes the list format and the matching rules.
 *
 * Normalisation, applied alike to list words and to scanned text, one code
 * point at a time: Unicode NFKC with case folding and marks stripped
 * (utf8proc), so full-width forms, case and accents do not matter; then
 * every code point that is not a letter or a digit (spaces, punctuation,
 * symbols, emoji, controls, zero-width and format characters) is
 * "ignorable": it is skipped between the characters of a word, so
 * "b.a.d w-o-r-d" and "b<U+200B>adword" match "badword". A word's
 * characters must be contiguous apart from ignorables.
 *
 * Only sb_filter_load_dir() touches the file system. A compiled filter is
 * never modified, so any number of threads may scan with it at once; its
 * owner swaps filters and keeps them alive with sb_filter_retain/release. */
#ifndef SB_FILTER_H
#define SB_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits of a word list directory; going over one refuses the lists. */
#define SB_FILTER_CATEGORIES_MAX 64 /* list files per directory */
#define SB_FILTER_FILE_BYTES_MAX (16u << 20)
#define SB_FILTER_LINE_BYTES_MAX 1024
#define SB_FILTER_WORDS_MAX 500000      /* over all lists */
#define SB_FILTER_WORD_CHARS_MAX 64     /* after normalisation */
#define SB_FILTER_NAME_BYTES_MAX 32     /* category name: [A-Za-z0-9_-] */
#define SB_FILTER_STATES_MAX (1u << 23) /* automaton states */
#define SB_FILTER_ERR_BYTES 256         /* a sensible size for err buffers */

/* Ordered by strength: a message gets the strongest policy it matched. */
typedef enum sb_filter_policy {
    SB_FILTER_PASS = 0,   /* nothing matched */
    SB_FILTER_REVIEW = 1, /* store and deliver, flagged for later review */
    SB_FILTER_MASK = 2,   /* store and deliver with the matches masked */
    SB_FILTER_BLOCK = 3,  /* refuse: nothing stored, nothing delivered */
} sb_filter_policy;

typedef struct sb_filter sb_filter;

/* One word list: a category, its text in the list format (a policy line,
 * then one word per line), and a label for error messages (a file path;
 * NULL: the category name). Nothing is kept after compiling. */
typedef struct sb_filter_list {
    const char *category;
    const char *origin;
    const char *text;
    size_t len;
} sb_filter_list;

/* Compiles n lists into a new filter (reference count 1). Pure: no I/O.
 * Returns 0, SB_E_INVALID for a malformed list (invalid UTF-8, a missing,
 * repeated or unknown policy, a word empty after normalisation, a bad or
 * repeated category name), SB_E_TOO_LARGE for a list over a limit, or
 * -ENOMEM. On failure *out is NULL and err (if err_len > 0) holds one line
 * naming the list and line: "spam.txt:12: word is empty after
 * normalisation". */
int sb_filter_compile(const sb_filter_list *lists, size_t n, sb_filter **out,
                      char *err, size_t err_len);

/* Reads every NAME.txt in dir (sorted by name; other files and dot files
 * are ignored) as the list of category NAME and compiles them. Returns 0,
 * a code of sb_filter_compile(), -errno when the directory or a file
 * cannot be read, or SB_E_INVALID when dir holds no list. On failure *out
 * is NULL and err names the directory or file:line. Nothing else is
 * touched: the caller's current filter stays in force. */
int sb_filter_load_dir(const char *dir, sb_filter **out, char *err,
                       size_t err_len);

/* Takes a reference; returns f. */
sb_filter *sb_filter_retain(sb_filter *f);
/* Drops a reference and frees the filter with the last one; accepts NULL.
 * Both are safe from any thread. */
void sb_filter_release(sb_filter *f);

/* What the matcher found in one text. */
typedef struct sb_filter_verdict {
    sb_filter_policy policy; /* the strongest policy matched */
    unsigned policies;       /* bit (1u << p) for every policy p matched */
    uint64_t categories;     /* bit i: category i matched */
    uint32_t matches;        /* word occurrences matched */
    /* When policy is SB_FILTER_MASK: the text with each span matched by a
     * word of a mask category replaced by one '*' per code point (the
     * ignorables inside the span included), NUL-terminated, never longer
     * than the text; malloc'd, owned by the caller (see
     * sb_filter_verdict_clear). NULL otherwise. */
    char *masked;
    size_t masked_len;
} sb_filter_verdict;

/* Scans len bytes of UTF-8 text (not NUL-terminated; bytes that are not
 * valid UTF-8 are taken as unknown characters and never read past len).
 * Fills *v. Returns 0, or -ENOMEM when the masked text could not be
 * allocated (v->masked is then NULL, the rest of *v is valid). Allocates
 * nothing unless a mask word matched. */
int sb_filter_scan(const sb_filter *f, const char *text, size_t len,
                   sb_filter_verdict *v);
/* Frees v->masked and zeroes *v. */
void sb_filter_verdict_clear(sb_filter_verdict *v);

/* ---- introspection ------------------------------------------------------- */

size_t sb_filter_categories(const sb_filter *f);
/* Category i's name (its file's name without .txt); valid while f is. */
const char *sb_filter_category_name(const sb_filter *f, size_t i);
sb_filter_policy sb_filter_category_policy(const sb_filter *f, size_t i);
/* Words compiled (after removing repeats). */
size_t sb_filter_words(const sb_filter *f);
/* Memory the compiled filter takes, in bytes. */
size_t sb_filter_bytes(const sb_filter *f);
/* "pass", "review", "mask" or "block". */
const char *sb_filter_policy_name(sb_filter_policy p);
/* Writes the names of the categories in mask to buf as "a,b,c" (cut to
 * fit, always NUL-terminated when n > 0); returns buf. */
char *sb_filter_categories_str(const sb_filter *f, uint64_t mask, char *buf,
                               size_t n);

/* Normalises UTF-8 text as the matcher sees it: the letters and digits
 * left after NFKC, case folding and stripping marks, ignorables dropped.
 * Writes the longest prefix of whole characters that fits in n - 1 bytes
 * and a NUL (n > 0); returns the length of the whole result. For tests,
 * tools and docs. */
size_t sb_filter_normalize(const char *text, size_t len, char *out, size_t n);

#endif
