/* The filter's normaliser: what one code point becomes before the
 * automaton sees it (NFKC, case folding and marks stripped by utf8proc,
 * then only letters and digits kept; sb_filter.h states the rule), with a
 * table over the BMP built once per process so that the usual character
 * costs one load. Also the UTF-8 decoder the filter reads text with, which
 * takes any bytes. Internal to src/filter. */
#ifndef SB_FILTER_NORM_H
#define SB_FILTER_NORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the decoder makes of an invalid byte: an unknown character. */
#define SB_FILTER_CP_BAD 0x110000u
/* Letters one code point may normalise to. */
#define SB_FILTER_NORM_CPS_MAX 32

/* Entries of the BMP table besides a letter (sb__filter_norm_bmp). */
#define SB_FILTER_NORM_IGN 0xFFFFFFFFu   /* normalises to nothing kept */
#define SB_FILTER_NORM_MULTI 0xFFFFFFFEu /* to more than one letter */

/* Builds the BMP table, once per process (pthread_once): safe from any
 * thread, cheap after the first call. Every other function here, and
 * sb_filter_normalize(), need it done. */
void sb__filter_norm_init(void);

/* The letters cp normalises to: writes at most SB_FILTER_NORM_CPS_MAX of
 * them to out and returns how many it wrote (0: cp is ignorable, or not a
 * code point, as SB_FILTER_CP_BAD is not). */
size_t sb__filter_norm_cp(uint32_t cp, uint32_t out[SB_FILTER_NORM_CPS_MAX]);

/* The BMP table's entry for cp < 0x10000: the one letter cp normalises
 * to, SB_FILTER_NORM_IGN or SB_FILTER_NORM_MULTI. */
uint32_t sb__filter_norm_bmp(uint32_t cp);

/* True if cp normalises to an ASCII letter or digit first: what a word
 * boundary ("|word|") must not have beside the match. */
bool sb__filter_norm_ascii_alnum(uint32_t cp);

/* Decodes the code point at p (n >= 1 bytes left) into *cp and returns its
 * length; anything that is not valid UTF-8 is one byte of
 * SB_FILTER_CP_BAD. Never reads past n. */
static inline size_t sb__filter_norm_decode(const uint8_t *p, size_t n,
                                            uint32_t *cp)
{
    uint8_t b = p[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    if (b >= 0xC2 && b < 0xE0) {
        if (n >= 2 && (p[1] & 0xC0) == 0x80) {
            *cp = (uint32_t)(b & 0x1F) << 6 | (p[1] & 0x3F);
            return 2;
        }
    } else if (b >= 0xE0 && b < 0xF0) {
        if (n >= 3 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80) {
            uint32_t c = (uint32_t)(b & 0x0F) << 12 |
                         (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
            if (c >= 0x800 && (c < 0xD800 || c > 0xDFFF)) {
                *cp = c;
                return 3;
            }
        }
    } else if (b >= 0xF0 && b < 0xF5) {
        if (n >= 4 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80 &&
            (p[3] & 0xC0) == 0x80) {
            uint32_t c = (uint32_t)(b & 0x07) << 18 |
                         (uint32_t)(p[1] & 0x3F) << 12 |
                         (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
            if (c >= 0x10000 && c <= 0x10FFFF) {
                *cp = c;
                return 4;
            }
        }
    }
    *cp = SB_FILTER_CP_BAD;
    return 1;
}

#endif
