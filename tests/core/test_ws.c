/* sb_ws and sb_wsdeflate: wslay's context lent only while a connection
 * reads a frame (idle connections hold none, a pool serves many, partial
 * and fragmented frames keep theirs, pings are answered, closes framed
 * without it), and permessage-deflate (round trips in both frame kinds,
 * the size from which messages go compressed, no context carried from one
 * message to the next, the decompressed size bounded like any message:
 * a zip bomb closes with 1009; data that does not inflate and invalid
 * UTF-8 close with 1007; RSV1 without the extension with 1002); frames
 * that break RFC 6455 answered with a close carrying 1002 whether their
 * bytes come at once or one at a time, and nothing after them read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "sb_ws.h"
#include "sb_wsdeflate.h"

#define MSGS_MAX 8
#define MSG_KEEP 70000

typedef struct end {
    sb_ws *ws;
    int n;
    bool text[MSGS_MAX];
    size_t len[MSGS_MAX];
    uint8_t *data[MSGS_MAX];
} end;

static void on_msg(void *ud, bool text, const uint8_t *p, size_t n)
{
    end *e = ud;
    assert_true(e->n < MSGS_MAX);
    e->text[e->n] = text;
    e->len[e->n] = n;
    e->data[e->n] = malloc(n + 1);
    assert_non_null(e->data[e->n]);
    memcpy(e->data[e->n], p, n);
    e->n++;
}

static void rand_bytes(void *ud, uint8_t *p, size_t n)
{
    (void)ud;
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(0x5a + i * 31);
}

static const sb_ws_cbs CBS = {.on_msg = on_msg, .rand_bytes = rand_bytes};

static void end_open(end *e, sb_ws_env *env, bool client, uint32_t max,
                     bool deflate)
{
    memset(e, 0, sizeof *e);
    sb_ws_config cfg = {.client = client,
                        .msg_bytes_max = max,
                        .deflate = {.on = deflate, .window_bits = 15},
                        .deflate_min_bytes = 512};
    assert_int_equal(sb_ws_new(env, &cfg, &CBS, e, &e->ws), 0);
}

static void end_close(end *e)
{
    for (int i = 0; i < e->n; i++)
        free(e->data[i]);
    sb_ws_free(e->ws);
}

/* Pulls from's output into b. */
static void pull(end *from, sb_buf *b)
{
    b->len = 0;
    assert_int_equal(sb_ws_pull(from->ws, b), 0);
}

/* Moves everything from one end to the other, in chunks. */
static void wire(end *from, end *to, size_t chunk)
{
    sb_buf b = SB_BUF_INIT;
    pull(from, &b);
    for (size_t off = 0; off < b.len; off += chunk) {
        size_t n = b.len - off < chunk ? b.len - off : chunk;
        sb_ws_feed(to->ws, b.data + off, n);
    }
    sb_buf_free(&b);
}

/* A frame as a client sends it: first byte (FIN, RSV, opcode), masked. */
static void client_frame(sb_buf *out, uint8_t first, const uint8_t *p, size_t n)
{
    uint8_t h[14];
    size_t k = 0;
    h[k++] = first;
    if (n < 126) {
        h[k++] = (uint8_t)(0x80 | n);
    } else if (n < 65536) {
        h[k++] = 0x80 | 126;
        h[k++] = (uint8_t)(n >> 8);
        h[k++] = (uint8_t)n;
    } else {
        h[k++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            h[k++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    static const uint8_t key[4] = {1, 2, 3, 4};
    memcpy(h + k, key, 4);
    k += 4;
    assert_int_equal(sb_buf_append(out, h, k), 0);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i] ^ key[i & 3];
        assert_int_equal(sb_buf_append(out, &c, 1), 0);
    }
}

static size_t live(sb_ws_env *env)
{
    sb_ws_env_stats st;
    sb_ws_env_get_stats(env, &st);
    return st.engines_live;
}

/* The close code in the first close frame of b (server to client). */
static int close_code_in(const sb_buf *b)
{
    size_t off = 0;
    while (off + 2 <= b->len) {
        uint8_t op = b->data[off] & 0x0f;
        size_t n = b->data[off + 1] & 0x7f, h = 2;
        if (n == 126) {
            n = (size_t)b->data[off + 2] << 8 | b->data[off + 3];
            h = 4;
        }
        if (op == 0x8) return b->data[off + h] << 8 | b->data[off + h + 1];
        off += h + n;
    }
    return -1;
}

static void test_idle_holds_no_context(void **state)
{
    (void)state;
    sb_ws_env *env;
    assert_int_equal(sb_ws_env_new(NULL, &env), 0);
    /* Many server connections of one environment, one at a time busy:
     * one context serves them all. */
    enum { N = 50 };
    end c[N], s[N];
    for (int i = 0; i < N; i++) {
        end_open(&c[i], NULL, true, 1 << 20, false);
        end_open(&s[i], env, false, 1 << 20, false);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(sb_ws_send(c[i].ws, true, (const uint8_t *)"hello", 5),
                         0);
        wire(&c[i], &s[i], 3);
        assert_int_equal(s[i].n, 1);
        assert_false(sb_ws_busy(s[i].ws));
        assert_int_equal(sb_ws_send(s[i].ws, false, (const uint8_t *)"x", 1),
                         0);
        assert_int_equal(sb_ws_ping(s[i].ws), 0);
        wire(&s[i], &c[i], 4096);
        assert_int_equal(c[i].n, 1);
        assert_false(sb_ws_busy(s[i].ws));
    }
    sb_ws_env_stats st;
    sb_ws_env_get_stats(env, &st);
    assert_int_equal(st.engines_live, 0);
    assert_int_equal(st.engines_made, 1);
    for (int i = 0; i < N; i++) {
        end_close(&c[i]);
        end_close(&s[i]);
    }
    sb_ws_env_free(env);
}

static void test_partial_and_fragmented(void **state)
{
    (void)state;
    sb_ws_env *env;
    assert_int_equal(sb_ws_env_new(NULL, &env), 0);
    end s;
    end_open(&s, env, false, 1 << 20, false);
    sb_buf b = SB_BUF_INIT;
    /* Half a frame keeps the context; the rest gives it back. */
    client_frame(&b, 0x82, (const uint8_t *)"0123456789", 10);
    sb_ws_feed(s.ws, b.data, 5);
    assert_true(sb_ws_busy(s.ws));
    assert_int_equal(live(env), 1);
    sb_ws_feed(s.ws, b.data + 5, b.len - 5);
    assert_false(sb_ws_busy(s.ws));
    assert_int_equal(s.n, 1);
    assert_memory_equal(s.data[0], "0123456789", 10);
    /* A fragmented message with a ping between its fragments: held until
     * the last fragment, the ping answered at once. */
    b.len = 0;
    client_frame(&b, 0x01, (const uint8_t *)"abc", 3); /* text, not FIN */
    sb_ws_feed(s.ws, b.data, b.len);
    assert_true(sb_ws_busy(s.ws));
    b.len = 0;
    client_frame(&b, 0x89, (const uint8_t *)"p", 1); /* ping */
    sb_ws_feed(s.ws, b.data, b.len);
    sb_buf out = SB_BUF_INIT;
    assert_int_equal(sb_ws_pull(s.ws, &out), 0);
    assert_int_equal(out.len, 3);
    assert_int_equal(out.data[0], 0x8a); /* the pong */
    assert_true(sb_ws_busy(s.ws));
    b.len = 0;
    client_frame(&b, 0x80, (const uint8_t *)"def", 3); /* continuation, FIN */
    sb_ws_feed(s.ws, b.data, b.len);
    assert_false(sb_ws_busy(s.ws));
    assert_int_equal(s.n, 2);
    assert_true(s.text[1]);
    assert_int_equal(s.len[1], 6);
    assert_memory_equal(s.data[1], "abcdef", 6);
    /* A ping to an idle connection: answered, nothing kept. */
    b.len = 0;
    client_frame(&b, 0x89, NULL, 0);
    sb_ws_feed(s.ws, b.data, b.len);
    out.len = 0;
    assert_int_equal(sb_ws_pull(s.ws, &out), 0);
    assert_int_equal(out.len, 2);
    assert_int_equal(out.data[0], 0x8a);
    assert_false(sb_ws_busy(s.ws));
    assert_int_equal(live(env), 0);
    sb_buf_free(&b);
    sb_buf_free(&out);
    end_close(&s);
    sb_ws_env_free(env);
}

static void test_close_without_context(void **state)
{
    (void)state;
    sb_ws_env *env;
    assert_int_equal(sb_ws_env_new(NULL, &env), 0);
    end c, s;
    end_open(&c, NULL, true, 1 << 20, false);
    end_open(&s, env, false, 1 << 20, false);
    /* The server closes while idle: the frame is written without a
     * context; the client's answer completes the handshake (once). */
    assert_int_equal(sb_ws_close(s.ws, SB_WS_CLOSE_GOING_AWAY, "bye"), 0);
    assert_false(sb_ws_busy(s.ws));
    assert_int_equal(sb_ws_send(s.ws, true, (const uint8_t *)"x", 1), -EPIPE);
    assert_int_equal(sb_ws_close(s.ws, 1000, ""), -EPIPE);
    wire(&s, &c, 4096);
    assert_true(sb_ws_close_received(c.ws));
    assert_int_equal(sb_ws_close_code(c.ws), SB_WS_CLOSE_GOING_AWAY);
    assert_false(sb_ws_done(s.ws));
    sb_buf b = SB_BUF_INIT;
    pull(&c, &b);
    assert_int_equal(sb_ws_feed(s.ws, b.data, b.len), 0);
    sb_buf out = SB_BUF_INIT;
    assert_int_equal(sb_ws_pull(s.ws, &out), 0);
    assert_int_equal(out.len, 0); /* no second close frame */
    assert_true(sb_ws_done(s.ws));
    assert_true(sb_ws_done(c.ws));
    sb_buf_free(&b);
    sb_buf_free(&out);
    end_close(&c);
    end_close(&s);
    assert_int_equal(live(env), 0);
    sb_ws_env_free(env);
}

/* Some text that compresses like chat: words from a small vocabulary. */
static void chatty(uint8_t *p, size_t n, unsigned seed)
{
    static const char *words[] = {"hello ",  "order ",  "refund ", "please ",
                                  "thanks ", "status ", "when ",   "my ",
                                  "the ",    "agent ",  "ticket ", "number "};
    size_t k = 0;
    while (k < n) {
        seed = seed * 1103515245u + 12345u;
        const char *w = words[(seed >> 16) % 12];
        for (size_t i = 0; w[i] && k < n; i++)
            p[k++] = (uint8_t)w[i];
    }
}

static void test_deflate_round_trip(void **state)
{
    (void)state;
    sb_ws_env *env;
    assert_int_equal(sb_ws_env_new(NULL, &env), 0);
    static uint8_t small[100], big[2000], noise[2000];
    chatty(small, sizeof small, 1);
    chatty(big, sizeof big, 2);
    uint64_t x = 88172645463325252ull; /* xorshift64: incompressible */
    for (size_t i = 0; i < sizeof noise; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise[i] = (uint8_t)(x >> 32);
    }
    size_t chunks[] = {1, 7, 4096};
    for (size_t k = 0; k < 3; k++) {
        end c, s;
        end_open(&c, env, true, 1 << 20, true);
        end_open(&s, env, false, 1 << 20, true);
        for (int dir = 0; dir < 2; dir++) {
            end *from = dir ? &s : &c, *to = dir ? &c : &s;
            /* Below the minimum: plain. */
            assert_int_equal(sb_ws_send(from->ws, true, small, sizeof small),
                             0);
            sb_buf b = SB_BUF_INIT;
            pull(from, &b);
            assert_int_equal(b.data[0], 0x81);
            assert_int_equal(sb_ws_feed(to->ws, b.data, b.len), 0);
            /* Above: compressed (RSV1), much smaller, both frame kinds. */
            assert_int_equal(sb_ws_send(from->ws, false, big, sizeof big), 0);
            pull(from, &b);
            assert_int_equal(b.data[0], 0xc2);
            assert_true(b.len < sizeof big / 4);
            for (size_t off = 0; off < b.len; off += chunks[k]) {
                size_t n = b.len - off < chunks[k] ? b.len - off : chunks[k];
                assert_int_equal(sb_ws_feed(to->ws, b.data + off, n), 0);
            }
            assert_int_equal(sb_ws_send(from->ws, true, big, sizeof big), 0);
            pull(from, &b);
            assert_int_equal(b.data[0], 0xc1);
            assert_int_equal(sb_ws_feed(to->ws, b.data, b.len), 0);
            /* What deflate cannot shrink goes as it is. */
            assert_int_equal(sb_ws_send(from->ws, false, noise, sizeof noise),
                             0);
            pull(from, &b);
            assert_int_equal(b.data[0], 0x82);
            assert_int_equal(sb_ws_feed(to->ws, b.data, b.len), 0);
            sb_buf_free(&b);
            assert_int_equal(to->n, 4);
            assert_int_equal(to->len[0], sizeof small);
            assert_memory_equal(to->data[0], small, sizeof small);
            assert_false(to->text[1]);
            assert_int_equal(to->len[1], sizeof big);
            assert_memory_equal(to->data[1], big, sizeof big);
            assert_true(to->text[2]);
            assert_memory_equal(to->data[2], big, sizeof big);
            assert_int_equal(to->len[3], sizeof noise);
            assert_memory_equal(to->data[3], noise, sizeof noise);
        }
        assert_false(sb_ws_busy(c.ws) || sb_ws_busy(s.ws));
        end_close(&c);
        end_close(&s);
    }
    sb_ws_env_stats st;
    sb_ws_env_get_stats(env, &st);
    assert_int_equal(st.engines_live, 0);
    assert_int_equal(st.deflated, 12);
    assert_int_equal(st.inflated, 12);
    assert_true(st.deflate_out_bytes * 4 < st.deflate_in_bytes);
    sb_ws_env_free(env);
}

/* Without context takeover, the same message compresses to the same bytes
 * every time, and each decompresses alone in a fresh environment. */
static void test_deflate_no_context(void **state)
{
    (void)state;
    static uint8_t big[3000];
    chatty(big, sizeof big, 3);
    end s;
    end_open(&s, NULL, false, 1 << 20, true);
    sb_buf a = SB_BUF_INIT, b = SB_BUF_INIT;
    assert_int_equal(sb_ws_send(s.ws, false, big, sizeof big), 0);
    pull(&s, &a);
    assert_int_equal(sb_ws_send(s.ws, false, big, sizeof big), 0);
    pull(&s, &b);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    end c;
    end_open(&c, NULL, true, 1 << 20, true);
    assert_int_equal(sb_ws_feed(c.ws, b.data, b.len), 0);
    assert_int_equal(c.n, 1);
    assert_memory_equal(c.data[0], big, sizeof big);
    sb_buf_free(&a);
    sb_buf_free(&b);
    end_close(&s);
    end_close(&c);
}

/* Sends payload p (already compressed or not) as one client frame with
 * first byte first to a server bounded at max; returns the close code the
 * server answers with (-1: none) and how many messages it delivered. */
static int server_takes(uint8_t first, const uint8_t *p, size_t n, uint32_t max,
                        bool deflate, int *delivered)
{
    end s;
    end_open(&s, NULL, false, max, deflate);
    sb_buf b = SB_BUF_INIT, out = SB_BUF_INIT;
    client_frame(&b, first, p, n);
    sb_ws_feed(s.ws, b.data, b.len);
    assert_int_equal(sb_ws_pull(s.ws, &out), 0);
    int code = close_code_in(&out);
    if (code >= 0) assert_true(sb_ws_done(s.ws));
    *delivered = s.n;
    sb_buf_free(&b);
    sb_buf_free(&out);
    end_close(&s);
    return code;
}

static void test_deflate_bounds(void **state)
{
    (void)state;
    sb_wsdeflate *z;
    assert_int_equal(sb_wsdeflate_new(6, &z), 0);
    /* A zip bomb: 16 MiB of zeros in a few KiB, to a server bounded at
     * 64 KiB: stopped at the bound, 1009, nothing delivered. */
    size_t bomb_n = 16u << 20;
    uint8_t *zeros = calloc(1, bomb_n);
    assert_non_null(zeros);
    sb_buf bomb = SB_BUF_INIT;
    assert_int_equal(sb_wsdeflate_compress(z, 15, zeros, bomb_n, &bomb), 0);
    assert_true(bomb.len < 65536 / 2);
    int n;
    assert_int_equal(server_takes(0xc2, bomb.data, bomb.len, 65536, true, &n),
                     SB_WS_CLOSE_TOO_BIG);
    assert_int_equal(n, 0);
    sb_buf out = SB_BUF_INIT;
    assert_int_equal(
        sb_wsdeflate_decompress(z, bomb.data, bomb.len, 65536, &out),
        -EMSGSIZE);
    assert_int_equal(out.len, 0);
    /* Exactly the bound passes; one byte more does not. */
    sb_buf m = SB_BUF_INIT;
    assert_int_equal(sb_wsdeflate_compress(z, 15, zeros, 65536, &m), 0);
    assert_int_equal(server_takes(0xc2, m.data, m.len, 65536, true, &n), -1);
    assert_int_equal(n, 1);
    m.len = 0;
    assert_int_equal(sb_wsdeflate_compress(z, 15, zeros, 65537, &m), 0);
    assert_int_equal(server_takes(0xc2, m.data, m.len, 65536, true, &n),
                     SB_WS_CLOSE_TOO_BIG);
    assert_int_equal(n, 0);
    /* Not deflate at all (a reserved block type): 1007. */
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x12};
    assert_int_equal(server_takes(0xc2, junk, sizeof junk, 65536, true, &n),
                     SB_WS_CLOSE_BAD_DATA);
    assert_int_equal(n, 0);
    assert_int_equal(sb_wsdeflate_decompress(z, junk, sizeof junk, 65536, &out),
                     -EBADMSG);
    /* Compressed text that is not UTF-8: 1007 as for plain text. */
    static const uint8_t bad_utf8[600] = {0xc3, 0x28};
    m.len = 0;
    assert_int_equal(
        sb_wsdeflate_compress(z, 15, bad_utf8, sizeof bad_utf8, &m), 0);
    assert_int_equal(server_takes(0xc1, m.data, m.len, 65536, true, &n),
                     SB_WS_CLOSE_BAD_DATA);
    /* RSV1 without the extension: a protocol error, 1002. */
    assert_int_equal(server_takes(0xc2, m.data, m.len, 65536, false, &n),
                     SB_WS_CLOSE_PROTOCOL);
    assert_int_equal(n, 0);
    /* A peer that ends its message with a final block (BFINAL) is read. */
    static uint8_t text[1000];
    chatty(text, sizeof text, 4);
    uint8_t fin[1100];
    uLongf fin_n = sizeof fin;
    z_stream zs = {0};
    assert_int_equal(
        deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = text;
    zs.avail_in = sizeof text;
    zs.next_out = fin;
    zs.avail_out = (uInt)fin_n;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    fin_n = sizeof fin - zs.avail_out;
    deflateEnd(&zs);
    out.len = 0;
    assert_int_equal(sb_wsdeflate_decompress(z, fin, fin_n, 65536, &out), 0);
    assert_int_equal(out.len, sizeof text);
    assert_memory_equal(out.data, text, sizeof text);
    /* A smaller window (server_max_window_bits) still reads back. */
    m.len = 0;
    assert_int_equal(sb_wsdeflate_compress(z, 9, text, sizeof text, &m), 0);
    out.len = 0;
    assert_int_equal(sb_wsdeflate_decompress(z, m.data, m.len, 65536, &out), 0);
    assert_memory_equal(out.data, text, sizeof text);
    sb_buf_free(&m);
    sb_buf_free(&out);
    sb_buf_free(&bomb);
    free(zeros);
    sb_wsdeflate_free(z);
}

/* ---- frames that break RFC 6455 ------------------------------------------
 */

static int msgs; /* data messages delivered */

static void count_msg(void *ud, bool text, const uint8_t *p, size_t n)
{
    (void)ud;
    (void)text;
    (void)p;
    (void)n;
    msgs++;
}

static const sb_ws_cbs COUNT_CBS = {.on_msg = count_msg,
                                    .rand_bytes = rand_bytes};

/* A masked frame from a client: opcode op, FIN fin, payload length len
 * encoded as written (len7 is the 7-bit field; ext its extension, big
 * endian, of ext_n bytes), then the mask and n_payload bytes of payload
 * (zeros masked with the zero key). Returns the bytes written to out. */
static size_t raw_frame(uint8_t *out, uint8_t op, bool fin, uint8_t len7,
                        uint64_t ext, size_t ext_n, size_t n_payload)
{
    size_t k = 0;
    out[k++] = (uint8_t)((fin ? 0x80 : 0) | op);
    out[k++] = (uint8_t)(0x80 | len7);
    for (size_t i = ext_n; i > 0; i--)
        out[k++] = (uint8_t)(ext >> (8 * (i - 1)));
    memset(out + k, 0, 4 + n_payload); /* mask key 0, payload zeros */
    return k + 4 + n_payload;
}

/* Feeds p to a new server connection (all at once, or one byte at a time
 * with bytewise) after a valid text message, and returns the status code
 * of the close frame it answers with (0: a close without one, -1: no
 * close at all). */
static int close_code_for(const uint8_t *p, size_t n, bool bytewise)
{
    sb_ws *ws = NULL;
    sb_ws_config cfg = {.msg_bytes_max = 1 << 20};
    assert_int_equal(sb_ws_new(NULL, &cfg, &COUNT_CBS, NULL, &ws), 0);
    msgs = 0;
    uint8_t ok[32];
    size_t okn = raw_frame(ok, 0x1, true, 2, 0, 0, 2);
    ok[okn - 2] = 'h';
    ok[okn - 1] = 'i';
    assert_int_equal(sb_ws_feed(ws, ok, okn), 0);
    assert_int_equal(msgs, 1);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i += bytewise ? 1 : n)
        rc = sb_ws_feed(ws, p + i, bytewise ? 1 : n);
    assert_int_equal(rc, -EPROTO);
    /* Nothing more is read. */
    assert_int_equal(sb_ws_feed(ws, ok, okn), -EPROTO);
    assert_int_equal(msgs, 1);
    sb_buf out = SB_BUF_INIT;
    assert_int_equal(sb_ws_pull(ws, &out), 0);
    int code = -1;
    /* The server's frames are unmasked: find the close (opcode 8). */
    for (size_t i = 0; i + 2 <= out.len;) {
        uint8_t op = out.data[i] & 0x0f, len = out.data[i + 1] & 0x7f;
        if (op == 0x8) {
            code = len >= 2 ? out.data[i + 2] << 8 | out.data[i + 3] : 0;
            break;
        }
        i += 2 + len;
    }
    sb_buf_free(&out);
    sb_ws_free(ws);
    return code;
}

static void expect_1002(const uint8_t *p, size_t n)
{
    assert_int_equal(close_code_for(p, n, false), SB_WS_CLOSE_PROTOCOL);
    assert_int_equal(close_code_for(p, n, true), SB_WS_CLOSE_PROTOCOL);
}

static void test_ping_fragmented(void **state)
{
    (void)state;
    uint8_t b[32];
    expect_1002(b, raw_frame(b, 0x9, false, 0, 0, 0, 0));
}

static void test_control_over_125(void **state)
{
    (void)state;
    uint8_t b[256];
    expect_1002(b, raw_frame(b, 0x9, true, 126, 126, 2, 126));
    expect_1002(b, raw_frame(b, 0xA, true, 126, 200, 2, 200));
}

static void test_close_one_byte(void **state)
{
    (void)state;
    uint8_t b[32];
    expect_1002(b, raw_frame(b, 0x8, true, 1, 0, 0, 1));
}

static void test_length_top_bit(void **state)
{
    (void)state;
    uint8_t b[32];
    expect_1002(b, raw_frame(b, 0x2, true, 127, 1ull << 63 | 70000, 8, 0));
}

static void test_length_not_shortest(void **state)
{
    (void)state;
    uint8_t b[32];
    expect_1002(b, raw_frame(b, 0x2, true, 126, 5, 2, 0));
    expect_1002(b, raw_frame(b, 0x2, true, 127, 300, 8, 0));
}

/* What RFC 6455 allows still passes: a 125-byte ping, a close with a
 * status, a 64-bit length in its shortest form, a message in fragments. */
static void test_valid_frames_pass(void **state)
{
    (void)state;
    sb_ws *ws = NULL;
    sb_ws_config cfg = {.msg_bytes_max = 1 << 20};
    assert_int_equal(sb_ws_new(NULL, &cfg, &COUNT_CBS, NULL, &ws), 0);
    msgs = 0;
    static uint8_t b[70000 + 32];
    size_t n = raw_frame(b, 0x9, true, 125, 0, 0, 125);
    assert_int_equal(sb_ws_feed(ws, b, n), 0);
    n = raw_frame(b, 0x2, true, 127, 70000, 8, 70000);
    for (size_t i = 0; i < n; i += 1000)
        assert_int_equal(sb_ws_feed(ws, b + i, n - i < 1000 ? n - i : 1000), 0);
    n = raw_frame(b, 0x1, false, 1, 0, 0, 1);
    n += raw_frame(b + n, 0x0, true, 1, 0, 0, 1);
    assert_int_equal(sb_ws_feed(ws, b, n), 0);
    assert_int_equal(msgs, 2);
    n = raw_frame(b, 0x8, true, 2, 0, 0, 2);
    b[n - 2] = 0x03; /* 1000 */
    b[n - 1] = 0xe8;
    assert_int_equal(sb_ws_feed(ws, b, n), 0);
    assert_true(sb_ws_close_received(ws));
    assert_int_equal(sb_ws_close_code(ws), 1000);
    sb_ws_free(ws);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_holds_no_context),
        cmocka_unit_test(test_partial_and_fragmented),
        cmocka_unit_test(test_close_without_context),
        cmocka_unit_test(test_deflate_round_trip),
        cmocka_unit_test(test_deflate_no_context),
        cmocka_unit_test(test_deflate_bounds),
        cmocka_unit_test(test_ping_fragmented),
        cmocka_unit_test(test_control_over_125),
        cmocka_unit_test(test_close_one_byte),
        cmocka_unit_test(test_length_top_bit),
        cmocka_unit_test(test_length_not_shortest),
        cmocka_unit_test(test_valid_frames_pass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
