/* HS256 JSON Web Tokens: the identity a HELLO carries.
 *
 * Claims: sub (user id, 1..64 bytes of UTF-8), role ("customer", "agent",
 * "bot", "admin"), exp (required), nbf and iat (optional), locale
 * (optional). The header's alg must be "HS256"; "none" and every other
 * algorithm are refused. The clock comes in as an argument. */
#ifndef SB_TOKEN_H
#define SB_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "switchboard.pb-c.h"

#define SB_TOKEN_BYTES_MAX 4096
#define SB_USER_ID_BYTES_MAX 64

typedef struct sb_claims {
    char sub[SB_USER_ID_BYTES_MAX + 1];
    Sbp__Role role;
    int64_t exp; /* seconds since the epoch */
    int64_t nbf; /* 0: not set */
    int64_t iat; /* 0: not set */
    char locale[16];
} sb_claims;

/* Writes a signed token for c into out (out_len bytes, NUL-terminated).
 * Returns the token's length, or -ENOSPC / -ENOMEM / -EINVAL. */
int sb_token_sign(const uint8_t *secret, size_t secret_len, const sb_claims *c,
                  char *out, size_t out_len);

/* Verifies token (len bytes) at time now_s, allowing skew_s seconds of clock
 * difference, and fills *out. Returns 0, SB_E_BAD_TOKEN (malformed, wrong
 * alg, wrong signature, bad claims) or SB_E_TOKEN_EXPIRED (past exp or
 * before nbf). */
int sb_token_verify(const uint8_t *secret, size_t secret_len, const char *token,
                    size_t len, int64_t now_s, int64_t skew_s, sb_claims *out);

/* "customer" -> SBP__ROLE__ROLE_CUSTOMER...; ROLE_UNSPECIFIED if unknown. */
Sbp__Role sb_role_from_name(const char *name);
const char *sb_role_name(Sbp__Role role);

#endif
