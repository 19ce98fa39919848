/* permessage-deflate (RFC 7692) for sb_ws, with no I/O: the handshake's
 * negotiation (the server picks an offer of Sec-WebSocket-Extensions and
 * writes its answer; the client offers and checks the answer) and the
 * compression of one message's payload with zlib.
 *
 * Both ends always work without context takeover (server_ and
 * client_no_context_takeover): every message is compressed and
 * decompressed from a fresh state, so a connection keeps no zlib state
 * between messages and one sb_wsdeflate (a deflate and an inflate stream)
 * serves every connection of a thread. */
#ifndef SB_WSDEFLATE_H
#define SB_WSDEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_buf.h"

/* A Sec-WebSocket-Extensions value the gateway reads or writes. */
#define SB_WSDEFLATE_HEADER_BYTES_MAX 512

/* What a handshake agreed. */
typedef struct sb_wsdeflate_params {
    bool on;
    /* The LZ77 window this end's compressor may use, 9..15 (the peer may
     * have asked for less than 15). */
    uint8_t window_bits;
} sb_wsdeflate_params;

/* The offer the client SDK sends. */
#define SB_WSDEFLATE_OFFER                                                     \
    "permessage-deflate; server_no_context_takeover; "                         \
    "client_no_context_takeover"

/* Server: picks the first permessage-deflate offer in offers (a
 * Sec-WebSocket-Extensions value, several header lines joined by ", ")
 * that it can accept, and writes the answer's value into resp (resp_len
 * >= 128). Offers it cannot accept are passed over: malformed ones,
 * unknown or repeated parameters, a server_max_window_bits of 8 (zlib's
 * smallest raw window is 9). Returns true and sets *p when one was
 * accepted; false (and p->on false) when none. */
bool sb_wsdeflate_accept(const char *offers, sb_wsdeflate_params *p, char *resp,
                         size_t resp_len);

/* Client: checks the server's answer to SB_WSDEFLATE_OFFER (the
 * Sec-WebSocket-Extensions value of the 101, "" when absent). Returns 0
 * with p->on false for "", 0 with p->on true for a valid acceptance, or
 * -EPROTO: another extension, an unknown or repeated parameter, a
 * client_max_window_bits (not offered), or no server_no_context_takeover
 * (the offer asked for it; without it the server could keep context). */
int sb_wsdeflate_check_answer(const char *answer, sb_wsdeflate_params *p);

/* The zlib streams of one thread. level is zlib's compression level
 * (1..9). The streams are made on first use. */
typedef struct sb_wsdeflate sb_wsdeflate;

int sb_wsdeflate_new(int level, sb_wsdeflate **out);
/* Accepts NULL. */
void sb_wsdeflate_free(sb_wsdeflate *z);

/* Compresses p[0..n) as one message's payload (RFC 7692 §7.2.1: a sync
 * flush without its 4 trailing bytes), from a fresh state, with a window
 * of window_bits (9..15), appending to out. Returns 0 or -ENOMEM. */
int sb_wsdeflate_compress(sb_wsdeflate *z, int window_bits, const uint8_t *p,
                          size_t n, sb_buf *out);

/* Decompresses one message's payload p[0..n) from a fresh state,
 * appending to out at most max bytes. Returns 0; -EMSGSIZE when the
 * message would be larger than max (a zip bomb is stopped there: the work
 * is bounded by max, not by the ratio); -EBADMSG for data that is not
 * deflate; -ENOMEM. */
int sb_wsdeflate_decompress(sb_wsdeflate *z, const uint8_t *p, size_t n,
                            size_t max, sb_buf *out);

#endif
