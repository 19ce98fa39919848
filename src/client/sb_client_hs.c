/* The client side of the WebSocket opening handshake: URLs, request and
 * the check of the 101 response (http-parser, one bounded buffer). */
#include "sb_client_hs.h"

#include <assert.h>
#include <errno.h>
#include <http_parser.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int sb_client_url_parse(const char *url, sb_client_url *out)
{
    static const char ws[] = "ws://", wss[] = "wss://";
    memset(out, 0, sizeof *out);
    const char *h, *he, *rest;
    if (url && strncasecmp(url, ws, sizeof ws - 1) == 0) {
        h = url + sizeof ws - 1;
    } else if (url && strncasecmp(url, wss, sizeof wss - 1) == 0) {
        h = url + sizeof wss - 1;
        out->tls = true;
    } else {
        return -EINVAL;
    }
    if (*h == '[') {
        he = strchr(h, ']');
        if (!he) return -EINVAL;
        h++;
        rest = he + 1;
    } else {
        he = h + strcspn(h, ":/");
        rest = he;
    }
    size_t hl = (size_t)(he - h);
    if (hl == 0 || hl > SB_CLIENT_HOST_BYTES_MAX) return -EINVAL;
    memcpy(out->host, h, hl);
    out->port = out->tls ? 443 : 80;
    if (*rest == ':') {
        char *end;
        rest++;
        if (*rest < '0' || *rest > '9') return -EINVAL;
        unsigned long port = strtoul(rest, &end, 10);
        if (port == 0 || port > 65535 || (*end && *end != '/')) return -EINVAL;
        out->port = (uint16_t)port;
        rest = end;
    }
    if (*rest == '\0') rest = "/ws";
    if (*rest != '/' || strlen(rest) > SB_CLIENT_PATH_BYTES_MAX) return -EINVAL;
    for (const char *c = rest; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f) return -EINVAL;
    strcpy(out->path, rest);
    return 0;
}

int sb_client_urls_split(char *list, const char **urls, size_t max)
{
    assert(list && urls);
    size_t n = 0;
    for (char *p = list;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        sb_client_url u;
        if (n == max || sb_client_url_parse(p, &u) != 0) return -EINVAL;
        urls[n++] = p;
        if (!comma) break;
        p = comma + 1;
    }
    return (int)n;
}

int sb_client_hs_request(const sb_client_url *url, const char *key,
                         const char *subproto, sb_buf *out)
{
    char req[SB_CLIENT_HS_BYTES_MAX];
    bool v6 = strchr(url->host, ':') != NULL;
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s%s%s:%u\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Protocol: %s\r\n"
                     "\r\n",
                     url->path, v6 ? "[" : "", url->host, v6 ? "]" : "",
                     (unsigned)url->port, key, subproto);
    if (n < 0 || (size_t)n >= sizeof req) return -EINVAL;
    return sb_buf_append(out, req, (size_t)n);
}

/* The headers we check, found by pointer into the response buffer. */
enum { H_UPGRADE, H_CONNECTION, H_ACCEPT, H_PROTOCOL, H_N };

typedef struct hs_state {
    const char *field;
    size_t field_len;
    const char *val;
    size_t val_len;
    bool in_value;
    const char *h[H_N];
    size_t h_len[H_N];
    int h_count[H_N];
    bool done;
} hs_state;

static void hs_header_end(hs_state *s)
{
    static const char *const names[H_N] = {"upgrade", "connection",
                                           "sec-websocket-accept",
                                           "sec-websocket-protocol"};
    if (!s->field) return;
    for (int i = 0; i < H_N; i++) {
        if (s->field_len == strlen(names[i]) &&
            strncasecmp(s->field, names[i], s->field_len) == 0) {
            const char *v = s->val ? s->val : "";
            size_t n = s->val_len;
            while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                n--;
            s->h[i] = v;
            s->h_len[i] = n;
            s->h_count[i]++;
        }
    }
    s->field = s->val = NULL;
    s->field_len = s->val_len = 0;
}

static int hs_on_field(http_parser *p, const char *at, size_t len)
{
    hs_state *s = p->data;
    if (s->in_value || !s->field) {
        hs_header_end(s);
        s->field = at;
        s->field_len = 0;
    }
    s->in_value = false;
    s->field_len += len;
    return 0;
}

static int hs_on_value(http_parser *p, const char *at, size_t len)
{
    hs_state *s = p->data;
    if (!s->in_value) {
        s->val = at;
        s->val_len = 0;
    }
    s->in_value = true;
    s->val_len += len;
    return 0;
}

static int hs_on_headers_complete(http_parser *p)
{
    hs_state *s = p->data;
    hs_header_end(s);
    s->done = true;
    return 1; /* no body */
}

/* True if the comma-separated list v contains token (any case). */
static bool has_token(const char *v, size_t n, const char *token)
{
    size_t tl = strlen(token);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t j = i;
        while (j < n && v[j] != ',')
            j++;
        size_t e = j;
        while (e > i && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - i == tl && strncasecmp(v + i, token, tl) == 0) return true;
        i = j;
    }
    return false;
}

static bool equals(const char *v, size_t n, const char *want)
{
    return v && n == strlen(want) && memcmp(v, want, n) == 0;
}

int sb_client_hs_response(const uint8_t *p, size_t n, const char *key,
                          const char *subproto, int *status)
{
    *status = 0;
    size_t lim = n < SB_CLIENT_HS_BYTES_MAX ? n : SB_CLIENT_HS_BYTES_MAX;
    size_t head = 0;
    for (size_t i = 3; i < lim; i++) {
        if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' &&
            p[i - 3] == '\r') {
            head = i + 1;
            break;
        }
    }
    if (head == 0) return n >= SB_CLIENT_HS_BYTES_MAX ? -EMSGSIZE : 0;

    hs_state s;
    memset(&s, 0, sizeof s);
    http_parser_settings st;
    http_parser_settings_init(&st);
    st.on_header_field = hs_on_field;
    st.on_header_value = hs_on_value;
    st.on_headers_complete = hs_on_headers_complete;
    http_parser hp;
    http_parser_init(&hp, HTTP_RESPONSE);
    hp.data = &s;
    http_parser_execute(&hp, &st, (const char *)p, head);
    if (HTTP_PARSER_ERRNO(&hp) != HPE_OK || !s.done) return -EPROTO;
    *status = (int)hp.status_code;
    if (hp.status_code != 101) return -EPROTO;
    for (int i = 0; i < H_N; i++)
        if (s.h_count[i] != 1) return -EPROTO;
    if (s.h_len[H_UPGRADE] != 9 ||
        strncasecmp(s.h[H_UPGRADE], "websocket", 9) != 0)
        return -EPROTO;
    if (!has_token(s.h[H_CONNECTION], s.h_len[H_CONNECTION], "upgrade"))
        return -EPROTO;
    char accept[SB_WS_ACCEPT_LEN + 1];
    sb_ws_accept_key(key, strlen(key), accept);
    if (!equals(s.h[H_ACCEPT], s.h_len[H_ACCEPT], accept)) return -EPROTO;
    if (!equals(s.h[H_PROTOCOL], s.h_len[H_PROTOCOL], subproto)) return -EPROTO;
    return (int)head;
}
