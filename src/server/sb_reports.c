/* Reports for the HTTP side (sb_reports.h). */
#include "sb_reports.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_req.h"

static int say(char *err, size_t len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int say(char *err, size_t len, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && len) vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return rc;
}

static int hex(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Decodes p[0..n) ('+' and %XX) in place into a NUL-terminated text;
 * false for a broken escape or a NUL. */
static bool decode(char *p, size_t n)
{
    size_t w = 0;
    for (size_t r = 0; r < n; r++) {
        char c = p[r];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int a = r + 1 < n ? hex(p[r + 1]) : -1;
            int b = r + 2 < n ? hex(p[r + 2]) : -1;
            if (a < 0 || b < 0 || (a == 0 && b == 0)) return false;
            c = (char)(a * 16 + b);
            r += 2;
        }
        p[w++] = c;
    }
    p[w] = '\0';
    return true;
}

int sb_reports_parse(const char *qs, size_t len, sb_reports_args *a, char *err,
                     size_t elen)
{
    memset(a, 0, sizeof *a);
    sbp__report__init(&a->report);
    a->format = SB_REPORT_JSON;
    if (len > SB_REPORTS_QUERY_BYTES_MAX)
        return say(err, elen, SB_E_TOO_LARGE, "query over %d bytes",
                   SB_REPORTS_QUERY_BYTES_MAX);
    memcpy(a->text, qs, len);
    a->text[len] = '\0';
    char **fields[] = {&a->report.from, &a->report.to,    &a->report.tz,
                       &a->report.desk, &a->report.group, &a->report.agent};
    static const char *const NAMES[] = {"from", "to",    "tz",
                                        "desk", "group", "agent"};
    for (size_t k = 0; k < 6; k++)
        *fields[k] = NULL; /* not given yet */
    char *by = NULL, *format = NULL;
    char *save = NULL;
    for (char *kv = strtok_r(a->text, "&", &save); kv;
         kv = strtok_r(NULL, "&", &save)) {
        char *v = strchr(kv, '=');
        if (!v) return say(err, elen, SB_E_INVALID, "%s: want NAME=VALUE", kv);
        *v++ = '\0';
        if (!decode(kv, strlen(kv)) || !decode(v, strlen(v)))
            return say(err, elen, SB_E_INVALID, "a broken %%-escape");
        size_t k = 0;
        while (k < 6 && strcmp(kv, NAMES[k]) != 0)
            k++;
        char **dst = k < 6                       ? fields[k]
                     : strcmp(kv, "by") == 0     ? &by
                     : strcmp(kv, "format") == 0 ? &format
                                                 : NULL;
        if (!dst)
            return say(err, elen, SB_E_INVALID, "unknown parameter %s", kv);
        if (*dst) return say(err, elen, SB_E_INVALID, "%s twice", kv);
        *dst = v;
    }
    if (!a->report.to) a->report.to = a->report.from;
    for (size_t k = 2; k < 6; k++)
        if (!*fields[k]) *fields[k] = "";
    if (!a->report.from) {
        a->report.from = a->report.to = "";
        return say(err, elen, SB_E_INVALID, "from=YYYY-MM-DD is required");
    }
    if (by && by[0] && sb_report_by_split(by, a->by, 4, &a->report.n_by) != 0)
        return say(err, elen, SB_E_INVALID,
                   "by: at most desk, group, agent and day");
    a->report.by = a->by;
    if (format && sb_report_format_parse(format, &a->format) != 0)
        return say(err, elen, SB_E_INVALID, "format: json, csv or table");
    return 0;
}

typedef struct job {
    sb_req req;
    sb_reports_cb cb;
    void *ud;
    sb_report_format format;
} job;

static void report_done(sb_req *r)
{
    job *j = (job *)r;
    sb_buf b = SB_BUF_INIT;
    int rc = r->rc;
    if (rc == 0 && sb_report_render(r->u.report.resp, j->format, &b) != 0)
        rc = -ENOMEM;
    const char *why = r->u.report.err[0]        ? r->u.report.err
                      : rc == SB_E_RATE_LIMITED ? "too many reports running"
                      : rc                      ? sb_strerror(rc)
                                                : "";
    j->cb(j->ud, rc, sb_report_format_type(j->format), b.data, b.len, why);
    sb_buf_free(&b);
    if (r->u.report.resp)
        sbp__report_resp__free_unpacked(r->u.report.resp, NULL);
    free(j);
}

int sb_reports_get(sb_storeq *q, const Sbp__Report *query,
                   sb_report_format format, sb_reports_cb cb, void *ud,
                   char *err, size_t elen)
{
    job *j = calloc(1, sizeof *j);
    if (!j) return say(err, elen, -ENOMEM, "out of memory");
    int rc = sb_report_query_set(&j->req.u.report.query, query, err, elen);
    if (rc) {
        free(j);
        return rc;
    }
    j->req.kind = SB_REQ_REPORT;
    j->req.done = report_done;
    j->cb = cb;
    j->ud = ud;
    j->format = format;
    sb_storeq_submit(q, &j->req);
    return 0;
}
