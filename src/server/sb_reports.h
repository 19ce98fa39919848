/* Reports for the server's HTTP side (the REST API's /api/v1/reports): a
 * query string's parameters into a report's query, and the report computed
 * by the store queue's report reader and rendered (JSON, CSV or a table),
 * in one call whose callback answers on the loop thread. The gateway's
 * REPORT frame is the same report (sb_gwreport.h); authorization (an
 * admin's token) is the caller's. Loop thread only. */
#ifndef SB_REPORTS_H
#define SB_REPORTS_H

#include <stddef.h>
#include <stdint.h>

#include "sb_reportfmt.h"
#include "sb_storeq.h"

#define SB_REPORTS_QUERY_BYTES_MAX 1024

/* A report's parameters: the strings point into text, the decoded copy of
 * the query string that this holds. */
typedef struct sb_reports_args {
    char text[SB_REPORTS_QUERY_BYTES_MAX + 1];
    Sbp__Report report; /* from, to, tz, by, desk, group, agent */
    char *by[4];
    sb_report_format format; /* "format", default JSON */
} sb_reports_args;

/* Parses a query string ("from=2025-06-01&to=2025-06-30&tz=Europe%2FBerlin
 * &by=agent,day&format=csv", without the '?'): from (required), to
 * (default: from), tz, by, desk, group, agent, format (json, csv or
 * table). Percent-escapes and '+' are decoded. Returns 0, or SB_E_INVALID
 * (SB_E_TOO_LARGE past SB_REPORTS_QUERY_BYTES_MAX) with err saying what;
 * whether the values make a report is sb_reports_get's to say. */
int sb_reports_parse(const char *qs, size_t len, sb_reports_args *a, char *err,
                     size_t err_len);

/* Called once with the rendered report: rc 0 with body (len bytes of
 * media type `type`), or a negative code with err (SB_E_INVALID: an
 * unknown time zone; SB_E_TOO_LARGE: too many conversations or rows;
 * SB_E_RATE_LIMITED: too many reports running; SB_E_STORE). body and err
 * are valid during the call. */
typedef void (*sb_reports_cb)(void *ud, int rc, const char *type,
                              const uint8_t *body, size_t len, const char *err);

/* Checks the query and submits the report to q; cb answers later, once.
 * Returns 0, or SB_E_INVALID with err saying why (then cb is never
 * called), or -ENOMEM. */
int sb_reports_get(sb_storeq *q, const Sbp__Report *query,
                   sb_report_format format, sb_reports_cb cb, void *ud,
                   char *err, size_t err_len);

#endif
