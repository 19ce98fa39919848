/* Frame codec for the protobuf and JSON encodings. */
#include "sb_codec.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
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
    json_t *j =
        json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
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
    if (rc == 0)
        out->len +=
            json_dumpb(j, (char *)out->data + out->len, n, JSON_COMPACT);
    json_decref(j);
    return rc;
}

/* ---- PUSH frames from pre-encoded messages ------------------------------ */

/* Frame.push is field 15 and Push.messages field 1, both length-delimited
 * (wire type 2). A Frame with rid 0 and a push packs as the tag of field
 * 15, the Push's length and its body: the records of its messages, each
 * the tag of field 1, the message's length and the message. */
#define PB_TAG_FRAME_PUSH ((15u << 3) | 2u)
#define PB_TAG_PUSH_MESSAGES ((1u << 3) | 2u)
#define PB_VARINT_MAX 10
/* What a JSON frame puts around its items: Frame's JSON mapping with the
 * default rid left out, as sb_pbjson_from_msg() makes it. */
#define JSON_PUSH_HEAD "{\"push\":{\"messages\":["
#define JSON_PUSH_TAIL "]}}"

static size_t varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

int sb_push_item_encode(sb_encoding enc, const Sbp__Message *m, sb_buf *out)
{
    if (enc == SB_ENC_PROTO) {
        size_t n = sbp__message__get_packed_size(m);
        int rc = sb_buf_reserve(out, 1 + PB_VARINT_MAX + n);
        if (rc) return rc;
        uint8_t *p = out->data + out->len;
        p[0] = PB_TAG_PUSH_MESSAGES;
        size_t h = 1 + varint_put(p + 1, n);
        size_t w = sbp__message__pack(m, p + h);
        assert(w == n);
        out->len += h + w;
        return 0;
    }
    json_t *j = sb_pbjson_from_msg(&m->base);
    if (!j) return -ENOMEM;
    size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT);
    int rc = sb_buf_reserve(out, n);
    if (rc == 0)
        out->len +=
            json_dumpb(j, (char *)out->data + out->len, n, JSON_COMPACT);
    json_decref(j);
    return rc;
}

int sb_push_begin(sb_push_builder *b, sb_encoding enc, sb_buf *out)
{
    b->enc = enc;
    b->out = out;
    b->start = out->len;
    b->n = 0;
    if (enc == SB_ENC_PROTO) {
        /* Room for the header, written right-aligned at the end. */
        int rc = sb_buf_reserve(out, 1 + PB_VARINT_MAX);
        if (rc) return rc;
        out->len += 1 + PB_VARINT_MAX;
        return 0;
    }
    return sb_buf_append(out, JSON_PUSH_HEAD, strlen(JSON_PUSH_HEAD));
}

int sb_push_add(sb_push_builder *b, const uint8_t *item, size_t n)
{
    assert(n > 0);
    sb_buf *out = b->out;
    bool json = b->enc == SB_ENC_JSON;
    bool comma = json && b->n > 0;
    /* JSON: room for the tail too, so that sb_push_end() cannot fail. */
    int rc =
        sb_buf_reserve(out, n + comma + (json ? strlen(JSON_PUSH_TAIL) : 0));
    if (rc) return rc;
    if (comma) out->data[out->len++] = ',';
    memcpy(out->data + out->len, item, n);
    out->len += n;
    b->n++;
    return 0;
}

size_t sb_push_len(const sb_push_builder *b)
{
    size_t len = b->out->len - b->start;
    return b->enc == SB_ENC_PROTO ? len : len + strlen(JSON_PUSH_TAIL);
}

void sb_push_end(sb_push_builder *b, const uint8_t **p, size_t *n)
{
    assert(b->n > 0);
    sb_buf *out = b->out;
    if (b->enc == SB_ENC_PROTO) {
        size_t body = out->len - b->start - (1 + PB_VARINT_MAX);
        uint8_t hdr[1 + PB_VARINT_MAX];
        hdr[0] = PB_TAG_FRAME_PUSH;
        size_t h = 1 + varint_put(hdr + 1, body);
        uint8_t *at = out->data + b->start + (1 + PB_VARINT_MAX) - h;
        memcpy(at, hdr, h);
        *p = at;
        *n = h + body;
        return;
    }
    /* sb_push_add() reserved the room. */
    size_t t = strlen(JSON_PUSH_TAIL);
    assert(out->cap - out->len >= t);
    memcpy(out->data + out->len, JSON_PUSH_TAIL, t);
    out->len += t;
    *p = out->data + b->start;
    *n = out->len - b->start;
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
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field(&sbp__frame__descriptor,
                                                (unsigned)f->body_case);
    return fd ? fd->name : "none";
}

void sb_frame_free(Sbp__Frame *f)
{
    if (f) sbp__frame__free_unpacked(f, NULL);
}
