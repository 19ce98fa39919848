/* Strict UTF-8 validation (RFC 3629): no overlongs, no surrogates, nothing
 * above U+10FFFF. */
#ifndef SB_UTF8_H
#define SB_UTF8_H

#include <stdbool.h>
#include <stddef.h>

bool sb_utf8_valid(const char *s, size_t len);

#endif
