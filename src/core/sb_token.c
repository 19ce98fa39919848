/* HS256 JWT signing and verification with OpenSSL's HMAC. */
#include "sb_token.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "sb_b64.h"
#include "sb_error.h"
#include "sb_utf8.h"

static const char *const ROLE_NAMES[] = {"",    "customer", "agent",
                                         "bot", "admin",    "integration"};
#define ROLE_COUNT (sizeof ROLE_NAMES / sizeof ROLE_NAMES[0])

Sbp__Role sb_role_from_name(const char *name)
{
    for (int i = 1; i < (int)ROLE_COUNT; i++)
        if (strcmp(name, ROLE_NAMES[i]) == 0) return (Sbp__Role)i;
    return SBP__ROLE__ROLE_UNSPECIFIED;
}

const char *sb_role_name(Sbp__Role role)
{
    return (role >= 1 && (size_t)role < ROLE_COUNT) ? ROLE_NAMES[role]
                                                    : "unknown";
}

static int hmac256(const uint8_t *key, size_t key_len, const char *data,
                   size_t len, uint8_t mac[32])
{
    unsigned int n = 32;
    if (!HMAC(EVP_sha256(), key, (int)key_len, (const uint8_t *)data, len, mac,
              &n))
        return -EINVAL;
    return 0;
}

int sb_token_sign(const uint8_t *secret, size_t secret_len, const sb_claims *c,
                  char *out, size_t out_len)
{
    static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    json_t *p = json_pack("{s:s,s:s,s:I}", "sub", c->sub, "role",
                          sb_role_name(c->role), "exp", (json_int_t)c->exp);
    if (!p) return -EINVAL;
    /* A claim that cannot be set (a locale that is not UTF-8) fails the
     * signing rather than vanish from the token. */
    int bad = 0;
    if (c->nbf) bad |= json_object_set_new(p, "nbf", json_integer(c->nbf));
    if (c->iat) bad |= json_object_set_new(p, "iat", json_integer(c->iat));
    if (c->locale[0])
        bad |= json_object_set_new(p, "locale", json_string(c->locale));
    if (c->iss[0]) bad |= json_object_set_new(p, "iss", json_string(c->iss));
    if (c->aud[0]) bad |= json_object_set_new(p, "aud", json_string(c->aud));
    if (bad) {
        json_decref(p);
        return -EINVAL;
    }
    char *payload = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(p);
    if (!payload) return -ENOMEM;
    size_t plen = strlen(payload);
    size_t need = sb_b64_encoded_len(sizeof hdr - 1) +
                  sb_b64_encoded_len(plen) + sb_b64_encoded_len(32) + 2;
    if (need > out_len) {
        free(payload);
        return -ENOSPC;
    }
    size_t n = sb_b64_encode((const uint8_t *)hdr, sizeof hdr - 1, out, 1);
    out[n++] = '.';
    n += sb_b64_encode((const uint8_t *)payload, plen, out + n, 1);
    free(payload);
    uint8_t mac[32];
    int rc = hmac256(secret, secret_len, out, n, mac);
    if (rc) return rc;
    out[n++] = '.';
    n += sb_b64_encode(mac, 32, out + n, 1);
    return (int)n;
}

static json_t *decode_part(const char *s, size_t len)
{
    uint8_t buf[SB_TOKEN_BYTES_MAX];
    if (len > sizeof buf) return NULL;
    long n = sb_b64_decode(s, len, buf);
    if (n < 0 || !sb_utf8_valid((const char *)buf, (size_t)n)) return NULL;
    return json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES,
                      NULL);
}

/* True if j is the JSON string want, all of it (an embedded NUL does not
 * make a prefix match). */
static bool str_is(const json_t *j, const char *want)
{
    size_t n = strlen(want);
    return json_is_string(j) && json_string_length(j) == n &&
           memcmp(json_string_value(j), want, n) == 0;
}

/* True if aud (a string or an array of strings, RFC 7519 §4.1.3) is or
 * contains want. */
static bool aud_has(const json_t *aud, const char *want)
{
    if (!json_is_array(aud)) return str_is(aud, want);
    size_t i;
    json_t *e;
    json_array_foreach(aud, i, e)
    {
        if (str_is(e, want)) return true;
    }
    return false;
}

int sb_token_verify(const uint8_t *secret, size_t secret_len, const char *token,
                    size_t len, int64_t now_s, int64_t skew_s, sb_claims *out)
{
    sb_token_check chk = {.now_s = now_s, .skew_s = skew_s};
    return sb_token_verify_ex(secret, secret_len, token, len, &chk, out);
}

int sb_token_verify_ex(const uint8_t *secret, size_t secret_len,
                       const char *token, size_t len, const sb_token_check *chk,
                       sb_claims *out)
{
    int64_t now_s = chk->now_s, skew_s = chk->skew_s;
    memset(out, 0, sizeof *out);
    if (len == 0 || len > SB_TOKEN_BYTES_MAX) return SB_E_BAD_TOKEN;
    const char *d1 = memchr(token, '.', len);
    if (!d1) return SB_E_BAD_TOKEN;
    const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
    if (!d2) return SB_E_BAD_TOKEN;
    const char *sig = d2 + 1;
    size_t sig_len = len - (size_t)(sig - token);
    if (memchr(sig, '.', sig_len)) return SB_E_BAD_TOKEN;

    int rc = SB_E_BAD_TOKEN;
    json_t *hdr = decode_part(token, (size_t)(d1 - token));
    json_t *pl = NULL;
    if (!hdr || !json_is_object(hdr)) goto out;
    /* The algorithm is pinned: never trust the header to choose it. */
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    if (!alg || strcmp(alg, "HS256") != 0) goto out;

    uint8_t mac[32], got[48];
    if (sig_len != 43) goto out; /* 32 bytes, base64url without padding */
    if (sb_b64_decode(sig, sig_len, got) != 32) goto out;
    if (hmac256(secret, secret_len, token, (size_t)(d2 - token), mac)) goto out;
    if (CRYPTO_memcmp(mac, got, 32) != 0) goto out;

    pl = decode_part(d1 + 1, (size_t)(d2 - d1 - 1));
    if (!pl || !json_is_object(pl)) goto out;
    json_t *sub = json_object_get(pl, "sub");
    json_t *role = json_object_get(pl, "role");
    json_t *exp = json_object_get(pl, "exp");
    json_t *nbf = json_object_get(pl, "nbf");
    json_t *iat = json_object_get(pl, "iat");
    json_t *loc = json_object_get(pl, "locale");
    json_t *iss = json_object_get(pl, "iss");
    json_t *aud = json_object_get(pl, "aud");
    if (!json_is_string(sub) || !json_is_string(role) || !json_is_integer(exp))
        goto out;
    size_t sub_len = json_string_length(sub);
    if (sub_len == 0 || sub_len > SB_ID_BYTES_MAX ||
        memchr(json_string_value(sub), '\0', sub_len))
        goto out;
    memcpy(out->sub, json_string_value(sub), sub_len);
    out->role = sb_role_from_name(json_string_value(role));
    if (out->role == SBP__ROLE__ROLE_UNSPECIFIED) goto out;
    if ((nbf && !json_is_integer(nbf)) || (iat && !json_is_integer(iat)))
        goto out;
    if (loc) {
        if (!json_is_string(loc) ||
            json_string_length(loc) >= sizeof out->locale)
            goto out;
        memcpy(out->locale, json_string_value(loc), json_string_length(loc));
    }
    if (iss) {
        if (!json_is_string(iss) ||
            json_string_length(iss) > SB_TOKEN_ISS_BYTES_MAX)
            goto out;
        memcpy(out->iss, json_string_value(iss), json_string_length(iss));
    }
    /* A configured issuer or audience must be named by the token. */
    if (chk->iss && chk->iss[0] && !str_is(iss, chk->iss)) goto out;
    if (chk->aud && chk->aud[0] && !aud_has(aud, chk->aud)) goto out;
    out->exp = json_integer_value(exp);
    out->nbf = nbf ? json_integer_value(nbf) : 0;
    out->iat = iat ? json_integer_value(iat) : 0;
    /* Arranged so that no sum overflows, whatever exp and nbf hold. */
    if (now_s - skew_s > out->exp || (out->nbf && out->nbf > now_s + skew_s))
        rc = SB_E_TOKEN_EXPIRED;
    else
        rc = 0;
out:
    json_decref(hdr);
    json_decref(pl);
    return rc;
}
