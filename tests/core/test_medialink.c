/* sb_medialink: upload ids, and signed links: a link works for its
 * upload, its user and role, until it expires, and for nothing else (a
 * changed user, role, time, id, MAC or secret; a malformed token). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sb_error.h"
#include "sb_medialink.h"

#define SECRET ((const uint8_t *)"link-secret")
#define SECRET_LEN 11
static const char ID[] = "0123456789abcdef0123456789abcdef";
static const char ID2[] = "0123456789abcdef0123456789abcdee";

static void test_ids(void **state)
{
    (void)state;
    assert_true(sb_media_id_valid(ID));
    assert_false(sb_media_id_valid("0123456789ABCDEF0123456789abcdef"));
    assert_false(sb_media_id_valid("0123456789abcdef0123456789abcde"));
    assert_false(sb_media_id_valid("0123456789abcdef0123456789abcdef0"));
    assert_false(sb_media_id_valid("../../etc/passwd"));
    assert_false(sb_media_id_valid(""));
    assert_false(sb_media_id_valid(NULL));
    uint8_t rnd[16];
    for (int i = 0; i < 16; i++)
        rnd[i] = (uint8_t)(i * 17);
    char id[SB_MEDIA_ID_LEN + 1];
    sb_media_id_make(rnd, id);
    assert_string_equal(id, "00112233445566778899aabbccddeeff");
    assert_true(sb_media_id_valid(id));
}

/* The t= value of a link. */
static const char *token_of(const char *link)
{
    const char *t = strstr(link, "?t=");
    assert_non_null(t);
    return t + 3;
}

static int verify(const char *id, const char *t, int64_t now, char *user,
                  Sbp__Role *role)
{
    return sb_media_link_verify(SECRET, SECRET_LEN, id, t, strlen(t), now, user,
                                role);
}

static void test_links(void **state)
{
    (void)state;
    char link[SB_MEDIA_LINK_BYTES_MAX], user[SB_ID_BYTES_MAX + 1];
    Sbp__Role role;
    int n = sb_media_link_sign(SECRET, SECRET_LEN, ID, "ann.lee@x",
                               SBP__ROLE__ROLE_AGENT, 1000, link, sizeof link);
    assert_true(n > 0 && (size_t)n == strlen(link));
    assert_memory_equal(link, "/media/0123456789abcdef0123456789abcdef?t=", 42);
    const char *t = token_of(link);
    assert_int_equal(verify(ID, t, 999, user, &role), 0);
    assert_string_equal(user, "ann.lee@x");
    assert_int_equal(role, SBP__ROLE__ROLE_AGENT);
    /* Expired at 1000. */
    assert_int_equal(verify(ID, t, 1000, user, &role), SB_E_TOKEN_EXPIRED);
    assert_string_equal(user, "");
    /* Another upload. */
    assert_int_equal(verify(ID2, t, 10, user, &role), SB_E_BAD_TOKEN);
    /* Another secret. */
    assert_int_equal(sb_media_link_verify((const uint8_t *)"other", 5, ID, t,
                                          strlen(t), 10, user, &role),
                     SB_E_BAD_TOKEN);
    /* Each field changed: the time, the role, the user, the MAC. */
    char bad[SB_MEDIA_TOKEN_BYTES_MAX];
    snprintf(bad, sizeof bad, "9%s", t);
    assert_int_equal(verify(ID, bad, 10, user, &role), SB_E_BAD_TOKEN);
    snprintf(bad, sizeof bad, "%s", t);
    char *dot = strchr(bad, '.');
    dot[1] = '4'; /* agent -> admin */
    assert_int_equal(verify(ID, bad, 10, user, &role), SB_E_BAD_TOKEN);
    snprintf(bad, sizeof bad, "%s", t);
    dot = strchr(strchr(bad, '.') + 1, '.');
    dot[1] = dot[1] == 'Y' ? 'Z' : 'Y';
    assert_int_equal(verify(ID, bad, 10, user, &role), SB_E_BAD_TOKEN);
    snprintf(bad, sizeof bad, "%s", t);
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(ID, bad, 10, user, &role), SB_E_BAD_TOKEN);
    /* Malformed. */
    static const char *const junk[] = {"",
                                       ".",
                                       "...",
                                       "1.2.3",
                                       "1.2.3.4.5",
                                       "x.2.dXNlcg.AAAA",
                                       "100.9.dXNlcg.AAAA",
                                       "100.2..AAAA",
                                       "-1.2.dXNlcg.AAAA",
                                       "100.2.dXNlcg.!!!!"};
    for (size_t i = 0; i < sizeof junk / sizeof *junk; i++)
        assert_int_equal(verify(ID, junk[i], 10, user, &role), SB_E_BAD_TOKEN);
    /* Signing refuses what it cannot vouch for. */
    assert_int_equal(sb_media_link_sign(SECRET, SECRET_LEN, "nope", "u",
                                        SBP__ROLE__ROLE_AGENT, 1, link,
                                        sizeof link),
                     -EINVAL);
    assert_int_equal(sb_media_link_sign(SECRET, SECRET_LEN, ID, "",
                                        SBP__ROLE__ROLE_AGENT, 1, link,
                                        sizeof link),
                     -EINVAL);
    assert_int_equal(sb_media_link_sign(SECRET, SECRET_LEN, ID, "u",
                                        SBP__ROLE__ROLE_AGENT, 1, link, 20),
                     -ENOSPC);
    /* The longest user fits. */
    char longest[SB_ID_BYTES_MAX + 1];
    memset(longest, 0xe4, SB_ID_BYTES_MAX); /* not UTF-8: bytes are bytes */
    longest[SB_ID_BYTES_MAX] = '\0';
    n = sb_media_link_sign(SECRET, SECRET_LEN, ID, longest,
                           SBP__ROLE__ROLE_CUSTOMER, 4102444800LL, link,
                           sizeof link);
    assert_true(n > 0);
    assert_int_equal(verify(ID, token_of(link), 10, user, &role), 0);
    assert_string_equal(user, longest);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_links),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
