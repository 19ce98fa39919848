/* Signed identities (sb_identity.h) with OpenSSL's HMAC. */
#include "sb_identity.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

/* HMAC-SHA256 of user_id under secret into mac (32 bytes). */
static bool mac_of(const char *secret, const char *user_id,
                   unsigned char mac[32])
{
    unsigned int n = 0;
    return HMAC(EVP_sha256(), secret, (int)strlen(secret),
                (const unsigned char *)user_id, strlen(user_id), mac,
                &n) != NULL &&
           n == 32;
}

void sb_identity_hash(const char *secret, const char *user_id,
                      char out[SB_IDENTITY_HASH_HEX + 1])
{
    static const char HEX[] = "0123456789abcdef";
    unsigned char mac[32];
    if (!mac_of(secret, user_id, mac)) {
        out[0] = '\0';
        return;
    }
    for (int i = 0; i < 32; i++) {
        out[2 * i] = HEX[mac[i] >> 4];
        out[2 * i + 1] = HEX[mac[i] & 15];
    }
    out[SB_IDENTITY_HASH_HEX] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool sb_identity_check(const char *secret, const char *user_id,
                       const char *hash)
{
    if (!secret || !secret[0] || !user_id || !hash ||
        strlen(hash) != SB_IDENTITY_HASH_HEX)
        return false;
    unsigned char want[32], got[32];
    for (int i = 0; i < 32; i++) {
        int h = hexval(hash[2 * i]), l = hexval(hash[2 * i + 1]);
        if (h < 0 || l < 0) return false;
        got[i] = (unsigned char)(h << 4 | l);
    }
    return mac_of(secret, user_id, want) &&
           CRYPTO_memcmp(want, got, sizeof want) == 0;
}
