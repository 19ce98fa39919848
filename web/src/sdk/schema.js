// The codec for the schema this build was generated from
// (web/gen/proto.json, made from proto/switchboard.proto by build.mjs).
import descriptor from '../../gen/proto.json' with { type: 'json' };
import { createCodec } from './codec.js';

export const codec = createCodec(descriptor);
