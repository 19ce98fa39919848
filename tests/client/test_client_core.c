/* The client protocol core driven without sockets: frames built with
 * protobuf-c go in, the frames it produces are decoded and checked, and
 * the application events are logged. Time and randomness are the test's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_client_core.h"
#include "sb_error.h"
#include "sb_ws.h"

#define LOG_MAX 512

typedef struct logmsg {
    uint64_t conv, seq, msg_id;
    char sender[32], device[32], body[64];
} logmsg;

typedef struct logst {
    uint8_t id[16];
    sb_client_send_status st;
    uint64_t seq;
    int err;
    bool dup;
    char stored[32]; /* stored_body ("-" for NULL) */
} logst;

/* One customer-service answer, as a callback reported it. */
typedef struct logans {
    int kind; /* ANS_* */
    uint32_t rid;
    int err;
    bool null;  /* the payload pointer was NULL */
    uint64_t n; /* convs, messages, items (or capacity for agent state) */
    uint64_t x; /* first conv_id / msg seq / agent load / queue position */
    char s[32]; /* next_cursor / first canned key / agent / typing user */
} logans;

enum {
    ANS_DONE = 1,
    ANS_AGENT,
    ANS_LIST,
    ANS_SEARCH,
    ANS_CANNED,
    ANS_UPDATE,
    ANS_TYPING,
    ANS_RECALLED,
    ANS_ADMIN,
    ANS_PRESENCE,
    ANS_AGENTS,
};

typedef struct h {
    sb_client_core *cc;
    sb_encoding enc;
    int64_t now;
    int connects, closes;
    size_t tried[LOG_MAX]; /* the URL index of each connect */
    bool stop_in_backoff;  /* stop() from within on_state(BACKOFF) */
    uint16_t backoff_code; /* close_code() when BACKOFF was reported */
    uint16_t close_code;
    int rand_fixed; /* -1: counter bytes; else every byte is this */
    uint8_t counter;
    logmsg msgs[LOG_MAX];
    int nmsgs;
    logst sts[LOG_MAX];
    int nsts;
    sb_client_state states[LOG_MAX];
    int nstates, last_state_err;
    int synced, receipts, errors;
    uint32_t open_rid;
    int open_err, opens;
    uint64_t open_conv;
    uint32_t hist_rid;
    int hist_err, hists;
    size_t hist_n;
    logans ans[LOG_MAX];
    int nans;
    int recalled_after;   /* nmsgs when the last on_recalled came */
    bool stop_in_message; /* stop() from within on_message */
    bool pull_on_close;   /* io->close pulls what the core has queued */
    /* frames pulled, decoded */
    Sbp__Frame *out[LOG_MAX];
    int nout;
    /* io->upload: the calls, the last one's send and file, and what the
     * next call returns */
    int uploads;
    uint8_t upload_id[16];
    char upload_path[64], upload_name[64];
    int upload_rc;
} h;

/* ---- harness ---------------------------------------------------------------
 */

static void io_connect(void *ud)
{
    h *t = ud;
    assert_true(t->connects < LOG_MAX);
    t->tried[t->connects++] = sb_client_core_url_index(t->cc);
}

static int pull(h *t);

static void io_close(void *ud, uint16_t code)
{
    h *t = ud;
    t->closes++;
    t->close_code = code;
    if (t->pull_on_close) pull(t);
}

static int io_upload(void *ud, const uint8_t *id, uint64_t conv,
                     const char *path, const char *name)
{
    h *t = ud;
    (void)conv;
    t->uploads++;
    memcpy(t->upload_id, id, 16);
    snprintf(t->upload_path, sizeof t->upload_path, "%s", path);
    snprintf(t->upload_name, sizeof t->upload_name, "%s", name);
    return t->upload_rc;
}

static void io_rand(void *ud, uint8_t *p, size_t n)
{
    h *t = ud;
    for (size_t i = 0; i < n; i++)
        p[i] = t->rand_fixed >= 0 ? (uint8_t)t->rand_fixed : ++t->counter;
}

static void cb_state(void *ud, sb_client_state st, int err)
{
    h *t = ud;
    if (t->nstates < LOG_MAX) t->states[t->nstates++] = st;
    t->last_state_err = err;
    if (st == SB_CLIENT_BACKOFF)
        t->backoff_code = sb_client_core_close_code(t->cc);
    if (t->stop_in_backoff && st == SB_CLIENT_BACKOFF)
        sb_client_core_stop(t->cc);
}

static void cb_message(void *ud, const Sbp__Message *m)
{
    h *t = ud;
    assert_true(t->nmsgs < LOG_MAX);
    logmsg *l = &t->msgs[t->nmsgs++];
    l->conv = m->conv_id;
    l->seq = m->seq;
    l->msg_id = m->msg_id;
    snprintf(l->sender, sizeof l->sender, "%s", m->sender);
    snprintf(l->device, sizeof l->device, "%s", m->sender_device);
    snprintf(l->body, sizeof l->body, "%s", m->body);
    if (t->stop_in_message) sb_client_core_stop(t->cc);
}

static void cb_send_status(void *ud, const sb_client_send_info *s)
{
    h *t = ud;
    assert_true(t->nsts < LOG_MAX);
    logst *l = &t->sts[t->nsts++];
    memcpy(l->id, s->client_msg_id, 16);
    l->st = s->status;
    l->seq = s->seq;
    l->err = s->err;
    l->dup = s->duplicate;
    snprintf(l->stored, sizeof l->stored, "%s",
             s->stored_body ? s->stored_body : "-");
}

static void cb_receipt(void *ud, const Sbp__ReadNotify *r)
{
    (void)r;
    ((h *)ud)->receipts++;
}

static void cb_synced(void *ud)
{
    ((h *)ud)->synced++;
}

static void cb_open(void *ud, uint32_t rid, int err,
                    const Sbp__Conversation *conv)
{
    h *t = ud;
    t->opens++;
    t->open_rid = rid;
    t->open_err = err;
    t->open_conv = conv ? conv->conv_id : 0;
}

static void cb_history(void *ud, uint32_t rid, int err,
                       const Sbp__HistoryResp *hr)
{
    h *t = ud;
    t->hists++;
    t->hist_rid = rid;
    t->hist_err = err;
    t->hist_n = hr ? hr->n_messages : 0;
}

static void cb_error(void *ud, int err, const char *text)
{
    (void)err;
    (void)text;
    ((h *)ud)->errors++;
}

static logans *ans_add(h *t, int kind, uint32_t rid, int err, const void *p)
{
    assert_true(t->nans < LOG_MAX);
    logans *a = &t->ans[t->nans++];
    memset(a, 0, sizeof *a);
    a->kind = kind;
    a->rid = rid;
    a->err = err;
    a->null = p == NULL;
    /* The contract: a payload exactly when err is 0. */
    assert_true((err == 0) == (p != NULL) || kind == ANS_DONE ||
                kind == ANS_ADMIN);
    return a;
}

static void cb_done(void *ud, uint32_t rid, int err)
{
    ans_add(ud, ANS_DONE, rid, err, NULL);
}

static void cb_agent_state(void *ud, uint32_t rid, int err,
                           const Sbp__AgentState *s)
{
    logans *a = ans_add(ud, ANS_AGENT, rid, err, s);
    if (!s) return;
    a->n = s->capacity;
    a->x = s->load;
    snprintf(a->s, sizeof a->s, "%d", (int)s->status);
}

static void cb_conv_list(void *ud, uint32_t rid, int err,
                         const Sbp__ConvListResp *l)
{
    logans *a = ans_add(ud, ANS_LIST, rid, err, l);
    if (!l) return;
    a->n = l->n_convs;
    a->x = l->n_convs ? l->convs[0]->conv_id : 0;
    snprintf(a->s, sizeof a->s, "%s", l->next_cursor);
}

static void cb_search(void *ud, uint32_t rid, int err, const Sbp__SearchResp *r)
{
    logans *a = ans_add(ud, ANS_SEARCH, rid, err, r);
    if (!r) return;
    a->n = r->n_messages;
    a->x = r->n_messages ? r->messages[0]->seq : 0;
}

static void cb_canned(void *ud, uint32_t rid, int err,
                      const Sbp__CannedListResp *c)
{
    logans *a = ans_add(ud, ANS_CANNED, rid, err, c);
    if (!c) return;
    a->n = c->n_items;
    if (c->n_items) snprintf(a->s, sizeof a->s, "%s", c->items[0]->key);
}

static void cb_admin(void *ud, uint32_t rid, int err, const char *text)
{
    assert_non_null(text);
    logans *a = ans_add(ud, ANS_ADMIN, rid, err, text);
    snprintf(a->s, sizeof a->s, "%s", text);
}

static void cb_conv_update(void *ud, const Sbp__Conversation *c)
{
    logans *a = ans_add(ud, ANS_UPDATE, 0, 0, c);
    a->n = c->conv_id;
    a->x = c->queue_position;
    snprintf(a->s, sizeof a->s, "%d:%s", (int)c->state, c->agent);
}

static void cb_typing(void *ud, const Sbp__Typing *ty)
{
    logans *a = ans_add(ud, ANS_TYPING, 0, 0, ty);
    a->n = ty->conv_id;
    a->x = ty->on;
    snprintf(a->s, sizeof a->s, "%s", ty->user_id);
}

static void cb_recalled(void *ud, uint64_t conv_id, uint64_t seq)
{
    h *t = ud;
    logans *a = ans_add(t, ANS_RECALLED, 0, 0, t);
    a->n = conv_id;
    a->x = seq;
    t->recalled_after = t->nmsgs;
}

static void cb_presence(void *ud, const Sbp__AgentPresence *p)
{
    logans *a = ans_add(ud, ANS_PRESENCE, 0, 0, p);
    a->x = (uint64_t)p->status;
    snprintf(a->s, sizeof a->s, "%s", p->user_id);
}

static void cb_agent_news(void *ud, const Sbp__AgentState *s)
{
    cb_agent_state(ud, 0, 0, s);
}

/* Every answer, logged by the kind of its request. */
static void cb_response(void *ud, uint32_t rid, Sbp__Frame__BodyCase req,
                        int err, const Sbp__Frame *f)
{
    /* The contract: the answer frame when err is 0, else the ERROR or
     * nothing. */
    assert_true(err == 0 ? f && f->body_case != SBP__FRAME__BODY_ERROR
                         : !f || f->body_case == SBP__FRAME__BODY_ERROR);
    const Sbp__Frame *a = err ? NULL : f;
    switch (req) {
    case SBP__FRAME__BODY_OPEN:
        cb_open(ud, rid, err, a ? a->open_resp->conv : NULL);
        break;
    case SBP__FRAME__BODY_HISTORY:
        cb_history(ud, rid, err, a ? a->history_resp : NULL);
        break;
    case SBP__FRAME__BODY_AGENT_STATE:
        cb_agent_state(ud, rid, err, a ? a->agent_state : NULL);
        break;
    case SBP__FRAME__BODY_CONV_LIST:
        cb_conv_list(ud, rid, err, a ? a->conv_list_resp : NULL);
        break;
    case SBP__FRAME__BODY_SEARCH:
        cb_search(ud, rid, err, a ? a->search_resp : NULL);
        break;
    case SBP__FRAME__BODY_CANNED_LIST:
        cb_canned(ud, rid, err, a ? a->canned_list_resp : NULL);
        break;
    case SBP__FRAME__BODY_ADMIN:
        cb_admin(ud, rid, err, sb_client_answer_text(f));
        break;
    case SBP__FRAME__BODY_AGENT_LIST: {
        logans *l = ans_add(ud, ANS_AGENTS, rid, err, a);
        if (a) {
            l->n = a->agent_list_resp->n_agents;
            snprintf(l->s, sizeof l->s, "%s", a->agent_list_resp->desk);
        }
        break;
    }
    default:
        cb_done(ud, rid, err);
        break;
    }
}

static void out_clear(h *t)
{
    for (int i = 0; i < t->nout; i++)
        sb_frame_free(t->out[i]);
    t->nout = 0;
}

static h *h_new_cfg(sb_client_config *cfg)
{
    h *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->rand_fixed = -1;
    t->enc = cfg->enc;
    t->now = 1000000;
    sb_client_cbs cbs = {
        .on_state = cb_state,
        .on_message = cb_message,
        .on_send_status = cb_send_status,
        .on_receipt = cb_receipt,
        .on_synced = cb_synced,
        .on_response = cb_response,
        .on_error = cb_error,
        .on_conv_update = cb_conv_update,
        .on_typing = cb_typing,
        .on_agent_state = cb_agent_news,
        .on_recalled = cb_recalled,
        .on_presence = cb_presence,
    };
    sb_client_core_io io = {.ud = t,
                            .connect = io_connect,
                            .close = io_close,
                            .rand_bytes = io_rand,
                            .upload = io_upload};
    assert_int_equal(sb_client_core_new(cfg, &cbs, t, &io, &t->cc), 0);
    return t;
}

static void base_cfg(sb_client_config *cfg)
{
    sb_client_config_default(cfg);
    cfg->token = "tok.en.sig";
    cfg->device_id = "dev-a";
    cfg->locale = "en";
}

static h *h_new(void)
{
    sb_client_config cfg;
    base_cfg(&cfg);
    return h_new_cfg(&cfg);
}

static void h_free(h *t)
{
    out_clear(t);
    sb_client_core_free(t->cc);
    free(t);
}

static size_t outbox_len(h *t)
{
    sb_client_stats st;
    sb_client_core_stats(t->cc, &st);
    return st.outbox_len;
}

/* Pulls and decodes every frame the core has for the wire. */
static int pull(h *t)
{
    out_clear(t);
    const uint8_t *p;
    size_t n;
    while (sb_client_core_next_frame(t->cc, &p, &n)) {
        assert_true(t->nout < LOG_MAX);
        Sbp__Frame *f = NULL;
        assert_int_equal(sb_frame_decode(t->enc, p, n, &f), 0);
        t->out[t->nout++] = f;
    }
    return t->nout;
}

static int count_kind(h *t, Sbp__Frame__BodyCase k)
{
    int n = 0;
    for (int i = 0; i < t->nout; i++)
        if (t->out[i]->body_case == k) n++;
    return n;
}

static Sbp__Frame *find_kind(h *t, Sbp__Frame__BodyCase k, int nth)
{
    for (int i = 0; i < t->nout; i++)
        if (t->out[i]->body_case == k && nth-- == 0) return t->out[i];
    return NULL;
}

static void feed(h *t, const Sbp__Frame *f)
{
    sb_buf b = SB_BUF_INIT;
    assert_int_equal(sb_frame_encode(t->enc, f, &b), 0);
    sb_client_core_on_frame(t->cc, b.data, b.len, t->now);
    sb_buf_free(&b);
}

static void feed_welcome(h *t, uint32_t rid, uint32_t pending_max)
{
    Sbp__Welcome w = SBP__WELCOME__INIT;
    w.user_id = "alice";
    w.role = SBP__ROLE__ROLE_CUSTOMER;
    w.session_id = 77;
    w.heartbeat_ms = 10000;
    w.frame_bytes_max = 1 << 20;
    w.body_bytes_max = 1000;
    w.pending_sends_max = pending_max;
    w.sync_page_max = 100;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = rid;
    f.body_case = SBP__FRAME__BODY_WELCOME;
    f.welcome = &w;
    feed(t, &f);
}

static void feed_sync_resp(h *t, uint32_t rid, Sbp__Message **m, size_t n,
                           bool more)
{
    Sbp__SyncResp r = SBP__SYNC_RESP__INIT;
    r.n_messages = n;
    r.messages = m;
    r.more = more;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = rid;
    f.body_case = SBP__FRAME__BODY_SYNC_RESP;
    f.sync_resp = &r;
    feed(t, &f);
}

/* Connects to READY; the initial SYNC is answered with nothing. Leaves
 * in t->out the frames produced on WELCOME (the SYNC, re-ACKs, resends). */
static void go_ready(h *t, uint32_t pending_max)
{
    int c0 = t->connects;
    sb_client_core_start(t->cc, t->now);
    if (t->connects == c0) { /* reconnecting: wait out the backoff */
        t->now += 60000;
        sb_client_core_tick(t->cc, t->now);
    }
    assert_int_equal(t->connects, c0 + 1);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_CONNECTING);
    sb_client_core_on_open(t->cc, t->now);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_HELLO_SENT);
    assert_int_equal(pull(t), 1);
    Sbp__Frame *hello = find_kind(t, SBP__FRAME__BODY_HELLO, 0);
    assert_non_null(hello);
    assert_string_equal(hello->hello->token, "tok.en.sig");
    assert_string_equal(hello->hello->device_id, "dev-a");
    assert_int_equal(hello->hello->protocol, 1);
    assert_string_equal(hello->hello->locale, "en");
    feed_welcome(t, hello->rid, pending_max);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_READY);
    pull(t);
    Sbp__Frame *sync = find_kind(t, SBP__FRAME__BODY_SYNC, 0);
    assert_non_null(sync);
    assert_int_equal(sync->sync->limit, 100);
    int synced = t->synced;
    feed_sync_resp(t, sync->rid, NULL, 0, false);
    assert_int_equal(t->synced, synced + 1);
}

static Sbp__Message *mk(uint64_t conv, uint64_t seq, const char *sender,
                        const char *body)
{
    Sbp__Message *m = malloc(sizeof *m);
    assert_non_null(m);
    sbp__message__init(m);
    m->conv_id = conv;
    m->seq = seq;
    m->msg_id = conv * 1000 + seq;
    m->sender = (char *)sender;
    m->sender_device = "dev-b";
    m->type = SBP__MSG_TYPE__MSG_TEXT;
    m->body = (char *)body;
    return m;
}

/* PUSH of messages (conv, seq) pairs, bodies "c<conv>s<seq>". */
static void push(h *t, uint64_t conv, const uint64_t *seqs, size_t n)
{
    Sbp__Message *m[32];
    char bodies[32][32];
    assert_true(n <= 32);
    for (size_t i = 0; i < n; i++) {
        snprintf(bodies[i], sizeof bodies[i], "c%llus%llu",
                 (unsigned long long)conv, (unsigned long long)seqs[i]);
        m[i] = mk(conv, seqs[i], "bob", bodies[i]);
    }
    Sbp__Push p = SBP__PUSH__INIT;
    p.n_messages = n;
    p.messages = m;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_PUSH;
    f.push = &p;
    feed(t, &f);
    for (size_t i = 0; i < n; i++)
        free(m[i]);
}

static void feed_send_ack(h *t, const uint8_t *id, uint64_t conv, uint64_t seq,
                          bool dup)
{
    Sbp__SendAck a = SBP__SEND_ACK__INIT;
    a.client_msg_id.data = (uint8_t *)id;
    a.client_msg_id.len = 16;
    a.msg_id = 5000 + seq;
    a.conv_id = conv;
    a.seq = seq;
    a.server_ts = 1790000000000LL;
    a.duplicate = dup;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_SEND_ACK;
    f.send_ack = &a;
    feed(t, &f);
}

static void feed_error(h *t, uint32_t rid, Sbp__ErrorCode code,
                       const uint8_t *id)
{
    Sbp__Error e = SBP__ERROR__INIT;
    e.code = code;
    e.text = "nope";
    if (id) {
        e.client_msg_id.data = (uint8_t *)id;
        e.client_msg_id.len = 16;
    }
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = rid;
    f.body_case = SBP__FRAME__BODY_ERROR;
    f.error = &e;
    feed(t, &f);
}

static void feed_read_notify(h *t, uint64_t conv, const char *user,
                             uint64_t read, uint64_t delivered)
{
    Sbp__ReadNotify r = SBP__READ_NOTIFY__INIT;
    r.conv_id = conv;
    r.user_id = (char *)user;
    r.read_seq = read;
    r.delivered_seq = delivered;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_READ_NOTIFY;
    f.read_notify = &r;
    feed(t, &f);
}

static void send_text(h *t, uint64_t conv, const char *body, uint8_t *id)
{
    assert_int_equal(sb_client_core_send(t->cc, conv, SBP__MSG_TYPE__MSG_TEXT,
                                         body, strlen(body), 0, id),
                     0);
}

static void assert_surfaced(h *t, int from, uint64_t conv, uint64_t seq_first,
                            int n)
{
    assert_true(t->nmsgs >= from + n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(t->msgs[from + i].conv, conv);
        assert_int_equal(t->msgs[from + i].seq, seq_first + (uint64_t)i);
    }
}

/* ---- tests ------------------------------------------------------------------
 */

static void test_connect_hello_welcome(void **state)
{
    (void)state;
    h *t = h_new();
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_IDLE);
    go_ready(t, 16);
    const sb_client_session *s = sb_client_core_session(t->cc);
    assert_string_equal(s->user_id, "alice");
    assert_int_equal(s->session_id, 77);
    assert_int_equal(s->pending_sends_max, 16);
    /* idle -> connecting -> hello_sent -> ready */
    assert_int_equal(t->states[0], SB_CLIENT_CONNECTING);
    assert_int_equal(t->states[1], SB_CLIENT_HELLO_SENT);
    assert_int_equal(t->states[2], SB_CLIENT_READY);
    assert_int_equal(t->nout, 1); /* the SYNC alone */
    assert_int_equal(pull(t), 0);
    h_free(t);
}

static void test_in_order_exactly_once_and_ack(void **state)
{
    (void)state;
    h *t = h_new();
    go_ready(t, 16);
    uint64_t a[] = {1, 2, 3};
    push(t, 9, a, 3);
    uint64_t b[] = {2, 3}; /* a retried PUSH */
    push(t, 9, b, 2);
    uint64_t c[] = {4};
    push(t, 9, c, 1);
    assert_int_equal(t->nmsgs, 4);
    assert_surfaced(t, 0, 9, 1, 4);
    assert_string_equal(t->msgs[2].body, "c9s3");
    /* One cumulative ACK for the whole batch. */
    pull(t);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_ACK), 1);
    Sbp__Frame *ack = find_kind(t, SBP__FRAME__BODY_ACK, 0);
    assert_int_equal(ack->ack->conv_id, 9);
    assert_int_equal(ack->ack->seq, 4);
    assert_int_equal(sb_client_core_cursor(t->cc, 9), 4);
    sb_client_stats st;
    sb_client_core_stats(t->cc, &st);
    assert_int_equal(st.surfaced, 4);
    assert_int_equal(st.duplicates, 2);
    /* The same PUSH once more: dropped, no new ACK. */
    push(t, 9, a, 3);
    assert_int_equal(t->nmsgs, 4);
    pull(t);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_ACK), 0);
    /* Two conversations in a batch: one ACK each. */
    uint64_t d[] = {5, 6};
    push(t, 9, d, 2);
    uint64_t e[] = {1};
    push(t, 11, e, 1);
    pull(t);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_ACK), 2);
    h_free(t);
}

/* A PUSH as the gateway makes it: each message encoded on its own
 * (sb_push_item_encode), the frame their concatenation (sb_push_*), of
 * (conv, seq) pairs, bodies "c<conv>s<seq>". */
static void push_batch(h *t, const uint64_t (*cs)[2], size_t n)
{
    sb_buf out = SB_BUF_INIT, item = SB_BUF_INIT;
    sb_push_builder b;
    assert_int_equal(sb_push_begin(&b, t->enc, &out), 0);
    for (size_t i = 0; i < n; i++) {
        char body[48];
        snprintf(body, sizeof body, "c%llus%llu", (unsigned long long)cs[i][0],
                 (unsigned long long)cs[i][1]);
        Sbp__Message *m = mk(cs[i][0], cs[i][1], "bob", body);
        item.len = 0;
        assert_int_equal(sb_push_item_encode(t->enc, m, &item), 0);
        assert_int_equal(sb_push_add(&b, item.data, item.len), 0);
        free(m);
    }
    const uint8_t *p;
    size_t len;
    sb_push_end(&b, &p, &len);
    sb_client_core_on_frame(t->cc, p, len, t->now);
    sb_buf_free(&item);
    sb_buf_free(&out);
}

/* The ACK of conv among the frames pulled, or NULL. */
static Sbp__Ack *ack_of(h *t, uint64_t conv)
{
    for (int i = 0; i < t->nout; i++)
        if (t->out[i]->body_case == SBP__FRAME__BODY_ACK &&
            t->out[i]->ack->conv_id == conv)
            return t->out[i]->ack;
    return NULL;
}

/* PUSH frames of many messages of several conversations, in both
 * encodings: each conversation's surfaced in seq order, in the frame's
 * order across them, once; a retried message dropped; a gap in one
 * conversation held (SYNC) without holding the others; one ACK per
 * conversation for the frame. */
static void test_push_batch_many_convs(void **state)
{
    (void)state;
    for (int enc = 0; enc < 2; enc++) {
        sb_client_config cfg;
        base_cfg(&cfg);
        cfg.enc = (sb_encoding)enc;
        h *t = h_new_cfg(&cfg);
        go_ready(t, 16);
        static const uint64_t a[][2] = {
            {9, 1}, {11, 1}, {9, 2}, {11, 2}, {9, 3}};
        push_batch(t, a, 5);
        assert_int_equal(t->nmsgs, 5);
        for (int i = 0; i < 5; i++) {
            assert_int_equal(t->msgs[i].conv, a[i][0]);
            assert_int_equal(t->msgs[i].seq, a[i][1]);
        }
        assert_string_equal(t->msgs[3].body, "c11s2");
        pull(t);
        assert_int_equal(count_kind(t, SBP__FRAME__BODY_ACK), 2);
        assert_int_equal(ack_of(t, 9)->seq, 3);
        assert_int_equal(ack_of(t, 11)->seq, 2);
        assert_int_equal(count_kind(t, SBP__FRAME__BODY_SYNC), 0);

        /* 64 messages: 9:3 again (a retry), 9:4.. and 11:3.. alternating,
         * and 12:2 whose 12:1 is missing. */
        uint64_t b[64][2];
        b[0][0] = 9;
        b[0][1] = 3;
        for (int i = 1; i < 63; i++) {
            b[i][0] = i % 2 ? 9 : 11;
            b[i][1] = i % 2 ? 4 + (uint64_t)i / 2 : 2 + (uint64_t)i / 2;
        }
        b[63][0] = 12;
        b[63][1] = 2;
        push_batch(t, (const uint64_t(*)[2])b, 64);
        assert_int_equal(t->nmsgs, 5 + 62);
        for (int i = 1; i < 63; i++) {
            assert_int_equal(t->msgs[4 + i].conv, b[i][0]);
            assert_int_equal(t->msgs[4 + i].seq, b[i][1]);
        }
        sb_client_stats st;
        sb_client_core_stats(t->cc, &st);
        assert_int_equal(st.duplicates, 1);
        assert_int_equal(st.held_now, 1);
        assert_int_equal(sb_client_core_cursor(t->cc, 9), 34);
        assert_int_equal(sb_client_core_cursor(t->cc, 11), 33);
        assert_int_equal(sb_client_core_cursor(t->cc, 12), 0);
        pull(t);
        assert_int_equal(count_kind(t, SBP__FRAME__BODY_ACK), 2);
        assert_int_equal(ack_of(t, 9)->seq, 34);
        assert_int_equal(ack_of(t, 11)->seq, 33);
        assert_null(ack_of(t, 12));
        /* The gap in conv 12 waits gap_wait_ms for pushes, then SYNCs. */
        assert_null(find_kind(t, SBP__FRAME__BODY_SYNC, 0));
        t->now += 200;
        sb_client_core_tick(t->cc, t->now);
        pull(t);
        Sbp__Frame *sync = find_kind(t, SBP__FRAME__BODY_SYNC, 0);
        assert_non_null(sync);
        h_free(t);
    }
}

static void test_gap_held_until_sync(void **state)
{
    (void)state;
    h *t = h_new();
    go_ready(t, 16);
    uint64_t a[] = {1};
    push(t, 5, a, 1);
    uint64_t b[] = {3, 4};
    push(t, 5, b, 2); /* 2 is missing */
    assert_int_equal(t->nmsgs, 1);
    assert_int_equal(sb_client_core_cursor(t->cc, 5), 1);
    pull(t);
    Sbp__Frame *ack = find_kind(t, SBP__FRAME__BODY_ACK, 0);
    assert_non_null(ack);
    assert_int_equal(ack->ack->seq, 1); /* not beyond the gap */
    /* The gap waits gap_wait_ms for a push on its way, then SYNCs. */
    assert_null(find_kind(t, SBP__FRAME__BODY_SYNC, 0));
    t->now += 199;
    sb_client_core_tick(t->cc, t->now);
    pull(t);
    assert_null(find_kind(t, SBP__FRAME__BODY_SYNC, 0));
    t->now += 1;
    sb_client_core_tick(t->cc, t->now);
    pull(t);
    Sbp__Frame *sync = find_kind(t, SBP__FRAME__BODY_SYNC, 0);
    assert_non_null(sync);
    assert_int_equal(sync->sync->n_cursors, 1);
    assert_int_equal(sync->sync->cursors[0]->conv_id, 5);
    assert_int_equal(sync->sync->cursors[0]->seq, 1);
    uint32_t rid = sync->rid;
    /* SYNC answers with 2..5; 3 and 4 are both held and in the answer. */
    Sbp__Message *m[4] = {mk(5, 2, "bob", "two"), mk(5, 3, "bob", "three"),
                          mk(5, 4, "bob", "four"), mk(5, 5, "bob", "five")};
    feed_sync_resp(t, rid, m, 4, false);
    for (int i = 0; i < 4; i++)
        free(m[i]);
    assert_int_equal(t->nmsgs, 5);
    assert_surfaced(t, 0, 5, 1, 5);
    assert_string_equal(t->msgs[1].body, "two");
    assert_string_equal(t->msgs[2].body, "c5s3"); /* the held copy */
    pull(t);
    ack = find_kind(t, SBP__FRAME__BODY_ACK, 0);
    assert_non_null(ack);
    assert_int_equal(ack->ack->seq, 5);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_SYNC), 0);
    sb_client_stats st;
    sb_client_core_stats(t->cc, &st);
    assert_int_equal(st.held_now, 0);
    h_free(t);
}

/* SYNC_HINT (a cluster's node may have missed messages for this device)
 * makes the client SYNC with its cursors at once. */
static void test_sync_hint(void **state)
{
    (void)state;
    h *t = h_new();
    go_ready(t, 16);
    uint64_t a[] = {1, 2};
    push(t, 4, a, 2);
    pull(t);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_SYNC), 0);
    Sbp__SyncHint hint = SBP__SYNC_HINT__INIT;
    Sbp__Frame fr = SBP__FRAME__INIT;
    fr.body_case = SBP__FRAME__BODY_SYNC_HINT;
    fr.sync_hint = &hint;
    feed(t, &fr);
    pull(t);
    Sbp__Frame *sync = find_kind(t, SBP__FRAME__BODY_SYNC, 0);
    assert_non_null(sync);
    assert_int_equal(sync->sync->n_cursors, 1);
    assert_int_equal(sync->sync->cursors[0]->seq, 2);
    h_free(t);
}

/* A message passed by a later one (in a cluster, another node's push and
 * this node's) fills its gap before gap_wait_ms: no SYNC is needed. */
static void test_gap_filled_in_time_no_sync(void **state)
{
    (void)state;
    h *t = h_new();
    go_ready(t, 16);
    uint64_t a[] = {1, 3};
    push(t, 6, a, 2);
    assert_int_equal(t->nmsgs, 1);
    t->now += 150;
    sb_client_core_tick(t->cc, t->now);
    uint64_t b[] = {2};
    push(t, 6, b, 1);
    assert_surfaced(t, 0, 6, 1, 3);
    t->now += 1000;
    sb_client_core_tick(t->cc, t->now);
    pull(t);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_SYNC), 0);
    h_free(t);
}

static void test_gap_filled_by_push_and_held_bound(void **state)
{
    (void)state;
    sb_client_config cfg;
    base_cfg(&cfg);
    cfg.held_max = 2;
    h *t = h_new_cfg(&cfg);
    go_ready(t, 16);
    uint64_t a[] = {3, 4, 5, 6};
    push(t, 8, a, 4);
    assert_int_equal(t->nmsgs, 0);
    sb_client_stats st;
    sb_client_core_stats(t->cc, &st);
    assert_int_equal(st.held_now, 2);
    assert_int_equal(st.held_dropped, 2);
    uint64_t b[] = {1, 2};
    push(t, 8, b, 2); /* fills the gap before the SYNC answers */
    assert_int_equal(t->nmsgs, 4);
    assert_surfaced(t, 0, 8, 1, 4);
    pull(t);
    Sbp__Frame *sync = find_kind(t, SBP__FRAME__BODY_SYNC, 0);
    assert_non_null(sync);
    /* The SYNC asks from cursor 4 (the gap closed first); the server
     * answers with more than that: the rest are duplicates. */
    assert_int_equal(sync->sync->cursors[0]->seq, 4);
    Sbp__Message *m[6];
    for (int i = 0; i < 6; i++)
        m[i] = mk(8, (uint64_t)i + 1, "bob", "s");
    feed_sync_resp(t, sync->rid, m, 6, false);
    for (int i = 0; i < 6; i++)
        free(m[i]);
    assert_int_equal(t->nmsgs, 6);
    assert_surfaced(t, 0, 8, 1, 6);
    h_free(t);
}

static void test_sync_paging(void **state)
{
    (void)state;
    h *t = h_new();
    sb_client_core_start(t->cc, t->now);
    sb_client_core_on_open(t->cc, t->now);
    pull(t);
    feed_welcome(t, t->out[0]->rid, 16);
    pull(t);
    Sbp__Frame *sync = find_kind(t, SBP__FRAME__BODY_SYNC, 0);
    assert_int_equal(sync->sync->n_cursors, 0);
    Sbp__Message *m[3] = {mk(1, 1, "bob", "x"), mk(1, 2, "bob", "y"),
                          mk(2, 1, "bob", "z")};
    feed_sync_resp(t, sync->rid, m, 2, true);
    assert_int_equal(t->synced, 0);
    pull(t);
    sync = find_kind(t, SBP__FRAME__BODY_SYNC, 0);
    assert_non_null(sync);
    assert_int_equal(sync->sync->n_cursors, 1);
    assert_int_equal(sync->sync->cursors[0]->seq, 2);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_ACK), 1);
    feed_sync_resp(t, sync->rid, m + 2, 1, false);
    assert_int_equal(t->synced, 1);
    assert_int_equal(t->nmsgs, 3);
    pull(t);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_SYNC), 0);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_ACK), 1);
    /* A broken page (more, but nothing new) ends the loop: no spin. */
    sb_client_core_sync(t->cc);
    pull(t);
    sync = find_kind(t, SBP__FRAME__BODY_SYNC, 0);
    assert_non_null(sync);
    feed_sync_resp(t, sync->rid, m, 2, true);
    assert_int_equal(t->synced, 2);
    pull(t);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_SYNC), 0);
    for (int i = 0; i < 3; i++)
        free(m[i]);
    h_free(t);
}

/* A SYNC the server could not answer (ERR_STORE: a read that failed) is
 * tried again after gap_retry_ms, gap or no gap: otherwise what the device
 * missed while it was away stays missing until its next connection. Found
 * by sbsim (seed 29332). */
static void test_sync_error_retried(void **state)
{
    (void)state;
    h *t = h_new();
    sb_client_core_start(t->cc, t->now);
    sb_client_core_on_open(t->cc, t->now);
    pull(t);
    feed_welcome(t, t->out[0]->rid, 16);
    pull(t);
    Sbp__Frame *sync = find_kind(t, SBP__FRAME__BODY_SYNC, 0);
    assert_non_null(sync);
    feed_error(t, sync->rid, SBP__ERROR_CODE__ERR_STORE, NULL);
    pull(t);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_SYNC), 0);
    t->now += 2000; /* past gap_retry_ms */
    sb_client_core_tick(t->cc, t->now);
    pull(t);
    sync = find_kind(t, SBP__FRAME__BODY_SYNC, 0);
    assert_non_null(sync);
    Sbp__Message *m[1] = {mk(4, 1, "bob", "missed")};
    feed_sync_resp(t, sync->rid, m, 1, false);
    assert_int_equal(t->nmsgs, 1);
    assert_int_equal(t->synced, 1);
    free(m[0]);
    h_free(t);
}

/* A SEND resent after its timeout, whose first attempt is answered late
 * with a final ERROR (the conversation did not exist yet): the answer is
 * to an attempt superseded, not to the send. The second attempt's
 * SEND_ACK makes it SENT, and the device surfaces it. Found by sbsim
 * (seed 2617): the device failed the send while the server stored it. */
static void test_stale_error_ignored(void **state)
{
    (void)state;
    h *t = h_new();
    go_ready(t, 16);
    uint8_t id[16];
    assert_int_equal(
        sb_client_core_send(t->cc, 9, SBP__MSG_TYPE__MSG_TEXT, "hi", 2, 0, id),
        0);
    pull(t);
    Sbp__Frame *first = find_kind(t, SBP__FRAME__BODY_SEND, 0);
    assert_non_null(first);
    uint32_t rid1 = first->rid;
    t->now += 5001; /* the send timeout: written again, same id */
    sb_client_core_tick(t->cc, t->now);
    pull(t);
    Sbp__Frame *second = find_kind(t, SBP__FRAME__BODY_SEND, 0);
    assert_non_null(second);
    assert_int_not_equal(second->rid, rid1);
    feed_error(t, rid1, SBP__ERROR_CODE__ERR_NOT_FOUND, id);
    for (int i = 0; i < t->nsts; i++)
        assert_int_not_equal(t->sts[i].st, SB_SEND_FAILED);
    feed_send_ack(t, id, 9, 1, false);
    assert_int_equal(t->sts[t->nsts - 1].st, SB_SEND_SENT);
    assert_int_equal(t->nmsgs, 1);
    h_free(t);
}

static void test_own_message_on_send_ack(void **state)
{
    (void)state;
    h *t = h_new();
    go_ready(t, 16);
    uint64_t a[] = {1};
    push(t, 7, a, 1);
    uint8_t id[16];
    send_text(t, 7, "mine", id);
    pull(t);
    Sbp__Frame *s = find_kind(t, SBP__FRAME__BODY_SEND, 0);
    assert_non_null(s);
    assert_int_equal(s->send->client_msg_id.len, 16);
    assert_memory_equal(s->send->client_msg_id.data, id, 16);
    assert_string_equal(s->send->body, "mine");
    feed_send_ack(t, id, 7, 2, false);
    assert_int_equal(t->nmsgs, 2);
    assert_surfaced(t, 0, 7, 1, 2);
    assert_string_equal(t->msgs[1].body, "mine");
    assert_string_equal(t->msgs[1].sender, "alice");
    assert_string_equal(t->msgs[1].device, "dev-a");
    assert_int_equal(t->nsts, 1);
    assert_int_equal(t->sts[0].st, SB_SEND_SENT);
    assert_int_equal(t->sts[0].seq, 2);

    /* Own message after a gap: held until the other message comes. */
    uint8_t id2[16];
    send_text(t, 7, "mine too", id2);
    pull(t);
    feed_send_ack(t, id2, 7, 4, false);
    assert_int_equal(t->nmsgs, 2);
    uint64_t b[] = {3};
    push(t, 7, b, 1);
    assert_int_equal(t->nmsgs, 4);
    assert_surfaced(t, 0, 7, 1, 4);
    assert_string_equal(t->msgs[3].body, "mine too");
    /* A duplicate SEND_ACK (answer to a resend) surfaces nothing more. */
    feed_send_ack(t, id2, 7, 4, true);
    assert_int_equal(t->nmsgs, 4);
    pull(t);
    Sbp__Frame *ack = find_kind(t, SBP__FRAME__BODY_ACK, 0);
    assert_non_null(ack);
    assert_int_equal(ack->ack->seq, 4);
    h_free(t);
}

static void test_resend_after_reconnect_same_id(void **state)
{
    (void)state;
    h *t = h_new();
    go_ready(t, 16);
    uint8_t ids[3][16];
    send_text(t, 3, "one", ids[0]);
    send_text(t, 3, "two", ids[1]);
    send_text(t, 3, "three", ids[2]);
    pull(t);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_SEND), 3);
    /* The connection drops before any SEND_ACK. */
    sb_client_core_on_close(t->cc, -ECONNRESET, 0, t->now);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_BACKOFF);
    assert_int_equal(outbox_len(t), 3);
    pull(t);
    assert_int_equal(t->nout, 0); /* nothing is written while away */
    /* A send while disconnected joins the queue. */
    uint8_t id4[16];
    send_text(t, 3, "four", id4);
    go_ready(t, 16);
    /* go_ready left the frames after the SYNC answer: the resends. */
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_SEND), 4);
    for (int i = 0; i < 3; i++)
        assert_memory_equal(
            find_kind(t, SBP__FRAME__BODY_SEND, i)->send->client_msg_id.data,
            ids[i], 16);
    assert_memory_equal(
        find_kind(t, SBP__FRAME__BODY_SEND, 3)->send->client_msg_id.data, id4,
        16);
    /* The first had been stored: the server answers duplicate. */
    feed_send_ack(t, ids[0], 3, 1, true);
    assert_int_equal(t->sts[0].st, SB_SEND_SENT);
    assert_true(t->sts[0].dup);
    assert_int_equal(outbox_len(t), 3);

    /* A timeout resends, with the same id. */
    pull(t);
    t->now += 5000;
    sb_client_core_tick(t->cc, t->now);
    /* keep the connection alive through the liveness check */
    sb_client_core_on_rx(t->cc, t->now);
    pull(t);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_SEND), 3);
    assert_memory_equal(
        find_kind(t, SBP__FRAME__BODY_SEND, 0)->send->client_msg_id.data,
        ids[1], 16);
    sb_client_stats st;
    sb_client_core_stats(t->cc, &st);
    assert_int_equal(st.resends, 6);
    h_free(t);
}

/* Attachments: the upload first (one at a time), the SEND only with the
 * upload's id; retryable failures tried again after a pause, across a
 * reconnect; a refusal or an unreadable file FAILED (never from within
 * the call that queued it); the own message surfaces with the upload. */
static void test_attachments(void **state)
{
    (void)state;
    h *t = h_new();
    go_ready(t, 16);
    uint8_t a[16], b[16];
    assert_int_equal(sb_client_core_send_file(t->cc, 5, SBP__MSG_TYPE__MSG_TEXT,
                                              "/x", NULL, NULL, a),
                     SB_E_INVALID);
    assert_int_equal(
        sb_client_core_send_file(t->cc, 5, SBP__MSG_TYPE__MSG_IMAGE,
                                 "/tmp/shots/cat.jpg", NULL, "my cat", a),
        0);
    assert_int_equal(sb_client_core_send_file(t->cc, 5, SBP__MSG_TYPE__MSG_FILE,
                                              "/tmp/b.pdf", "invoice 7.pdf",
                                              NULL, b),
                     0);
    pull(t);
    assert_int_equal(t->uploads, 1); /* one at a time */
    assert_memory_equal(t->upload_id, a, 16);
    assert_string_equal(t->upload_path, "/tmp/shots/cat.jpg");
    assert_string_equal(t->upload_name, "cat.jpg");
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_SEND), 0);
    /* The network fails: tried again after a pause, not at once. */
    sb_client_core_upload_done(t->cc, a, -ECONNRESET, NULL, NULL, t->now);
    pull(t);
    assert_int_equal(t->uploads, 2); /* the next one meanwhile */
    assert_memory_equal(t->upload_id, b, 16);
    sb_client_core_upload_done(t->cc, b, SB_E_TOO_LARGE, NULL,
                               "at most 10 bytes", t->now);
    assert_int_equal(t->nsts, 1);
    assert_int_equal(t->sts[0].st, SB_SEND_FAILED);
    assert_int_equal(t->sts[0].err, SB_E_TOO_LARGE);
    assert_memory_equal(t->sts[0].id, b, 16);
    pull(t);
    assert_int_equal(t->uploads, 2); /* a's pause is not over */
    t->now += 5000;
    sb_client_core_tick(t->cc, t->now);
    sb_client_core_on_rx(t->cc, t->now);
    pull(t);
    assert_int_equal(t->uploads, 3);
    assert_memory_equal(t->upload_id, a, 16);
    /* Across a reconnect the send waits; the upload's answer still
     * counts. */
    sb_client_core_on_close(t->cc, -ECONNRESET, 0, t->now);
    sb_client_core_upload_done(t->cc, a, 0, "0123456789abcdef0123456789abcdef",
                               NULL, t->now);
    pull(t);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_SEND), 0);
    go_ready(t, 16);
    Sbp__Frame *f = find_kind(t, SBP__FRAME__BODY_SEND, 0);
    assert_non_null(f);
    assert_int_equal(f->send->type, SBP__MSG_TYPE__MSG_IMAGE);
    assert_string_equal(f->send->body, "my cat");
    assert_non_null(f->send->media);
    assert_string_equal(f->send->media->id, "0123456789abcdef0123456789abcdef");
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_SEND), 1);
    int before = t->nmsgs;
    feed_send_ack(t, a, 5, 1, false);
    assert_int_equal(t->nmsgs, before + 1);
    assert_string_equal(t->msgs[before].body, "my cat");
    /* An upload that cannot start (the file is gone): FAILED at the next
     * tick, not from within the send call. */
    t->upload_rc = -ENOENT;
    int nsts = t->nsts;
    assert_int_equal(sb_client_core_send_file(t->cc, 5, SBP__MSG_TYPE__MSG_FILE,
                                              "/gone", NULL, NULL, b),
                     0);
    pull(t);
    assert_int_equal(t->nsts, nsts);
    t->now += 100;
    sb_client_core_tick(t->cc, t->now);
    sb_client_core_on_rx(t->cc, t->now);
    assert_int_equal(t->nsts, nsts + 1);
    assert_int_equal(t->sts[nsts].st, SB_SEND_FAILED);
    assert_int_equal(t->sts[nsts].err, -ENOENT);
    sb_client_stats st;
    sb_client_core_stats(t->cc, &st);
    assert_int_equal(st.uploads, 1);
    assert_int_equal(st.upload_retries, 1);
    assert_int_equal(outbox_len(t), 0);
    h_free(t);
}

static void test_window(void **state)
{
    (void)state;
    h *t = h_new();
    go_ready(t, 2); /* WELCOME: pending_sends_max 2 */
    uint8_t ids[5][16];
    for (int i = 0; i < 5; i++)
        send_text(t, 4, "w", ids[i]);
    pull(t);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_SEND), 2);
    pull(t);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_SEND), 0);
    feed_send_ack(t, ids[0], 4, 1, false);
    pull(t);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_SEND), 1);
    assert_memory_equal(
        find_kind(t, SBP__FRAME__BODY_SEND, 0)->send->client_msg_id.data,
        ids[2], 16);
    sb_client_stats st;
    sb_client_core_stats(t->cc, &st);
    assert_int_equal(st.inflight, 2);
    assert_int_equal(st.outbox_len, 4);
    /* TOO_MANY_PENDING is retried later, in the window. */
    feed_error(t, 0, SBP__ERROR_CODE__ERR_TOO_MANY_PENDING, ids[1]);
    pull(t);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_SEND), 1);
    assert_memory_equal(
        find_kind(t, SBP__FRAME__BODY_SEND, 0)->send->client_msg_id.data,
        ids[3], 16);
    t->now += 5000;
    sb_client_core_on_rx(t->cc, t->now);
    feed_send_ack(t, ids[2], 4, 2, false);
    pull(t);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_SEND), 1);
    assert_memory_equal(
        find_kind(t, SBP__FRAME__BODY_SEND, 0)->send->client_msg_id.data,
        ids[1], 16);
    h_free(t);
}

static void test_statuses(void **state)
{
    (void)state;
    h *t = h_new();
    go_ready(t, 16);
    uint8_t id[16], id2[16];
    send_text(t, 6, "a", id);
    send_text(t, 6, "b", id2);
    pull(t);
    feed_send_ack(t, id, 6, 1, false);
    feed_send_ack(t, id2, 6, 2, false);
    assert_int_equal(t->nsts, 2);
    assert_int_equal(t->sts[0].st, SB_SEND_SENT);
    /* My own other device reading says nothing of delivery. */
    feed_read_notify(t, 6, "alice", 2, 2);
    assert_int_equal(t->nsts, 2);
    assert_int_equal(t->receipts, 1);
    feed_read_notify(t, 6, "bob", 0, 1);
    assert_int_equal(t->nsts, 3);
    assert_int_equal(t->sts[2].st, SB_SEND_DELIVERED);
    assert_memory_equal(t->sts[2].id, id, 16);
    /* Read through 2: the second goes delivered then read; first read. */
    feed_read_notify(t, 6, "bob", 2, 2);
    assert_int_equal(t->nsts, 6);
    assert_int_equal(t->sts[3].st, SB_SEND_READ);
    assert_memory_equal(t->sts[3].id, id, 16);
    assert_int_equal(t->sts[4].st, SB_SEND_DELIVERED);
    assert_int_equal(t->sts[5].st, SB_SEND_READ);
    assert_memory_equal(t->sts[5].id, id2, 16);
    feed_read_notify(t, 6, "bob", 2, 2);
    assert_int_equal(t->nsts, 6);

    /* Non-retryable: failed at once, out of the outbox. */
    uint8_t id3[16];
    send_text(t, 6, "c", id3);
    pull(t);
    feed_error(t, t->out[0]->rid, SBP__ERROR_CODE__ERR_FORBIDDEN, id3);
    assert_int_equal(t->nsts, 7);
    assert_int_equal(t->sts[6].st, SB_SEND_FAILED);
    assert_int_equal(t->sts[6].err, SB_E_FORBIDDEN);
    assert_int_equal(outbox_len(t), 0);
    assert_string_equal(sb_client_err_name(t->sts[6].err), "ERR_FORBIDDEN");

    /* Retryable: resent later with the same id, then acked. */
    uint8_t id4[16];
    send_text(t, 6, "d", id4);
    pull(t);
    feed_error(t, 0, SBP__ERROR_CODE__ERR_STORE, id4);
    assert_int_equal(t->nsts, 7);
    pull(t);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_SEND), 0);
    t->now += 1000;
    sb_client_core_on_rx(t->cc, t->now);
    sb_client_core_tick(t->cc, t->now);
    pull(t);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_SEND), 1);
    assert_memory_equal(t->out[0]->send->client_msg_id.data, id4, 16);
    feed_send_ack(t, id4, 6, 3, false);
    assert_int_equal(t->sts[7].st, SB_SEND_SENT);
    /* READ_NOTIFY before... after the fact: receipts already past 3. */
    feed_read_notify(t, 6, "bob", 3, 3);
    assert_int_equal(t->sts[8].st, SB_SEND_DELIVERED);
    assert_int_equal(t->sts[9].st, SB_SEND_READ);

    /* A SEND_ACK for a seq the peer already read: all three at once. */
    uint8_t id5[16];
    send_text(t, 6, "e", id5);
    pull(t);
    feed_read_notify(t, 6, "bob", 4, 4);
    feed_send_ack(t, id5, 6, 4, false);
    assert_int_equal(t->sts[10].st, SB_SEND_SENT);
    assert_int_equal(t->sts[11].st, SB_SEND_DELIVERED);
    assert_int_equal(t->sts[12].st, SB_SEND_READ);
    h_free(t);
}

static void test_receipts_bounded(void **state)
{
    (void)state;
    sb_client_config cfg;
    base_cfg(&cfg);
    cfg.track_max = 3;
    h *t = h_new_cfg(&cfg);
    go_ready(t, 16);
    uint8_t ids[20][16];
    for (int i = 0; i < 20; i++) {
        send_text(t, 6, "r", ids[i]);
        pull(t);
        feed_send_ack(t, ids[i], 6, (uint64_t)i + 1, false);
        if (i == 9) { /* the first ten read: the ring empties */
            feed_read_notify(t, 6, "bob", 10, 10);
        }
    }
    /* Seqs 1..10: SENT, DELIVERED+READ only for the 3 tracked (8..10). */
    int n = t->nsts;
    feed_read_notify(t, 6, "bob", 20, 20);
    /* Only the last three of 11..20 are still tracked. */
    assert_int_equal(t->nsts - n, 6);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(t->sts[n + 2 * i].st, SB_SEND_DELIVERED);
        assert_int_equal(t->sts[n + 2 * i].seq, 18 + (uint64_t)i);
        assert_int_equal(t->sts[n + 2 * i + 1].st, SB_SEND_READ);
    }
    h_free(t);
}

static void test_attempts_run_out(void **state)
{
    (void)state;
    sb_client_config cfg;
    base_cfg(&cfg);
    cfg.send_attempts_max = 2;
    h *t = h_new_cfg(&cfg);
    go_ready(t, 16);
    uint8_t id[16];
    send_text(t, 6, "x", id);
    pull(t);
    for (int i = 0; i < 2; i++) {
        t->now += 5000;
        sb_client_core_on_rx(t->cc, t->now);
        sb_client_core_tick(t->cc, t->now);
        pull(t);
    }
    assert_int_equal(t->nsts, 1);
    assert_int_equal(t->sts[0].st, SB_SEND_FAILED);
    assert_int_equal(t->sts[0].err, -ETIMEDOUT);
    h_free(t);
}

static void test_send_limits(void **state)
{
    (void)state;
    sb_client_config cfg;
    base_cfg(&cfg);
    cfg.outbox_max = 3;
    h *t = h_new_cfg(&cfg);
    uint8_t id[16];
    for (int i = 0; i < 3; i++)
        send_text(t, 1, "q", id);
    assert_int_equal(
        sb_client_core_send(t->cc, 1, SBP__MSG_TYPE__MSG_TEXT, "q", 1, 0, id),
        -ENOBUFS);
    assert_int_equal(
        sb_client_core_send(t->cc, 0, SBP__MSG_TYPE__MSG_TEXT, "q", 1, 0, id),
        SB_E_INVALID);
    h_free(t);
    t = h_new();
    go_ready(t, 16); /* WELCOME: body_bytes_max 1000 */
    char big[1001];
    memset(big, 'x', sizeof big);
    assert_int_equal(sb_client_core_send(t->cc, 1, SBP__MSG_TYPE__MSG_TEXT, big,
                                         1001, 0, id),
                     SB_E_TOO_LARGE);
    assert_int_equal(sb_client_core_send(t->cc, 1, SBP__MSG_TYPE__MSG_TEXT, big,
                                         1000, 0, id),
                     0);
    assert_int_equal(sb_client_core_send(t->cc, 1, SBP__MSG_TYPE__MSG_TEXT,
                                         "\xff\xfe", 2, 0, id),
                     SB_E_BAD_UTF8);
    h_free(t);
}

/* A client_msg_id starts with the core's clock (6 bytes of milliseconds,
 * big endian): a sender's ids sort in the order sent, the rest random. */
static void test_msg_id_time_ordered(void **state)
{
    (void)state;
    h *t = h_new();
    go_ready(t, 16);
    uint8_t a[16], b[16];
    int64_t t0 = t->now;
    send_text(t, 1, "a", a);
    t->now += 300;
    sb_client_core_tick(t->cc, t->now);
    send_text(t, 1, "b", b);
    uint64_t ma = 0, mb = 0;
    for (int i = 0; i < 6; i++) {
        ma = ma << 8 | a[i];
        mb = mb << 8 | b[i];
    }
    assert_int_equal(ma, (uint64_t)t0);
    assert_int_equal(mb, (uint64_t)t0 + 300);
    assert_true(memcmp(a, b, sizeof a) < 0);
    assert_memory_not_equal(a + 6, b + 6, 10);
    h_free(t);
}

static void test_backoff_grows_capped_jitter(void **state)
{
    (void)state;
    h *t = h_new();
    t->rand_fixed = 0xff; /* the top of every jitter range */
    sb_client_core_start(t->cc, t->now);
    uint32_t want[] = {250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        sb_client_core_on_close(t->cc, -ECONNREFUSED, 0, t->now);
        assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_BACKOFF);
        assert_int_equal(sb_client_core_backoff_ms(t->cc), want[i]);
        int c0 = t->connects;
        t->now += want[i] - 1;
        sb_client_core_tick(t->cc, t->now);
        assert_int_equal(t->connects, c0); /* not before the delay */
        t->now += 1;
        sb_client_core_tick(t->cc, t->now);
        assert_int_equal(t->connects, c0 + 1);
    }
    /* Jitter: uniform in [0, cap]; with varied bytes, spread below it. */
    t->rand_fixed = -1;
    uint32_t lo = UINT32_MAX, hi = 0;
    for (int i = 0; i < 200; i++) {
        sb_client_core_on_close(t->cc, -ECONNREFUSED, 0, t->now);
        uint32_t d = sb_client_core_backoff_ms(t->cc);
        assert_true(d <= 30000);
        if (d < lo) lo = d;
        if (d > hi) hi = d;
        t->now += d;
        sb_client_core_tick(t->cc, t->now);
    }
    assert_true(lo < 10000 && hi > 20000);
    /* A WELCOME resets it. */
    t->rand_fixed = 0xff;
    sb_client_core_on_open(t->cc, t->now);
    pull(t);
    feed_welcome(t, t->out[0]->rid, 16);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_READY);
    sb_client_core_on_close(t->cc, 0, 1001, t->now); /* server draining */
    assert_int_equal(sb_client_core_backoff_ms(t->cc), 250);
    assert_int_equal(sb_client_core_close_code(t->cc), 1001);
    h_free(t);
}

/* After the server's 1001 (a restart), refused attempts back off no
 * further than restart_backoff_ms_max for restart_window_ms; then as
 * usual, doubling from that cap: the attempts made at it do not count. */
static void test_backoff_after_restart(void **state)
{
    (void)state;
    h *t = h_new();
    t->rand_fixed = 0xff; /* the top of every jitter range */
    sb_client_core_start(t->cc, t->now);
    sb_client_core_on_open(t->cc, t->now);
    pull(t);
    feed_welcome(t, t->out[0]->rid, 16);
    int64_t t0 = t->now;
    sb_client_core_on_close(t->cc, 0, 1001, t->now);
    uint32_t want[] = {250, 500, 1000, 1000, 1000, 1000, 1000, 1000, 1000};
    size_t i = 0;
    for (;; i++) {
        if (i < sizeof want / sizeof *want)
            assert_int_equal(sb_client_core_backoff_ms(t->cc), want[i]);
        else
            assert_true(sb_client_core_backoff_ms(t->cc) <= 1000);
        t->now += sb_client_core_backoff_ms(t->cc);
        sb_client_core_tick(t->cc, t->now);
        if (t->now - t0 >= 30000) break;
        sb_client_core_on_close(t->cc, -ECONNREFUSED, 0, t->now);
    }
    assert_true(i > 25); /* many attempts, each within the cap */
    /* The window is over: on from the cap, doubling. */
    uint32_t after[] = {1000, 2000, 4000, 8000};
    for (size_t k = 0; k < sizeof after / sizeof *after; k++) {
        sb_client_core_on_close(t->cc, -ECONNREFUSED, 0, t->now);
        assert_int_equal(sb_client_core_backoff_ms(t->cc), after[k]);
        t->now += sb_client_core_backoff_ms(t->cc);
        sb_client_core_tick(t->cc, t->now);
    }
    /* Another close (not 1001) never gets the cap. */
    h_free(t);
    t = h_new();
    t->rand_fixed = 0xff;
    sb_client_core_start(t->cc, t->now);
    for (int k = 0; k < 4; k++) {
        sb_client_core_on_close(t->cc, -ECONNREFUSED, 0, t->now);
        t->now += sb_client_core_backoff_ms(t->cc);
        sb_client_core_tick(t->cc, t->now);
    }
    sb_client_core_on_close(t->cc, -ECONNREFUSED, 0, t->now);
    assert_int_equal(sb_client_core_backoff_ms(t->cc), 4000);
    h_free(t);
}

static void test_no_reconnect_after_bad_token(void **state)
{
    (void)state;
    h *t = h_new();
    sb_client_core_start(t->cc, t->now);
    sb_client_core_on_open(t->cc, t->now);
    pull(t);
    feed_error(t, t->out[0]->rid, SBP__ERROR_CODE__ERR_BAD_TOKEN, NULL);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_STOPPED);
    assert_int_equal(t->last_state_err, SB_E_BAD_TOKEN);
    assert_int_equal(sb_client_core_last_error(t->cc), SB_E_BAD_TOKEN);
    assert_int_equal(t->closes, 1);
    sb_client_core_on_close(t->cc, 0, 1008, t->now); /* late: ignored */
    for (int i = 0; i < 100; i++) {
        t->now += 1000;
        sb_client_core_tick(t->cc, t->now);
    }
    assert_int_equal(t->connects, 1);
    assert_int_equal(
        sb_client_core_send(t->cc, 1, SBP__MSG_TYPE__MSG_TEXT, "x", 1, 0, NULL),
        -ESHUTDOWN);
    h_free(t);

    /* An expired token, then a 1008 close while READY. */
    t = h_new();
    sb_client_core_start(t->cc, t->now);
    sb_client_core_on_open(t->cc, t->now);
    pull(t);
    feed_error(t, t->out[0]->rid, SBP__ERROR_CODE__ERR_TOKEN_EXPIRED, NULL);
    assert_int_equal(t->last_state_err, SB_E_TOKEN_EXPIRED);
    h_free(t);
    t = h_new();
    go_ready(t, 16);
    sb_client_core_on_close(t->cc, 0, 1008, t->now);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_STOPPED);
    assert_int_equal(t->last_state_err, SB_E_BAD_TOKEN);
    t->now += 100000;
    sb_client_core_tick(t->cc, t->now);
    assert_int_equal(t->connects, 1);
    h_free(t);
}

static void test_dead_connection_and_timeouts(void **state)
{
    (void)state;
    h *t = h_new();
    go_ready(t, 16); /* heartbeat_ms 10000: dead after 30 s of silence */
    t->now += 29999;
    sb_client_core_tick(t->cc, t->now);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_READY);
    t->now += 1;
    sb_client_core_tick(t->cc, t->now);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_BACKOFF);
    assert_int_equal(t->closes, 1);
    assert_int_equal(sb_client_core_last_error(t->cc), -ETIMEDOUT);
    /* A connect that never completes times out too. */
    t->now += 60000;
    sb_client_core_tick(t->cc, t->now);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_CONNECTING);
    t->now += 10000;
    sb_client_core_tick(t->cc, t->now);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_BACKOFF);
    assert_int_equal(t->closes, 2);
    h_free(t);
}

static void test_open_history_requests(void **state)
{
    (void)state;
    h *t = h_new();
    uint32_t rid;
    const char *members[] = {"agent7"};
    assert_int_equal(sb_client_core_open(t->cc, members, 1, "help",
                                         SBP__CONV_KIND__CONV_SERVICE, &rid),
                     -ENOTCONN);
    go_ready(t, 16);
    assert_int_equal(sb_client_core_open(t->cc, members, 1, "help",
                                         SBP__CONV_KIND__CONV_SERVICE, &rid),
                     0);
    pull(t);
    Sbp__Frame *o = find_kind(t, SBP__FRAME__BODY_OPEN, 0);
    assert_non_null(o);
    assert_int_equal(o->rid, rid);
    assert_int_equal(o->open->n_members, 1);
    assert_string_equal(o->open->members[0], "agent7");
    assert_string_equal(o->open->title, "help");
    Sbp__Conversation conv = SBP__CONVERSATION__INIT;
    conv.conv_id = 321;
    conv.kind = SBP__CONV_KIND__CONV_SERVICE;
    Sbp__OpenResp orr = SBP__OPEN_RESP__INIT;
    orr.conv = &conv;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = rid;
    f.body_case = SBP__FRAME__BODY_OPEN_RESP;
    f.open_resp = &orr;
    feed(t, &f);
    assert_int_equal(t->opens, 1);
    assert_int_equal(t->open_rid, rid);
    assert_int_equal(t->open_err, 0);
    assert_int_equal(t->open_conv, 321);

    /* HISTORY answered, then one answered by an ERROR. */
    assert_int_equal(sb_client_core_history(t->cc, 321, 0, 20, &rid), 0);
    pull(t);
    Sbp__Frame *hf = find_kind(t, SBP__FRAME__BODY_HISTORY, 0);
    assert_int_equal(hf->history->conv_id, 321);
    assert_int_equal(hf->history->limit, 20);
    Sbp__Message *m[2] = {mk(321, 1, "bob", "a"), mk(321, 2, "bob", "b")};
    Sbp__HistoryResp hr = SBP__HISTORY_RESP__INIT;
    hr.conv_id = 321;
    hr.n_messages = 2;
    hr.messages = m;
    Sbp__Frame g = SBP__FRAME__INIT;
    g.rid = rid;
    g.body_case = SBP__FRAME__BODY_HISTORY_RESP;
    g.history_resp = &hr;
    feed(t, &g);
    free(m[0]);
    free(m[1]);
    assert_int_equal(t->hists, 1);
    assert_int_equal(t->hist_n, 2);
    assert_int_equal(t->nmsgs, 0); /* history is not the inbox */
    assert_int_equal(sb_client_core_history(t->cc, 999, 0, 20, &rid), 0);
    feed_error(t, rid, SBP__ERROR_CODE__ERR_FORBIDDEN, NULL);
    assert_int_equal(t->hists, 2);
    assert_int_equal(t->hist_err, SB_E_FORBIDDEN);
    /* A request pending when the connection drops fails. */
    assert_int_equal(sb_client_core_history(t->cc, 321, 0, 20, &rid), 0);
    sb_client_core_on_close(t->cc, -ECONNRESET, 0, t->now);
    assert_int_equal(t->hists, 3);
    assert_int_equal(t->hist_err, -ECONNRESET);
    /* An ERROR for nothing known goes to on_error. */
    go_ready(t, 16);
    feed_error(t, 4242, SBP__ERROR_CODE__ERR_RATE_LIMITED, NULL);
    assert_int_equal(t->errors, 1);
    h_free(t);
}

static void test_read_and_reack_after_reconnect(void **state)
{
    (void)state;
    h *t = h_new();
    go_ready(t, 16);
    uint64_t a[] = {1, 2};
    push(t, 2, a, 2);
    assert_int_equal(sb_client_core_read(t->cc, 2, 2), 0);
    pull(t);
    Sbp__Frame *r = find_kind(t, SBP__FRAME__BODY_READ, 0);
    assert_non_null(r);
    assert_int_equal(r->read->seq, 2);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_ACK), 1);
    sb_client_core_on_close(t->cc, -ECONNRESET, 0, t->now);
    go_ready(t, 16);
    /* The SYNC carried the cursor; ACK and READ are said again. */
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_ACK), 1);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_READ), 1);
    h_free(t);
}

static void test_stop_inside_callback(void **state)
{
    (void)state;
    h *t = h_new();
    go_ready(t, 16);
    t->stop_in_message = true;
    uint64_t a[] = {1, 2, 3};
    push(t, 2, a, 3);
    assert_int_equal(t->nmsgs, 1);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_STOPPED);
    assert_int_equal(t->closes, 1);
    h_free(t);
}

static void test_stop_acks_first_and_replaced(void **state)
{
    (void)state;
    h *t = h_new();
    go_ready(t, 16);
    uint64_t a[] = {1, 2};
    push(t, 2, a, 2);
    t->pull_on_close = true;
    sb_client_core_stop(t->cc);
    assert_int_equal(t->closes, 1);
    assert_int_equal(t->close_code, 1000);
    Sbp__Frame *ack = find_kind(t, SBP__FRAME__BODY_ACK, 0);
    assert_non_null(ack);
    assert_int_equal(ack->ack->seq, 2);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_STOPPED);
    h_free(t);

    /* The server closes with 1000: replaced by a newer connection of this
     * device. No reconnect. */
    t = h_new();
    go_ready(t, 16);
    sb_client_core_on_close(t->cc, 0, 1000, t->now);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_STOPPED);
    assert_int_equal(t->last_state_err, SB_CLIENT_E_REPLACED);
    assert_string_equal(sb_client_err_name(SB_CLIENT_E_REPLACED), "REPLACED");
    t->now += 100000;
    sb_client_core_tick(t->cc, t->now);
    assert_int_equal(t->connects, 1);
    h_free(t);
}

static void test_json_encoding(void **state)
{
    (void)state;
    sb_client_config cfg;
    base_cfg(&cfg);
    cfg.enc = SB_ENC_JSON;
    h *t = h_new_cfg(&cfg);
    go_ready(t, 16);
    const uint8_t *p;
    size_t n;
    uint8_t id[16];
    send_text(t, 3, "json \xe4\xbd\xa0", id);
    assert_int_equal(sb_client_core_next_frame(t->cc, &p, &n), 1);
    assert_true(n > 2 && p[0] == '{');
    while (sb_client_core_next_frame(t->cc, &p, &n)) {
    }
    feed_send_ack(t, id, 3, 1, false);
    assert_int_equal(t->nmsgs, 1);
    assert_string_equal(t->msgs[0].body, "json \xe4\xbd\xa0");
    uint64_t a[] = {2};
    push(t, 3, a, 1);
    assert_int_equal(t->nmsgs, 2);
    /* Garbage from the server: a protocol error, then reconnect. */
    sb_client_core_on_frame(t->cc, (const uint8_t *)"{nope", 5, t->now);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_BACKOFF);
    assert_int_equal(t->close_code, 1002);
    h_free(t);
}

static void test_set_cursor(void **state)
{
    (void)state;
    h *t = h_new();
    assert_int_equal(sb_client_core_set_cursor(t->cc, 4, 10), 0);
    go_ready(t, 16);
    uint64_t a[] = {9, 10, 11};
    push(t, 4, a, 3);
    assert_int_equal(t->nmsgs, 1);
    assert_int_equal(t->msgs[0].seq, 11);
    h_free(t);
}

/* ---- customer service ------------------------------------------------------
 */

/* Feeds a frame of body case bc whose body is p (rid given). */
static void feed_body(h *t, uint32_t rid, Sbp__Frame__BodyCase bc, void *p)
{
    Sbp__Frame f = SBP__FRAME__INIT;
    f.rid = rid;
    f.body_case = bc;
    switch (bc) {
    case SBP__FRAME__BODY_OK:
        f.ok = p;
        break;
    case SBP__FRAME__BODY_AGENT_STATE:
        f.agent_state = p;
        break;
    case SBP__FRAME__BODY_CONV_LIST_RESP:
        f.conv_list_resp = p;
        break;
    case SBP__FRAME__BODY_SEARCH_RESP:
        f.search_resp = p;
        break;
    case SBP__FRAME__BODY_CANNED_LIST_RESP:
        f.canned_list_resp = p;
        break;
    case SBP__FRAME__BODY_CONV_UPDATE:
        f.conv_update = p;
        break;
    case SBP__FRAME__BODY_TYPING:
        f.typing = p;
        break;
    case SBP__FRAME__BODY_OPEN_RESP:
        f.open_resp = p;
        break;
    case SBP__FRAME__BODY_ADMIN_RESP:
        f.admin_resp = p;
        break;
    default:
        fail_msg("feed_body: body case %d", (int)bc);
    }
    feed(t, &f);
}

static void feed_ok(h *t, uint32_t rid)
{
    Sbp__Ok ok = SBP__OK__INIT;
    feed_body(t, rid, SBP__FRAME__BODY_OK, &ok);
}

/* The one frame pulled now, of body case bc. */
static Sbp__Frame *pull_one(h *t, Sbp__Frame__BodyCase bc)
{
    assert_int_equal(pull(t), 1);
    assert_int_equal(t->out[0]->body_case, bc);
    return t->out[0];
}

static void test_service_open(void **state)
{
    (void)state;
    h *t = h_new();
    uint32_t rid = 0;
    assert_int_equal(sb_client_core_open_service(t->cc, "shop", &rid),
                     -ENOTCONN);
    go_ready(t, 16);
    char desk[80];
    memset(desk, 'd', sizeof desk - 1);
    desk[sizeof desk - 1] = '\0';
    assert_int_equal(sb_client_core_open_service(t->cc, desk, &rid),
                     SB_E_INVALID);
    assert_int_equal(sb_client_core_open_service(t->cc, "\xff", &rid),
                     SB_E_BAD_UTF8);
    assert_int_equal(pull(t), 0); /* a refused call writes nothing */
    assert_int_equal(sb_client_core_open_service(t->cc, "shop", &rid), 0);
    Sbp__Frame *o = pull_one(t, SBP__FRAME__BODY_OPEN);
    assert_int_equal(o->rid, rid);
    assert_int_equal(o->open->kind, SBP__CONV_KIND__CONV_SERVICE);
    assert_string_equal(o->open->desk, "shop");
    assert_int_equal(o->open->n_members, 0);
    /* NULL desk: the server's first. */
    uint32_t rid2;
    assert_int_equal(sb_client_core_open_service(t->cc, NULL, &rid2), 0);
    o = pull_one(t, SBP__FRAME__BODY_OPEN);
    assert_string_equal(o->open->desk, "");
    assert_true(rid2 != rid);
    /* The plain open still sends no desk. */
    const char *members[] = {"agent7"};
    uint32_t rid3;
    assert_int_equal(sb_client_core_open(t->cc, members, 1, "t",
                                         SBP__CONV_KIND__CONV_DIRECT, &rid3),
                     0);
    o = pull_one(t, SBP__FRAME__BODY_OPEN);
    assert_string_equal(o->open->desk, "");
    assert_int_equal(o->open->kind, SBP__CONV_KIND__CONV_DIRECT);
    /* Answers, second first: each goes to its rid. */
    Sbp__Conversation conv = SBP__CONVERSATION__INIT;
    conv.conv_id = 55;
    conv.kind = SBP__CONV_KIND__CONV_SERVICE;
    conv.state = SBP__CONV_STATE__STATE_BOT;
    conv.desk = "shop";
    Sbp__OpenResp orr = SBP__OPEN_RESP__INIT;
    orr.conv = &conv;
    feed_body(t, rid2, SBP__FRAME__BODY_OPEN_RESP, &orr);
    assert_int_equal(t->opens, 1);
    assert_int_equal(t->open_rid, rid2);
    feed_error(t, rid, SBP__ERROR_CODE__ERR_NOT_FOUND, NULL);
    assert_int_equal(t->opens, 2);
    assert_int_equal(t->open_rid, rid);
    assert_int_equal(t->open_err, SB_E_NOT_FOUND);
    feed_body(t, rid, SBP__FRAME__BODY_OPEN_RESP, &orr); /* late: dropped */
    assert_int_equal(t->opens, 2);
    h_free(t);
}

/* Transfer, close, handoff, recall and tag: the frame each writes, and
 * OK / ERROR answers matched by rid in any order. */
static void test_done_requests(void **state)
{
    (void)state;
    h *t = h_new();
    uint32_t rid[5];
    assert_int_equal(sb_client_core_close_conv(t->cc, 7, &rid[0]), -ENOTCONN);
    go_ready(t, 16);

    /* Refused before anything is written. */
    assert_int_equal(sb_client_core_transfer(t->cc, 7, "a2", "g2", NULL),
                     SB_E_INVALID);
    assert_int_equal(sb_client_core_transfer(t->cc, 7, "", NULL, NULL),
                     SB_E_INVALID);
    assert_int_equal(sb_client_core_transfer(t->cc, 0, "a2", NULL, NULL),
                     SB_E_INVALID);
    assert_int_equal(sb_client_core_close_conv(t->cc, 0, NULL), SB_E_INVALID);
    assert_int_equal(sb_client_core_handoff(t->cc, 0, NULL, NULL),
                     SB_E_INVALID);
    assert_int_equal(sb_client_core_recall(t->cc, 7, 0, NULL), SB_E_INVALID);
    assert_int_equal(sb_client_core_tag(t->cc, 7, 0, NULL, 0, NULL, 0, NULL),
                     SB_E_INVALID);
    const char *empty[] = {""};
    assert_int_equal(sb_client_core_tag(t->cc, 7, 0, empty, 1, NULL, 0, NULL),
                     SB_E_INVALID);
    const char *longtag[] = {"0123456789abcdef0123456789abcdefX"};
    assert_int_equal(sb_client_core_tag(t->cc, 7, 0, longtag, 1, NULL, 0, NULL),
                     SB_E_INVALID);
    const char *many[SB_TAGS_MAX + 1];
    for (size_t i = 0; i <= SB_TAGS_MAX; i++)
        many[i] = "t";
    assert_int_equal(
        sb_client_core_tag(t->cc, 7, 0, NULL, 0, many, SB_TAGS_MAX + 1, NULL),
        SB_E_TOO_LARGE);
    assert_int_equal(pull(t), 0);
    assert_int_equal(t->nans, 0);

    assert_int_equal(sb_client_core_transfer(t->cc, 7, "a2", NULL, &rid[0]), 0);
    Sbp__Frame *f = pull_one(t, SBP__FRAME__BODY_TRANSFER);
    assert_int_equal(f->rid, rid[0]);
    assert_int_equal(f->transfer->conv_id, 7);
    assert_string_equal(f->transfer->to_agent, "a2");
    assert_string_equal(f->transfer->to_group, "");
    assert_int_equal(sb_client_core_close_conv(t->cc, 7, &rid[1]), 0);
    f = pull_one(t, SBP__FRAME__BODY_CLOSE);
    assert_int_equal(f->rid, rid[1]);
    assert_int_equal(f->close->conv_id, 7);
    assert_int_equal(sb_client_core_handoff(t->cc, 7, "vip", &rid[2]), 0);
    f = pull_one(t, SBP__FRAME__BODY_HANDOFF);
    assert_int_equal(f->handoff->conv_id, 7);
    assert_string_equal(f->handoff->group, "vip");
    assert_int_equal(sb_client_core_recall(t->cc, 7, 12, &rid[3]), 0);
    f = pull_one(t, SBP__FRAME__BODY_RECALL);
    assert_int_equal(f->recall->conv_id, 7);
    assert_int_equal(f->recall->seq, 12);
    const char *add[] = {"vip", "refund"}, *rm[] = {"new"};
    assert_int_equal(sb_client_core_tag(t->cc, 7, 3, add, 2, rm, 1, &rid[4]),
                     0);
    f = pull_one(t, SBP__FRAME__BODY_TAG);
    assert_int_equal(f->tag->seq, 3);
    assert_int_equal(f->tag->n_add, 2);
    assert_string_equal(f->tag->add[1], "refund");
    assert_int_equal(f->tag->n_remove, 1);
    assert_string_equal(f->tag->remove[0], "new");
    for (int i = 0; i < 5; i++)
        for (int k = 0; k < i; k++)
            assert_true(rid[i] != rid[k]);

    /* Answers out of order; an OK for no request is ignored. */
    feed_ok(t, rid[3]);
    feed_error(t, rid[0], SBP__ERROR_CODE__ERR_STATE, NULL);
    feed_ok(t, 9999);
    feed_ok(t, rid[4]);
    feed_ok(t, rid[1]);
    feed_error(t, rid[2], SBP__ERROR_CODE__ERR_FORBIDDEN, NULL);
    assert_int_equal(t->nans, 5);
    uint32_t want_rid[5] = {rid[3], rid[0], rid[4], rid[1], rid[2]};
    int want_err[5] = {0, SB_E_STATE, 0, 0, SB_E_FORBIDDEN};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(t->ans[i].kind, ANS_DONE);
        assert_int_equal(t->ans[i].rid, want_rid[i]);
        assert_int_equal(t->ans[i].err, want_err[i]);
    }
    /* Each answered once: the same OK again does nothing. */
    feed_ok(t, rid[3]);
    assert_int_equal(t->nans, 5);
    assert_int_equal(t->errors, 0);
    h_free(t);
}

static void test_agent_state_requests(void **state)
{
    (void)state;
    h *t = h_new();
    go_ready(t, 16);
    uint32_t rid;
    assert_int_equal(sb_client_core_agent_state(
                         t->cc, SBP__AGENT_STATUS__AGENT_OFFLINE, &rid),
                     SB_E_INVALID);
    assert_int_equal(
        sb_client_core_agent_state(t->cc, (Sbp__AgentStatus)9, &rid),
        SB_E_INVALID);
    assert_int_equal(
        sb_client_core_agent_state(t->cc, SBP__AGENT_STATUS__AGENT_AWAY, &rid),
        0);
    Sbp__Frame *f = pull_one(t, SBP__FRAME__BODY_AGENT_STATE);
    assert_int_equal(f->rid, rid);
    assert_int_equal(f->agent_state->status, SBP__AGENT_STATUS__AGENT_AWAY);
    /* An OK is not an answer to it. */
    feed_ok(t, rid);
    assert_int_equal(t->nans, 0);
    Sbp__AgentState a = SBP__AGENT_STATE__INIT;
    a.status = SBP__AGENT_STATUS__AGENT_AWAY;
    a.capacity = 3;
    a.load = 1;
    feed_body(t, rid, SBP__FRAME__BODY_AGENT_STATE, &a);
    assert_int_equal(t->nans, 1);
    assert_int_equal(t->ans[0].kind, ANS_AGENT);
    assert_int_equal(t->ans[0].rid, rid);
    assert_int_equal(t->ans[0].err, 0);
    assert_int_equal(t->ans[0].n, 3);
    assert_int_equal(t->ans[0].x, 1);
    /* A late duplicate with that rid is dropped; one with rid 0 is news
     * from the server. */
    feed_body(t, rid, SBP__FRAME__BODY_AGENT_STATE, &a);
    assert_int_equal(t->nans, 1);
    a.status = SBP__AGENT_STATUS__AGENT_ONLINE;
    feed_body(t, 0, SBP__FRAME__BODY_AGENT_STATE, &a);
    assert_int_equal(t->nans, 2);
    assert_int_equal(t->ans[1].rid, 0);
    assert_string_equal(t->ans[1].s, "1");
    /* Refused by the server (a customer, say). */
    assert_int_equal(sb_client_core_agent_state(
                         t->cc, SBP__AGENT_STATUS__AGENT_ONLINE, &rid),
                     0);
    feed_error(t, rid, SBP__ERROR_CODE__ERR_FORBIDDEN, NULL);
    assert_int_equal(t->nans, 3);
    assert_int_equal(t->ans[2].err, SB_E_FORBIDDEN);
    assert_true(t->ans[2].null);
    h_free(t);
}

static void test_list_search_canned(void **state)
{
    (void)state;
    h *t = h_new();
    go_ready(t, 16);
    uint32_t rl, rs, rc, rl2;
    char big[SB_QUERY_BYTES_MAX + 2];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(sb_client_core_search(t->cc, 0, big, 10, &rs),
                     SB_E_TOO_LARGE);
    assert_int_equal(sb_client_core_search(t->cc, 0, "", 10, &rs),
                     SB_E_INVALID);
    assert_int_equal(sb_client_core_search(t->cc, 0, "\xc3", 10, &rs),
                     SB_E_BAD_UTF8);
    assert_int_equal(sb_client_core_conv_list(
                         t->cc, NULL, 10, (Sbp__ConvState)42, NULL, false, &rl),
                     SB_E_INVALID);
    assert_int_equal(pull(t), 0);

    assert_int_equal(sb_client_core_conv_list(t->cc, "c1", 20,
                                              SBP__CONV_STATE__STATE_QUEUED,
                                              "vip", true, &rl),
                     0);
    Sbp__Frame *f = pull_one(t, SBP__FRAME__BODY_CONV_LIST);
    assert_int_equal(f->rid, rl);
    assert_string_equal(f->conv_list->cursor, "c1");
    assert_int_equal(f->conv_list->limit, 20);
    assert_int_equal(f->conv_list->state, SBP__CONV_STATE__STATE_QUEUED);
    assert_string_equal(f->conv_list->tag, "vip");
    assert_true(f->conv_list->mine);
    assert_int_equal(sb_client_core_search(t->cc, 9, "refund status", 5, &rs),
                     0);
    f = pull_one(t, SBP__FRAME__BODY_SEARCH);
    assert_int_equal(f->search->conv_id, 9);
    assert_string_equal(f->search->query, "refund status");
    assert_int_equal(f->search->limit, 5);
    assert_int_equal(sb_client_core_canned_list(t->cc, NULL, &rc), 0);
    f = pull_one(t, SBP__FRAME__BODY_CANNED_LIST);
    assert_string_equal(f->canned_list->desk, "");
    assert_int_equal(
        sb_client_core_conv_list(t->cc, NULL, 0, 0, NULL, false, &rl2), 0);
    f = pull_one(t, SBP__FRAME__BODY_CONV_LIST);
    assert_string_equal(f->conv_list->cursor, "");
    assert_false(f->conv_list->mine);

    /* Answers in another order; an answer of the wrong kind for a rid is
     * not taken as its answer. */
    Sbp__Canned it = SBP__CANNED__INIT;
    it.key = "hi";
    it.text = "Hello!";
    Sbp__Canned *itp[1] = {&it};
    Sbp__CannedListResp cr = SBP__CANNED_LIST_RESP__INIT;
    cr.n_items = 1;
    cr.items = itp;
    feed_body(t, rl, SBP__FRAME__BODY_CANNED_LIST_RESP, &cr); /* wrong rid */
    assert_int_equal(t->nans, 0);
    feed_body(t, rc, SBP__FRAME__BODY_CANNED_LIST_RESP, &cr);
    Sbp__Message *m[1] = {mk(9, 4, "bob", "refund status?")};
    Sbp__SearchResp sr = SBP__SEARCH_RESP__INIT;
    sr.n_messages = 1;
    sr.messages = m;
    feed_body(t, rs, SBP__FRAME__BODY_SEARCH_RESP, &sr);
    free(m[0]);
    Sbp__Conversation c1 = SBP__CONVERSATION__INIT, c2 = c1;
    c1.conv_id = 31;
    c2.conv_id = 30;
    Sbp__Conversation *cp[2] = {&c1, &c2};
    Sbp__ConvListResp lr = SBP__CONV_LIST_RESP__INIT;
    lr.n_convs = 2;
    lr.convs = cp;
    lr.next_cursor = "next-1";
    lr.more = true;
    feed_body(t, rl2, SBP__FRAME__BODY_CONV_LIST_RESP, &lr);
    feed_error(t, rl, SBP__ERROR_CODE__ERR_INVALID, NULL);
    assert_int_equal(t->nans, 4);
    assert_int_equal(t->ans[0].kind, ANS_CANNED);
    assert_int_equal(t->ans[0].rid, rc);
    assert_int_equal(t->ans[0].n, 1);
    assert_string_equal(t->ans[0].s, "hi");
    assert_int_equal(t->ans[1].kind, ANS_SEARCH);
    assert_int_equal(t->ans[1].rid, rs);
    assert_int_equal(t->ans[1].x, 4);
    assert_int_equal(t->ans[2].kind, ANS_LIST);
    assert_int_equal(t->ans[2].rid, rl2);
    assert_int_equal(t->ans[2].n, 2);
    assert_int_equal(t->ans[2].x, 31);
    assert_string_equal(t->ans[2].s, "next-1");
    assert_int_equal(t->ans[3].kind, ANS_LIST);
    assert_int_equal(t->ans[3].rid, rl);
    assert_int_equal(t->ans[3].err, SB_E_INVALID);
    assert_true(t->ans[3].null);
    assert_int_equal(t->nmsgs, 0); /* search results are not the inbox */
    h_free(t);
}

/* Admin commands with an input, answered with text (ADMIN_RESP, OK or the
 * ERROR's reason), measured against the server's frame limit; a bot's
 * robot message with quick replies. */
static void test_admin_cmd_and_robot(void **state)
{
    (void)state;
    h *t = h_new();
    go_ready(t, 16);
    uint32_t r1, r2, r3;
    assert_int_equal(sb_client_core_admin_cmd(t->cc, "desk-agent-set",
                                              "{\"id\":\"a1\"}", &r1),
                     0);
    Sbp__Frame *f = pull_one(t, SBP__FRAME__BODY_ADMIN);
    assert_string_equal(f->admin->op, "desk-agent-set");
    assert_string_equal(f->admin->body, "{\"id\":\"a1\"}");
    assert_int_equal(sb_client_core_admin_cmd(t->cc, "desk-show", NULL, &r2),
                     0);
    f = pull_one(t, SBP__FRAME__BODY_ADMIN);
    assert_string_equal(f->admin->body, "");
    assert_int_equal(sb_client_core_admin_cmd(t->cc, "reload-filter", "", &r3),
                     0);
    f = pull_one(t, SBP__FRAME__BODY_ADMIN);
    assert_string_equal(f->admin->op, "reload-filter");
    Sbp__AdminResp ar = SBP__ADMIN_RESP__INIT;
    ar.text = "agent a1 updated";
    feed_body(t, r1, SBP__FRAME__BODY_ADMIN_RESP, &ar);
    feed_error(t, r2, SBP__ERROR_CODE__ERR_FORBIDDEN, NULL);
    feed_ok(t, r3);
    feed_body(t, r1, SBP__FRAME__BODY_ADMIN_RESP, &ar); /* late: dropped */
    assert_int_equal(t->nans, 3);
    assert_int_equal(t->ans[0].kind, ANS_ADMIN);
    assert_int_equal(t->ans[0].rid, r1);
    assert_int_equal(t->ans[0].err, 0);
    assert_string_equal(t->ans[0].s, "agent a1 updated");
    assert_int_equal(t->ans[1].err, SB_E_FORBIDDEN);
    assert_string_equal(t->ans[1].s, "nope");
    assert_int_equal(t->ans[2].err, 0);
    assert_string_equal(t->ans[2].s, "");
    /* Over the server's frame_bytes_max (1 MiB here): refused here. */
    size_t n = 1u << 20;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'x', n);
    big[n] = '\0';
    assert_int_equal(sb_client_core_admin_cmd(t->cc, "desk-set", big, &r1),
                     SB_E_TOO_LARGE);
    free(big);
    assert_int_equal(sb_client_core_admin_cmd(t->cc, "desk-set", "\xc3", &r1),
                     SB_E_BAD_UTF8);
    assert_int_equal(sb_client_core_admin_cmd(t->cc, "", "{}", &r1),
                     SB_E_INVALID);
    assert_int_equal(pull(t), 0);

    const char *quick[] = {"Yes", "No thanks"};
    uint8_t id[16];
    assert_int_equal(
        sb_client_core_send_robot(t->cc, 5, "Happy?", 6, quick, 2, id), 0);
    f = pull_one(t, SBP__FRAME__BODY_SEND);
    assert_int_equal(f->send->type, SBP__MSG_TYPE__MSG_ROBOT);
    assert_string_equal(f->send->body, "Happy?");
    assert_int_equal(f->send->n_quick_replies, 2);
    assert_string_equal(f->send->quick_replies[1]->title, "No thanks");
    assert_string_equal(f->send->quick_replies[1]->payload, "No thanks");
    assert_memory_equal(f->send->client_msg_id.data, id, 16);
    const char *nine[9] = {"1", "2", "3", "4", "5", "6", "7", "8", "9"};
    assert_int_equal(sb_client_core_send_robot(t->cc, 5, "x", 1, nine, 9, NULL),
                     SB_E_TOO_LARGE);
    const char *empty[] = {""};
    assert_int_equal(
        sb_client_core_send_robot(t->cc, 5, "x", 1, empty, 1, NULL),
        SB_E_INVALID);
    h_free(t);
}

static void test_conv_update_and_typing(void **state)
{
    (void)state;
    h *t = h_new();
    assert_int_equal(sb_client_core_typing(t->cc, 5, true), -ENOTCONN);
    go_ready(t, 16);
    assert_int_equal(sb_client_core_typing(t->cc, 0, true), SB_E_INVALID);
    assert_int_equal(sb_client_core_typing(t->cc, 5, true), 0);
    Sbp__Frame *f = pull_one(t, SBP__FRAME__BODY_TYPING);
    assert_int_equal(f->typing->conv_id, 5);
    assert_true(f->typing->on);
    assert_int_equal(f->rid, 0); /* no answer is awaited */
    assert_int_equal(sb_client_core_typing(t->cc, 5, false), 0);
    f = pull_one(t, SBP__FRAME__BODY_TYPING);
    assert_false(f->typing->on);

    Sbp__Typing ty = SBP__TYPING__INIT;
    ty.conv_id = 5;
    ty.user_id = "a1";
    ty.on = true;
    feed_body(t, 0, SBP__FRAME__BODY_TYPING, &ty);
    assert_int_equal(t->nans, 1);
    assert_int_equal(t->ans[0].kind, ANS_TYPING);
    assert_int_equal(t->ans[0].n, 5);
    assert_int_equal(t->ans[0].x, 1);
    assert_string_equal(t->ans[0].s, "a1");

    Sbp__Conversation c = SBP__CONVERSATION__INIT;
    c.conv_id = 5;
    c.kind = SBP__CONV_KIND__CONV_SERVICE;
    c.state = SBP__CONV_STATE__STATE_QUEUED;
    c.queue_position = 3;
    Sbp__ConvUpdate u = SBP__CONV_UPDATE__INIT;
    u.conv = &c;
    feed_body(t, 0, SBP__FRAME__BODY_CONV_UPDATE, &u);
    c.state = SBP__CONV_STATE__STATE_ASSIGNED;
    c.queue_position = 0;
    c.agent = "a1";
    feed_body(t, 0, SBP__FRAME__BODY_CONV_UPDATE, &u);
    assert_int_equal(t->nans, 3);
    assert_int_equal(t->ans[1].kind, ANS_UPDATE);
    assert_int_equal(t->ans[1].n, 5);
    assert_int_equal(t->ans[1].x, 3);
    assert_string_equal(t->ans[1].s, "3:");
    assert_string_equal(t->ans[2].s, "4:a1");
    /* An update without its conversation is a protocol error, no call. */
    sb_client_stats st;
    sb_client_core_stats(t->cc, &st);
    uint64_t pe = st.protocol_errors;
    u.conv = NULL;
    feed_body(t, 0, SBP__FRAME__BODY_CONV_UPDATE, &u);
    assert_int_equal(t->nans, 3);
    sb_client_core_stats(t->cc, &st);
    assert_int_equal(st.protocol_errors, pe + 1);
    /* Transient frames are not messages: nothing surfaced, nothing ACKed. */
    assert_int_equal(t->nmsgs, 0);
    assert_int_equal(pull(t), 0);
    h_free(t);
}

/* One request of each kind, in this order. */
static void issue_all(h *t, uint32_t rid[9])
{
    const char *tags[] = {"x"};
    assert_int_equal(sb_client_core_transfer(t->cc, 1, NULL, "g", &rid[0]), 0);
    assert_int_equal(sb_client_core_close_conv(t->cc, 1, &rid[1]), 0);
    assert_int_equal(sb_client_core_handoff(t->cc, 1, NULL, &rid[2]), 0);
    assert_int_equal(sb_client_core_recall(t->cc, 1, 2, &rid[3]), 0);
    assert_int_equal(sb_client_core_tag(t->cc, 1, 0, tags, 1, NULL, 0, &rid[4]),
                     0);
    assert_int_equal(sb_client_core_agent_state(
                         t->cc, SBP__AGENT_STATUS__AGENT_ONLINE, &rid[5]),
                     0);
    assert_int_equal(
        sb_client_core_conv_list(t->cc, NULL, 0, 0, NULL, false, &rid[6]), 0);
    assert_int_equal(sb_client_core_search(t->cc, 0, "q", 0, &rid[7]), 0);
    assert_int_equal(sb_client_core_canned_list(t->cc, "", &rid[8]), 0);
}

/* Every kind of request times out once, fails with -ECONNRESET when the
 * connection drops or the client stops, and is bounded by requests_max. */
static void test_service_timeouts_and_disconnect(void **state)
{
    (void)state;
    sb_client_config cfg;
    base_cfg(&cfg);
    cfg.requests_max = 9;
    cfg.request_timeout_ms = 5000;
    h *t = h_new_cfg(&cfg);
    go_ready(t, 16);
    uint32_t rid[9];
    static const int kinds[9] = {ANS_DONE, ANS_DONE,   ANS_DONE,
                                 ANS_DONE, ANS_DONE,   ANS_AGENT,
                                 ANS_LIST, ANS_SEARCH, ANS_CANNED};
    issue_all(t, rid);
    assert_int_equal(pull(t), 9);
    /* The table is full. */
    uint32_t extra;
    assert_int_equal(sb_client_core_close_conv(t->cc, 1, &extra), -ENOBUFS);
    assert_int_equal(sb_client_core_history(t->cc, 1, 0, 0, &extra), -ENOBUFS);
    assert_int_equal(pull(t), 0);
    t->now += 4999;
    sb_client_core_tick(t->cc, t->now);
    assert_int_equal(t->nans, 0);
    t->now += 1;
    sb_client_core_tick(t->cc, t->now);
    assert_int_equal(t->nans, 9);
    for (int i = 0; i < 9; i++) {
        bool seen = false;
        for (int k = 0; k < t->nans; k++) {
            if (t->ans[k].rid != rid[i]) continue;
            assert_false(seen);
            seen = true;
            assert_int_equal(t->ans[k].kind, kinds[i]);
            assert_int_equal(t->ans[k].err, -ETIMEDOUT);
            assert_true(t->ans[k].null);
        }
        assert_true(seen);
    }
    /* Late answers find nothing. */
    feed_ok(t, rid[0]);
    Sbp__CannedListResp cr = SBP__CANNED_LIST_RESP__INIT;
    feed_body(t, rid[8], SBP__FRAME__BODY_CANNED_LIST_RESP, &cr);
    sb_client_core_tick(t->cc, t->now);
    assert_int_equal(t->nans, 9);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_READY);

    /* The slots are free again; a drop fails them all at once. */
    t->nans = 0;
    issue_all(t, rid);
    sb_client_core_on_close(t->cc, -ECONNRESET, 0, t->now);
    assert_int_equal(t->nans, 9);
    for (int i = 0; i < 9; i++) {
        assert_int_equal(t->ans[i].err, -ECONNRESET);
        assert_int_equal(t->ans[i].kind, kinds[i]);
    }
    /* Nothing more at the old deadline. */
    t->now += 6000;
    sb_client_core_tick(t->cc, t->now);
    assert_int_equal(t->nans, 9);
    assert_int_equal(sb_client_core_close_conv(t->cc, 1, &extra), -ENOTCONN);

    /* Stopping fails them too. */
    h_free(t);
    t = h_new_cfg(&cfg);
    go_ready(t, 16);
    issue_all(t, rid);
    sb_client_core_stop(t->cc);
    assert_int_equal(t->nans, 9);
    for (int i = 0; i < 9; i++)
        assert_int_equal(t->ans[i].err, -ECONNRESET);
    h_free(t);
}

/* The same frames in the JSON encoding. */
static void test_service_json(void **state)
{
    (void)state;
    sb_client_config cfg;
    base_cfg(&cfg);
    cfg.enc = SB_ENC_JSON;
    h *t = h_new_cfg(&cfg);
    go_ready(t, 16);
    uint32_t rid;
    const char *add[] = {"\xe9\x80\x80\xe6\xac\xbe"}; /* zh "refund" */
    assert_int_equal(sb_client_core_tag(t->cc, 3, 2, add, 1, NULL, 0, &rid), 0);
    Sbp__Frame *f = pull_one(t, SBP__FRAME__BODY_TAG);
    assert_int_equal(f->rid, rid);
    assert_string_equal(f->tag->add[0], add[0]);
    feed_ok(t, rid);
    assert_int_equal(t->nans, 1);
    assert_int_equal(t->ans[0].err, 0);
    Sbp__Conversation c = SBP__CONVERSATION__INIT;
    c.conv_id = 3;
    c.state = SBP__CONV_STATE__STATE_QUEUED;
    c.queue_position = 2;
    Sbp__ConvUpdate u = SBP__CONV_UPDATE__INIT;
    u.conv = &c;
    feed_body(t, 0, SBP__FRAME__BODY_CONV_UPDATE, &u);
    assert_int_equal(t->nans, 2);
    assert_int_equal(t->ans[1].x, 2);
    h_free(t);
}

static Sbp__Message *mk_event(uint64_t conv, uint64_t seq, const char *key,
                              char **args, size_t n_args, Sbp__Event *ev)
{
    Sbp__Message *m = mk(conv, seq, "system", "event");
    m->type = SBP__MSG_TYPE__MSG_EVENT;
    sbp__event__init(ev);
    ev->key = (char *)key;
    ev->args = args;
    ev->n_args = n_args;
    m->event = ev;
    return m;
}

static void push_msgs(h *t, Sbp__Message **m, size_t n)
{
    Sbp__Push p = SBP__PUSH__INIT;
    p.n_messages = n;
    p.messages = m;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_PUSH;
    f.push = &p;
    feed(t, &f);
}

/* Robot, event and recalled messages go through the inbox like any
 * other; a "msg.recalled" event also calls on_recalled, once, right after
 * its on_message, also when it was held behind a gap. */
static void test_recall_event(void **state)
{
    (void)state;
    h *t = h_new();
    go_ready(t, 16);
    Sbp__Event ev[6];
    Sbp__QuickReply q = SBP__QUICK_REPLY__INIT;
    q.title = "Talk to a person";
    Sbp__QuickReply *qp[1] = {&q};
    Sbp__Message *robot = mk(8, 1, "bot", "Welcome");
    robot->type = SBP__MSG_TYPE__MSG_ROBOT;
    robot->n_quick_replies = 1;
    robot->quick_replies = qp;
    char *assigned_args[] = {"a1"};
    Sbp__Message *assigned =
        mk_event(8, 2, "conv.assigned", assigned_args, 1, &ev[0]);
    Sbp__Message *gone = mk(8, 3, "alice", "");
    gone->recalled = true;
    char *rec_args[] = {"alice", "3"};
    Sbp__Message *recall = mk_event(8, 4, "msg.recalled", rec_args, 2, &ev[1]);
    Sbp__Message *batch[4] = {robot, assigned, gone, recall};
    push_msgs(t, batch, 4);
    assert_int_equal(t->nmsgs, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(t->msgs[i].seq, i + 1);
    assert_string_equal(t->msgs[0].body, "Welcome");
    assert_int_equal(t->nans, 1);
    assert_int_equal(t->ans[0].kind, ANS_RECALLED);
    assert_int_equal(t->ans[0].n, 8);
    assert_int_equal(t->ans[0].x, 3);
    assert_int_equal(t->recalled_after, 4); /* right after its on_message */
    /* Again (a PUSH retry): a duplicate, no second call. */
    push_msgs(t, &recall, 1);
    assert_int_equal(t->nans, 1);
    pull(t);
    Sbp__Frame *ack = find_kind(t, SBP__FRAME__BODY_ACK, 0);
    assert_non_null(ack);
    assert_int_equal(ack->ack->seq, 4); /* ACKed like any message */

    /* Held behind a gap: reported when it is surfaced, not before. */
    char *rec2_args[] = {"alice", "5"};
    Sbp__Message *later = mk_event(8, 7, "msg.recalled", rec2_args, 2, &ev[2]);
    push_msgs(t, &later, 1);
    assert_int_equal(t->nans, 1);
    Sbp__Message *m5 = mk(8, 5, "alice", "oops");
    Sbp__Message *m6 = mk(8, 6, "bob", "?");
    Sbp__Message *fill[2] = {m5, m6};
    push_msgs(t, fill, 2);
    assert_int_equal(t->nmsgs, 7);
    assert_int_equal(t->nans, 2);
    assert_int_equal(t->ans[1].x, 5);
    assert_int_equal(t->recalled_after, 7);

    /* Not a recall to report: bad seq, a seq not before the event, too few
     * args, another key. */
    char *bad1[] = {"alice", "x3"}, *bad2[] = {"alice", "9"};
    char *bad3[] = {"alice"}, *bad4[] = {"alice", "2"};
    Sbp__Message *odd[4] = {
        mk_event(8, 8, "msg.recalled", bad1, 2, &ev[3]),
        mk_event(8, 9, "msg.recalled", bad2, 2, &ev[4]),
        mk_event(8, 10, "msg.recalled", bad3, 1, &ev[5]),
        mk_event(8, 11, "conv.closed", bad4, 2, &ev[0]),
    };
    push_msgs(t, odd, 4);
    assert_int_equal(t->nmsgs, 11);
    assert_int_equal(t->nans, 2);
    for (int i = 0; i < 4; i++)
        free(odd[i]);
    free(robot);
    free(assigned);
    free(gone);
    free(recall);
    free(later);
    free(m5);
    free(m6);
    h_free(t);
}

/* The generic request: a request frame built by the caller is written
 * with a new rid and answered through on_response with its kind; a frame
 * that is no request is refused. Once muted, the core calls nothing, not
 * even for the state and the requests that stopping ends. */
/* What the workbench needs of the SDK: the body a SEND_ACK says was
 * stored (masked), CLAIM, AGENT_LIST, a transfer's note, and
 * AGENT_PRESENCE pushes. */
static void test_workbench_frames(void **state)
{
    (void)state;
    h *t = h_new();
    go_ready(t, 16);
    uint8_t id[16];
    send_text(t, 7, "darn it", id);
    pull(t);
    Sbp__SendAck a = SBP__SEND_ACK__INIT;
    a.client_msg_id.data = id;
    a.client_msg_id.len = 16;
    a.msg_id = 5001;
    a.conv_id = 7;
    a.seq = 1;
    a.body = "**** it";
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_SEND_ACK;
    f.send_ack = &a;
    feed(t, &f);
    assert_int_equal(t->nsts, 1);
    assert_string_equal(t->sts[0].stored, "**** it");
    assert_int_equal(t->nmsgs, 1);
    assert_string_equal(t->msgs[0].body, "**** it");
    uint8_t id2[16];
    send_text(t, 7, "fine", id2);
    pull(t);
    feed_send_ack(t, id2, 7, 2, false);
    assert_string_equal(t->sts[1].stored, "-");
    assert_string_equal(t->msgs[1].body, "fine");

    pull(t); /* what the sends left to write */
    uint32_t rid[3];
    assert_int_equal(sb_client_core_claim(t->cc, 0, false, NULL), SB_E_INVALID);
    assert_int_equal(sb_client_core_claim(t->cc, 7, true, &rid[0]), 0);
    Sbp__Frame *o = pull_one(t, SBP__FRAME__BODY_CLAIM);
    assert_int_equal(o->claim->conv_id, 7);
    assert_true(o->claim->over_capacity);
    assert_int_equal(sb_client_core_agent_list(t->cc, NULL, &rid[1]), 0);
    o = pull_one(t, SBP__FRAME__BODY_AGENT_LIST);
    assert_string_equal(o->agent_list->desk, "");
    char big[SB_NOTE_BYTES_MAX + 2];
    memset(big, 'n', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(
        sb_client_core_transfer_note(t->cc, 7, "a2", NULL, big, NULL),
        SB_E_TOO_LARGE);
    assert_int_equal(
        sb_client_core_transfer_note(t->cc, 7, "a2", NULL, "\xff", NULL),
        SB_E_BAD_UTF8);
    assert_int_equal(
        sb_client_core_transfer_note(t->cc, 7, NULL, "g2", "for you", &rid[2]),
        0);
    o = pull_one(t, SBP__FRAME__BODY_TRANSFER);
    assert_string_equal(o->transfer->note, "for you");
    assert_string_equal(o->transfer->to_group, "g2");

    feed_ok(t, rid[0]);
    Sbp__AgentInfo ai = SBP__AGENT_INFO__INIT;
    ai.user_id = "a2";
    Sbp__AgentInfo *ais[1] = {&ai};
    Sbp__AgentListResp lr = SBP__AGENT_LIST_RESP__INIT;
    lr.desk = "d";
    lr.agents = ais;
    lr.n_agents = 1;
    Sbp__Frame g = SBP__FRAME__INIT;
    g.rid = rid[1];
    g.body_case = SBP__FRAME__BODY_AGENT_LIST_RESP;
    g.agent_list_resp = &lr;
    feed(t, &g);
    feed_ok(t, rid[2]);
    Sbp__AgentPresence p = SBP__AGENT_PRESENCE__INIT;
    p.user_id = "a2";
    p.status = SBP__AGENT_STATUS__AGENT_AWAY;
    Sbp__Frame pf = SBP__FRAME__INIT;
    pf.body_case = SBP__FRAME__BODY_AGENT_PRESENCE;
    pf.agent_presence = &p;
    feed(t, &pf);
    assert_int_equal(t->nans, 4);
    assert_int_equal(t->ans[0].kind, ANS_DONE);
    assert_int_equal(t->ans[1].kind, ANS_AGENTS);
    assert_int_equal(t->ans[1].n, 1);
    assert_string_equal(t->ans[1].s, "d");
    assert_int_equal(t->ans[2].kind, ANS_DONE);
    assert_int_equal(t->ans[3].kind, ANS_PRESENCE);
    assert_string_equal(t->ans[3].s, "a2");
    assert_int_equal(t->ans[3].x, SBP__AGENT_STATUS__AGENT_AWAY);
    assert_int_equal(t->errors, 0);
    h_free(t);
}

static void test_generic_request_and_mute(void **state)
{
    (void)state;
    h *t = h_new();
    Sbp__Close c = SBP__CLOSE__INIT;
    c.conv_id = 4;
    Sbp__Frame f = SBP__FRAME__INIT;
    f.body_case = SBP__FRAME__BODY_CLOSE;
    f.close = &c;
    uint32_t rid = 0;
    assert_int_equal(sb_client_core_request(t->cc, &f, &rid), -ENOTCONN);
    go_ready(t, 16);
    Sbp__Typing ty = SBP__TYPING__INIT;
    Sbp__Frame g = SBP__FRAME__INIT;
    g.body_case = SBP__FRAME__BODY_TYPING;
    g.typing = &ty;
    assert_int_equal(sb_client_core_request(t->cc, &g, &rid), -EINVAL);
    assert_int_equal(pull(t), 0);
    assert_int_equal(sb_client_core_request(t->cc, &f, &rid), 0);
    Sbp__Frame *out = pull_one(t, SBP__FRAME__BODY_CLOSE);
    assert_int_equal(out->rid, rid);
    assert_int_equal(out->close->conv_id, 4);
    feed_ok(t, rid);
    assert_int_equal(t->nans, 1);
    assert_int_equal(t->ans[0].kind, ANS_DONE);
    assert_int_equal(t->ans[0].rid, rid);
    assert_int_equal(t->ans[0].err, 0);

    assert_int_equal(sb_client_core_request(t->cc, &f, &rid), 0);
    int nstates = t->nstates;
    sb_client_core_mute(t->cc);
    sb_client_core_stop(t->cc);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_STOPPED);
    assert_int_equal(t->nstates, nstates);
    assert_int_equal(t->nans, 1);
    h_free(t);
}

/* ---- several servers ------------------------------------------------------
 */

static const char *const URLS[] = {"ws://a:1/ws", "ws://b:2/ws", "ws://c:3/ws"};

static h *h_new_urls(const char *const *urls, size_t n, bool in_order)
{
    sb_client_config cfg;
    base_cfg(&cfg);
    cfg.urls = urls;
    cfg.n_urls = n;
    cfg.urls_in_order = in_order;
    return h_new_cfg(&cfg);
}

/* From CONNECTING: the upgrade is done, HELLO goes out, WELCOME comes in.
 * Leaves in t->out what was written after it (the SYNC, resends). */
static void welcome_now(h *t)
{
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_CONNECTING);
    sb_client_core_on_open(t->cc, t->now);
    pull(t);
    Sbp__Frame *hello = find_kind(t, SBP__FRAME__BODY_HELLO, 0);
    assert_non_null(hello);
    feed_welcome(t, hello->rid, 16);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_READY);
    pull(t);
}

/* The last two states reported: BACKOFF (with err), then CONNECTING to
 * URL index want, with no delay. */
static void assert_switched(h *t, size_t want, int err)
{
    assert_true(t->nstates >= 2);
    assert_int_equal(t->states[t->nstates - 2], SB_CLIENT_BACKOFF);
    assert_int_equal(t->states[t->nstates - 1], SB_CLIENT_CONNECTING);
    assert_int_equal(sb_client_core_last_error(t->cc), err);
    assert_int_equal(sb_client_core_backoff_ms(t->cc), 0);
    assert_int_equal(t->tried[t->connects - 1], want);
    assert_string_equal(sb_client_core_url(t->cc), URLS[want]);
}

static uint64_t switches(h *t)
{
    sb_client_stats st;
    sb_client_core_stats(t->cc, &st);
    return st.url_switches;
}

/* Failed attempts move along the list at once; a backoff comes once per
 * round of the list, growing per round; a connection READY long enough
 * starts a new round when it ends, and a WELCOME resets the backoff. */
static void test_urls_round_then_backoff(void **state)
{
    (void)state;
    h *t = h_new_urls(URLS, 3, true);
    t->rand_fixed = 0xff; /* the top of every jitter range */
    sb_client_core_start(t->cc, t->now);
    assert_int_equal(t->connects, 1);
    assert_int_equal(t->tried[0], 0);
    assert_string_equal(sb_client_core_url(t->cc), "ws://a:1/ws");
    for (int round = 0; round < 3; round++) {
        uint32_t want = 250u << round;
        for (int i = 0; i < 3; i++) {
            assert_int_equal(t->connects, 1 + round * 3 + i);
            assert_int_equal(t->tried[t->connects - 1], i);
            sb_client_core_on_close(t->cc, -ECONNREFUSED, 0, t->now);
            if (i < 2) assert_switched(t, (size_t)i + 1, -ECONNREFUSED);
        }
        assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_BACKOFF);
        assert_int_equal(sb_client_core_backoff_ms(t->cc), want);
        assert_int_equal(sb_client_core_url_index(t->cc), 0);
        int c0 = t->connects;
        t->now += want - 1;
        sb_client_core_tick(t->cc, t->now);
        assert_int_equal(t->connects, c0);
        t->now += 1;
        sb_client_core_tick(t->cc, t->now);
        assert_int_equal(t->connects, c0 + 1);
        assert_int_equal(t->tried[c0], 0);
    }
    assert_int_equal(switches(t), 6);

    /* READY on a for a while, then lost: b at once, c at once, then the
     * first backoff (the WELCOME reset it). */
    welcome_now(t);
    t->now += SB_CLIENT_STABLE_MS;
    sb_client_core_on_close(t->cc, -ECONNRESET, 0, t->now);
    assert_switched(t, 1, -ECONNRESET);
    sb_client_core_on_close(t->cc, -ECONNREFUSED, 0, t->now);
    assert_switched(t, 2, -ECONNREFUSED);
    sb_client_core_on_close(t->cc, -ECONNREFUSED, 0, t->now);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_BACKOFF);
    assert_int_equal(sb_client_core_backoff_ms(t->cc), 250);
    assert_int_equal(switches(t), 8);
    h_free(t);
}

/* A close 1001 (the node drains) moves on at once however young the
 * connection; other ends of a young connection count against the round,
 * so nodes that welcome and drop make the client wait. */
static void test_urls_drain_and_flapping(void **state)
{
    (void)state;
    h *t = h_new_urls(URLS, 2, true);
    t->rand_fixed = 0xff;
    sb_client_core_start(t->cc, t->now);
    welcome_now(t);
    sb_client_core_on_close(t->cc, 0, SB_WS_CLOSE_GOING_AWAY, t->now);
    assert_switched(t, 1, -ECONNRESET);
    assert_int_equal(t->backoff_code, SB_WS_CLOSE_GOING_AWAY);
    assert_int_equal(sb_client_core_close_code(t->cc), 0); /* new attempt */
    /* The round began with the 1001: b refused ends it. */
    sb_client_core_on_close(t->cc, -ECONNREFUSED, 0, t->now);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_BACKOFF);
    assert_int_equal(sb_client_core_backoff_ms(t->cc), 250);
    t->now += 250;
    sb_client_core_tick(t->cc, t->now);
    assert_int_equal(t->tried[t->connects - 1], 0);

    /* Welcomed and dropped at once, by a, then by b: a backoff. */
    welcome_now(t);
    sb_client_core_on_close(t->cc, -ECONNRESET, 0, t->now);
    assert_switched(t, 1, -ECONNRESET);
    welcome_now(t);
    sb_client_core_on_close(t->cc, 0, SB_WS_CLOSE_TRY_AGAIN, t->now);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_BACKOFF);
    assert_int_equal(sb_client_core_backoff_ms(t->cc), 250);
    assert_int_equal(t->backoff_code, SB_WS_CLOSE_TRY_AGAIN);
    h_free(t);
}

/* The connect timeout and a HELLO refused for now move on; a refused
 * token stops the client whatever the list holds. */
static void test_urls_timeout_and_refusals(void **state)
{
    (void)state;
    h *t = h_new_urls(URLS, 3, true);
    sb_client_core_start(t->cc, t->now);
    t->now += 10000; /* connect_timeout_ms */
    sb_client_core_tick(t->cc, t->now);
    assert_int_equal(t->closes, 1);
    assert_switched(t, 1, -ETIMEDOUT);
    sb_client_core_on_open(t->cc, t->now);
    pull(t);
    feed_error(t, t->out[0]->rid, SBP__ERROR_CODE__ERR_UNAVAILABLE, NULL);
    assert_switched(t, 2, SB_E_UNAVAILABLE);
    sb_client_core_on_open(t->cc, t->now);
    pull(t);
    feed_error(t, t->out[0]->rid, SBP__ERROR_CODE__ERR_BAD_TOKEN, NULL);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_STOPPED);
    t->now += 100000;
    sb_client_core_tick(t->cc, t->now);
    assert_int_equal(t->connects, 3);
    h_free(t);

    /* stop() from within on_state(BACKOFF): no attempt on the next. */
    t = h_new_urls(URLS, 2, true);
    sb_client_core_start(t->cc, t->now);
    t->stop_in_backoff = true;
    sb_client_core_on_close(t->cc, -ECONNREFUSED, 0, t->now);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_STOPPED);
    assert_int_equal(t->connects, 1);
    h_free(t);
}

/* Without urls_in_order each client goes round its own random order of
 * the list: every URL once per round, the same order every round. */
static void test_urls_shuffled(void **state)
{
    (void)state;
    static char bufs[SB_CLIENT_URLS_MAX][32];
    const char *urls[SB_CLIENT_URLS_MAX];
    for (int i = 0; i < SB_CLIENT_URLS_MAX; i++) {
        snprintf(bufs[i], sizeof bufs[i], "ws://n%d:80/ws", i);
        urls[i] = bufs[i];
    }
    h *t = h_new_urls(urls, SB_CLIENT_URLS_MAX, false);
    sb_client_core_start(t->cc, t->now);
    for (int i = 0; i < SB_CLIENT_URLS_MAX; i++) {
        assert_string_equal(sb_client_core_url(t->cc),
                            urls[t->tried[t->connects - 1]]);
        sb_client_core_on_close(t->cc, -ECONNREFUSED, 0, t->now);
    }
    assert_int_equal(t->connects, SB_CLIENT_URLS_MAX);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_BACKOFF);
    bool seen[SB_CLIENT_URLS_MAX] = {false};
    bool identity = true;
    for (size_t i = 0; i < SB_CLIENT_URLS_MAX; i++) {
        assert_true(t->tried[i] < SB_CLIENT_URLS_MAX);
        assert_false(seen[t->tried[i]]);
        seen[t->tried[i]] = true;
        identity = identity && t->tried[i] == i;
    }
    assert_false(identity);
    for (int i = 0; i < SB_CLIENT_URLS_MAX; i++) {
        if (sb_client_core_state(t->cc) == SB_CLIENT_BACKOFF) {
            t->now += 60000;
            sb_client_core_tick(t->cc, t->now);
        }
        sb_client_core_on_close(t->cc, -ECONNREFUSED, 0, t->now);
    }
    assert_int_equal(t->connects, 2 * SB_CLIENT_URLS_MAX);
    assert_memory_equal(t->tried, t->tried + SB_CLIENT_URLS_MAX,
                        SB_CLIENT_URLS_MAX * sizeof *t->tried);
    h_free(t);
}

/* The list is checked and copied; url alone is a list of one. */
static void test_urls_config(void **state)
{
    (void)state;
    sb_client_config cfg;
    base_cfg(&cfg);
    sb_client_core_io io = {.ud = NULL,
                            .connect = io_connect,
                            .close = io_close,
                            .rand_bytes = io_rand};
    sb_client_core *cc = NULL;
    const char *many[SB_CLIENT_URLS_MAX + 1];
    for (int i = 0; i <= SB_CLIENT_URLS_MAX; i++)
        many[i] = "ws://x:1/ws";
    cfg.urls = many;
    cfg.n_urls = SB_CLIENT_URLS_MAX + 1;
    assert_int_equal(sb_client_core_new(&cfg, NULL, NULL, &io, &cc), -EINVAL);
    cfg.n_urls = SB_CLIENT_URLS_MAX;
    assert_int_equal(sb_client_core_new(&cfg, NULL, NULL, &io, &cc), 0);
    sb_client_core_free(cc);
    cfg.urls = NULL;
    cfg.n_urls = 2;
    assert_int_equal(sb_client_core_new(&cfg, NULL, NULL, &io, &cc), -EINVAL);
    const char *empty[] = {"ws://x:1/ws", ""};
    cfg.urls = empty;
    assert_int_equal(sb_client_core_new(&cfg, NULL, NULL, &io, &cc), -EINVAL);
    const char *null[] = {"ws://x:1/ws", NULL};
    cfg.urls = null;
    assert_int_equal(sb_client_core_new(&cfg, NULL, NULL, &io, &cc), -EINVAL);

    char buf[] = "ws://x:1/ws";
    const char *mine[] = {buf, "ws://y:2/ws"};
    h *t = h_new_urls(mine, 2, true);
    buf[5] = 'z';
    assert_string_equal(sb_client_core_url(t->cc), "ws://x:1/ws");
    h_free(t);
    t = h_new(); /* cfg.url, n_urls 0 */
    assert_string_equal(sb_client_core_url(t->cc), "ws://127.0.0.1:8080/ws");
    assert_int_equal(sb_client_core_url_index(t->cc), 0);
    sb_client_core_start(t->cc, t->now);
    sb_client_core_on_close(t->cc, -ECONNREFUSED, 0, t->now);
    assert_int_equal(sb_client_core_state(t->cc), SB_CLIENT_BACKOFF);
    assert_int_equal(switches(t), 0);
    h_free(t);
}

/* On the next node, as on the same one: SYNC from the cursors, the sends
 * in flight again under their ids, nothing surfaced twice. */
static void test_urls_outbox_and_inbox_carry_over(void **state)
{
    (void)state;
    h *t = h_new_urls(URLS, 2, true);
    sb_client_core_start(t->cc, t->now);
    welcome_now(t);
    Sbp__Frame *sync = find_kind(t, SBP__FRAME__BODY_SYNC, 0);
    assert_non_null(sync);
    feed_sync_resp(t, sync->rid, NULL, 0, false);
    uint64_t seqs[] = {1, 2};
    push(t, 7, seqs, 2);
    assert_int_equal(t->nmsgs, 2);
    uint8_t ids[2][16];
    send_text(t, 7, "one", ids[0]);
    send_text(t, 7, "two", ids[1]);
    pull(t);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_SEND), 2);
    t->now += SB_CLIENT_STABLE_MS;
    sb_client_core_on_close(t->cc, 0, SB_WS_CLOSE_GOING_AWAY, t->now);
    assert_switched(t, 1, -ECONNRESET);
    welcome_now(t);
    sync = find_kind(t, SBP__FRAME__BODY_SYNC, 0);
    assert_non_null(sync);
    assert_int_equal(sync->sync->n_cursors, 1);
    assert_int_equal(sync->sync->cursors[0]->conv_id, 7);
    assert_int_equal(sync->sync->cursors[0]->seq, 2);
    assert_int_equal(count_kind(t, SBP__FRAME__BODY_SEND), 2);
    for (int i = 0; i < 2; i++)
        assert_memory_equal(
            find_kind(t, SBP__FRAME__BODY_SEND, i)->send->client_msg_id.data,
            ids[i], 16);
    /* The new node has "one" (stored before the drain) and a message from
     * the other side; seq 2 comes again and is dropped. */
    Sbp__Message *m[3] = {mk(7, 2, "bob", "c7s2"), mk(7, 3, "alice", "one"),
                          mk(7, 4, "bob", "c7s4")};
    m[1]->sender_device = "dev-a";
    feed_sync_resp(t, sync->rid, m, 3, false);
    for (int i = 0; i < 3; i++)
        free(m[i]);
    feed_send_ack(t, ids[0], 7, 3, true);
    feed_send_ack(t, ids[1], 7, 5, false);
    assert_int_equal(t->nmsgs, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(t->msgs[i].seq, (uint64_t)i + 1);
    assert_int_equal(outbox_len(t), 0);
    h_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_hello_welcome),
        cmocka_unit_test(test_msg_id_time_ordered),
        cmocka_unit_test(test_in_order_exactly_once_and_ack),
        cmocka_unit_test(test_push_batch_many_convs),
        cmocka_unit_test(test_gap_held_until_sync),
        cmocka_unit_test(test_gap_filled_in_time_no_sync),
        cmocka_unit_test(test_sync_hint),
        cmocka_unit_test(test_gap_filled_by_push_and_held_bound),
        cmocka_unit_test(test_sync_paging),
        cmocka_unit_test(test_sync_error_retried),
        cmocka_unit_test(test_stale_error_ignored),
        cmocka_unit_test(test_own_message_on_send_ack),
        cmocka_unit_test(test_resend_after_reconnect_same_id),
        cmocka_unit_test(test_attachments),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_statuses),
        cmocka_unit_test(test_receipts_bounded),
        cmocka_unit_test(test_attempts_run_out),
        cmocka_unit_test(test_send_limits),
        cmocka_unit_test(test_backoff_grows_capped_jitter),
        cmocka_unit_test(test_backoff_after_restart),
        cmocka_unit_test(test_no_reconnect_after_bad_token),
        cmocka_unit_test(test_dead_connection_and_timeouts),
        cmocka_unit_test(test_open_history_requests),
        cmocka_unit_test(test_read_and_reack_after_reconnect),
        cmocka_unit_test(test_stop_inside_callback),
        cmocka_unit_test(test_stop_acks_first_and_replaced),
        cmocka_unit_test(test_json_encoding),
        cmocka_unit_test(test_set_cursor),
        cmocka_unit_test(test_service_open),
        cmocka_unit_test(test_done_requests),
        cmocka_unit_test(test_agent_state_requests),
        cmocka_unit_test(test_list_search_canned),
        cmocka_unit_test(test_admin_cmd_and_robot),
        cmocka_unit_test(test_conv_update_and_typing),
        cmocka_unit_test(test_service_timeouts_and_disconnect),
        cmocka_unit_test(test_service_json),
        cmocka_unit_test(test_recall_event),
        cmocka_unit_test(test_generic_request_and_mute),
        cmocka_unit_test(test_workbench_frames),
        cmocka_unit_test(test_urls_round_then_backoff),
        cmocka_unit_test(test_urls_drain_and_flapping),
        cmocka_unit_test(test_urls_timeout_and_refusals),
        cmocka_unit_test(test_urls_shuffled),
        cmocka_unit_test(test_urls_config),
        cmocka_unit_test(test_urls_outbox_and_inbox_carry_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
