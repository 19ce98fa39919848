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

#include "sb_buf.h"
#include "switchboard.pb-c.h"

#define SB_SUBPROTO_PROTO "switchboard.v1.proto"
#define SB_SUBPROTO_JSON "switchboard.v1.json"
#define SB_CLIENT_MSG_ID_BYTES 16

typedef enum sb_encoding { SB_ENC_PROTO = 0, SB_ENC_JSON = 1 } sb_encoding;

/* Decodes one frame of len bytes. On success returns 0 and sets *out to a
 * frame the caller frees with sb_frame_free(). Returns SB_E_BAD_FRAME if the
 * bytes are not a frame of enc, SB_E_BAD_UTF8 if a JSON text is not UTF-8,
 * or -ENOMEM. String fields of protobuf frames are not yet checked for
 * UTF-8: see sb_frame_check_utf8(). */
int sb_frame_decode(sb_encoding enc, const uint8_t *data, size_t len,
                    Sbp__Frame **out);

/* Appends the encoding of f to out. Returns 0 or -ENOMEM. */
int sb_frame_encode(sb_encoding enc, const Sbp__Frame *f, sb_buf *out);

/* Returns 0 if every string field of f (recursively) is valid UTF-8,
 * SB_E_BAD_UTF8 otherwise. */
int sb_frame_check_utf8(const Sbp__Frame *f);

/* The name of a frame's kind ("send", "push"...), "none" when unset. */
const char *sb_frame_kind_name(const Sbp__Frame *f);

void sb_frame_free(Sbp__Frame *f);

#endif
