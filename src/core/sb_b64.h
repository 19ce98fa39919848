/* Base64: the standard alphabet with padding (JSON bytes fields) and the
 * URL-safe alphabet without padding (JWT). */
#ifndef SB_B64_H
#define SB_B64_H

#include <stddef.h>
#include <stdint.h>

/* Bytes needed to encode n bytes, including the terminating NUL. */
size_t sb_b64_encoded_len(size_t n);
/* Encodes n bytes into out (sb_b64_encoded_len(n) bytes); NUL-terminates.
 * Returns the length without the NUL. */
size_t sb_b64_encode(const uint8_t *in, size_t n, char *out, int url);
/* Decodes len chars into out (at least len*3/4+3 bytes). Accepts either
 * alphabet, padding optional. Returns bytes written or -1 if malformed. */
long sb_b64_decode(const char *in, size_t len, uint8_t *out);

#endif
