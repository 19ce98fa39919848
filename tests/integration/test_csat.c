/* integ_csat: ratings, business hours and reports against the real server
 * (started with --desk on a file written here), driven by the C SDK, raw
 * frames and sbctl over real sockets, on SQLite (integ_csat) and on
 * PostgreSQL (integ_csat_pg).
 *
 * - business hours: group g1 is closed today (the day before, today and
 *   the day after are its holidays); a customer asking for a person is
 *   queued and told when the team is back, in English and in Chinese; an
 *   email address left is noted; the agent online gets nothing; an admin's
 *   transfer to g2 (no hours) is assigned at once. Protobuf and JSON.
 * - ratings: the agent closes, the customer is asked (the event), rates
 *   once (a second is ERR_ALREADY, a rating of 9 sent as raw JSON is
 *   ERR_INVALID), the agent hears of it; an admin's REPORT has it.
 *   Protobuf and JSON.
 * - reports of known data: conversations written into the stopped
 *   server's store with chosen times, then `sbctl report` as CSV (compared
 *   byte for byte with figures worked out by hand), JSON and a table by
 *   day in Shanghai; sbctl's refusals (a bad date, not an admin). */
#include <libgen.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "itsvc.h"
#include "sb_error.h"
#include "sb_store.h"
#include "sb_tz.h"

#define MINUTE 60000LL

static it_env E;
static its_ctx S = {.env = &E, .client_name = "integ_csat"};

static int teardown(void **state)
{
    (void)state;
    bool freed = its_free_all(&S);
    it_env_free(&E);
    if (!freed) fail_msg("clients not freed");
    return 0;
}

static its_dev *dev(const char *user, const char *role, const char *locale)
{
    char device[80];
    snprintf(device, sizeof device, "%s-d%zu", user, S.n_devs + 1);
    return its_connect(&S, user, role, device, locale);
}

/* YYYY-MM-DD of today (UTC) plus days, and the weekday's English name. */
static void day_from_today(int days, char out[11], const char **weekday)
{
    static const char *const NAMES[] = {"Sunday",    "Monday",   "Tuesday",
                                        "Wednesday", "Thursday", "Friday",
                                        "Saturday"};
    int64_t d = sb_tz_day_of((int64_t)time(NULL)) + days;
    sb_tz_date_format(d, out);
    if (weekday) *weekday = NAMES[sb_tz_weekday(d)];
}

/* g1 open every day, all day, but for holidays from yesterday to
 * tomorrow (UTC): closed now, back the day after tomorrow at 00:00. g2 has
 * no hours. */
static void start(sb_encoding enc)
{
    char y[11], t[11], m[11];
    day_from_today(-1, y, NULL);
    day_from_today(0, t, NULL);
    day_from_today(1, m, NULL);
    static char desk[2048];
    snprintf(desk, sizeof desk,
             "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g1\",\"g2\"],"
             "\"greeting\":{\"en\":\"Welcome\"},"
             "\"rules\":{\"en\":[{\"keywords\":[\"human\"],\"handoff\":true}],"
             "\"zh-CN\":[{\"keywords\":[\"\xe4\xba\xba\xe5\xb7\xa5\"],"
             "\"handoff\":true}]}}],"
             "\"agents\":[{\"id\":\"a1\",\"groups\":[\"g1\",\"g2\"],"
             "\"capacity\":4}],"
             "\"hours\":{\"g1\":{\"tz\":\"UTC\",\"week\":{"
             "\"mon\":[\"00:00-24:00\"],\"tue\":[\"00:00-24:00\"],"
             "\"wed\":[\"00:00-24:00\"],\"thu\":[\"00:00-24:00\"],"
             "\"fri\":[\"00:00-24:00\"],\"sat\":[\"00:00-24:00\"],"
             "\"sun\":[\"00:00-24:00\"]},"
             "\"holidays\":[\"%s\",\"%s\",\"%s\"]}}}",
             y, t, m);
    its_server_start(&E, "sbcsat", desk);
    E.enc = enc;
}

/* ---- business hours ------------------------------------------------------ */

static void hours(sb_encoding enc)
{
    start(enc);
    char back[11];
    const char *weekday;
    day_from_today(2, back, &weekday);
    its_dev *ag = dev("a1", "agent", "en");
    its_dev *adm = dev("root", "admin", "en");
    its_dev *cu = dev("cu1", "customer", "en");
    uint64_t conv = its_open_service(cu, NULL);
    assert_int_equal(its_say(cu, conv, "a human please", 0), 0);
    its_expect_state(&cu, 1, conv, SBP__CONV_STATE__STATE_QUEUED, "", "g1", 1);
    char want[160];
    snprintf(want, sizeof want, "will be back on %s, %s at 00:00 (UTC)",
             weekday, back);
    const its_msg *m = its_expect_msg(cu, conv, "bot", want);
    assert_int_equal(m->type, SBP__MSG_TYPE__MSG_SYSTEM);
    its_expect_msg(cu, conv, "bot", "leave a message here with your email");
    /* The customer leaves an address: noted. */
    assert_int_equal(its_say(cu, conv, "I am at lee@example.org, thanks", 0),
                     0);
    its_expect_msg(cu, conv, "bot", "answer you here or at lee@example.org");

    /* The same in Chinese: "（星期X）00:00（UTC）". */
    its_dev *zh = dev("cu2", "customer", "zh-CN");
    uint64_t conv2 = its_open_service(zh, NULL);
    assert_int_equal(
        its_say(zh, conv2, "\xe8\xbd\xac\xe4\xba\xba\xe5\xb7\xa5", 0), 0);
    its_expect_state(&zh, 1, conv2, SBP__CONV_STATE__STATE_QUEUED, "", "g1", 2);
    snprintf(want, sizeof want, "%s\xef\xbc\x88", back);
    its_expect_msg(zh, conv2, "bot", want);
    its_expect_msg(zh, conv2, "bot", "00:00\xef\xbc\x88UTC\xef\xbc\x89");

    /* The agent is online with room, and gets neither. */
    it_run_for(&E, 300);
    assert_int_equal(its_conv_of(cu, conv)->state,
                     SBP__CONV_STATE__STATE_QUEUED);
    assert_null(its_conv_of(ag, conv));

    /* An admin's transfer to g2, which has no hours: assigned at once. */
    uint32_t rid = 0;
    int rc = sb_client_transfer(adm->c, conv2, NULL, "g2", &rid);
    assert_int_equal(its_wait_ans(adm, rc, rid, "transfer")->err, 0);
    its_expect_state(&zh, 1, conv2, SBP__CONV_STATE__STATE_ASSIGNED, "a1", "g2",
                     0);
    /* The customer still queued moved up. */
    its_expect_state(&cu, 1, conv, SBP__CONV_STATE__STATE_QUEUED, "", "g1", 1);
}

static void test_hours(void **state)
{
    (void)state;
    hours(SB_ENC_PROTO);
}

static void test_hours_json(void **state)
{
    (void)state;
    hours(SB_ENC_JSON);
}

/* ---- ratings ------------------------------------------------------------- */

static int rate(its_dev *d, uint64_t conv, uint32_t rating, const char *comment)
{
    uint32_t rid = 0;
    int rc = sb_client_csat(d->c, conv, rating, comment, &rid);
    if (rc) return rc;
    return its_wait_ans(d, rc, rid, "csat")->err;
}

static bool rated(void *arg)
{
    its_conv *c = arg;
    return c->csat_rating != 0;
}

static void ratings(sb_encoding enc)
{
    start(enc);
    its_dev *ag = dev("a1", "agent", "en");
    its_dev *adm = dev("root", "admin", "en");
    its_dev *cu = dev("cu1", "customer", "en");
    uint64_t conv = its_open_service(cu, NULL);
    /* Not closed yet: no rating asked for. */
    assert_int_equal(rate(cu, conv, 5, NULL), SB_E_STATE);
    /* g2 has no hours: the transfer gives it to a1. */
    assert_int_equal(its_say(cu, conv, "a human please", 0), 0);
    uint32_t rid = 0;
    int rc = sb_client_transfer(adm->c, conv, NULL, "g2", &rid);
    assert_int_equal(its_wait_ans(adm, rc, rid, "transfer")->err, 0);
    its_expect_state(&ag, 1, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a1", "g2",
                     0);
    assert_int_equal(its_say(ag, conv, "How can I help?", 0), 0);
    rc = sb_client_close_conv(ag->c, conv, &rid);
    assert_int_equal(its_wait_ans(ag, rc, rid, "close")->err, 0);
    /* The customer is asked. */
    const its_msg *ask =
        its_expect_msg(cu, conv, "system", "Please rate this conversation");
    assert_string_equal(ask->event, "csat.request");
    /* A rating out of range, sent as the customer's raw frame. */
    it_raw r;
    assert_int_equal(it_raw_open(&r, E.srv.port, SB_ENC_JSON, NULL), 0);
    assert_int_equal(
        it_raw_hello(&r, harness_token("cu1", "customer", 3600), "raw", 5000),
        0);
    char json[200];
    snprintf(json, sizeof json,
             "{\"rid\":77,\"csat\":{\"conv_id\":%llu,\"rating\":9}}",
             (unsigned long long)conv);
    assert_int_equal(it_raw_send_ws(&r, true, json, strlen(json)), 0);
    Sbp__Frame *f = it_raw_expect(&r, SBP__FRAME__BODY_ERROR, 77, 5000);
    assert_non_null(f);
    assert_int_equal(f->error->code, SBP__ERROR_CODE__ERR_INVALID);
    sb_frame_free(f);
    it_raw_close(&r);
    /* The rating; once. */
    assert_int_equal(rate(cu, conv, 5, "Very helpful"), 0);
    assert_int_equal(rate(cu, conv, 2, NULL), SB_E_ALREADY);
    its_expect_msg(cu, conv, "system", "rated this conversation 5 out of 5");
    /* The agent, a member no more, hears of the rating and its comment. */
    its_conv *ac = its_conv_of(ag, conv);
    assert_non_null(ac);
    if (!it_run_until(&E, rated, ac, ITS_WAIT_MS))
        fail_msg("the agent was not told of the rating");
    assert_int_equal(ac->csat_rating, 5);
    assert_string_equal(ac->csat_comment, "Very helpful");
    /* The admin's report of today has it. */
    char today[11];
    day_from_today(0, today, NULL);
    const char *by[] = {"agent"};
    rc = sb_client_report(adm->c, today, today, "UTC", by, 1, NULL, NULL, NULL,
                          &rid);
    its_ans *a = its_wait_ans(adm, rc, rid, "report");
    assert_int_equal(a->err, 0);
    assert_int_equal(a->kind, ITS_ANS_REPORT);
    Sbp__ReportResp *rr = sbp__report_resp__unpack(NULL, a->len, a->buf);
    assert_non_null(rr);
    assert_int_equal(rr->n_rows, 1);
    assert_string_equal(rr->rows[0]->agent, "a1");
    assert_int_equal(rr->rows[0]->conversations, 1);
    assert_int_equal(rr->rows[0]->closed, 1);
    assert_int_equal(rr->rows[0]->first_responses, 1);
    assert_int_equal(rr->rows[0]->csat_responses, 1);
    assert_true(rr->rows[0]->csat_average == 5.0);
    sbp__report_resp__free_unpacked(rr, NULL);
    /* Reports are for admins. */
    rc = sb_client_report(cu->c, today, today, NULL, NULL, 0, NULL, NULL, NULL,
                          &rid);
    assert_int_equal(its_wait_ans(cu, rc, rid, "report")->err, SB_E_FORBIDDEN);
}

static void test_ratings(void **state)
{
    (void)state;
    ratings(SB_ENC_PROTO);
}

static void test_ratings_json(void **state)
{
    (void)state;
    ratings(SB_ENC_JSON);
}

/* ---- reports of known data ----------------------------------------------- */

static int64_t utc(int y, unsigned mo, unsigned d, int hh, int mm)
{
    return (sb_tz_days(y, mo, d) * 86400 + hh * 3600 + mm * 60) * 1000;
}

static void w_begin(sb_store *s)
{
    assert_int_equal(sb_store_begin(s), 0);
}

static void w_end(sb_store *s)
{
    assert_int_equal(sb_store_commit(s), 0);
}

/* A conversation of g1 opened at `open`, queued `queued` (0: assigned at
 * once), assigned to agent (NULL: never) `assigned`, answered `first`,
 * closed `closed` (0: open), rated `rating` (0: asked, not rated). */
static void conv_write(sb_store *s, const char *cust, int64_t open,
                       int64_t queued, const char *agent, int64_t assigned,
                       int64_t first, int64_t closed, uint32_t rating)
{
    Sbp__Conversation *c = NULL;
    bool created;
    w_begin(s);
    assert_int_equal(
        sb_store_service_open(s, cust, "d", "g1", open, &c, &created), 0);
    uint64_t id = c->conv_id;
    sbp__conversation__free_unpacked(c, NULL);
    if (queued)
        assert_int_equal(sb_store_conv_route(s, id,
                                             SBP__CONV_STATE__STATE_QUEUED,
                                             "g1", "", queued, NULL),
                         0);
    if (agent)
        assert_int_equal(sb_store_conv_route(s, id,
                                             SBP__CONV_STATE__STATE_ASSIGNED,
                                             "g1", agent, assigned, NULL),
                         0);
    if (first) assert_int_equal(sb_store_first_response(s, id, first), 0);
    if (closed) {
        bool asked;
        assert_int_equal(sb_store_conv_route(s, id,
                                             SBP__CONV_STATE__STATE_CLOSED,
                                             "g1", "", closed, NULL),
                         0);
        assert_int_equal(sb_store_csat_ask(s, id, closed, &asked), 0);
        if (rating)
            assert_int_equal(sb_store_csat_set(s, id, rating, "", closed), 0);
    }
    w_end(s);
}

/* Runs sbctl (next to the server binary) with args; returns its exit
 * status, its output (stdout, then stderr) in out. */
static int sbctl(char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int sbctl(char *out, size_t cap, const char *fmt, ...)
{
    char args[1024], cmd[2048], bin[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(bin, sizeof bin, "%s", harness_server_bin());
    snprintf(cmd, sizeof cmd, "'%s/sbctl' %s --url %s 2>&1", dirname(bin), args,
             E.srv.url);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Four conversations of 2027-01-15 (UTC), by hand:
 *   a1: opened 10:00, queued 10:01, assigned 10:05, answered 10:07, closed
 *       10:30, rated 5 (wait 4m, first 7m, resolution 30m);
 *       opened 11:00, queued 11:00, assigned 11:10, answered 11:12, closed
 *       12:00, rated 3 (wait 10m, first 12m, resolution 60m)
 *   a2: opened 12:00, assigned at once, answered 12:01, closed 12:20,
 *       asked, not rated (wait 0, first 1m, resolution 20m)
 *   "": opened 23:30, queued 23:31, never assigned (Shanghai: the 16th)
 * Nearest-rank medians and 90th percentiles of n sorted values: ranks
 * ceil(n/2) and ceil(9n/10). */
static const char CSV[] =
    "agent,conversations,closed,first_responses,first_response_median_ms,"
    "first_response_p90_ms,resolution_median_ms,resolution_p90_ms,assigned,"
    "queue_wait_median_ms,queue_wait_p90_ms,csat_requests,csat_responses,"
    "csat_average,csat_response_rate\r\n"
    ",1,0,0,0,0,0,0,0,0,0,0,0,0.0000,0.0000\r\n"
    "a1,2,2,2,420000,720000,1800000,3600000,2,240000,600000,2,2,4.0000,"
    "1.0000\r\n"
    "a2,1,1,1,60000,60000,1200000,1200000,1,0,0,1,0,0.0000,0.0000\r\n"
    "*,4,3,3,420000,720000,1800000,3600000,3,240000,600000,3,2,4.0000,"
    "0.6667\r\n";

static void test_report_known(void **state)
{
    (void)state;
    start(SB_ENC_PROTO);
    assert_int_equal(harness_stop(&E.srv), 0);
    char path[300];
    if (E.srv.store[0])
        snprintf(path, sizeof path, "%s", E.srv.store);
    else
        snprintf(path, sizeof path, "%s/switchboard.db", E.srv.data_dir);
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(path, SB_DURABILITY_FSYNC, &s), 0);
    conv_write(s, "k1", utc(2027, 1, 15, 10, 0), utc(2027, 1, 15, 10, 1), "a1",
               utc(2027, 1, 15, 10, 5), utc(2027, 1, 15, 10, 7),
               utc(2027, 1, 15, 10, 30), 5);
    conv_write(s, "k2", utc(2027, 1, 15, 11, 0), utc(2027, 1, 15, 11, 0), "a1",
               utc(2027, 1, 15, 11, 10), utc(2027, 1, 15, 11, 12),
               utc(2027, 1, 15, 12, 0), 3);
    conv_write(s, "k3", utc(2027, 1, 15, 12, 0), 0, "a2",
               utc(2027, 1, 15, 12, 0), utc(2027, 1, 15, 12, 1),
               utc(2027, 1, 15, 12, 20), 0);
    conv_write(s, "k4", utc(2027, 1, 15, 23, 30), utc(2027, 1, 15, 23, 31),
               NULL, 0, 0, 0, 0);
    sb_store_close(s);
    assert_int_equal(harness_restart(&E.srv), 0);

    char out[8192];
    char tok[1024];
    snprintf(tok, sizeof tok, "%s", harness_token("root", "admin", 3600));
    int st = sbctl(out, sizeof out,
                   "report --token %s --from 2027-01-15 --by agent "
                   "--format csv",
                   tok);
    if (st != 0) fail_msg("sbctl report: exit %d: %s", st, out);
    assert_string_equal(out, CSV);

    st = sbctl(out, sizeof out,
               "report --token %s --json --from 2027-01-15 --to 2027-01-16 "
               "--tz Asia/Shanghai --by day --format json",
               tok);
    if (st != 0) fail_msg("sbctl report json: exit %d: %s", st, out);
    /* In Shanghai the fourth is on the 16th. */
    assert_non_null(strstr(out, "\"day\": \"2027-01-15\""));
    assert_non_null(strstr(out, "\"day\": \"2027-01-16\""));
    assert_non_null(strstr(out, "\"tz\": \"Asia/Shanghai\""));

    st = sbctl(out, sizeof out,
               "report --token %s --from 2027-01-15 --by group,agent", tok);
    if (st != 0) fail_msg("sbctl report table: exit %d: %s", st, out);
    assert_non_null(strstr(out, "group"));
    assert_non_null(strstr(out, "7m00s")); /* a1's first-response median */
    assert_non_null(strstr(out, "2/3 (67%)"));

    /* Refusals, with the server's reason. */
    st = sbctl(out, sizeof out, "report --token %s --from 2027-02-30", tok);
    assert_int_equal(st, 1);
    assert_non_null(strstr(out, "ERR_INVALID"));
    assert_non_null(strstr(out, "YYYY-MM-DD"));
    st = sbctl(out, sizeof out,
               "report --token %s --from 2027-01-15 --tz Nowhere", tok);
    assert_int_equal(st, 1);
    assert_non_null(strstr(out, "Nowhere is not a time zone"));
    st = sbctl(out, sizeof out, "report --token %s --from 2027-01-15",
               harness_token("a1", "agent", 3600));
    assert_int_equal(st, 1);
    assert_non_null(strstr(out, "ERR_FORBIDDEN"));
    st = sbctl(out, sizeof out, "report --token %s --from 2027-01-15 --by week",
               tok);
    assert_int_equal(st, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_hours, teardown),
        cmocka_unit_test_teardown(test_hours_json, teardown),
        cmocka_unit_test_teardown(test_ratings, teardown),
        cmocka_unit_test_teardown(test_ratings_json, teardown),
        cmocka_unit_test_teardown(test_report_known, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
