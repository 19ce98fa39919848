// client_msg_id: 16 bytes chosen by the sender (the time, then random
// bytes: core.js newMsgId); the SDK keys its maps by the lowercase hex of
// those bytes.

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export const MSG_ID_BYTES = 16;

export function toHex(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i]];
  return s;
}

export function fromHex(hex) {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

/** Random bytes from the Web Crypto API (browsers and node >= 19). */
export function cryptoRandomBytes(n) {
  const b = new Uint8Array(n);
  globalThis.crypto.getRandomValues(b);
  return b;
}
