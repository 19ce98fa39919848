/* HTTP/1.1 requests as the gateway sees them: one request per connection,
 * parsed with http-parser into the few fields the gateway uses (method,
 * path, the WebSocket handshake headers, Origin, Authorization, the
 * body's length), with every length bounded; and the responses it gives
 * (101 upgrade, plain answers, the head of a streamed one). The parser
 * stops at the end of the headers: a body is the caller's to read. No
 * I/O: bytes in, bytes out. */
#ifndef SB_HTTP_H
#define SB_HTTP_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>

#include "sb_buf.h"
#include "sb_codec.h"
#include "sb_limits.h"

#define SB_HTTP_HEADER_BYTES_MAX 8192

typedef struct sb_http_req {
    http_parser parser;
    char path[2048]; /* the request target: path and query */
    char ws_key[64];
    char ws_protocols[256];
    char ws_version[8];
    char origin[256];
    char authorization[SB_TOKEN_BYTES_MAX + 16];
    char expect[32];
    char field[32]; /* the header name being read */
    size_t field_len;
    int cur; /* which field the current header value fills */
    bool in_value;
    bool too_long; /* some field overflowed its buffer */
    bool complete; /* headers (and any body) read */
    size_t bytes;
} sb_http_req;

void sb_http_req_init(sb_http_req *r);

/* Parses n more bytes. Returns the bytes consumed; once r->complete is set
 * the request is whole and any bytes after it are the peer's next layer
 * (WebSocket). Returns -1 for a malformed or oversized request. */
long sb_http_req_feed(sb_http_req *r, const char *p, size_t n);

/* True if the request asks for a WebSocket upgrade. */
bool sb_http_req_is_upgrade(const sb_http_req *r);
const char *sb_http_req_method(const sb_http_req *r);
/* The body's length from Content-Length; -1 when there is none (no body,
 * or a chunked one: see sb_http_req_chunked). */
int64_t sb_http_req_content_length(const sb_http_req *r);
bool sb_http_req_chunked(const sb_http_req *r);
/* The token of an "Authorization: Bearer <token>" header, or NULL. */
const char *sb_http_req_bearer(const sb_http_req *r);
/* Whether the client waits for "100 Continue" before its body. */
bool sb_http_req_expects_continue(const sb_http_req *r);

/* The value of query parameter name in target, percent-decoded (and '+'
 * as a space) into out (cap bytes, NUL-terminated). Returns its length,
 * -ENOENT when the query has no such parameter, -EINVAL for a bad escape
 * or a decoded NUL, -ENOSPC when it does not fit. */
int sb_http_query(const char *target, const char *name, char *out, size_t cap);

/* Picks the encoding from the offered Sec-WebSocket-Protocol list: the
 * first of ours in the client's order. Returns the name to echo, "" if the
 * client offered none (protobuf then), or NULL if it offered only others. */
const char *sb_http_pick_subprotocol(const char *offered, sb_encoding *enc);

/* Appends a complete response with Connection: close. */
int sb_http_respond(sb_buf *out, int status, const char *content_type,
                    const void *body, size_t n);
/* The same with more header lines (each ending in CRLF; NULL: none). */
int sb_http_respond_ex(sb_buf *out, int status, const char *content_type,
                       const char *headers, const void *body, size_t n);
/* Appends only the head of a response whose body of length bytes the
 * caller writes next, with Connection: close and the header lines given
 * (each ending in CRLF; NULL: none). */
int sb_http_respond_head(sb_buf *out, int status, const char *content_type,
                         const char *headers, uint64_t length);
/* "100 Continue", for a client that waits for it. */
int sb_http_respond_continue(sb_buf *out);
/* The reason phrase of status ("Not Found"). */
const char *sb_http_reason(int status);
/* Appends the 101 Switching Protocols answer to the handshake. */
int sb_http_respond_upgrade(sb_buf *out, const char *key, const char *proto);

#endif
