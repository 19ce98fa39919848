/* JSON encoding of protobuf-c messages, driven by their descriptors.
 *
 * The JSON encoding of a frame is the protobuf JSON mapping: field names as
 * in the schema, enums by name (numbers accepted), bytes as base64, 64-bit
 * integers as numbers (strings of digits accepted). Decoding transcodes JSON
 * into protobuf wire bytes, so that protobuf-c's own unpacker builds every
 * decoded frame and one free function serves both encodings. */
#ifndef SB_PBJSON_H
#define SB_PBJSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "sb_buf.h"

/* Returns a new JSON object for m (caller owns the reference), or NULL on
 * allocation failure. Fields at their default value are left out. */
json_t *sb_pbjson_from_msg(const ProtobufCMessage *m);

/* Appends the protobuf wire encoding of obj, read as a message of type d,
 * to out. Unknown keys are ignored; null values are skipped. Returns 0,
 * SB_E_BAD_FRAME when a value has the wrong JSON type or range, or -ENOMEM.
 * depth bounds nesting. */
int sb_pbjson_to_wire(const ProtobufCMessageDescriptor *d, const json_t *obj,
                      sb_buf *out);

#endif
