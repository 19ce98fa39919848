/* The static files under --web: which file a target names and which it
 * refuses (".." and odd paths), content types, and the size cap, on a
 * temporary folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sb_static.h"

static char root[64];

static void put(const char *rel, const char *text)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/sbstatic.XXXXXX");
    if (!mkdtemp(root)) return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

/* The file target maps to, relative to root; NULL if refused. */
static const char *mapped(const char *target)
{
    static char full[512];
    if (sb_static_path(root, target, full, sizeof full) != 0) return NULL;
    assert_memory_equal(full, root, strlen(root));
    return full + strlen(root);
}

static void test_paths(void **state)
{
    (void)state;
    assert_string_equal(mapped("/"), "/index.html");
    assert_string_equal(mapped("/?x=1"), "/index.html");
    assert_string_equal(mapped("/agent"), "/agent.html");
    assert_string_equal(mapped("/agent?user=bob"), "/agent.html");
    assert_string_equal(mapped("/app.js?v=2#top"), "/app.js");
    assert_string_equal(mapped("/assets/site.css"), "/assets/site.css");
    assert_string_equal(mapped("/assets/"), "/assets/");
}

static void test_refused(void **state)
{
    (void)state;
    assert_null(mapped(""));
    assert_null(mapped("?x"));
    assert_null(mapped("#x"));
    assert_null(mapped("index.html"));
    assert_null(mapped("*"));
    assert_null(mapped("http://host/index.html"));
    assert_null(mapped("/.."));
    assert_null(mapped("/../etc/passwd"));
    assert_null(mapped("/assets/../../etc/passwd"));
    assert_null(mapped("/a..b.js"));
    assert_null(mapped("/assets\\site.css"));
    assert_null(mapped("/..?x"));
    char long_target[SB_STATIC_TARGET_BYTES_MAX + 2];
    memset(long_target, 'a', sizeof long_target - 1);
    long_target[0] = '/';
    long_target[sizeof long_target - 1] = '\0';
    assert_null(mapped(long_target));
    long_target[sizeof long_target - 2] = '\0'; /* at the limit */
    assert_non_null(mapped(long_target));
    /* A query past the limit does not count. */
    char q[SB_STATIC_TARGET_BYTES_MAX + 20];
    snprintf(q, sizeof q, "/x.js?%0*d", SB_STATIC_TARGET_BYTES_MAX, 0);
    assert_string_equal(mapped(q), "/x.js");
    /* No room for the full path. */
    char small[8];
    assert_int_equal(sb_static_path(root, "/index.html", small, sizeof small),
                     -ENOENT);
}

static void test_content_types(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"/w/index.html", "text/html; charset=utf-8"},
        {"/w/app.js", "text/javascript; charset=utf-8"},
        {"/w/mod.mjs", "text/javascript; charset=utf-8"},
        {"/w/site.css", "text/css; charset=utf-8"},
        {"/w/data.json", "application/json"},
        {"/w/logo.png", "image/png"},
        {"/w/logo.svg", "image/svg+xml"},
        {"/w/favicon.ico", "image/x-icon"},
        {"/w/robots.txt", "text/plain; charset=utf-8"},
        {"/w/app.wasm", "application/octet-stream"},
        {"/w/page.HTML", "application/octet-stream"},
        {"/w/README", "application/octet-stream"},
        {"/w.d/README", "application/octet-stream"},
        {"/w/archive.tar.gz", "application/octet-stream"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_string_equal(sb_static_content_type(cases[i][0]), cases[i][1]);
}

static void test_read(void **state)
{
    (void)state;
    put("index.html", "<p>hi</p>");
    put("empty.txt", "");
    char full[512], *body;
    size_t len;
    assert_int_equal(sb_static_path(root, "/", full, sizeof full), 0);
    assert_int_equal(sb_static_read(full, &body, &len), 0);
    assert_int_equal(len, 9);
    assert_memory_equal(body, "<p>hi</p>", 9);
    free(body);
    assert_int_equal(sb_static_path(root, "/empty.txt", full, sizeof full), 0);
    assert_int_equal(sb_static_read(full, &body, &len), 0);
    assert_int_equal(len, 0);
    free(body);

    assert_int_equal(sb_static_path(root, "/missing.js", full, sizeof full), 0);
    assert_int_equal(sb_static_read(full, &body, &len), -ENOENT);
    assert_null(body);

    /* A folder is not a file. */
    snprintf(full, sizeof full, "%s/assets.d", root);
    assert_int_equal(mkdir(full, 0700), 0);
    assert_int_equal(sb_static_read(full, &body, &len), -ENOENT);
    assert_null(body);

    /* One byte over the cap (a sparse file) is not served. */
    snprintf(full, sizeof full, "%s/big.bin", root);
    int fd = open(full, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)SB_STATIC_FILE_BYTES_MAX + 1), 0);
    close(fd);
    assert_int_equal(sb_static_read(full, &body, &len), -ENOENT);
    assert_null(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_content_types),
        cmocka_unit_test(test_read),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
