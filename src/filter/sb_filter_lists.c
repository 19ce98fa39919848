/* The filter's word lists: the text of one list parsed line by line into
 * the trie, with an error that names the list and line; and the directory
 * of lists read from disk, the filter's only I/O. */
#include "sb_filter_lists.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sb_error.h"
#include "sb_filter_norm.h"
#include "sb_utf8.h"

/* ---- parsing one list ---------------------------------------------------- */

typedef struct parser {
    sb__filter_trie *t;
    char *err;
    size_t err_len;
} parser;

static int errf(parser *b, int rc, const char *origin, unsigned line,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int errf(parser *b, int rc, const char *origin, unsigned line,
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
static int parse_word(parser *b, const char *origin, unsigned line,
                      const char *s, size_t n, uint8_t cat)
{
    uint8_t flags = 0;
    if (n > 0 && s[0] == '|') {
        flags |= SB_FILTER_BOUND_START;
        s++, n--;
    }
    if (n > 0 && s[n - 1] == '|') {
        flags |= SB_FILTER_BOUND_END;
        n--;
    }
    uint32_t syms[SB_FILTER_WORD_CHARS_MAX];
    size_t k = 0;
    const uint8_t *p = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        uint32_t cp, cps[SB_FILTER_NORM_CPS_MAX];
        /* the line is valid UTF-8 */
        i += sb__filter_norm_decode(p + i, n - i, &cp);
        size_t m = sb__filter_norm_cp(cp, cps);
        for (size_t j = 0; j < m; j++) {
            if (k == SB_FILTER_WORD_CHARS_MAX)
                return errf(b, SB_E_TOO_LARGE, origin, line,
                            "word longer than %d letters after "
                            "normalisation",
                            SB_FILTER_WORD_CHARS_MAX);
            int rc = sb__filter_ac_letter(b->t, cps[j], &syms[k++]);
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
    int rc = sb__filter_ac_add_word(b->t, syms, k, cat, flags);
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

/* "policy: X" first, then a word per line; blank lines and lines starting
 * with '#' are skipped. */
int sb__filter_lists_parse(sb__filter_trie *t, const sb_filter_list *l,
                           uint8_t cat, char *err, size_t err_len)
{
    parser pb = {t, err, err_len}, *b = &pb;
    sb_filter *f = t->f;
    const char *origin = l->origin ? l->origin : l->category;
    sb__filter_cat *c = &f->cats[cat];
    if (!name_valid(l->category))
        return errf(b, SB_E_INVALID, origin, 0,
                    "bad category name \"%s\" (1-%d of A-Z a-z 0-9 _ -)",
                    l->category, SB_FILTER_NAME_BYTES_MAX);
    for (size_t i = 0; i < cat; i++)
        if (strcmp(f->cats[i].name, l->category) == 0)
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
