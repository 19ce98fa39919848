/* libFuzzer target: TZif files (sb_tz_parse, the time zones a desk's
 * business hours and reports read from tzdata) and what a zone answers.
 *
 * The input is the file. One that parses answers every instant with an
 * offset under 26 hours either way, and takes every local time back to an
 * instant within two days of it, before its first transition, between
 * them and far past its last (its POSIX rule). */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_error.h"
#include "sb_tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sb_tz *z = NULL;
    int rc = sb_tz_parse(data, size, "fuzz", &z);
    if (rc) {
        assert((rc == SB_E_NOT_FOUND || rc == -12 /* ENOMEM */) && !z);
        return 0;
    }
    static const int64_t T[] = {
        -2147483648LL, -86401,     -1,         0,
        1743296400,    2216250000, 4102444800, 253402300799};
    for (size_t i = 0; i < sizeof T / sizeof *T; i++) {
        int32_t off = sb_tz_offset(z, T[i]);
        assert(off > -26 * 3600 && off < 26 * 3600);
        int64_t local = T[i] + off;
        int64_t back = sb_tz_from_local(z, local);
        assert(back > local - 2 * 86400 && back < local + 2 * 86400);
    }
    sb_tz_free(z);
    return 0;
}
