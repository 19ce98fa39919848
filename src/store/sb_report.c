/* Reports (sb_report.h): the scan keeps each conversation's figures in a
 * compact fact (its desk, group and agent as indexes into a table of the
 * names seen), the facts are sorted by the report's keys, and each run of
 * equal keys becomes a row; medians and percentiles come from the sorted
 * values of the row. */
#include "sb_report.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"

#define DAY_S 86400

static const char *const BY_NAMES[] = {"desk", "group", "agent", "day"};
#define BY_KEYS 4

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

/* ---- the names seen ----------------------------------------------------- */

typedef struct strtab {
    char **s;       /* by id */
    uint32_t *rank; /* by id: the position in byte order */
    size_t n, cap;
    uint32_t *slot; /* open addressing: id + 1, 0 empty */
    size_t slots;
} strtab;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int strtab_grow(strtab *t)
{
    size_t slots = t->slots ? t->slots * 2 : 64;
    uint32_t *slot = calloc(slots, sizeof *slot);
    if (!slot) return -ENOMEM;
    for (size_t id = 0; id < t->n; id++) {
        size_t i = hash_str(t->s[id]) & (slots - 1);
        while (slot[i])
            i = (i + 1) & (slots - 1);
        slot[i] = (uint32_t)id + 1;
    }
    free(t->slot);
    t->slot = slot;
    t->slots = slots;
    return 0;
}

/* The id of s, added if new; -ENOMEM. */
static int64_t strtab_id(strtab *t, const char *s)
{
    if (2 * (t->n + 1) > t->slots && strtab_grow(t)) return -ENOMEM;
    size_t i = hash_str(s) & (t->slots - 1);
    for (; t->slot[i]; i = (i + 1) & (t->slots - 1))
        if (strcmp(t->s[t->slot[i] - 1], s) == 0) return t->slot[i] - 1;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **a = realloc(t->s, cap * sizeof *a);
        if (!a) return -ENOMEM;
        t->s = a;
        t->cap = cap;
    }
    if (!(t->s[t->n] = strdup(s))) return -ENOMEM;
    t->slot[i] = (uint32_t)t->n + 1;
    return (int64_t)t->n++;
}

static int rank_cmp(const void *a, const void *b, void *ud)
{
    const strtab *t = ud;
    return strcmp(t->s[*(const uint32_t *)a], t->s[*(const uint32_t *)b]);
}

/* Fills t->rank. */
static int strtab_rank(strtab *t)
{
    uint32_t *order = malloc((t->n ? t->n : 1) * sizeof *order);
    t->rank = malloc((t->n ? t->n : 1) * sizeof *t->rank);
    if (!order || !t->rank) {
        free(order);
        return -ENOMEM;
    }
    for (size_t i = 0; i < t->n; i++)
        order[i] = (uint32_t)i;
    if (t->n) qsort_r(order, t->n, sizeof *order, rank_cmp, t);
    for (size_t i = 0; i < t->n; i++)
        t->rank[order[i]] = (uint32_t)i;
    free(order);
    return 0;
}

static void strtab_free(strtab *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->s[i]);
    free(t->s);
    free(t->rank);
    free(t->slot);
}

/* ---- the scan ----------------------------------------------------------- */

/* One conversation: durations in ms, -1 where it has none. */
typedef struct fact {
    uint32_t key[3]; /* desk, group, agent: string ids */
    int64_t day;     /* local day it was opened */
    int64_t first, resolution, wait;
    uint8_t rating;
    bool asked;
} fact;

typedef struct scan {
    const sb_tz *tz;
    unsigned by;
    fact *f;
    size_t n, cap;
    strtab names;
} scan;

static int64_t floor_div(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

static int on_row(void *ud, const sb_store_report_row *r)
{
    scan *x = ud;
    if (x->n == SB_REPORT_CONVS_MAX) return SB_E_TOO_LARGE;
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 256;
        fact *f = realloc(x->f, cap * sizeof *f);
        if (!f) return -ENOMEM;
        x->f = f;
        x->cap = cap;
    }
    fact *f = &x->f[x->n];
    const char *names[3] = {r->desk, r->group, r->agent};
    for (int k = 0; k < 3; k++) {
        int64_t id = strtab_id(&x->names, names[k] ? names[k] : "");
        if (id < 0) return (int)id;
        f->key[k] = (uint32_t)id;
    }
    int64_t t = floor_div(r->created_ts, 1000);
    f->day = sb_tz_day_of(t + sb_tz_offset(x->tz, t));
    f->first = r->first_response_ts ? r->first_response_ts - r->created_ts : -1;
    f->resolution = r->closed_ts ? r->closed_ts - r->created_ts : -1;
    /* queued_ts is when it last began to wait for an agent, assigned_ts
     * when it got one; assigned before it began to wait, it waits still. */
    f->wait = -1;
    if (r->assigned_ts && r->assigned_ts >= r->queued_ts)
        f->wait = r->queued_ts ? r->assigned_ts - r->queued_ts : 0;
    f->rating =
        (uint8_t)(r->csat_rating <= SB_CSAT_RATING_MAX ? r->csat_rating : 0);
    f->asked = r->csat_asked_ts != 0;
    if (f->first < -1) f->first = 0; /* clocks that went back */
    if (f->resolution < -1) f->resolution = 0;
    x->n++;
    return 0;
}

/* Orders facts by the report's keys (names in byte order, then days). */
static int fact_cmp(const void *a, const void *b, void *ud)
{
    const scan *s = ud;
    const fact *x = a, *y = b;
    const uint32_t *rank = s->names.rank;
    for (int k = 0; k < 3; k++) {
        if (!(s->by & 1u << k)) continue;
        uint32_t rx = rank[x->key[k]], ry = rank[y->key[k]];
        if (rx != ry) return rx < ry ? -1 : 1;
    }
    if ((s->by & SB_REPORT_BY_DAY) && x->day != y->day)
        return x->day < y->day ? -1 : 1;
    return 0;
}

/* ---- rows --------------------------------------------------------------- */

static int i64_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The p-th percentile of v[0..n) (sorted) by the nearest rank: the value
 * at rank ceil(p * n / 100); 0 for none. */
static int64_t nearest_rank(const int64_t *v, size_t n, unsigned p)
{
    if (n == 0) return 0;
    size_t k = (p * n + 99) / 100;
    return v[k ? k - 1 : 0];
}

/* Sorts v[0..n) and sets *median and *p90. */
static void spread(int64_t *v, size_t n, int64_t *median, int64_t *p90)
{
    qsort(v, n, sizeof *v, i64_cmp);
    *median = nearest_rank(v, n, 50);
    *p90 = nearest_rank(v, n, 90);
}

static int set_str(char **dst, const char *s)
{
    if (!s[0]) return 0; /* the field's default, "" */
    return (*dst = strdup(s)) ? 0 : -ENOMEM;
}

/* Fills row from facts f[0..n) (with room v for 3n values); its key from
 * f[0] where the report is by it. */
static int row_fill(const scan *x, const fact *f, size_t n, int64_t *v,
                    Sbp__ReportRow *row, bool keyed)
{
    int64_t *first = v, *res = v + n, *wait = v + 2 * n;
    size_t n_first = 0, n_res = 0, n_wait = 0;
    uint64_t sum = 0;
    row->conversations = n;
    for (size_t i = 0; i < n; i++) {
        if (f[i].first >= 0) first[n_first++] = f[i].first;
        if (f[i].resolution >= 0) res[n_res++] = f[i].resolution;
        if (f[i].wait >= 0) wait[n_wait++] = f[i].wait;
        row->csat_requests += f[i].asked;
        if (f[i].rating) {
            row->csat_responses++;
            sum += f[i].rating;
        }
    }
    row->first_responses = n_first;
    row->closed = n_res;
    row->assigned = n_wait;
    spread(first, n_first, &row->first_response_median_ms,
           &row->first_response_p90_ms);
    spread(res, n_res, &row->resolution_median_ms, &row->resolution_p90_ms);
    spread(wait, n_wait, &row->queue_wait_median_ms, &row->queue_wait_p90_ms);
    if (row->csat_responses)
        row->csat_average = (double)sum / (double)row->csat_responses;
    if (row->csat_requests)
        row->csat_response_rate =
            (double)row->csat_responses / (double)row->csat_requests;
    if (!keyed || n == 0) return 0;
    char **keys[3] = {&row->desk, &row->group, &row->agent};
    for (int k = 0; k < 3; k++)
        if ((x->by & 1u << k) && set_str(keys[k], x->names.s[f[0].key[k]]))
            return -ENOMEM;
    if (x->by & SB_REPORT_BY_DAY) {
        char day[11];
        sb_tz_date_format(f[0].day, day);
        if (set_str(&row->day, day)) return -ENOMEM;
    }
    return 0;
}

static Sbp__ReportRow *row_new(void)
{
    Sbp__ReportRow *r = malloc(sizeof *r);
    if (r) sbp__report_row__init(r);
    return r;
}

/* The rows of the sorted facts and their total into resp. */
static int rows_build(scan *x, Sbp__ReportResp *resp, char *err, size_t elen)
{
    int64_t *v = malloc((3 * x->n + 1) * sizeof *v);
    if (!v) return -ENOMEM;
    int rc = 0;
    if (x->by) {
        size_t rows = 0;
        for (size_t i = 0; i < x->n; i++)
            if (i == 0 || fact_cmp(&x->f[i - 1], &x->f[i], x) != 0) rows++;
        if (rows > SB_REPORT_ROWS_MAX) {
            free(v);
            return say(err, elen, SB_E_TOO_LARGE,
                       "more than %d rows: fewer keys or a shorter span",
                       SB_REPORT_ROWS_MAX);
        }
        resp->rows = calloc(rows ? rows : 1, sizeof *resp->rows);
        if (!resp->rows) rc = -ENOMEM;
        for (size_t i = 0; rc == 0 && i < x->n;) {
            size_t j = i + 1;
            while (j < x->n && fact_cmp(&x->f[i], &x->f[j], x) == 0)
                j++;
            Sbp__ReportRow *row = row_new();
            if (!row) {
                rc = -ENOMEM;
                break;
            }
            resp->rows[resp->n_rows++] = row;
            rc = row_fill(x, &x->f[i], j - i, v, row, true);
            i = j;
        }
    }
    if (rc == 0 && !(resp->total = row_new())) rc = -ENOMEM;
    if (rc == 0) rc = row_fill(x, x->f, x->n, v, resp->total, false);
    free(v);
    return rc;
}

int sb_report_run(sb_store *s, const sb_report_query *q, Sbp__ReportResp **out,
                  char *err, size_t elen)
{
    *out = NULL;
    scan x = {.by = q->by};
    sb_tz *tz = NULL;
    int rc = sb_tz_load(q->tz, &tz);
    if (rc) {
        return rc == -ENOMEM
                   ? say(err, elen, rc, "out of memory")
                   : say(err, elen, SB_E_INVALID,
                         "tz: %s is not a time zone of tzdata", q->tz);
    }
    x.tz = tz;
    Sbp__ReportResp *resp = malloc(sizeof *resp);
    if (!resp) {
        sb_tz_free(tz);
        return say(err, elen, -ENOMEM, "out of memory");
    }
    sbp__report_resp__init(resp);
    /* The span: local midnight of the first day to that after the last. */
    resp->from_ms = sb_tz_from_local(tz, q->from_day * DAY_S) * 1000;
    resp->to_ms = sb_tz_from_local(tz, (q->to_day + 1) * DAY_S) * 1000;
    rc = -ENOMEM;
    if (set_str(&resp->tz, sb_tz_name(tz))) goto out;
    resp->by = calloc(BY_KEYS, sizeof *resp->by);
    if (!resp->by) goto out;
    for (unsigned k = 0; k < BY_KEYS; k++)
        if (q->by & 1u << k) {
            if (!(resp->by[resp->n_by] = strdup(BY_NAMES[k]))) goto out;
            resp->n_by++;
        }
    rc = sb_store_report_scan(s, resp->from_ms, resp->to_ms, q->desk, q->group,
                              q->agent, on_row, &x);
    if (rc == SB_E_TOO_LARGE) {
        say(err, elen, rc, "more than %d conversations: a shorter span",
            SB_REPORT_CONVS_MAX);
        goto out;
    }
    if (rc) goto out;
    if ((rc = strtab_rank(&x.names))) goto out;
    if (x.n) qsort_r(x.f, x.n, sizeof *x.f, fact_cmp, &x);
    rc = rows_build(&x, resp, err, elen);
out:
    if (rc == -ENOMEM)
        say(err, elen, rc, "out of memory");
    else if (rc == SB_E_STORE)
        say(err, elen, rc, "the store failed");
    if (rc) {
        sbp__report_resp__free_unpacked(resp, NULL);
        resp = NULL;
    }
    free(x.f);
    strtab_free(&x.names);
    sb_tz_free(tz);
    *out = resp;
    return rc;
}
