/* Descriptor-driven JSON <-> protobuf transcoding for the JSON subprotocol. */
#include "sb_pbjson.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sb_b64.h"
#include "sb_error.h"

#define PBJSON_DEPTH_MAX 16

/* ---- message -> JSON ---------------------------------------------------- */

/* A floating-point value: a number, or the protobuf JSON mapping's strings
 * for the values JSON has no number for. */
static json_t *real_to_json(double v)
{
    if (isnan(v)) return json_string("NaN");
    if (isinf(v)) return json_string(v > 0 ? "Infinity" : "-Infinity");
    return json_real(v);
}

static json_t *value_to_json(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return json_integer(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t v = *(const uint64_t *)p;
        if (v <= (uint64_t)INT64_MAX) return json_integer((json_int_t)v);
        char s[24];
        snprintf(s, sizeof s, "%" PRIu64, v);
        return json_string(s);
    }
    case PROTOBUF_C_TYPE_FLOAT:
        return real_to_json(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return real_to_json(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
            (const ProtobufCEnumDescriptor *)f->descriptor, v);
        return ev ? json_string(ev->name) : json_integer(v);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return json_stringn_nocheck(s ? s : "", s ? strlen(s) : 0);
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        char *s = malloc(sb_b64_encoded_len(b->len));
        if (!s) return NULL;
        size_t n = sb_b64_encode(b->data, b->len, s, 0);
        json_t *j = json_stringn_nocheck(s, n);
        free(s);
        return j;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        return m ? sb_pbjson_from_msg(m) : json_object();
    }
    }
    return NULL;
}

static int is_default(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        return *(const uint32_t *)p == 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return *(const uint64_t *)p == 0;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)p == 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)p == 0;
    case PROTOBUF_C_TYPE_BOOL:
        return !*(const protobuf_c_boolean *)p;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return !s || !*s;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(void *const *)p == NULL;
    }
    return 1;
}

static size_t type_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    default:
        return 4;
    }
}

json_t *sb_pbjson_from_msg(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    json_t *obj = json_object();
    if (!obj) return NULL;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)m;
        const void *p = base + f->offset;
        json_t *v = NULL;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            if (n == 0) continue;
            const char *arr = *(char *const *)p;
            v = json_array();
            if (!v) goto oom;
            for (size_t k = 0; k < n; k++) {
                json_t *e = value_to_json(f, arr + k * type_size(f->type));
                if (!e || json_array_append_new(v, e)) {
                    json_decref(v);
                    goto oom;
                }
            }
        } else {
            if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                uint32_t c = *(const uint32_t *)(base + f->quantifier_offset);
                if (c != f->id) continue;
            } else if (is_default(f, p)) {
                continue;
            }
            v = value_to_json(f, p);
            if (!v) goto oom;
        }
        if (json_object_set_new_nocheck(obj, f->name, v)) goto oom;
    }
    return obj;
oom:
    json_decref(obj);
    return NULL;
}

/* ---- JSON -> protobuf wire ---------------------------------------------- */

static int put_varint(sb_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        uint8_t c = v & 0x7F;
        v >>= 7;
        tmp[n++] = c | (v ? 0x80 : 0);
    } while (v);
    return sb_buf_append(b, tmp, n);
}

static int put_tag(sb_buf *b, uint32_t id, int wt)
{
    return put_varint(b, (uint64_t)id << 3 | (uint64_t)wt);
}

static int put_le(sb_buf *b, uint64_t v, size_t n)
{
    uint8_t tmp[8];
    for (size_t i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    return sb_buf_append(b, tmp, n);
}

/* Reads a JSON number, or "NaN", "Infinity" or "-Infinity", as a double. */
static int get_real(const json_t *j, double *out)
{
    if (json_is_number(j)) {
        *out = json_number_value(j);
        return 0;
    }
    const char *s = json_string_value(j);
    if (s && strcmp(s, "NaN") == 0)
        *out = NAN;
    else if (s && strcmp(s, "Infinity") == 0)
        *out = INFINITY;
    else if (s && strcmp(s, "-Infinity") == 0)
        *out = -INFINITY;
    else
        return SB_E_BAD_FRAME;
    return 0;
}

/* Reads a JSON integer, or a string of decimal digits, as a signed value in
 * [lo, hi] or unsigned in [0, uhi] (is_unsigned). */
static int get_int(const json_t *j, int is_unsigned, int64_t lo, int64_t hi,
                   uint64_t uhi, uint64_t *out)
{
    if (json_is_integer(j)) {
        json_int_t v = json_integer_value(j);
        if (is_unsigned) {
            if (v < 0 || (uint64_t)v > uhi) return SB_E_BAD_FRAME;
        } else if (v < lo || v > hi) {
            return SB_E_BAD_FRAME;
        }
        *out = (uint64_t)v;
        return 0;
    }
    if (!json_is_string(j)) return SB_E_BAD_FRAME;
    const char *s = json_string_value(j);
    if (!*s || strlen(s) > 20) return SB_E_BAD_FRAME;
    char *end;
    errno = 0;
    if (is_unsigned) {
        if (*s == '-' || *s == '+') return SB_E_BAD_FRAME;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end || v > uhi) return SB_E_BAD_FRAME;
        *out = v;
    } else {
        long long v = strtoll(s, &end, 10);
        if (errno || *end || v < lo || v > hi) return SB_E_BAD_FRAME;
        *out = (uint64_t)v;
    }
    return 0;
}

static int value_to_wire(const ProtobufCFieldDescriptor *f, const json_t *j,
                         sb_buf *out, int depth);

static int msg_to_wire(const ProtobufCMessageDescriptor *d, const json_t *obj,
                       sb_buf *out, int depth)
{
    if (!json_is_object(obj)) return SB_E_BAD_FRAME;
    if (depth > PBJSON_DEPTH_MAX) return SB_E_BAD_FRAME;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val)
    {
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(d, key);
        if (!f || json_is_null(val)) continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (!json_is_array(val)) return SB_E_BAD_FRAME;
            size_t i;
            json_t *e;
            json_array_foreach(val, i, e)
            {
                int rc = value_to_wire(f, e, out, depth);
                if (rc) return rc;
            }
        } else {
            int rc = value_to_wire(f, val, out, depth);
            if (rc) return rc;
        }
    }
    return 0;
}

static int value_to_wire(const ProtobufCFieldDescriptor *f, const json_t *j,
                         sb_buf *out, int depth)
{
    uint64_t u = 0;
    int rc = 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
        if ((rc = get_int(j, 0, INT32_MIN, INT32_MAX, 0, &u))) return rc;
        if ((rc = put_tag(out, f->id, 0))) return rc;
        return put_varint(out, (uint64_t)(int64_t)(int32_t)u);
    case PROTOBUF_C_TYPE_SINT32: {
        if ((rc = get_int(j, 0, INT32_MIN, INT32_MAX, 0, &u))) return rc;
        int32_t v = (int32_t)u;
        if ((rc = put_tag(out, f->id, 0))) return rc;
        return put_varint(out, ((uint32_t)v << 1) ^ (uint32_t)(v >> 31));
    }
    case PROTOBUF_C_TYPE_UINT32:
        if ((rc = get_int(j, 1, 0, 0, UINT32_MAX, &u))) return rc;
        if ((rc = put_tag(out, f->id, 0))) return rc;
        return put_varint(out, u);
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (f->type == PROTOBUF_C_TYPE_FIXED32)
            rc = get_int(j, 1, 0, 0, UINT32_MAX, &u);
        else
            rc = get_int(j, 0, INT32_MIN, INT32_MAX, 0, &u);
        if (rc || (rc = put_tag(out, f->id, 5))) return rc;
        return put_le(out, u, 4);
    case PROTOBUF_C_TYPE_INT64:
        if ((rc = get_int(j, 0, INT64_MIN, INT64_MAX, 0, &u))) return rc;
        if ((rc = put_tag(out, f->id, 0))) return rc;
        return put_varint(out, u);
    case PROTOBUF_C_TYPE_SINT64: {
        if ((rc = get_int(j, 0, INT64_MIN, INT64_MAX, 0, &u))) return rc;
        int64_t v = (int64_t)u;
        if ((rc = put_tag(out, f->id, 0))) return rc;
        return put_varint(out, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
    }
    case PROTOBUF_C_TYPE_UINT64:
        if ((rc = get_int(j, 1, 0, 0, UINT64_MAX, &u))) return rc;
        if ((rc = put_tag(out, f->id, 0))) return rc;
        return put_varint(out, u);
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (f->type == PROTOBUF_C_TYPE_FIXED64)
            rc = get_int(j, 1, 0, 0, UINT64_MAX, &u);
        else
            rc = get_int(j, 0, INT64_MIN, INT64_MAX, 0, &u);
        if (rc || (rc = put_tag(out, f->id, 1))) return rc;
        return put_le(out, u, 8);
    case PROTOBUF_C_TYPE_FLOAT: {
        double d;
        if ((rc = get_real(j, &d))) return rc;
        float v = (float)d;
        uint32_t bits;
        memcpy(&bits, &v, 4);
        if ((rc = put_tag(out, f->id, 5))) return rc;
        return put_le(out, bits, 4);
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v;
        if ((rc = get_real(j, &v))) return rc;
        uint64_t bits;
        memcpy(&bits, &v, 8);
        if ((rc = put_tag(out, f->id, 1))) return rc;
        return put_le(out, bits, 8);
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(j)) return SB_E_BAD_FRAME;
        if ((rc = put_tag(out, f->id, 0))) return rc;
        return put_varint(out, json_is_true(j) ? 1 : 0);
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        int64_t v;
        if (json_is_string(j)) {
            const ProtobufCEnumValue *ev =
                protobuf_c_enum_descriptor_get_value_by_name(
                    ed, json_string_value(j));
            if (!ev) return SB_E_BAD_FRAME;
            v = ev->value;
        } else if (json_is_integer(j)) {
            v = json_integer_value(j);
            if (v < INT32_MIN || v > INT32_MAX) return SB_E_BAD_FRAME;
        } else {
            return SB_E_BAD_FRAME;
        }
        if ((rc = put_tag(out, f->id, 0))) return rc;
        return put_varint(out, (uint64_t)v);
    }
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string(j)) return SB_E_BAD_FRAME;
        size_t n = json_string_length(j);
        if ((rc = put_tag(out, f->id, 2)) || (rc = put_varint(out, n)))
            return rc;
        return sb_buf_append(out, json_string_value(j), n);
    }
    case PROTOBUF_C_TYPE_BYTES: {
        if (!json_is_string(j)) return SB_E_BAD_FRAME;
        size_t n = json_string_length(j);
        uint8_t *tmp = malloc(n / 4 * 3 + 3);
        if (!tmp) return -ENOMEM;
        long m = sb_b64_decode(json_string_value(j), n, tmp);
        if (m < 0) {
            free(tmp);
            return SB_E_BAD_FRAME;
        }
        if (!(rc = put_tag(out, f->id, 2)) &&
            !(rc = put_varint(out, (uint64_t)m)))
            rc = sb_buf_append(out, tmp, (size_t)m);
        free(tmp);
        return rc;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        sb_buf sub = SB_BUF_INIT;
        rc = msg_to_wire(f->descriptor, j, &sub, depth + 1);
        if (!rc && !(rc = put_tag(out, f->id, 2)) &&
            !(rc = put_varint(out, sub.len)))
            rc = sb_buf_append(out, sub.data, sub.len);
        sb_buf_free(&sub);
        return rc;
    }
    }
    return SB_E_BAD_FRAME;
}

int sb_pbjson_to_wire(const ProtobufCMessageDescriptor *d, const json_t *obj,
                      sb_buf *out)
{
    return msg_to_wire(d, obj, out, 0);
}
