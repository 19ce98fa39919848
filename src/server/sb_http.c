/* HTTP/1.1 request parsing and responses for the gateway's one port. */
#include "sb_http.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sb_ws.h"

enum {
    F_NONE,
    F_KEY,
    F_PROTOCOLS,
    F_VERSION,
    F_ORIGIN,
    F_EXTENSIONS,
    F_AUTH,
    F_CTYPE,
    F_EXPECT
};

static int append(sb_http_req *r, char *dst, size_t cap, const char *at,
                  size_t n)
{
    size_t have = strlen(dst);
    if (have + n >= cap) {
        r->too_long = true;
        return 0; /* keep parsing; the request will be refused */
    }
    memcpy(dst + have, at, n);
    dst[have + n] = '\0';
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    sb_http_req *r = p->data;
    return append(r, r->path, sizeof r->path, at, n);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    sb_http_req *r = p->data;
    if (r->in_value) {
        r->in_value = false;
        r->field_len = 0;
    }
    if (r->field_len + n >= sizeof r->field) {
        r->field_len = sizeof r->field - 1; /* a name we don't use */
        memset(r->field, '-', r->field_len);
    } else {
        memcpy(r->field + r->field_len, at, n);
        r->field_len += n;
    }
    r->field[r->field_len] = '\0';
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    sb_http_req *r = p->data;
    if (!r->in_value) {
        r->in_value = true;
        if (strcasecmp(r->field, "Sec-WebSocket-Key") == 0)
            r->cur = F_KEY;
        else if (strcasecmp(r->field, "Sec-WebSocket-Protocol") == 0)
            r->cur = F_PROTOCOLS;
        else if (strcasecmp(r->field, "Sec-WebSocket-Version") == 0)
            r->cur = F_VERSION;
        else if (strcasecmp(r->field, "Origin") == 0)
            r->cur = F_ORIGIN;
        else if (strcasecmp(r->field, "Sec-WebSocket-Extensions") == 0)
            r->cur = F_EXTENSIONS;
        else if (strcasecmp(r->field, "Authorization") == 0)
            r->cur = F_AUTH;
        else if (strcasecmp(r->field, "Content-Type") == 0)
            r->cur = F_CTYPE;
        else if (strcasecmp(r->field, "Expect") == 0)
            r->cur = F_EXPECT;
        else
            r->cur = F_NONE;
        /* Repeated Sec-WebSocket-Protocol or -Extensions headers form one
         * list. */
        if (r->cur == F_PROTOCOLS && r->ws_protocols[0])
            append(r, r->ws_protocols, sizeof r->ws_protocols, ",", 1);
        if (r->cur == F_EXTENSIONS && r->ws_extensions[0])
            append(r, r->ws_extensions, sizeof r->ws_extensions, ", ", 2);
    }
    switch (r->cur) {
    case F_KEY:
        return append(r, r->ws_key, sizeof r->ws_key, at, n);
    case F_PROTOCOLS:
        return append(r, r->ws_protocols, sizeof r->ws_protocols, at, n);
    case F_VERSION:
        return append(r, r->ws_version, sizeof r->ws_version, at, n);
    case F_ORIGIN:
        return append(r, r->origin, sizeof r->origin, at, n);
    case F_EXTENSIONS:
        return append(r, r->ws_extensions, sizeof r->ws_extensions, at, n);
    case F_AUTH:
        return append(r, r->authorization, sizeof r->authorization, at, n);
    case F_CTYPE:
        return append(r, r->content_type, sizeof r->content_type, at, n);
    case F_EXPECT:
        return append(r, r->expect, sizeof r->expect, at, n);
    default:
        return 0;
    }
}

/* Whether the request's body is an upload's, which the caller streams
 * (sb_media) rather than this parser gathers: POST /media. */
static bool body_streamed(const sb_http_req *r)
{
    return r->parser.method == HTTP_POST &&
           strncmp(r->path, "/media", 6) == 0 &&
           (r->path[6] == '\0' || r->path[6] == '?');
}

/* An upgrade, a GET or a HEAD is whole with its headers; so is an upload,
 * whose body the caller streams (the parser stops at the headers' end);
 * another method's body follows them, read up to SB_HTTP_BODY_BYTES_MAX.
 * A body announced larger is refused now rather than read. */
static int on_headers_complete(http_parser *p)
{
    sb_http_req *r = p->data;
    if (body_streamed(r)) {
        r->streamed = true;
        r->complete = true;
        http_parser_pause(p, 1);
        return 0;
    }
    if (p->upgrade || p->method == HTTP_GET || p->method == HTTP_HEAD) {
        r->complete = true;
        return 1; /* no body: stop here */
    }
    if (p->content_length != ULLONG_MAX &&
        p->content_length > SB_HTTP_BODY_BYTES_MAX) {
        r->body_too_large = true;
        r->complete = true;
        return 1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    sb_http_req *r = p->data;
    if (r->body_too_large) return 0;
    if (r->body_len + n > SB_HTTP_BODY_BYTES_MAX) {
        r->body_too_large = true;
        free(r->body);
        r->body = NULL;
        r->body_len = 0;
        r->complete = true;
        return -1; /* stop reading: the answer is 413 */
    }
    char *b = realloc(r->body, r->body_len + n + 1);
    if (!b) return -1;
    memcpy(b + r->body_len, at, n);
    r->body = b;
    r->body_len += n;
    b[r->body_len] = '\0';
    return 0;
}

static int on_message_complete(http_parser *p)
{
    sb_http_req *r = p->data;
    r->complete = true;
    http_parser_pause(p, 1); /* one request per connection */
    return 0;
}

static const http_parser_settings SETTINGS = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void sb_http_req_clear(sb_http_req *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

void sb_http_req_init(sb_http_req *r)
{
    memset(r, 0, sizeof *r);
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
}

void sb_http_req_move(sb_http_req *dst, const sb_http_req *src)
{
    *dst = *src;
    dst->parser.data = dst;
}

long sb_http_req_feed(sb_http_req *r, const char *p, size_t n)
{
    if (r->complete) return 0;
    size_t body_before = r->body_len;
    size_t used = http_parser_execute(&r->parser, &SETTINGS, p, n);
    if (r->streamed) {
        /* Paused at the headers' last byte, which it does not count. */
        if (used >= n || p[used] != '\n') return -1;
        used++;
    }
    r->bytes += used;
    /* Headers only count against the header limit. */
    size_t body = r->body_len > body_before ? r->body_len - body_before : 0;
    r->header_bytes += used > body ? used - body : 0;
    if (r->header_bytes > SB_HTTP_HEADER_BYTES_MAX) return -1;
    if (r->complete) return (long)used;
    if (HTTP_PARSER_ERRNO(&r->parser) != HPE_OK) return -1;
    return (long)used;
}

bool sb_http_req_is_upgrade(const sb_http_req *r)
{
    return r->parser.upgrade && r->parser.method == HTTP_GET;
}

const char *sb_http_req_method(const sb_http_req *r)
{
    return http_method_str((enum http_method)r->parser.method);
}

int64_t sb_http_req_content_length(const sb_http_req *r)
{
    if (sb_http_req_chunked(r) || r->parser.content_length == ULLONG_MAX ||
        r->parser.content_length > INT64_MAX)
        return -1;
    return (int64_t)r->parser.content_length;
}

bool sb_http_req_chunked(const sb_http_req *r)
{
    return (r->parser.flags & F_CHUNKED) != 0;
}

const char *sb_http_req_bearer(const sb_http_req *r)
{
    const char *a = r->authorization;
    if (strncasecmp(a, "Bearer ", 7) != 0) return NULL;
    a += 7;
    while (*a == ' ')
        a++;
    return *a ? a : NULL;
}

bool sb_http_req_expects_continue(const sb_http_req *r)
{
    return strcasecmp(r->expect, "100-continue") == 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int sb_http_query(const char *target, const char *name, char *out, size_t cap)
{
    const char *q = strchr(target, '?');
    size_t nlen = strlen(name);
    if (cap) out[0] = '\0';
    for (const char *p = q; p && *p; p = strchr(p + 1, '&')) {
        if (strncmp(p + 1, name, nlen) != 0 || p[1 + nlen] != '=') continue;
        const char *v = p + 2 + nlen;
        size_t n = strcspn(v, "&#"), k = 0;
        for (size_t i = 0; i < n; i++) {
            int c = (unsigned char)v[i];
            if (c == '+') {
                c = ' ';
            } else if (c == '%') {
                int hi = i + 2 < n ? hex_digit(v[i + 1]) : -1;
                int lo = hi >= 0 ? hex_digit(v[i + 2]) : -1;
                if (lo < 0) return -EINVAL;
                c = hi << 4 | lo;
                if (c == 0) return -EINVAL;
                i += 2;
            }
            if (k + 1 >= cap) return -ENOSPC;
            out[k++] = (char)c;
        }
        out[k] = '\0';
        return (int)k;
    }
    return -ENOENT;
}

const char *sb_http_pick_subprotocol(const char *offered, sb_encoding *enc)
{
    *enc = SB_ENC_PROTO;
    const char *p = offered;
    bool any = false;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        const char *start = p;
        while (*p && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        size_t len = (size_t)(p - start);
        if (len == 0) continue;
        any = true;
        if (len == strlen(SB_SUBPROTO_PROTO) &&
            strncmp(start, SB_SUBPROTO_PROTO, len) == 0) {
            *enc = SB_ENC_PROTO;
            return SB_SUBPROTO_PROTO;
        }
        if (len == strlen(SB_SUBPROTO_JSON) &&
            strncmp(start, SB_SUBPROTO_JSON, len) == 0) {
            *enc = SB_ENC_JSON;
            return SB_SUBPROTO_JSON;
        }
    }
    return any ? NULL : "";
}

const char *sb_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 507:
        return "Insufficient Storage";
    default:
        return "Error";
    }
}

int sb_http_respond_head(sb_buf *out, int status, const char *content_type,
                         const char *extra_headers, uint64_t length)
{
    char head[512];
    int len = snprintf(head, sizeof head,
                       "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                       "Content-Length: %" PRIu64 "\r\nConnection: close\r\n"
                       "X-Content-Type-Options: nosniff\r\n",
                       status, sb_http_reason(status), content_type, length);
    if (len < 0 || (size_t)len >= sizeof head) return -ENOSPC;
    int rc = sb_buf_append(out, head, (size_t)len);
    if (rc == 0 && extra_headers)
        rc = sb_buf_append(out, extra_headers, strlen(extra_headers));
    return rc ? rc : sb_buf_append(out, "\r\n", 2);
}

int sb_http_respond_ex(sb_buf *out, int status, const char *content_type,
                       const char *extra_headers, const void *body, size_t n)
{
    int rc = sb_http_respond_head(out, status, content_type, extra_headers, n);
    return rc ? rc : sb_buf_append(out, body, n);
}

int sb_http_respond_continue(sb_buf *out)
{
    static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    return sb_buf_append(out, line, sizeof line - 1);
}

int sb_http_respond(sb_buf *out, int status, const char *content_type,
                    const void *body, size_t n)
{
    return sb_http_respond_ex(out, status, content_type, NULL, body, n);
}

int sb_http_respond_upgrade(sb_buf *out, const char *key, const char *proto,
                            const char *ext)
{
    char accept[SB_WS_ACCEPT_LEN + 1];
    sb_ws_accept_key(key, strlen(key), accept);
    char head[256 + SB_WSDEFLATE_HEADER_BYTES_MAX];
    int len = snprintf(head, sizeof head,
                       "HTTP/1.1 101 Switching Protocols\r\n"
                       "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: %s\r\n%s%s%s%s%s%s\r\n",
                       accept, proto[0] ? "Sec-WebSocket-Protocol: " : "",
                       proto, proto[0] ? "\r\n" : "",
                       ext[0] ? "Sec-WebSocket-Extensions: " : "", ext,
                       ext[0] ? "\r\n" : "");
    return sb_buf_append(out, head, (size_t)len);
}
