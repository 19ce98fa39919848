/* Frame codec for the protobuf and JSON encodings. */
#include "sb_codec.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "sb_error.h"
#include "sb_pbjson.h"
#include "sb_utf8.h"

int sb_frame_decode(sb_encoding enc, const uint8_t *data, size_t len,
                    Sbp__Frame **out)
{
    *out = NULL;
    if (enc == SB_ENC_PROTO) {
        Sbp__Frame *f = sbp__frame__unpack(NULL, len, data);
        if (!f) return SB_E_BAD_FRAME;
        *out = f;
        return 0;
    }
    if (!sb_utf8_valid((const char *)data, len)) return SB_E_BAD_UTF8;
    json_error_t jerr;
    json_t *j = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES,
                           &jerr);
    if (!j) return SB_E_BAD_FRAME;
    sb_buf wire = SB_BUF_INIT;
    int rc = sb_pbjson_to_wire(&sbp__frame__descriptor, j, &wire);
    json_decref(j);
    if (rc == 0) {
        Sbp__Frame *f = sbp__frame__unpack(NULL, wire.len, wire.data);
        if (f)
            *out = f;
        else
            rc = SB_E_BAD_FRAME;
    }
    sb_buf_free(&wire);
    return rc;
}

int sb_frame_encode(sb_encoding enc, const Sbp__Frame *f, sb_buf *out)
{
    if (enc == SB_ENC_PROTO) {
        size_t n = sbp__frame__get_packed_size(f);
        if (n == 0) return 0; /* an empty frame; out may have no data yet */
        int rc = sb_buf_reserve(out, n);
        if (rc) return rc;
        size_t m = sbp__frame__pack(f, out->data + out->len);
        out->len += m;
        return 0;
    }
    json_t *j = sb_pbjson_from_msg(&f->base);
    if (!j) return -ENOMEM;
    size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT);
    int rc = sb_buf_reserve(out, n);
    if (rc == 0) out->len += json_dumpb(j, (char *)out->data + out->len, n,
                                        JSON_COMPACT);
    json_decref(j);
    return rc;
}

static int check_msg(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_STRING &&
            f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        size_t n = 1;
        void *const *arr = (void *const *)(base + f->offset);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            n = *(const size_t *)(base + f->quantifier_offset);
            arr = *(void *const *const *)(base + f->offset);
        } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
                continue;
        }
        for (size_t k = 0; k < n; k++) {
            const void *p = arr[k];
            if (!p) continue;
            if (f->type == PROTOBUF_C_TYPE_STRING) {
                if (!sb_utf8_valid(p, strlen(p))) return SB_E_BAD_UTF8;
            } else {
                int rc = check_msg(p);
                if (rc) return rc;
            }
        }
    }
    return 0;
}

int sb_frame_check_utf8(const Sbp__Frame *f)
{
    return check_msg(&f->base);
}

const char *sb_frame_kind_name(const Sbp__Frame *f)
{
    const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(
        &sbp__frame__descriptor, (unsigned)f->body_case);
    return fd ? fd->name : "none";
}

void sb_frame_free(Sbp__Frame *f)
{
    if (f) sbp__frame__free_unpacked(f, NULL);
}
