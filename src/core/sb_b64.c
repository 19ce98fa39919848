/* Base64 encoding and decoding. */
#include "sb_b64.h"

static const char STD[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char URL[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t sb_b64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4 + 1;
}

size_t sb_b64_encode(const uint8_t *in, size_t n, char *out, int url)
{
    const char *t = url ? URL : STD;
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v =
            (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = t[v >> 6 & 63];
        out[o++] = t[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = t[v >> 6 & 63];
        else if (!url)
            out[o++] = '=';
        if (!url) out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

static int val(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

long sb_b64_decode(const char *in, size_t len, uint8_t *out)
{
    while (len > 0 && in[len - 1] == '=')
        len--;
    if (len % 4 == 1) return -1;
    long o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = val(in[i]);
        if (v < 0) return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* Leftover bits must be zero for a canonical encoding. */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return -1;
    return o;
}
