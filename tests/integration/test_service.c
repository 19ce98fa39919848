/* integ_service: the customer-service lifecycle against the real server
 * (started with --desk on a desk file written here), driven by the C SDK
 * over real sockets.
 *
 * - scenario: a customer with two devices (en, zh-CN) opens; the bot
 *   greets with quick replies and answers a question; the customer asks
 *   for a human and is queued (conv_update with the position, the
 *   out-of-hours text: the only agent of the group is away); the agent
 *   goes online and gets the conversation, with everything said so far;
 *   typing, a quoted reply (the quote filled on the customer's devices), a
 *   recall (on_recalled everywhere), tags, list, search, canned replies;
 *   transfer to another group's agent; close; reopen by a customer
 *   message. Every step is checked on every device of every participant,
 *   and the same event renders in en and zh-CN per device.
 * - capacity: 3 agents of capacity 2, 10 customers: least loaded first
 *   (longest idle on ties), the rest queued with positions 1..4; a close
 *   hands the head of the queue to the agent at once and the others move
 *   up.
 * - out of hours: nobody online; the customer is queued with the
 *   out-of-hours text and keeps writing; an agent connects and gets the
 *   conversation with nothing lost.
 * - transfer to a group: a full agent's transfer away hands its room to
 *   the head of the queue (docs/protocol.md), not back to itself.
 * - authorization: another customer cannot read, write, quote, tag or
 *   recall; an agent only where assigned or transferred to; wrong-role
 *   requests get a clear error code; a recall past the window is too late.
 * The scenario runs in both encodings (protobuf and JSON).
 *
 * The SDK's invariants are checked as messages surface (seq dense and
 * ascending per conversation on every device). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"
#include "sb_error.h"

#define WAIT_MS 10000
#define SV_DEVS_MAX 32
#define SV_CONVS_MAX 16
#define SV_ANS_MAX 256
#define SV_BODY_BYTES 256

/* The catalog's zh-CN texts (src/server/sb_i18n.c). */
#define ZH_QUEUED_1 /* 您当前排在第 1 位。 */                          \
    "\xe6\x82\xa8\xe5\xbd\x93\xe5\x89\x8d\xe6\x8e\x92\xe5\x9c\xa8\xe7\xac\xac" \
    " 1 \xe4\xbd\x8d\xe3\x80\x82"
#define ZH_ASSIGNED_A1 /* 客服 a1 已接入会话。 */                      \
    "\xe5\xae\xa2\xe6\x9c\x8d a1 \xe5\xb7\xb2\xe6\x8e\xa5\xe5\x85\xa5\xe4\xbc" \
    "\x9a\xe8\xaf\x9d\xe3\x80\x82"
#define ZH_RECALLED_CU1 /* cu1 撤回了一条消息。 */                     \
    "cu1 \xe6\x92\xa4\xe5\x9b\x9e\xe4\xba\x86\xe4\xb8\x80\xe6\x9d\xa1\xe6\xb6" \
    "\x88\xe6\x81\xaf\xe3\x80\x82"

/* Groups g1 (a1, a2) and g2 (a3); the bot hands off on "human". */
static const char DESK_SCENARIO[] =
    "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g1\",\"g2\"],"
    "\"default_group\":\"g1\",\"unmatched_max\":2,\"recall_window_s\":120,"
    "\"greeting\":{\"en\":\"Welcome\",\"zh-CN\":\"\xe6\xac\xa2\xe8\xbf\x8e\"},"
    "\"fallback\":{\"en\":\"Sorry?\"},"
    "\"out_of_hours\":{\"en\":\"Nobody is here\"},"
    "\"rules\":{\"en\":[{\"keywords\":[\"human\"],\"handoff\":true},"
    "{\"keywords\":[\"refund\"],\"answer\":\"Refunds take 5 days\","
    "\"quick_replies\":[\"Status\",\"Talk to a person\"]}]},"
    "\"canned\":[{\"key\":\"hi\",\"title\":\"Hi\",\"text\":\"Hello!\"},"
    "{\"key\":\"bye\",\"title\":\"Bye\",\"text\":\"Bye!\"}]}],"
    "\"agents\":[{\"id\":\"a1\",\"groups\":[\"g1\"],\"capacity\":2},"
    "{\"id\":\"a2\",\"groups\":[\"g1\"],\"capacity\":2},"
    "{\"id\":\"a3\",\"groups\":[\"g2\"],\"capacity\":2}]}";

/* Three agents of capacity 2 in one group; recalls expire after 1 s. */
static const char DESK_CAPACITY[] =
    "{\"desks\":[{\"id\":\"d\",\"groups\":[\"g1\"],\"unmatched_max\":2,"
    "\"recall_window_s\":1,"
    "\"greeting\":{\"en\":\"Welcome\"},\"fallback\":{\"en\":\"Sorry?\"},"
    "\"out_of_hours\":{\"en\":\"Nobody is here\"},"
    "\"rules\":{\"en\":[{\"keywords\":[\"human\"],\"handoff\":true}]},"
    "\"canned\":[{\"key\":\"hi\",\"text\":\"Hello!\"}]}],"
    "\"agents\":[{\"id\":\"a1\",\"groups\":[\"g1\"],\"capacity\":2},"
    "{\"id\":\"a2\",\"groups\":[\"g1\"],\"capacity\":2},"
    "{\"id\":\"a3\",\"groups\":[\"g1\"],\"capacity\":2}]}";

/* ---- devices with the customer-service callbacks ------------------------- */

typedef struct sv_msg {
    uint64_t seq, msg_id, quote_seq;
    Sbp__MsgType type;
    char sender[SB_USER_ID_BYTES_MAX + 1];
    char body[SV_BODY_BYTES];
    char event[32];
    bool has_quote, recalled;
    uint64_t q_seq;
    char q_sender[SB_USER_ID_BYTES_MAX + 1];
    char q_body[SV_BODY_BYTES];
    size_t n_quick;
    char quick0[64];
} sv_msg;

typedef struct sv_conv {
    uint64_t conv_id;
    sv_msg *msgs; /* msgs[i].seq == i + 1 */
    size_t n, cap;
    /* The last CONV_UPDATE. */
    unsigned updates;
    Sbp__ConvState state;
    char agent[SB_USER_ID_BYTES_MAX + 1], group[65];
    uint32_t queue_pos;
    /* on_recalled calls */
    uint64_t recalled[16];
    size_t n_recalled;
} sv_conv;

enum {
    ANS_OPEN = 1,
    ANS_HISTORY,
    ANS_DONE,
    ANS_AGENT,
    ANS_LIST,
    ANS_SEARCH,
    ANS_CANNED
};

/* One answer to a request: its payload packed, if any. */
typedef struct sv_ans {
    uint32_t rid;
    int kind, err;
    uint8_t *buf;
    size_t len;
} sv_ans;

typedef struct sv_dev {
    it_env *env;
    char name[96], user[SB_USER_ID_BYTES_MAX + 1], device[65], locale[16];
    char token[1024];
    sb_client_config cfg;
    sb_client *c;
    sv_conv convs[SV_CONVS_MAX];
    size_t n_convs;
    sv_ans ans[SV_ANS_MAX];
    size_t n_ans;
    /* sends: the last status per client_msg_id we care about */
    uint8_t last_id[SB_CLIENT_MSG_ID_BYTES];
    sb_client_send_status last_status;
    int last_send_err;
    uint64_t last_send_seq;
    unsigned typing_on, typing_off;
    char typing_user[SB_USER_ID_BYTES_MAX + 1];
    unsigned errors, violations;
} sv_dev;

static it_env E;
static sv_dev *DEVS[SV_DEVS_MAX];
static size_t N_DEVS;

static void violation(sv_dev *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void violation(sv_dev *d, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    d->violations++;
    it_violation(d->env, NULL, "[%s] %s", d->name, line);
}

static sv_conv *sv_log(sv_dev *d, uint64_t conv_id)
{
    for (size_t i = 0; i < d->n_convs; i++)
        if (d->convs[i].conv_id == conv_id) return &d->convs[i];
    return NULL;
}

static sv_conv *log_get(sv_dev *d, uint64_t conv_id)
{
    sv_conv *c = sv_log(d, conv_id);
    if (c || d->n_convs == SV_CONVS_MAX) return c;
    c = &d->convs[d->n_convs++];
    memset(c, 0, sizeof *c);
    c->conv_id = conv_id;
    return c;
}

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static void cb_message(void *ud, const Sbp__Message *m)
{
    sv_dev *d = ud;
    sv_conv *c = log_get(d, m->conv_id);
    if (!c) {
        violation(d, "too many conversations");
        return;
    }
    if (m->seq != c->n + 1) {
        violation(d, "conv %" PRIu64 ": seq %" PRIu64 " surfaced after %zu",
                  m->conv_id, m->seq, c->n);
        return;
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 32;
        c->msgs = realloc(c->msgs, c->cap * sizeof *c->msgs);
        if (!c->msgs) abort();
    }
    sv_msg *s = &c->msgs[c->n++];
    memset(s, 0, sizeof *s);
    s->seq = m->seq;
    s->msg_id = m->msg_id;
    s->type = m->type;
    s->quote_seq = m->quote_seq;
    s->recalled = m->recalled;
    copy(s->sender, sizeof s->sender, m->sender);
    copy(s->body, sizeof s->body, m->body);
    if (m->event) copy(s->event, sizeof s->event, m->event->key);
    if (m->quote) {
        s->has_quote = true;
        s->q_seq = m->quote->seq;
        copy(s->q_sender, sizeof s->q_sender, m->quote->sender);
        copy(s->q_body, sizeof s->q_body, m->quote->body);
    }
    s->n_quick = m->n_quick_replies;
    if (m->n_quick_replies)
        copy(s->quick0, sizeof s->quick0, m->quick_replies[0]->title);
    if (m->msg_id == 0) violation(d, "seq %" PRIu64 " has msg_id 0", m->seq);
}

static void cb_send_status(void *ud, const sb_client_send_info *s)
{
    sv_dev *d = ud;
    if (memcmp(s->client_msg_id, d->last_id, SB_CLIENT_MSG_ID_BYTES) != 0)
        return;
    if (s->status == SB_SEND_SENT || s->status == SB_SEND_FAILED) {
        d->last_status = s->status;
        d->last_send_err = s->err;
        d->last_send_seq = s->seq;
    }
}

static void cb_conv_update(void *ud, const Sbp__Conversation *cv)
{
    sv_dev *d = ud;
    sv_conv *c = log_get(d, cv->conv_id);
    if (!c) return;
    c->updates++;
    c->state = cv->state;
    copy(c->agent, sizeof c->agent, cv->agent);
    copy(c->group, sizeof c->group, cv->group);
    c->queue_pos = cv->queue_position;
    if (cv->state == SBP__CONV_STATE__STATE_QUEUED && cv->queue_position == 0)
        violation(d, "conv %" PRIu64 " queued without a position", cv->conv_id);
}

static void cb_typing(void *ud, const Sbp__Typing *t)
{
    sv_dev *d = ud;
    if (t->on)
        d->typing_on++;
    else
        d->typing_off++;
    copy(d->typing_user, sizeof d->typing_user, t->user_id);
}

static void cb_recalled(void *ud, uint64_t conv_id, uint64_t seq)
{
    sv_dev *d = ud;
    sv_conv *c = log_get(d, conv_id);
    if (c && c->n_recalled < 16) c->recalled[c->n_recalled++] = seq;
}

static void ans_put(sv_dev *d, int kind, uint32_t rid, int err,
                    const ProtobufCMessage *m)
{
    if (d->n_ans == SV_ANS_MAX) {
        violation(d, "too many answers");
        return;
    }
    for (size_t i = 0; i < d->n_ans; i++)
        if (d->ans[i].rid == rid)
            violation(d, "rid %u answered twice", (unsigned)rid);
    sv_ans *a = &d->ans[d->n_ans++];
    memset(a, 0, sizeof *a);
    a->rid = rid;
    a->kind = kind;
    a->err = err;
    if ((err == 0) != (m != NULL) && kind != ANS_DONE)
        violation(d, "rid %u: err %d with payload %p", (unsigned)rid, err,
                  (const void *)m);
    if (!m) return;
    a->len = protobuf_c_message_get_packed_size(m);
    a->buf = malloc(a->len ? a->len : 1);
    if (!a->buf) abort();
    protobuf_c_message_pack(m, a->buf);
}

static void cb_open(void *ud, uint32_t rid, int err, const Sbp__Conversation *c)
{
    ans_put(ud, ANS_OPEN, rid, err, c ? &c->base : NULL);
}

static void cb_history(void *ud, uint32_t rid, int err,
                       const Sbp__HistoryResp *h)
{
    ans_put(ud, ANS_HISTORY, rid, err, h ? &h->base : NULL);
}

static void cb_done(void *ud, uint32_t rid, int err)
{
    ans_put(ud, ANS_DONE, rid, err, NULL);
}

static void cb_agent_state(void *ud, uint32_t rid, int err,
                           const Sbp__AgentState *a)
{
    if (rid) ans_put(ud, ANS_AGENT, rid, err, a ? &a->base : NULL);
}

static void cb_conv_list(void *ud, uint32_t rid, int err,
                         const Sbp__ConvListResp *l)
{
    ans_put(ud, ANS_LIST, rid, err, l ? &l->base : NULL);
}

static void cb_search(void *ud, uint32_t rid, int err, const Sbp__SearchResp *r)
{
    ans_put(ud, ANS_SEARCH, rid, err, r ? &r->base : NULL);
}

static void cb_canned(void *ud, uint32_t rid, int err,
                      const Sbp__CannedListResp *c)
{
    ans_put(ud, ANS_CANNED, rid, err, c ? &c->base : NULL);
}

static void cb_error(void *ud, int err, const char *text)
{
    sv_dev *d = ud;
    d->errors++;
    fprintf(stderr, "integ_service [%s]: ERROR %s %s\n", d->name,
            sb_client_err_name(err), text);
}

static const sb_client_cbs SV_CBS = {
    .on_message = cb_message,
    .on_send_status = cb_send_status,
    .on_open = cb_open,
    .on_history = cb_history,
    .on_error = cb_error,
    .on_done = cb_done,
    .on_conv_update = cb_conv_update,
    .on_typing = cb_typing,
    .on_agent_state = cb_agent_state,
    .on_conv_list = cb_conv_list,
    .on_search = cb_search,
    .on_canned = cb_canned,
    .on_recalled = cb_recalled,
};

static bool dev_ready(void *arg)
{
    sv_dev *d = arg;
    return d->c && sb_client_get_state(d->c) == SB_CLIENT_READY;
}

/* A device of user with locale, connected and READY. */
static sv_dev *sv_connect(const char *user, const char *role,
                          const char *device, const char *locale)
{
    assert_true(N_DEVS < SV_DEVS_MAX);
    sv_dev *d = calloc(1, sizeof *d);
    assert_non_null(d);
    DEVS[N_DEVS++] = d;
    d->env = &E;
    copy(d->user, sizeof d->user, user);
    copy(d->device, sizeof d->device, device);
    copy(d->locale, sizeof d->locale, locale);
    snprintf(d->name, sizeof d->name, "%s/%s", user, device);
    copy(d->token, sizeof d->token, harness_token(user, role, 3600));
    sb_client_config_default(&d->cfg);
    d->cfg.url = E.url;
    d->cfg.enc = E.enc;
    d->cfg.token = d->token;
    d->cfg.device_id = d->device;
    d->cfg.locale = d->locale;
    d->cfg.client_name = "integ_service";
    d->cfg.backoff_ms_base = 20;
    d->cfg.backoff_ms_max = 200;
    d->cfg.requests_max = 64;
    assert_int_equal(sb_client_new(&E.loop, &d->cfg, &SV_CBS, d, &d->c), 0);
    sb_client_start(d->c);
    if (!it_run_until(&E, dev_ready, d, WAIT_MS))
        fail_msg("%s did not get READY", d->name);
    return d;
}

static void on_freed(void *ud)
{
    ((sv_dev *)ud)->c = NULL;
}

static bool all_freed(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < N_DEVS; i++)
        if (DEVS[i]->c) return false;
    return true;
}

static void sv_free_all(void)
{
    for (size_t i = 0; i < N_DEVS; i++)
        if (DEVS[i]->c) sb_client_close(DEVS[i]->c, on_freed);
    if (E.inited && !it_run_until(&E, all_freed, NULL, 5000))
        fprintf(stderr, "integ_service: clients not freed\n");
    for (size_t i = 0; i < N_DEVS; i++) {
        sv_dev *d = DEVS[i];
        for (size_t k = 0; k < d->n_convs; k++)
            free(d->convs[k].msgs);
        for (size_t k = 0; k < d->n_ans; k++)
            free(d->ans[k].buf);
        free(d);
    }
    N_DEVS = 0;
}

static int teardown(void **state)
{
    (void)state;
    sv_free_all();
    it_env_free(&E);
    return 0;
}

/* Starts the server with desk (written into its data folder). */
static void start_server(const char *desk)
{
    it_env_init(&E);
    snprintf(E.srv.data_dir, sizeof E.srv.data_dir, "/tmp/sbsvc.XXXXXX");
    assert_non_null(mkdtemp(E.srv.data_dir));
    static char path[300];
    snprintf(path, sizeof path, "%s/desk.json", E.srv.data_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(desk, 1, strlen(desk), f), strlen(desk));
    assert_int_equal(fclose(f), 0);
    const char *extra[] = {"--desk", path, "--durability", "os", NULL};
    assert_int_equal(it_server_start(&E, extra), 0);
}

/* ---- requests and answers ------------------------------------------------ */

typedef struct ans_arg {
    sv_dev *d;
    uint32_t rid;
} ans_arg;

static sv_ans *ans_find(sv_dev *d, uint32_t rid)
{
    for (size_t i = 0; i < d->n_ans; i++)
        if (d->ans[i].rid == rid) return &d->ans[i];
    return NULL;
}

static bool ans_arrived(void *arg)
{
    ans_arg *a = arg;
    return ans_find(a->d, a->rid) != NULL;
}

/* Waits for the answer to rid (the call that made it returned rc). */
static sv_ans *wait_ans(sv_dev *d, int rc, uint32_t rid, const char *what)
{
    if (rc)
        fail_msg("%s: %s refused by the SDK: %s", d->name, what,
                 sb_client_err_name(rc));
    ans_arg a = {d, rid};
    if (!it_run_until(&E, ans_arrived, &a, WAIT_MS))
        fail_msg("%s: no answer to %s", d->name, what);
    return ans_find(d, rid);
}

/* The request's error (0: OK). */
static int req_err(sv_dev *d, int rc, uint32_t rid, const char *what)
{
    sv_ans *a = wait_ans(d, rc, rid, what);
    return a->err;
}

static void expect_ok(sv_dev *d, int rc, uint32_t rid, const char *what)
{
    int err = req_err(d, rc, rid, what);
    if (err)
        fail_msg("%s: %s failed: %s", d->name, what, sb_client_err_name(err));
}

static void expect_err(sv_dev *d, int rc, uint32_t rid, int want,
                       const char *what)
{
    int err = req_err(d, rc, rid, what);
    if (err != want)
        fail_msg("%s: %s: %s, expected %s", d->name, what,
                 sb_client_err_name(err), sb_client_err_name(want));
}

static uint64_t open_service(sv_dev *d)
{
    uint32_t rid = 0;
    int rc = sb_client_open_service(d->c, "d", &rid);
    sv_ans *a = wait_ans(d, rc, rid, "service open");
    if (a->err)
        fail_msg("%s: service open failed: %s", d->name,
                 sb_client_err_name(a->err));
    Sbp__Conversation *c = sbp__conversation__unpack(NULL, a->len, a->buf);
    assert_non_null(c);
    assert_int_equal(c->kind, SBP__CONV_KIND__CONV_SERVICE);
    uint64_t id = c->conv_id;
    assert_true(id != 0);
    sbp__conversation__free_unpacked(c, NULL);
    return id;
}

static bool send_ended(void *arg)
{
    return ((sv_dev *)arg)->last_status != SB_SEND_PENDING;
}

/* Sends text of type (quoting quote_seq) and waits for SENT or FAILED:
 * the seq, or 0 with *err set. */
static uint64_t say_type(sv_dev *d, uint64_t conv, Sbp__MsgType type,
                         const char *text, uint64_t quote_seq, int *err)
{
    d->last_status = SB_SEND_PENDING;
    int rc = sb_client_send(d->c, conv, type, text, strlen(text), quote_seq,
                            d->last_id);
    if (rc)
        fail_msg("%s: send refused by the SDK: %s", d->name,
                 sb_client_err_name(rc));
    if (!it_run_until(&E, send_ended, d, WAIT_MS))
        fail_msg("%s: no answer to the send of \"%s\"", d->name, text);
    if (err) *err = d->last_send_err;
    return d->last_status == SB_SEND_SENT ? d->last_send_seq : 0;
}

static uint64_t say(sv_dev *d, uint64_t conv, const char *text,
                    uint64_t quote_seq, int *err)
{
    return say_type(d, conv, SBP__MSG_TYPE__MSG_TEXT, text, quote_seq, err);
}

static uint64_t say_ok(sv_dev *d, uint64_t conv, const char *text,
                       uint64_t quote_seq)
{
    int err = 0;
    uint64_t seq = say(d, conv, text, quote_seq, &err);
    if (!seq)
        fail_msg("%s: \"%s\" failed: %s", d->name, text,
                 sb_client_err_name(err));
    return seq;
}

/* ---- what devices surfaced ----------------------------------------------- */

/* A message to look for: each field that is set must match. */
typedef struct match {
    Sbp__MsgType type; /* 0: any */
    const char *event; /* event key */
    const char *sender;
    const char *body; /* substring of the body */
    uint64_t after;   /* seq > after */
} match;

static const sv_msg *find_msg(sv_dev *d, uint64_t conv, const match *m)
{
    sv_conv *c = sv_log(d, conv);
    for (size_t i = 0; c && i < c->n; i++) {
        const sv_msg *s = &c->msgs[i];
        if (s->seq <= m->after) continue;
        if (m->type && s->type != m->type) continue;
        if (m->event && strcmp(s->event, m->event) != 0) continue;
        if (m->sender && strcmp(s->sender, m->sender) != 0) continue;
        if (m->body && !strstr(s->body, m->body)) continue;
        return s;
    }
    return NULL;
}

static const sv_msg *msg_at(sv_dev *d, uint64_t conv, uint64_t seq)
{
    sv_conv *c = sv_log(d, conv);
    return c && seq >= 1 && seq <= c->n ? &c->msgs[seq - 1] : NULL;
}

typedef struct devs_match {
    sv_dev **devs;
    size_t n;
    uint64_t conv;
    const match *m;
} devs_match;

static bool all_have(void *arg)
{
    devs_match *a = arg;
    for (size_t i = 0; i < a->n; i++)
        if (!find_msg(a->devs[i], a->conv, a->m)) return false;
    return true;
}

/* Waits until every device surfaced a message matching m; checks it is
 * the same message (seq, msg_id) everywhere and returns its seq. */
static uint64_t expect_all(sv_dev **devs, size_t n, uint64_t conv, match m,
                           const char *what)
{
    devs_match a = {devs, n, conv, &m};
    if (!it_run_until(&E, all_have, &a, WAIT_MS)) {
        for (size_t i = 0; i < n; i++)
            if (!find_msg(devs[i], conv, &m)) {
                sv_conv *c = sv_log(devs[i], conv);
                fprintf(stderr, "%s has no %s; it surfaced:\n", devs[i]->name,
                        what);
                for (size_t k = 0; c && k < c->n; k++)
                    fprintf(stderr, "  %" PRIu64 " %d %s [%s] %s\n",
                            c->msgs[k].seq, (int)c->msgs[k].type,
                            c->msgs[k].sender, c->msgs[k].event,
                            c->msgs[k].body);
            }
        fail_msg("not every device surfaced %s", what);
    }
    const sv_msg *first = find_msg(devs[0], conv, &m);
    for (size_t i = 1; i < n; i++) {
        const sv_msg *o = find_msg(devs[i], conv, &m);
        if (o->seq != first->seq || o->msg_id != first->msg_id)
            fail_msg("%s: seq %" PRIu64 " on %s but %" PRIu64 " on %s", what,
                     first->seq, devs[0]->name, o->seq, devs[i]->name);
    }
    return first->seq;
}

typedef struct devs_state {
    sv_dev **devs;
    size_t n;
    uint64_t conv;
    Sbp__ConvState state;
    const char *agent;
    uint32_t pos;
} devs_state;

static bool state_is(sv_dev *d, const devs_state *a)
{
    sv_conv *c = sv_log(d, a->conv);
    return c && c->updates && c->state == a->state &&
           (!a->agent || strcmp(c->agent, a->agent) == 0) &&
           (a->state != SBP__CONV_STATE__STATE_QUEUED || !a->pos ||
            c->queue_pos == a->pos);
}

static bool all_state(void *arg)
{
    devs_state *a = arg;
    for (size_t i = 0; i < a->n; i++)
        if (!state_is(a->devs[i], a)) return false;
    return true;
}

/* Waits until every device's last CONV_UPDATE of conv says state (and
 * agent, and queue position pos, when given). */
static void expect_state(sv_dev **devs, size_t n, uint64_t conv,
                         Sbp__ConvState st, const char *agent, uint32_t pos)
{
    devs_state a = {devs, n, conv, st, agent, pos};
    if (it_run_until(&E, all_state, &a, WAIT_MS)) return;
    for (size_t i = 0; i < n; i++) {
        sv_conv *c = sv_log(devs[i], conv);
        fprintf(stderr,
                "%s: conv %" PRIu64 " updates %u state %d agent %s "
                "pos %u\n",
                devs[i]->name, conv, c ? c->updates : 0, c ? (int)c->state : -1,
                c ? c->agent : "-", c ? c->queue_pos : 0);
    }
    fail_msg("conv %" PRIu64 ": not every device was told state %d agent %s",
             conv, (int)st, agent ? agent : "*");
}

typedef struct surf_arg {
    sv_dev **devs;
    size_t n;
    uint64_t conv, seq;
} surf_arg;

static bool all_surfaced(void *arg)
{
    surf_arg *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        sv_conv *c = sv_log(a->devs[i], a->conv);
        if (!c || c->n < a->seq) return false;
    }
    return true;
}

/* Every device surfaced conv 1..seq, the same messages (msg_id) at every
 * seq. */
static void expect_same(sv_dev **devs, size_t n, uint64_t conv, uint64_t seq)
{
    surf_arg a = {devs, n, conv, seq};
    if (!it_run_until(&E, all_surfaced, &a, WAIT_MS))
        fail_msg("conv %" PRIu64 " not surfaced through %" PRIu64
                 " on every device",
                 conv, seq);
    for (uint64_t s = 1; s <= seq; s++)
        for (size_t i = 1; i < n; i++)
            if (msg_at(devs[i], conv, s)->msg_id !=
                msg_at(devs[0], conv, s)->msg_id)
                fail_msg("conv %" PRIu64 " seq %" PRIu64 " differs on %s", conv,
                         s, devs[i]->name);
}

static uint64_t last_seq(sv_dev *d, uint64_t conv)
{
    sv_conv *c = sv_log(d, conv);
    return c ? c->n : 0;
}

static bool has_recalled(sv_dev *d, uint64_t conv, uint64_t seq)
{
    sv_conv *c = sv_log(d, conv);
    for (size_t i = 0; c && i < c->n_recalled; i++)
        if (c->recalled[i] == seq) return true;
    return false;
}

static bool typing_seen(void *arg)
{
    sv_dev **two = arg;
    return two[0]->typing_on > 0 && two[1]->typing_on > 0;
}

/* How many messages of conv on d contain body. */
static size_t count_body(sv_dev *d, uint64_t conv, const char *body)
{
    sv_conv *c = sv_log(d, conv);
    size_t n = 0;
    for (size_t i = 0; c && i < c->n; i++)
        n += strstr(c->msgs[i].body, body) != NULL;
    return n;
}

/* ---- the scenario -------------------------------------------------------- */

static void run_scenario(sb_encoding enc)
{
    start_server(DESK_SCENARIO);
    E.enc = enc; /* of the devices made from now on */
    /* a3 (g2) online, a1 (g1) connected but away: nobody of g1 online. */
    sv_dev *a3 = sv_connect("a3", "agent", "a3-desk", "en");
    sv_dev *a1 = sv_connect("a1", "agent", "a1-desk", "zh-CN");
    uint32_t rid;
    int rc = sb_client_agent_state(a1->c, SBP__AGENT_STATUS__AGENT_AWAY, &rid);
    sv_ans *an = wait_ans(a1, rc, rid, "agent status away");
    assert_int_equal(an->err, 0);
    Sbp__AgentState *as = sbp__agent_state__unpack(NULL, an->len, an->buf);
    assert_non_null(as);
    assert_int_equal(as->status, SBP__AGENT_STATUS__AGENT_AWAY);
    assert_int_equal(as->capacity, 2);
    assert_int_equal(as->load, 0);
    sbp__agent_state__free_unpacked(as, NULL);

    sv_dev *phone = sv_connect("cu1", "customer", "cu1-phone", "en");
    sv_dev *laptop = sv_connect("cu1", "customer", "cu1-laptop", "zh-CN");
    sv_dev *cust[2] = {phone, laptop};

    /* Open: the bot greets on both devices, with a quick reply. */
    uint64_t conv = open_service(phone);
    uint64_t s =
        expect_all(cust, 2, conv,
                   (match){.type = SBP__MSG_TYPE__MSG_ROBOT, .body = "Welcome"},
                   "the greeting");
    assert_int_equal(s, 1);
    for (size_t i = 0; i < 2; i++) {
        assert_true(msg_at(cust[i], conv, 1)->n_quick >= 1);
        assert_string_equal(msg_at(cust[i], conv, 1)->quick0,
                            "Talk to a person");
    }
    /* Opening again resumes the same conversation, no second greeting. */
    assert_int_equal(open_service(laptop), conv);

    /* A question the rules know: the answer with its quick replies. */
    uint64_t refund = say_ok(phone, conv, "I want a refund", 0);
    s = expect_all(cust, 2, conv,
                   (match){.type = SBP__MSG_TYPE__MSG_ROBOT,
                           .body = "Refunds take 5 days",
                           .after = refund},
                   "the bot's answer");
    assert_int_equal(msg_at(laptop, conv, s)->n_quick, 2);
    assert_string_equal(msg_at(laptop, conv, refund)->body, "I want a refund");

    /* A human, please: queued (position 1 by conv_update and by event,
     * rendered per device), and the out-of-hours text. */
    uint64_t ask = say_ok(phone, conv, "a human please", 0);
    expect_state(cust, 2, conv, SBP__CONV_STATE__STATE_QUEUED, NULL, 1);
    s = expect_all(cust, 2, conv, (match){.event = "conv.queued", .after = ask},
                   "conv.queued");
    assert_string_equal(msg_at(phone, conv, s)->body,
                        "You are number 1 in the queue.");
    assert_string_equal(msg_at(laptop, conv, s)->body, ZH_QUEUED_1);
    expect_all(cust, 2, conv,
               (match){.type = SBP__MSG_TYPE__MSG_SYSTEM,
                       .body = "Nobody is here",
                       .after = ask},
               "the out-of-hours text");
    /* Written while waiting: must not be lost. */
    uint64_t waiting = say_ok(laptop, conv, "still waiting", 0);

    /* a1 goes online and gets it at once. */
    rc = sb_client_agent_state(a1->c, SBP__AGENT_STATUS__AGENT_ONLINE, &rid);
    expect_ok(a1, rc, rid, "agent status online");
    sv_dev *with_a1[3] = {phone, laptop, a1};
    expect_state(with_a1, 3, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a1", 0);
    uint64_t joined = expect_all(
        with_a1, 3, conv, (match){.event = "conv.assigned"}, "conv.assigned");
    /* One event, rendered in each device's locale. */
    assert_string_equal(msg_at(phone, conv, joined)->body,
                        "a1 has joined the conversation.");
    assert_string_equal(msg_at(laptop, conv, joined)->body, ZH_ASSIGNED_A1);
    assert_string_equal(msg_at(a1, conv, joined)->body, ZH_ASSIGNED_A1);
    /* The agent has everything said so far, in order. */
    expect_same(with_a1, 3, conv, joined);
    assert_string_equal(msg_at(a1, conv, waiting)->body, "still waiting");
    assert_string_equal(msg_at(a1, conv, refund)->body, "I want a refund");
    rc = sb_client_agent_state(a1->c, SBP__AGENT_STATUS__AGENT_ONLINE, &rid);
    an = wait_ans(a1, rc, rid, "agent status");
    as = sbp__agent_state__unpack(NULL, an->len, an->buf);
    assert_non_null(as);
    assert_int_equal(as->load, 1);
    sbp__agent_state__free_unpacked(as, NULL);

    /* Typing reaches the customer's devices, not the typist's. */
    assert_int_equal(sb_client_typing(a1->c, conv, true), 0);
    assert_true(it_run_until(&E, typing_seen, cust, WAIT_MS));
    assert_string_equal(phone->typing_user, "a1");
    assert_string_equal(laptop->typing_user, "a1");
    assert_int_equal(a1->typing_on, 0);

    /* A quoted reply: the quote is filled on the customer's devices. */
    uint64_t reply = say_ok(a1, conv, "Let me check that refund", refund);
    expect_all(cust, 2, conv, (match){.sender = "a1", .after = joined},
               "the agent's reply");
    for (size_t i = 0; i < 2; i++) {
        const sv_msg *m = msg_at(cust[i], conv, reply);
        assert_string_equal(m->body, "Let me check that refund");
        assert_int_equal(m->quote_seq, refund);
        assert_true(m->has_quote);
        assert_int_equal(m->q_seq, refund);
        assert_string_equal(m->q_sender, "cu1");
        assert_string_equal(m->q_body, "I want a refund");
    }

    /* A recall: every device surfaces the event and is told to hide it. */
    uint64_t oops = say_ok(phone, conv, "my card is 1234", 0);
    rc = sb_client_recall(phone->c, conv, oops, &rid);
    expect_ok(phone, rc, rid, "recall");
    uint64_t rec = expect_all(with_a1, 3, conv,
                              (match){.event = "msg.recalled", .after = oops},
                              "msg.recalled");
    assert_string_equal(msg_at(a1, conv, rec)->body, ZH_RECALLED_CU1);
    assert_string_equal(msg_at(phone, conv, rec)->body,
                        "cu1 recalled a message.");
    for (size_t i = 0; i < 3; i++)
        assert_true(has_recalled(with_a1[i], conv, oops));
    /* Reads give it back recalled, with an empty body. */
    rc = sb_client_history(laptop->c, conv, 0, 100, &rid);
    an = wait_ans(laptop, rc, rid, "history");
    assert_int_equal(an->err, 0);
    Sbp__HistoryResp *hr = sbp__history_resp__unpack(NULL, an->len, an->buf);
    assert_non_null(hr);
    bool seen = false;
    for (size_t i = 0; i < hr->n_messages; i++) {
        assert_int_equal(hr->messages[i]->seq, i + 1);
        if (hr->messages[i]->seq != oops) continue;
        seen = true;
        assert_true(hr->messages[i]->recalled);
        assert_string_equal(hr->messages[i]->body, "");
    }
    assert_true(seen);
    sbp__history_resp__free_unpacked(hr, NULL);

    /* Tags, the list and search from the agent's workbench. */
    const char *vip[] = {"vip"}, *rf[] = {"refund"};
    rc = sb_client_tag(a1->c, conv, 0, vip, 1, NULL, 0, &rid);
    expect_ok(a1, rc, rid, "tag the conversation");
    rc = sb_client_tag(a1->c, conv, refund, rf, 1, NULL, 0, &rid);
    expect_ok(a1, rc, rid, "tag a message");
    rc = sb_client_conv_list(a1->c, NULL, 10, 0, "vip", true, &rid);
    an = wait_ans(a1, rc, rid, "list by tag");
    assert_int_equal(an->err, 0);
    Sbp__ConvListResp *lr = sbp__conv_list_resp__unpack(NULL, an->len, an->buf);
    assert_non_null(lr);
    assert_int_equal(lr->n_convs, 1);
    assert_int_equal(lr->convs[0]->conv_id, conv);
    assert_int_equal(lr->convs[0]->state, SBP__CONV_STATE__STATE_ASSIGNED);
    assert_string_equal(lr->convs[0]->agent, "a1");
    assert_string_equal(lr->convs[0]->customer, "cu1");
    assert_non_null(lr->convs[0]->last_message);
    sbp__conv_list_resp__free_unpacked(lr, NULL);
    rc = sb_client_search(a1->c, conv, "refund", 10, &rid);
    an = wait_ans(a1, rc, rid, "search");
    assert_int_equal(an->err, 0);
    Sbp__SearchResp *sr = sbp__search_resp__unpack(NULL, an->len, an->buf);
    assert_non_null(sr);
    bool found = false;
    for (size_t i = 0; i < sr->n_messages; i++) {
        assert_int_equal(sr->messages[i]->conv_id, conv);
        found |= sr->messages[i]->seq == refund;
        assert_true(sr->messages[i]->seq != oops); /* recalled: never */
        if (sr->messages[i]->seq == refund) {
            assert_int_equal(sr->messages[i]->n_tags, 1);
            assert_string_equal(sr->messages[i]->tags[0], "refund");
        }
    }
    assert_true(found);
    sbp__search_resp__free_unpacked(sr, NULL);
    rc = sb_client_canned_list(a1->c, "d", &rid);
    an = wait_ans(a1, rc, rid, "canned");
    assert_int_equal(an->err, 0);
    Sbp__CannedListResp *cr =
        sbp__canned_list_resp__unpack(NULL, an->len, an->buf);
    assert_non_null(cr);
    assert_int_equal(cr->n_items, 2);
    assert_string_equal(cr->items[0]->key, "hi");
    sbp__canned_list_resp__free_unpacked(cr, NULL);

    /* Transfer to group g2: a3, its only agent, gets it with the history;
     * a1 is out. */
    rc = sb_client_transfer(a1->c, conv, NULL, "g2", &rid);
    expect_ok(a1, rc, rid, "transfer to g2");
    sv_dev *with_a3[3] = {phone, laptop, a3};
    expect_state(with_a3, 3, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a3", 0);
    uint64_t moved = expect_all(
        with_a3, 3, conv, (match){.event = "conv.transferred", .after = rec},
        "conv.transferred");
    uint64_t joined3 = expect_all(
        with_a3, 3, conv,
        (match){.event = "conv.assigned", .body = "a3", .after = moved},
        "conv.assigned a3");
    expect_same(with_a3, 3, conv, joined3);
    assert_string_equal(sv_log(phone, conv)->group, "g2");
    int err = 0;
    assert_int_equal(say(a1, conv, "am I still here?", 0, &err), 0);
    assert_int_equal(err, SB_E_FORBIDDEN);
    say_ok(a3, conv, "Hello from billing", 0);

    /* a3 closes: its OK says so; the agent leaves the conversation with
     * the close (members follow the assignment), the customer's devices
     * are told. */
    rc = sb_client_close_conv(a3->c, conv, &rid);
    expect_ok(a3, rc, rid, "close");
    expect_state(cust, 2, conv, SBP__CONV_STATE__STATE_CLOSED, NULL, 0);
    uint64_t closed = expect_all(cust, 2, conv, (match){.event = "conv.closed"},
                                 "conv.closed");
    assert_string_equal(msg_at(phone, conv, closed)->body,
                        "The conversation was closed by a3.");
    /* The customer writes again: reopened, the bot answers. */
    uint64_t again = say_ok(phone, conv, "one more refund question", 0);
    expect_state(cust, 2, conv, SBP__CONV_STATE__STATE_BOT, NULL, 0);
    uint64_t reopened = expect_all(
        cust, 2, conv, (match){.event = "conv.reopened", .after = closed},
        "conv.reopened");
    assert_true(reopened > closed);
    expect_all(cust, 2, conv,
               (match){.type = SBP__MSG_TYPE__MSG_ROBOT,
                       .body = "Refunds take 5 days",
                       .after = again},
               "the bot after the reopen");

    /* Both customer devices hold the same conversation, dense and in
     * order, with nothing surfaced twice. */
    it_run_for(&E, 200);
    expect_same(cust, 2, conv, last_seq(phone, conv));
    assert_int_equal(last_seq(phone, conv), last_seq(laptop, conv));
    assert_int_equal(count_body(laptop, conv, "Welcome"), 1); /* one greeting */
    for (size_t i = 0; i < N_DEVS; i++) {
        assert_int_equal(DEVS[i]->violations, 0);
        assert_int_equal(DEVS[i]->errors, 0);
    }
    assert_int_equal(E.violations, 0);
    printf("integ_service scenario [%s]: %" PRIu64 " messages, the same on 2 "
           "customer devices; 3 agents\n",
           enc == SB_ENC_JSON ? "json" : "proto", last_seq(phone, conv));
}

static void test_scenario(void **state)
{
    (void)state;
    run_scenario(SB_ENC_PROTO);
}

/* The same with the JSON subprotocol: the customer-service frames through
 * the server's and the SDK's JSON codecs. */
static void test_scenario_json(void **state)
{
    (void)state;
    run_scenario(SB_ENC_JSON);
}

/* ---- capacity ------------------------------------------------------------ */

static void test_capacity(void **state)
{
    (void)state;
    start_server(DESK_CAPACITY);
    sv_dev *ag[3];
    const char *names[3] = {"a1", "a2", "a3"};
    for (int i = 0; i < 3; i++) {
        ag[i] = sv_connect(names[i], "agent", names[i], "en");
        it_run_for(&E, 30); /* distinct idle times: a1 idle longest */
    }
    sv_dev *cu[10];
    uint64_t conv[10];
    const char *want[6] = {"a1", "a2", "a3", "a1", "a2", "a3"};
    for (int i = 0; i < 10; i++) {
        char user[16], dev[16];
        snprintf(user, sizeof user, "cust%d", i);
        snprintf(dev, sizeof dev, "cust%d-p", i);
        cu[i] = sv_connect(user, "customer", dev, "en");
        conv[i] = open_service(cu[i]);
        say_ok(cu[i], conv[i], "human", 0);
        /* Routed before the next one asks. */
        if (i < 6)
            expect_state(&cu[i], 1, conv[i], SBP__CONV_STATE__STATE_ASSIGNED,
                         want[i], 0);
        else
            expect_state(&cu[i], 1, conv[i], SBP__CONV_STATE__STATE_QUEUED,
                         NULL, (uint32_t)(i - 5));
    }
    /* Least loaded first, longest idle on ties; the agents got them too. */
    for (int i = 0; i < 6; i++) {
        sv_dev *ad = ag[(i % 3)];
        sv_dev *pair[2] = {cu[i], ad};
        expect_state(pair, 2, conv[i], SBP__CONV_STATE__STATE_ASSIGNED, want[i],
                     0);
    }
    for (int i = 6; i < 10; i++) {
        assert_int_equal(sv_log(cu[i], conv[i])->queue_pos, i - 5);
        /* The queue event said the same. */
        char pos[64];
        snprintf(pos, sizeof pos, "number %d in the queue", i - 5);
        expect_all(&cu[i], 1, conv[i],
                   (match){.event = "conv.queued", .body = pos}, "conv.queued");
        /* Agents were online, all full: no out-of-hours text. */
        assert_null(
            find_msg(cu[i], conv[i], &(match){.body = "Nobody is here"}));
    }
    /* Agents see the queue of their group in their list. */
    uint32_t rid;
    int rc = sb_client_conv_list(
        ag[0]->c, NULL, 50, SBP__CONV_STATE__STATE_QUEUED, NULL, false, &rid);
    sv_ans *an = wait_ans(ag[0], rc, rid, "list queued");
    assert_int_equal(an->err, 0);
    Sbp__ConvListResp *lr = sbp__conv_list_resp__unpack(NULL, an->len, an->buf);
    assert_non_null(lr);
    assert_int_equal(lr->n_convs, 4);
    sbp__conv_list_resp__free_unpacked(lr, NULL);
    rc = sb_client_agent_state(ag[1]->c, SBP__AGENT_STATUS__AGENT_ONLINE, &rid);
    an = wait_ans(ag[1], rc, rid, "agent state");
    Sbp__AgentState *as = sbp__agent_state__unpack(NULL, an->len, an->buf);
    assert_non_null(as);
    assert_int_equal(as->load, 2);
    assert_int_equal(as->capacity, 2);
    sbp__agent_state__free_unpacked(as, NULL);

    /* a2 closes cust1's: the head of the queue (cust6) goes to a2 at once,
     * the others move up. */
    int64_t t0 = harness_now_ms();
    rc = sb_client_close_conv(ag[1]->c, conv[1], &rid);
    expect_ok(ag[1], rc, rid, "close");
    sv_dev *pair[2] = {cu[6], ag[1]};
    expect_state(pair, 2, conv[6], SBP__CONV_STATE__STATE_ASSIGNED, "a2", 0);
    int64_t took = harness_now_ms() - t0;
    for (int i = 7; i < 10; i++)
        expect_state(&cu[i], 1, conv[i], SBP__CONV_STATE__STATE_QUEUED, NULL,
                     (uint32_t)(i - 6));
    expect_state(&cu[1], 1, conv[1], SBP__CONV_STATE__STATE_CLOSED, NULL, 0);
    /* The new agent has cust6's whole conversation. */
    expect_same(pair, 2, conv[6],
                expect_all(pair, 2, conv[6], (match){.event = "conv.assigned"},
                           "conv.assigned"));
    for (size_t i = 0; i < N_DEVS; i++)
        assert_int_equal(DEVS[i]->violations, 0);
    printf("integ_service capacity: 6 assigned a1,a2,a3,a1,a2,a3, 4 queued; "
           "a close handed the queue's head over in %lld ms\n",
           (long long)took);
}

/* ---- out of hours -------------------------------------------------------- */

static void test_out_of_hours(void **state)
{
    (void)state;
    start_server(DESK_CAPACITY);
    sv_dev *cu = sv_connect("night", "customer", "night-p", "en");
    uint64_t conv = open_service(cu);
    uint64_t ask = say_ok(cu, conv, "human", 0);
    expect_state(&cu, 1, conv, SBP__CONV_STATE__STATE_QUEUED, NULL, 1);
    expect_all(&cu, 1, conv,
               (match){.type = SBP__MSG_TYPE__MSG_SYSTEM,
                       .body = "Nobody is here",
                       .after = ask},
               "the out-of-hours text");
    uint64_t w[3];
    w[0] = say_ok(cu, conv, "my order 42 never came", 0);
    w[1] = say_ok(cu, conv, "it was a birthday present", 0);
    w[2] = say_ok(cu, conv, "please call me", 0);
    /* An agent arrives: connecting makes it online; it gets the
     * conversation with every word. */
    it_run_for(&E, 50);
    sv_dev *ag = sv_connect("a2", "agent", "a2-late", "en");
    sv_dev *both[2] = {cu, ag};
    expect_state(both, 2, conv, SBP__CONV_STATE__STATE_ASSIGNED, "a2", 0);
    uint64_t joined = expect_all(
        both, 2, conv, (match){.event = "conv.assigned"}, "conv.assigned");
    assert_true(joined > w[2]);
    expect_same(both, 2, conv, joined);
    assert_string_equal(msg_at(ag, conv, w[0])->body, "my order 42 never came");
    assert_string_equal(msg_at(ag, conv, w[2])->body, "please call me");
    uint64_t r = say_ok(ag, conv, "Calling you now", w[2]);
    expect_all(&cu, 1, conv, (match){.sender = "a2", .after = joined},
               "the reply");
    assert_int_equal(msg_at(cu, conv, r)->quote_seq, w[2]);
    assert_true(msg_at(cu, conv, r)->has_quote);
    assert_int_equal(msg_at(cu, conv, r)->q_seq, w[2]);
    assert_int_equal(cu->violations + ag->violations, 0);
}

/* ---- transfer to a group and the queue ----------------------------------- */

/* docs/protocol.md: a transfer to a group goes "back through routing", the
 * previous agent "stops being a member", and queued conversations are
 * assigned in queue order the moment an agent has room ("a transfer
 * away"). So with a1 (capacity 2) full and cust2 waiting, a1's transfer of
 * cust0 to the group hands a1's room to cust2 and queues cust0 behind. */
static void test_transfer_to_group_queue_order(void **state)
{
    (void)state;
    start_server(DESK_CAPACITY);
    sv_dev *a1 = sv_connect("a1", "agent", "a1", "en");
    sv_dev *cu[3];
    uint64_t conv[3];
    for (int i = 0; i < 3; i++) {
        char user[16];
        snprintf(user, sizeof user, "cust%d", i);
        cu[i] = sv_connect(user, "customer", user, "en");
        conv[i] = open_service(cu[i]);
        say_ok(cu[i], conv[i], "human", 0);
        expect_state(&cu[i], 1, conv[i],
                     i < 2 ? SBP__CONV_STATE__STATE_ASSIGNED
                           : SBP__CONV_STATE__STATE_QUEUED,
                     i < 2 ? "a1" : NULL, i < 2 ? 0 : 1);
    }
    uint32_t rid;
    int rc = sb_client_transfer(a1->c, conv[0], NULL, "g1", &rid);
    expect_ok(a1, rc, rid, "transfer to the group");
    sv_dev *p2[2] = {cu[2], a1};
    expect_state(p2, 2, conv[2], SBP__CONV_STATE__STATE_ASSIGNED, "a1", 0);
    expect_state(&cu[0], 1, conv[0], SBP__CONV_STATE__STATE_QUEUED, NULL, 1);
    rc = sb_client_history(a1->c, conv[0], 0, 10, &rid);
    expect_err(a1, rc, rid, SB_E_FORBIDDEN, "history after the transfer");
}

/* ---- authorization ------------------------------------------------------- */

static void test_authorization(void **state)
{
    (void)state;
    start_server(DESK_CAPACITY);
    sv_dev *a1 = sv_connect("a1", "agent", "a1", "en");
    it_run_for(&E, 30);
    sv_dev *a2 = sv_connect("a2", "agent", "a2", "en");
    sv_dev *c1 = sv_connect("cu1", "customer", "cu1-p", "en");
    sv_dev *c2 = sv_connect("cu2", "customer", "cu2-p", "en");
    uint64_t x = open_service(c1);
    uint64_t mine = say_ok(c1, x, "human", 0);
    sv_dev *px[2] = {c1, a1};
    expect_state(px, 2, x, SBP__CONV_STATE__STATE_ASSIGNED, "a1", 0);
    uint64_t y = open_service(c2);
    say_ok(c2, y, "human", 0);
    sv_dev *py[2] = {c2, a2};
    expect_state(py, 2, y, SBP__CONV_STATE__STATE_ASSIGNED, "a2", 0);
    uint32_t rid;
    int rc, err;

    /* Another customer: no reading, writing, quoting, tagging, recalling,
     * closing; not in its list, not in its search. */
    rc = sb_client_history(c2->c, x, 0, 10, &rid);
    expect_err(c2, rc, rid, SB_E_FORBIDDEN, "history of another's");
    assert_int_equal(say(c2, x, "hi", 0, &err), 0);
    assert_int_equal(err, SB_E_FORBIDDEN);
    assert_int_equal(say(c2, x, "quoting you", mine, &err), 0);
    assert_int_equal(err, SB_E_FORBIDDEN);
    const char *t[] = {"spam"};
    rc = sb_client_tag(c2->c, x, 0, t, 1, NULL, 0, &rid);
    expect_err(c2, rc, rid, SB_E_FORBIDDEN, "tag of another's");
    rc = sb_client_recall(c2->c, x, mine, &rid);
    expect_err(c2, rc, rid, SB_E_FORBIDDEN, "recall in another's");
    rc = sb_client_close_conv(c2->c, x, &rid);
    expect_err(c2, rc, rid, SB_E_FORBIDDEN, "close of another's");
    rc = sb_client_conv_list(c2->c, NULL, 50, 0, NULL, false, &rid);
    sv_ans *an = wait_ans(c2, rc, rid, "list");
    assert_int_equal(an->err, 0);
    Sbp__ConvListResp *lr = sbp__conv_list_resp__unpack(NULL, an->len, an->buf);
    assert_non_null(lr);
    for (size_t i = 0; i < lr->n_convs; i++)
        assert_true(lr->convs[i]->conv_id != x);
    sbp__conv_list_resp__free_unpacked(lr, NULL);
    rc = sb_client_search(c2->c, x, "human", 10, &rid);
    an = wait_ans(c2, rc, rid, "search in another's");
    if (an->err == 0) {
        Sbp__SearchResp *sr = sbp__search_resp__unpack(NULL, an->len, an->buf);
        assert_non_null(sr);
        assert_int_equal(sr->n_messages, 0);
        sbp__search_resp__free_unpacked(sr, NULL);
    } else {
        assert_int_equal(an->err, SB_E_FORBIDDEN);
    }
    assert_null(sv_log(c2, x)); /* nothing of x ever reached cu2 */

    /* Customers tag nothing, not even their own; they recall only their
     * own messages. */
    rc = sb_client_tag(c1->c, x, 0, t, 1, NULL, 0, &rid);
    expect_err(c1, rc, rid, SB_E_FORBIDDEN, "customer tags");
    const sv_msg *greet = msg_at(c1, x, 1);
    assert_non_null(greet);
    rc = sb_client_recall(c1->c, x, greet->seq, &rid);
    expect_err(c1, rc, rid, SB_E_FORBIDDEN, "recall of the bot's message");

    /* Wrong-role requests: a clear code, the session goes on. */
    rc = sb_client_agent_state(c1->c, SBP__AGENT_STATUS__AGENT_ONLINE, &rid);
    expect_err(c1, rc, rid, SB_E_FORBIDDEN, "agent status as a customer");
    rc = sb_client_canned_list(c1->c, NULL, &rid);
    expect_err(c1, rc, rid, SB_E_FORBIDDEN, "canned as a customer");
    rc = sb_client_transfer(c1->c, x, "a2", NULL, &rid);
    expect_err(c1, rc, rid, SB_E_FORBIDDEN, "transfer as a customer");
    assert_int_equal(say_type(c1, x, SBP__MSG_TYPE__MSG_ROBOT, "beep", 0, &err),
                     0);
    assert_int_equal(err, SB_E_INVALID); /* robot messages are the bot's */

    /* An agent not assigned: nothing in x. */
    rc = sb_client_history(a2->c, x, 0, 10, &rid);
    expect_err(a2, rc, rid, SB_E_FORBIDDEN, "history, not assigned");
    assert_int_equal(say(a2, x, "hello?", 0, &err), 0);
    assert_int_equal(err, SB_E_FORBIDDEN);
    rc = sb_client_tag(a2->c, x, 0, t, 1, NULL, 0, &rid);
    expect_err(a2, rc, rid, SB_E_FORBIDDEN, "tag, not assigned");
    rc = sb_client_transfer(a2->c, x, "a2", NULL, &rid);
    expect_err(a2, rc, rid, SB_E_FORBIDDEN, "transfer, not assigned");
    rc = sb_client_close_conv(a2->c, x, &rid);
    expect_err(a2, rc, rid, SB_E_FORBIDDEN, "close, not assigned");
    /* Transfers: to nobody, to an offline agent, then to a2 for real. */
    rc = sb_client_transfer(a1->c, x, "nobody", NULL, &rid);
    expect_err(a1, rc, rid, SB_E_NOT_FOUND, "transfer to an unknown agent");
    rc = sb_client_transfer(a1->c, x, "a3", NULL, &rid);
    expect_err(a1, rc, rid, SB_E_STATE, "transfer to an offline agent");
    rc = sb_client_transfer(a1->c, x, "a2", NULL, &rid);
    expect_ok(a1, rc, rid, "transfer to a2");
    sv_dev *px2[2] = {c1, a2};
    expect_state(px2, 2, x, SBP__CONV_STATE__STATE_ASSIGNED, "a2", 0);
    rc = sb_client_history(a2->c, x, 0, 10, &rid);
    expect_ok(a2, rc, rid, "history once transferred");
    say_ok(a2, x, "I have it now", mine);
    rc = sb_client_history(a1->c, x, 0, 10, &rid);
    expect_err(a1, rc, rid, SB_E_FORBIDDEN, "history after transferring");
    rc = sb_client_tag(a1->c, x, 0, t, 1, NULL, 0, &rid);
    expect_err(a1, rc, rid, SB_E_FORBIDDEN, "tag after transferring");

    /* A recall past the desk's window (1 s) is too late. */
    uint64_t late = say_ok(c1, x, "too late to take back", 0);
    it_run_for(&E, 1300);
    rc = sb_client_recall(c1->c, x, late, &rid);
    expect_err(c1, rc, rid, SB_E_TOO_LATE, "recall past the window");
    assert_false(has_recalled(c1, x, late));

    /* Handoff is the customer's (or a bot's): an agent gets FORBIDDEN on a
     * conversation still with the bot; its customer may. */
    sv_dev *c3 = sv_connect("cu3", "customer", "cu3-p", "en");
    uint64_t z = open_service(c3);
    rc = sb_client_handoff(a1->c, z, NULL, &rid);
    expect_err(a1, rc, rid, SB_E_FORBIDDEN, "handoff as an agent");
    rc = sb_client_handoff(c3->c, z, NULL, &rid);
    expect_ok(c3, rc, rid, "handoff by its customer");
    expect_state(&c3, 1, z, SBP__CONV_STATE__STATE_ASSIGNED, NULL, 0);
    rc = sb_client_handoff(c3->c, z, NULL, &rid);
    expect_err(c3, rc, rid, SB_E_STATE, "handoff when assigned already");
    /* The sessions survived every refusal. */
    it_run_for(&E, 100);
    for (size_t i = 0; i < N_DEVS; i++) {
        assert_int_equal(sb_client_get_state(DEVS[i]->c), SB_CLIENT_READY);
        assert_int_equal(DEVS[i]->violations, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_scenario, teardown),
        cmocka_unit_test_teardown(test_scenario_json, teardown),
        cmocka_unit_test_teardown(test_capacity, teardown),
        cmocka_unit_test_teardown(test_out_of_hours, teardown),
        cmocka_unit_test_teardown(test_transfer_to_group_queue_order, teardown),
        cmocka_unit_test_teardown(test_authorization, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
