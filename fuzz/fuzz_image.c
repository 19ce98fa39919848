/* libFuzzer target: image sizes and location stripping (sb_image_clean)
 * and signed links (sb_media_link_verify).
 *
 * Any input is cleaned: either refused (SB_E_INVALID) with nothing
 * written, or read with both sides within 1..SB_MEDIA_SIDE_MAX; a copy it
 * writes must itself clean without change to the same format and size
 * (what is stripped stays stripped). The same bytes are also tried as a
 * link's token, which verifies only if it was signed. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sb_error.h"
#include "sb_image.h"
#include "sb_medialink.h"

static const uint8_t KEY[] = "fuzz-secret";
static const char ID[] = "0123456789abcdef0123456789abcdef";

int LLVMFuzzerTestOneInput(const uint8_t *p, size_t n)
{
    sb_buf out = SB_BUF_INIT;
    sb_image_info info;
    int rc = sb_image_clean(p, n, &out, &info);
    assert(rc == 0 || rc == SB_E_INVALID);
    if (rc) {
        assert(out.len == 0);
    } else {
        assert(info.width >= 1 && info.width <= SB_MEDIA_SIDE_MAX);
        assert(info.height >= 1 && info.height <= SB_MEDIA_SIDE_MAX);
        assert(info.changed == (out.len > 0));
        if (info.changed) {
            sb_buf again = SB_BUF_INIT;
            sb_image_info i2;
            int rc2 = sb_image_clean(out.data, out.len, &again, &i2);
            assert(rc2 == 0 && !i2.changed && again.len == 0);
            assert(i2.format == info.format && i2.width == info.width &&
                   i2.height == info.height);
            sb_buf_free(&again);
        }
    }
    sb_buf_free(&out);
    char user[SB_ID_BYTES_MAX + 1];
    Sbp__Role role;
    rc = sb_media_link_verify(KEY, sizeof KEY - 1, ID, (const char *)p, n,
                              1800000000LL, user, &role);
    assert(rc == SB_E_BAD_TOKEN || rc == SB_E_TOKEN_EXPIRED);
    return 0;
}
