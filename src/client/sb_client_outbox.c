/* The client core's outbox: see sb_client_outbox.h. */
#include "sb_client_outbox.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_client_core_int.h"
#include "sb_error.h"
#include "sb_utf8.h"

/* Uploads of one client at once. */
#define UPLOADS_AT_ONCE 1

/* One send in the outbox, body inline. An attachment's has its file
 * (file: "path\0name\0", malloc'd) and, once uploaded, the upload's id:
 * it is written only then. */
struct cc_out {
    struct cc_out *prev, *next;
    uint8_t id[SB_CLIENT_MSG_ID_BYTES];
    uint64_t conv_id, quote_seq;
    int64_t sent_ms, not_before_ms;
    uint32_t rid, attempts;
    Sbp__MsgType type;
    bool inflight;
    char *file;
    char media_id[SB_MEDIA_ID_LEN + 1];
    bool uploading;
    int upload_err;  /* io->upload refused to start: told at the next tick */
    uint8_t n_quick; /* quick replies, each NUL-terminated after the body */
    size_t body_len;
    char body[];
};

/* A SENT message watched for DELIVERED and READ. */
struct cc_track {
    uint8_t id[SB_CLIENT_MSG_ID_BYTES];
    uint64_t conv_id, seq, msg_id;
    int64_t server_ts;
    sb_client_send_status status;
};

static void out_unlink(sb_client_core *cc, cc_out *o)
{
    cc_outbox *ob = &cc->out;
    if (o->prev)
        o->prev->next = o->next;
    else
        ob->head = o->next;
    if (o->next)
        o->next->prev = o->prev;
    else
        ob->tail = o->prev;
    if (o->inflight) ob->n_inflight--;
    o->inflight = false;
    ob->len--;
}

/* The send with client_msg_id id, or else (no id) the one written with
 * rid. */
static cc_out *out_find(sb_client_core *cc, const ProtobufCBinaryData *id,
                        uint32_t rid)
{
    for (cc_out *o = cc->out.head; o; o = o->next) {
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
                   const char *text, const char *stored)
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
        .stored_body = stored && stored[0] ? stored : NULL,
    };
    cc->cbs.on_send_status(cc->ud, &i);
}

static void out_free(cc_out *o)
{
    free(o->file);
    free(o);
}

static void out_fail(sb_client_core *cc, cc_out *o, int err, const char *text)
{
    out_unlink(cc, o);
    if (o->uploading) cc->out.n_uploading--;
    cc->st.send_failed++;
    report(cc, o->id, o->conv_id, 0, 0, 0, SB_SEND_FAILED, false, err, text,
           NULL);
    out_free(o);
}

/* An attachment still on its way: not written yet. */
static bool out_waits_upload(const cc_out *o)
{
    return o->file && !o->media_id[0];
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
    Sbp__Media md = SBP__MEDIA__INIT;
    if (o->file) {
        md.id = o->media_id;
        s.media = &md;
    }
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = sb__client_new_rid(cc);
    f.body_case = SBP__FRAME__BODY_SEND;
    f.send = &s;
    int rc = sb__client_emit(cc, &f);
    if (rc) return rc;
    o->rid = f.rid;
    o->inflight = true;
    o->sent_ms = cc->now_ms;
    if (o->attempts > 0) cc->st.resends++;
    o->attempts++;
    cc->out.n_inflight++;
    cc->st.send_frames++;
    return 0;
}

/* ---- receipts: statuses DELIVERED and READ of SENT messages -------------- */

static bool track_advance(sb_client_core *cc, cc_track *t, const cc_conv *c)
{
    if (t->status < SB_SEND_DELIVERED && c->peer_delivered >= t->seq) {
        t->status = SB_SEND_DELIVERED;
        report(cc, t->id, t->conv_id, t->msg_id, t->seq, t->server_ts,
               SB_SEND_DELIVERED, false, 0, NULL, NULL);
    }
    if (t->status < SB_SEND_READ && c->peer_read >= t->seq) {
        t->status = SB_SEND_READ;
        report(cc, t->id, t->conv_id, t->msg_id, t->seq, t->server_ts,
               SB_SEND_READ, false, 0, NULL, NULL);
    }
    return t->status == SB_SEND_READ;
}

static cc_track *track_at(sb_client_core *cc, size_t i)
{
    return &cc->out.track[(cc->out.track_head + i) % cc->out.track_cap];
}

static void track_add(sb_client_core *cc, const cc_track *t)
{
    cc_outbox *ob = &cc->out;
    if (cc->cfg.track_max == 0) return;
    if (ob->n_track == ob->track_cap && ob->track_cap < cc->cfg.track_max) {
        size_t cap = ob->track_cap ? ob->track_cap * 2 : 8;
        if (cap > cc->cfg.track_max) cap = cc->cfg.track_max;
        cc_track *t2 = malloc(cap * sizeof *t2);
        if (t2) {
            for (size_t i = 0; i < ob->n_track; i++)
                t2[i] = *track_at(cc, i);
            free(ob->track);
            ob->track = t2;
            ob->track_cap = cap;
            ob->track_head = 0;
        }
    }
    if (ob->track_cap == 0) return; /* out of memory: no receipts */
    if (ob->n_track == ob->track_cap) {
        /* Forget the oldest: no more receipts for it. */
        ob->track_head = (ob->track_head + 1) % ob->track_cap;
        ob->n_track--;
    }
    *track_at(cc, ob->n_track++) = *t;
}

/* A READ_NOTIFY moved conversation c: advance its tracked sends and drop
 * those READ, keeping the others in order. */
static void on_receipts(sb_client_core *cc, cc_conv *c)
{
    size_t w = 0;
    for (size_t r = 0; r < cc->out.n_track; r++) {
        cc_track t = *track_at(cc, r);
        if (t.conv_id == c->conv_id && track_advance(cc, &t, c)) continue;
        *track_at(cc, w++) = t;
    }
    cc->out.n_track = w;
}

void sb__client_outbox_on_read_notify(sb_client_core *cc, const Sbp__Frame *f)
{
    const Sbp__ReadNotify *r = f->read_notify;
    if (strcmp(r->user_id, cc->sess.user_id) != 0) {
        cc_conv *c = sb__client_conv_get(cc, r->conv_id, true);
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

/* ---- answers ------------------------------------------------------------- */

void sb__client_outbox_on_send_ack(sb_client_core *cc, const Sbp__Frame *f)
{
    const Sbp__SendAck *a = f->send_ack;
    cc_out *o = out_find(cc, &a->client_msg_id, 0);
    if (!o) return; /* an answer to a resend already answered */
    out_unlink(cc, o);
    cc->pump_needed = true;
    cc->st.send_acks++;
    uint64_t conv_id = a->conv_id ? a->conv_id : o->conv_id;
    report(cc, o->id, conv_id, a->msg_id, a->seq, a->server_ts, SB_SEND_SENT,
           a->duplicate, 0, NULL, a->body);

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
    /* The body as stored: the server's when the filter masked it. */
    m.body = a->body[0] ? a->body : o->body;
    m.quote_seq = o->quote_seq;
    m.server_ts = a->server_ts;
    m.lang = cc->locale;
    Sbp__Media md = SBP__MEDIA__INIT;
    char url[8 + SB_MEDIA_ID_LEN];
    if (o->file) {
        snprintf(url, sizeof url, "/media/%s", o->media_id);
        md.id = o->media_id;
        md.url = url;
        md.name = o->file + strlen(o->file) + 1;
        m.media = &md;
    }
    sb__client_inbox_offer(cc, &m);

    cc_conv *c = sb__client_conv_get(cc, conv_id, true);
    if (c && a->seq) {
        cc_track t = {.conv_id = conv_id,
                      .seq = a->seq,
                      .msg_id = a->msg_id,
                      .server_ts = a->server_ts,
                      .status = SB_SEND_SENT};
        memcpy(t.id, o->id, sizeof t.id);
        if (!track_advance(cc, &t, c)) track_add(cc, &t);
    }
    out_free(o);
}

bool sb__client_outbox_on_error(sb_client_core *cc, uint32_t rid,
                                const Sbp__Error *e)
{
    cc_out *o = out_find(cc, &e->client_msg_id, rid);
    if (!o) return false;
    /* The answer to an attempt written again since (a timeout): the
     * attempt in flight has its own answer coming, which stands. A
     * refusal of the older one may no longer hold (the conversation
     * opened meanwhile), and the newer one may be stored already. */
    if (rid && o->rid != rid) return true;
    if (!retryable(e->code) || !attempts_left(cc, o)) {
        out_fail(cc, o, SB_E(e->code), e->text);
        return true;
    }
    if (o->inflight) cc->out.n_inflight--;
    o->inflight = false;
    uint32_t a = o->attempts < 10 ? o->attempts : 10;
    uint64_t delay = (uint64_t)100 << a;
    if (delay > cc->cfg.send_timeout_ms) delay = cc->cfg.send_timeout_ms;
    o->not_before_ms = cc->now_ms + (int64_t)delay;
    cc->pump_needed = true;
    return true;
}

/* ---- the connection ------------------------------------------------------ */

void sb__client_outbox_on_welcome(sb_client_core *cc, const Sbp__Welcome *w)
{
    cc_outbox *ob = &cc->out;
    ob->window = cc->cfg.window_max;
    if (w->pending_sends_max && w->pending_sends_max < ob->window)
        ob->window = w->pending_sends_max;
    if (ob->window == 0) ob->window = 1;
    ob->body_bytes_max =
        w->body_bytes_max ? w->body_bytes_max : cc->cfg.body_bytes_max;
}

void sb__client_outbox_on_disconnect(sb_client_core *cc)
{
    for (cc_out *o = cc->out.head; o; o = o->next)
        o->inflight = false;
    cc->out.n_inflight = 0;
}

static void uploads_tick(sb_client_core *cc);

void sb__client_outbox_tick(sb_client_core *cc)
{
    uploads_tick(cc);
    cc_out *next;
    for (cc_out *o = cc->out.head; o; o = next) {
        next = o->next;
        if (!o->inflight ||
            cc->now_ms - o->sent_ms < (int64_t)cc->cfg.send_timeout_ms)
            continue;
        if (!attempts_left(cc, o)) {
            out_fail(cc, o, -ETIMEDOUT, "no SEND_ACK");
            continue;
        }
        o->inflight = false; /* the pump writes it again, same id */
        cc->out.n_inflight--;
    }
}

/* Starts the uploads due (UPLOADS_AT_ONCE at most). */
static void uploads_pump(sb_client_core *cc)
{
    cc_outbox *ob = &cc->out;
    cc_out *next;
    for (cc_out *o = ob->head; o && ob->n_uploading < UPLOADS_AT_ONCE;
         o = next) {
        next = o->next;
        if (!out_waits_upload(o) || o->uploading ||
            o->not_before_ms > cc->now_ms)
            continue;
        if (o->upload_err) continue;
        const char *name = o->file + strlen(o->file) + 1;
        int rc = cc->io.upload(cc->io.ud, o->id, o->conv_id, o->file, name);
        if (rc == 0) {
            o->uploading = true;
            ob->n_uploading++;
        } else {
            /* Not within the call that queued it: at the next tick. */
            o->upload_err = rc;
        }
    }
}

/* Sends whose upload could not start: FAILED when the file cannot be
 * read, else tried again later. */
static void uploads_tick(sb_client_core *cc)
{
    cc_out *next;
    for (cc_out *o = cc->out.head; o; o = next) {
        next = o->next;
        int rc = o->upload_err;
        if (!rc) continue;
        o->upload_err = 0;
        if (rc == -ENOENT || rc == -EACCES || rc == -EISDIR || rc == -EINVAL ||
            rc == -ENAMETOOLONG)
            out_fail(cc, o, rc, "the file cannot be read");
        else
            sb_client_core_upload_done(cc, o->id, rc, NULL, NULL, cc->now_ms);
    }
}

void sb__client_outbox_pump(sb_client_core *cc)
{
    cc_outbox *ob = &cc->out;
    if (cc->io.upload) uploads_pump(cc);
    for (cc_out *o = ob->head; o && ob->n_inflight < ob->window; o = o->next) {
        if (o->inflight || out_waits_upload(o) || o->not_before_ms > cc->now_ms)
            continue;
        if (send_out(cc, o) != 0) break;
    }
}

void sb__client_outbox_free(sb_client_core *cc)
{
    while (cc->out.head) {
        cc_out *o = cc->out.head;
        cc->out.head = o->next;
        out_free(o);
    }
    free(cc->out.track);
}

/* A new client_msg_id: the core's clock in milliseconds (6 bytes, big
 * endian), then 10 random bytes. Ids mostly sort in the order they are
 * made, so that the store's idempotency index, which leads with
 * client_msg_id, takes each new one at its right edge instead of on a
 * random page; the random part keeps them unique. */
static void msg_id_new(sb_client_core *cc, uint8_t id[SB_CLIENT_MSG_ID_BYTES])
{
    uint64_t ms = (uint64_t)cc->now_ms;
    for (int i = 0; i < 6; i++)
        id[i] = (uint8_t)(ms >> (8 * (5 - i)));
    cc->io.rand_bytes(cc->io.ud, id + 6, SB_CLIENT_MSG_ID_BYTES - 6);
}

/* ---- API ----------------------------------------------------------------- */

/* A new outbox entry: the body, then each quick reply, NUL-terminated. */
static int out_add(sb_client_core *cc, uint64_t conv_id, Sbp__MsgType type,
                   const char *body, size_t len, uint64_t quote_seq,
                   const char *const *quick, size_t n_quick, uint8_t *id_out)
{
    assert(cc && (body || len == 0) && (quick || n_quick == 0));
    cc_outbox *ob = &cc->out;
    if (cc->state == SB_CLIENT_STOPPED) return -ESHUTDOWN;
    if (conv_id == 0) return SB_E_INVALID;
    if (len > ob->body_bytes_max || n_quick > SB_QUICK_MAX)
        return SB_E_TOO_LARGE;
    if (memchr(body ? body : "", '\0', len) ||
        !sb_utf8_valid(body ? body : "", len))
        return SB_E_BAD_UTF8;
    size_t extra = 0;
    for (size_t i = 0; i < n_quick; i++) {
        int rc = sb__client_check_str(quick[i], SB_QUICK_BYTES_MAX, false);
        if (rc) return rc;
        extra += strlen(quick[i]) + 1;
    }
    if (ob->len >= cc->cfg.outbox_max) return -ENOBUFS;
    cc_out *o = calloc(1, sizeof *o + len + 1 + extra);
    if (!o) return -ENOMEM;
    msg_id_new(cc, o->id);
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
    o->prev = ob->tail;
    if (ob->tail)
        ob->tail->next = o;
    else
        ob->head = o;
    ob->tail = o;
    ob->len++;
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

/* Whether an upload's failure may pass: the network, the server busy or
 * out of room, the rate of uploads. */
static bool upload_retryable(int rc)
{
    if (rc > -SB_EBASE) return true; /* a negative errno: the network */
    return rc == SB_E_UNAVAILABLE || rc == SB_E_STORE ||
           rc == SB_E_RATE_LIMITED || rc == SB_E_INTERNAL;
}

int sb_client_core_send_file(sb_client_core *cc, uint64_t conv_id,
                             Sbp__MsgType type, const char *path,
                             const char *name, const char *caption,
                             uint8_t *id_out)
{
    assert(cc);
    if (!cc->io.upload) return -ENOTSUP;
    if ((type != SBP__MSG_TYPE__MSG_IMAGE && type != SBP__MSG_TYPE__MSG_FILE) ||
        !path || !path[0])
        return SB_E_INVALID;
    if (!name || !name[0]) {
        const char *slash = strrchr(path, '/');
        name = slash && slash[1] ? slash + 1 : path;
    }
    int rc = sb__client_check_str(name, SB_MEDIA_NAME_BYTES_MAX, false);
    if (rc) return rc;
    size_t pn = strlen(path), nn = strlen(name);
    char *file = malloc(pn + nn + 2);
    if (!file) return -ENOMEM;
    memcpy(file, path, pn + 1);
    memcpy(file + pn + 1, name, nn + 1);
    const char *body = caption ? caption : "";
    uint8_t id[SB_CLIENT_MSG_ID_BYTES];
    rc = out_add(cc, conv_id, type, body, strlen(body), 0, NULL, 0, id);
    if (rc) {
        free(file);
        return rc;
    }
    cc->out.tail->file = file;
    if (id_out) memcpy(id_out, id, sizeof id);
    return 0;
}

void sb_client_core_upload_done(sb_client_core *cc,
                                const uint8_t *client_msg_id, int rc,
                                const char *media_id, const char *text,
                                int64_t now_ms)
{
    assert(cc && client_msg_id);
    sb__client_enter(cc);
    cc->now_ms = now_ms;
    ProtobufCBinaryData id = {SB_CLIENT_MSG_ID_BYTES, (uint8_t *)client_msg_id};
    cc_out *o = out_find(cc, &id, 0);
    if (!o || !out_waits_upload(o)) goto out;
    if (o->uploading) cc->out.n_uploading--;
    o->uploading = false;
    cc->pump_needed = true;
    if (rc == 0 && media_id && strlen(media_id) == SB_MEDIA_ID_LEN) {
        memcpy(o->media_id, media_id, SB_MEDIA_ID_LEN + 1);
        o->not_before_ms = 0;
        cc->st.uploads++;
        goto out;
    }
    if (rc == 0) rc = -EPROTO; /* an answer without an id */
    o->attempts++;
    if (!upload_retryable(rc) || !attempts_left(cc, o)) {
        out_fail(cc, o, rc, text);
        goto out;
    }
    cc->st.upload_retries++;
    uint32_t a = o->attempts < 10 ? o->attempts : 10;
    uint64_t delay = (uint64_t)200 << a;
    if (delay > cc->cfg.backoff_ms_max) delay = cc->cfg.backoff_ms_max;
    o->not_before_ms = now_ms + (int64_t)delay;
out:
    sb__client_leave(cc);
}

int sb_client_core_send_robot(sb_client_core *cc, uint64_t conv_id,
                              const char *body, size_t len,
                              const char *const *quick, size_t n_quick,
                              uint8_t *id_out)
{
    return out_add(cc, conv_id, SBP__MSG_TYPE__MSG_ROBOT, body, len, 0, quick,
                   n_quick, id_out);
}
