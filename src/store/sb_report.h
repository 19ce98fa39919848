/* Reports: the figures of the service conversations opened in a span of
 * days, per desk, skill group, last agent and day (any combination), from
 * the store's rows (sb_store_report_scan): how many were opened and
 * closed, first-response and resolution times, the wait in the queue (median
 * and 90th percentile, by the nearest rank), the customers' ratings
 * (average, and how many of those asked answered). Days are those of a
 * time zone (sb_tz). A report reads one row per conversation of its span,
 * so it runs where a long read does not hold others up (the store queue's
 * report reader, SB_REQ_REPORT), never on the event loop.
 *
 * The REPORT frame (sb_gwreport.c) is how clients ask, the REST API's
 * GET /api/v1/reports included (a frame on a session of its own); a
 * caller of the store queue may also fill an Sbp__Report, check it with
 * sb_report_query_set (sb_reportfmt.h), submit an SB_REQ_REPORT with it,
 * and render the answer with sb_report_render. */
#ifndef SB_REPORT_H
#define SB_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "sb_reportfmt.h"
#include "sb_store.h"
#include "switchboard.pb-c.h"

#define SB_REPORT_CONVS_MAX 1000000 /* conversations one report reads */
#define SB_REPORT_ROWS_MAX 10000    /* rows one report has */

/* Computes the report of q on s (a read; no transaction needed) into *out
 * (the caller frees it with sbp__report_resp__free_unpacked). Returns 0;
 * SB_E_INVALID for a time zone tzdata does not have; SB_E_TOO_LARGE past
 * SB_REPORT_CONVS_MAX conversations or SB_REPORT_ROWS_MAX rows (a smaller
 * span or fewer keys will do); SB_E_STORE or -ENOMEM; err says which. */
int sb_report_run(sb_store *s, const sb_report_query *q, Sbp__ReportResp **out,
                  char *err, size_t err_len);

#endif
