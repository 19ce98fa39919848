// Frames on the wire, both encodings of protocol v1 (docs/protocol.md):
// switchboard.v1.proto (binary protobuf) and switchboard.v1.json (the JSON
// mapping of the same frames). The schema comes in as a protobufjs JSON
// descriptor generated from proto/switchboard.proto at build time, so
// fields and frames added to the .proto need no change here.
//
// Every frame, whichever encoding it came in, is handed to the SDK as one
// plain object shape: snake_case field names as in the schema, enums by
// name ('MSG_TEXT'), 64-bit integers as numbers (seqs and ids stay far
// below 2^53), bytes as Uint8Array, every field present (defaults filled),
// and `body` naming the frame kind ('send', 'push'...).
import protobuf from 'protobufjs/light.js';

// Numbers, not Long objects: the SDK compares seqs with < and ===.
protobuf.util.Long = null;
protobuf.configure();

export const SUBPROTOCOL_PROTO = 'switchboard.v1.proto';
export const SUBPROTOCOL_JSON = 'switchboard.v1.json';

const TO_OBJECT = { longs: Number, enums: String, defaults: true, oneofs: true };
const TO_JSON = { longs: Number, enums: String, bytes: String };

/**
 * Builds the codec for a descriptor (the JSON of protobufjs' Root).
 * encode(frame, enc) returns a Uint8Array ('proto') or a string ('json');
 * decode(data, enc) returns the frame object or throws on a bad frame.
 */
export function createCodec(descriptor) {
  const root = protobuf.Root.fromJSON(descriptor);
  const Frame = root.lookupType('sbp.Frame');
  const Message = root.lookupType('sbp.Message');
  const bodies = Frame.oneofs.body.oneof.slice();

  function normalize(m) {
    return Frame.toObject(m, TO_OBJECT);
  }

  return {
    root,
    /** Names of every frame body the schema knows. */
    bodies,
    has(body) {
      return bodies.includes(body);
    },
    encode(frame, enc) {
      const m = Frame.fromObject(frame);
      if (enc === 'json') return JSON.stringify(Frame.toObject(m, TO_JSON));
      return Frame.encode(m).finish();
    },
    decode(data, enc) {
      if (enc === 'json') {
        const text = typeof data === 'string' ? data : new TextDecoder().decode(data);
        return normalize(Frame.fromObject(JSON.parse(text)));
      }
      const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
      return normalize(Frame.decode(bytes));
    },
    /** A Message object with every field at its default, then fields. */
    message(fields) {
      return { ...Message.toObject(Message.fromObject({}), TO_OBJECT), ...fields };
    },
  };
}
