/* Satisfaction, business hours and reports driven through the gateway core
 * on a fake clock (gwfake: the time is the test's): the rating asked for at
 * the close, given once, and refused for each bad input; a group's queue
 * waiting out of its hours and handed out at the start of the next shift,
 * over a lunch break and a holiday, with the bot saying when the team is
 * back in the customer's language and noting an email address; the REPORT
 * frame's answers and refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gwfake.h"
#include "sb_desk.h"
#include "sb_tz.h"

#define H 3600000LL
#define M 60000LL

/* g1 works in Berlin, Monday to Friday, with a lunch break; Monday
 * 2027-01-18 is a holiday. g2 has no hours; desk e asks no rating. */
static const char DESK[] =
    "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g1\",\"g2\"],"
    "\"greeting\":{\"en\":\"Welcome\"},"
    "\"rules\":{\"en\":[{\"keywords\":[\"human\"],\"handoff\":true}],"
    "\"zh-CN\":[{\"keywords\":[\"\xe4\xba\xba\xe5\xb7\xa5\"],"
    "\"handoff\":true}]}},"
    "{\"id\":\"e\",\"groups\":[\"g2\"],\"csat\":false,"
    "\"rules\":{\"en\":[{\"keywords\":[\"human\"],\"handoff\":true}]}}],"
    "\"agents\":[{\"id\":\"a1\",\"groups\":[\"g1\",\"g2\"],\"capacity\":5}],"
    "\"hours\":{\"g1\":{\"tz\":\"Europe/Berlin\",\"week\":{"
    "\"mon\":[\"09:00-12:00\",\"13:00-17:00\"],"
    "\"tue\":[\"09:00-12:00\",\"13:00-17:00\"],"
    "\"wed\":[\"09:00-12:00\",\"13:00-17:00\"],"
    "\"thu\":[\"09:00-12:00\",\"13:00-17:00\"],"
    "\"fri\":[\"09:00-12:00\",\"13:00-17:00\"]},"
    "\"holidays\":[\"2027-01-18\"]}}}";

static sb_desk *desk;

/* ms of a UTC date and time. */
static int64_t utc(int y, unsigned mo, unsigned d, int hh, int mm)
{
    return (sb_tz_days(y, mo, d) * 86400 + hh * 3600 + mm * 60) * 1000;
}

static int setup_at(int64_t now)
{
    char err[256];
    if (sb_desk_parse(DESK, sizeof DESK - 1, &desk, err, sizeof err))
        fail_msg("desk: %s", err);
    sb_gw_config c;
    sb_gw_config_default(&c);
    c.desk = desk;
    gwfake_setup(&c);
    /* A gateway that starts at now: routing, and the groups' hours. */
    GF.now = now;
    gwfake_regw(&c);
    return 0;
}

/* Friday 2027-01-15, 10:00 in Berlin (09:00Z): g1 is open. */
static int setup(void **state)
{
    (void)state;
    return setup_at(utc(2027, 1, 15, 9, 0));
}

static int teardown(void **state)
{
    (void)state;
    gwfake_teardown();
    sb_desk_free(desk);
    return 0;
}

static uint64_t service_open(uint64_t c, const char *desk_id)
{
    Sbp__Open o = SBP__OPEN__INIT;
    o.kind = SBP__CONV_KIND__CONV_SERVICE;
    o.desk = (char *)desk_id;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 9;
    fr.body_case = SBP__FRAME__BODY_OPEN;
    fr.open = &o;
    gwfake_feed(c, &fr);
    Sbp__Frame *r = gwfake_last_of(c, SBP__FRAME__BODY_OPEN_RESP);
    assert_non_null(r);
    return r->open_resp->conv->conv_id;
}

/* The message pushed to c whose body contains text, or NULL. */
static Sbp__Message *pushed(uint64_t c, const char *text)
{
    for (size_t i = 0; i < GF.nframes[c]; i++) {
        Sbp__Frame *f = GF.frames[c][i];
        if (f->body_case != SBP__FRAME__BODY_PUSH) continue;
        for (size_t k = 0; k < f->push->n_messages; k++)
            if (strstr(f->push->messages[k]->body, text))
                return f->push->messages[k];
    }
    return NULL;
}

/* The message pushed to c with event key, or NULL. */
static Sbp__Message *pushed_event(uint64_t c, const char *key)
{
    for (size_t i = 0; i < GF.nframes[c]; i++) {
        Sbp__Frame *f = GF.frames[c][i];
        if (f->body_case != SBP__FRAME__BODY_PUSH) continue;
        for (size_t k = 0; k < f->push->n_messages; k++) {
            Sbp__Message *m = f->push->messages[k];
            if (m->event && strcmp(m->event->key, key) == 0) return m;
        }
    }
    return NULL;
}

static Sbp__Conversation *last_update(uint64_t c)
{
    Sbp__Frame *f = gwfake_last_of(c, SBP__FRAME__BODY_CONV_UPDATE);
    return f ? f->conv_update->conv : NULL;
}

static void expect_error(uint64_t c, Sbp__ErrorCode code)
{
    Sbp__Frame *f = gwfake_last(c);
    assert_int_equal(f->body_case, SBP__FRAME__BODY_ERROR);
    if (f->error->code != code)
        fail_msg("error %d (%s), want %d", f->error->code, f->error->text,
                 code);
}

static void close_conv(uint64_t c, uint64_t conv)
{
    Sbp__Close cl = SBP__CLOSE__INIT;
    cl.conv_id = conv;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 32;
    fr.body_case = SBP__FRAME__BODY_CLOSE;
    fr.close = &cl;
    gwfake_feed(c, &fr);
}

static void rate(uint64_t c, uint64_t conv, uint32_t rating,
                 const char *comment)
{
    Sbp__Csat x = SBP__CSAT__INIT;
    x.conv_id = conv;
    x.rating = rating;
    x.comment = (char *)comment;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 40;
    fr.body_case = SBP__FRAME__BODY_CSAT;
    fr.csat = &x;
    gwfake_feed(c, &fr);
}

/* ---- satisfaction -------------------------------------------------------- */

static void test_csat(void **state)
{
    (void)state;
    gwfake_hello(20, "a1", "agent", "desk", "en");
    gwfake_hello(10, "cu1", "customer", "phone", "zh-CN");
    gwfake_hello(12, "cu2", "customer", "phone", "en");
    uint64_t conv = service_open(10, "d");
    /* Not closed yet: no rating was asked for. */
    rate(10, conv, 5, "");
    expect_error(10, SBP__ERROR_CODE__ERR_STATE);
    gwfake_send(10, conv, 1, "\xe4\xba\xba\xe5\xb7\xa5", 0); /* 人工 */
    assert_string_equal(last_update(10)->agent, "a1");
    gwfake_send(20, conv, 2, "Hello, how can I help?", 0);
    close_conv(20, conv);
    /* The customer is asked, in its language; the agent sees it asked. */
    Sbp__Message *ask = pushed_event(10, "csat.request");
    assert_non_null(ask);
    assert_string_equal(ask->body, "\xe8\xaf\xb7\xe4\xb8\xba\xe6\x9c\xac\xe6"
                                   "\xac\xa1\xe6\x9c\x8d\xe5\x8a\xa1\xe8\xaf"
                                   "\x84\xe5\x88\x86\xe3\x80\x82");
    /* The agent keeps the closed conversation (read-only, a member):
     * it sees that a rating was asked for. */
    assert_non_null(pushed_event(20, "csat.request"));
    /* Each bad rating is refused with its reason, nothing stored. */
    rate(10, conv, 0, "");
    expect_error(10, SBP__ERROR_CODE__ERR_INVALID);
    rate(10, conv, 6, "");
    expect_error(10, SBP__ERROR_CODE__ERR_INVALID);
    char *long_comment = malloc(SB_CSAT_COMMENT_BYTES_MAX + 2);
    memset(long_comment, 'x', SB_CSAT_COMMENT_BYTES_MAX + 1);
    long_comment[SB_CSAT_COMMENT_BYTES_MAX + 1] = '\0';
    rate(10, conv, 4, long_comment);
    expect_error(10, SBP__ERROR_CODE__ERR_TOO_LARGE);
    free(long_comment);
    rate(12, conv, 4, ""); /* another customer */
    expect_error(12, SBP__ERROR_CODE__ERR_FORBIDDEN);
    gwfake_hello(21, "a1", "agent", "desk2", "en");
    rate(21, conv, 4, ""); /* not a customer */
    expect_error(21, SBP__ERROR_CODE__ERR_FORBIDDEN);
    rate(10, 999999, 4, "");
    expect_error(10, SBP__ERROR_CODE__ERR_NOT_FOUND);
    /* The rating, with a comment of exactly the limit's size. */
    gwfake_clear(20);
    gwfake_clear(10);
    rate(10, conv, 4, "Quick and kind");
    assert_int_equal(gwfake_last(10)->body_case, SBP__FRAME__BODY_OK);
    Sbp__Message *done = pushed_event(10, "csat.submitted");
    assert_non_null(done);
    assert_string_equal(done->body, "\xe5\xae\xa2\xe6\x88\xb7\xe5\xaf\xb9"
                                    "\xe6\x9c\xac\xe6\xac\xa1\xe6\x9c\x8d"
                                    "\xe5\x8a\xa1\xe7\x9a\x84\xe8\xaf\x84"
                                    "\xe5\x88\x86\xef\xbc\x9a"
                                    "4/5\xe3\x80\x82");
    /* The agent who had it (a read-only member of the closed
     * conversation): the conversation with its rating, and its event. */
    Sbp__Conversation *u = last_update(20);
    assert_non_null(u);
    assert_int_equal(u->csat_rating, 4);
    assert_string_equal(u->csat_comment, "Quick and kind");
    assert_string_equal(u->last_agent, "a1");
    assert_int_equal(u->state, SBP__CONV_STATE__STATE_CLOSED);
    assert_non_null(pushed_event(20, "csat.submitted"));
    assert_int_equal(last_update(10)->csat_rating, 4);
    /* Once: the second is refused and the first stays. */
    rate(10, conv, 1, "changed my mind");
    expect_error(10, SBP__ERROR_CODE__ERR_ALREADY);
    /* Reopened and closed again: rated already, not asked again. */
    gwfake_send(10, conv, 3, "one more thing", 0);
    close_conv(10, conv);
    gwfake_clear(10);
    gwfake_send(10, conv, 4, "\xe4\xba\xba\xe5\xb7\xa5", 0);
    assert_string_equal(last_update(10)->agent, "a1");
    close_conv(20, conv);
    assert_null(pushed_event(10, "csat.request"));
    /* The store has the first rating. */
    Sbp__Conversation *pc = NULL;
    assert_int_equal(sb_store_conv_get(GF.store, conv, &pc), 0);
    assert_int_equal(pc->csat_rating, 4);
    assert_string_equal(pc->csat_comment, "Quick and kind");
    sbp__conversation__free_unpacked(pc, NULL);
    /* A desk that asks no rating. */
    gwfake_hello(14, "cu3", "customer", "phone", "en");
    uint64_t conv2 = service_open(14, "e");
    gwfake_send(14, conv2, 5, "human", 0);
    close_conv(14, conv2);
    assert_null(pushed_event(14, "csat.request"));
    rate(14, conv2, 5, "");
    expect_error(14, SBP__ERROR_CODE__ERR_STATE);
    /* A direct conversation is not rated. */
    Sbp__Open o = SBP__OPEN__INIT;
    char *members[1] = {"a1"};
    o.n_members = 1;
    o.members = members;
    o.kind = SBP__CONV_KIND__CONV_DIRECT;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 50;
    fr.body_case = SBP__FRAME__BODY_OPEN;
    fr.open = &o;
    gwfake_feed(12, &fr);
    uint64_t direct = gwfake_last_of(12, SBP__FRAME__BODY_OPEN_RESP)
                          ->open_resp->conv->conv_id;
    rate(12, direct, 5, "");
    expect_error(12, SBP__ERROR_CODE__ERR_STATE);
}

/* ---- business hours ------------------------------------------------------ */

/* Friday 12:30 in Berlin, the lunch break: the customer is queued and told
 * the team is back at 13:00; the agent online gets nothing until the
 * shift starts, then the conversation at once. */
static void test_shift_boundary(void **state)
{
    (void)state;
    GF.now = utc(2027, 1, 15, 11, 30);
    gwfake_tick(0);
    gwfake_hello(20, "a1", "agent", "desk", "en");
    gwfake_hello(10, "cu1", "customer", "phone", "en");
    uint64_t conv = service_open(10, "d");
    gwfake_send(10, conv, 1, "human", 0);
    Sbp__Conversation *u = last_update(10);
    assert_int_equal(u->state, SBP__CONV_STATE__STATE_QUEUED);
    assert_int_equal(u->queue_position, 1);
    Sbp__Message *m = pushed(10, "will be back on Friday, 2027-01-15 at 13:00 "
                                 "(Europe/Berlin)");
    assert_non_null(m);
    assert_string_equal(m->sender, "bot");
    assert_non_null(pushed(10, "leave a message here with your email"));
    /* An email address left in the queue is noted. */
    gwfake_send(10, conv, 2, "Please write to me at li.ming@example.com.", 0);
    assert_non_null(pushed(10, "answer you here or at li.ming@example.com"));
    gwfake_send(10, conv, 3, "no address here", 0);
    /* g2 has no hours: a transfer there would be answered; g1 waits. */
    gwfake_tick(30 * M - 1); /* 12:59:59.999 */
    assert_int_equal(last_update(10)->state, SBP__CONV_STATE__STATE_QUEUED);
    gwfake_tick(1); /* 13:00 */
    u = last_update(10);
    assert_int_equal(u->state, SBP__CONV_STATE__STATE_ASSIGNED);
    assert_string_equal(u->agent, "a1");
    assert_non_null(pushed(20, "a1 has joined"));
}

/* Friday after 17:00: Monday is a holiday, so the team is back on Tuesday
 * at 09:00; the Chinese customer hears it in Chinese. Monday passes with
 * the conversation queued; Tuesday 09:00 it is handed out. */
static void test_holiday(void **state)
{
    (void)state;
    GF.now = utc(2027, 1, 15, 16, 30); /* 17:30 in Berlin */
    gwfake_tick(0);
    gwfake_hello(20, "a1", "agent", "desk", "en");
    gwfake_hello(10, "cu1", "customer", "phone", "zh-CN");
    uint64_t conv = service_open(10, "d");
    gwfake_send(10, conv, 1, "\xe8\xbd\xac\xe4\xba\xba\xe5\xb7\xa5", 0);
    assert_int_equal(last_update(10)->state, SBP__CONV_STATE__STATE_QUEUED);
    /* "...2027-01-19（星期二）09:00（Europe/Berlin）..." */
    assert_non_null(pushed(10, "2027-01-19\xef\xbc\x88\xe6\x98\x9f\xe6\x9c\x9f"
                               "\xe4\xba\x8c\xef\xbc\x89"
                               "09:00"));
    /* Monday 09:00 and 13:00: a holiday. */
    gwfake_tick(utc(2027, 1, 18, 8, 0) - GF.now);
    gwfake_tick(4 * H);
    assert_int_equal(last_update(10)->state, SBP__CONV_STATE__STATE_QUEUED);
    /* An admin may still hand it to a named agent; here nobody does.
     * Tuesday 09:00 (08:00Z): the shift starts. */
    gwfake_tick(utc(2027, 1, 19, 8, 0) - GF.now);
    assert_int_equal(last_update(10)->state, SBP__CONV_STATE__STATE_ASSIGNED);
}

/* Out of hours an explicit transfer to a named agent is still carried out:
 * the hours stop the automatic hand-out only. */
static void test_transfer_out_of_hours(void **state)
{
    (void)state;
    GF.now = utc(2027, 1, 16, 12, 0); /* Saturday */
    gwfake_tick(0);
    gwfake_hello(20, "a1", "agent", "desk", "en");
    gwfake_hello(30, "root", "admin", "console", "en");
    gwfake_hello(10, "cu1", "customer", "phone", "en");
    uint64_t conv = service_open(10, "d");
    gwfake_send(10, conv, 1, "human", 0);
    assert_non_null(pushed(10, "back on Tuesday, 2027-01-19 at 09:00"));
    Sbp__Transfer t = SBP__TRANSFER__INIT;
    t.conv_id = conv;
    t.to_agent = "a1";
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 31;
    fr.body_case = SBP__FRAME__BODY_TRANSFER;
    fr.transfer = &t;
    gwfake_feed(30, &fr);
    assert_int_equal(gwfake_last(30)->body_case, SBP__FRAME__BODY_OK);
    assert_string_equal(last_update(10)->agent, "a1");
}

/* A gateway started out of hours closes the group at once; at the shift
 * the queue rebuilt from the store is handed out. */
static void test_start_out_of_hours(void **state)
{
    (void)state;
    gwfake_teardown();
    sb_desk_free(desk);
    setup_at(utc(2027, 1, 15, 6, 0)); /* 07:00 in Berlin */
    gwfake_hello(20, "a1", "agent", "desk", "en");
    gwfake_hello(10, "cu1", "customer", "phone", "en");
    uint64_t conv = service_open(10, "d");
    gwfake_send(10, conv, 1, "human", 0);
    assert_int_equal(last_update(10)->state, SBP__CONV_STATE__STATE_QUEUED);
    assert_non_null(pushed(10, "back on Friday, 2027-01-15 at 09:00"));
    gwfake_tick(2 * H);
    assert_int_equal(last_update(10)->state, SBP__CONV_STATE__STATE_ASSIGNED);
}

/* ---- reports ------------------------------------------------------------- */

static void report(uint64_t c, const char *from, const char *to, const char *tz,
                   char **by, size_t n_by)
{
    Sbp__Report r = SBP__REPORT__INIT;
    r.from = (char *)from;
    r.to = (char *)to;
    r.tz = (char *)tz;
    r.by = by;
    r.n_by = n_by;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.rid = 60;
    fr.body_case = SBP__FRAME__BODY_REPORT;
    fr.report = &r;
    gwfake_feed(c, &fr);
}

static void test_report_frame(void **state)
{
    (void)state;
    gwfake_hello(20, "a1", "agent", "desk", "en");
    gwfake_hello(30, "root", "admin", "console", "en");
    gwfake_hello(10, "cu1", "customer", "phone", "en");
    uint64_t conv = service_open(10, "d");
    gwfake_send(10, conv, 1, "human", 0);
    gwfake_tick(90 * 1000);
    gwfake_send(20, conv, 2, "Hi", 0);
    gwfake_tick(10 * M);
    close_conv(20, conv);
    rate(10, conv, 5, "");
    char *by[1] = {"agent"};
    report(30, "2027-01-15", "2027-01-15", "Europe/Berlin", by, 1);
    Sbp__Frame *f = gwfake_last(30);
    assert_int_equal(f->body_case, SBP__FRAME__BODY_REPORT_RESP);
    Sbp__ReportResp *r = f->report_resp;
    assert_int_equal(r->n_rows, 1);
    assert_string_equal(r->rows[0]->agent, "a1");
    assert_int_equal(r->rows[0]->conversations, 1);
    assert_int_equal(r->rows[0]->first_response_median_ms, 90 * 1000);
    assert_int_equal(r->rows[0]->resolution_median_ms, 90 * 1000 + 10 * M);
    assert_int_equal(r->rows[0]->queue_wait_median_ms, 0);
    assert_int_equal(r->rows[0]->csat_responses, 1);
    assert_true(r->rows[0]->csat_average == 5.0);
    assert_int_equal(r->total->conversations, 1);
    assert_string_equal(r->tz, "Europe/Berlin");
    assert_int_equal(r->from_ms, utc(2027, 1, 14, 23, 0));
    assert_int_equal(r->to_ms, utc(2027, 1, 15, 23, 0));
    /* The day before has nothing. */
    report(30, "2027-01-14", "2027-01-14", "", NULL, 0);
    r = gwfake_last(30)->report_resp;
    assert_int_equal(r->total->conversations, 0);
    assert_int_equal(r->n_rows, 0);
    /* Refusals: not an admin, bad dates, keys, spans and zones. */
    report(20, "2027-01-15", "2027-01-15", "", NULL, 0);
    expect_error(20, SBP__ERROR_CODE__ERR_FORBIDDEN);
    report(30, "2027-1-15", "2027-01-15", "", NULL, 0);
    expect_error(30, SBP__ERROR_CODE__ERR_INVALID);
    report(30, "2027-01-16", "2027-01-15", "", NULL, 0);
    expect_error(30, SBP__ERROR_CODE__ERR_INVALID);
    report(30, "2025-01-01", "2027-01-15", "", NULL, 0);
    expect_error(30, SBP__ERROR_CODE__ERR_INVALID);
    assert_non_null(strstr(gwfake_last(30)->error->text, "366 days"));
    char *bad_by[2] = {"agent", "agent"};
    report(30, "2027-01-15", "2027-01-15", "", bad_by, 2);
    expect_error(30, SBP__ERROR_CODE__ERR_INVALID);
    char *worse_by[1] = {"customer"};
    report(30, "2027-01-15", "2027-01-15", "", worse_by, 1);
    expect_error(30, SBP__ERROR_CODE__ERR_INVALID);
    report(30, "2027-01-15", "2027-01-15", "Mars/Olympus", NULL, 0);
    expect_error(30, SBP__ERROR_CODE__ERR_INVALID);
    assert_non_null(strstr(gwfake_last(30)->error->text, "Mars/Olympus"));
    report(30, "2027-01-15", "2027-01-15", "../../etc/passwd", NULL, 0);
    expect_error(30, SBP__ERROR_CODE__ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_csat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shift_boundary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_holiday, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_out_of_hours, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_start_out_of_hours, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_report_frame, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
