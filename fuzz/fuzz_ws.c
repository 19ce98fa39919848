/* libFuzzer target: WebSocket framing (sb_ws over wslay), server side.
 *
 * The first byte picks one of three modes:
 *  0  raw bytes fed to a server connection in chunks (the second byte sets
 *     the message bound, the third the chunk size), with server messages,
 *     pings and a close queued and pulled in between;
 *  1  a sequence of frames built from the input (FIN, RSV, opcode, mask or
 *     not, the three length forms, the masking key): fragmentation and
 *     control frames interleaved as a client could send them;
 *  2  a round trip: a client connection sends the input's messages (text
 *     when it is UTF-8), the server must receive exactly them, in order,
 *     and echo them back.
 * Bit 7 of the first byte turns permessage-deflate on for the connections
 * (raw and built frames then may carry RSV1 with any "compressed" bytes;
 * the round trip compresses every message of 16 bytes and more), and the
 * connections of one input share an environment (wslay contexts lent and
 * given back between frames).
 * Checks: no memory error, no callback after a protocol error is
 * reported, delivered messages within the bound (decompressed ones too),
 * round trips exact, no context held by a connection between frames. */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sb_utf8.h"
#include "sb_ws.h"

#define RT_MSGS_MAX 64

typedef struct peer {
    sb_ws *ws;
    uint64_t max;
    size_t n_msgs;
    /* Round trip: what must arrive, in order. */
    const uint8_t *want[RT_MSGS_MAX];
    size_t want_len[RT_MSGS_MAX];
    bool want_text[RT_MSGS_MAX];
    size_t n_want;
    uint32_t rng;
} peer;

static void on_msg(void *ud, bool text, const uint8_t *p, size_t n)
{
    peer *e = ud;
    assert(n <= e->max);
    if (n) {
        /* Touch every byte: ASan checks the whole message is readable. */
        volatile uint8_t x = 0;
        for (size_t i = 0; i < n; i++)
            x ^= p[i];
        (void)x;
    }
    if (e->n_want) {
        assert(e->n_msgs < e->n_want);
        assert(text == e->want_text[e->n_msgs]);
        assert(n == e->want_len[e->n_msgs]);
        assert(n == 0 || memcmp(p, e->want[e->n_msgs], n) == 0);
    }
    e->n_msgs++;
}

static void rand_bytes(void *ud, uint8_t *p, size_t n)
{
    peer *e = ud;
    for (size_t i = 0; i < n; i++) {
        e->rng = e->rng * 1103515245u + 12345u;
        p[i] = (uint8_t)(e->rng >> 16);
    }
}

static const sb_ws_cbs CBS = {.on_msg = on_msg, .rand_bytes = rand_bytes};

/* The input's environment and whether deflate is on. */
static sb_ws_env *g_env;
static bool g_deflate;

static sb_ws *ws_new(bool client, uint64_t max, peer *e)
{
    sb_ws_config cfg = {.client = client,
                        .msg_bytes_max = max,
                        .deflate = {.on = g_deflate, .window_bits = 15},
                        .deflate_min_bytes = 16};
    sb_ws *ws = NULL;
    (void)sb_ws_new(g_env, &cfg, &CBS, e, &ws);
    return ws;
}

/* Feeds b to e in chunks, pulling e's output after each; stops at the
 * first protocol error. Returns the feed's result. */
static int feed(peer *e, const uint8_t *p, size_t n, size_t chunk, sb_buf *out)
{
    for (size_t off = 0; off < n;) {
        size_t k = n - off < chunk ? n - off : chunk;
        int rc = sb_ws_feed(e->ws, p + off, k);
        assert(sb_ws_pull(e->ws, out) == 0);
        if (rc != 0) {
            assert(rc == -EPROTO);
            return rc;
        }
        off += k;
    }
    return 0;
}

static void mode_raw(const uint8_t *d, size_t n, uint64_t max, size_t chunk)
{
    peer s = {.max = max};
    if (!(s.ws = ws_new(false, max, &s))) return;
    sb_buf out = SB_BUF_INIT;
    int rc = 0;
    for (size_t off = 0, i = 0; off < n && rc == 0; i++) {
        size_t k = n - off < chunk ? n - off : chunk;
        rc = feed(&s, d + off, k, k, &out);
        off += k;
        if (i % 3 == 0) sb_ws_send(s.ws, i & 1, d, k < 300 ? k : 300);
        if (i % 5 == 4) sb_ws_ping(s.ws);
        assert(sb_ws_pull(s.ws, &out) == 0);
    }
    sb_ws_close(s.ws, SB_WS_CLOSE_NORMAL, "bye");
    assert(sb_ws_pull(s.ws, &out) == 0);
    (void)sb_ws_done(s.ws);
    (void)sb_ws_close_received(s.ws);
    (void)sb_ws_close_code(s.ws);
    (void)sb_ws_queued_bytes(s.ws);
    sb_buf_free(&out);
    sb_ws_free(s.ws);
}

typedef struct rd {
    const uint8_t *p;
    size_t n;
} rd;

static bool take(rd *r, void *dst, size_t k)
{
    if (r->n < k) return false;
    memcpy(dst, r->p, k);
    r->p += k;
    r->n -= k;
    return true;
}

/* Builds the frames the input describes into out. */
static void build_frames(rd *r, sb_buf *out)
{
    uint8_t op, lb;
    while (take(r, &op, 1) && take(r, &lb, 1)) {
        bool masked = !(op & 0x20);
        uint8_t b0 =
            (uint8_t)((op & 0x80) | (op & 0x10 ? 0x40 : 0) | (op & 0x0F));
        size_t len = lb & 0x7F;
        uint8_t form = lb & 0x7F;
        uint8_t hdr[14];
        size_t h = 0;
        hdr[h++] = b0;
        if (form >= 126) {
            uint8_t l2[2] = {0, 0};
            take(r, l2, 2);
            len = (size_t)l2[0] << 8 | l2[1];
        }
        hdr[h++] = (uint8_t)((masked ? 0x80 : 0) | form);
        if (form == 126) {
            hdr[h++] = (uint8_t)(len >> 8);
            hdr[h++] = (uint8_t)len;
        } else if (form == 127) {
            /* The 64-bit form; its top bit (invalid) set when the input
             * says so. */
            for (int i = 7; i >= 0; i--)
                hdr[h++] = i < 2 ? (uint8_t)(len >> (8 * i)) : 0;
            if (lb & 0x80) hdr[h - 8] = 0x80;
        }
        uint8_t key[4] = {0, 0, 0, 0};
        if (masked) {
            take(r, key, 4);
            memcpy(hdr + h, key, 4);
            h += 4;
        }
        sb_buf_append(out, hdr, h);
        size_t k = len < r->n ? len : r->n;
        for (size_t i = 0; i < k; i++) {
            uint8_t c = (uint8_t)(r->p[i] ^ key[i % 4]);
            sb_buf_append(out, &c, 1);
        }
        r->p += k;
        r->n -= k;
    }
}

static void mode_frames(const uint8_t *d, size_t n, uint64_t max, size_t chunk)
{
    rd r = {d, n};
    sb_buf in = SB_BUF_INIT, out = SB_BUF_INIT;
    build_frames(&r, &in);
    peer s = {.max = max};
    if ((s.ws = ws_new(false, max, &s)) != NULL) {
        feed(&s, in.data, in.len, chunk, &out);
        (void)sb_ws_done(s.ws);
        sb_ws_free(s.ws);
    }
    sb_buf_free(&in);
    sb_buf_free(&out);
}

static void mode_roundtrip(const uint8_t *d, size_t n, size_t chunk)
{
    peer c = {.max = 1 << 20, .rng = 7};
    peer s = {.max = 1 << 20};
    if (!(c.ws = ws_new(true, c.max, &c))) return;
    if (!(s.ws = ws_new(false, s.max, &s))) {
        sb_ws_free(c.ws);
        return;
    }
    rd r = {d, n};
    uint8_t lb;
    while (s.n_want < RT_MSGS_MAX && take(&r, &lb, 1)) {
        size_t k = (size_t)(lb >> 1) * 3;
        if (k > r.n) k = r.n;
        /* Text must be UTF-8 (RFC 6455 §8.1: wslay fails it otherwise). */
        bool text = (lb & 1) && sb_utf8_valid((const char *)r.p, k);
        size_t i = s.n_want++;
        s.want[i] = c.want[i] = r.p;
        s.want_len[i] = c.want_len[i] = k;
        s.want_text[i] = c.want_text[i] = text;
        assert(sb_ws_send(c.ws, text, r.p, k) == 0);
        r.p += k;
        r.n -= k;
    }
    c.n_want = s.n_want;
    sb_buf wire = SB_BUF_INIT, back = SB_BUF_INIT;
    assert(sb_ws_pull(c.ws, &wire) == 0);
    assert(feed(&s, wire.data, wire.len, chunk, &back) == 0);
    assert(s.n_msgs == s.n_want);
    for (size_t i = 0; i < s.n_want; i++)
        assert(sb_ws_send(s.ws, s.want_text[i], s.want[i], s.want_len[i]) == 0);
    assert(sb_ws_pull(s.ws, &back) == 0);
    wire.len = 0;
    assert(feed(&c, back.data, back.len, chunk, &wire) == 0);
    assert(c.n_msgs == c.n_want);
    /* Both between frames, nothing queued: neither holds a context. */
    assert(!sb_ws_busy(c.ws) && !sb_ws_busy(s.ws));
    sb_buf_free(&wire);
    sb_buf_free(&back);
    sb_ws_free(c.ws);
    sb_ws_free(s.ws);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    uint8_t mode = (data[0] & 0x7f) % 3;
    g_deflate = data[0] & 0x80;
    if (sb_ws_env_new(NULL, &g_env) != 0) return 0;
    uint64_t max = (uint64_t)data[1] * 97 + 1;
    size_t chunk = data[2] ? data[2] : size;
    data += 3;
    size -= 3;
    switch (mode) {
    case 0:
        mode_raw(data, size, max, chunk);
        break;
    case 1:
        mode_frames(data, size, max, chunk);
        break;
    default:
        mode_roundtrip(data, size, chunk);
        break;
    }
    sb_ws_env_stats st;
    sb_ws_env_get_stats(g_env, &st);
    assert(st.engines_live == 0);
    sb_ws_env_free(g_env);
    g_env = NULL;
    return 0;
}
