/* A report's query and renderings (sb_reportfmt.h). */
#include "sb_reportfmt.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"

#define CELL_BYTES 96
#define COLS_MAX 18

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

static bool copy_id(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) return false;
    memcpy(dst, src ? src : "", n + 1);
    return true;
}

int sb_report_query_set(sb_report_query *q, const Sbp__Report *r, char *err,
                        size_t elen)
{
    memset(q, 0, sizeof *q);
    if (sb_tz_date_parse(r->from, &q->from_day) ||
        sb_tz_date_parse(r->to, &q->to_day))
        return say(err, elen, SB_E_INVALID,
                   "from and to: want dates YYYY-MM-DD");
    if (q->to_day < q->from_day)
        return say(err, elen, SB_E_INVALID, "to is before from");
    if (q->to_day - q->from_day + 1 > SB_REPORT_DAYS_MAX)
        return say(err, elen, SB_E_INVALID, "at most %d days",
                   SB_REPORT_DAYS_MAX);
    const char *tz = r->tz && r->tz[0] ? r->tz : "UTC";
    if (!copy_id(q->tz, sizeof q->tz, tz))
        return say(err, elen, SB_E_INVALID, "tz: too long");
    for (size_t i = 0; i < r->n_by; i++) {
        unsigned k = 0;
        while (k < BY_KEYS && strcmp(r->by[i], BY_NAMES[k]) != 0)
            k++;
        if (k == BY_KEYS || (q->by & 1u << k))
            return say(err, elen, SB_E_INVALID,
                       "by: desk, group, agent or day, each once");
        q->by |= 1u << k;
    }
    if (!copy_id(q->desk, sizeof q->desk, r->desk) ||
        !copy_id(q->group, sizeof q->group, r->group) ||
        !copy_id(q->agent, sizeof q->agent, r->agent))
        return say(err, elen, SB_E_INVALID,
                   "desk, group and agent: at most %d bytes", SB_ID_BYTES_MAX);
    return 0;
}

int sb_report_by_split(char *buf, char **keys, size_t max, size_t *n)
{
    *n = 0;
    char *save = NULL;
    for (char *k = strtok_r(buf, ",", &save); k;
         k = strtok_r(NULL, ",", &save)) {
        if (*n == max) return SB_E_INVALID;
        keys[(*n)++] = k;
    }
    return 0;
}

int sb_report_format_parse(const char *name, sb_report_format *out)
{
    static const char *const NAMES[] = {"table", "json", "csv"};
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, NAMES[i]) == 0) {
            *out = (sb_report_format)i;
            return 0;
        }
    return SB_E_INVALID;
}

const char *sb_report_format_type(sb_report_format f)
{
    return f == SB_REPORT_JSON  ? "application/json"
           : f == SB_REPORT_CSV ? "text/csv; charset=utf-8"
                                : "text/plain; charset=utf-8";
}

/* ---- the row's cells ----------------------------------------------------- */

/* The key columns of r, in order (by bits). */
static unsigned key_bits(const Sbp__ReportResp *r)
{
    unsigned by = 0;
    for (size_t i = 0; i < r->n_by; i++)
        for (unsigned k = 0; k < BY_KEYS; k++)
            if (strcmp(r->by[i], BY_NAMES[k]) == 0) by |= 1u << k;
    return by;
}

static const char *row_key(const Sbp__ReportRow *row, unsigned k)
{
    switch (k) {
    case SB_REPORT_BY_DESK:
        return row->desk;
    case SB_REPORT_BY_GROUP:
        return row->group;
    case SB_REPORT_BY_AGENT:
        return row->agent;
    default:
        return row->day;
    }
}

/* The metric columns, in order: their names and values. */
typedef struct metric {
    const char *name;
    bool duration; /* a time in ms */
    /* The count a duration is over (its value is "-" at 0). */
    uint64_t (*count)(const Sbp__ReportRow *r);
    int64_t (*value)(const Sbp__ReportRow *r);
} metric;

#define COUNT(f)                                                               \
    static uint64_t n_##f(const Sbp__ReportRow *r)                             \
    {                                                                          \
        return r->f;                                                           \
    }
#define VALUE(f)                                                               \
    static int64_t v_##f(const Sbp__ReportRow *r)                              \
    {                                                                          \
        return (int64_t)r->f;                                                  \
    }
COUNT(first_responses)
COUNT(closed)
COUNT(assigned)
VALUE(conversations)
VALUE(closed)
VALUE(first_responses)
VALUE(first_response_median_ms)
VALUE(first_response_p90_ms)
VALUE(resolution_median_ms)
VALUE(resolution_p90_ms)
VALUE(assigned)
VALUE(queue_wait_median_ms)
VALUE(queue_wait_p90_ms)
VALUE(csat_requests)
VALUE(csat_responses)

static const metric METRICS[] = {
    {"conversations", false, NULL, v_conversations},
    {"closed", false, NULL, v_closed},
    {"first_responses", false, NULL, v_first_responses},
    {"first_response_median_ms", true, n_first_responses,
     v_first_response_median_ms},
    {"first_response_p90_ms", true, n_first_responses, v_first_response_p90_ms},
    {"resolution_median_ms", true, n_closed, v_resolution_median_ms},
    {"resolution_p90_ms", true, n_closed, v_resolution_p90_ms},
    {"assigned", false, NULL, v_assigned},
    {"queue_wait_median_ms", true, n_assigned, v_queue_wait_median_ms},
    {"queue_wait_p90_ms", true, n_assigned, v_queue_wait_p90_ms},
    {"csat_requests", false, NULL, v_csat_requests},
    {"csat_responses", false, NULL, v_csat_responses},
};
#define N_METRICS (sizeof METRICS / sizeof *METRICS)

static int put(sb_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int put(sb_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return -EINVAL;
    if ((size_t)n < sizeof tmp) return sb_buf_append(b, tmp, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big) return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = sb_buf_append(b, big, (size_t)n);
    free(big);
    return rc;
}

/* ---- JSON ---------------------------------------------------------------- */

static json_t *row_json(const Sbp__ReportRow *row, unsigned by)
{
    json_t *o = json_object();
    for (unsigned k = 0; o && k < BY_KEYS; k++)
        if (by & 1u << k)
            json_object_set_new(o, BY_NAMES[k],
                                json_string(row_key(row, 1u << k)));
    for (size_t i = 0; o && i < N_METRICS; i++)
        json_object_set_new(o, METRICS[i].name,
                            json_integer(METRICS[i].value(row)));
    if (o) {
        json_object_set_new(o, "csat_average", json_real(row->csat_average));
        json_object_set_new(o, "csat_response_rate",
                            json_real(row->csat_response_rate));
    }
    return o;
}

static int render_json(const Sbp__ReportResp *r, sb_buf *out)
{
    unsigned by = key_bits(r);
    json_t *o = json_object(), *rows = json_array(), *keys = json_array();
    if (!o || !rows || !keys) goto oom;
    json_object_set_new(o, "from_ms", json_integer(r->from_ms));
    json_object_set_new(o, "to_ms", json_integer(r->to_ms));
    json_object_set_new(o, "tz", json_string(r->tz));
    for (size_t i = 0; i < r->n_by; i++)
        json_array_append_new(keys, json_string(r->by[i]));
    json_object_set_new(o, "by", keys);
    keys = NULL;
    for (size_t i = 0; i < r->n_rows; i++)
        json_array_append_new(rows, row_json(r->rows[i], by));
    json_object_set_new(o, "rows", rows);
    rows = NULL;
    if (r->total) json_object_set_new(o, "total", row_json(r->total, 0));
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text) return -ENOMEM;
    int rc = sb_buf_append(out, text, strlen(text));
    if (rc == 0) rc = sb_buf_append(out, "\n", 1);
    free(text);
    return rc;
oom:
    json_decref(o);
    json_decref(rows);
    json_decref(keys);
    return -ENOMEM;
}

/* ---- CSV ----------------------------------------------------------------- */

/* A field as RFC 4180 has it; a text that a spreadsheet would take for a
 * formula (=, +, -, @ first) starts with a quote mark instead. */
static int csv_field(sb_buf *b, const char *s, bool first)
{
    int rc = first ? 0 : sb_buf_append(b, ",", 1);
    bool formula = s[0] && strchr("=+-@", s[0]);
    bool quote = formula || strpbrk(s, ",\"\r\n") != NULL;
    if (rc == 0 && quote) rc = sb_buf_append(b, "\"", 1);
    if (rc == 0 && formula) rc = sb_buf_append(b, "'", 1);
    for (const char *p = s; rc == 0 && *p; p++)
        rc = *p == '"' ? sb_buf_append(b, "\"\"", 2) : sb_buf_append(b, p, 1);
    if (rc == 0 && quote) rc = sb_buf_append(b, "\"", 1);
    return rc;
}

static int csv_row(sb_buf *b, const Sbp__ReportRow *row, unsigned by,
                   bool total)
{
    int rc = 0;
    bool first = true;
    for (unsigned k = 0; rc == 0 && k < BY_KEYS; k++)
        if (by & 1u << k) {
            rc = csv_field(b, total ? "*" : row_key(row, 1u << k), first);
            first = false;
        }
    for (size_t i = 0; rc == 0 && i < N_METRICS; i++) {
        rc = put(b, "%s%" PRId64, first ? "" : ",", METRICS[i].value(row));
        first = false;
    }
    if (rc == 0)
        rc = put(b, ",%.4f,%.4f\r\n", row->csat_average,
                 row->csat_response_rate);
    return rc;
}

static int render_csv(const Sbp__ReportResp *r, sb_buf *out)
{
    unsigned by = key_bits(r);
    int rc = 0;
    bool first = true;
    for (unsigned k = 0; rc == 0 && k < BY_KEYS; k++)
        if (by & 1u << k) {
            rc = csv_field(out, BY_NAMES[k], first);
            first = false;
        }
    for (size_t i = 0; rc == 0 && i < N_METRICS; i++) {
        rc = put(out, "%s%s", first ? "" : ",", METRICS[i].name);
        first = false;
    }
    if (rc == 0) rc = put(out, ",csat_average,csat_response_rate\r\n");
    for (size_t i = 0; rc == 0 && i < r->n_rows; i++)
        rc = csv_row(out, r->rows[i], by, false);
    if (rc == 0 && r->total) rc = csv_row(out, r->total, by, true);
    return rc;
}

/* ---- the table ----------------------------------------------------------- */

/* ms as people read a duration: 0.4s, 45s, 1m05s, 2h03m, 3d04h. */
static void duration(int64_t ms, char *out, size_t cap)
{
    if (ms < 0) ms = 0;
    int64_t s = ms / 1000;
    if (ms < 10000)
        snprintf(out, cap, "%" PRId64 ".%" PRId64 "s", s, ms % 1000 / 100);
    else if (s < 60)
        snprintf(out, cap, "%" PRId64 "s", s);
    else if (s < 3600)
        snprintf(out, cap, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(out, cap, "%" PRId64 "h%02" PRId64 "m", s / 3600, s / 60 % 60);
    else
        snprintf(out, cap, "%" PRId64 "d%02" PRId64 "h", s / 86400,
                 s / 3600 % 24);
}

static const char *const TABLE_HEAD[] = {
    "convs",    "closed", "1st-resp", "1st-p90", "resolve", "res-p90",
    "assigned", "wait",   "wait-p90", "csat",    "rated",
};
#define TABLE_METRICS (sizeof TABLE_HEAD / sizeof *TABLE_HEAD)

/* The cells of a row: its keys, then TABLE_HEAD's. */
static size_t table_cells(const Sbp__ReportRow *row, unsigned by, bool total,
                          char cells[][CELL_BYTES])
{
    size_t n = 0;
    for (unsigned k = 0; k < BY_KEYS; k++)
        if (by & 1u << k) {
            const char *v =
                total ? (n == 0 ? "total" : "") : row_key(row, 1u << k);
            snprintf(cells[n++], CELL_BYTES, "%s", v[0] || total ? v : "-");
        }
    if (by == 0) snprintf(cells[n++], CELL_BYTES, "total");
    snprintf(cells[n++], CELL_BYTES, "%" PRIu64, row->conversations);
    snprintf(cells[n++], CELL_BYTES, "%" PRIu64, row->closed);
    int64_t d[3][2] = {
        {row->first_response_median_ms, row->first_response_p90_ms},
        {row->resolution_median_ms, row->resolution_p90_ms},
        {row->queue_wait_median_ms, row->queue_wait_p90_ms}};
    uint64_t cnt[3] = {row->first_responses, row->closed, row->assigned};
    for (int i = 0; i < 3; i++) {
        if (i == 2) snprintf(cells[n++], CELL_BYTES, "%" PRIu64, row->assigned);
        for (int j = 0; j < 2; j++, n++) {
            if (cnt[i])
                duration(d[i][j], cells[n], CELL_BYTES);
            else
                snprintf(cells[n], CELL_BYTES, "-");
        }
    }
    if (row->csat_responses)
        snprintf(cells[n++], CELL_BYTES, "%.2f", row->csat_average);
    else
        snprintf(cells[n++], CELL_BYTES, "-");
    snprintf(cells[n++], CELL_BYTES, "%" PRIu64 "/%" PRIu64 " (%.0f%%)",
             row->csat_responses, row->csat_requests,
             row->csat_response_rate * 100.0);
    return n;
}

static int render_table(const Sbp__ReportResp *r, sb_buf *out)
{
    unsigned by = key_bits(r);
    size_t n_rows = r->n_rows + 2; /* the head and the total */
    char(*cells)[COLS_MAX][CELL_BYTES] = calloc(n_rows, sizeof *cells);
    if (!cells) return -ENOMEM;
    size_t cols = 0;
    for (unsigned k = 0; k < BY_KEYS; k++)
        if (by & 1u << k)
            snprintf(cells[0][cols++], CELL_BYTES, "%s", BY_NAMES[k]);
    if (by == 0) snprintf(cells[0][cols++], CELL_BYTES, " ");
    for (size_t i = 0; i < TABLE_METRICS; i++)
        snprintf(cells[0][cols++], CELL_BYTES, "%s", TABLE_HEAD[i]);
    for (size_t i = 0; i < r->n_rows; i++)
        table_cells(r->rows[i], by, false, cells[i + 1]);
    if (r->total) table_cells(r->total, by, true, cells[n_rows - 1]);
    size_t width[COLS_MAX] = {0};
    for (size_t i = 0; i < n_rows; i++)
        for (size_t c = 0; c < cols; c++) {
            size_t w = strlen(cells[i][c]);
            if (w > width[c]) width[c] = w;
        }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n_rows; i++) {
        if (i == n_rows - 1 && !r->total) break;
        for (size_t c = 0; rc == 0 && c < cols; c++) {
            /* Keys to the left, figures to the right. */
            bool key = c < cols - TABLE_METRICS;
            rc = put(out, key ? "%s%-*s" : "%s%*s", c ? "  " : "",
                     c == cols - 1 && key ? 0 : (int)width[c], cells[i][c]);
        }
        if (rc == 0) rc = sb_buf_append(out, "\n", 1);
    }
    free(cells);
    return rc;
}

int sb_report_render(const Sbp__ReportResp *r, sb_report_format f, sb_buf *out)
{
    switch (f) {
    case SB_REPORT_JSON:
        return render_json(r, out);
    case SB_REPORT_CSV:
        return render_csv(r, out);
    default:
        return render_table(r, out);
    }
}
