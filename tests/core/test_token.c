/* HS256 token signing and verification: forged, none-alg, expired. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "sb_b64.h"
#include "sb_error.h"
#include "sb_token.h"

static const uint8_t KEY[] = "test-secret-please-change";
#define KEYLEN (sizeof KEY - 1)
#define NOW 1800000000LL

static int mint(const char *sub, const char *role, int64_t exp, int64_t nbf,
                char *out)
{
    sb_claims c;
    memset(&c, 0, sizeof c);
    snprintf(c.sub, sizeof c.sub, "%s", sub);
    c.role = sb_role_from_name(role);
    c.exp = exp;
    c.nbf = nbf;
    return sb_token_sign(KEY, KEYLEN, &c, out, 1024);
}

static void test_valid(void **state)
{
    (void)state;
    char tok[1024];
    int n = mint("alice", "agent", NOW + 60, 0, tok);
    assert_true(n > 0);
    sb_claims c;
    assert_int_equal(sb_token_verify(KEY, KEYLEN, tok, (size_t)n, NOW, 30, &c),
                     0);
    assert_string_equal(c.sub, "alice");
    assert_int_equal(c.role, SBP__ROLE__ROLE_AGENT);
}

static void test_expired_and_nbf(void **state)
{
    (void)state;
    char tok[1024];
    sb_claims c;
    int n = mint("bob", "customer", NOW - 31, 0, tok);
    assert_int_equal(sb_token_verify(KEY, KEYLEN, tok, (size_t)n, NOW, 30, &c),
                     SB_E_TOKEN_EXPIRED);
    n = mint("bob", "customer", NOW - 10, 0, tok); /* within skew */
    assert_int_equal(sb_token_verify(KEY, KEYLEN, tok, (size_t)n, NOW, 30, &c),
                     0);
    n = mint("bob", "customer", NOW + 600, NOW + 120, tok);
    assert_int_equal(sb_token_verify(KEY, KEYLEN, tok, (size_t)n, NOW, 30, &c),
                     SB_E_TOKEN_EXPIRED);
}

static void test_forged(void **state)
{
    (void)state;
    char tok[1024];
    sb_claims c;
    int n = mint("carol", "customer", NOW + 60, 0, tok);
    /* Wrong key. */
    assert_int_equal(sb_token_verify((const uint8_t *)"other", 5, tok,
                                     (size_t)n, NOW, 30, &c),
                     SB_E_BAD_TOKEN);
    /* Payload swapped for an admin claim, signature kept. */
    char forged[1024];
    const char *d1 = strchr(tok, '.');
    const char *d2 = strchr(d1 + 1, '.');
    const char *pl =
        "{\"sub\":\"carol\",\"role\":\"admin\",\"exp\":1900000000}";
    char plb[256];
    sb_b64_encode((const uint8_t *)pl, strlen(pl), plb, 1);
    snprintf(forged, sizeof forged, "%.*s.%s%s", (int)(d1 - tok), tok, plb, d2);
    assert_int_equal(
        sb_token_verify(KEY, KEYLEN, forged, strlen(forged), NOW, 30, &c),
        SB_E_BAD_TOKEN);
    /* alg none, empty signature. */
    const char *hn = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
    char hb[128];
    sb_b64_encode((const uint8_t *)hn, strlen(hn), hb, 1);
    snprintf(forged, sizeof forged, "%s.%s.", hb, plb);
    assert_int_equal(
        sb_token_verify(KEY, KEYLEN, forged, strlen(forged), NOW, 30, &c),
        SB_E_BAD_TOKEN);
    /* Garbage. */
    const char *junk[] = {"", "a", "a.b", "a.b.c", "..", "a.b.c.d"};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(
            sb_token_verify(KEY, KEYLEN, junk[i], strlen(junk[i]), NOW, 30, &c),
            SB_E_BAD_TOKEN);
    /* Unknown role. */
    n = mint("dave", "customer", NOW + 60, 0, tok);
    tok[n - 1] = tok[n - 1] == 'A' ? 'B' : 'A'; /* flip the signature */
    assert_int_equal(sb_token_verify(KEY, KEYLEN, tok, (size_t)n, NOW, 30, &c),
                     SB_E_BAD_TOKEN);
}

/* Found by fuzz_token: a claim that cannot be encoded (a locale that is
 * not UTF-8) fails the signing instead of being left out of the token. */
static void test_sign_bad_locale(void **state)
{
    (void)state;
    sb_claims c;
    memset(&c, 0, sizeof c);
    snprintf(c.sub, sizeof c.sub, "erin");
    c.role = SBP__ROLE__ROLE_AGENT;
    c.exp = NOW + 60;
    memcpy(c.locale, "e\xb4n", 3);
    char tok[1024];
    assert_int_equal(sb_token_sign(KEY, KEYLEN, &c, tok, sizeof tok), -EINVAL);
    memcpy(c.locale, "en", 3);
    int n = sb_token_sign(KEY, KEYLEN, &c, tok, sizeof tok);
    assert_true(n > 0);
    sb_claims got;
    assert_int_equal(
        sb_token_verify(KEY, KEYLEN, tok, (size_t)n, NOW, 30, &got), 0);
    assert_string_equal(got.locale, "en");
}

/* A token with payload pl (JSON), correctly signed with KEY. */
static int sign_raw(const char *pl, char *out)
{
    static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    size_t n = sb_b64_encode((const uint8_t *)hdr, sizeof hdr - 1, out, 1);
    out[n++] = '.';
    n += sb_b64_encode((const uint8_t *)pl, strlen(pl), out + n, 1);
    uint8_t mac[32];
    unsigned int mlen = sizeof mac;
    assert_non_null(HMAC(EVP_sha256(), KEY, (int)KEYLEN, (const uint8_t *)out,
                         n, mac, &mlen));
    out[n++] = '.';
    n += sb_b64_encode(mac, 32, out + n, 1);
    return (int)n;
}

static int verify_ex(const char *tok, const char *iss, const char *aud)
{
    sb_claims c;
    sb_token_check chk = {.now_s = NOW, .skew_s = 30, .iss = iss, .aud = aud};
    return sb_token_verify_ex(KEY, KEYLEN, tok, strlen(tok), &chk, &c);
}

/* Issuer and audience: checked only when configured, then required. */
static void test_iss_aud(void **state)
{
    (void)state;
    const char *ISS = "https://id.example.com";
    sb_claims c;
    memset(&c, 0, sizeof c);
    snprintf(c.sub, sizeof c.sub, "frank");
    c.role = SBP__ROLE__ROLE_CUSTOMER;
    c.exp = NOW + 60;
    snprintf(c.iss, sizeof c.iss, "%s", ISS);
    snprintf(c.aud, sizeof c.aud, "switchboard");
    char tok[1024];
    assert_true(sb_token_sign(KEY, KEYLEN, &c, tok, sizeof tok) > 0);
    sb_claims got;
    sb_token_check chk = {
        .now_s = NOW, .skew_s = 30, .iss = ISS, .aud = "switchboard"};
    assert_int_equal(
        sb_token_verify_ex(KEY, KEYLEN, tok, strlen(tok), &chk, &got), 0);
    assert_string_equal(got.iss, ISS);
    assert_int_equal(verify_ex(tok, NULL, NULL), 0); /* not configured */
    assert_int_equal(verify_ex(tok, "", ""), 0);
    assert_int_equal(verify_ex(tok, ISS, NULL), 0);
    assert_int_equal(verify_ex(tok, NULL, "switchboard"), 0);
    /* Wrong audience, wrong issuer. */
    assert_int_equal(verify_ex(tok, ISS, "billing"), SB_E_BAD_TOKEN);
    assert_int_equal(verify_ex(tok, "https://evil.example.com", "switchboard"),
                     SB_E_BAD_TOKEN);
    assert_int_equal(verify_ex(tok, "https://id.example.co", NULL),
                     SB_E_BAD_TOKEN); /* a prefix is not the issuer */
    /* Missing aud, missing iss, when required. */
    char bare[1024];
    assert_true(mint("frank", "customer", NOW + 60, 0, bare) > 0);
    assert_int_equal(verify_ex(bare, NULL, "switchboard"), SB_E_BAD_TOKEN);
    assert_int_equal(verify_ex(bare, ISS, NULL), SB_E_BAD_TOKEN);
    assert_int_equal(verify_ex(bare, NULL, NULL), 0);
    /* aud as an array (RFC 7519); strings only, whole strings only. */
    char t[1024];
    sign_raw("{\"sub\":\"g\",\"role\":\"agent\",\"exp\":1800000060,"
             "\"aud\":[\"billing\",\"switchboard\"]}",
             t);
    assert_int_equal(verify_ex(t, NULL, "switchboard"), 0);
    assert_int_equal(verify_ex(t, NULL, "chat"), SB_E_BAD_TOKEN);
    sign_raw("{\"sub\":\"g\",\"role\":\"agent\",\"exp\":1800000060,"
             "\"aud\":[1,{\"a\":\"switchboard\"}]}",
             t);
    assert_int_equal(verify_ex(t, NULL, "switchboard"), SB_E_BAD_TOKEN);
    assert_int_equal(verify_ex(t, NULL, NULL), 0);
    sign_raw("{\"sub\":\"g\",\"role\":\"agent\",\"exp\":1800000060,"
             "\"aud\":\"switchboard\\u0000x\"}",
             t);
    assert_int_equal(verify_ex(t, NULL, "switchboard"), SB_E_BAD_TOKEN);
    sign_raw("{\"sub\":\"g\",\"role\":\"agent\",\"exp\":1800000060,"
             "\"iss\":7}",
             t);
    assert_int_equal(verify_ex(t, NULL, NULL), SB_E_BAD_TOKEN);
}

/* exp and nbf at the ends of the 64-bit range: no overflow, and the right
 * answer. */
static void test_extreme_times(void **state)
{
    (void)state;
    char t[1024];
    sign_raw("{\"sub\":\"h\",\"role\":\"bot\",\"exp\":9223372036854775807}", t);
    assert_int_equal(verify_ex(t, NULL, NULL), 0);
    sign_raw("{\"sub\":\"h\",\"role\":\"bot\",\"exp\":-9223372036854775808}",
             t);
    assert_int_equal(verify_ex(t, NULL, NULL), SB_E_TOKEN_EXPIRED);
    sign_raw("{\"sub\":\"h\",\"role\":\"bot\",\"exp\":1800000060,"
             "\"nbf\":9223372036854775807}",
             t);
    assert_int_equal(verify_ex(t, NULL, NULL), SB_E_TOKEN_EXPIRED);
    sign_raw("{\"sub\":\"h\",\"role\":\"bot\",\"exp\":1800000060,"
             "\"nbf\":-9223372036854775808}",
             t);
    assert_int_equal(verify_ex(t, NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),   cmocka_unit_test(test_expired_and_nbf),
        cmocka_unit_test(test_forged),  cmocka_unit_test(test_sign_bad_locale),
        cmocka_unit_test(test_iss_aud), cmocka_unit_test(test_extreme_times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
