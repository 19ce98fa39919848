/* WebSocket framing over wslay, fed and drained through memory buffers. */
#include "sb_ws.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <wslay/wslay.h>

#include "sb_b64.h"

/* The longest frame header: 2 bytes, 8 of extended length, 4 of mask. */
#define WS_HEADER_BYTES_MAX 14

struct sb_ws {
    wslay_event_context_ptr ctx;
    sb_ws_cbs cbs;
    void *ud;
    const uint8_t *in;
    size_t in_len;
    sb_buf *out;
    /* The peer's frame headers, read ahead of wslay: it closes a frame
     * that breaks RFC 6455 in the ways below with no status code, where
     * 1002 is due. */
    uint8_t hdr[WS_HEADER_BYTES_MAX];
    size_t hdr_len, hdr_ext; /* bytes read; extended length bytes */
    uint64_t payload_left;   /* of the frame being read */
    bool broken;             /* a close 1002 is queued; nothing more read */
};

/* Reads p[0..n) as the peer's frames; returns how many bytes come before
 * the one that shows a frame breaking the protocol (n when none does):
 * a control frame fragmented or over 125 bytes, a close frame of 1 byte,
 * a length not in its shortest form or with the top bit set. wslay never
 * sees such a header whole, so it has nothing to say about it. */
static size_t frames_check(sb_ws *ws, const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (ws->payload_left) {
            size_t k = n - i < ws->payload_left ? n - i : ws->payload_left;
            ws->payload_left -= k;
            i += k;
            continue;
        }
        ws->hdr[ws->hdr_len++] = p[i++];
        if (ws->hdr_len < 2) continue;
        uint8_t b0 = ws->hdr[0], len7 = ws->hdr[1] & 0x7f;
        if (ws->hdr_len == 2) {
            bool ctrl = (b0 & 0x08) != 0, fin = (b0 & 0x80) != 0;
            bool close = (b0 & 0x0f) == 0x8;
            if (ctrl && (!fin || len7 > 125 || (close && len7 == 1)))
                return i - 1;
            ws->hdr_ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
        }
        uint64_t len = len7;
        if (ws->hdr_ext && ws->hdr_len >= 2 + ws->hdr_ext) {
            len = 0;
            for (size_t k = 0; k < ws->hdr_ext; k++)
                len = len << 8 | ws->hdr[2 + k];
            if (ws->hdr_len == 2 + ws->hdr_ext &&
                (ws->hdr_ext == 2 ? len < 126 : len < 65536 || len >> 63))
                return i - 1;
        }
        size_t need = 2 + ws->hdr_ext + (ws->hdr[1] & 0x80 ? 4 : 0);
        if (ws->hdr_len == need) {
            ws->payload_left = len;
            ws->hdr_len = 0;
        }
    }
    return n;
}

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                       int flags, void *user_data)
{
    (void)flags;
    sb_ws *ws = user_data;
    if (ws->in_len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < ws->in_len ? len : ws->in_len;
    memcpy(buf, ws->in, n);
    ws->in += n;
    ws->in_len -= n;
    return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data,
                       size_t len, int flags, void *user_data)
{
    (void)flags;
    sb_ws *ws = user_data;
    if (!ws->out || sb_buf_append(ws->out, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return (ssize_t)len;
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                      void *user_data)
{
    (void)ctx;
    sb_ws *ws = user_data;
    ws->cbs.rand_bytes(ws->ud, buf, len);
    return 0;
}

static void on_msg_cb(wslay_event_context_ptr ctx,
                      const struct wslay_event_on_msg_recv_arg *arg,
                      void *user_data)
{
    (void)ctx;
    sb_ws *ws = user_data;
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME)
        ws->cbs.on_msg(ws->ud, arg->opcode == WSLAY_TEXT_FRAME, arg->msg,
                       arg->msg_length);
}

int sb_ws_new(bool client, uint64_t msg_bytes_max, const sb_ws_cbs *cbs,
              void *ud, sb_ws **out)
{
    *out = NULL;
    sb_ws *ws = calloc(1, sizeof *ws);
    if (!ws) return -ENOMEM;
    ws->cbs = *cbs;
    ws->ud = ud;
    struct wslay_event_callbacks wc = {
        .recv_callback = recv_cb,
        .send_callback = send_cb,
        .genmask_callback = client ? genmask_cb : NULL,
        .on_msg_recv_callback = on_msg_cb,
    };
    int rc = client ? wslay_event_context_client_init(&ws->ctx, &wc, ws)
                    : wslay_event_context_server_init(&ws->ctx, &wc, ws);
    if (rc != 0) {
        free(ws);
        return -ENOMEM;
    }
    wslay_event_config_set_max_recv_msg_length(ws->ctx, msg_bytes_max);
    *out = ws;
    return 0;
}

void sb_ws_free(sb_ws *ws)
{
    if (!ws) return;
    wslay_event_context_free(ws->ctx);
    free(ws);
}

int sb_ws_feed(sb_ws *ws, const uint8_t *p, size_t n)
{
    if (ws->broken) return -EPROTO;
    size_t good = frames_check(ws, p, n);
    ws->in = p;
    ws->in_len = good;
    int rc = good ? wslay_event_recv(ws->ctx) : 0;
    ws->in = NULL;
    ws->in_len = 0;
    if (rc == 0 && good < n) {
        ws->broken = true;
        wslay_event_queue_close(ws->ctx, SB_WS_CLOSE_PROTOCOL, NULL, 0);
        wslay_event_shutdown_read(ws->ctx);
        return -EPROTO;
    }
    return rc == 0 ? 0 : -EPROTO;
}

int sb_ws_send(sb_ws *ws, bool text, const uint8_t *p, size_t n)
{
    struct wslay_event_msg m = {
        .opcode = text ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME,
        .msg = p,
        .msg_length = n,
    };
    int rc = wslay_event_queue_msg(ws->ctx, &m);
    if (rc == WSLAY_ERR_NOMEM) return -ENOMEM;
    return rc == 0 ? 0 : -EPIPE;
}

int sb_ws_ping(sb_ws *ws)
{
    struct wslay_event_msg m = {
        .opcode = WSLAY_PING, .msg = NULL, .msg_length = 0};
    return wslay_event_queue_msg(ws->ctx, &m) == 0 ? 0 : -EPIPE;
}

int sb_ws_close(sb_ws *ws, uint16_t code, const char *reason)
{
    size_t n = reason ? strlen(reason) : 0;
    if (n > 122) n = 122;
    int rc = wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason, n);
    return rc == 0 ? 0 : -EPIPE;
}

int sb_ws_pull(sb_ws *ws, sb_buf *out)
{
    ws->out = out;
    int rc = 0;
    if (wslay_event_want_write(ws->ctx)) rc = wslay_event_send(ws->ctx);
    ws->out = NULL;
    return rc == 0 ? 0 : -ENOMEM;
}

size_t sb_ws_queued_bytes(const sb_ws *ws)
{
    return wslay_event_get_queued_msg_length(ws->ctx);
}

bool sb_ws_done(const sb_ws *ws)
{
    if (wslay_event_get_close_sent(ws->ctx) &&
        wslay_event_get_close_received(ws->ctx))
        return true;
    return !wslay_event_want_read(ws->ctx) && !wslay_event_want_write(ws->ctx);
}

bool sb_ws_close_received(const sb_ws *ws)
{
    return wslay_event_get_close_received(ws->ctx) != 0;
}

uint16_t sb_ws_close_code(const sb_ws *ws)
{
    return wslay_event_get_status_code_received(ws->ctx);
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
