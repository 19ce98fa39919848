/* libFuzzer target: protobuf frames (sb_frame_decode with SB_ENC_PROTO),
 * the UTF-8 check the gateway runs on every decoded frame, and
 * re-encoding in both encodings.
 *
 * Checks, for a frame that decodes: without its unknown fields, the
 * protobuf re-encoding decodes again and re-encodes to the same bytes (a
 * fixed point); when its strings are
 * valid UTF-8, its JSON encoding decodes as JSON and comes back to the
 * same JSON, and to a frame of the same protobuf encoding. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sb_codec.h"
#include "sb_error.h"

static void same_bytes(const sb_buf *a, const sb_buf *b)
{
    assert(a->len == b->len);
    assert(a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* Drops the unknown fields of m and of every message inside it. The
 * gateway never re-encodes a client's frame, and protobuf-c keeps (and
 * re-encodes) unknown fields it would not decode again: a field number 0
 * written as a two-byte varint passes, the one-byte form is refused. */
static void strip_unknown(ProtobufCMessage *m)
{
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        free(m->unknown_fields[i].data);
    free(m->unknown_fields);
    m->unknown_fields = NULL;
    m->n_unknown_fields = 0;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    char *base = (char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        size_t n = 1;
        ProtobufCMessage **arr = (ProtobufCMessage **)(base + f->offset);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            n = *(size_t *)(base + f->quantifier_offset);
            arr = *(ProtobufCMessage ***)(base + f->offset);
        } else if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                   *(uint32_t *)(base + f->quantifier_offset) != f->id) {
            continue;
        }
        for (size_t k = 0; k < n; k++)
            if (arr[k]) strip_unknown(arr[k]);
    }
}

/* enc(f) -> decode -> enc again: the two encodings must be equal. Returns
 * the second frame (caller frees). */
static Sbp__Frame *round_trip(sb_encoding enc, const Sbp__Frame *f,
                              sb_buf *first)
{
    assert(sb_frame_encode(enc, f, first) == 0);
    Sbp__Frame *g = NULL;
    int rc = sb_frame_decode(enc, first->data, first->len, &g);
    assert(rc == 0 && g);
    sb_buf second = SB_BUF_INIT;
    assert(sb_frame_encode(enc, g, &second) == 0);
    same_bytes(first, &second);
    sb_buf_free(&second);
    return g;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Sbp__Frame *f = NULL;
    int rc = sb_frame_decode(SB_ENC_PROTO, data, size, &f);
    if (rc != 0) {
        /* Not protobuf, or a string field holding U+0000. */
        assert((rc == SB_E_BAD_FRAME || rc == SB_E_BAD_UTF8) && f == NULL);
        return 0;
    }
    assert(sb_frame_kind_name(f) != NULL);
    int utf8 = sb_frame_check_utf8(f);
    assert(utf8 == 0 || utf8 == SB_E_BAD_UTF8);

    strip_unknown(&f->base);
    sb_buf p1 = SB_BUF_INIT;
    Sbp__Frame *g = round_trip(SB_ENC_PROTO, f, &p1);
    assert(g->body_case == f->body_case && g->rid == f->rid);
    sb_frame_free(g);
    sb_buf_free(&p1);

    if (utf8 == 0) {
        sb_buf j1 = SB_BUF_INIT, pa = SB_BUF_INIT, pb = SB_BUF_INIT;
        Sbp__Frame *h = round_trip(SB_ENC_JSON, f, &j1);
        assert(h->body_case == f->body_case && h->rid == f->rid);
        assert(sb_frame_check_utf8(h) == 0);
        /* JSON drops unknown fields and cuts strings at a NUL: compare
         * what survives one more trip through JSON. */
        Sbp__Frame *k = round_trip(SB_ENC_JSON, h, &pb);
        sb_buf_free(&pb);
        assert(sb_frame_encode(SB_ENC_PROTO, h, &pa) == 0);
        assert(sb_frame_encode(SB_ENC_PROTO, k, &pb) == 0);
        same_bytes(&pa, &pb);
        sb_frame_free(k);
        sb_frame_free(h);
        sb_buf_free(&j1);
        sb_buf_free(&pa);
        sb_buf_free(&pb);
    }
    sb_frame_free(f);
    return 0;
}
