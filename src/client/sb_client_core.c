/* The client's protocol core: the connection state machine with backoff,
 * the outbox (client_msg_id, window, resend, statuses), the inbox (per
 * conversation cursor, gap buffer, exactly-once in-order surfacing, ACKs,
 * SYNC loop), OPEN/HISTORY and the customer-service requests. No I/O, no
 * clock: see the header. */
#include "sb_client_core.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_map.h"
#include "sb_token.h"
#include "sb_utf8.h"
#include "sb_ws.h"

/* A message held behind a gap, protobuf-packed. */
typedef struct cc_held {
    struct cc_held *next;
    uint64_t seq;
    size_t len;
    uint8_t data[];
} cc_held;

typedef struct cc_conv {
    uint64_t conv_id;
    uint64_t surfaced;                  /* highest contiguous seq surfaced */
    uint64_t acked;                     /* last ACK written */
    uint64_t read_seq;                  /* READ asked for by the app */
    uint64_t read_sent;                 /* READ written */
    uint64_t peer_delivered, peer_read; /* max over other participants */
    cc_held *held;                      /* ascending seq, all > surfaced+1 */
    struct cc_conv *dirty_next;
    bool dirty; /* on the dirty list: an ACK or READ may be due */
} cc_conv;

/* One send in the outbox, body inline. */
typedef struct cc_out {
    struct cc_out *prev, *next;
    uint8_t id[SB_CLIENT_MSG_ID_BYTES];
    uint64_t conv_id, quote_seq;
    int64_t sent_ms, not_before_ms;
    uint32_t rid, attempts;
    Sbp__MsgType type;
    bool inflight;
    uint8_t n_quick; /* quick replies, each NUL-terminated after the body */
    size_t body_len;
    char body[];
} cc_out;

/* A SENT message watched for DELIVERED and READ. */
typedef struct cc_track {
    uint8_t id[SB_CLIENT_MSG_ID_BYTES];
    uint64_t conv_id, seq, msg_id;
    int64_t server_ts;
    sb_client_send_status status;
} cc_track;

/* Request kinds; the answer frame expected for each is in on_frame. */
enum {
    REQ_FREE = 0,
    REQ_OPEN,
    REQ_HISTORY,
    REQ_TRANSFER, /* REQ_TRANSFER..REQ_ADMIN: answered by OK (on_done) */
    REQ_CLOSE,
    REQ_HANDOFF,
    REQ_RECALL,
    REQ_TAG,
    REQ_ADMIN,
    REQ_AGENT_STATE,
    REQ_CONV_LIST,
    REQ_SEARCH,
    REQ_CANNED,
    REQ_ADMIN_CMD, /* answered by ADMIN_RESP or OK (on_admin) */
};

#define EVENT_RECALLED "msg.recalled"

typedef struct cc_req {
    uint32_t rid;
    int kind;
    int64_t deadline_ms;
} cc_req;

struct sb_client_core {
    sb_client_config cfg; /* strings point at the copies below */
    char *token, *device_id, *client_name, *locale, *url;
    sb_client_cbs cbs;
    void *ud;
    sb_client_core_io io;

    sb_client_state state;
    int depth;        /* nesting of entry points; work is done at 0 */
    bool pump_needed; /* frames may be due */
    int64_t now_ms, state_since_ms, last_rx_ms, reconnect_at_ms;
    int64_t conn_started_ms; /* the connect timeout runs from here */
    int64_t gap_retry_at_ms; /* 0: none */
    uint32_t backoff_attempt, backoff_ms;
    int last_err;
    uint16_t close_code;
    uint32_t next_rid, hello_rid, sync_rid;
    bool sync_inflight, need_sync;
    sb_client_session sess;
    uint32_t window, body_bytes_max, heartbeat_ms, sync_limit;

    sb_map convs;
    cc_conv *dirty;
    size_t held_now;

    cc_out *out_head, *out_tail;
    size_t out_len, n_inflight;

    cc_track *track; /* a ring from track_head, grows up to track_max */
    size_t n_track, track_cap, track_head;
    cc_req *reqs;

    sb_buf outq; /* [u32 length][frame] records */
    size_t outq_off;

    sb_client_stats st;
};

/* ---- small helpers ---------------------------------------------------- */

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
    c->heartbeat_ms = 30000;
    c->body_bytes_max = 64 * 1024;
    c->sync_limit = 0;
    c->gap_retry_ms = 1000;
    c->frame_bytes_max = 1024 * 1024;
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

static uint32_t new_rid(sb_client_core *cc)
{
    if (++cc->next_rid == 0) cc->next_rid = 1;
    return cc->next_rid;
}

static bool connected(const sb_client_core *cc)
{
    return cc->state == SB_CLIENT_CONNECTING ||
           cc->state == SB_CLIENT_HELLO_SENT || cc->state == SB_CLIENT_READY;
}

/* Entry points nest through callbacks; frames are produced at depth 0. */
static void enter(sb_client_core *cc)
{
    cc->depth++;
}

static void leave(sb_client_core *cc)
{
    assert(cc->depth > 0);
    cc->depth--;
}

static void set_state(sb_client_core *cc, sb_client_state st, int err)
{
    cc->state = st;
    cc->state_since_ms = cc->now_ms;
    if (cc->cbs.on_state) cc->cbs.on_state(cc->ud, st, err);
}

/* Appends one encoded frame to the out queue. */
static int emit(sb_client_core *cc, const Sbp__Frame *f)
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

/* ---- conversations ---------------------------------------------------- */

static cc_conv *conv_get(sb_client_core *cc, uint64_t conv_id, bool create)
{
    cc_conv *c = sb_map_get(&cc->convs, conv_id);
    if (c || !create) return c;
    if (cc->convs.len >= cc->cfg.convs_max) return NULL;
    c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->conv_id = conv_id;
    if (sb_map_put(&cc->convs, conv_id, c) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

static void conv_dirty(sb_client_core *cc, cc_conv *c)
{
    cc->pump_needed = true;
    if (c->dirty) return;
    c->dirty = true;
    c->dirty_next = cc->dirty;
    cc->dirty = c;
}

static void held_drop_through(sb_client_core *cc, cc_conv *c, uint64_t seq)
{
    while (c->held && c->held->seq <= seq) {
        cc_held *h = c->held;
        c->held = h->next;
        cc->held_now--;
        free(h);
    }
}

/* The seq a "msg.recalled" event (args [user, seq]) takes back, or 0 if m
 * is no such event. Only the server makes events: SEND cannot carry one. */
static uint64_t recalled_seq(const Sbp__Message *m)
{
    if ((m->type != SBP__MSG_TYPE__MSG_EVENT &&
         m->type != SBP__MSG_TYPE__MSG_SYSTEM) ||
        !m->event || strcmp(m->event->key, EVENT_RECALLED) != 0 ||
        m->event->n_args < 2)
        return 0;
    const char *p = m->event->args[1];
    uint64_t v = 0;
    if (!*p) return 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return 0;
        if (v > (UINT64_MAX - 9) / 10) return 0;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    return v < m->seq ? v : 0; /* a recall follows what it takes back */
}

static void surface(sb_client_core *cc, cc_conv *c, const Sbp__Message *m)
{
    assert(m->seq == c->surfaced + 1);
    c->surfaced = m->seq;
    cc->st.surfaced++;
    conv_dirty(cc, c);
    if (cc->cbs.on_message) cc->cbs.on_message(cc->ud, m);
    uint64_t seq = recalled_seq(m);
    if (seq && cc->cbs.on_recalled && cc->state != SB_CLIENT_STOPPED)
        cc->cbs.on_recalled(cc->ud, m->conv_id, seq);
}

/* Surfaces held messages that have become contiguous. */
static void held_drain(sb_client_core *cc, cc_conv *c)
{
    while (c->held && c->held->seq <= c->surfaced + 1 &&
           cc->state != SB_CLIENT_STOPPED) {
        cc_held *h = c->held;
        c->held = h->next;
        cc->held_now--;
        if (h->seq == c->surfaced + 1) {
            Sbp__Message *m = sbp__message__unpack(NULL, h->len, h->data);
            if (m) {
                surface(cc, c, m);
                sbp__message__free_unpacked(m, NULL);
            } else {
                cc->need_sync = true; /* cannot happen: we packed it */
            }
        }
        free(h);
    }
}

static void hold(sb_client_core *cc, cc_conv *c, const Sbp__Message *m)
{
    cc_held **pp = &c->held;
    while (*pp && (*pp)->seq < m->seq)
        pp = &(*pp)->next;
    if (*pp && (*pp)->seq == m->seq) {
        cc->st.duplicates++;
        return;
    }
    cc->need_sync = true;
    cc->pump_needed = true;
    if (cc->held_now >= cc->cfg.held_max) {
        cc->st.held_dropped++;
        return;
    }
    size_t n = sbp__message__get_packed_size(m);
    cc_held *h = malloc(sizeof *h + n);
    if (!h) {
        cc->st.held_dropped++;
        return;
    }
    h->seq = m->seq;
    h->len = sbp__message__pack(m, h->data);
    h->next = *pp;
    *pp = h;
    cc->held_now++;
    cc->st.held++;
}

/* The one way into the inbox: PUSH, SYNC_RESP and own SEND_ACKs. */
static void inbox_offer(sb_client_core *cc, const Sbp__Message *m)
{
    if (m->conv_id == 0 || m->seq == 0) {
        cc->st.protocol_errors++;
        return;
    }
    cc_conv *c = conv_get(cc, m->conv_id, true);
    if (!c) {
        cc->st.dropped++;
        return;
    }
    if (m->seq <= c->surfaced) {
        cc->st.duplicates++;
        return;
    }
    if (m->seq == c->surfaced + 1) {
        surface(cc, c, m);
        held_drain(cc, c);
    } else {
        hold(cc, c, m);
    }
}

static bool any_gap(const sb_client_core *cc)
{
    if (cc->held_now > 0) return true;
    return false;
}

/* ---- outbox ------------------------------------------------------------ */

static void out_unlink(sb_client_core *cc, cc_out *o)
{
    if (o->prev)
        o->prev->next = o->next;
    else
        cc->out_head = o->next;
    if (o->next)
        o->next->prev = o->prev;
    else
        cc->out_tail = o->prev;
    if (o->inflight) cc->n_inflight--;
    o->inflight = false;
    cc->out_len--;
}

static cc_out *out_find(sb_client_core *cc, const ProtobufCBinaryData *id,
                        uint32_t rid)
{
    for (cc_out *o = cc->out_head; o; o = o->next) {
        if (id && id->len == SB_CLIENT_MSG_ID_BYTES) {
            if (memcmp(o->id, id->data, SB_CLIENT_MSG_ID_BYTES) == 0) return o;
        } else if (rid && o->rid == rid) {
            return o;
        }
    }
    return NULL;
}

static void report(sb_client_core *cc, const uint8_t *id, uint64_t conv_id,
                   uint64_t msg_id, uint64_t seq, int64_t ts,
                   sb_client_send_status st, bool dup, int err,
                   const char *text)
{
    if (!cc->cbs.on_send_status) return;
    sb_client_send_info i = {
        .client_msg_id = id,
        .conv_id = conv_id,
        .msg_id = msg_id,
        .seq = seq,
        .server_ts = ts,
        .status = st,
        .duplicate = dup,
        .err = err,
        .text = text ? text : "",
    };
    cc->cbs.on_send_status(cc->ud, &i);
}

static void out_fail(sb_client_core *cc, cc_out *o, int err, const char *text)
{
    out_unlink(cc, o);
    cc->st.send_failed++;
    report(cc, o->id, o->conv_id, 0, 0, 0, SB_SEND_FAILED, false, err, text);
    free(o);
}

static bool retryable(Sbp__ErrorCode code)
{
    switch (code) {
    case SBP__ERROR_CODE__ERR_STORE:
    case SBP__ERROR_CODE__ERR_RATE_LIMITED:
    case SBP__ERROR_CODE__ERR_TOO_MANY_PENDING:
    case SBP__ERROR_CODE__ERR_UNAVAILABLE:
    case SBP__ERROR_CODE__ERR_INTERNAL:
    case SBP__ERROR_CODE__ERR_UNAUTHENTICATED:
        return true;
    default:
        return false;
    }
}

static bool attempts_left(const sb_client_core *cc, const cc_out *o)
{
    return cc->cfg.send_attempts_max == 0 ||
           o->attempts < cc->cfg.send_attempts_max;
}

static int send_out(sb_client_core *cc, cc_out *o)
{
    Sbp__Send s = SBP__SEND__INIT;
    s.client_msg_id.data = o->id;
    s.client_msg_id.len = SB_CLIENT_MSG_ID_BYTES;
    s.conv_id = o->conv_id;
    s.type = o->type;
    s.body = o->body;
    s.quote_seq = o->quote_seq;
    Sbp__QuickReply qr[SB_QUICK_MAX];
    Sbp__QuickReply *qp[SB_QUICK_MAX];
    assert(o->n_quick <= SB_QUICK_MAX);
    char *q = o->body + o->body_len + 1;
    for (size_t i = 0; i < o->n_quick; i++) {
        sbp__quick_reply__init(&qr[i]);
        qr[i].title = qr[i].payload = q;
        qp[i] = &qr[i];
        q += strlen(q) + 1;
    }
    s.n_quick_replies = o->n_quick;
    s.quick_replies = o->n_quick ? qp : NULL;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = new_rid(cc);
    f.body_case = SBP__FRAME__BODY_SEND;
    f.send = &s;
    int rc = emit(cc, &f);
    if (rc) return rc;
    o->rid = f.rid;
    o->inflight = true;
    o->sent_ms = cc->now_ms;
    if (o->attempts > 0) cc->st.resends++;
    o->attempts++;
    cc->n_inflight++;
    cc->st.send_frames++;
    return 0;
}

/* Receipts: statuses DELIVERED and READ of SENT messages. */
static bool track_advance(sb_client_core *cc, cc_track *t, const cc_conv *c)
{
    if (t->status < SB_SEND_DELIVERED && c->peer_delivered >= t->seq) {
        t->status = SB_SEND_DELIVERED;
        report(cc, t->id, t->conv_id, t->msg_id, t->seq, t->server_ts,
               SB_SEND_DELIVERED, false, 0, NULL);
    }
    if (t->status < SB_SEND_READ && c->peer_read >= t->seq) {
        t->status = SB_SEND_READ;
        report(cc, t->id, t->conv_id, t->msg_id, t->seq, t->server_ts,
               SB_SEND_READ, false, 0, NULL);
    }
    return t->status == SB_SEND_READ;
}

static cc_track *track_at(sb_client_core *cc, size_t i)
{
    return &cc->track[(cc->track_head + i) % cc->track_cap];
}

static void track_add(sb_client_core *cc, const cc_track *t)
{
    if (cc->cfg.track_max == 0) return;
    if (cc->n_track == cc->track_cap && cc->track_cap < cc->cfg.track_max) {
        size_t cap = cc->track_cap ? cc->track_cap * 2 : 8;
        if (cap > cc->cfg.track_max) cap = cc->cfg.track_max;
        cc_track *t2 = malloc(cap * sizeof *t2);
        if (t2) {
            for (size_t i = 0; i < cc->n_track; i++)
                t2[i] = *track_at(cc, i);
            free(cc->track);
            cc->track = t2;
            cc->track_cap = cap;
            cc->track_head = 0;
        }
    }
    if (cc->track_cap == 0) return; /* out of memory: no receipts */
    if (cc->n_track == cc->track_cap) {
        /* Forget the oldest: no more receipts for it. */
        cc->track_head = (cc->track_head + 1) % cc->track_cap;
        cc->n_track--;
    }
    *track_at(cc, cc->n_track++) = *t;
}

/* A READ_NOTIFY moved conversation c: advance its tracked sends and drop
 * those READ, keeping the others in order. */
static void on_receipts(sb_client_core *cc, cc_conv *c)
{
    size_t w = 0;
    for (size_t r = 0; r < cc->n_track; r++) {
        cc_track t = *track_at(cc, r);
        if (t.conv_id == c->conv_id && track_advance(cc, &t, c)) continue;
        *track_at(cc, w++) = t;
    }
    cc->n_track = w;
}

/* ---- connection -------------------------------------------------------- */

/* Everything that belongs to one connection is dropped; sends in flight
 * go back to the queue. No callbacks: see fail_requests(). */
static void conn_reset(sb_client_core *cc)
{
    cc->outq.len = 0;
    cc->outq_off = 0;
    for (cc_out *o = cc->out_head; o; o = o->next)
        o->inflight = false;
    cc->n_inflight = 0;
    cc->sync_inflight = false;
    cc->st.disconnects++;
}

/* A request ends without its answer frame: err is the server's ERROR,
 * -ETIMEDOUT or -ECONNRESET. */
static void req_answer(sb_client_core *cc, cc_req r, int err)
{
    const sb_client_cbs *cb = &cc->cbs;
    switch (r.kind) {
    case REQ_OPEN:
        if (cb->on_open) cb->on_open(cc->ud, r.rid, err, NULL);
        break;
    case REQ_HISTORY:
        if (cb->on_history) cb->on_history(cc->ud, r.rid, err, NULL);
        break;
    case REQ_TRANSFER:
    case REQ_CLOSE:
    case REQ_HANDOFF:
    case REQ_RECALL:
    case REQ_TAG:
    case REQ_ADMIN:
        if (cb->on_done) cb->on_done(cc->ud, r.rid, err);
        break;
    case REQ_AGENT_STATE:
        if (cb->on_agent_state) cb->on_agent_state(cc->ud, r.rid, err, NULL);
        break;
    case REQ_CONV_LIST:
        if (cb->on_conv_list) cb->on_conv_list(cc->ud, r.rid, err, NULL);
        break;
    case REQ_SEARCH:
        if (cb->on_search) cb->on_search(cc->ud, r.rid, err, NULL);
        break;
    case REQ_CANNED:
        if (cb->on_canned) cb->on_canned(cc->ud, r.rid, err, NULL);
        break;
    case REQ_ADMIN_CMD:
        if (cb->on_admin) cb->on_admin(cc->ud, r.rid, err, "");
        break;
    default:
        break;
    }
}

/* Requests die with their connection. */
static void fail_requests(sb_client_core *cc, int err)
{
    for (uint32_t i = 0; i < cc->cfg.requests_max; i++) {
        cc_req r = cc->reqs[i];
        if (r.kind == REQ_FREE) continue;
        cc->reqs[i].kind = REQ_FREE;
        req_answer(cc, r, err);
    }
}

static void begin_connect(sb_client_core *cc)
{
    cc->st.connects++;
    cc->conn_started_ms = cc->now_ms;
    cc->close_code = 0;
    set_state(cc, SB_CLIENT_CONNECTING, 0);
    if (cc->state == SB_CLIENT_CONNECTING) cc->io.connect(cc->io.ud);
}

/* Full jitter: uniform in [0, min(max, base * 2^attempt)]. */
static void schedule_backoff(sb_client_core *cc, int err)
{
    uint64_t cap = cc->cfg.backoff_ms_base;
    for (uint32_t i = 0;
         i < cc->backoff_attempt && cap < cc->cfg.backoff_ms_max; i++)
        cap *= 2;
    if (cap > cc->cfg.backoff_ms_max) cap = cc->cfg.backoff_ms_max;
    uint64_t r = rand_u32(cc);
    cc->backoff_ms = (uint32_t)(((cap + 1) * r) >> 32);
    cc->backoff_attempt++;
    cc->reconnect_at_ms = cc->now_ms + cc->backoff_ms;
    cc->last_err = err;
    set_state(cc, SB_CLIENT_BACKOFF, err);
}

/* The core drops the connection: io->close, then backoff or stop. */
static void drop_conn(sb_client_core *cc, int err, uint16_t code, bool fatal)
{
    assert(connected(cc));
    cc->state = fatal ? SB_CLIENT_STOPPED : SB_CLIENT_BACKOFF;
    cc->io.close(cc->io.ud, code);
    conn_reset(cc);
    if (fatal) {
        cc->last_err = err;
        set_state(cc, SB_CLIENT_STOPPED, err);
    } else {
        schedule_backoff(cc, err);
    }
    fail_requests(cc, -ECONNRESET);
}

/* ---- frames in --------------------------------------------------------- */

static void on_welcome(sb_client_core *cc, const Sbp__Welcome *w)
{
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
    cc->window = cc->cfg.window_max;
    if (w->pending_sends_max && w->pending_sends_max < cc->window)
        cc->window = w->pending_sends_max;
    if (cc->window == 0) cc->window = 1;
    cc->body_bytes_max =
        w->body_bytes_max ? w->body_bytes_max : cc->cfg.body_bytes_max;
    cc->heartbeat_ms = w->heartbeat_ms ? w->heartbeat_ms : cc->cfg.heartbeat_ms;
    cc->sync_limit = cc->cfg.sync_limit ? cc->cfg.sync_limit : w->sync_page_max;
    if (w->sync_page_max && cc->sync_limit > w->sync_page_max)
        cc->sync_limit = w->sync_page_max;
    cc->backoff_attempt = 0;
    cc->last_err = 0;
    cc->st.readies++;
    cc->need_sync = !cc->cfg.sync_disabled;
    cc->gap_retry_at_ms = 0;
    /* The last ACKs may have been lost with the connection: ACK again. */
    for (size_t i = 0; i < cc->convs.cap; i++) {
        cc_conv *c = cc->convs.slots[i].val;
        if (!c) continue;
        if (c->surfaced) c->acked = 0;
        if (c->read_seq) c->read_sent = 0;
        if (c->surfaced || c->read_seq) conv_dirty(cc, c);
    }
    cc->pump_needed = true;
    set_state(cc, SB_CLIENT_READY, 0);
}

static void on_send_ack(sb_client_core *cc, const Sbp__SendAck *a)
{
    cc_out *o = out_find(cc, &a->client_msg_id, 0);
    if (!o) return; /* an answer to a resend already answered */
    out_unlink(cc, o);
    cc->pump_needed = true;
    cc->st.send_acks++;
    uint64_t conv_id = a->conv_id ? a->conv_id : o->conv_id;
    report(cc, o->id, conv_id, a->msg_id, a->seq, a->server_ts, SB_SEND_SENT,
           a->duplicate, 0, NULL);

    /* The sender gets no PUSH of its own message: surface it here. */
    Sbp__Message m = SBP__MESSAGE__INIT;
    m.msg_id = a->msg_id;
    m.conv_id = conv_id;
    m.seq = a->seq;
    m.sender = cc->sess.user_id;
    m.sender_device = cc->device_id;
    m.client_msg_id.data = o->id;
    m.client_msg_id.len = SB_CLIENT_MSG_ID_BYTES;
    m.type = o->type;
    m.body = o->body;
    m.quote_seq = o->quote_seq;
    m.server_ts = a->server_ts;
    m.lang = cc->locale;
    inbox_offer(cc, &m);

    cc_conv *c = conv_get(cc, conv_id, true);
    if (c && a->seq) {
        cc_track t = {.conv_id = conv_id,
                      .seq = a->seq,
                      .msg_id = a->msg_id,
                      .server_ts = a->server_ts,
                      .status = SB_SEND_SENT};
        memcpy(t.id, o->id, sizeof t.id);
        if (!track_advance(cc, &t, c)) track_add(cc, &t);
    }
    free(o);
}

static void on_error_frame(sb_client_core *cc, uint32_t rid,
                           const Sbp__Error *e)
{
    int err = SB_E(e->code);
    if (cc->state == SB_CLIENT_HELLO_SENT &&
        (rid == cc->hello_rid || rid == 0)) {
        bool fatal = e->code == SBP__ERROR_CODE__ERR_BAD_TOKEN ||
                     e->code == SBP__ERROR_CODE__ERR_TOKEN_EXPIRED;
        drop_conn(cc, err, SB_WS_CLOSE_NORMAL, fatal);
        return;
    }
    cc_out *o = out_find(cc, &e->client_msg_id, rid);
    if (o) {
        if (!retryable(e->code) || !attempts_left(cc, o)) {
            out_fail(cc, o, err, e->text);
            return;
        }
        if (o->inflight) cc->n_inflight--;
        o->inflight = false;
        uint32_t a = o->attempts < 10 ? o->attempts : 10;
        uint64_t delay = (uint64_t)100 << a;
        if (delay > cc->cfg.send_timeout_ms) delay = cc->cfg.send_timeout_ms;
        o->not_before_ms = cc->now_ms + (int64_t)delay;
        cc->pump_needed = true;
        return;
    }
    if (rid && rid == cc->sync_rid && cc->sync_inflight) {
        cc->sync_inflight = false;
        cc->gap_retry_at_ms = cc->now_ms + cc->cfg.gap_retry_ms;
        return;
    }
    for (uint32_t i = 0; rid && i < cc->cfg.requests_max; i++) {
        cc_req r = cc->reqs[i];
        if (r.kind == REQ_FREE || r.rid != rid) continue;
        cc->reqs[i].kind = REQ_FREE;
        if (r.kind == REQ_ADMIN_CMD && cc->cbs.on_admin)
            cc->cbs.on_admin(cc->ud, rid, err, e->text); /* the reason */
        else
            req_answer(cc, r, err);
        return;
    }
    if (cc->cbs.on_error) cc->cbs.on_error(cc->ud, err, e->text);
}

static void on_sync_resp(sb_client_core *cc, uint32_t rid,
                         const Sbp__SyncResp *r)
{
    if (!cc->sync_inflight || rid != cc->sync_rid) {
        cc->st.protocol_errors++;
    }
    uint64_t surfaced = cc->st.surfaced;
    for (size_t i = 0; i < r->n_messages; i++) {
        if (cc->state != SB_CLIENT_READY) return; /* stopped in a cb */
        inbox_offer(cc, r->messages[i]);
    }
    if (!cc->sync_inflight || rid != cc->sync_rid) return;
    cc->sync_inflight = false;
    cc->pump_needed = true;
    /* Another page, unless this one moved no cursor: asking again with the
     * same cursors would loop. */
    if (r->more && cc->st.surfaced > surfaced) {
        cc->need_sync = true;
        return;
    }
    /* A gap that outlives a full SYNC: the message may not be visible yet;
     * try again later rather than loop. */
    cc->need_sync = false;
    cc->gap_retry_at_ms = any_gap(cc) ? cc->now_ms + cc->cfg.gap_retry_ms : 0;
    if (cc->cbs.on_synced) cc->cbs.on_synced(cc->ud);
}

static void on_read_notify(sb_client_core *cc, const Sbp__ReadNotify *r)
{
    if (strcmp(r->user_id, cc->sess.user_id) != 0) {
        cc_conv *c = conv_get(cc, r->conv_id, true);
        if (c) {
            if (r->delivered_seq > c->peer_delivered)
                c->peer_delivered = r->delivered_seq;
            if (r->read_seq > c->peer_read) c->peer_read = r->read_seq;
            if (c->peer_read > c->peer_delivered)
                c->peer_delivered = c->peer_read;
            on_receipts(cc, c);
        }
    }
    if (cc->cbs.on_receipt) cc->cbs.on_receipt(cc->ud, r);
}

static cc_req *req_find(sb_client_core *cc, uint32_t rid, int kind)
{
    for (uint32_t i = 0; i < cc->cfg.requests_max; i++)
        if (cc->reqs[i].kind == kind && cc->reqs[i].rid == rid)
            return &cc->reqs[i];
    return NULL;
}

/* The request an OK answers: one of the kinds answered by on_done. */
static cc_req *req_find_done(sb_client_core *cc, uint32_t rid)
{
    for (uint32_t i = 0; rid && i < cc->cfg.requests_max; i++) {
        cc_req *r = &cc->reqs[i];
        if (r->rid == rid && r->kind >= REQ_TRANSFER && r->kind <= REQ_ADMIN)
            return r;
    }
    return NULL;
}

/* Takes the pending request (rid, kind) for its answer: true if there was
 * one (its slot is free again). Answers when not READY were sent to an
 * earlier connection and are dropped with it. */
static bool req_take(sb_client_core *cc, bool ready, uint32_t rid, int kind)
{
    cc_req *r = ready && rid ? req_find(cc, rid, kind) : NULL;
    if (!r) return false;
    r->kind = REQ_FREE;
    return true;
}

void sb_client_core_on_frame(sb_client_core *cc, const uint8_t *p, size_t n,
                             int64_t now_ms)
{
    assert(cc && (p || n == 0));
    enter(cc);
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
    bool ready = cc->state == SB_CLIENT_READY;
    switch (f->body_case) {
    case SBP__FRAME__BODY_WELCOME:
        on_welcome(cc, f->welcome);
        break;
    case SBP__FRAME__BODY_ERROR:
        on_error_frame(cc, f->rid, f->error);
        break;
    case SBP__FRAME__BODY_SEND_ACK:
        if (ready) on_send_ack(cc, f->send_ack);
        break;
    case SBP__FRAME__BODY_PUSH:
        if (!ready) break;
        for (size_t i = 0; i < f->push->n_messages; i++) {
            if (cc->state != SB_CLIENT_READY) break; /* stopped in a cb */
            inbox_offer(cc, f->push->messages[i]);
        }
        break;
    case SBP__FRAME__BODY_SYNC_RESP:
        if (ready) on_sync_resp(cc, f->rid, f->sync_resp);
        break;
    case SBP__FRAME__BODY_READ_NOTIFY:
        if (ready) on_read_notify(cc, f->read_notify);
        break;
    case SBP__FRAME__BODY_OPEN_RESP: {
        cc_req *r = ready ? req_find(cc, f->rid, REQ_OPEN) : NULL;
        if (!r) break;
        r->kind = REQ_FREE;
        if (cc->cbs.on_open)
            cc->cbs.on_open(cc->ud, f->rid,
                            f->open_resp->conv ? 0 : SB_E_INVALID,
                            f->open_resp->conv);
        break;
    }
    case SBP__FRAME__BODY_HISTORY_RESP: {
        cc_req *r = ready ? req_find(cc, f->rid, REQ_HISTORY) : NULL;
        if (!r) break;
        r->kind = REQ_FREE;
        if (cc->cbs.on_history)
            cc->cbs.on_history(cc->ud, f->rid, 0, f->history_resp);
        break;
    }
    case SBP__FRAME__BODY_OK: {
        if (req_take(cc, ready, f->rid, REQ_ADMIN_CMD)) {
            if (cc->cbs.on_admin) cc->cbs.on_admin(cc->ud, f->rid, 0, "");
            break;
        }
        cc_req *r = ready ? req_find_done(cc, f->rid) : NULL;
        if (!r) break; /* late: the request timed out */
        r->kind = REQ_FREE;
        if (cc->cbs.on_done) cc->cbs.on_done(cc->ud, f->rid, 0);
        break;
    }
    case SBP__FRAME__BODY_AGENT_STATE:
        if (!ready) break;
        if (f->rid && !req_take(cc, ready, f->rid, REQ_AGENT_STATE)) break;
        if (cc->cbs.on_agent_state)
            cc->cbs.on_agent_state(cc->ud, f->rid, 0, f->agent_state);
        break;
    case SBP__FRAME__BODY_CONV_LIST_RESP:
        if (req_take(cc, ready, f->rid, REQ_CONV_LIST) && cc->cbs.on_conv_list)
            cc->cbs.on_conv_list(cc->ud, f->rid, 0, f->conv_list_resp);
        break;
    case SBP__FRAME__BODY_SEARCH_RESP:
        if (req_take(cc, ready, f->rid, REQ_SEARCH) && cc->cbs.on_search)
            cc->cbs.on_search(cc->ud, f->rid, 0, f->search_resp);
        break;
    case SBP__FRAME__BODY_CANNED_LIST_RESP:
        if (req_take(cc, ready, f->rid, REQ_CANNED) && cc->cbs.on_canned)
            cc->cbs.on_canned(cc->ud, f->rid, 0, f->canned_list_resp);
        break;
    case SBP__FRAME__BODY_ADMIN_RESP:
        if (req_take(cc, ready, f->rid, REQ_ADMIN_CMD) && cc->cbs.on_admin)
            cc->cbs.on_admin(cc->ud, f->rid, 0, f->admin_resp->text);
        break;
    case SBP__FRAME__BODY_CONV_UPDATE:
        if (!ready || !f->conv_update->conv) {
            if (ready) cc->st.protocol_errors++;
            break;
        }
        if (cc->cbs.on_conv_update)
            cc->cbs.on_conv_update(cc->ud, f->conv_update->conv);
        break;
    case SBP__FRAME__BODY_TYPING:
        if (ready && cc->cbs.on_typing) cc->cbs.on_typing(cc->ud, f->typing);
        break;
    default:
        cc->st.protocol_errors++;
        break;
    }
    sb_frame_free(f);
out:
    leave(cc);
}

/* ---- frames out --------------------------------------------------------- */

static void send_sync(sb_client_core *cc)
{
    size_t n = 0;
    Sbp__Cursor *cur = NULL;
    Sbp__Cursor **curp = NULL;
    if (cc->convs.len) {
        cur = malloc(cc->convs.len * sizeof *cur);
        curp = malloc(cc->convs.len * sizeof *curp);
        if (!cur || !curp) goto out;
        for (size_t i = 0; i < cc->convs.cap; i++) {
            cc_conv *c = cc->convs.slots[i].val;
            if (!c) continue;
            sbp__cursor__init(&cur[n]);
            cur[n].conv_id = c->conv_id;
            cur[n].seq = c->surfaced;
            curp[n] = &cur[n];
            n++;
        }
    }
    Sbp__Sync s = SBP__SYNC__INIT;
    s.n_cursors = n;
    s.cursors = curp;
    s.limit = cc->sync_limit;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = new_rid(cc);
    f.body_case = SBP__FRAME__BODY_SYNC;
    f.sync = &s;
    if (emit(cc, &f) == 0) {
        cc->sync_rid = f.rid;
        cc->sync_inflight = true;
        cc->need_sync = false;
        cc->gap_retry_at_ms = 0;
        cc->st.syncs++;
    }
out:
    free(cur);
    free(curp);
}

/* ACK and READ for every conversation that has one due. */
static void flush_receipts(sb_client_core *cc)
{
    while (cc->dirty) {
        cc_conv *c = cc->dirty;
        if (c->surfaced > c->acked) {
            Sbp__Ack a = SBP__ACK__INIT;
            a.conv_id = c->conv_id;
            a.seq = c->surfaced;
            Sbp__Frame f = SBP__FRAME__INIT;
            f.body_case = SBP__FRAME__BODY_ACK;
            f.ack = &a;
            if (emit(cc, &f) != 0) break;
            c->acked = c->surfaced;
            cc->st.acks++;
        }
        if (c->read_seq > c->read_sent) {
            Sbp__Read r = SBP__READ__INIT;
            r.conv_id = c->conv_id;
            r.seq = c->read_seq;
            Sbp__Frame f = SBP__FRAME__INIT;
            f.body_case = SBP__FRAME__BODY_READ;
            f.read = &r;
            if (emit(cc, &f) != 0) break;
            c->read_sent = c->read_seq;
        }
        cc->dirty = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
    }
}

/* Produces the frames that are due: SYNC, ACKs and READs, SENDs. */
static void pump(sb_client_core *cc)
{
    cc->pump_needed = false;
    if (cc->state != SB_CLIENT_READY) return;
    if (cc->need_sync && !cc->sync_inflight && !cc->cfg.sync_disabled)
        send_sync(cc);

    flush_receipts(cc);

    for (cc_out *o = cc->out_head; o && cc->n_inflight < cc->window;
         o = o->next) {
        if (o->inflight || o->not_before_ms > cc->now_ms) continue;
        if (send_out(cc, o) != 0) break;
    }
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
    enter(cc);
    cc->now_ms = now_ms;
    if (cc->state == SB_CLIENT_IDLE) begin_connect(cc);
    leave(cc);
}

void sb_client_core_stop(sb_client_core *cc)
{
    assert(cc);
    enter(cc);
    if (cc->state != SB_CLIENT_STOPPED) {
        bool was = connected(cc);
        /* What was surfaced is ACKed before the close frame. */
        if (cc->state == SB_CLIENT_READY) flush_receipts(cc);
        cc->state = SB_CLIENT_STOPPED;
        if (was) {
            cc->io.close(cc->io.ud, SB_WS_CLOSE_NORMAL);
            conn_reset(cc);
        }
        set_state(cc, SB_CLIENT_STOPPED, 0);
        fail_requests(cc, -ECONNRESET);
    }
    leave(cc);
}

void sb_client_core_on_open(sb_client_core *cc, int64_t now_ms)
{
    assert(cc);
    enter(cc);
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
    f.rid = cc->hello_rid = new_rid(cc);
    f.body_case = SBP__FRAME__BODY_HELLO;
    f.hello = &h;
    cc->outq.len = 0;
    cc->outq_off = 0;
    int rc = emit(cc, &f);
    if (rc) {
        drop_conn(cc, rc, SB_WS_CLOSE_INTERNAL, false);
        goto out;
    }
    set_state(cc, SB_CLIENT_HELLO_SENT, 0);
out:
    leave(cc);
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
    enter(cc);
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
        cc->state = SB_CLIENT_BACKOFF;
        conn_reset(cc);
        if (err == 0) err = code ? -ECONNRESET : -EPIPE;
        schedule_backoff(cc, err);
    }
    fail_requests(cc, -ECONNRESET);
out:
    leave(cc);
}

void sb_client_core_tick(sb_client_core *cc, int64_t now_ms)
{
    assert(cc);
    enter(cc);
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
    case SB_CLIENT_READY: {
        if (now_ms - cc->last_rx_ms >= 3 * (int64_t)cc->heartbeat_ms) {
            drop_conn(cc, -ETIMEDOUT, SB_WS_CLOSE_GOING_AWAY, false);
            break;
        }
        cc_out *next;
        for (cc_out *o = cc->out_head; o; o = next) {
            next = o->next;
            if (!o->inflight ||
                now_ms - o->sent_ms < (int64_t)cc->cfg.send_timeout_ms)
                continue;
            if (!attempts_left(cc, o)) {
                out_fail(cc, o, -ETIMEDOUT, "no SEND_ACK");
                continue;
            }
            o->inflight = false; /* pump writes it again, same id */
            cc->n_inflight--;
        }
        for (uint32_t i = 0; i < cc->cfg.requests_max; i++) {
            cc_req r = cc->reqs[i];
            if (r.kind == REQ_FREE || now_ms < r.deadline_ms) continue;
            cc->reqs[i].kind = REQ_FREE;
            req_answer(cc, r, -ETIMEDOUT);
        }
        if (cc->gap_retry_at_ms && now_ms >= cc->gap_retry_at_ms &&
            !cc->sync_inflight) {
            cc->gap_retry_at_ms = 0;
            if (any_gap(cc)) cc->need_sync = true;
        }
        break;
    }
    default:
        break;
    }
    leave(cc);
}

/* ---- API calls ------------------------------------------------------------
 */

static int check_str(const char *s, size_t max, bool empty_ok);

/* A new outbox entry: the body, then each quick reply, NUL-terminated. */
static int out_add(sb_client_core *cc, uint64_t conv_id, Sbp__MsgType type,
                   const char *body, size_t len, uint64_t quote_seq,
                   const char *const *quick, size_t n_quick, uint8_t *id_out)
{
    assert(cc && (body || len == 0) && (quick || n_quick == 0));
    if (cc->state == SB_CLIENT_STOPPED) return -ESHUTDOWN;
    if (conv_id == 0) return SB_E_INVALID;
    if (len > cc->body_bytes_max || n_quick > SB_QUICK_MAX)
        return SB_E_TOO_LARGE;
    if (memchr(body ? body : "", '\0', len) ||
        !sb_utf8_valid(body ? body : "", len))
        return SB_E_BAD_UTF8;
    size_t extra = 0;
    for (size_t i = 0; i < n_quick; i++) {
        int rc = check_str(quick[i], SB_QUICK_BYTES_MAX, false);
        if (rc) return rc;
        extra += strlen(quick[i]) + 1;
    }
    if (cc->out_len >= cc->cfg.outbox_max) return -ENOBUFS;
    cc_out *o = calloc(1, sizeof *o + len + 1 + extra);
    if (!o) return -ENOMEM;
    cc->io.rand_bytes(cc->io.ud, o->id, sizeof o->id);
    o->conv_id = conv_id;
    o->quote_seq = quote_seq;
    o->type = type;
    o->body_len = len;
    if (len) memcpy(o->body, body, len);
    o->body[len] = '\0';
    char *q = o->body + len + 1;
    for (size_t i = 0; i < n_quick; i++) {
        size_t n = strlen(quick[i]) + 1;
        memcpy(q, quick[i], n);
        q += n;
    }
    o->n_quick = (uint8_t)n_quick;
    o->prev = cc->out_tail;
    if (cc->out_tail)
        cc->out_tail->next = o;
    else
        cc->out_head = o;
    cc->out_tail = o;
    cc->out_len++;
    cc->st.sends++;
    cc->pump_needed = true;
    if (id_out) memcpy(id_out, o->id, sizeof o->id);
    return 0;
}

int sb_client_core_send(sb_client_core *cc, uint64_t conv_id, Sbp__MsgType type,
                        const char *body, size_t len, uint64_t quote_seq,
                        uint8_t *id_out)
{
    return out_add(cc, conv_id, type, body, len, quote_seq, NULL, 0, id_out);
}

int sb_client_core_send_robot(sb_client_core *cc, uint64_t conv_id,
                              const char *body, size_t len,
                              const char *const *quick, size_t n_quick,
                              uint8_t *id_out)
{
    return out_add(cc, conv_id, SBP__MSG_TYPE__MSG_ROBOT, body, len, 0, quick,
                   n_quick, id_out);
}

static cc_req *req_alloc(sb_client_core *cc, int kind)
{
    for (uint32_t i = 0; i < cc->cfg.requests_max; i++) {
        cc_req *r = &cc->reqs[i];
        if (r->kind != REQ_FREE) continue;
        r->kind = kind;
        r->rid = new_rid(cc);
        r->deadline_ms = cc->now_ms + cc->cfg.request_timeout_ms;
        return r;
    }
    return NULL;
}

/* Writes f as a new request of kind: takes a slot, sets f->rid. On
 * failure nothing is written and the slot stays free. The caller has
 * checked READY. */
static int request(sb_client_core *cc, int kind, Sbp__Frame *f,
                   uint32_t *rid_out)
{
    assert(cc->state == SB_CLIENT_READY);
    cc_req *r = req_alloc(cc, kind);
    if (!r) return -ENOBUFS;
    f->rid = r->rid;
    int rc = emit(cc, f);
    if (rc) {
        r->kind = REQ_FREE;
        return rc;
    }
    if (rid_out) *rid_out = r->rid;
    return 0;
}

/* A string field: NULL is "". 0, SB_E_INVALID (empty when it may not be,
 * or longer than max bytes), SB_E_BAD_UTF8. */
static int check_str(const char *s, size_t max, bool empty_ok)
{
    size_t n = strlen(s ? s : "");
    if ((n == 0 && !empty_ok) || n > max) return SB_E_INVALID;
    return sb_utf8_valid(s ? s : "", n) ? 0 : SB_E_BAD_UTF8;
}

static char *str_or_empty(const char *s)
{
    return (char *)(s ? s : "");
}

static int open_req(sb_client_core *cc, const char *const *members,
                    size_t n_members, const char *title, Sbp__ConvKind kind,
                    const char *desk, uint32_t *rid_out)
{
    assert(cc && (members || n_members == 0));
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if (n_members >= SB_MEMBERS_MAX) return SB_E_INVALID;
    for (size_t i = 0; i < n_members; i++)
        if (!members[i] || strlen(members[i]) > SB_ID_BYTES_MAX)
            return SB_E_INVALID;
    int rc = check_str(desk, SB_ID_BYTES_MAX, true);
    if (rc) return rc;
    Sbp__Open o = SBP__OPEN__INIT;
    o.n_members = n_members;
    o.members = (char **)members;
    o.title = str_or_empty(title);
    o.kind = kind;
    o.desk = str_or_empty(desk);
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_OPEN;
    f.open = &o;
    return request(cc, REQ_OPEN, &f, rid_out);
}

int sb_client_core_open(sb_client_core *cc, const char *const *members,
                        size_t n_members, const char *title, Sbp__ConvKind kind,
                        uint32_t *rid_out)
{
    return open_req(cc, members, n_members, title, kind, NULL, rid_out);
}

int sb_client_core_history(sb_client_core *cc, uint64_t conv_id,
                           uint64_t before_seq, uint32_t limit,
                           uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if (conv_id == 0) return SB_E_INVALID;
    Sbp__History h = SBP__HISTORY__INIT;
    h.conv_id = conv_id;
    h.before_seq = before_seq;
    h.limit = limit;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_HISTORY;
    f.history = &h;
    return request(cc, REQ_HISTORY, &f, rid_out);
}

/* ---- customer service -------------------------------------------------- */

int sb_client_core_open_service(sb_client_core *cc, const char *desk,
                                uint32_t *rid_out)
{
    return open_req(cc, NULL, 0, NULL, SBP__CONV_KIND__CONV_SERVICE, desk,
                    rid_out);
}

int sb_client_core_transfer(sb_client_core *cc, uint64_t conv_id,
                            const char *to_agent, const char *to_group,
                            uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    bool agent = to_agent && to_agent[0], group = to_group && to_group[0];
    if (conv_id == 0 || agent == group) return SB_E_INVALID;
    int rc = check_str(to_agent, SB_ID_BYTES_MAX, true);
    if (!rc) rc = check_str(to_group, SB_ID_BYTES_MAX, true);
    if (rc) return rc;
    Sbp__Transfer t = SBP__TRANSFER__INIT;
    t.conv_id = conv_id;
    t.to_agent = str_or_empty(to_agent);
    t.to_group = str_or_empty(to_group);
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_TRANSFER;
    f.transfer = &t;
    return request(cc, REQ_TRANSFER, &f, rid_out);
}

int sb_client_core_close_conv(sb_client_core *cc, uint64_t conv_id,
                              uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if (conv_id == 0) return SB_E_INVALID;
    Sbp__Close c = SBP__CLOSE__INIT;
    c.conv_id = conv_id;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_CLOSE;
    f.close = &c;
    return request(cc, REQ_CLOSE, &f, rid_out);
}

int sb_client_core_admin(sb_client_core *cc, const char *op, uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    int rc = check_str(op, SB_ID_BYTES_MAX, false);
    if (rc) return rc;
    Sbp__Admin a = SBP__ADMIN__INIT;
    a.op = (char *)op;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_ADMIN;
    f.admin = &a;
    return request(cc, REQ_ADMIN, &f, rid_out);
}

int sb_client_core_admin_cmd(sb_client_core *cc, const char *op,
                             const char *body, uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    int rc = check_str(op, SB_ID_BYTES_MAX, false);
    if (rc) return rc;
    if (!sb_utf8_valid(body ? body : "", strlen(body ? body : "")))
        return SB_E_BAD_UTF8;
    Sbp__Admin a = SBP__ADMIN__INIT;
    a.op = (char *)op;
    a.body = str_or_empty(body);
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_ADMIN;
    f.admin = &a;
    /* The server refuses a larger message unread, so without the rid that
     * would tell us which request failed: measure it here (a rid adds at
     * most 6 bytes). */
    if (cc->sess.frame_bytes_max) {
        sb_buf b = SB_BUF_INIT;
        rc = sb_frame_encode(cc->cfg.enc, &f, &b);
        size_t n = b.len;
        sb_buf_free(&b);
        if (rc) return rc;
        if (n + 6 > cc->sess.frame_bytes_max) return SB_E_TOO_LARGE;
    }
    return request(cc, REQ_ADMIN_CMD, &f, rid_out);
}

int sb_client_core_handoff(sb_client_core *cc, uint64_t conv_id,
                           const char *group, uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if (conv_id == 0) return SB_E_INVALID;
    int rc = check_str(group, SB_ID_BYTES_MAX, true);
    if (rc) return rc;
    Sbp__Handoff h = SBP__HANDOFF__INIT;
    h.conv_id = conv_id;
    h.group = str_or_empty(group);
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_HANDOFF;
    f.handoff = &h;
    return request(cc, REQ_HANDOFF, &f, rid_out);
}

int sb_client_core_recall(sb_client_core *cc, uint64_t conv_id, uint64_t seq,
                          uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if (conv_id == 0 || seq == 0) return SB_E_INVALID;
    Sbp__Recall r = SBP__RECALL__INIT;
    r.conv_id = conv_id;
    r.seq = seq;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_RECALL;
    f.recall = &r;
    return request(cc, REQ_RECALL, &f, rid_out);
}

static int check_tags(const char *const *v, size_t n)
{
    if (n > SB_TAGS_MAX) return SB_E_TOO_LARGE;
    for (size_t i = 0; i < n; i++) {
        int rc = v[i] ? check_str(v[i], SB_TAG_BYTES_MAX, false) : SB_E_INVALID;
        if (rc) return rc;
    }
    return 0;
}

int sb_client_core_tag(sb_client_core *cc, uint64_t conv_id, uint64_t seq,
                       const char *const *add, size_t n_add,
                       const char *const *remove, size_t n_remove,
                       uint32_t *rid_out)
{
    assert(cc && (add || n_add == 0) && (remove || n_remove == 0));
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if (conv_id == 0 || n_add + n_remove == 0) return SB_E_INVALID;
    int rc = check_tags(add, n_add);
    if (!rc) rc = check_tags(remove, n_remove);
    if (rc) return rc;
    Sbp__Tag t = SBP__TAG__INIT;
    t.conv_id = conv_id;
    t.seq = seq;
    t.n_add = n_add;
    t.add = (char **)add;
    t.n_remove = n_remove;
    t.remove = (char **)remove;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_TAG;
    f.tag = &t;
    return request(cc, REQ_TAG, &f, rid_out);
}

int sb_client_core_typing(sb_client_core *cc, uint64_t conv_id, bool on)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if (conv_id == 0) return SB_E_INVALID;
    Sbp__Typing t = SBP__TYPING__INIT;
    t.conv_id = conv_id;
    t.on = on;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_TYPING;
    f.typing = &t;
    return emit(cc, &f);
}

int sb_client_core_agent_state(sb_client_core *cc, Sbp__AgentStatus status,
                               uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if (status != SBP__AGENT_STATUS__AGENT_ONLINE &&
        status != SBP__AGENT_STATUS__AGENT_AWAY)
        return SB_E_INVALID;
    Sbp__AgentState a = SBP__AGENT_STATE__INIT;
    a.status = status;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_AGENT_STATE;
    f.agent_state = &a;
    return request(cc, REQ_AGENT_STATE, &f, rid_out);
}

int sb_client_core_conv_list(sb_client_core *cc, const char *cursor,
                             uint32_t limit, Sbp__ConvState state,
                             const char *tag, bool mine, uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    if ((int)state < 0 || state > SBP__CONV_STATE__STATE_CLOSED)
        return SB_E_INVALID;
    int rc = check_str(cursor, SB_LIST_CURSOR_BYTES_MAX, true);
    if (!rc) rc = check_str(tag, SB_TAG_BYTES_MAX, true);
    if (rc) return rc;
    Sbp__ConvList l = SBP__CONV_LIST__INIT;
    l.cursor = str_or_empty(cursor);
    l.limit = limit;
    l.state = state;
    l.tag = str_or_empty(tag);
    l.mine = mine;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_CONV_LIST;
    f.conv_list = &l;
    return request(cc, REQ_CONV_LIST, &f, rid_out);
}

int sb_client_core_search(sb_client_core *cc, uint64_t conv_id,
                          const char *query, uint32_t limit, uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    size_t n = strlen(query ? query : "");
    if (n > SB_QUERY_BYTES_MAX) return SB_E_TOO_LARGE;
    int rc = check_str(query, SB_QUERY_BYTES_MAX, false);
    if (rc) return rc;
    Sbp__Search q = SBP__SEARCH__INIT;
    q.conv_id = conv_id;
    q.query = (char *)query;
    q.limit = limit;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_SEARCH;
    f.search = &q;
    return request(cc, REQ_SEARCH, &f, rid_out);
}

int sb_client_core_canned_list(sb_client_core *cc, const char *desk,
                               uint32_t *rid_out)
{
    assert(cc);
    if (cc->state != SB_CLIENT_READY) return -ENOTCONN;
    int rc = check_str(desk, SB_ID_BYTES_MAX, true);
    if (rc) return rc;
    Sbp__CannedList c = SBP__CANNED_LIST__INIT;
    c.desk = str_or_empty(desk);
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_CANNED_LIST;
    f.canned_list = &c;
    return request(cc, REQ_CANNED, &f, rid_out);
}

int sb_client_core_read(sb_client_core *cc, uint64_t conv_id, uint64_t seq)
{
    assert(cc);
    if (conv_id == 0 || seq == 0) return SB_E_INVALID;
    cc_conv *c = conv_get(cc, conv_id, true);
    if (!c) return -ENOBUFS;
    if (seq > c->read_seq) {
        c->read_seq = seq;
        conv_dirty(cc, c);
    }
    return 0;
}

void sb_client_core_sync(sb_client_core *cc)
{
    assert(cc);
    if (cc->cfg.sync_disabled) return;
    cc->need_sync = true;
    cc->pump_needed = true;
}

int sb_client_core_set_cursor(sb_client_core *cc, uint64_t conv_id,
                              uint64_t seq)
{
    assert(cc);
    if (conv_id == 0) return SB_E_INVALID;
    cc_conv *c = conv_get(cc, conv_id, true);
    if (!c) return -ENOBUFS;
    if (seq > c->surfaced) {
        c->surfaced = seq;
        held_drop_through(cc, c, seq);
        enter(cc);
        held_drain(cc, c);
        leave(cc);
        conv_dirty(cc, c);
    }
    return 0;
}

/* ---- life and accessors ---------------------------------------------------
 */

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
    cc->url = dup_str(cfg->url);
    cc->reqs = calloc(cfg->requests_max, sizeof *cc->reqs);
    if (!cc->token || !cc->device_id || !cc->client_name || !cc->locale ||
        !cc->url || !cc->reqs)
        goto err;
    cc->cfg.token = cc->token;
    cc->cfg.device_id = cc->device_id;
    cc->cfg.client_name = cc->client_name;
    cc->cfg.locale = cc->locale;
    cc->cfg.url = cc->url;
    if (cbs) cc->cbs = *cbs;
    cc->ud = ud;
    cc->io = *io;
    cc->state = SB_CLIENT_IDLE;
    cc->window = cfg->window_max;
    cc->body_bytes_max = cfg->body_bytes_max;
    cc->heartbeat_ms = cfg->heartbeat_ms;
    cc->sync_limit = cfg->sync_limit;
    *out = cc;
    return 0;
err:
    sb_client_core_free(cc);
    return -ENOMEM;
}

void sb_client_core_free(sb_client_core *cc)
{
    if (!cc) return;
    for (size_t i = 0; i < cc->convs.cap; i++) {
        cc_conv *c = cc->convs.slots[i].val;
        if (!c) continue;
        while (c->held) {
            cc_held *h = c->held;
            c->held = h->next;
            free(h);
        }
        free(c);
    }
    sb_map_free(&cc->convs);
    while (cc->out_head) {
        cc_out *o = cc->out_head;
        cc->out_head = o->next;
        free(o);
    }
    sb_buf_free(&cc->outq);
    free(cc->track);
    free(cc->reqs);
    free(cc->token);
    free(cc->device_id);
    free(cc->client_name);
    free(cc->locale);
    free(cc->url);
    free(cc);
}

sb_client_state sb_client_core_state(const sb_client_core *cc)
{
    return cc->state;
}

uint64_t sb_client_core_cursor(const sb_client_core *cc, uint64_t conv_id)
{
    const cc_conv *c = sb_map_get(&cc->convs, conv_id);
    return c ? c->surfaced : 0;
}

void sb_client_core_stats(const sb_client_core *cc, sb_client_stats *out)
{
    *out = cc->st;
    out->outbox_len = cc->out_len;
    out->inflight = cc->n_inflight;
    out->held_now = cc->held_now;
    out->convs = cc->convs.len;
}

size_t sb_client_core_outbox_len(const sb_client_core *cc)
{
    return cc->out_len;
}

const sb_client_session *sb_client_core_session(const sb_client_core *cc)
{
    return &cc->sess;
}

uint32_t sb_client_core_backoff_ms(const sb_client_core *cc)
{
    return cc->backoff_ms;
}

uint32_t sb_client_core_backoff_attempt(const sb_client_core *cc)
{
    return cc->backoff_attempt;
}

int sb_client_core_last_error(const sb_client_core *cc)
{
    return cc->last_err;
}

uint16_t sb_client_core_close_code(const sb_client_core *cc)
{
    return cc->close_code;
}

const sb_client_config *sb_client_core_config(const sb_client_core *cc)
{
    return &cc->cfg;
}
