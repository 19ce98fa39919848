/* Business hours: split shifts, a night shift over midnight, holidays, the
 * days the clocks change (Europe/Berlin), the local rendering of an
 * instant, each malformed document refused with its reason, and a desk's
 * groups opening and closing as the time passes (sb_desk_hours_update). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_desk.h"
#include "sb_error.h"
#include "sb_hours.h"

#define H 3600000LL
#define M 60000LL

static sb_hours *parse(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j) fail_msg("json: %s", je.text);
    sb_hours *h = NULL;
    char err[256];
    int rc = sb_hours_parse(j, "hours.g", &h, err, sizeof err);
    json_decref(j);
    if (rc) fail_msg("%s", err);
    return h;
}

/* ms of a UTC date and time. */
static int64_t utc(int y, unsigned mo, unsigned d, int hh, int mm)
{
    return (sb_tz_days(y, mo, d) * 86400 + hh * 3600 + mm * 60) * 1000;
}

static void expect(const sb_hours *h, int64_t now, bool open, int64_t next)
{
    int64_t got;
    bool o = sb_hours_open_at(h, now, &got);
    if (o != open || got != next)
        fail_msg("at %lld: %s until %lld, want %s until %lld", (long long)now,
                 o ? "open" : "closed", (long long)got,
                 open ? "open" : "closed", (long long)next);
}

/* Shanghai has no daylight-saving time: UTC+8 all year. */
static void test_split_shifts(void **state)
{
    (void)state;
    sb_hours *h = parse("{\"tz\":\"Asia/Shanghai\",\"week\":{"
                        "\"mon\":[\"13:30-18:00\",\"09:00-12:00\"],"
                        "\"tue\":[\"09:00-12:00\",\"13:30-18:00\"],"
                        "\"sat\":[]},\"holidays\":[\"2027-01-19\"]}");
    /* Monday 2027-01-18, local 08:59:59.999 = 00:59:59.999Z. */
    int64_t mon = utc(2027, 1, 18, 0, 0);
    expect(h, mon + H - 1, false, mon + H);
    expect(h, mon + H, true, mon + 4 * H);               /* 09:00-12:00 */
    expect(h, mon + 4 * H, false, mon + 5 * H + 30 * M); /* lunch */
    expect(h, mon + 5 * H + 30 * M, true, mon + 10 * H);
    /* After Monday's last shift: Tuesday is a holiday, the week has
     * nothing until the next Monday 09:00. */
    expect(h, mon + 10 * H, false, mon + 7 * 24 * H + H);
    /* Weekend, Saturday an empty list. */
    expect(h, utc(2027, 1, 23, 5, 0), false, mon + 7 * 24 * H + H);
    char date[11], hhmm[6];
    unsigned wd;
    sb_hours_local(h, mon + 5 * H + 30 * M, date, hhmm, &wd);
    assert_string_equal(date, "2027-01-18");
    assert_string_equal(hhmm, "13:30");
    assert_int_equal(wd, 1);
    assert_string_equal(sb_tz_name(sb_hours_tz(h)), "Asia/Shanghai");
    sb_hours_free(h);
}

/* A night shift is two shifts, 22:00-24:00 and the next day's
 * 00:00-06:00: one opening. */
static void test_night_shift(void **state)
{
    (void)state;
    sb_hours *h =
        parse("{\"tz\":\"UTC\",\"week\":{"
              "\"fri\":[\"22:00-24:00\"],\"sat\":[\"00:00-06:00\"]}}");
    int64_t fri = utc(2027, 1, 15, 0, 0);
    expect(h, fri + 21 * H, false, fri + 22 * H);
    expect(h, fri + 23 * H, true, fri + 30 * H);
    expect(h, fri + 26 * H, true, fri + 30 * H); /* Saturday 02:00 */
    expect(h, fri + 30 * H, false, fri + 7 * 24 * H + 22 * H);
    sb_hours_free(h);
}

/* Berlin's clocks go forward on 2027-03-28 (02:00 CET is 03:00 CEST) and
 * back on 2027-10-31 (03:00 CEST is 02:00 CET): a Sunday shift of
 * 01:00-04:00 lasts two hours, then four. */
static void test_dst(void **state)
{
    (void)state;
    sb_hours *h =
        parse("{\"tz\":\"Europe/Berlin\",\"week\":{"
              "\"sun\":[\"01:00-04:00\"],\"mon\":[\"09:00-17:00\"]}}");
    int64_t spring = utc(2027, 3, 28, 0, 0);
    expect(h, spring - 1, false, spring);                      /* 01:00 CET */
    expect(h, spring, true, spring + 2 * H);                   /* 04:00 CEST */
    expect(h, spring + 2 * H, false, spring + 24 * H + 7 * H); /* Mon 09 */
    /* Monday: 09:00 CEST is 07:00Z. */
    expect(h, spring + 31 * H, true, spring + 39 * H);
    int64_t autumn = utc(2027, 10, 30, 23, 0); /* 01:00 CEST */
    expect(h, autumn - 1, false, autumn);
    expect(h, autumn, true, autumn + 4 * H); /* 04:00 CET = 03:00Z */
    char date[11], hhmm[6];
    unsigned wd;
    sb_hours_local(h, autumn + 4 * H, date, hhmm, &wd);
    assert_string_equal(date, "2027-10-31");
    assert_string_equal(hhmm, "04:00");
    assert_int_equal(wd, 0);
    sb_hours_free(h);
}

static void test_refused(void **state)
{
    (void)state;
    static const struct {
        const char *doc, *why;
    } BAD[] = {
        {"[]", "want an object"},
        {"{\"week\":{\"mon\":[\"09:00-17:00\"]}}", "not a time zone"},
        {"{\"tz\":\"Mars/Base\",\"week\":{\"mon\":[\"09:00-17:00\"]}}",
         "Mars/Base is not a time zone"},
        {"{\"tz\":\"UTC\"}", "week: want an object"},
        {"{\"tz\":\"UTC\",\"week\":{}}", "no shift at all"},
        {"{\"tz\":\"UTC\",\"week\":{\"monday\":[]}}", "\"monday\" is not"},
        {"{\"tz\":\"UTC\",\"week\":{\"mon\":[\"17:00-09:00\"]}}",
         "start before the end"},
        {"{\"tz\":\"UTC\",\"week\":{\"mon\":[\"9:00-17:00\"]}}", "HH:MM-HH:MM"},
        {"{\"tz\":\"UTC\",\"week\":{\"mon\":[\"09:00-24:30\"]}}", "HH:MM"},
        {"{\"tz\":\"UTC\",\"week\":{\"mon\":[\"09:00-12:00\","
         "\"11:00-13:00\"]}}",
         "shifts overlap"},
        {"{\"tz\":\"UTC\",\"week\":{\"mon\":[\"1\",\"2\",\"3\",\"4\",\"5\","
         "\"6\",\"7\",\"8\",\"9\"]}}",
         "at most 8 shifts"},
        {"{\"tz\":\"UTC\",\"week\":{\"mon\":[\"09:00-17:00\"]},"
         "\"holidays\":[\"2027-02-30\"]}",
         "holidays[0]: want YYYY-MM-DD"},
        {"{\"tz\":\"UTC\",\"week\":{\"mon\":[\"09:00-17:00\"]},\"x\":1}",
         "unknown member \"x\""},
    };
    for (size_t i = 0; i < sizeof BAD / sizeof *BAD; i++) {
        json_t *j = json_loads(BAD[i].doc, 0, NULL);
        assert_non_null(j);
        sb_hours *h = NULL;
        char err[256] = "";
        assert_int_equal(sb_hours_parse(j, "hours.g", &h, err, sizeof err),
                         SB_E_INVALID);
        json_decref(j);
        assert_null(h);
        if (!strstr(err, BAD[i].why))
            fail_msg("%s: said \"%s\", want \"%s\"", BAD[i].doc, err,
                     BAD[i].why);
    }
}

/* In a desk: a group with hours opens and closes as time passes; the
 * other is always open; hours name groups of the desk. */
static void test_desk(void **state)
{
    (void)state;
    static const char DOC[] =
        "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g1\",\"g2\"]}],"
        "\"agents\":[{\"id\":\"a1\",\"groups\":[\"g1\",\"g2\"]}],"
        "\"hours\":{\"g1\":{\"tz\":\"UTC\",\"week\":{"
        "\"fri\":[\"09:00-17:00\"]}}}}";
    sb_desk *d = NULL;
    char err[256];
    assert_int_equal(sb_desk_parse(DOC, sizeof DOC - 1, &d, err, sizeof err),
                     0);
    int64_t fri = utc(2027, 1, 15, 0, 0);
    assert_int_equal(sb_desk_hours_update(d, fri + 8 * H), 0);
    assert_false(sb_desk_group_open(d, 0));
    assert_true(sb_desk_group_open(d, 1));
    assert_int_equal(sb_desk_group_next_change(d, 0), fri + 9 * H);
    assert_int_equal(sb_desk_group_next_change(d, 1), INT64_MAX);
    assert_null(sb_desk_group_hours(d, 1));
    sb_desk_set_status(d, "a1", SBP__AGENT_STATUS__AGENT_ONLINE, 0);
    assert_null(sb_desk_pick(d, 0)); /* closed: nobody takes g1's */
    assert_string_equal(sb_desk_pick(d, 1), "a1");
    assert_int_equal(sb_desk_enqueue(d, 7, 0, fri), 0);
    assert_int_equal(sb_desk_next_for(d, "a1"), 0);
    /* Not yet; then the shift starts: g1 opened (bit 0). */
    assert_int_equal(sb_desk_hours_update(d, fri + 9 * H - 1), 0);
    assert_int_equal(sb_desk_hours_update(d, fri + 9 * H), 1);
    assert_true(sb_desk_group_open(d, 0));
    assert_string_equal(sb_desk_pick(d, 0), "a1");
    assert_int_equal(sb_desk_next_for(d, "a1"), 7);
    assert_int_equal(sb_desk_hours_update(d, fri + 17 * H), 0);
    assert_false(sb_desk_group_open(d, 0));
    sb_desk_free(d);

    static const char BADDOC[] =
        "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g1\"]}],"
        "\"hours\":{\"g9\":{\"tz\":\"UTC\",\"week\":{\"fri\":[]}}}}";
    assert_int_equal(
        sb_desk_parse(BADDOC, sizeof BADDOC - 1, &d, err, sizeof err),
        SB_E_INVALID);
    assert_non_null(strstr(err, "g9 is not a group"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_shifts), cmocka_unit_test(test_night_shift),
        cmocka_unit_test(test_dst),          cmocka_unit_test(test_refused),
        cmocka_unit_test(test_desk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
