/* A report's two forms outside the store: the query that asks for one
 * (checked from a REPORT frame's fields into sb_report_query) and the
 * renderings of its answer (a REPORT_RESP) as a table for people, JSON or
 * CSV. Shared by the gateway, sbctl and the server's HTTP side. Pure: no
 * I/O. The figures themselves are the store's (sb_report.h). */
#ifndef SB_REPORTFMT_H
#define SB_REPORTFMT_H

#include <stddef.h>
#include <stdint.h>

#include "sb_buf.h"
#include "sb_limits.h"
#include "sb_tz.h"
#include "switchboard.pb-c.h"

#define SB_REPORT_DAYS_MAX 366 /* days one report spans */
#define SB_REPORT_ERR_BYTES 160

/* The keys a report's rows are by (sb_report_query.by). */
enum {
    SB_REPORT_BY_DESK = 1u << 0,
    SB_REPORT_BY_GROUP = 1u << 1,
    SB_REPORT_BY_AGENT = 1u << 2,
    SB_REPORT_BY_DAY = 1u << 3,
};

typedef struct sb_report_query {
    int64_t from_day, to_day; /* local days since 1970-01-01, inclusive */
    char tz[SB_TZ_NAME_BYTES_MAX + 1];
    unsigned by; /* SB_REPORT_BY_* */
    /* Filters ("": any). */
    char desk[SB_ID_BYTES_MAX + 1], group[SB_ID_BYTES_MAX + 1],
        agent[SB_ID_BYTES_MAX + 1];
} sb_report_query;

/* Checks a REPORT frame's query and fills q: dates YYYY-MM-DD with from
 * <= to and at most SB_REPORT_DAYS_MAX days, by among "desk", "group",
 * "agent", "day" (each once), ids of at most SB_ID_BYTES_MAX bytes, a time
 * zone name of the right form ("" is UTC; whether tzdata has it is known
 * only when the report runs). Returns 0 or SB_E_INVALID with err saying
 * what. */
int sb_report_query_set(sb_report_query *q, const Sbp__Report *r, char *err,
                        size_t err_len);

/* Splits "agent,day" into keys[0..*n) (pointers into buf, which it cuts
 * at the commas; at most max), for an Sbp__Report's by: for callers that
 * take the keys as one text. Returns 0 or SB_E_INVALID (too many). */
int sb_report_by_split(char *buf, char **keys, size_t max, size_t *n);

typedef enum sb_report_format {
    SB_REPORT_TABLE, /* aligned columns, durations as 1h02m03s */
    SB_REPORT_JSON,  /* {"from_ms", "to_ms", "tz", "by", "rows", "total"} */
    SB_REPORT_CSV,   /* RFC 4180; the last row, keys "*", is the total */
} sb_report_format;

/* "table", "json" or "csv": 0, or SB_E_INVALID. */
int sb_report_format_parse(const char *name, sb_report_format *out);
/* The media type of a format ("text/plain; charset=utf-8"...). */
const char *sb_report_format_type(sb_report_format f);

/* Appends r rendered in format f to out. Returns 0 or -ENOMEM. */
int sb_report_render(const Sbp__ReportResp *r, sb_report_format f, sb_buf *out);

#endif
