/* Ratings and reports on the store (SQLite, or the PostgreSQL of pgtest.h:
 * test_report_pg): a rating asked for and given once, each refusal; the
 * last agent kept after the close and the wait in the queue of a
 * conversation assigned at once; reports of known conversations whose
 * figures are worked out by hand below, by agent in UTC and by day in
 * Shanghai, with filters, through the store queue's report reader, and
 * rendered as CSV, JSON and a table; the migration of an older store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "pgtest.h"
#include "sb_error.h"
#include "sb_report.h"
#include "sb_reportfmt.h"
#include "sb_req.h"
#include "sb_sqlite_int.h" /* the schema of each version */
#include "sb_store.h"
#include "sb_storeq.h"
#include "sb_tz.h"

#define MINUTE 60000LL
#define HOUR 3600000LL

static bool on_pg(void)
{
    return pgtest_url() != NULL;
}

/* ms of a UTC date and time. */
static int64_t utc(int y, unsigned mo, unsigned d, int hh, int mm)
{
    return (sb_tz_days(y, mo, d) * 86400 + hh * 3600 + mm * 60) * 1000;
}

/* ---- writing the history of a conversation ------------------------------ */

static uint64_t svc_open(sb_store *s, const char *cust, const char *group,
                         int64_t at)
{
    Sbp__Conversation *c = NULL;
    bool created;
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(
        sb_store_service_open(s, cust, "d", group, at, &c, &created), 0);
    assert_int_equal(sb_store_commit(s), 0);
    assert_true(created);
    uint64_t id = c->conv_id;
    sbp__conversation__free_unpacked(c, NULL);
    return id;
}

static void route(sb_store *s, uint64_t c, Sbp__ConvState st, const char *group,
                  const char *agent, int64_t at)
{
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(sb_store_conv_route(s, c, st, group, agent, at, NULL), 0);
    assert_int_equal(sb_store_commit(s), 0);
}

static void first_response(sb_store *s, uint64_t c, int64_t at)
{
    assert_int_equal(sb_store_begin(s), 0);
    assert_int_equal(sb_store_first_response(s, c, at), 0);
    assert_int_equal(sb_store_commit(s), 0);
}

static int csat_ask(sb_store *s, uint64_t c, int64_t at, bool *asked)
{
    assert_int_equal(sb_store_begin(s), 0);
    int rc = sb_store_csat_ask(s, c, at, asked);
    assert_int_equal(sb_store_commit(s), 0);
    return rc;
}

static int csat_set(sb_store *s, uint64_t c, uint32_t rating,
                    const char *comment, int64_t at)
{
    assert_int_equal(sb_store_begin(s), 0);
    int rc = sb_store_csat_set(s, c, rating, comment, at);
    assert_int_equal(sb_store_commit(s), 0);
    return rc;
}

/* Closed by its agent (or by the customer: agent ""), asked for a rating,
 * rated (0: not). */
static void close_rate(sb_store *s, uint64_t c, const char *group, int64_t at,
                       uint32_t rating)
{
    route(s, c, SBP__CONV_STATE__STATE_CLOSED, group, "", at);
    bool asked = false;
    assert_int_equal(csat_ask(s, c, at, &asked), 0);
    assert_true(asked);
    if (rating) assert_int_equal(csat_set(s, c, rating, "", at + MINUTE), 0);
}

/* ---- ratings ------------------------------------------------------------- */

static void test_csat(void **state)
{
    (void)state;
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_OS, &s), 0);
    int64_t t0 = utc(2027, 1, 15, 10, 0);
    uint64_t c = svc_open(s, "cu1", "g1", t0);
    /* Not asked yet. */
    assert_int_equal(csat_set(s, c, 5, "", t0), SB_E_STATE);
    route(s, c, SBP__CONV_STATE__STATE_ASSIGNED, "g1", "a1", t0 + MINUTE);
    route(s, c, SBP__CONV_STATE__STATE_CLOSED, "g1", "", t0 + 2 * MINUTE);
    bool asked = false;
    assert_int_equal(csat_ask(s, c, t0 + 2 * MINUTE, &asked), 0);
    assert_true(asked);
    /* Bad ratings and comments are refused; nothing is stored. */
    assert_int_equal(csat_set(s, c, 0, "", t0), SB_E_INVALID);
    assert_int_equal(csat_set(s, c, 6, "", t0), SB_E_INVALID);
    assert_int_equal(csat_set(s, c, 3, "\xff\xfe", t0), SB_E_INVALID);
    char big[SB_CSAT_COMMENT_BYTES_MAX + 2];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(csat_set(s, c, 3, big, t0), SB_E_TOO_LARGE);
    assert_int_equal(csat_set(s, 424242, 3, "", t0), SB_E_NOT_FOUND);
    /* A comment of exactly the limit is taken. */
    big[SB_CSAT_COMMENT_BYTES_MAX] = '\0';
    assert_int_equal(csat_set(s, c, 2, big, t0 + 3 * MINUTE), 0);
    assert_int_equal(csat_set(s, c, 5, "better", t0 + 4 * MINUTE),
                     SB_E_ALREADY);
    Sbp__Conversation *pc = NULL;
    assert_int_equal(sb_store_conv_get(s, c, &pc), 0);
    assert_int_equal(pc->csat_rating, 2);
    assert_int_equal(strlen(pc->csat_comment), SB_CSAT_COMMENT_BYTES_MAX);
    assert_string_equal(pc->last_agent, "a1"); /* kept after the close */
    assert_string_equal(pc->agent, "");
    sbp__conversation__free_unpacked(pc, NULL);
    /* Rated: not asked again; unknown conversations are said so. */
    assert_int_equal(csat_ask(s, c, t0 + 5 * MINUTE, &asked), 0);
    assert_false(asked);
    assert_int_equal(csat_ask(s, 424242, t0, &asked), SB_E_NOT_FOUND);
    assert_false(asked);
    sb_store_close(s);
    pgtest_tmpdb_remove(&t);
}

/* ---- reports of known data ----------------------------------------------- */

/* Seven service conversations around 2027-01-15 (times UTC):
 *
 *  c1 g1 opened 10:00, queued 10:01, a1 10:05, answered 10:07, closed 10:30,
 *        rated 5: wait 4m, first response 7m, resolution 30m
 *  c2 g1 opened 11:00, queued 11:00, a1 11:10, answered 11:12, closed 12:00,
 *        rated 3: wait 10m, first 12m, resolution 60m
 *  c3 g1 opened 12:00, a2 at once 12:00, answered 12:01, closed 12:20,
 *        asked, not rated: wait 0, first 1m, resolution 20m
 *  c4 g1 opened 23:30, queued 23:31, a2 23:33, answered 23:40, open:
 *        wait 2m, first 10m (in Shanghai, 07:30 on the 16th)
 *  c5 g2 opened 13:00, the bot only, closed by the customer 13:05,
 *        rated 4: resolution 5m
 *  c6 g1 opened on the 16th 02:00, queued, waiting still
 *  c7 g2 opened on the 14th 20:00, the bot only (in Shanghai, 04:00 on
 *        the 15th)
 */
static void seed(sb_store *s)
{
    const int64_t Q = SBP__CONV_STATE__STATE_QUEUED,
                  A = SBP__CONV_STATE__STATE_ASSIGNED;
    uint64_t c1 = svc_open(s, "cu1", "g1", utc(2027, 1, 15, 10, 0));
    route(s, c1, Q, "g1", "", utc(2027, 1, 15, 10, 1));
    route(s, c1, A, "g1", "a1", utc(2027, 1, 15, 10, 5));
    first_response(s, c1, utc(2027, 1, 15, 10, 7));
    close_rate(s, c1, "g1", utc(2027, 1, 15, 10, 30), 5);

    uint64_t c2 = svc_open(s, "cu2", "g1", utc(2027, 1, 15, 11, 0));
    route(s, c2, Q, "g1", "", utc(2027, 1, 15, 11, 0));
    route(s, c2, A, "g1", "a1", utc(2027, 1, 15, 11, 10));
    first_response(s, c2, utc(2027, 1, 15, 11, 12));
    close_rate(s, c2, "g1", utc(2027, 1, 15, 12, 0), 3);

    uint64_t c3 = svc_open(s, "cu3", "g1", utc(2027, 1, 15, 12, 0));
    route(s, c3, A, "g1", "a2", utc(2027, 1, 15, 12, 0));
    first_response(s, c3, utc(2027, 1, 15, 12, 1));
    close_rate(s, c3, "g1", utc(2027, 1, 15, 12, 20), 0);

    uint64_t c4 = svc_open(s, "cu4", "g1", utc(2027, 1, 15, 23, 30));
    route(s, c4, Q, "g1", "", utc(2027, 1, 15, 23, 31));
    route(s, c4, A, "g1", "a2", utc(2027, 1, 15, 23, 33));
    first_response(s, c4, utc(2027, 1, 15, 23, 40));

    uint64_t c5 = svc_open(s, "cu5", "g2", utc(2027, 1, 15, 13, 0));
    close_rate(s, c5, "g2", utc(2027, 1, 15, 13, 5), 4);

    uint64_t c6 = svc_open(s, "cu6", "g1", utc(2027, 1, 16, 2, 0));
    route(s, c6, Q, "g1", "", utc(2027, 1, 16, 2, 0));

    svc_open(s, "cu7", "g2", utc(2027, 1, 14, 20, 0));
}

typedef struct want {
    const char *key; /* the row's key field, "" for the total */
    uint64_t convs, closed, firsts;
    int64_t first_med, first_p90, res_med, res_p90;
    uint64_t assigned;
    int64_t wait_med, wait_p90;
    uint64_t asked, rated;
    double avg, rate;
} want;

static void check_row(const Sbp__ReportRow *r, const want *w, const char *key)
{
    if (strcmp(key, w->key) != 0) fail_msg("row %s, want %s", key, w->key);
    assert_int_equal(r->conversations, w->convs);
    assert_int_equal(r->closed, w->closed);
    assert_int_equal(r->first_responses, w->firsts);
    assert_int_equal(r->first_response_median_ms, w->first_med);
    assert_int_equal(r->first_response_p90_ms, w->first_p90);
    assert_int_equal(r->resolution_median_ms, w->res_med);
    assert_int_equal(r->resolution_p90_ms, w->res_p90);
    assert_int_equal(r->assigned, w->assigned);
    assert_int_equal(r->queue_wait_median_ms, w->wait_med);
    assert_int_equal(r->queue_wait_p90_ms, w->wait_p90);
    assert_int_equal(r->csat_requests, w->asked);
    assert_int_equal(r->csat_responses, w->rated);
    assert_true(r->csat_average > w->avg - 1e-9 &&
                r->csat_average < w->avg + 1e-9);
    assert_true(r->csat_response_rate > w->rate - 1e-9 &&
                r->csat_response_rate < w->rate + 1e-9);
}

static Sbp__ReportResp *run(sb_store *s, const char *from, const char *to,
                            const char *tz, const char *by, const char *agent)
{
    char keys[64];
    snprintf(keys, sizeof keys, "%s", by);
    char *k[4];
    size_t n = 0;
    assert_int_equal(sb_report_by_split(keys, k, 4, &n), 0);
    Sbp__Report r = SBP__REPORT__INIT;
    r.from = (char *)from;
    r.to = (char *)to;
    r.tz = (char *)tz;
    r.by = k;
    r.n_by = n;
    r.agent = (char *)agent;
    sb_report_query q;
    char err[SB_REPORT_ERR_BYTES];
    assert_int_equal(sb_report_query_set(&q, &r, err, sizeof err), 0);
    Sbp__ReportResp *resp = NULL;
    int rc = sb_report_run(s, &q, &resp, err, sizeof err);
    if (rc) fail_msg("report: %d %s", rc, err);
    return resp;
}

/* By the last agent, the 15th in UTC: c1..c5. Medians and 90th
 * percentiles by the nearest rank: of n sorted values, the one at rank
 * ceil(p n / 100).
 *   ""  c5:     resolution [5m]
 *   a1  c1, c2: first [7m, 12m] -> 7m, 12m; resolution [30m, 60m] ->
 *               30m, 60m; wait [4m, 10m] -> 4m, 10m; ratings 5, 3 -> 4
 *   a2  c3, c4: first [1m, 10m] -> 1m, 10m; resolution [20m]; wait
 *               [0, 2m] -> 0, 2m; one asked, none rated
 *   all:        first [1m, 7m, 10m, 12m] -> rank 2 = 7m, rank 4 = 12m;
 *               resolution [5m, 20m, 30m, 60m] -> 20m, 60m; wait
 *               [0, 2m, 4m, 10m] -> 2m, 10m; 3 of 4 rated, 5+3+4 -> 4 */
static const want BY_AGENT[] = {
    {"", 1, 1, 0, 0, 0, 5 * MINUTE, 5 * MINUTE, 0, 0, 0, 1, 1, 4.0, 1.0},
    {"a1", 2, 2, 2, 7 * MINUTE, 12 * MINUTE, 30 * MINUTE, 60 * MINUTE, 2,
     4 * MINUTE, 10 * MINUTE, 2, 2, 4.0, 1.0},
    {"a2", 2, 1, 2, 1 * MINUTE, 10 * MINUTE, 20 * MINUTE, 20 * MINUTE, 2, 0,
     2 * MINUTE, 1, 0, 0.0, 0.0},
};
static const want BY_AGENT_TOTAL = {
    "",          5,           4,           4,   7 * MINUTE,
    12 * MINUTE, 20 * MINUTE, 60 * MINUTE, 4,   2 * MINUTE,
    10 * MINUTE, 4,           3,           4.0, 0.75};

/* By day in Shanghai (UTC+8), the 15th and the 16th: c7 c1 c2 c3 c5 on
 * the 15th, c4 c6 on the 16th.
 *   15th: first [1m, 7m, 12m] -> rank 2 = 7m, rank 3 = 12m; resolution
 *         [5m, 20m, 30m, 60m] -> 20m, 60m; wait [0, 4m, 10m] -> 4m, 10m
 *   16th: first [10m]; nothing closed; wait [2m] (c6 waits still) */
static const want BY_DAY[] = {
    {"2027-01-15", 5, 4, 3, 7 * MINUTE, 12 * MINUTE, 20 * MINUTE, 60 * MINUTE,
     3, 4 * MINUTE, 10 * MINUTE, 4, 3, 4.0, 0.75},
    {"2027-01-16", 2, 0, 1, 10 * MINUTE, 10 * MINUTE, 0, 0, 1, 2 * MINUTE,
     2 * MINUTE, 0, 0, 0.0, 0.0},
};

static void test_report(void **state)
{
    (void)state;
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_OS, &s), 0);
    seed(s);

    Sbp__ReportResp *r = run(s, "2027-01-15", "2027-01-15", "UTC", "agent", "");
    assert_int_equal(r->from_ms, utc(2027, 1, 15, 0, 0));
    assert_int_equal(r->to_ms, utc(2027, 1, 16, 0, 0));
    assert_int_equal(r->n_by, 1);
    assert_string_equal(r->by[0], "agent");
    assert_int_equal(r->n_rows, 3);
    for (size_t i = 0; i < 3; i++) {
        check_row(r->rows[i], &BY_AGENT[i], r->rows[i]->agent);
        assert_string_equal(r->rows[i]->day, "");
        assert_string_equal(r->rows[i]->group, "");
    }
    check_row(r->total, &BY_AGENT_TOTAL, r->total->agent);

    /* The same figures rendered. */
    sb_buf b = SB_BUF_INIT;
    assert_int_equal(sb_report_render(r, SB_REPORT_CSV, &b), 0);
    assert_int_equal(sb_buf_append(&b, "", 1), 0);
    assert_string_equal(
        (char *)b.data,
        "agent,conversations,closed,first_responses,first_response_median_ms,"
        "first_response_p90_ms,resolution_median_ms,resolution_p90_ms,"
        "assigned,queue_wait_median_ms,queue_wait_p90_ms,csat_requests,"
        "csat_responses,csat_average,csat_response_rate\r\n"
        ",1,1,0,0,0,300000,300000,0,0,0,1,1,4.0000,1.0000\r\n"
        "a1,2,2,2,420000,720000,1800000,3600000,2,240000,600000,2,2,4.0000,"
        "1.0000\r\n"
        "a2,2,1,2,60000,600000,1200000,1200000,2,0,120000,1,0,0.0000,"
        "0.0000\r\n"
        "*,5,4,4,420000,720000,1200000,3600000,4,120000,600000,4,3,4.0000,"
        "0.7500\r\n");
    b.len = 0;
    assert_int_equal(sb_report_render(r, SB_REPORT_JSON, &b), 0);
    assert_int_equal(sb_buf_append(&b, "", 1), 0);
    json_error_t je;
    json_t *j = json_loads((char *)b.data, 0, &je);
    assert_non_null(j);
    json_t *rows = json_object_get(j, "rows");
    assert_int_equal(json_array_size(rows), 3);
    json_t *a1 = json_array_get(rows, 1);
    assert_string_equal(json_string_value(json_object_get(a1, "agent")), "a1");
    assert_int_equal(
        json_integer_value(json_object_get(a1, "first_response_p90_ms")),
        720000);
    assert_null(json_object_get(a1, "day")); /* not a key of this report */
    assert_true(json_real_value(json_object_get(json_object_get(j, "total"),
                                                "csat_response_rate")) == 0.75);
    assert_string_equal(json_string_value(json_object_get(j, "tz")), "UTC");
    json_decref(j);
    b.len = 0;
    assert_int_equal(sb_report_render(r, SB_REPORT_TABLE, &b), 0);
    assert_int_equal(sb_buf_append(&b, "", 1), 0);
    const char *table = (char *)b.data;
    assert_non_null(strstr(table, "agent"));
    assert_non_null(strstr(table, "7m00s")); /* a1's first-response median */
    assert_non_null(strstr(table, "1h00m")); /* its resolution p90 */
    assert_non_null(strstr(table, "3/4 (75%)"));
    assert_non_null(strstr(table, "total"));
    sb_buf_free(&b);
    sbp__report_resp__free_unpacked(r, NULL);

    r = run(s, "2027-01-15", "2027-01-16", "Asia/Shanghai", "day", "");
    assert_int_equal(r->from_ms, utc(2027, 1, 14, 16, 0));
    assert_int_equal(r->to_ms, utc(2027, 1, 16, 16, 0));
    assert_int_equal(r->n_rows, 2);
    for (size_t i = 0; i < 2; i++)
        check_row(r->rows[i], &BY_DAY[i], r->rows[i]->day);
    assert_int_equal(r->total->conversations, 7);
    assert_int_equal(r->total->queue_wait_median_ms, 2 * MINUTE);
    sbp__report_resp__free_unpacked(r, NULL);

    /* One agent, by group and day: only a1's, in g1 on the 15th. */
    r = run(s, "2027-01-15", "2027-01-16", "UTC", "day,group", "a1");
    assert_int_equal(r->n_rows, 1);
    assert_string_equal(r->rows[0]->group, "g1");
    assert_string_equal(r->rows[0]->day, "2027-01-15");
    assert_string_equal(r->rows[0]->agent, "");
    assert_int_equal(r->rows[0]->conversations, 2);
    sbp__report_resp__free_unpacked(r, NULL);

    /* Every key: c1 and c2 share (d, g1, a1, the 15th), c3 and c4 (d, g1,
     * a2, the 15th); c6, c7 and c5 have rows of their own. In key order:
     * g1 before g2, "" before a1 before a2, then the day. */
    r = run(s, "2027-01-14", "2027-01-16", "UTC", "desk,group,agent,day", "");
    assert_int_equal(r->total->conversations, 7);
    assert_int_equal(r->n_rows, 5);
    static const char *const ROWS[5][4] = {{"d", "g1", "", "2027-01-16"},
                                           {"d", "g1", "a1", "2027-01-15"},
                                           {"d", "g1", "a2", "2027-01-15"},
                                           {"d", "g2", "", "2027-01-14"},
                                           {"d", "g2", "", "2027-01-15"}};
    static const uint64_t CONVS[5] = {1, 2, 2, 1, 1};
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(r->rows[i]->desk, ROWS[i][0]);
        assert_string_equal(r->rows[i]->group, ROWS[i][1]);
        assert_string_equal(r->rows[i]->agent, ROWS[i][2]);
        assert_string_equal(r->rows[i]->day, ROWS[i][3]);
        assert_int_equal(r->rows[i]->conversations, CONVS[i]);
    }
    sbp__report_resp__free_unpacked(r, NULL);

    /* Nothing in the span. */
    r = run(s, "2026-01-01", "2026-12-31", "UTC", "agent", "");
    assert_int_equal(r->n_rows, 0);
    assert_int_equal(r->total->conversations, 0);
    assert_int_equal(r->total->first_response_median_ms, 0);
    sbp__report_resp__free_unpacked(r, NULL);
    sb_store_close(s);
    pgtest_tmpdb_remove(&t);
}

/* A conversation transferred to another agent waited nothing for that
 * one; queued again, its wait starts over. */
static void test_wait_cycles(void **state)
{
    (void)state;
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_OS, &s), 0);
    const int64_t Q = SBP__CONV_STATE__STATE_QUEUED,
                  A = SBP__CONV_STATE__STATE_ASSIGNED;
    int64_t t0 = utc(2027, 1, 15, 9, 0);
    uint64_t c = svc_open(s, "cu1", "g1", t0);
    route(s, c, Q, "g1", "", t0);
    route(s, c, A, "g1", "a1", t0 + 5 * MINUTE); /* waited 5m */
    route(s, c, A, "g1", "a2", t0 + 9 * MINUTE); /* transferred: 0 */
    Sbp__ReportResp *r = run(s, "2027-01-15", "2027-01-15", "", "", "");
    assert_int_equal(r->total->queue_wait_median_ms, 0);
    sbp__report_resp__free_unpacked(r, NULL);
    route(s, c, Q, "g2", "", t0 + 20 * MINUTE);
    r = run(s, "2027-01-15", "2027-01-15", "", "", "");
    assert_int_equal(r->total->assigned, 0); /* waiting again */
    sbp__report_resp__free_unpacked(r, NULL);
    route(s, c, A, "g2", "a3", t0 + 23 * MINUTE);
    r = run(s, "2027-01-15", "2027-01-15", "", "agent", "");
    assert_int_equal(r->total->queue_wait_median_ms, 3 * MINUTE);
    assert_string_equal(r->rows[0]->agent, "a3");
    sbp__report_resp__free_unpacked(r, NULL);
    sb_store_close(s);
    pgtest_tmpdb_remove(&t);
}

static void test_report_refused(void **state)
{
    (void)state;
    static const struct {
        const char *from, *to, *tz, *by;
    } BAD[] = {
        {"2027-01-15", "2027-01-14", "", ""},
        {"2027-01-15", "2028-01-16", "", ""}, /* 367 days */
        {"15/01/2027", "2027-01-16", "", ""},
        {"2027-01-15", "2027-01-16", "", "agent,agent"},
        {"2027-01-15", "2027-01-16", "", "week"},
        {"2027-01-15", "2027-01-16",
         "Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         ""},
    };
    for (size_t i = 0; i < sizeof BAD / sizeof *BAD; i++) {
        char keys[32];
        snprintf(keys, sizeof keys, "%s", BAD[i].by);
        char *k[4];
        size_t n = 0;
        assert_int_equal(sb_report_by_split(keys, k, 4, &n), 0);
        Sbp__Report r = SBP__REPORT__INIT;
        r.from = (char *)BAD[i].from;
        r.to = (char *)BAD[i].to;
        r.tz = (char *)BAD[i].tz;
        r.by = k;
        r.n_by = n;
        sb_report_query q;
        char err[SB_REPORT_ERR_BYTES] = "";
        assert_int_equal(sb_report_query_set(&q, &r, err, sizeof err),
                         SB_E_INVALID);
        assert_true(err[0] != '\0');
    }
    char keys[] = "a,b,c,d,e";
    char *k[4];
    size_t n;
    assert_int_equal(sb_report_by_split(keys, k, 4, &n), SB_E_INVALID);
    sb_report_format f;
    assert_int_equal(sb_report_format_parse("xml", &f), SB_E_INVALID);
    assert_int_equal(sb_report_format_parse("csv", &f), 0);
    assert_int_equal(f, SB_REPORT_CSV);
}

/* ---- through the store queue --------------------------------------------- */

static void on_done(sb_req *r)
{
    int *n = r->ctx;
    (*n)++;
}

/* Reports run on their own reader: a burst past its queue is refused at
 * once (SB_E_RATE_LIMITED), the others answered. */
static void test_storeq(void **state)
{
    (void)state;
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_OS, &s), 0);
    seed(s);
    sb_store_close(s);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sb_storeq *q = NULL;
    assert_int_equal(sb_storeq_start(&loop, t.path, SB_DURABILITY_OS, &q), 0);
    enum { N = 12 };
    sb_req reqs[N];
    int done = 0;
    Sbp__Report rq = SBP__REPORT__INIT;
    rq.from = "2027-01-15";
    rq.to = "2027-01-15";
    for (int i = 0; i < N; i++) {
        memset(&reqs[i], 0, sizeof reqs[i]);
        reqs[i].kind = SB_REQ_REPORT;
        reqs[i].done = on_done;
        reqs[i].ctx = &done;
        char err[SB_REPORT_ERR_BYTES];
        assert_int_equal(
            sb_report_query_set(&reqs[i].u.report.query, &rq, err, sizeof err),
            0);
        sb_storeq_submit(q, &reqs[i]);
    }
    while (done < N)
        uv_run(&loop, UV_RUN_ONCE);
    int ok = 0, limited = 0;
    for (int i = 0; i < N; i++) {
        if (reqs[i].rc == 0) {
            ok++;
            assert_int_equal(reqs[i].u.report.resp->total->conversations, 5);
            sbp__report_resp__free_unpacked(reqs[i].u.report.resp, NULL);
        } else {
            assert_int_equal(reqs[i].rc, SB_E_RATE_LIMITED);
            limited++;
        }
    }
    /* The reader opens its connection before its first report: the burst
     * is in long before it can have answered many. */
    assert_true(ok >= 4 && limited >= 1 && ok + limited == N);
    sb_storeq_stop(q);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    pgtest_tmpdb_remove(&t);
}

/* ---- migration ----------------------------------------------------------- */

/* A store of the version before the ratings': its assigned conversation
 * gets its agent as the last one, no rating; reports read it. */
static void test_migrate(void **state)
{
    (void)state;
    pgtest_tmpdb t;
    pgtest_tmpdb_make(&t);
    static const char ROWS[] =
        "INSERT INTO convs(conv_id, kind, state, title, last_seq, created_ts,"
        " updated_ts, desk, grp, agent, customer, queued_ts, assigned_ts)"
        " VALUES(5, 2, 4, '', 0, 1800000000000, 1800000000000, 'd', 'g1',"
        " 'ann', 'cu', 1800000000000, 1800000060000)";
    if (on_pg()) {
        /* A database of the version before the ratings' (PostgreSQL's
         * 3): the store's, less what that migration and the later ones
         * (the transfer note: 4, notes and contacts: 5, uploads: 6)
         * add. */
        sb_store *s = NULL;
        assert_int_equal(sb_store_open(t.path, SB_DURABILITY_OS, &s), 0);
        sb_store_close(s);
        assert_int_equal(
            pgtest_exec(t.path,
                        "DROP TABLE media, media_refs, blobs, blob_chunks;"
                        "DROP INDEX convs_report;"
                        "DROP TABLE contacts;"
                        "DROP INDEX convs_notes;"
                        "ALTER TABLE convs DROP COLUMN last_agent,"
                        " DROP COLUMN csat_asked_ts, DROP COLUMN csat_rating,"
                        " DROP COLUMN csat_comment, DROP COLUMN csat_ts,"
                        " DROP COLUMN transfer_note, DROP COLUMN transfer_from,"
                        " DROP COLUMN notes_of;"
                        "UPDATE sb_meta SET value = 2"
                        " WHERE key = 'schema_version'"),
            0);
        assert_int_equal(pgtest_exec(t.path, ROWS), 0);
    } else {
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open(t.path, &db), SQLITE_OK);
        /* The version before the ratings' (SQLite's 6). */
        for (int v = 1; v <= 5; v++)
            assert_int_equal(
                sqlite3_exec(db, sb__sqlite_schema(v), NULL, NULL, NULL),
                SQLITE_OK);
        assert_int_equal(
            sqlite3_exec(db, "PRAGMA user_version = 5", NULL, NULL, NULL),
            SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, ROWS, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
    }
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(t.path, SB_DURABILITY_OS, &s), 0);
    Sbp__Conversation *c = NULL;
    assert_int_equal(sb_store_conv_get(s, 5, &c), 0);
    assert_string_equal(c->last_agent, "ann");
    assert_int_equal(c->csat_rating, 0);
    sbp__conversation__free_unpacked(c, NULL);
    Sbp__ReportResp *r = run(s, "2027-01-15", "2027-01-15", "", "agent", "");
    assert_int_equal(r->n_rows, 1);
    assert_string_equal(r->rows[0]->agent, "ann");
    assert_int_equal(r->rows[0]->queue_wait_median_ms, MINUTE);
    sbp__report_resp__free_unpacked(r, NULL);
    sb_store_close(s);
    pgtest_tmpdb_remove(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csat),
        cmocka_unit_test(test_report),
        cmocka_unit_test(test_wait_cycles),
        cmocka_unit_test(test_report_refused),
        cmocka_unit_test(test_storeq),
        cmocka_unit_test(test_migrate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
