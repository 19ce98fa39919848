/* Time zones: the calendar, TZif files of the system's tzdata around their
 * transitions (the figures checked against Python's zoneinfo), the footer's
 * POSIX rules past the last transition and alone in a file, local times in
 * a gap and an overlap of the clocks, and bad names and files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_tz.h"

static sb_tz *load(const char *name)
{
    sb_tz *z = NULL;
    int rc = sb_tz_load(name, &z);
    if (rc) fail_msg("%s: %d", name, rc);
    return z;
}

static void test_calendar(void **state)
{
    (void)state;
    assert_int_equal(sb_tz_days(1970, 1, 1), 0);
    assert_int_equal(sb_tz_days(2000, 3, 1), 11017);
    assert_int_equal(sb_tz_days(2027, 1, 15), 1800000000 / 86400);
    int64_t y;
    unsigned m, d;
    sb_tz_civil(11016, &y, &m, &d); /* the day before 2000-03-01 */
    assert_int_equal(y, 2000);
    assert_int_equal(m, 2);
    assert_int_equal(d, 29);
    sb_tz_civil(-1, &y, &m, &d);
    assert_int_equal(y, 1969);
    assert_int_equal(m, 12);
    assert_int_equal(d, 31);
    assert_int_equal(sb_tz_weekday(0), 4);                       /* Thu */
    assert_int_equal(sb_tz_weekday(sb_tz_days(2027, 1, 15)), 5); /* Fri */
    assert_int_equal(sb_tz_day_of(-1), -1);
    assert_int_equal(sb_tz_day_of(86399), 0);
    int64_t days;
    assert_int_equal(sb_tz_date_parse("2024-02-29", &days), 0);
    assert_int_equal(days, sb_tz_days(2024, 2, 29));
    const char *bad[] = {"2023-02-29", "2024-13-01", "2024-1-01", "20240101",
                         "1969-12-31", "2024-04-31", "",          "2024-02-2x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(sb_tz_date_parse(bad[i], &days), SB_E_INVALID);
    assert_int_equal(sb_tz_date_parse(NULL, &days), SB_E_INVALID);
    char out[11];
    sb_tz_date_format(sb_tz_days(2031, 12, 9), out);
    assert_string_equal(out, "2031-12-09");
}

typedef struct probe {
    const char *zone;
    int64_t t;
    int32_t offset;
} probe;

/* Each transition's last second before and first after; the 2040s come
 * from the files' POSIX rules. */
static void test_offsets(void **state)
{
    (void)state;
    static const probe P[] = {
        {"Europe/Berlin", 1743296399, 3600},
        {"Europe/Berlin", 1743296400, 7200},
        {"Europe/Berlin", 2216249999, 3600}, /* 2040-03-25 00:59:59Z */
        {"Europe/Berlin", 2216250000, 7200},
        {"Europe/Berlin", 2234998799, 7200}, /* 2040-10-28 00:59:59Z */
        {"Europe/Berlin", 2234998800, 3600},
        {"America/New_York", 1741503599, -18000},
        {"America/New_York", 1741503600, -14400},
        {"Australia/Sydney", 1743868799, 39600}, /* southern: back in April */
        {"Australia/Sydney", 1743868800, 36000},
        {"Australia/Sydney", 2366841600, 39600}, /* 2045-01-01: summer */
        {"Australia/Sydney", 2382480000, 36000}, /* 2045-07-01: winter */
        {"Asia/Shanghai", 1751328000, 28800},
        {"Asia/Kolkata", 1751328000, 19800},
        {"America/St_Johns", 2540246400, -9000}, /* 2050, half hours */
        {"UTC", 1751328000, 0},
    };
    for (size_t i = 0; i < sizeof P / sizeof *P; i++) {
        sb_tz *z = load(P[i].zone);
        assert_string_equal(sb_tz_name(z), P[i].zone);
        if (sb_tz_offset(z, P[i].t) != P[i].offset)
            fail_msg("%s at %lld: %d, want %d", P[i].zone, (long long)P[i].t,
                     sb_tz_offset(z, P[i].t), P[i].offset);
        sb_tz_free(z);
    }
}

/* Local wall times back to instants: plain, in the spring gap (read on
 * the clocks before it: 02:30 is 03:30 CEST) and in the autumn overlap
 * (the first 02:30, on summer time). */
static void test_from_local(void **state)
{
    (void)state;
    sb_tz *z = load("Europe/Berlin");
    int64_t day = sb_tz_days(2025, 3, 30) * 86400;
    assert_int_equal(sb_tz_from_local(z, day + 3600), day);        /* 01:00 */
    assert_int_equal(sb_tz_from_local(z, day + 9000), day + 5400); /* 02:30 */
    assert_int_equal(sb_tz_from_local(z, day + 3 * 3600), day + 3600);
    day = sb_tz_days(2025, 10, 26) * 86400;
    assert_int_equal(sb_tz_from_local(z, day + 9000), day + 1800); /* CEST */
    assert_int_equal(sb_tz_from_local(z, day + 3 * 3600), day + 7200);
    day = sb_tz_days(2025, 7, 1) * 86400;
    assert_int_equal(sb_tz_from_local(z, day + 12 * 3600), day + 10 * 3600);
    sb_tz_free(z);
}

/* Builds a TZif version 2 file with no transition and one type, whose
 * footer is rule: the rule alone decides every offset. */
static size_t footer_only(const char *rule, uint8_t *out, size_t cap)
{
    uint8_t head[44] = {'T', 'Z', 'i', 'f', '2'};
    head[39] = 1; /* typecnt */
    head[43] = 4; /* charcnt */
    size_t n = 0;
    for (int block = 0; block < 2; block++) {
        memcpy(out + n, head, 44);
        n += 44;
        uint8_t ttinfo[6] = {0, 0, 0x0e, 0x10, 0, 0}; /* +3600 */
        memcpy(out + n, ttinfo, 6);
        n += 6;
        memcpy(out + n, "CET", 4);
        n += 4;
    }
    out[n++] = '\n';
    size_t len = strlen(rule);
    assert_true(n + len + 1 < cap);
    memcpy(out + n, rule, len);
    n += len;
    out[n++] = '\n';
    return n;
}

static int32_t rule_offset(const char *rule, int64_t t)
{
    uint8_t buf[256];
    size_t n = footer_only(rule, buf, sizeof buf);
    sb_tz *z = NULL;
    if (sb_tz_parse(buf, n, "test", &z) != 0) fail_msg("rule %s", rule);
    int32_t off = sb_tz_offset(z, t);
    sb_tz_free(z);
    return off;
}

static void test_rules(void **state)
{
    (void)state;
    const char *berlin = "CET-1CEST,M3.5.0,M10.5.0/3";
    assert_int_equal(rule_offset(berlin, 1743296399), 3600);
    assert_int_equal(rule_offset(berlin, 1743296400), 7200);
    /* Southern: summer spans the new year. */
    const char *sydney = "AEST-10AEDT,M10.1.0,M4.1.0/3";
    assert_int_equal(rule_offset(sydney, 1743868799), 39600);
    assert_int_equal(rule_offset(sydney, 1743868800), 36000);
    assert_int_equal(rule_offset(sydney, 2366841600), 39600);
    /* No dates: the US rules. */
    assert_int_equal(rule_offset("EST5EDT", 1741503599), -18000);
    assert_int_equal(rule_offset("EST5EDT", 1741503600), -14400);
    /* Quoted names and minutes; no daylight-saving time. */
    assert_int_equal(rule_offset("<+0545>-5:45", 1751328000), 20700);
    /* Julian days: J60 is 1 March every year, 59 (zero-based) 29 February
     * in a leap year; the change at 02:00 local standard time. */
    int64_t mar1 = sb_tz_days(2024, 3, 1) * 86400;
    assert_int_equal(rule_offset("AAA0BBB,J60,J300", mar1 + 7199), 0);
    assert_int_equal(rule_offset("AAA0BBB,J60,J300", mar1 + 7200), 3600);
    int64_t feb29 = sb_tz_days(2024, 2, 29) * 86400;
    assert_int_equal(rule_offset("AAA0BBB,59,300", feb29 + 7200), 3600);
    assert_int_equal(rule_offset("AAA0BBB,59,300", feb29 + 7199), 0);
    /* Broken rules make the file no zone. */
    const char *bad[] = {"CET",
                         "CET-1CEST,M3.5.0",
                         "CET-1CEST,M13.1.0,M10.5.0",
                         "CET-99",
                         "CET-1CEST,M3.5.0,M10.5.0/3x",
                         "1CET"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint8_t buf[256];
        size_t n = footer_only(bad[i], buf, sizeof buf);
        sb_tz *z = NULL;
        assert_int_equal(sb_tz_parse(buf, n, "bad", &z), SB_E_NOT_FOUND);
        assert_null(z);
    }
}

static void test_bad(void **state)
{
    (void)state;
    sb_tz *z = NULL;
    const char *names[] = {"",
                           "../etc/passwd",
                           "/etc/localtime",
                           "Europe//Berlin",
                           "Europe/Berlin/",
                           "Europe/Ber lin",
                           "a.b",
                           "Europe/Berlin\n"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        assert_int_equal(sb_tz_load(names[i], &z), SB_E_INVALID);
    assert_int_equal(sb_tz_load(NULL, &z), SB_E_INVALID);
    assert_int_equal(sb_tz_load("Mars/Olympus", &z), SB_E_NOT_FOUND);
    assert_int_equal(sb_tz_load("Europe", &z), SB_E_NOT_FOUND); /* a folder */
    assert_null(z);
    /* Truncated and corrupt files. */
    uint8_t buf[256];
    size_t n = footer_only("CET-1", buf, sizeof buf);
    for (size_t cut = 0; cut < 44 + 10; cut += 5)
        assert_int_equal(sb_tz_parse(buf, cut, "x", &z), SB_E_NOT_FOUND);
    buf[0] = 'X';
    assert_int_equal(sb_tz_parse(buf, n, "x", &z), SB_E_NOT_FOUND);
    sb_tz_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calendar),   cmocka_unit_test(test_offsets),
        cmocka_unit_test(test_from_local), cmocka_unit_test(test_rules),
        cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
