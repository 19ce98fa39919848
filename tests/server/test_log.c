/* Log lines: the text and JSON forms, every field, the level filter, the
 * escaping of what would break a JSON line, and the cut of a long one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_log.h"

static char buf[2 * SB_LOG_LINE_BYTES_MAX];

/* Runs fn with the log going to a memory file; buf gets what it wrote. */
static void capture(sb_log_format f, sb_log_level min, void (*fn)(void))
{
    FILE *m = fmemopen(buf, sizeof buf, "w");
    assert_non_null(m);
    sb_log_setup(m, f, min);
    fn();
    fclose(m);
    sb_log_setup(NULL, SB_LOG_TEXT, SB_LOG_INFO);
}

static void two_lines(void)
{
    sb_log_ids ids = {
        .session = 7, .user = "bob", .device = "d 1", .conv = 42, .request = 3};
    sb_log(SB_LOG_DEBUG, "hidden", NULL, "not written");
    sb_log(SB_LOG_WARN, "request_refused", &ids, "code %d", 13);
    sb_log(SB_LOG_INFO, "listening", NULL, "on %s", "x");
}

static void test_text(void **state)
{
    (void)state;
    capture(SB_LOG_TEXT, SB_LOG_INFO, two_lines);
    char *nl = strchr(buf, '\n');
    assert_non_null(nl);
    /* 2025-01-02T03:04:05.678Z: 24 characters, then the level. */
    assert_int_equal(buf[23], 'Z');
    assert_non_null(strstr(buf, " warn  request_refused session=7 user=bob "
                                "device=d_1 conv=42 request=3: code 13\n"));
    assert_non_null(strstr(nl + 1, " info  listening: on x\n"));
    assert_null(strstr(buf, "hidden"));
}

static void test_json(void **state)
{
    (void)state;
    capture(SB_LOG_JSON, SB_LOG_DEBUG, two_lines);
    int lines = 0;
    for (char *p = buf, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
        *nl = '\0';
        json_error_t e;
        json_t *j = json_loads(p, 0, &e);
        assert_non_null(j);
        assert_non_null(json_string_value(json_object_get(j, "time")));
        if (lines == 1) {
            assert_string_equal(json_string_value(json_object_get(j, "level")),
                                "warn");
            assert_string_equal(json_string_value(json_object_get(j, "event")),
                                "request_refused");
            assert_int_equal(json_integer_value(json_object_get(j, "session")),
                             7);
            assert_string_equal(json_string_value(json_object_get(j, "device")),
                                "d 1");
            assert_int_equal(json_integer_value(json_object_get(j, "conv")),
                             42);
            assert_int_equal(json_integer_value(json_object_get(j, "request")),
                             3);
        }
        json_decref(j);
        lines++;
    }
    assert_int_equal(lines, 3);
}

static void awkward(void)
{
    char long_text[SB_LOG_LINE_BYTES_MAX * 2];
    memset(long_text, '"', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    sb_log(SB_LOG_ERROR, "odd", &(sb_log_ids){.user = "a\"b\\\x01"},
           "bad utf-8 \xff\xfe, tab\t, newline\n, then %s", long_text);
}

static void test_escaping(void **state)
{
    (void)state;
    capture(SB_LOG_JSON, SB_LOG_INFO, awkward);
    char *nl = strchr(buf, '\n');
    assert_non_null(nl);
    assert_null(strchr(nl + 1, '\n')); /* one line */
    assert_true((size_t)(nl - buf) < SB_LOG_LINE_BYTES_MAX);
    *nl = '\0';
    json_error_t e;
    json_t *j = json_loads(buf, 0, &e);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "user")),
                        "a\"b\\\x01");
    const char *msg = json_string_value(json_object_get(j, "msg"));
    assert_non_null(strstr(msg, "bad utf-8 \xef\xbf\xbd\xef\xbf\xbd, tab\t"));
    json_decref(j);
    sb_log_level l;
    assert_int_equal(sb_log_level_parse("WARN", &l), 0);
    assert_int_equal(l, SB_LOG_WARN);
    assert_true(sb_log_level_parse("loud", &l) < 0);
    sb_log_format f;
    assert_int_equal(sb_log_format_parse("json", &f), 0);
    assert_true(sb_log_format_parse("xml", &f) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_escaping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
