/* HS256 JSON Web Tokens: the identity a HELLO carries.
 *
 * Claims: sub (user id, 1..64 bytes of UTF-8), role ("customer", "agent",
 * "bot", "admin", "integration"), exp (required), nbf and iat (optional),
 * locale (optional), iss and aud (optional; required and checked when the
 * verifier is configured with them). The header's alg must be "HS256";
 * "none" and every other algorithm are refused. The clock comes in as an
 * argument. */
#ifndef SB_TOKEN_H
#define SB_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "sb_limits.h"
#include "switchboard.pb-c.h"

typedef struct sb_claims {
    char sub[SB_ID_BYTES_MAX + 1];
    Sbp__Role role;
    int64_t exp; /* seconds since the epoch */
    int64_t nbf; /* 0: not set */
    int64_t iat; /* 0: not set */
    char locale[SB_LOCALE_BYTES_MAX + 1];
    char iss[SB_TOKEN_ISS_BYTES_MAX + 1]; /* "": not set */
    char aud[SB_TOKEN_ISS_BYTES_MAX + 1]; /* "": not set; sign only (a
                                             token may name several) */
} sb_claims;

/* What a verifier expects beyond the signature. */
typedef struct sb_token_check {
    int64_t now_s;   /* the clock */
    int64_t skew_s;  /* exp and nbf are allowed this much difference */
    const char *iss; /* NULL or "": any; else the token's iss must equal it */
    const char *aud; /* NULL or "": any; else the token's aud (a string or
                        an array of strings) must be or contain it */
} sb_token_check;

/* Writes a signed token for c into out (out_len bytes, NUL-terminated).
 * Returns the token's length, or -ENOSPC / -ENOMEM / -EINVAL. */
int sb_token_sign(const uint8_t *secret, size_t secret_len, const sb_claims *c,
                  char *out, size_t out_len);

/* Verifies token (len bytes) against what chk expects and fills *out
 * (out->aud is left empty). Returns 0, SB_E_BAD_TOKEN (malformed, wrong
 * alg, wrong signature, bad claims, iss or aud missing or not the expected
 * one) or SB_E_TOKEN_EXPIRED (past exp or before nbf). */
int sb_token_verify_ex(const uint8_t *secret, size_t secret_len,
                       const char *token, size_t len, const sb_token_check *chk,
                       sb_claims *out);

/* sb_token_verify_ex() at time now_s with skew_s seconds of clock
 * difference, iss and aud not checked. */
int sb_token_verify(const uint8_t *secret, size_t secret_len, const char *token,
                    size_t len, int64_t now_s, int64_t skew_s, sb_claims *out);

/* "customer" -> SBP__ROLE__ROLE_CUSTOMER...; ROLE_UNSPECIFIED if unknown. */
Sbp__Role sb_role_from_name(const char *name);
const char *sb_role_name(Sbp__Role role);

#endif
