/* The client side of the WebSocket opening handshake, with no I/O: parsing
 * a ws:// URL, writing the HTTP/1.1 upgrade request, and checking the
 * server's answer (status 101, Upgrade, Connection, Sec-WebSocket-Accept
 * for our key, the subprotocol we asked for) with http-parser, bounded to
 * SB_CLIENT_HS_BYTES_MAX. */
#ifndef SB_CLIENT_HS_H
#define SB_CLIENT_HS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_buf.h"
#include "sb_ws.h"

#define SB_CLIENT_HS_BYTES_MAX 8192
#define SB_CLIENT_HOST_BYTES_MAX 255
#define SB_CLIENT_PATH_BYTES_MAX 255

typedef struct sb_client_url {
    char host[SB_CLIENT_HOST_BYTES_MAX + 1]; /* without [] for IPv6 */
    uint16_t port;                           /* default 80, wss: 443 */
    char path[SB_CLIENT_PATH_BYTES_MAX + 1]; /* default "/ws" */
    bool tls;                                /* wss:// */
} sb_client_url;

/* Parses "ws://host[:port][/path]" or "wss://..." (host may be
 * "[v6addr]"). Returns 0 or -EINVAL (another scheme, no host, a bad port,
 * too long). */
int sb_client_url_parse(const char *url, sb_client_url *out);

/* Splits a comma-separated list of URLs in place (each comma becomes a
 * NUL) into urls[0..max), each checked by sb_client_url_parse (so a URL
 * with a comma in it cannot be listed). Returns how many, or -EINVAL (an
 * empty list or item, a bad URL, more than max). */
int sb_client_urls_split(char *list, const char **urls, size_t max);

/* Appends the upgrade request for url with the given key (base64 of 16
 * random bytes, SB_WS_KEY_LEN chars) and subprotocol. 0 or -ENOMEM. */
int sb_client_hs_request(const sb_client_url *url, const char *key,
                         const char *subproto, sb_buf *out);

/* Checks the response in p[0..n). Returns the length of the response head
 * (the bytes after it are WebSocket frames) when it is a valid upgrade,
 * 0 when more bytes are needed, -EMSGSIZE when the head would exceed
 * SB_CLIENT_HS_BYTES_MAX, or -EPROTO (malformed, not 101, a header
 * missing or wrong). *status gets the HTTP status when known (else 0). */
int sb_client_hs_response(const uint8_t *p, size_t n, const char *key,
                          const char *subproto, int *status);

#endif
