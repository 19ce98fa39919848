/* Upload ids and signed links: a token "<exp>.<role>.<user>.<mac>", the
 * user in unpadded base64url, the MAC an HMAC-SHA256 over the upload id
 * and the other three under a key of its own, derived from the server's
 * secret so that no JWT and no link can pass for the other. */
#include "sb_medialink.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_b64.h"
#include "sb_error.h"

#define MAC_BYTES 32
static const char KEY_LABEL[] = "switchboard media link v1";

bool sb_media_id_valid(const char *id)
{
    if (!id) return false;
    for (size_t i = 0; i < SB_MEDIA_ID_LEN; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    return id[SB_MEDIA_ID_LEN] == '\0';
}

void sb_media_id_make(const uint8_t rnd[16], char out[SB_MEDIA_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < 16; i++) {
        out[2 * i] = hex[rnd[i] >> 4];
        out[2 * i + 1] = hex[rnd[i] & 15];
    }
    out[SB_MEDIA_ID_LEN] = '\0';
}

/* The MAC of a token's fields for upload id. */
static int link_mac(const uint8_t *secret, size_t secret_len, const char *id,
                    int64_t exp_s, int role, const char *user,
                    uint8_t mac[MAC_BYTES])
{
    uint8_t key[MAC_BYTES];
    unsigned int n = MAC_BYTES;
    if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const uint8_t *)KEY_LABEL,
              sizeof KEY_LABEL - 1, key, &n))
        return -EINVAL;
    char msg[SB_MEDIA_ID_LEN + SB_ID_BYTES_MAX + 48];
    int len = snprintf(msg, sizeof msg, "%s\n%" PRId64 "\n%d\n%s", id, exp_s,
                       role, user);
    n = MAC_BYTES;
    bool ok = len > 0 && (size_t)len < sizeof msg &&
              HMAC(EVP_sha256(), key, MAC_BYTES, (const uint8_t *)msg,
                   (size_t)len, mac, &n);
    OPENSSL_cleanse(key, sizeof key);
    return ok ? 0 : -EINVAL;
}

static bool user_valid(const char *user)
{
    size_t n = user ? strnlen(user, SB_ID_BYTES_MAX + 1) : 0;
    return n >= 1 && n <= SB_ID_BYTES_MAX;
}

int sb_media_link_sign(const uint8_t *secret, size_t secret_len, const char *id,
                       const char *user, Sbp__Role role, int64_t exp_s,
                       char *out, size_t cap)
{
    if (!sb_media_id_valid(id) || !user_valid(user) || exp_s < 0 ||
        role < SBP__ROLE__ROLE_CUSTOMER || role > SBP__ROLE__ROLE_ADMIN)
        return -EINVAL;
    uint8_t mac[MAC_BYTES];
    if (link_mac(secret, secret_len, id, exp_s, (int)role, user, mac))
        return -EINVAL;
    char u64[((SB_ID_BYTES_MAX + 2) / 3) * 4 + 1], m64[48];
    sb_b64_encode((const uint8_t *)user, strlen(user), u64, 1);
    sb_b64_encode(mac, MAC_BYTES, m64, 1);
    int len = snprintf(out, cap, "/media/%s?t=%" PRId64 ".%d.%s.%s", id, exp_s,
                       (int)role, u64, m64);
    return len < 0 || (size_t)len >= cap ? -ENOSPC : len;
}

/* The next dot-separated field of t[*at..n): its start and length. */
static bool field(const char *t, size_t n, size_t *at, const char **f,
                  size_t *len)
{
    if (*at > n) return false;
    const char *dot = memchr(t + *at, '.', n - *at);
    *f = t + *at;
    *len = dot ? (size_t)(dot - *f) : n - *at;
    *at += *len + 1;
    return *len > 0;
}

static bool digits(const char *p, size_t n, int64_t *v)
{
    if (n == 0 || n > 18) return false;
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        x = x * 10 + (p[i] - '0');
    }
    *v = x;
    return true;
}

int sb_media_link_verify(const uint8_t *secret, size_t secret_len,
                         const char *id, const char *token, size_t len,
                         int64_t now_s, char user[SB_ID_BYTES_MAX + 1],
                         Sbp__Role *role)
{
    user[0] = '\0';
    *role = SBP__ROLE__ROLE_UNSPECIFIED;
    if (!sb_media_id_valid(id) || len >= SB_MEDIA_TOKEN_BYTES_MAX)
        return SB_E_BAD_TOKEN;
    const char *f[4];
    size_t fl[4], at = 0;
    for (int i = 0; i < 4; i++)
        if (!field(token, len, &at, &f[i], &fl[i])) return SB_E_BAD_TOKEN;
    if (at != len + 1) return SB_E_BAD_TOKEN; /* a fifth field */
    int64_t exp_s, r;
    uint8_t u[SB_ID_BYTES_MAX * 2], mac[MAC_BYTES * 2], want[MAC_BYTES];
    if (!digits(f[0], fl[0], &exp_s) || !digits(f[1], fl[1], &r) ||
        r < SBP__ROLE__ROLE_CUSTOMER || r > SBP__ROLE__ROLE_ADMIN ||
        fl[2] > ((SB_ID_BYTES_MAX + 2) / 3) * 4 || fl[3] > 44)
        return SB_E_BAD_TOKEN;
    long un = sb_b64_decode(f[2], fl[2], u);
    long mn = sb_b64_decode(f[3], fl[3], mac);
    if (un < 1 || un > SB_ID_BYTES_MAX || mn != MAC_BYTES ||
        memchr(u, '\0', (size_t)un))
        return SB_E_BAD_TOKEN;
    memcpy(user, u, (size_t)un);
    user[un] = '\0';
    if (link_mac(secret, secret_len, id, exp_s, (int)r, user, want) ||
        CRYPTO_memcmp(want, mac, MAC_BYTES) != 0) {
        user[0] = '\0';
        return SB_E_BAD_TOKEN;
    }
    if (now_s >= exp_s) {
        user[0] = '\0';
        return SB_E_TOKEN_EXPIRED;
    }
    *role = (Sbp__Role)r;
    return 0;
}
