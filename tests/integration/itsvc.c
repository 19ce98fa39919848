/* Customer-service devices for integration tests: see itsvc.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "itsvc.h"

void its_server_start(it_env *e, const char *tag, const char *desk)
{
    its_server_start_with(e, tag, desk, NULL);
}

void its_server_start_with(it_env *e, const char *tag, const char *desk,
                           const char *const *more)
{
    it_env_init(e);
    snprintf(e->srv.data_dir, sizeof e->srv.data_dir, "/tmp/%s.XXXXXX", tag);
    assert_non_null(mkdtemp(e->srv.data_dir));
    /* The server's options point here until the next start. */
    static char path[300];
    snprintf(path, sizeof path, "%s/desk.json", e->srv.data_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(desk, 1, strlen(desk), f), strlen(desk));
    assert_int_equal(fclose(f), 0);
    const char *extra[16] = {"--desk", path, "--durability", "os"};
    size_t n = 4;
    for (size_t i = 0; more && more[i]; i++) {
        assert_true(n < 14);
        extra[n++] = more[i];
    }
    extra[n] = NULL;
    assert_int_equal(it_server_start(e, extra), 0);
}

/* ---- recording ----------------------------------------------------------- */

static void violation(its_dev *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void violation(its_dev *d, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    d->violations++;
    it_violation(d->env, NULL, "[%s] %s", d->name, line);
}

its_conv *its_conv_of(its_dev *d, uint64_t conv)
{
    for (size_t i = 0; i < d->n_convs; i++)
        if (d->convs[i].conv_id == conv) return &d->convs[i];
    return NULL;
}

static its_conv *conv_get(its_dev *d, uint64_t conv)
{
    its_conv *c = its_conv_of(d, conv);
    if (c || d->n_convs == ITS_CONVS_MAX) return c;
    c = &d->convs[d->n_convs++];
    memset(c, 0, sizeof *c);
    c->conv_id = conv;
    return c;
}

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static void cb_message(void *ud, const Sbp__Message *m)
{
    its_dev *d = ud;
    its_conv *c = conv_get(d, m->conv_id);
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
    its_msg *s = &c->msgs[c->n++];
    memset(s, 0, sizeof *s);
    s->seq = m->seq;
    s->msg_id = m->msg_id;
    s->type = m->type;
    s->quote_seq = m->quote_seq;
    s->recalled = m->recalled;
    copy(s->sender, sizeof s->sender, m->sender);
    copy(s->body, sizeof s->body, m->body);
    if (m->event) {
        copy(s->event, sizeof s->event, m->event->key);
        s->n_args = m->event->n_args;
        for (size_t i = 0; i < m->event->n_args && i < ITS_ARGS_MAX; i++)
            copy(s->args[i], sizeof s->args[i], m->event->args[i]);
    }
    s->n_tags = m->n_tags;
    if (m->quote) {
        s->has_quote = true;
        s->q_seq = m->quote->seq;
        copy(s->q_sender, sizeof s->q_sender, m->quote->sender);
        copy(s->q_body, sizeof s->q_body, m->quote->body);
    }
    s->n_quick = m->n_quick_replies;
    for (size_t i = 0; i < m->n_quick_replies && i < 2; i++)
        copy(s->quick[i], sizeof s->quick[i], m->quick_replies[i]->title);
    if (m->msg_id == 0) violation(d, "seq %" PRIu64 " has msg_id 0", m->seq);
}

static void cb_send_status(void *ud, const sb_client_send_info *s)
{
    its_dev *d = ud;
    if (memcmp(s->client_msg_id, d->last_id, SB_CLIENT_MSG_ID_BYTES) != 0)
        return;
    if (s->status == SB_SEND_SENT || s->status == SB_SEND_FAILED) {
        copy(d->last_stored_body, sizeof d->last_stored_body, s->stored_body);
        d->last_status = s->status;
        d->last_send_err = s->err;
        d->last_send_seq = s->seq;
    }
}

static void cb_conv_update(void *ud, const Sbp__Conversation *cv)
{
    its_dev *d = ud;
    its_conv *c = conv_get(d, cv->conv_id);
    if (!c) return;
    c->updates++;
    c->state = cv->state;
    copy(c->agent, sizeof c->agent, cv->agent);
    copy(c->group, sizeof c->group, cv->group);
    c->queue_pos = cv->queue_position;
    c->members = cv->n_members;
    memset(c->member, 0, sizeof c->member);
    for (size_t i = 0; i < cv->n_members && i < ITS_MEMBERS_MAX; i++) {
        copy(c->member[i].user, sizeof c->member[i].user,
             cv->members[i]->user_id);
        c->member[i].read_seq = cv->members[i]->read_seq;
        c->member[i].delivered_seq = cv->members[i]->delivered_seq;
    }
    copy(c->note, sizeof c->note, cv->transfer_note);
    copy(c->note_from, sizeof c->note_from, cv->transfer_from);
    c->csat_rating = cv->csat_rating;
    copy(c->csat_comment, sizeof c->csat_comment, cv->csat_comment);
    if (cv->state == SBP__CONV_STATE__STATE_QUEUED && cv->queue_position == 0)
        violation(d, "conv %" PRIu64 " queued without a position", cv->conv_id);
}

static void cb_typing(void *ud, const Sbp__Typing *t)
{
    its_dev *d = ud;
    if (t->on)
        d->typing_on++;
    else
        d->typing_off++;
    copy(d->typing_user, sizeof d->typing_user, t->user_id);
}

static void cb_presence(void *ud, const Sbp__AgentPresence *p)
{
    its_dev *d = ud;
    if (d->n_presence == ITS_PRESENCE_MAX) {
        violation(d, "too many presence pushes");
        return;
    }
    copy(d->presence[d->n_presence].user,
         sizeof d->presence[d->n_presence].user, p->user_id);
    d->presence[d->n_presence++].status = p->status;
}

static void cb_recalled(void *ud, uint64_t conv_id, uint64_t seq)
{
    its_dev *d = ud;
    its_conv *c = conv_get(d, conv_id);
    if (c && c->n_recalled < ITS_RECALLED_MAX)
        c->recalled[c->n_recalled++] = seq;
}

static void ans_put(its_dev *d, int kind, uint32_t rid, int err,
                    const ProtobufCMessage *m, const char *text)
{
    if (d->n_ans == ITS_ANS_MAX) {
        violation(d, "too many answers");
        return;
    }
    for (size_t i = 0; i < d->n_ans; i++)
        if (d->ans[i].rid == rid)
            violation(d, "rid %u answered twice", (unsigned)rid);
    its_ans *a = &d->ans[d->n_ans++];
    memset(a, 0, sizeof *a);
    a->rid = rid;
    a->kind = kind;
    a->err = err;
    if (kind == ITS_ANS_ADMIN) {
        a->text = strdup(text ? text : "");
        if (!a->text) abort();
        return;
    }
    if ((err == 0) != (m != NULL) && kind != ITS_ANS_DONE)
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
    ans_put(ud, ITS_ANS_OPEN, rid, err, c ? &c->base : NULL, NULL);
}

static void cb_history(void *ud, uint32_t rid, int err,
                       const Sbp__HistoryResp *h)
{
    ans_put(ud, ITS_ANS_HISTORY, rid, err, h ? &h->base : NULL, NULL);
}

static void cb_done(void *ud, uint32_t rid, int err)
{
    ans_put(ud, ITS_ANS_DONE, rid, err, NULL, NULL);
}

static void cb_agent_state(void *ud, uint32_t rid, int err,
                           const Sbp__AgentState *a)
{
    ans_put(ud, ITS_ANS_AGENT, rid, err, a ? &a->base : NULL, NULL);
}

static void cb_conv_list(void *ud, uint32_t rid, int err,
                         const Sbp__ConvListResp *l)
{
    ans_put(ud, ITS_ANS_LIST, rid, err, l ? &l->base : NULL, NULL);
}

static void cb_search(void *ud, uint32_t rid, int err, const Sbp__SearchResp *r)
{
    ans_put(ud, ITS_ANS_SEARCH, rid, err, r ? &r->base : NULL, NULL);
}

static void cb_canned(void *ud, uint32_t rid, int err,
                      const Sbp__CannedListResp *c)
{
    ans_put(ud, ITS_ANS_CANNED, rid, err, c ? &c->base : NULL, NULL);
}

static void cb_admin(void *ud, uint32_t rid, int err, const char *text)
{
    ans_put(ud, ITS_ANS_ADMIN, rid, err, NULL, text);
}

/* Every answer, recorded by the kind of its request. */
static void cb_response(void *ud, uint32_t rid, Sbp__Frame__BodyCase req,
                        int err, const Sbp__Frame *f)
{
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
    case SBP__FRAME__BODY_AGENT_LIST:
        ans_put(ud, ITS_ANS_AGENTS, rid, err,
                a ? &a->agent_list_resp->base : NULL, NULL);
        break;
    case SBP__FRAME__BODY_REPORT:
        ans_put(ud, ITS_ANS_REPORT, rid, err, a ? &a->report_resp->base : NULL,
                NULL);
        break;
    case SBP__FRAME__BODY_NOTES_OPEN:
        cb_open(ud, rid, err, a ? a->open_resp->conv : NULL);
        break;
    case SBP__FRAME__BODY_CONTACT_GET:
    case SBP__FRAME__BODY_CONTACT_SET:
        ans_put(ud, ITS_ANS_CONTACT, rid, err,
                a ? &a->contact_resp->base : NULL, NULL);
        break;
    default:
        cb_done(ud, rid, err);
        break;
    }
}

static void cb_error(void *ud, int err, const char *text)
{
    its_dev *d = ud;
    d->errors++;
    fprintf(stderr, "%s [%s]: ERROR %s %s\n", d->cfg.client_name, d->name,
            sb_client_err_name(err), text);
}

static void cb_note_mention(void *ud, const Sbp__NoteMention *m)
{
    its_dev *d = ud;
    d->mentions++;
    d->mention_conv = m->conv_id;
    d->mention_notes = m->notes_conv_id;
    copy(d->mention_body, sizeof d->mention_body, m->note ? m->note->body : "");
    copy(d->mention_from, sizeof d->mention_from,
         m->note ? m->note->sender : "");
}

static const sb_client_cbs ITS_CBS = {
    .on_message = cb_message,
    .on_send_status = cb_send_status,
    .on_response = cb_response,
    .on_error = cb_error,
    .on_conv_update = cb_conv_update,
    .on_typing = cb_typing,
    .on_recalled = cb_recalled,
    .on_note_mention = cb_note_mention,
    .on_presence = cb_presence,
};

/* ---- devices ------------------------------------------------------------- */

static bool dev_ready(void *arg)
{
    its_dev *d = arg;
    return d->c && sb_client_get_state(d->c) == SB_CLIENT_READY;
}

its_dev *its_connect(its_ctx *x, const char *user, const char *role,
                     const char *device, const char *locale)
{
    return its_connect_token(x, user, harness_token(user, role, 3600), device,
                             locale);
}

its_dev *its_connect_token(its_ctx *x, const char *user, const char *token,
                           const char *device, const char *locale)
{
    assert_true(x->n_devs < ITS_DEVS_MAX);
    its_dev *d = calloc(1, sizeof *d);
    assert_non_null(d);
    x->devs[x->n_devs++] = d;
    d->env = x->env;
    copy(d->user, sizeof d->user, user);
    copy(d->device, sizeof d->device, device);
    copy(d->locale, sizeof d->locale, locale);
    snprintf(d->name, sizeof d->name, "%s/%s", user, device);
    copy(d->token, sizeof d->token, token);
    sb_client_config_default(&d->cfg);
    copy(d->url, sizeof d->url, x->env->url);
    d->cfg.url = d->url;
    d->cfg.enc = x->env->enc;
    d->cfg.token = d->token;
    d->cfg.device_id = d->device;
    d->cfg.locale = d->locale;
    d->cfg.client_name = x->client_name;
    d->cfg.backoff_ms_base = 20;
    d->cfg.backoff_ms_max = 200;
    if (x->requests_max) d->cfg.requests_max = x->requests_max;
    assert_int_equal(sb_client_new(&x->env->loop, &d->cfg, &ITS_CBS, d, &d->c),
                     0);
    sb_client_start(d->c);
    if (!it_run_until(x->env, dev_ready, d, ITS_WAIT_MS))
        fail_msg("%s did not get READY", d->name);
    return d;
}

static void on_freed(void *ud)
{
    ((its_dev *)ud)->c = NULL;
}

static bool dev_freed(void *arg)
{
    return ((its_dev *)arg)->c == NULL;
}

void its_stop(its_dev *d)
{
    if (d->c) sb_client_close(d->c, on_freed);
    if (!it_run_until(d->env, dev_freed, d, ITS_WAIT_MS))
        fail_msg("%s not freed", d->name);
}

static bool all_freed(void *arg)
{
    its_ctx *x = arg;
    for (size_t i = 0; i < x->n_devs; i++)
        if (x->devs[i]->c) return false;
    return true;
}

bool its_free_all(its_ctx *x)
{
    for (size_t i = 0; i < x->n_devs; i++)
        if (x->devs[i]->c) sb_client_close(x->devs[i]->c, on_freed);
    bool freed =
        !x->env->inited || it_run_until(x->env, all_freed, x, ITS_WAIT_MS);
    if (!freed) fprintf(stderr, "%s: clients not freed\n", x->client_name);
    for (size_t i = 0; i < x->n_devs; i++) {
        its_dev *d = x->devs[i];
        for (size_t k = 0; k < d->n_convs; k++)
            free(d->convs[k].msgs);
        for (size_t k = 0; k < d->n_ans; k++) {
            free(d->ans[k].buf);
            free(d->ans[k].text);
        }
        free(d);
    }
    x->n_devs = 0;
    return freed;
}

/* ---- requests and answers ------------------------------------------------ */

its_ans *its_ans_find(its_dev *d, uint32_t rid)
{
    for (size_t i = 0; i < d->n_ans; i++)
        if (d->ans[i].rid == rid) return &d->ans[i];
    return NULL;
}

typedef struct ans_arg {
    its_dev *d;
    uint32_t rid;
} ans_arg;

static bool ans_arrived(void *arg)
{
    ans_arg *a = arg;
    return its_ans_find(a->d, a->rid) != NULL;
}

its_ans *its_wait_ans(its_dev *d, int rc, uint32_t rid, const char *what)
{
    if (rc)
        fail_msg("%s: %s refused by the SDK: %s", d->name, what,
                 sb_client_err_name(rc));
    ans_arg a = {d, rid};
    if (!it_run_until(d->env, ans_arrived, &a, ITS_WAIT_MS))
        fail_msg("%s: no answer to %s", d->name, what);
    return its_ans_find(d, rid);
}

uint64_t its_open_service(its_dev *d, size_t *members)
{
    uint32_t rid = 0;
    int rc = sb_client_open_service(d->c, "d", &rid);
    its_ans *a = its_wait_ans(d, rc, rid, "service open");
    if (a->err)
        fail_msg("%s: service open failed: %s", d->name,
                 sb_client_err_name(a->err));
    Sbp__Conversation *c = sbp__conversation__unpack(NULL, a->len, a->buf);
    assert_non_null(c);
    assert_int_equal(c->kind, SBP__CONV_KIND__CONV_SERVICE);
    uint64_t id = c->conv_id;
    assert_true(id != 0);
    if (members) *members = c->n_members;
    sbp__conversation__free_unpacked(c, NULL);
    return id;
}

/* ---- sends --------------------------------------------------------------- */

static bool send_ended(void *arg)
{
    return ((its_dev *)arg)->last_status != SB_SEND_PENDING;
}

/* Waits for the end of the send the SDK took (or refused: rc). */
static int send_wait(its_dev *d, int rc, const char *text)
{
    if (rc)
        fail_msg("%s: send refused by the SDK: %s", d->name,
                 sb_client_err_name(rc));
    if (!it_run_until(d->env, send_ended, d, ITS_WAIT_MS))
        fail_msg("%s: no answer to the send of \"%s\"", d->name, text);
    return d->last_status == SB_SEND_SENT ? 0 : d->last_send_err;
}

int its_say_type(its_dev *d, uint64_t conv, Sbp__MsgType type, const char *text,
                 uint64_t quote_seq)
{
    d->last_status = SB_SEND_PENDING;
    int rc = sb_client_send(d->c, conv, type, text, strlen(text), quote_seq,
                            d->last_id);
    return send_wait(d, rc, text);
}

int its_say(its_dev *d, uint64_t conv, const char *text, uint64_t quote_seq)
{
    return its_say_type(d, conv, SBP__MSG_TYPE__MSG_TEXT, text, quote_seq);
}

int its_say_robot(its_dev *d, uint64_t conv, const char *text,
                  const char *const *quick, size_t n)
{
    d->last_status = SB_SEND_PENDING;
    int rc = sb_client_send_robot(d->c, conv, text, quick, n, d->last_id);
    return send_wait(d, rc, text);
}

uint64_t its_say_ok(its_dev *d, uint64_t conv, const char *text,
                    uint64_t quote_seq)
{
    int err = its_say(d, conv, text, quote_seq);
    if (err)
        fail_msg("%s: \"%s\" failed: %s", d->name, text,
                 sb_client_err_name(err));
    return d->last_send_seq;
}

/* ---- what devices surfaced ----------------------------------------------- */

const its_msg *its_find_msg(its_dev *d, uint64_t conv, const its_match *m)
{
    its_conv *c = its_conv_of(d, conv);
    for (size_t i = 0; c && i < c->n; i++) {
        const its_msg *s = &c->msgs[i];
        if (s->seq <= m->after) continue;
        if (m->type && s->type != m->type) continue;
        if (m->event && strcmp(s->event, m->event) != 0) continue;
        if (m->sender && strcmp(s->sender, m->sender) != 0) continue;
        if (m->body && !strstr(s->body, m->body)) continue;
        return s;
    }
    return NULL;
}

const its_msg *its_msg_at(its_dev *d, uint64_t conv, uint64_t seq)
{
    its_conv *c = its_conv_of(d, conv);
    return c && seq >= 1 && seq <= c->n ? &c->msgs[seq - 1] : NULL;
}

typedef struct devs_match {
    its_dev **devs;
    size_t n;
    uint64_t conv;
    const its_match *m;
} devs_match;

static bool all_have(void *arg)
{
    devs_match *a = arg;
    for (size_t i = 0; i < a->n; i++)
        if (!its_find_msg(a->devs[i], a->conv, a->m)) return false;
    return true;
}

uint64_t its_expect_all(its_dev **devs, size_t n, uint64_t conv, its_match m,
                        const char *what)
{
    devs_match a = {devs, n, conv, &m};
    if (!it_run_until(devs[0]->env, all_have, &a, ITS_WAIT_MS)) {
        for (size_t i = 0; i < n; i++)
            if (!its_find_msg(devs[i], conv, &m)) {
                its_conv *c = its_conv_of(devs[i], conv);
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
    const its_msg *first = its_find_msg(devs[0], conv, &m);
    for (size_t i = 1; i < n; i++) {
        const its_msg *o = its_find_msg(devs[i], conv, &m);
        if (o->seq != first->seq || o->msg_id != first->msg_id)
            fail_msg("%s: seq %" PRIu64 " on %s but %" PRIu64 " on %s", what,
                     first->seq, devs[0]->name, o->seq, devs[i]->name);
    }
    return first->seq;
}

const its_msg *its_expect_msg(its_dev *d, uint64_t conv, const char *sender,
                              const char *body)
{
    char what[160];
    snprintf(what, sizeof what, "a message from %s with \"%s\"",
             sender ? sender : "anyone", body ? body : "");
    its_match m = {.sender = sender, .body = body};
    return its_msg_at(d, conv, its_expect_all(&d, 1, conv, m, what));
}

typedef struct presence_arg {
    its_dev *d;
    const char *user;
    Sbp__AgentStatus st;
} presence_arg;

static bool presence_seen(void *arg)
{
    presence_arg *a = arg;
    for (size_t i = 0; i < a->d->n_presence; i++)
        if (strcmp(a->d->presence[i].user, a->user) == 0 &&
            a->d->presence[i].status == a->st)
            return true;
    return false;
}

bool its_wait_presence(its_dev *d, const char *user, Sbp__AgentStatus st,
                       int ms)
{
    presence_arg a = {d, user, st};
    return it_run_until(d->env, presence_seen, &a, ms);
}

typedef struct devs_state {
    its_dev **devs;
    size_t n;
    uint64_t conv;
    Sbp__ConvState state;
    const char *agent, *group;
    uint32_t pos;
} devs_state;

static bool state_is(its_dev *d, const devs_state *a)
{
    its_conv *c = its_conv_of(d, a->conv);
    return c && c->updates && c->state == a->state &&
           (!a->agent || strcmp(c->agent, a->agent) == 0) &&
           (!a->group || strcmp(c->group, a->group) == 0) &&
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

void its_expect_state(its_dev **devs, size_t n, uint64_t conv,
                      Sbp__ConvState st, const char *agent, const char *group,
                      uint32_t pos)
{
    devs_state a = {devs, n, conv, st, agent, group, pos};
    if (it_run_until(devs[0]->env, all_state, &a, ITS_WAIT_MS)) return;
    for (size_t i = 0; i < n; i++) {
        its_conv *c = its_conv_of(devs[i], conv);
        fprintf(stderr,
                "%s: conv %" PRIu64 " updates %u state %d agent %s "
                "group %s pos %u\n",
                devs[i]->name, conv, c ? c->updates : 0, c ? (int)c->state : -1,
                c ? c->agent : "-", c ? c->group : "-", c ? c->queue_pos : 0);
    }
    fail_msg("conv %" PRIu64 ": not every device was told state %d agent %s "
             "group %s",
             conv, (int)st, agent ? agent : "*", group ? group : "*");
}
