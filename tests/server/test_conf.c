/* The configuration file's cutting into entries: names, values, blanks
 * and comments, line numbers, and each refusal with its line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_conf.h"

static void test_entries(void **state)
{
    (void)state;
    static const char T[] = "# a comment\n"
                            "\n"
                            "listen 127.0.0.1:8080\r\n"
                            "  data   /var/lib/sb dir  \n"
                            "demo\n"
                            "\t# indented comment\n"
                            "origin https://a.example";
    sb_conf c;
    unsigned line;
    char err[256];
    assert_int_equal(sb_conf_parse(T, sizeof T - 1, &c, &line, err, sizeof err),
                     0);
    assert_int_equal(c.n, 4);
    assert_string_equal(c.entries[0].name, "listen");
    assert_string_equal(c.entries[0].value, "127.0.0.1:8080");
    assert_int_equal(c.entries[0].line, 3);
    assert_string_equal(c.entries[1].name, "data");
    assert_string_equal(c.entries[1].value, "/var/lib/sb dir");
    assert_int_equal(c.entries[1].line, 4);
    assert_string_equal(c.entries[2].name, "demo");
    assert_string_equal(c.entries[2].value, "");
    assert_string_equal(c.entries[3].value, "https://a.example");
    assert_int_equal(c.entries[3].line, 7);
    sb_conf_free(&c);
    sb_conf_free(&c); /* an empty one too */
}

static void refused(const char *text, size_t len, unsigned want_line,
                    const char *want)
{
    sb_conf c;
    unsigned line;
    char err[256];
    assert_int_equal(sb_conf_parse(text, len, &c, &line, err, sizeof err),
                     -EINVAL);
    assert_int_equal(line, want_line);
    assert_non_null(strstr(err, want));
    assert_int_equal(c.n, 0);
    assert_null(c.entries);
}

static void test_refusals(void **state)
{
    (void)state;
    refused("a 1\nB 2\n", 8, 2, "'B' is not an option name");
    refused("a 1\n--listen x\n", 15, 2, "not an option name");
    refused("a\0b", 3, 0, "NUL");
    char *big = malloc(SB_CONF_LINE_BYTES_MAX + 20);
    memset(big, 'x', SB_CONF_LINE_BYTES_MAX + 19);
    memcpy(big, "a\nb ", 4);
    refused(big, SB_CONF_LINE_BYTES_MAX + 19, 2, "longer than");
    free(big);
    size_t n = (SB_CONF_ENTRIES_MAX + 1) * 4;
    char *many = malloc(n);
    for (size_t i = 0; i < n; i += 4)
        memcpy(many + i, "a 1\n", 4);
    refused(many, n, SB_CONF_ENTRIES_MAX + 1, "more than");
    free(many);
    sb_conf c;
    unsigned line;
    char err[256];
    assert_int_equal(
        sb_conf_read("/nonexistent/sb.conf", &c, &line, err, sizeof err),
        -ENOENT);
    assert_int_equal(line, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entries),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
