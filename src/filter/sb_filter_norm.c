/* The filter's normaliser: one code point at a time through utf8proc, with
 * the answers for the whole BMP computed once per process into a table
 * that every filter shares. */
#include "sb_filter_norm.h"

#include <pthread.h>
#include <string.h>

#include <utf8proc.h>

#include "sb_filter.h"

#define NORM_OPTS                                                              \
    (UTF8PROC_COMPOSE | UTF8PROC_STABLE | UTF8PROC_COMPAT |                    \
     UTF8PROC_CASEFOLD | UTF8PROC_IGNORE | UTF8PROC_STRIPMARK)

/* BMP code point -> the one letter it normalises to, or
 * SB_FILTER_NORM_*; written once, under norm_once, then only read. */
static uint32_t norm_bmp[0x10000];
static pthread_once_t norm_once = PTHREAD_ONCE_INIT;

/* Whether a code point of normalised text is kept: letters and digits. */
static bool kept(utf8proc_int32_t cp)
{
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return true;
    default:
        return false;
    }
}

/* NFKC + case fold + strip marks of one code point through utf8proc, then
 * only the letters and digits of the result. Writes at most cap of them;
 * returns how many there are. */
static size_t norm_cp_slow(uint32_t cp, uint32_t *out, size_t cap)
{
    utf8proc_int32_t buf[SB_FILTER_NORM_CPS_MAX * 2];
    if (cp >= 0x110000) return 0;
    utf8proc_ssize_t n = utf8proc_decompose_char(
        (utf8proc_int32_t)cp, buf, SB_FILTER_NORM_CPS_MAX * 2, NORM_OPTS, NULL);
    if (n <= 0 || n > SB_FILTER_NORM_CPS_MAX * 2) return 0;
    n = utf8proc_normalize_utf32(buf, n, NORM_OPTS);
    size_t k = 0;
    for (utf8proc_ssize_t i = 0; i < n; i++) {
        if (!kept(buf[i])) continue;
        if (k < cap) out[k] = (uint32_t)buf[i];
        k++;
    }
    return k;
}

static void norm_init(void)
{
    uint32_t tmp[2];
    for (uint32_t cp = 0; cp < 0x10000; cp++) {
        size_t k = norm_cp_slow(cp, tmp, 2);
        norm_bmp[cp] = k == 0   ? SB_FILTER_NORM_IGN
                       : k == 1 ? tmp[0]
                                : SB_FILTER_NORM_MULTI;
    }
}

void sb__filter_norm_init(void)
{
    pthread_once(&norm_once, norm_init);
}

size_t sb__filter_norm_cp(uint32_t cp, uint32_t out[SB_FILTER_NORM_CPS_MAX])
{
    if (cp < 0x10000) {
        uint32_t e = norm_bmp[cp];
        if (e == SB_FILTER_NORM_IGN) return 0;
        if (e != SB_FILTER_NORM_MULTI) {
            out[0] = e;
            return 1;
        }
    }
    size_t k = norm_cp_slow(cp, out, SB_FILTER_NORM_CPS_MAX);
    return k < SB_FILTER_NORM_CPS_MAX ? k : SB_FILTER_NORM_CPS_MAX;
}

uint32_t sb__filter_norm_bmp(uint32_t cp)
{
    return norm_bmp[cp];
}

bool sb__filter_norm_ascii_alnum(uint32_t cp)
{
    uint32_t n[SB_FILTER_NORM_CPS_MAX];
    if (sb__filter_norm_cp(cp, n) == 0) return false;
    return (n[0] >= 'a' && n[0] <= 'z') || (n[0] >= '0' && n[0] <= '9');
}

size_t sb_filter_normalize(const char *text, size_t len, char *out, size_t n)
{
    sb__filter_norm_init();
    const uint8_t *p = (const uint8_t *)text;
    size_t total = 0, written = 0; /* written: the prefix that fits whole */
    for (size_t i = 0; i < len;) {
        uint32_t cp, cps[SB_FILTER_NORM_CPS_MAX];
        i += sb__filter_norm_decode(p + i, len - i, &cp);
        size_t k = cp == SB_FILTER_CP_BAD ? 0 : sb__filter_norm_cp(cp, cps);
        for (size_t j = 0; j < k; j++) {
            uint8_t enc[4];
            size_t e =
                (size_t)utf8proc_encode_char((utf8proc_int32_t)cps[j], enc);
            if (written == total && total + e < n) {
                memcpy(out + total, enc, e);
                written += e;
            }
            total += e;
        }
    }
    if (n > 0) out[written] = '\0';
    return total;
}
