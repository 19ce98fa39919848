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

/* Nesting of messages the NUL scan follows; deeper ones the schema does
 * not have. */
#define WIRE_DEPTH_MAX 16

static bool wire_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; shift < 64 && *i < n; shift += 7) {
        uint8_t b = p[(*i)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return true;
    }
    return false;
}

/* Whether a string field of the message of descriptor d, packed in
 * p[0..n), holds a NUL byte, which the unpacked C string would silently
 * end at. Fields the schema does not know are skipped. */
static bool wire_has_nul(const ProtobufCMessageDescriptor *d, const uint8_t *p,
                         size_t n, int depth)
{
    size_t i = 0;
    while (i < n) {
        uint64_t key, v;
        if (!wire_varint(p, n, &i, &key)) return false;
        switch (key & 7) {
        case 0:
            if (!wire_varint(p, n, &i, &v)) return false;
            break;
        case 1:
            i += 8;
            break;
        case 5:
            i += 4;
            break;
        case 2: {
            if (!wire_varint(p, n, &i, &v) || v > n - i) return false;
            const ProtobufCFieldDescriptor *f =
                key >> 3 <= UINT32_MAX
                    ? protobuf_c_message_descriptor_get_field(
                          d, (unsigned)(key >> 3))
                    : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_STRING &&
                memchr(p + i, '\0', (size_t)v))
                return true;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                depth < WIRE_DEPTH_MAX &&
                wire_has_nul(f->descriptor, p + i, (size_t)v, depth + 1))
                return true;
            i += (size_t)v;
            break;
        }
        default:
            return false; /* groups: not in the schema */
        }
    }
    return false;
}

/* The protobuf frame packed in wire[0..n): 0 and *out, or SB_E_BAD_FRAME.
 * *nul says whether a string field holds U+0000. */
static int unpack(const uint8_t *wire, size_t n, Sbp__Frame **out, bool *nul)
{
    Sbp__Frame *f = sbp__frame__unpack(NULL, n, wire);
    if (!f) return SB_E_BAD_FRAME;
    *nul = wire_has_nul(&sbp__frame__descriptor, wire, n, 0);
    *out = f;
    return 0;
}

/* sb_frame_decode()'s work, telling in *nul whether a string field of the
 * frame decoded holds U+0000. */
static int decode(sb_encoding enc, const uint8_t *data, size_t len,
                  Sbp__Frame **out, bool *nul)
{
    *out = NULL;
    *nul = false;
    if (enc == SB_ENC_PROTO) return unpack(data, len, out, nul);
    /* Bytes that are not UTF-8 are no JSON text (a binary message on a
     * JSON session). */
    if (!sb_utf8_valid((const char *)data, len)) return SB_E_BAD_FRAME;
    json_error_t jerr;
    /* "\u0000" is taken here so that it is refused as in protobuf. */
    json_t *j = json_loadb((const char *)data, len,
                           JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!j) return SB_E_BAD_FRAME;
    sb_buf wire = SB_BUF_INIT;
    int rc = sb_pbjson_to_wire(&sbp__frame__descriptor, j, &wire);
    json_decref(j);
    if (rc == 0) rc = unpack(wire.data, wire.len, out, nul);
    sb_buf_free(&wire);
    return rc;
}

int sb_frame_decode(sb_encoding enc, const uint8_t *data, size_t len,
                    Sbp__Frame **out)
{
    bool nul;
    int rc = decode(enc, data, len, out, &nul);
    if (rc == 0 && nul) {
        sb_frame_free(*out);
        *out = NULL;
        rc = SB_E_BAD_UTF8;
    }
    return rc;
}

int sb_frame_decode_checked(sb_encoding enc, const uint8_t *data, size_t len,
                            Sbp__Frame **out)
{
    bool nul;
    int rc = decode(enc, data, len, out, &nul);
    if (rc) return rc;
    return nul ? SB_E_BAD_UTF8 : sb_frame_check_utf8(*out);
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

size_t sb_item_bytes(sb_encoding enc, const ProtobufCMessage *m)
{
    if (enc == SB_ENC_PROTO) {
        size_t n = protobuf_c_message_get_packed_size(m);
        size_t h = 1; /* the tag */
        for (size_t v = n; v >= 0x80; v >>= 7)
            h++;
        return h + 1 + n;
    }
    json_t *j = sb_pbjson_from_msg(m);
    if (!j) return SIZE_MAX;
    size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT);
    json_decref(j);
    return n + 1;
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
