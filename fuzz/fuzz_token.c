/* libFuzzer target: HS256 token verification (sb_token_verify).
 *
 * The input is the token, verified against a fixed secret and clock: the
 * only answers are 0 (then the claims are well-formed: sub 1..64 bytes,
 * a known role), SB_E_BAD_TOKEN and SB_E_TOKEN_EXPIRED. Inputs starting
 * with '!' are read instead as claims (role, times, sub) to sign; a token
 * that signs must verify to the same claims (and fail on one flipped
 * signature character), passes the issuer and audience it names and no
 * others. With an expected issuer and audience, verification only ever
 * refuses more. */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sb_error.h"
#include "sb_token.h"

static const uint8_t KEY[] = "fuzz-secret";
#define KEYLEN (sizeof KEY - 1)
#define NOW 1800000000LL
#define SKEW 60

static void check_claims(const sb_claims *c)
{
    size_t n = strnlen(c->sub, sizeof c->sub);
    assert(n >= 1 && n <= SB_ID_BYTES_MAX);
    assert(c->role >= SBP__ROLE__ROLE_CUSTOMER &&
           c->role <= SBP__ROLE__ROLE_INTEGRATION);
    assert(memchr(c->locale, '\0', sizeof c->locale));
}

static void sign_and_verify(const uint8_t *d, size_t n)
{
    if (n < 4) return;
    sb_claims c;
    memset(&c, 0, sizeof c);
    c.role = (Sbp__Role)(d[0] % 6);
    c.exp = NOW + (int64_t)(int8_t)d[1] * 10;
    if (d[1] == 0x7F) c.exp = INT64_MAX;
    if (d[1] == 0x80) c.exp = INT64_MIN;
    c.nbf = d[2] & 1 ? NOW + (int64_t)(int8_t)d[2] * 10 : 0;
    uint8_t flags = d[3];
    size_t loc = flags % 4 == 0 ? 5 : 0;
    d += 4;
    n -= 4;
    if (loc && n >= loc) {
        memcpy(c.locale, d, loc);
        d += loc;
        n -= loc;
    }
    memcpy(c.sub, d, n < SB_ID_BYTES_MAX ? n : SB_ID_BYTES_MAX);
    if (flags & 0x10) strcpy(c.iss, "https://id.example.com");
    if (flags & 0x20) strcpy(c.aud, "sb");
    char tok[SB_TOKEN_BYTES_MAX];
    int len = sb_token_sign(KEY, KEYLEN, &c, tok, sizeof tok);
    if (len < 0) return;
    sb_claims got;
    int rc = sb_token_verify(KEY, KEYLEN, tok, (size_t)len, NOW, SKEW, &got);
    if (rc != 0) {
        /* Only claims the verifier refuses by rule may fail. */
        bool expired = NOW - SKEW > c.exp || (c.nbf && c.nbf > NOW + SKEW);
        assert(rc == SB_E_BAD_TOKEN || (rc == SB_E_TOKEN_EXPIRED && expired));
        if (rc == SB_E_TOKEN_EXPIRED) return;
        assert(c.role == SBP__ROLE__ROLE_UNSPECIFIED || c.role > 4 ||
               c.sub[0] == '\0' || strlen(c.locale) >= sizeof c.locale);
        return;
    }
    check_claims(&got);
    assert(strcmp(got.sub, c.sub) == 0 && got.role == c.role);
    assert(strcmp(got.iss, c.iss) == 0);
    /* The issuer and audience it names pass; others are refused. */
    sb_token_check chk = {NOW, SKEW, c.iss, c.aud};
    assert(sb_token_verify_ex(KEY, KEYLEN, tok, (size_t)len, &chk, &got) == 0);
    chk.aud = "other";
    assert(sb_token_verify_ex(KEY, KEYLEN, tok, (size_t)len, &chk, &got) ==
           SB_E_BAD_TOKEN);
    chk.aud = NULL;
    chk.iss = "other";
    assert(sb_token_verify_ex(KEY, KEYLEN, tok, (size_t)len, &chk, &got) ==
           SB_E_BAD_TOKEN);
    sb_token_verify(KEY, KEYLEN, tok, (size_t)len, NOW, SKEW, &got);
    assert(got.exp == c.exp && got.nbf == c.nbf);
    assert(strcmp(got.locale, c.locale) == 0);
    tok[len - 1] = tok[len - 1] == 'A' ? 'B' : 'A';
    assert(sb_token_verify(KEY, KEYLEN, tok, (size_t)len, NOW, SKEW, &got) ==
           SB_E_BAD_TOKEN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 0 && data[0] == '!') {
        sign_and_verify(data + 1, size - 1);
        return 0;
    }
    sb_claims c, c2;
    int rc =
        sb_token_verify(KEY, KEYLEN, (const char *)data, size, NOW, SKEW, &c);
    assert(rc == 0 || rc == SB_E_BAD_TOKEN || rc == SB_E_TOKEN_EXPIRED);
    if (rc == 0) check_claims(&c);
    /* Expecting an issuer and an audience only ever refuses more. */
    sb_token_check chk = {NOW, SKEW, "https://id.example.com", "sb"};
    int rc2 =
        sb_token_verify_ex(KEY, KEYLEN, (const char *)data, size, &chk, &c2);
    assert(rc2 == 0 || rc2 == SB_E_BAD_TOKEN || rc2 == SB_E_TOKEN_EXPIRED);
    if (rc2 == 0) {
        assert(rc == 0 && memcmp(&c, &c2, sizeof c) == 0);
        assert(strcmp(c2.iss, chk.iss) == 0);
    }
    return 0;
}
