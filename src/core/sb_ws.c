/* WebSocket framing over wslay, fed and drained through memory buffers,
 * with wslay's context lent to a connection only while it is needed. */
#include "sb_ws.h"

#include <assert.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <wslay/wslay.h>

#include "sb_b64.h"
#include "sb_utf8.h"

/* Scratch buffers grown past this by one large message are given back. */
#define SCRATCH_KEEP_BYTES (256 * 1024)

/* The longest frame header: 2 bytes, 8 of extended length, 4 of mask. */
#define WS_HEADER_BYTES_MAX 14

/* A wslay context and what it reads from. wslay's user_data is the
 * engine, which points at the connection it is lent to. */
typedef struct engine {
    wslay_event_context_ptr ctx;
    sb_ws *ws;
    const uint8_t *in; /* the bytes of the sb_ws_feed() under way */
    size_t in_len;
    bool discard;        /* what wslay writes is dropped (see engine_take) */
    struct engine *next; /* in the pool */
    /* The peer's frame header being read ahead of wslay (frames_check):
     * wslay closes a frame that breaks RFC 6455 in the ways checked there
     * with no status code, where 1002 is due. Between frames (the only
     * time a context goes back to the pool) it is empty. */
    uint8_t hdr[WS_HEADER_BYTES_MAX];
    uint8_t hdr_len, hdr_ext; /* bytes read; extended length bytes */
    uint64_t payload_left;    /* of the frame being read */
} engine;

struct sb_ws_env {
    sb_ws_env_config cfg;
    engine *pool[2];    /* idle contexts: [0] servers', [1] clients' */
    sb_wsdeflate *zlib; /* made on first use */
    sb_buf zout;        /* a message being compressed */
    sb_buf zin;         /* a message decompressed, during its on_msg */
    bool inflating;
    sb_ws_env_stats st;
};

struct sb_ws {
    sb_ws_env *env;
    engine *eng; /* NULL while idle */
    sb_ws_cbs cbs;
    void *ud;
    sb_buf out; /* frames to send, in order */
    /* Bytes fed to wslay that are not yet part of a complete frame, and
     * the size (header and payload) of the frame being read (at most the
     * message bound and a header: wslay refuses larger). */
    uint64_t in_pending;
    uint32_t frame_bytes;
    uint32_t msg_bytes_max;
    uint32_t deflate_min_bytes;
    uint8_t depth; /* calls into wslay under way */
    uint8_t window_bits;
    /* Flags, as bits: an idle connection is mostly this struct. */
    bool client : 1;
    bool own_env : 1;
    bool in_fragments : 1; /* a fragmented message is being received */
    bool closing : 1;      /* a close was queued or received: no sends */
    bool close_sent : 1;   /* our close frame went out without wslay */
    bool deflate : 1;
    bool broken : 1; /* a close 1002 is queued; nothing more is read */
};

/* ---- the environment ------------------------------------------------------
 */

void sb_ws_env_config_default(sb_ws_env_config *c)
{
    c->deflate_level = 6;
    c->engines_idle_max = 64;
}

int sb_ws_env_new(const sb_ws_env_config *cfg, sb_ws_env **out)
{
    sb_ws_env *env = calloc(1, sizeof *env);
    if (!env) return -ENOMEM;
    if (cfg)
        env->cfg = *cfg;
    else
        sb_ws_env_config_default(&env->cfg);
    assert(env->cfg.deflate_level >= 1 && env->cfg.deflate_level <= 9);
    *out = env;
    return 0;
}

static void engine_destroy(engine *e)
{
    wslay_event_context_free(e->ctx);
    free(e);
}

void sb_ws_env_free(sb_ws_env *env)
{
    if (!env) return;
    assert(env->st.engines_live == 0);
    for (int side = 0; side < 2; side++)
        while (env->pool[side]) {
            engine *e = env->pool[side];
            env->pool[side] = e->next;
            engine_destroy(e);
        }
    sb_wsdeflate_free(env->zlib);
    sb_buf_free(&env->zout);
    sb_buf_free(&env->zin);
    free(env);
}

void sb_ws_env_get_stats(const sb_ws_env *env, sb_ws_env_stats *out)
{
    *out = env->st;
}

static sb_wsdeflate *env_zlib(sb_ws_env *env)
{
    if (!env->zlib) sb_wsdeflate_new(env->cfg.deflate_level, &env->zlib);
    return env->zlib;
}

static void scratch_trim(sb_buf *b)
{
    b->len = 0;
    if (b->cap > SCRATCH_KEEP_BYTES) sb_buf_free(b);
}

/* Reads p[0..n) as the peer's frames; returns how many bytes come before
 * the one that shows a frame breaking the protocol (n when none does):
 * a control frame fragmented or over 125 bytes, a close frame of 1 byte,
 * a length not in its shortest form or with the top bit set. wslay never
 * sees such a header whole, so it has nothing to say about it. */
static size_t frames_check(engine *e, const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (e->payload_left) {
            size_t k = n - i < e->payload_left ? n - i : e->payload_left;
            e->payload_left -= k;
            i += k;
            continue;
        }
        e->hdr[e->hdr_len++] = p[i++];
        if (e->hdr_len < 2) continue;
        uint8_t b0 = e->hdr[0], len7 = e->hdr[1] & 0x7f;
        if (e->hdr_len == 2) {
            bool ctrl = (b0 & 0x08) != 0, fin = (b0 & 0x80) != 0;
            bool close = (b0 & 0x0f) == 0x8;
            if (ctrl && (!fin || len7 > 125 || (close && len7 == 1)))
                return i - 1;
            e->hdr_ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
        }
        uint64_t len = len7;
        if (e->hdr_ext && e->hdr_len >= 2 + e->hdr_ext) {
            len = 0;
            for (size_t k = 0; k < e->hdr_ext; k++)
                len = len << 8 | e->hdr[2 + k];
            if (e->hdr_len == 2 + e->hdr_ext &&
                (e->hdr_ext == 2 ? len < 126 : len < 65536 || len >> 63))
                return i - 1;
        }
        size_t need = 2 + e->hdr_ext + (e->hdr[1] & 0x80 ? 4 : 0);
        if (e->hdr_len == need) {
            e->payload_left = len;
            e->hdr_len = 0;
        }
    }
    return n;
}

/* ---- wslay's callbacks ----------------------------------------------------
 */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                       int flags, void *user_data)
{
    (void)flags;
    engine *e = user_data;
    if (e->in_len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < e->in_len ? len : e->in_len;
    memcpy(buf, e->in, n);
    e->in += n;
    e->in_len -= n;
    e->ws->in_pending += n;
    return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data,
                       size_t len, int flags, void *user_data)
{
    (void)flags;
    engine *e = user_data;
    if (e->discard) return (ssize_t)len;
    if (sb_buf_append(&e->ws->out, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return (ssize_t)len;
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                      void *user_data)
{
    (void)ctx;
    sb_ws *ws = ((engine *)user_data)->ws;
    ws->cbs.rand_bytes(ws->ud, buf, len);
    return 0;
}

/* A frame's header as wslay read it: the shortest length form (wslay
 * refuses others) and a masking key on frames a client sent. */
static void frame_start_cb(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *a,
                           void *user_data)
{
    (void)ctx;
    sb_ws *ws = ((engine *)user_data)->ws;
    uint64_t n = a->payload_length;
    uint32_t head = n >= 65536 ? 10 : n >= 126 ? 4 : 2;
    if (!ws->client) head += 4; /* the masking key */
    assert(n <= ws->msg_bytes_max);
    ws->frame_bytes = head + (uint32_t)n;
    if (a->opcode == WSLAY_TEXT_FRAME || a->opcode == WSLAY_BINARY_FRAME)
        ws->in_fragments = !a->fin;
    else if (a->opcode == WSLAY_CONTINUATION_FRAME && a->fin)
        ws->in_fragments = false;
}

static void frame_end_cb(wslay_event_context_ptr ctx, void *user_data)
{
    (void)ctx;
    sb_ws *ws = ((engine *)user_data)->ws;
    assert(ws->in_pending >= ws->frame_bytes);
    ws->in_pending -= ws->frame_bytes;
    ws->frame_bytes = 0;
}

/* Closes for a message the peer should not have sent; reading stops. */
static void refuse(sb_ws *ws, uint16_t code, const char *reason)
{
    wslay_event_queue_close(ws->eng->ctx, code, (const uint8_t *)reason,
                            strlen(reason));
    wslay_event_shutdown_read(ws->eng->ctx);
    ws->closing = true;
}

static void on_msg_cb(wslay_event_context_ptr ctx,
                      const struct wslay_event_on_msg_recv_arg *arg,
                      void *user_data)
{
    (void)ctx;
    sb_ws *ws = ((engine *)user_data)->ws;
    if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
        return;
    bool text = arg->opcode == WSLAY_TEXT_FRAME;
    if (!(arg->rsv & WSLAY_RSV1_BIT)) {
        ws->cbs.on_msg(ws->ud, text, arg->msg, arg->msg_length);
        return;
    }
    /* RSV1: compressed (wslay lets it through only with deflate on). */
    sb_ws_env *env = ws->env;
    sb_wsdeflate *z = env_zlib(env);
    assert(!env->inflating);
    sb_buf *plain = &env->zin;
    plain->len = 0;
    int rc = z ? sb_wsdeflate_decompress(z, arg->msg, arg->msg_length,
                                         ws->msg_bytes_max, plain)
               : -ENOMEM;
    if (rc == -EMSGSIZE) {
        refuse(ws, SB_WS_CLOSE_TOO_BIG, "message too big");
    } else if (rc == -EBADMSG) {
        refuse(ws, SB_WS_CLOSE_BAD_DATA, "bad compressed data");
    } else if (rc != 0) {
        refuse(ws, SB_WS_CLOSE_INTERNAL, "out of memory");
    } else if (text && !sb_utf8_valid((const char *)plain->data, plain->len)) {
        refuse(ws, SB_WS_CLOSE_BAD_DATA, "invalid UTF-8");
    } else {
        env->st.inflated++;
        env->st.inflate_in_bytes += arg->msg_length;
        env->st.inflate_out_bytes += plain->len;
        env->inflating = true;
        ws->cbs.on_msg(ws->ud, text, plain->data, plain->len);
        env->inflating = false;
    }
    scratch_trim(plain);
}

static const struct wslay_event_callbacks WSLAY_CBS = {
    .recv_callback = recv_cb,
    .send_callback = send_cb,
    .genmask_callback = genmask_cb,
    .on_frame_recv_start_callback = frame_start_cb,
    .on_frame_recv_end_callback = frame_end_cb,
    .on_msg_recv_callback = on_msg_cb,
};

/* ---- lending wslay's context ----------------------------------------------
 */

/* Gives ws a context: one from the pool (idle contexts are between frames
 * with nothing queued, as good as new), or a new one. */
static int engine_take(sb_ws *ws)
{
    if (ws->eng) return 0;
    sb_ws_env *env = ws->env;
    engine *e = env->pool[ws->client];
    if (e) {
        env->pool[ws->client] = e->next;
        env->st.engines_idle--;
    } else {
        e = calloc(1, sizeof *e);
        if (!e) return -ENOMEM;
        int rc = ws->client
                     ? wslay_event_context_client_init(&e->ctx, &WSLAY_CBS, e)
                     : wslay_event_context_server_init(&e->ctx, &WSLAY_CBS, e);
        if (rc != 0) {
            free(e);
            return -ENOMEM;
        }
        env->st.engines_made++;
    }
    e->next = NULL;
    e->ws = ws;
    wslay_event_config_set_max_recv_msg_length(e->ctx, ws->msg_bytes_max);
    wslay_event_config_set_allowed_rsv_bits(
        e->ctx, ws->deflate ? WSLAY_RSV1_BIT : WSLAY_RSV_NONE);
    ws->eng = e;
    env->st.engines_live++;
    if (ws->close_sent) {
        /* Our close went out framed here: wslay is told it sent one (and
         * what it writes for it dropped), so that the peer's answer ends
         * the handshake instead of being answered again. */
        wslay_event_queue_close(e->ctx, 0, NULL, 0);
        e->discard = true;
        wslay_event_send(e->ctx);
        e->discard = false;
    }
    return 0;
}

/* Gives ws's context back when the connection no longer needs it: between
 * frames, no fragmented message under way, nothing of wslay's to write
 * and no close begun (a closing connection keeps its context to the end). */
static void engine_give_back(sb_ws *ws)
{
    engine *e = ws->eng;
    if (!e || ws->depth || ws->closing || ws->in_pending || ws->in_fragments)
        return;
    if (wslay_event_want_write(e->ctx) ||
        wslay_event_get_queued_msg_count(e->ctx))
        return;
    assert(e->hdr_len == 0 && e->payload_left == 0);
    sb_ws_env *env = ws->env;
    ws->eng = NULL;
    env->st.engines_live--;
    e->ws = NULL;
    e->in = NULL;
    e->in_len = 0;
    if (env->st.engines_idle < env->cfg.engines_idle_max) {
        e->next = env->pool[ws->client];
        env->pool[ws->client] = e;
        env->st.engines_idle++;
    } else {
        engine_destroy(e);
    }
}

/* Moves what wslay has to write (control frames) onto ws->out. */
static int drain(sb_ws *ws)
{
    if (!ws->eng || !wslay_event_want_write(ws->eng->ctx)) return 0;
    ws->depth++;
    int rc = wslay_event_send(ws->eng->ctx);
    ws->depth--;
    return rc == 0 ? 0 : -ENOMEM;
}

/* Notes a close wslay queued or received. */
static void note_close(sb_ws *ws)
{
    wslay_event_context_ptr ctx = ws->eng->ctx;
    if (wslay_event_get_close_received(ctx) ||
        wslay_event_get_close_sent(ctx) || !wslay_event_get_read_enabled(ctx) ||
        !wslay_event_get_write_enabled(ctx))
        ws->closing = true;
}

/* ---- connections ----------------------------------------------------------
 */

int sb_ws_new(sb_ws_env *env, const sb_ws_config *cfg, const sb_ws_cbs *cbs,
              void *ud, sb_ws **out)
{
    *out = NULL;
    sb_ws *ws = calloc(1, sizeof *ws);
    if (!ws) return -ENOMEM;
    if (!env) {
        if (sb_ws_env_new(NULL, &env) != 0) {
            free(ws);
            return -ENOMEM;
        }
        ws->own_env = true;
    }
    assert(!cfg->deflate.on ||
           (cfg->deflate.window_bits >= 9 && cfg->deflate.window_bits <= 15));
    assert(cfg->msg_bytes_max <= SB_WS_MSG_BYTES_MAX);
    ws->env = env;
    ws->cbs = *cbs;
    ws->ud = ud;
    ws->client = cfg->client;
    ws->msg_bytes_max = cfg->msg_bytes_max;
    ws->deflate = cfg->deflate.on;
    ws->window_bits = cfg->deflate.window_bits;
    ws->deflate_min_bytes = cfg->deflate_min_bytes;
    *out = ws;
    return 0;
}

void sb_ws_free(sb_ws *ws)
{
    if (!ws) return;
    assert(ws->depth == 0);
    if (ws->eng) {
        ws->env->st.engines_live--;
        engine_destroy(ws->eng);
    }
    sb_buf_free(&ws->out);
    if (ws->own_env) sb_ws_env_free(ws->env);
    free(ws);
}

int sb_ws_feed(sb_ws *ws, const uint8_t *p, size_t n)
{
    if (ws->broken) return -EPROTO;
    if (n == 0) return 0;
    int rc = engine_take(ws);
    if (rc) return rc;
    engine *e = ws->eng;
    size_t good = frames_check(e, p, n);
    e->in = p;
    e->in_len = good;
    ws->depth++;
    rc = good ? wslay_event_recv(e->ctx) : 0;
    ws->depth--;
    e->in = NULL;
    e->in_len = 0;
    if (rc == 0 && good < n) {
        ws->broken = true;
        wslay_event_queue_close(e->ctx, SB_WS_CLOSE_PROTOCOL, NULL, 0);
        wslay_event_shutdown_read(e->ctx);
    }
    note_close(ws);
    int drc = drain(ws);
    engine_give_back(ws);
    if (rc != 0) return rc == WSLAY_ERR_NOMEM ? -ENOMEM : -EPROTO;
    if (ws->broken) return -EPROTO;
    return drc;
}

/* Appends one frame: FIN and opcode (and RSV1) in first, the payload
 * masked when this end is a client. */
static int frame_append(sb_ws *ws, uint8_t first, const uint8_t *p, size_t n)
{
    uint8_t head[14];
    size_t h = 0;
    uint8_t mask_bit = ws->client ? 0x80 : 0;
    head[h++] = first;
    if (n < 126) {
        head[h++] = mask_bit | (uint8_t)n;
    } else if (n < 65536) {
        head[h++] = mask_bit | 126;
        head[h++] = (uint8_t)(n >> 8);
        head[h++] = (uint8_t)n;
    } else {
        head[h++] = mask_bit | 127;
        for (int i = 7; i >= 0; i--)
            head[h++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    uint8_t key[4];
    if (ws->client) {
        ws->cbs.rand_bytes(ws->ud, key, sizeof key);
        memcpy(head + h, key, sizeof key);
        h += sizeof key;
    }
    if (sb_buf_reserve(&ws->out, h + n) != 0) return -ENOMEM;
    uint8_t *o = ws->out.data + ws->out.len;
    memcpy(o, head, h);
    if (ws->client) {
        for (size_t i = 0; i < n; i++)
            o[h + i] = p[i] ^ key[i & 3];
    } else if (n) {
        memcpy(o + h, p, n);
    }
    ws->out.len += h + n;
    return 0;
}

int sb_ws_send(sb_ws *ws, bool text, const uint8_t *p, size_t n)
{
    if (ws->closing) return -EPIPE;
    uint8_t first = 0x80 | (text ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME);
    sb_ws_env *env = ws->env;
    if (ws->deflate && n >= ws->deflate_min_bytes) {
        sb_wsdeflate *z = env_zlib(env);
        sb_buf *zb = &env->zout;
        zb->len = 0;
        /* Out of memory for zlib: the message goes as it is. */
        if (z && sb_wsdeflate_compress(z, ws->window_bits, p, n, zb) == 0 &&
            zb->len < n) {
            env->st.deflated++;
            env->st.deflate_in_bytes += n;
            env->st.deflate_out_bytes += zb->len;
            int rc = frame_append(ws, first | 0x40, zb->data, zb->len);
            scratch_trim(zb);
            return rc;
        }
        scratch_trim(zb);
    }
    return frame_append(ws, first, p, n);
}

int sb_ws_ping(sb_ws *ws)
{
    if (ws->closing) return -EPIPE;
    return frame_append(ws, 0x80 | WSLAY_PING, NULL, 0);
}

int sb_ws_close(sb_ws *ws, uint16_t code, const char *reason)
{
    size_t n = reason ? strlen(reason) : 0;
    if (n > 122) n = 122;
    if (ws->closing) return -EPIPE;
    if (!ws->eng) {
        /* Between frames: framed here, so that closing many idle
         * connections at once (a drain) lends them no context. */
        uint8_t p[125];
        p[0] = (uint8_t)(code >> 8);
        p[1] = (uint8_t)code;
        if (n) memcpy(p + 2, reason, n);
        int rc = frame_append(ws, 0x80 | WSLAY_CONNECTION_CLOSE, p, n + 2);
        if (rc == 0) ws->closing = ws->close_sent = true;
        return rc;
    }
    int rc =
        wslay_event_queue_close(ws->eng->ctx, code, (const uint8_t *)reason, n);
    ws->closing = true;
    if (drain(ws) != 0) return -ENOMEM;
    return rc == 0 ? 0 : -EPIPE;
}

int sb_ws_pull(sb_ws *ws, sb_buf *out)
{
    int rc = drain(ws);
    if (ws->out.len) {
        if (out->len == 0 && out->cap == 0) {
            *out = ws->out;
            ws->out = (sb_buf)SB_BUF_INIT;
        } else {
            if (sb_buf_append(out, ws->out.data, ws->out.len) != 0)
                rc = -ENOMEM;
            sb_buf_free(&ws->out);
        }
    } else if (ws->out.cap) {
        sb_buf_free(&ws->out);
    }
    engine_give_back(ws);
    return rc;
}

size_t sb_ws_queued_bytes(const sb_ws *ws)
{
    return ws->out.len;
}

bool sb_ws_done(const sb_ws *ws)
{
    if (!ws->eng || ws->out.len) return false;
    wslay_event_context_ptr ctx = ws->eng->ctx;
    if (wslay_event_get_close_sent(ctx) && wslay_event_get_close_received(ctx))
        return true;
    return !wslay_event_want_read(ctx) && !wslay_event_want_write(ctx);
}

bool sb_ws_close_received(const sb_ws *ws)
{
    return ws->eng && wslay_event_get_close_received(ws->eng->ctx) != 0;
}

uint16_t sb_ws_close_code(const sb_ws *ws)
{
    return ws->eng ? wslay_event_get_status_code_received(ws->eng->ctx)
                   : WSLAY_CODE_ABNORMAL_CLOSURE;
}

bool sb_ws_busy(const sb_ws *ws)
{
    return ws->eng != NULL;
}

void sb_ws_accept_key(const char *key, size_t key_len, char *accept)
{
    static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c && EVP_DigestInit_ex(c, EVP_sha1(), NULL) &&
        EVP_DigestUpdate(c, key, key_len) &&
        EVP_DigestUpdate(c, GUID, sizeof GUID - 1) &&
        EVP_DigestFinal_ex(c, md, &md_len))
        sb_b64_encode(md, md_len, accept, 0);
    else
        accept[0] = '\0'; /* out of memory: the handshake will fail */
    EVP_MD_CTX_free(c);
}
