/* A WebSocket connection after its handshake, over wslay, with no I/O:
 * bytes read from the socket go in through sb_ws_feed(), complete messages
 * come out through the on_msg callback, and the bytes to write are pulled
 * with sb_ws_pull(). Pings are answered and the close handshake is done by
 * wslay. Randomness (the client's masking key) comes in through the
 * callbacks. Also the handshake's key arithmetic (RFC 6455 §4). */
#ifndef SB_WS_H
#define SB_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_buf.h"

typedef struct sb_ws sb_ws;

typedef struct sb_ws_cbs {
    /* A complete data message (text or binary). p is valid during the call.
     * May queue messages and closes on ws. */
    void (*on_msg)(void *ud, bool text, const uint8_t *p, size_t n);
    /* Fills p with n random bytes (masking keys); clients only. */
    void (*rand_bytes)(void *ud, uint8_t *p, size_t n);
} sb_ws_cbs;

#define SB_WS_CLOSE_NORMAL 1000
#define SB_WS_CLOSE_GOING_AWAY 1001
#define SB_WS_CLOSE_PROTOCOL 1002
#define SB_WS_CLOSE_POLICY 1008
#define SB_WS_CLOSE_TOO_BIG 1009
#define SB_WS_CLOSE_INTERNAL 1011
/* RFC 6455's 1013 ("try again later") is refused by wslay 1.1, which reads
 * only 1000-1011 and 3000-4999: the application range carries it. */
#define SB_WS_CLOSE_TRY_AGAIN 4013

/* Creates a connection. msg_bytes_max bounds an incoming message; a larger
 * one makes wslay queue a 1009 close. Returns 0 or -ENOMEM. */
int sb_ws_new(bool client, uint64_t msg_bytes_max, const sb_ws_cbs *cbs,
              void *ud, sb_ws **out);
/* Accepts NULL. */
void sb_ws_free(sb_ws *ws);

/* Processes n bytes read from the peer. Returns 0, or -EPROTO when the
 * peer broke the protocol (a close frame is then queued where possible,
 * 1002 for a frame that breaks RFC 6455: pull and write it, then drop the
 * connection). */
int sb_ws_feed(sb_ws *ws, const uint8_t *p, size_t n);

/* Queues one message (copied). Returns 0, -EPIPE once a close was queued,
 * or -ENOMEM. */
int sb_ws_send(sb_ws *ws, bool text, const uint8_t *p, size_t n);
int sb_ws_ping(sb_ws *ws);
/* Queues a close frame with code and a short reason (< 123 bytes). */
int sb_ws_close(sb_ws *ws, uint16_t code, const char *reason);

/* Appends every queued frame's bytes to out. Returns 0 or -ENOMEM. */
int sb_ws_pull(sb_ws *ws, sb_buf *out);

/* Bytes of messages queued and not yet pulled. */
size_t sb_ws_queued_bytes(const sb_ws *ws);
/* True once a close was both sent (pulled) and received, or reading was
 * shut down and nothing remains to pull: the socket may be closed. */
bool sb_ws_done(const sb_ws *ws);
bool sb_ws_close_received(const sb_ws *ws);
/* The code of the close received from the peer (0 if none). */
uint16_t sb_ws_close_code(const sb_ws *ws);

#define SB_WS_KEY_LEN 24    /* base64 of 16 bytes */
#define SB_WS_ACCEPT_LEN 28 /* base64 of a SHA-1 */

/* Writes into accept (SB_WS_ACCEPT_LEN + 1 bytes) the
 * Sec-WebSocket-Accept value for the client's key. */
void sb_ws_accept_key(const char *key, size_t key_len, char *accept);

#endif
