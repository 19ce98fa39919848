/* The client's protocol core: the connection state machine (connect,
 * HELLO, WELCOME, liveness, rounds of the URL list with a backoff with
 * full jitter between rounds, stop), the frame dispatcher that hands each
 * frame from the server to the part that owns it (sb_client_inbox.c,
 * sb_client_outbox.c, sb_client_request.c), and the out queue the
 * transport pulls frames from. No I/O, no clock: see sb_client_core.h. */
#include "sb_client_core_int.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_token.h"
#include "sb_utf8.h"
#include "sb_ws.h"

_Static_assert(SB_CLIENT_URLS_MAX <= UINT8_MAX + 1,
               "url_order holds indexes in a byte");

/* ---- small helpers ------------------------------------------------------- */

const char *sb_client_state_name(sb_client_state s)
{
    switch (s) {
    case SB_CLIENT_IDLE:
        return "idle";
    case SB_CLIENT_CONNECTING:
        return "connecting";
    case SB_CLIENT_HELLO_SENT:
        return "hello_sent";
    case SB_CLIENT_READY:
        return "ready";
    case SB_CLIENT_BACKOFF:
        return "backoff";
    case SB_CLIENT_STOPPED:
        return "stopped";
    }
    return "?";
}

const char *sb_client_send_status_name(sb_client_send_status s)
{
    switch (s) {
    case SB_SEND_PENDING:
        return "pending";
    case SB_SEND_SENT:
        return "sent";
    case SB_SEND_DELIVERED:
        return "delivered";
    case SB_SEND_READ:
        return "read";
    case SB_SEND_FAILED:
        return "failed";
    }
    return "?";
}

const char *sb_client_err_name(int err)
{
    if (err <= -SB_EBASE && err > -(SB_EBASE + 1000)) {
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
            &sbp__error_code__descriptor, -err - SB_EBASE);
        if (v) return v->name;
        return "ERR_UNKNOWN";
    }
    switch (err) {
    case 0:
        return "OK";
    case -ETIMEDOUT:
        return "ETIMEDOUT";
    case -ECONNREFUSED:
        return "ECONNREFUSED";
    case -ECONNRESET:
        return "ECONNRESET";
    case -ENOTCONN:
        return "ENOTCONN";
    case -ENOBUFS:
        return "ENOBUFS";
    case -ENOMEM:
        return "ENOMEM";
    case -EPROTO:
        return "EPROTO";
    case -EINVAL:
        return "EINVAL";
    case -ESHUTDOWN:
        return "ESHUTDOWN";
    case -EHOSTUNREACH:
        return "EHOSTUNREACH";
    case -ENOENT:
        return "ENOENT";
    case -EPIPE:
        return "EPIPE";
    case -EMSGSIZE:
        return "EMSGSIZE";
    case -ECANCELED:
        return "ECANCELED";
    case SB_CLIENT_E_REPLACED:
        return "REPLACED";
    case -EKEYREJECTED: /* SB_TLS_E_VERIFY */
        return "TLS_CERT_REJECTED";
    }
    return "ERROR";
}

void sb_client_config_default(sb_client_config *c)
{
    memset(c, 0, sizeof *c);
    c->url = "ws://127.0.0.1:8080/ws";
    c->enc = SB_ENC_PROTO;
    c->client_name = "switchboard-c/" SB_VERSION;
    c->locale = "";
    c->tick_ms = 100;
    c->send_timeout_ms = 5000;
    c->send_attempts_max = 30;
    c->window_max = 64;
    c->outbox_max = 1024;
    c->held_max = 256;
    c->convs_max = 4096;
    c->track_max = 128;
    c->requests_max = 16;
    c->request_timeout_ms = 10000;
    c->connect_timeout_ms = 10000;
    c->backoff_ms_base = 250;
    c->backoff_ms_max = 30000;
    c->restart_backoff_ms_max = 1000;
    c->restart_window_ms = 30000;
    c->heartbeat_ms = 30000;
    c->body_bytes_max = 64 * 1024;
    c->sync_limit = 0;
    c->gap_wait_ms = 200;
    c->gap_retry_ms = 1000;
    c->frame_bytes_max = 1024 * 1024;
    c->deflate = true;
    c->deflate_min_bytes = 512;
    c->outq_bytes_max = 4 * 1024 * 1024;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s ? s : "");
    char *d = malloc(n + 1);
    if (d) memcpy(d, s ? s : "", n + 1);
    return d;
}

static uint32_t rand_u32(sb_client_core *cc)
{
    uint8_t b[4];
    cc->io.rand_bytes(cc->io.ud, b, sizeof b);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
           (uint32_t)b[3] << 24;
}

uint32_t sb__client_new_rid(sb_client_core *cc)
{
    if (++cc->next_rid == 0) cc->next_rid = 1;
    return cc->next_rid;
}

int sb__client_emit(sb_client_core *cc, const Sbp__Frame *f)
{
    if (cc->outq.len - cc->outq_off > cc->cfg.outq_bytes_max) return -ENOBUFS;
    size_t start = cc->outq.len;
    uint32_t len = 0;
    int rc = sb_buf_append(&cc->outq, &len, sizeof len);
    if (rc) return rc;
    rc = sb_frame_encode(cc->cfg.enc, f, &cc->outq);
    if (rc) {
        cc->outq.len = start;
        return rc;
    }
    len = (uint32_t)(cc->outq.len - start - sizeof len);
    memcpy(cc->outq.data + start, &len, sizeof len);
    return 0;
}

int sb__client_check_str(const char *s, size_t max, bool empty_ok)
{
    size_t n = strlen(s ? s : "");
    if ((n == 0 && !empty_ok) || n > max) return SB_E_INVALID;
    return sb_utf8_valid(s ? s : "", n) ? 0 : SB_E_BAD_UTF8;
}

static bool connected(const sb_client_core *cc)
{
    return cc->state == SB_CLIENT_CONNECTING ||
           cc->state == SB_CLIENT_HELLO_SENT || cc->state == SB_CLIENT_READY;
}

static void set_state(sb_client_core *cc, sb_client_state st, int err)
{
    cc->state = st;
    if (cc->cbs.on_state) cc->cbs.on_state(cc->ud, st, err);
}

/* ---- connection ---------------------------------------------------------- */

/* Everything that belongs to one connection is dropped; sends in flight
 * go back to the queue. No callbacks: the requests fail after the new
 * state is reported (sb__client_request_fail_all). */
static void conn_reset(sb_client_core *cc)
{
    cc->outq.len = 0;
    cc->outq_off = 0;
    sb__client_outbox_on_disconnect(cc);
    sb__client_inbox_on_disconnect(cc);
    cc->st.disconnects++;
}

static void begin_connect(sb_client_core *cc)
{
    cc->st.connects++;
    cc->conn_started_ms = cc->now_ms;
    cc->close_code = 0;
    set_state(cc, SB_CLIENT_CONNECTING, 0);
    if (cc->state == SB_CLIENT_CONNECTING) cc->io.connect(cc->io.ud);
}

/* Full jitter: uniform in [0, min(max, base * 2^attempt)], and at most
 * restart_backoff_ms_max while a restart is expected; attempt counts the
 * rounds of the URL list that failed since the last WELCOME, except those
 * that met the restart's cap: a restart that outlasts its window goes on
 * from that cap (doubling), not from the many attempts made under it. */
static void schedule_backoff(sb_client_core *cc, int err)
{
    uint64_t cap = cc->cfg.backoff_ms_base;
    for (uint32_t i = 0;
         i < cc->backoff_attempt && cap < cc->cfg.backoff_ms_max; i++)
        cap *= 2;
    if (cap > cc->cfg.backoff_ms_max) cap = cc->cfg.backoff_ms_max;
    bool capped = cc->cfg.restart_backoff_ms_max &&
                  cc->now_ms < cc->restart_until_ms &&
                  cap >= cc->cfg.restart_backoff_ms_max;
    if (capped) cap = cc->cfg.restart_backoff_ms_max;
    uint64_t r = rand_u32(cc);
    cc->backoff_ms = (uint32_t)(((cap + 1) * r) >> 32);
    if (!capped) cc->backoff_attempt++;
    cc->reconnect_at_ms = cc->now_ms + cc->backoff_ms;
    cc->last_err = err;
    set_state(cc, SB_CLIENT_BACKOFF, err);
}

/* A connection ended or an attempt failed, not for good (the state is
 * BACKOFF): on to the next URL of the list, at once while the round has
 * URLs left to try, else after a backoff. fresh: the end says nothing
 * against the node (it was READY long enough, or it drains), so a new
 * round begins with it. See "Several servers" in sb_client_core.h. */
static void reconnect_next(sb_client_core *cc, int err, bool fresh)
{
    assert(cc->state == SB_CLIENT_BACKOFF);
    if (fresh) cc->round_fails = 0;
    cc->round_fails++;
    cc->url_pos = (cc->url_pos + 1) % cc->n_urls;
    if (cc->round_fails >= cc->n_urls) {
        cc->round_fails = 0;
        schedule_backoff(cc, err);
        return;
    }
    cc->st.url_switches++;
    cc->backoff_ms = 0;
    cc->reconnect_at_ms = cc->now_ms;
    cc->last_err = err;
    set_state(cc, SB_CLIENT_BACKOFF, err);
    if (cc->state == SB_CLIENT_BACKOFF) begin_connect(cc);
}

/* Whether the connection ending now was READY long enough to count as a
 * success. */
static bool was_stable(const sb_client_core *cc, sb_client_state st)
{
    return st == SB_CLIENT_READY &&
           cc->now_ms - cc->ready_ms >= SB_CLIENT_STABLE_MS;
}

/* The order in which the URLs are tried: as listed, or shuffled
 * (Fisher-Yates) once per client. */
static void order_urls(sb_client_core *cc)
{
    for (size_t i = 0; i < cc->n_urls; i++)
        cc->url_order[i] = (uint8_t)i;
    cc->url_pos = 0;
    if (cc->cfg.urls_in_order || cc->n_urls < 2) return;
    for (size_t i = cc->n_urls - 1; i > 0; i--) {
        size_t j = (size_t)(((uint64_t)(i + 1) * rand_u32(cc)) >> 32);
        uint8_t t = cc->url_order[i];
        cc->url_order[i] = cc->url_order[j];
        cc->url_order[j] = t;
    }
}

/* The core drops the connection: io->close, then backoff or stop. */
static void drop_conn(sb_client_core *cc, int err, uint16_t code, bool fatal)
{
    assert(connected(cc));
    bool fresh = was_stable(cc, cc->state);
    cc->state = fatal ? SB_CLIENT_STOPPED : SB_CLIENT_BACKOFF;
    cc->io.close(cc->io.ud, code);
    conn_reset(cc);
    if (fatal) {
        cc->last_err = err;
        set_state(cc, SB_CLIENT_STOPPED, err);
    } else {
        reconnect_next(cc, err, fresh);
    }
    sb__client_request_fail_all(cc, -ECONNRESET);
}

/* ---- frames in ----------------------------------------------------------- */

static void on_welcome(sb_client_core *cc, const Sbp__Frame *f)
{
    const Sbp__Welcome *w = f->welcome;
    if (cc->state != SB_CLIENT_HELLO_SENT) {
        cc->st.protocol_errors++;
        return;
    }
    sb_client_session *s = &cc->sess;
    snprintf(s->user_id, sizeof s->user_id, "%s", w->user_id);
    s->role = w->role;
    s->session_id = w->session_id;
    s->server_ts = w->server_ts;
    s->heartbeat_ms = w->heartbeat_ms;
    s->frame_bytes_max = w->frame_bytes_max;
    s->body_bytes_max = w->body_bytes_max;
    s->pending_sends_max = w->pending_sends_max;
    s->sync_page_max = w->sync_page_max;
    cc->heartbeat_ms = w->heartbeat_ms ? w->heartbeat_ms : cc->cfg.heartbeat_ms;
    cc->backoff_attempt = 0;
    cc->ready_ms = cc->now_ms;
    cc->last_err = 0;
    cc->st.readies++;
    sb__client_outbox_on_welcome(cc, w);
    sb__client_inbox_on_welcome(cc, w);
    cc->pump_needed = true;
    set_state(cc, SB_CLIENT_READY, 0);
}

/* An ERROR answers the HELLO, a send, the SYNC or a request (in this
 * order); any other goes to on_error. */
static void on_error_frame(sb_client_core *cc, const Sbp__Frame *f)
{
    const Sbp__Error *e = f->error;
    if (cc->state == SB_CLIENT_HELLO_SENT &&
        (f->rid == cc->hello_rid || f->rid == 0)) {
        bool fatal = e->code == SBP__ERROR_CODE__ERR_BAD_TOKEN ||
                     e->code == SBP__ERROR_CODE__ERR_TOKEN_EXPIRED;
        drop_conn(cc, SB_E(e->code), SB_WS_CLOSE_NORMAL, fatal);
        return;
    }
    if (sb__client_outbox_on_error(cc, f->rid, e)) return;
    if (sb__client_inbox_on_sync_error(cc, f->rid)) return;
    if (sb__client_request_on_error(cc, f)) return;
    if (cc->cbs.on_error) cc->cbs.on_error(cc->ud, SB_E(e->code), e->text);
}

/* An AGENT_STATE with a rid answers a request; without, it is news. */
static void on_agent_state(sb_client_core *cc, const Sbp__Frame *f)
{
    if (f->rid)
        sb__client_request_on_answer(cc, f);
    else if (cc->cbs.on_agent_state)
        cc->cbs.on_agent_state(cc->ud, f->agent_state);
}

static void on_conv_update(sb_client_core *cc, const Sbp__Frame *f)
{
    if (!f->conv_update->conv)
        cc->st.protocol_errors++;
    else if (cc->cbs.on_conv_update)
        cc->cbs.on_conv_update(cc->ud, f->conv_update->conv);
}

static void on_typing(sb_client_core *cc, const Sbp__Frame *f)
{
    if (cc->cbs.on_typing) cc->cbs.on_typing(cc->ud, f->typing);
}

static void on_note_mention(sb_client_core *cc, const Sbp__Frame *f)
{
    if (cc->cbs.on_note_mention)
        cc->cbs.on_note_mention(cc->ud, f->note_mention);
}

static void on_presence(sb_client_core *cc, const Sbp__Frame *f)
{
    if (cc->cbs.on_presence) cc->cbs.on_presence(cc->ud, f->agent_presence);
}

/* What each kind of frame from the server does. ready: on a READY
 * connection only (dropped before WELCOME). Any other kind is a protocol
 * error. */
static const struct frame_kind {
    void (*handle)(sb_client_core *cc, const Sbp__Frame *f);
    bool ready;
} FRAMES[] = {
    [SBP__FRAME__BODY_WELCOME] = {on_welcome, false},
    [SBP__FRAME__BODY_ERROR] = {on_error_frame, false},
    [SBP__FRAME__BODY_SEND_ACK] = {sb__client_outbox_on_send_ack, true},
    [SBP__FRAME__BODY_PUSH] = {sb__client_inbox_on_push, true},
    [SBP__FRAME__BODY_SYNC_RESP] = {sb__client_inbox_on_sync_resp, true},
    [SBP__FRAME__BODY_READ_NOTIFY] = {sb__client_outbox_on_read_notify, true},
    [SBP__FRAME__BODY_OPEN_RESP] = {sb__client_request_on_answer, true},
    [SBP__FRAME__BODY_HISTORY_RESP] = {sb__client_request_on_answer, true},
    [SBP__FRAME__BODY_OK] = {sb__client_request_on_answer, true},
    [SBP__FRAME__BODY_CONV_LIST_RESP] = {sb__client_request_on_answer, true},
    [SBP__FRAME__BODY_SEARCH_RESP] = {sb__client_request_on_answer, true},
    [SBP__FRAME__BODY_CANNED_LIST_RESP] = {sb__client_request_on_answer, true},
    [SBP__FRAME__BODY_ADMIN_RESP] = {sb__client_request_on_answer, true},
    [SBP__FRAME__BODY_REPORT_RESP] = {sb__client_request_on_answer, true},
    [SBP__FRAME__BODY_AGENT_STATE] = {on_agent_state, true},
    [SBP__FRAME__BODY_CONV_UPDATE] = {on_conv_update, true},
    [SBP__FRAME__BODY_TYPING] = {on_typing, true},
    [SBP__FRAME__BODY_NOTE_MENTION] = {on_note_mention, true},
    [SBP__FRAME__BODY_CONTACT_RESP] = {sb__client_request_on_answer, true},
    [SBP__FRAME__BODY_SYNC_HINT] = {sb__client_inbox_on_sync_hint, true},
    [SBP__FRAME__BODY_AGENT_LIST_RESP] = {sb__client_request_on_answer, true},
    [SBP__FRAME__BODY_AGENT_PRESENCE] = {on_presence, true},
};
#define N_FRAMES (sizeof FRAMES / sizeof *FRAMES)

void sb_client_core_on_frame(sb_client_core *cc, const uint8_t *p, size_t n,
                             int64_t now_ms)
{
    assert(cc && (p || n == 0));
    sb__client_enter(cc);
    cc->now_ms = now_ms;
    cc->last_rx_ms = now_ms;
    if (cc->state != SB_CLIENT_HELLO_SENT && cc->state != SB_CLIENT_READY)
        goto out;
    Sbp__Frame *f = NULL;
    int rc = sb_frame_decode(cc->cfg.enc, p, n, &f);
    if (rc) {
        cc->st.protocol_errors++;
        drop_conn(cc, rc, SB_WS_CLOSE_PROTOCOL, false);
        goto out;
    }
    const struct frame_kind *k =
        (size_t)f->body_case < N_FRAMES ? &FRAMES[f->body_case] : NULL;
    if (!k || !k->handle)
        cc->st.protocol_errors++;
    else if (!k->ready || cc->state == SB_CLIENT_READY)
        k->handle(cc, f);
    sb_frame_free(f);
out:
    sb__client_leave(cc);
}

/* ---- frames out ---------------------------------------------------------- */

/* Produces the frames that are due: SYNC, ACKs and READs, SENDs. */
static void pump(sb_client_core *cc)
{
    cc->pump_needed = false;
    if (cc->state != SB_CLIENT_READY) return;
    sb__client_inbox_pump_sync(cc);
    sb__client_inbox_flush_receipts(cc);
    sb__client_outbox_pump(cc);
}

int sb_client_core_next_frame(sb_client_core *cc, const uint8_t **p, size_t *n)
{
    assert(cc && p && n);
    if (cc->depth == 0 && cc->pump_needed) pump(cc);
    if (cc->outq_off >= cc->outq.len) {
        cc->outq.len = 0;
        cc->outq_off = 0;
        if (cc->outq.cap > 16 * 1024) sb_buf_free(&cc->outq);
        return 0;
    }
    uint32_t len;
    memcpy(&len, cc->outq.data + cc->outq_off, sizeof len);
    *p = cc->outq.data + cc->outq_off + sizeof len;
    *n = len;
    cc->outq_off += sizeof len + len;
    return 1;
}

/* ---- transport events ---------------------------------------------------- */

void sb_client_core_start(sb_client_core *cc, int64_t now_ms)
{
    assert(cc);
    sb__client_enter(cc);
    cc->now_ms = now_ms;
    if (cc->state == SB_CLIENT_IDLE) {
        order_urls(cc);
        begin_connect(cc);
    }
    sb__client_leave(cc);
}

void sb_client_core_stop(sb_client_core *cc)
{
    assert(cc);
    sb__client_enter(cc);
    if (cc->state != SB_CLIENT_STOPPED) {
        bool was = connected(cc);
        /* What was surfaced is ACKed before the close frame. */
        if (cc->state == SB_CLIENT_READY) sb__client_inbox_flush_receipts(cc);
        cc->state = SB_CLIENT_STOPPED;
        if (was) {
            cc->io.close(cc->io.ud, SB_WS_CLOSE_NORMAL);
            conn_reset(cc);
        }
        set_state(cc, SB_CLIENT_STOPPED, 0);
        sb__client_request_fail_all(cc, -ECONNRESET);
    }
    sb__client_leave(cc);
}

void sb_client_core_mute(sb_client_core *cc)
{
    assert(cc);
    memset(&cc->cbs, 0, sizeof cc->cbs);
}

void sb_client_core_on_open(sb_client_core *cc, int64_t now_ms)
{
    assert(cc);
    sb__client_enter(cc);
    cc->now_ms = now_ms;
    cc->last_rx_ms = now_ms;
    if (cc->state != SB_CLIENT_CONNECTING) goto out;
    Sbp__Hello h = SBP__HELLO__INIT;
    h.token = cc->token;
    h.device_id = cc->device_id;
    h.client = cc->client_name;
    h.protocol = 1;
    h.locale = cc->locale;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = cc->hello_rid = sb__client_new_rid(cc);
    f.body_case = SBP__FRAME__BODY_HELLO;
    f.hello = &h;
    cc->outq.len = 0;
    cc->outq_off = 0;
    int rc = sb__client_emit(cc, &f);
    if (rc) {
        drop_conn(cc, rc, SB_WS_CLOSE_INTERNAL, false);
        goto out;
    }
    set_state(cc, SB_CLIENT_HELLO_SENT, 0);
out:
    sb__client_leave(cc);
}

void sb_client_core_on_rx(sb_client_core *cc, int64_t now_ms)
{
    assert(cc);
    cc->now_ms = now_ms;
    cc->last_rx_ms = now_ms;
}

void sb_client_core_on_close(sb_client_core *cc, int err, uint16_t code,
                             int64_t now_ms)
{
    assert(cc);
    sb__client_enter(cc);
    cc->now_ms = now_ms;
    if (!connected(cc)) goto out;
    cc->close_code = code;
    if (code == SB_WS_CLOSE_POLICY || code == SB_WS_CLOSE_NORMAL) {
        /* 1008: the token was refused, reconnecting with it cannot
         * succeed. 1000: this device connected again elsewhere; coming
         * back would only push that one out. */
        int why = code == SB_WS_CLOSE_NORMAL           ? SB_CLIENT_E_REPLACED
                  : cc->last_err == SB_E_TOKEN_EXPIRED ? SB_E_TOKEN_EXPIRED
                                                       : SB_E_BAD_TOKEN;
        cc->state = SB_CLIENT_STOPPED;
        conn_reset(cc);
        cc->last_err = why;
        set_state(cc, SB_CLIENT_STOPPED, why);
    } else {
        /* 1001: the node drains (or found this connection idle); its
         * sessions move to the other nodes at once. */
        bool fresh =
            was_stable(cc, cc->state) || code == SB_WS_CLOSE_GOING_AWAY;
        cc->state = SB_CLIENT_BACKOFF;
        conn_reset(cc);
        if (err == 0) err = code ? -ECONNRESET : -EPIPE;
        if (code == SB_WS_CLOSE_GOING_AWAY)
            cc->restart_until_ms = now_ms + cc->cfg.restart_window_ms;
        reconnect_next(cc, err, fresh);
    }
    sb__client_request_fail_all(cc, -ECONNRESET);
out:
    sb__client_leave(cc);
}

void sb_client_core_tick(sb_client_core *cc, int64_t now_ms)
{
    assert(cc);
    sb__client_enter(cc);
    cc->now_ms = now_ms;
    cc->pump_needed = true;
    switch (cc->state) {
    case SB_CLIENT_BACKOFF:
        if (now_ms >= cc->reconnect_at_ms) begin_connect(cc);
        break;
    case SB_CLIENT_CONNECTING:
    case SB_CLIENT_HELLO_SENT:
        if (now_ms - cc->conn_started_ms >= cc->cfg.connect_timeout_ms)
            drop_conn(cc, -ETIMEDOUT, SB_WS_CLOSE_NORMAL, false);
        break;
    case SB_CLIENT_READY:
        if (now_ms - cc->last_rx_ms >= 3 * (int64_t)cc->heartbeat_ms) {
            drop_conn(cc, -ETIMEDOUT, SB_WS_CLOSE_GOING_AWAY, false);
            break;
        }
        sb__client_outbox_tick(cc);
        sb__client_request_tick(cc);
        sb__client_inbox_tick(cc);
        break;
    default:
        break;
    }
    sb__client_leave(cc);
}

/* ---- life and accessors -------------------------------------------------- */

int sb_client_core_new(const sb_client_config *cfg, const sb_client_cbs *cbs,
                       void *ud, const sb_client_core_io *io,
                       sb_client_core **out)
{
    assert(cfg && io && out);
    assert(io->connect && io->close && io->rand_bytes);
    *out = NULL;
    if (!cfg->token || !cfg->token[0] ||
        strlen(cfg->token) >= SB_TOKEN_BYTES_MAX || !cfg->device_id ||
        !cfg->device_id[0] || strlen(cfg->device_id) > SB_ID_BYTES_MAX)
        return -EINVAL;
    size_t n_urls = cfg->n_urls ? cfg->n_urls : 1;
    if (n_urls > SB_CLIENT_URLS_MAX || (cfg->n_urls && !cfg->urls))
        return -EINVAL;
    for (size_t i = 0; i < cfg->n_urls; i++)
        if (!cfg->urls[i] || !cfg->urls[i][0]) return -EINVAL;
    if (cfg->window_max == 0 || cfg->outbox_max == 0 ||
        cfg->requests_max == 0 || cfg->convs_max == 0 ||
        cfg->backoff_ms_base == 0 ||
        cfg->backoff_ms_max < cfg->backoff_ms_base || cfg->heartbeat_ms == 0)
        return -EINVAL;
    sb_client_core *cc = calloc(1, sizeof *cc);
    if (!cc) return -ENOMEM;
    cc->cfg = *cfg;
    cc->token = dup_str(cfg->token);
    cc->device_id = dup_str(cfg->device_id);
    cc->client_name =
        dup_str(cfg->client_name ? cfg->client_name : "switchboard-c");
    cc->locale = dup_str(cfg->locale);
    if (!cc->token || !cc->device_id || !cc->client_name || !cc->locale ||
        sb__client_request_init(cc) != 0)
        goto err;
    for (size_t i = 0; i < n_urls; i++) {
        cc->urls[i] = dup_str(cfg->n_urls ? cfg->urls[i] : cfg->url);
        if (!cc->urls[i]) goto err;
        cc->n_urls++;
    }
    cc->cfg.token = cc->token;
    cc->cfg.device_id = cc->device_id;
    cc->cfg.client_name = cc->client_name;
    cc->cfg.locale = cc->locale;
    cc->cfg.url = cc->urls[0];
    cc->cfg.urls = (const char *const *)cc->urls;
    cc->cfg.n_urls = cc->n_urls;
    for (size_t i = 0; i < cc->n_urls; i++)
        cc->url_order[i] = (uint8_t)i; /* shuffled at start */
    if (cbs) cc->cbs = *cbs;
    cc->ud = ud;
    cc->io = *io;
    cc->state = SB_CLIENT_IDLE;
    cc->heartbeat_ms = cfg->heartbeat_ms;
    cc->out.window = cfg->window_max;
    cc->out.body_bytes_max = cfg->body_bytes_max;
    cc->in.sync_limit = cfg->sync_limit;
    *out = cc;
    return 0;
err:
    sb_client_core_free(cc);
    return -ENOMEM;
}

void sb_client_core_free(sb_client_core *cc)
{
    if (!cc) return;
    sb__client_inbox_free(cc);
    sb__client_outbox_free(cc);
    sb__client_request_free(cc);
    sb_buf_free(&cc->outq);
    free(cc->token);
    free(cc->device_id);
    free(cc->client_name);
    free(cc->locale);
    for (size_t i = 0; i < cc->n_urls; i++)
        free(cc->urls[i]);
    free(cc);
}

sb_client_state sb_client_core_state(const sb_client_core *cc)
{
    return cc->state;
}

void sb_client_core_stats(const sb_client_core *cc, sb_client_stats *out)
{
    *out = cc->st;
    out->outbox_len = cc->out.len;
    out->inflight = cc->out.n_inflight;
    out->held_now = cc->in.held_now;
    out->convs = cc->in.convs.len;
}

const sb_client_session *sb_client_core_session(const sb_client_core *cc)
{
    return &cc->sess;
}

uint32_t sb_client_core_backoff_ms(const sb_client_core *cc)
{
    return cc->backoff_ms;
}

const char *sb_client_core_url(const sb_client_core *cc)
{
    return cc->urls[cc->url_order[cc->url_pos]];
}

size_t sb_client_core_url_index(const sb_client_core *cc)
{
    return cc->url_order[cc->url_pos];
}

int sb_client_core_last_error(const sb_client_core *cc)
{
    return cc->last_err;
}

uint16_t sb_client_core_close_code(const sb_client_core *cc)
{
    return cc->close_code;
}
