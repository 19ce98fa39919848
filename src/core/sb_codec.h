/* Frame codec: the two wire encodings of protocol v1.
 *
 * SB_ENC_PROTO is the protobuf encoding (WebSocket binary frames, subprotocol
 * "switchboard.v1.proto"); SB_ENC_JSON the JSON mapping of the same schema
 * (text frames, "switchboard.v1.json"). Decoded frames are always built by
 * protobuf-c and freed with sb_frame_free(). No I/O, no clock. */
#ifndef SB_CODEC_H
#define SB_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "sb_limits.h"
#include "sb_buf.h"
#include "switchboard.pb-c.h"

#define SB_SUBPROTO_PROTO "switchboard.v1.proto"
#define SB_SUBPROTO_JSON "switchboard.v1.json"

typedef enum sb_encoding { SB_ENC_PROTO = 0, SB_ENC_JSON = 1 } sb_encoding;

/* Decodes one frame of len bytes. On success returns 0 and sets *out to a
 * frame the caller frees with sb_frame_free(). Returns SB_E_BAD_FRAME if the
 * bytes are not a frame of enc (for JSON: not a UTF-8 JSON text, such as a
 * binary message), SB_E_BAD_UTF8 if a string field holds U+0000 (no string
 * of the protocol may: a C string ends there, and PostgreSQL's text cannot
 * hold it), or -ENOMEM. String fields of protobuf frames are not yet
 * checked for UTF-8: see sb_frame_check_utf8(). */
int sb_frame_decode(sb_encoding enc, const uint8_t *data, size_t len,
                    Sbp__Frame **out);

/* Decodes as sb_frame_decode() does and checks every string field: UTF-8
 * (sb_frame_check_utf8) and no U+0000. Returns 0 with *out set;
 * SB_E_BAD_UTF8 with *out set all the same, so that the caller can answer
 * the frame by its rid (the caller frees it); any other code with *out
 * NULL. */
int sb_frame_decode_checked(sb_encoding enc, const uint8_t *data, size_t len,
                            Sbp__Frame **out);

/* Appends the encoding of f to out. Returns 0 or -ENOMEM. */
int sb_frame_encode(sb_encoding enc, const Sbp__Frame *f, sb_buf *out);

/* The bytes m adds to a frame in enc as one element of a repeated field
 * (field number below 16) of one of its messages: its record (protobuf)
 * or its object and a comma (JSON). SIZE_MAX when out of memory. */
size_t sb_item_bytes(sb_encoding enc, const ProtobufCMessage *m);

/* A PUSH frame assembled from messages encoded one at a time, so that a
 * message going to many devices is encoded once per encoding and only its
 * bytes are copied into each device's frame:
 *
 *   sb_push_item_encode() appends one message's item to a buffer of its
 *   own (protobuf: its Push.messages record, field 1 with its length;
 *   JSON: its object);
 *   sb_push_begin(), sb_push_add() for each item in order, sb_push_end()
 *   make the frame Frame{push: Push{messages}} (rid 0) in out, the very
 *   bytes sb_frame_encode() would make of it.
 *
 * A frame's items must all be of the builder's encoding. */
typedef struct sb_push_builder {
    sb_encoding enc;
    sb_buf *out;
    size_t start; /* where the frame (its reserved header) begins in out */
    size_t n;     /* items added */
} sb_push_builder;

/* Appends m's item in enc to out. Returns 0 or -ENOMEM. */
int sb_push_item_encode(sb_encoding enc, const Sbp__Message *m, sb_buf *out);
/* Starts a frame at the end of out. Returns 0 or -ENOMEM. */
int sb_push_begin(sb_push_builder *b, sb_encoding enc, sb_buf *out);
/* Appends an item (n > 0 bytes from sb_push_item_encode). Returns 0 or
 * -ENOMEM (the frame is then as it was). */
int sb_push_add(sb_push_builder *b, const uint8_t *item, size_t n);
/* The bytes the frame would take if ended now, at most: for bounding a
 * frame before adding an item. */
size_t sb_push_len(const sb_push_builder *b);
/* Ends a frame of at least one item: *p and *n span it inside out (valid
 * until out changes). The builder may then begin another frame. */
void sb_push_end(sb_push_builder *b, const uint8_t **p, size_t *n);

/* Returns 0 if every string field of f (recursively) is valid UTF-8,
 * SB_E_BAD_UTF8 otherwise. */
int sb_frame_check_utf8(const Sbp__Frame *f);

/* The name of a frame's kind ("send", "push"...), "none" when unset. */
const char *sb_frame_kind_name(const Sbp__Frame *f);

void sb_frame_free(Sbp__Frame *f);

#endif
