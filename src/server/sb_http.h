/* HTTP/1.1 requests as the gateway sees them: one request per connection,
 * parsed with http-parser into the few fields the gateway uses (method,
 * path, the WebSocket handshake headers, Origin, Authorization, the
 * body's length and type), with every length bounded; a small body (the
 * REST API's JSON) read whole, an upload's (POST /media) left to the
 * caller to stream; and the responses it gives (101 upgrade, plain
 * answers, the head of a streamed one). No I/O: bytes in, bytes out. */
#ifndef SB_HTTP_H
#define SB_HTTP_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>

#include "sb_buf.h"
#include "sb_codec.h"
#include "sb_wsdeflate.h"
#include "sb_limits.h"

#define SB_HTTP_HEADER_BYTES_MAX 8192
/* A request body (the REST API's JSON) is read up to this; past it the
 * request is refused 413 (body_too_large) without reading the rest. */
#define SB_HTTP_BODY_BYTES_MAX (1u << 20)

typedef struct sb_http_req {
    http_parser parser;
    char path[2048]; /* the request target: path and query */
    char ws_key[64];
    char ws_protocols[256];
    char ws_version[8];
    char origin[256];
    /* Sec-WebSocket-Extensions, repeated headers joined by ", ". */
    char ws_extensions[SB_WSDEFLATE_HEADER_BYTES_MAX];
    char authorization[SB_TOKEN_BYTES_MAX + 16]; /* "Bearer <token>" */
    char expect[32];
    char content_type[128];
    char *body; /* malloc'd, NUL-terminated; NULL: no body */
    size_t body_len;
    bool body_too_large; /* over SB_HTTP_BODY_BYTES_MAX: body dropped */
    /* An upload (POST /media): complete at its headers, the body the
     * caller's to stream (sb_http_req_streamed). */
    bool streamed;
    char field[32]; /* the header name being read */
    size_t field_len;
    int cur; /* which field the current header value fills */
    bool in_value;
    bool too_long; /* some field overflowed its buffer */
    bool complete; /* headers (and any body) read */
    size_t bytes;
    size_t header_bytes; /* bytes of the request line and headers */
} sb_http_req;

void sb_http_req_init(sb_http_req *r);
/* Moves a request being parsed from src to dst (src is left unusable:
 * its body, if any, is dst's now). */
void sb_http_req_move(sb_http_req *dst, const sb_http_req *src);
/* Frees the body; r may be initialised again. */
void sb_http_req_clear(sb_http_req *r);

/* Parses n more bytes. Returns the bytes consumed; once r->complete is set
 * the request is whole (its body too, up to SB_HTTP_BODY_BYTES_MAX) and
 * any bytes after it are the peer's next layer (WebSocket). Returns -1 for
 * a malformed request or headers over SB_HTTP_HEADER_BYTES_MAX. */
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
/* The same with extra header lines (each ending in CRLF; NULL: none). */
int sb_http_respond_ex(sb_buf *out, int status, const char *content_type,
                       const char *extra_headers, const void *body, size_t n);
/* Appends only the head of a response whose body of length bytes the
 * caller writes next, with Connection: close and the header lines given
 * (each ending in CRLF; NULL: none). */
int sb_http_respond_head(sb_buf *out, int status, const char *content_type,
                         const char *extra_headers, uint64_t length);
/* "100 Continue", for a client that waits for it. */
int sb_http_respond_continue(sb_buf *out);
/* The reason phrase of status ("Not Found"). */
const char *sb_http_reason(int status);
/* Appends the 101 Switching Protocols answer to the handshake, with the
 * subprotocol proto ("" for none) and the Sec-WebSocket-Extensions value
 * ext ("" for none). */
int sb_http_respond_upgrade(sb_buf *out, const char *key, const char *proto,
                            const char *ext);

#endif
