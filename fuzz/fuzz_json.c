/* libFuzzer target: JSON frames (sb_frame_decode with SB_ENC_JSON: jansson
 * and the descriptor-driven transcoder sb_pbjson) and re-encoding.
 *
 * Checks, for a text that decodes: its strings are valid UTF-8 (the JSON
 * decoder promises it); its JSON encoding decodes and re-encodes to the
 * same JSON; its protobuf encoding decodes to a frame with the same JSON
 * encoding. Decoding errors are only the documented ones. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sb_codec.h"
#include "sb_error.h"

static void same_bytes(const sb_buf *a, const sb_buf *b)
{
    assert(a->len == b->len);
    assert(a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Sbp__Frame *f = NULL;
    int rc = sb_frame_decode(SB_ENC_JSON, data, size, &f);
    if (rc != 0) {
        assert(f == NULL);
        assert(rc == SB_E_BAD_FRAME || rc == SB_E_BAD_UTF8 || rc == -ENOMEM);
        return 0;
    }
    assert(sb_frame_check_utf8(f) == 0);
    assert(sb_frame_kind_name(f) != NULL);

    sb_buf j1 = SB_BUF_INIT, j2 = SB_BUF_INIT, j3 = SB_BUF_INIT;
    sb_buf p1 = SB_BUF_INIT;
    assert(sb_frame_encode(SB_ENC_JSON, f, &j1) == 0);
    Sbp__Frame *g = NULL;
    assert(sb_frame_decode(SB_ENC_JSON, j1.data, j1.len, &g) == 0);
    assert(sb_frame_encode(SB_ENC_JSON, g, &j2) == 0);
    same_bytes(&j1, &j2);

    assert(sb_frame_encode(SB_ENC_PROTO, g, &p1) == 0);
    Sbp__Frame *h = NULL;
    assert(sb_frame_decode(SB_ENC_PROTO, p1.data, p1.len, &h) == 0);
    assert(sb_frame_encode(SB_ENC_JSON, h, &j3) == 0);
    same_bytes(&j1, &j3);

    sb_frame_free(h);
    sb_frame_free(g);
    sb_frame_free(f);
    sb_buf_free(&j1);
    sb_buf_free(&j2);
    sb_buf_free(&j3);
    sb_buf_free(&p1);
    return 0;
}
