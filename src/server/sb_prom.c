/* Prometheus text format writer. */
#include "sb_prom.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char *const TYPES[] = {"counter", "gauge", "histogram"};

static void put(sb_prom *p, const char *s, size_t n)
{
    if (p->rc == 0) p->rc = sb_buf_append(p->out, s, n);
}

static void putf(sb_prom *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void putf(sb_prom *p, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line) {
        if (p->rc == 0) p->rc = -EOVERFLOW; /* a bug: names are short */
        return;
    }
    put(p, line, (size_t)n);
}

void sb_prom_family(sb_prom *p, const char *name, sb_prom_type type,
                    const char *help)
{
    putf(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, TYPES[type]);
}

char *sb_prom_labels(char *buf, size_t cap, ...)
{
    size_t n = 0;
    va_list ap;
    va_start(ap, cap);
    const char *k;
    buf[0] = '\0';
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        /* Room for the name, =", the closing " and a comma. */
        if (n + strlen(k) + 5 >= cap) break;
        n += (size_t)snprintf(buf + n, cap - n, "%s%s=\"", n ? "," : "", k);
        for (; *v && n + 4 < cap; v++) {
            if (*v == '\\' || *v == '"') {
                buf[n++] = '\\';
                buf[n++] = *v;
            } else if (*v == '\n') {
                buf[n++] = '\\';
                buf[n++] = 'n';
            } else {
                buf[n++] = *v;
            }
        }
        buf[n++] = '"';
        buf[n] = '\0';
    }
    va_end(ap);
    return buf;
}

static void sample_head(sb_prom *p, const char *name, const char *suffix,
                        const char *labels, const char *extra)
{
    bool any = (labels && *labels) || extra;
    putf(p, "%s%s%s%s%s%s%s", name, suffix, any ? "{" : "",
         labels ? labels : "", labels && *labels && extra ? "," : "",
         extra ? extra : "", any ? "} " : " ");
}

void sb_prom_u64(sb_prom *p, const char *name, const char *labels, uint64_t v)
{
    sample_head(p, name, "", labels, NULL);
    putf(p, "%llu\n", (unsigned long long)v);
}

void sb_prom_f64(sb_prom *p, const char *name, const char *labels, double v)
{
    sample_head(p, name, "", labels, NULL);
    putf(p, "%.9g\n", v);
}

void sb_prom_hist(sb_prom *p, const char *name, const char *labels,
                  const sb_hist *h, double scale)
{
    uint64_t cum = 0;
    char le[48];
    for (size_t i = 0; i < h->bounds->n; i++) {
        cum += h->counts[i];
        snprintf(le, sizeof le, "le=\"%.9g\"",
                 (double)h->bounds->le[i] * scale);
        sample_head(p, name, "_bucket", labels, le);
        putf(p, "%llu\n", (unsigned long long)cum);
    }
    cum += h->counts[h->bounds->n];
    sample_head(p, name, "_bucket", labels, "le=\"+Inf\"");
    putf(p, "%llu\n", (unsigned long long)cum);
    sample_head(p, name, "_sum", labels, NULL);
    putf(p, "%.9g\n", (double)h->sum * scale);
    sample_head(p, name, "_count", labels, NULL);
    putf(p, "%llu\n", (unsigned long long)cum);
}
