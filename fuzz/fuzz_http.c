/* libFuzzer target: the gateway's HTTP/1.1 request parser (sb_http).
 *
 * The first input byte picks the chunk size the rest is fed in (as TCP
 * would split it); once a request is complete, the answers the shell
 * builds from it (subprotocol choice, 101 upgrade, plain response) are
 * built too. Checks: no overread, every parsed field NUL-terminated within
 * its buffer, consumed bytes never more than given, nothing consumed once
 * complete, the head bound honoured. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sb_http.h"
#include "sb_ws.h"

#define FIELD_OK(f) assert(memchr((f), '\0', sizeof(f)) != NULL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t chunk = data[0] ? data[0] : size;
    data++;
    size--;

    sb_http_req r;
    sb_http_req_init(&r);
    size_t off = 0;
    long used = 0;
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;
        used = sb_http_req_feed(&r, (const char *)data + off, n);
        if (used < 0) break;
        assert((size_t)used <= n);
        off += (size_t)used;
        if (r.complete) break;
        if ((size_t)used < n) break; /* the parser stopped short */
    }
    FIELD_OK(r.path);
    FIELD_OK(r.ws_key);
    FIELD_OK(r.ws_protocols);
    FIELD_OK(r.ws_version);
    FIELD_OK(r.origin);
    assert(r.field_len < sizeof r.field);
    if (used < 0 || !r.complete) {
        sb_http_req_clear(&r);
        return 0;
    }
    assert(r.bytes <= SB_HTTP_HEADER_BYTES_MAX);
    assert(sb_http_req_feed(&r, "x", 1) == 0);

    (void)sb_http_req_is_upgrade(&r);
    assert(sb_http_req_method(&r) != NULL);
    sb_encoding enc = SB_ENC_JSON;
    const char *proto = sb_http_pick_subprotocol(r.ws_protocols, &enc);
    assert(!proto || strcmp(proto, "") == 0 ||
           strcmp(proto, SB_SUBPROTO_PROTO) == 0 ||
           strcmp(proto, SB_SUBPROTO_JSON) == 0);
    assert(enc == SB_ENC_PROTO || enc == SB_ENC_JSON);

    sb_buf out = SB_BUF_INIT;
    if (proto && strlen(r.ws_key) == SB_WS_KEY_LEN) {
        assert(sb_http_respond_upgrade(&out, r.ws_key, proto) == 0);
        assert(out.len > 12 && memcmp(out.data, "HTTP/1.1 101", 12) == 0);
        out.len = 0;
    }
    assert(sb_http_respond(&out, 404, "text/plain", r.path, strlen(r.path)) ==
           0);
    sb_buf_free(&out);
    sb_http_req_clear(&r);
    return 0;
}
