/* A WebSocket connection after its handshake, over wslay, with no I/O:
 * bytes read from the socket go in through sb_ws_feed(), complete messages
 * come out through the on_msg callback, and the bytes to write are pulled
 * with sb_ws_pull(). Pings are answered and the close handshake is done by
 * wslay. Randomness (the client's masking key) comes in through the
 * callbacks. Also the handshake's key arithmetic (RFC 6455 §4).
 *
 * An idle connection costs only its sb_ws: wslay's context (its 8 KiB of
 * buffers) is taken from the environment's pool when bytes arrive or a
 * close is queued, and given back as soon as the connection is between
 * frames with nothing of wslay's left to write. Frames the application
 * sends (data and pings) are framed here, straight into the connection's
 * output. With permessage-deflate (sb_wsdeflate) a message at or above
 * the connection's deflate_min_bytes goes compressed when that makes it
 * smaller, and a compressed message received is decompressed within the
 * connection's message limit. */
#ifndef SB_WS_H
#define SB_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_buf.h"
#include "sb_wsdeflate.h"

typedef struct sb_ws sb_ws;

/* What the connections of one thread share: idle wslay contexts kept for
 * reuse and the zlib streams of permessage-deflate. Single-threaded: a
 * connection and its environment are used on one thread. */
typedef struct sb_ws_env sb_ws_env;

typedef struct sb_ws_env_config {
    /* zlib's level for compressed messages (1..9). */
    int deflate_level;
    /* Idle wslay contexts kept for the next connection that needs one;
     * more are freed. */
    size_t engines_idle_max;
} sb_ws_env_config;

typedef struct sb_ws_env_stats {
    size_t engines_live; /* held by connections now */
    size_t engines_idle; /* kept in the pool */
    uint64_t engines_made;
    /* permessage-deflate: messages sent compressed and their bytes before
     * and after; messages received compressed and their bytes on the
     * wire and after decompression. */
    uint64_t deflated, deflate_in_bytes, deflate_out_bytes;
    uint64_t inflated, inflate_in_bytes, inflate_out_bytes;
} sb_ws_env_stats;

void sb_ws_env_config_default(sb_ws_env_config *c);
/* cfg may be NULL (the defaults). Returns 0 or -ENOMEM. */
int sb_ws_env_new(const sb_ws_env_config *cfg, sb_ws_env **out);
/* After every connection of env was freed. Accepts NULL. */
void sb_ws_env_free(sb_ws_env *env);
void sb_ws_env_get_stats(const sb_ws_env *env, sb_ws_env_stats *out);

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
/* Invalid UTF-8 in a text message, or compressed data that does not
 * decompress. */
#define SB_WS_CLOSE_BAD_DATA 1007
#define SB_WS_CLOSE_POLICY 1008
#define SB_WS_CLOSE_TOO_BIG 1009
#define SB_WS_CLOSE_INTERNAL 1011
/* RFC 6455's 1013 ("try again later") is refused by wslay 1.1, which reads
 * only 1000-1011 and 3000-4999: the application range carries it. */
#define SB_WS_CLOSE_TRY_AGAIN 4013

/* The largest message bound a connection may have: a frame's size, its
 * header included, is counted in 32 bits. */
#define SB_WS_MSG_BYTES_MAX (UINT32_MAX - 14)

typedef struct sb_ws_config {
    bool client;
    /* Bounds an incoming message, compressed and decompressed alike; a
     * larger one makes the connection close with 1009. At most
     * SB_WS_MSG_BYTES_MAX. */
    uint64_t msg_bytes_max;
    /* What the handshake agreed for permessage-deflate (off: {0}), and
     * the size from which a message sent goes compressed (below it
     * deflate saves too little to pay for its time: docs/benchmarks.md). */
    sb_wsdeflate_params deflate;
    uint32_t deflate_min_bytes;
} sb_ws_config;

/* Creates a connection in env (NULL: one of its own, with the default
 * configuration, freed with it). cbs is copied. Returns 0 or -ENOMEM. */
int sb_ws_new(sb_ws_env *env, const sb_ws_config *cfg, const sb_ws_cbs *cbs,
              void *ud, sb_ws **out);
/* Accepts NULL. */
void sb_ws_free(sb_ws *ws);

/* Processes n bytes read from the peer. Returns 0, -ENOMEM, or -EPROTO
 * when the peer broke the protocol or wslay could not go on; a peer that
 * breaks the protocol gets a close frame queued (1002 for a frame that
 * breaks RFC 6455; pull and write it: sb_ws_done() then says the
 * connection may be dropped). */
int sb_ws_feed(sb_ws *ws, const uint8_t *p, size_t n);

/* Queues one message (copied, compressed when it pays). Returns 0, -EPIPE
 * once a close was queued or received, or -ENOMEM. */
int sb_ws_send(sb_ws *ws, bool text, const uint8_t *p, size_t n);
int sb_ws_ping(sb_ws *ws);
/* Queues a close frame with code and a short reason (< 123 bytes). */
int sb_ws_close(sb_ws *ws, uint16_t code, const char *reason);

/* Moves every queued frame's bytes to the end of out (which keeps its
 * own). Returns 0 or -ENOMEM. */
int sb_ws_pull(sb_ws *ws, sb_buf *out);

/* Bytes of frames queued and not yet pulled. */
size_t sb_ws_queued_bytes(const sb_ws *ws);
/* True once a close was both sent (pulled) and received, or reading was
 * shut down and nothing remains to pull: the socket may be closed. */
bool sb_ws_done(const sb_ws *ws);
bool sb_ws_close_received(const sb_ws *ws);
/* The code of the close received from the peer: 1005 when it carried
 * none, 1006 (abnormal closure) when none was received. */
uint16_t sb_ws_close_code(const sb_ws *ws);
/* True while the connection holds a wslay context (between frames and
 * with nothing of wslay's to write, it holds none). */
bool sb_ws_busy(const sb_ws *ws);

#define SB_WS_KEY_LEN 24    /* base64 of 16 bytes */
#define SB_WS_ACCEPT_LEN 28 /* base64 of a SHA-1 */

/* Writes into accept (SB_WS_ACCEPT_LEN + 1 bytes) the
 * Sec-WebSocket-Accept value for the client's key. */
void sb_ws_accept_key(const char *key, size_t key_len, char *accept);

#endif
