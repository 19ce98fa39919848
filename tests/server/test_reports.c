/* Reports for the HTTP side: query strings parsed (escapes, defaults, each
 * mistake refused with its reason) and reports computed through a real
 * store queue and rendered, or refused, through the callback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "sb_error.h"
#include "sb_reports.h"

static int parse(const char *qs, sb_reports_args *a, char *err, size_t n)
{
    return sb_reports_parse(qs, strlen(qs), a, err, n);
}

static void test_parse(void **state)
{
    (void)state;
    sb_reports_args a;
    char err[128];
    assert_int_equal(parse("from=2027-01-15&tz=Europe%2FBerlin&by=agent,day"
                           "&format=csv&agent=li+ming",
                           &a, err, sizeof err),
                     0);
    assert_string_equal(a.report.from, "2027-01-15");
    assert_string_equal(a.report.to, "2027-01-15"); /* the from day */
    assert_string_equal(a.report.tz, "Europe/Berlin");
    assert_int_equal(a.report.n_by, 2);
    assert_string_equal(a.report.by[0], "agent");
    assert_string_equal(a.report.by[1], "day");
    assert_string_equal(a.report.agent, "li ming");
    assert_string_equal(a.report.desk, "");
    assert_int_equal(a.format, SB_REPORT_CSV);
    assert_int_equal(parse("from=2027-01-15", &a, err, sizeof err), 0);
    assert_int_equal(a.format, SB_REPORT_JSON);
    assert_int_equal(a.report.n_by, 0);
    static const struct {
        const char *qs, *why;
    } BAD[] = {
        {"to=2027-01-15", "from=YYYY-MM-DD is required"},
        {"from=2027-01-15&from=2027-01-16", "from twice"},
        {"from=2027-01-15&colour=red", "unknown parameter colour"},
        {"from=2027-01-15&tz", "want NAME=VALUE"},
        {"from=2027-01-15&tz=%zz", "broken"},
        {"from=2027-01-15&tz=%00", "broken"},
        {"from=2027-01-15&tz=%4", "broken"},
        {"from=2027-01-15&format=xml", "json, csv or table"},
        {"from=2027-01-15&by=a,b,c,d,e", "at most"},
    };
    for (size_t i = 0; i < sizeof BAD / sizeof *BAD; i++) {
        err[0] = '\0';
        assert_int_equal(parse(BAD[i].qs, &a, err, sizeof err), SB_E_INVALID);
        if (!strstr(err, BAD[i].why))
            fail_msg("%s: \"%s\", want \"%s\"", BAD[i].qs, err, BAD[i].why);
    }
    char big[SB_REPORTS_QUERY_BYTES_MAX + 10];
    memset(big, 'a', sizeof big);
    assert_int_equal(sb_reports_parse(big, sizeof big, &a, err, sizeof err),
                     SB_E_TOO_LARGE);
}

typedef struct answer {
    int n, rc;
    char type[64], body[4096], err[200];
} answer;

static void on_answer(void *ud, int rc, const char *type, const uint8_t *body,
                      size_t len, const char *err)
{
    answer *a = ud;
    a->n++;
    a->rc = rc;
    snprintf(a->type, sizeof a->type, "%s", type);
    snprintf(a->body, sizeof a->body, "%.*s", (int)len, (const char *)body);
    snprintf(a->err, sizeof a->err, "%s", err);
}

static void test_get(void **state)
{
    (void)state;
    char dir[] = "/tmp/sbreports.XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/sb.db", dir);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sb_storeq *q = NULL;
    assert_int_equal(sb_storeq_start(&loop, path, SB_DURABILITY_OS, &q), 0);
    sb_reports_args a;
    char err[160];
    assert_int_equal(
        parse("from=2027-01-15&by=agent&format=csv", &a, err, sizeof err), 0);
    answer ans = {0};
    assert_int_equal(sb_reports_get(q, &a.report, a.format, on_answer, &ans,
                                    err, sizeof err),
                     0);
    while (ans.n == 0)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(ans.rc, 0);
    assert_string_equal(ans.type, "text/csv; charset=utf-8");
    assert_non_null(strstr(ans.body, "agent,conversations,closed,"));
    assert_non_null(strstr(ans.body, "\r\n*,0,0,0,"));
    /* An unknown zone: known when it runs, said through the callback. */
    assert_int_equal(
        parse("from=2027-01-15&tz=Mars%2FOlympus", &a, err, sizeof err), 0);
    ans.n = 0;
    assert_int_equal(sb_reports_get(q, &a.report, a.format, on_answer, &ans,
                                    err, sizeof err),
                     0);
    while (ans.n == 0)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(ans.rc, SB_E_INVALID);
    assert_non_null(strstr(ans.err, "Mars/Olympus"));
    /* A bad date: refused at once, no callback. */
    assert_int_equal(parse("from=2027-02-30", &a, err, sizeof err), 0);
    ans.n = 0;
    assert_int_equal(sb_reports_get(q, &a.report, a.format, on_answer, &ans,
                                    err, sizeof err),
                     SB_E_INVALID);
    assert_non_null(strstr(err, "YYYY-MM-DD"));
    sb_storeq_stop(q);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(ans.n, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    const char *sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char p[80];
        snprintf(p, sizeof p, "%s%s", path, sfx[i]);
        unlink(p);
    }
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_get),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
